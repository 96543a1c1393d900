"""Oracles for the OU / Allen–Cahn simulator: noise spectrum, OU closed forms, RK4 order, Stein."""

import copy
import math

import pytest
import torch

from gfdt_dash.systems import AllenCahnConfig, OUConfig, make_system, simulate
from gfdt_dash.systems.base import rk4_step
from gfdt_dash.systems.fields import rk4_amplification
from gfdt_dash.systems.steppers import make_stepper


def _ortho_power(fields: torch.Tensor) -> torch.Tensor:
    """Per-mode power E|f̂|²/N² averaged over the batch, rfft2 layout."""
    n = fields.shape[-1]
    return (torch.fft.rfft2(fields).abs() ** 2).mean(0) / n**2


def test_noise_spectrum_is_dt_n2_sigma():
    config = OUConfig.preset("classroom", n=8, dt=0.1)
    system = make_system(config, "cpu", "float64")
    gen = system.generator(0)
    m = 40_000
    eta = system.grid.to_physical(system.noise_hat(system.draw_noise(m, gen)))
    expected = config.dt * config.n**2 * system.sigma_hat
    rel = _ortho_power(eta) / expected
    # Each mode's power is a mean of m (or m/2 for the real self-conjugate modes) chi-square
    # variables with relative std ≤ sqrt(2/m) ≈ 0.007; 5 sigma over 40 modes.
    assert torch.allclose(rel, torch.ones_like(rel), atol=5 * math.sqrt(2 / m))


def test_lm_ou_stationary_spectrum_is_the_sde_one():
    """LM keeps the OU law exactly: N²Σ̂/(2(κ|k|² + γδ_k0)) at any stable dt."""
    config = OUConfig.preset("classroom", n=8, integrator="lm", dt=0.5)
    system = make_system(config, "cpu", "float64")
    k2, g = system.grid.k2, config.gamma
    continuum = config.n**2 * system.sigma_hat / (2 * (config.kappa * k2 + g * (k2 == 0)))
    torch.testing.assert_close(system.ou_stationary_spectrum(), continuum, rtol=1e-12, atol=0)


def test_rk4_ou_stationary_spectrum_closed_form_and_its_continuum_limit():
    config = OUConfig.preset("classroom", n=8, integrator="rk4")
    system = make_system(config, "cpu", "float64")
    discrete = system.ou_stationary_spectrum()
    k2, g = system.grid.k2, config.gamma
    continuum = config.n**2 * system.sigma_hat / (2 * (config.kappa * k2 + g * (k2 == 0)))
    # O(dt) apart: 1 − |P|² ≈ 2r·dt(1 − r·dt) for a decay rate r, so the scheme's variance
    # exceeds the SDE's by a relative r·dt (+ O(dt²)); and it is never below it.
    rate = config.kappa * k2 + g * (k2 == 0)
    rel = discrete / continuum - 1
    assert (rel >= 0).all()
    assert torch.allclose(rel, config.dt * rate, rtol=0.05, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("integrator", ["lm", "rk4"])
def test_ou_stationary_variance_per_mode_from_simulation(integrator):
    """Simulated per-mode variance (time and ensemble average) equals the closed form."""
    config = OUConfig.preset(
        "classroom",
        integrator=integrator,
        n=8,
        kappa=0.02,
        gamma=0.2,
        members=64,
        frame_members=64,
        record=400.0,
        frame_every=2.0,
        snapshot_every=400.0,
    )
    system = make_system(config, "cpu", "float64")
    ds = simulate(config, seed=3, device="cpu", dtype="float64")
    f = torch.as_tensor(ds.field.values, dtype=torch.float64).reshape(-1, config.n, config.n)
    power = _ortho_power(f)
    expected = system.ou_stationary_spectrum()
    # Effective samples per mode: 64 members × 400/τ_k, τ_k = 1/(κk²+γ) ≤ 5 time units →
    # ≥ 64·80 = 5120 per mode, relative std ≤ sqrt(2/5120) ≈ 0.02; allow 4 sigma.
    assert torch.allclose(power / expected, torch.ones_like(power), atol=0.08)


@pytest.mark.parametrize("integrator", ["lm", "rk4"])
def test_ou_ensemble_mean_decays_as_the_scheme_propagator(integrator):
    """From one start state the ensemble mean of each mode follows the scheme's noise-free
    propagator (noise averages out), which approximates exp(A t) to the scheme's order."""
    config = OUConfig.preset(
        "classroom", n=8, kappa=0.05, U=0.5, gamma=0.3, dt=0.05, integrator=integrator
    )
    system = make_system(config, "cpu", "float64")
    gen = system.generator(1)
    m = 4000
    state = {k: v.expand(m, -1, -1).clone() for k, v in system.initial_state(1, gen).items()}
    start = state["field_hat"][0]
    state_0_prev = state["noise_prev"][0] if "noise_prev" in state else None
    n_steps = 40
    for _ in range(n_steps):
        state = system.step(state, system.draw_noise(m, gen))
    t = n_steps * config.dt
    g = system.grid
    a_hat = -(config.kappa * g.k2 + config.gamma * (g.k2 == 0)) - config.U * g.ikx
    factor = system.stepper.linear_factor()
    p = factor**n_steps
    mean = state["field_hat"].mean(0)
    # Standard error of the mean per mode: sqrt(var_t / m), var_t ≤ stationary variance. (Under
    # LM the carried start noise is common to all members and is part of the propagated mean.)
    se = torch.sqrt(config.n**2 * system.ou_stationary_spectrum() / m)
    if integrator == "rk4":
        expected = p * start
        # RK4 matches exp(A t) to ~1e-9 at these rates: same oracle, no noise.
        assert torch.allclose(p, torch.exp(a_hat * t), atol=1e-8)
        assert torch.equal(factor, rk4_amplification(config.dt * system.linear_hat))
    else:
        # E θ₁ = Pθ₀ + e^{Âdt}ξ₀/2 (ξ₀ the carried increment, common to all members), then the
        # new increments average out: E θₙ = Pⁿθ₀ + Pⁿ⁻¹ e^{Âdt} ξ₀/2, P = e^{Âdt}(1 + dt·Ĝ).
        rot = torch.exp(config.dt * system.skew_hat)
        gradient = system.linear_hat - system.skew_hat
        torch.testing.assert_close(factor, rot * (1 + config.dt * gradient), rtol=1e-14, atol=0)
        expected = p * start + p / factor * rot * state_0_prev / 2
        # first order: |Pⁿ − e^{At}| ≤ n (r dt)²/2 · e^{−r(t−dt)}, r ≤ κ·32 + γ = 1.9
        assert torch.allclose(p, torch.exp(a_hat * t), atol=40 * (1.9 * 0.05) ** 2 / 2)
    assert ((mean - expected).abs() <= 5 * se + 1e-9).all()


def test_rk4_is_fourth_order_on_the_allen_cahn_drift():
    config = AllenCahnConfig.preset("classroom", n=8, lam=400.0)
    system = make_system(config, "cpu", "float64")
    gen = system.generator(2)
    start = system.initial_state(2, gen)["field_hat"] * 5.0
    t_end = 0.5

    def integrate(dt):
        y = start.clone()
        for _ in range(round(t_end / dt)):
            k1 = system.drift_hat(y)
            k2 = system.drift_hat(y + 0.5 * dt * k1)
            k3 = system.drift_hat(y + 0.5 * dt * k2)
            k4 = system.drift_hat(y + dt * k3)
            y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y

    ref = integrate(t_end / 1024)
    errs = [float((integrate(t_end / m) - ref).abs().max()) for m in (16, 32, 64)]
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(3.7 < o < 4.3 for o in orders), orders


def test_lm_is_first_order_on_the_allen_cahn_drift():
    """Noise-free LM steps converge to the ODE solution at first order (the transient dynamics;
    its stationary law is the second-order property)."""
    config = AllenCahnConfig.preset("classroom", n=8, lam=400.0, integrator="lm")
    system = make_system(config, "cpu", "float64")
    gen = system.generator(2)
    state = system.initial_state(2, gen)
    start = state["field_hat"] * 5.0
    t_end = 0.5

    def integrate(dt):
        stepper = make_stepper("lm", _with_dt(system, dt))
        st = {"field_hat": start.clone(), "noise_prev": torch.zeros_like(start)}
        zero = {"white_hat": torch.zeros(2, 8, 5, dtype=torch.complex128)}
        for _ in range(round(t_end / dt)):
            st = stepper.step(st, zero)
        return st["field_hat"]

    ref = make_system(config.replace(integrator="rk4", dt=t_end / 256), "cpu", "float64")
    y = start.clone()
    for _ in range(256):
        y = rk4_step(ref.drift_hat, y, t_end / 256)
    errs = [float((integrate(t_end / m) - y).abs().max()) for m in (32, 64, 128)]
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(0.85 < o < 1.15 for o in orders), orders


def _with_dt(system, dt):
    """The same equation with another time step (for convergence tests)."""
    clone = copy.copy(system)
    clone.dt = dt
    return clone


def test_lm_step_averages_the_carried_and_the_new_noise():
    """θ' = e^{Âdt/2}[e^{Âdt/2}θ + dt·(Ĝ e^{Âdt/2}θ + N) + (e^{Âdt/2}ξₙ + ξₙ₊₁)/2], and ξₙ₊₁ is
    carried on, rotated by e^{Âdt/2}."""
    config = AllenCahnConfig.preset("classroom", n=8, integrator="lm")
    system = make_system(config, "cpu", "float64")
    gen = system.generator(0)
    state = system.initial_state(3, gen)
    noise = system.draw_noise(3, gen)
    zero_noise = {"white_hat": torch.zeros_like(noise["white_hat"])}
    quiet = {"field_hat": state["field_hat"], "noise_prev": torch.zeros_like(state["noise_prev"])}
    deterministic = system.step(quiet, zero_noise)["field_hat"]
    out = system.step(state, noise)
    half = torch.exp(0.5 * config.dt * system.skew_hat)
    xi = system.noise_hat(noise)
    want = deterministic + half * 0.5 * (half * state["noise_prev"] + xi)
    torch.testing.assert_close(out["field_hat"], want, rtol=0, atol=1e-10)
    # the step multiplies ŵ by the folded factor e^{Âdt/2}·amp once: equal up to round-off
    torch.testing.assert_close(out["noise_prev"], half * xi, rtol=1e-15, atol=1e-15)


def test_step_uses_rk4_plus_the_noise_increment():
    config = AllenCahnConfig.preset("classroom", n=8, integrator="rk4")
    system = make_system(config, "cpu", "float64")
    gen = system.generator(0)
    state = system.initial_state(3, gen)
    noise = system.draw_noise(3, gen)
    zero = {"white_hat": torch.zeros_like(noise["white_hat"])}
    deterministic = system.step(state, zero)["field_hat"]
    stochastic = system.step(state, noise)["field_hat"]
    assert torch.allclose(stochastic - deterministic, system.noise_hat(noise))


def test_exact_score_is_the_gradient_of_the_log_density():
    """s = (2/N²)∇Φ: compare with autograd of Φ(θ) = Σλ(θ²/2−θ⁴/4) + ½θᵀΣ⁻¹(κΔ−γP₀)θ."""
    config = AllenCahnConfig.preset("classroom", n=8, gamma=0.3)
    system = make_system(config, "cpu", "float64")
    theta = torch.randn(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    theta.requires_grad_(True)
    g = system.grid
    th = g.to_spectral(theta)
    # θᵀMθ for a real symmetric circulant M with multiplier m(k): (1/N²)Σ_k m|θ̂|² over full k.
    weight = torch.where((g.kx == 0) | (g.kx == config.n // 2), 1.0, 2.0)
    quad = (weight * (-system.dissipation_hat / system.sigma_hat) * th.abs() ** 2).sum((-2, -1))
    phi = (config.lam * (theta**2 / 2 - theta**4 / 4)).sum((-2, -1)) + 0.5 * quad / config.n**2
    (grad,) = torch.autograd.grad(phi.sum(), theta)
    assert torch.allclose(system.score(theta.detach()), 2 / config.n**2 * grad, atol=1e-10)


@pytest.mark.slow
def test_stein_identity_on_simulated_allen_cahn_data():
    """⟨θ s(θ)ᵀ⟩ = −I on stationary LM data: per mode ⟨θ̂ conj ŝ⟩/N² = −1, the mean mode too.

    The spatial-mean mode is the hard one: the stiff reaction (rate 2λε² = 8 at these
    parameters) and the factor λ in the score amplify any O(dt) bias of the simulated law there.
    RK4 plus additive noise gives ⟨θ̂₀ŝ₀⟩/N² ≈ −4.9 ± 0.7 at this dt = 1/32 (−9.4 at 1/16).
    """
    config = AllenCahnConfig.preset(
        "classroom", lam=1000.0, dt=1 / 32, members=32, frame_members=32, spinup=100.0, record=400.0
    )
    assert config.integrator == "lm"
    ds = simulate(config, seed=1, device="cpu")
    system = make_system(config, "cpu", "float64")
    theta = torch.as_tensor(ds.field.values, dtype=torch.float64).reshape(-1, config.n, config.n)
    s = system.score(theta)
    cross = (torch.fft.rfft2(theta) * torch.fft.rfft2(s).conj()).real.mean(0) / config.n**2
    mean_mode = float(cross[0, 0])
    rms = float(torch.sqrt(((cross + 1) ** 2).mean()))
    print(f"mean mode {mean_mode:.3f}, rms over modes {rms:.4f}")
    # The mean mode's sampling error is large: members switch wells rarely (32-member
    # sub-ensembles of one run scatter with std ≈ 0.45 around −1); the RK4 law gives −4.9 here.
    assert abs(mean_mode + 1) < 1.5, mean_mode
    # Per-mode sampling error ≈ 0.03 at the slowest modes (32 members × 400 frames of a field
    # with a correlation time ≈ 10) plus the O(U·h) grid error of the advected quartic term; a
    # wrong factor anywhere in noise or score gives O(1).
    assert rms < 0.06, rms


def test_hermitian_projection_is_the_real_field_round_trip():
    """Grid.hermitian equals rfft2(irfft2(·)), is idempotent and touches only kx = 0, n/2."""
    n = 12
    system = make_system(OUConfig.preset("classroom", n=n), "cpu", "float64")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, n, n // 2 + 1, dtype=torch.complex128, generator=gen)
    g = system.grid
    p = g.hermitian(x)
    torch.testing.assert_close(p, g.to_spectral(g.to_physical(x)), rtol=0, atol=1e-12)
    torch.testing.assert_close(g.hermitian(p), p, rtol=0, atol=0)
    torch.testing.assert_close(p[..., 1 : n // 2], x[..., 1 : n // 2], rtol=0, atol=0)
    assert not torch.allclose(p[..., 0], x[..., 0])  # a random array is not Hermitian


def _non_hermitian_part(system, field_hat):
    """max |f̂ − rfft2(irfft2 f̂)| relative to max |f̂|."""
    g = system.grid
    return float((field_hat - g.to_spectral(g.to_physical(field_hat))).abs().max()) / float(
        field_hat.abs().max()
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [24, 32, 64])
def test_allen_cahn_paper_parameters_stay_real_and_finite_at_large_n(n, dtype):
    """Paper λ at N ≥ 20 over t = 20: the state stays the rfft2 of a real field and finite.

    Without the Hermitian projection round-off in the kx = 0 column grows at λΣ̂ − κ|k|² (up to
    λε² = 16 per time unit) and overflowed at t ≈ 5 (float32) and t ≈ 10 (float64) for N = 24
    and 32 on the CPU. At N = 64 the CPU FFT happened to leave that column exactly Hermitian, so
    the old scheme survived there; other FFT backends give no such guarantee.
    """
    config = AllenCahnConfig.preset("paper", n=n, members=2, frame_members=2)
    system = make_system(config, "cpu", dtype)
    gen = system.generator(0)
    state = system.initial_state(2, gen)
    for _ in range(config.steps(20.0)):
        state = system.step(state, system.draw_noise(2, gen))
    assert system.is_finite(state)
    theta = system.observe(state)
    assert 0.5 < float(theta.abs().mean()) < 2.0  # in the wells near ±1, not blown up
    # Round-off of one FFT round trip, nothing accumulated (float32 eps 6e-8, float64 1e-16).
    tol = 1e-5 if dtype == "float32" else 1e-13
    assert _non_hermitian_part(system, state["field_hat"]) < tol


def _hermitian_defect(system, field_hat):
    """Largest |f̂(−k) − conj f̂(k)| over the k_x = 0 and Nyquist columns (0: exactly Hermitian)."""
    n = system.grid.n
    rows = (-torch.arange(n)) % n
    cols = torch.tensor([0, n // 2])
    return float((field_hat[:, rows][..., cols] - field_hat[..., cols].conj()).abs().max())


@pytest.mark.parametrize("integrator", ["lm", "rk4"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [16, 24, 32])
def test_ou_state_stays_exactly_the_rfft2_of_a_real_field_without_projection(n, dtype, integrator):
    """The linear step is not projected: its multipliers are real and even in k_y on the two
    edge columns, so the state and the carried noise stay exact conjugate pairs there over a
    long run (paper physics: 100 time units, 3200 steps), and the field is the real one."""
    config = OUConfig.preset("paper", n=n, members=2, frame_members=2, integrator=integrator)
    system = make_system(config, "cpu", dtype)
    assert system.is_linear
    edges = system.stepper.linear_factor()[..., :: n // 2]
    assert float(edges.imag.abs().max()) == 0.0  # real on the edge columns
    gen = system.generator(4)
    state = system.initial_state(2, gen)
    for _ in range(config.steps(100.0)):
        state = system.step(state, system.draw_noise(2, gen))
    for key, value in state.items():
        assert _hermitian_defect(system, value) == 0.0, key
    tol = 1e-5 if dtype == "float32" else 1e-13
    assert _non_hermitian_part(system, state["field_hat"]) < tol
    # and it is the stationary OU field, not something that drifted away
    var = float(system.observe(state).var())
    stationary = float(system.ou_stationary_spectrum().sum()) * 2 / n**2
    assert 0.1 * stationary < var < 10 * stationary


def test_kick_and_noise_are_transforms_of_real_fields():
    config = AllenCahnConfig.preset("paper", n=24, members=2, frame_members=2)
    system = make_system(config, "cpu", "float32")
    gen = system.generator(1)
    state = system.initial_state(2, gen)
    for pixel in [(0, 0), (5, 7), (12, 12)]:
        kicked = system.kick(state, 0.0625, pixel)["field_hat"]
        assert torch.equal(kicked, system.grid.hermitian(kicked))
    noise = system.noise_hat(system.draw_noise(2, gen))
    assert torch.equal(noise, system.grid.hermitian(noise))
