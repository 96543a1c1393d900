"""Oracles for the OU / Allen–Cahn simulator: noise spectrum, OU closed forms, RK4 order, Stein."""

import math

import pytest
import torch

from gfdt_dash.systems import AllenCahnConfig, OUConfig, make_system, simulate
from gfdt_dash.systems.fields import rk4_amplification


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


def test_ou_stationary_spectrum_closed_form_and_its_continuum_limit():
    config = OUConfig.preset("classroom", n=8)
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
def test_ou_stationary_variance_per_mode_from_simulation():
    """Simulated per-mode variance (time and ensemble average) equals the closed form."""
    config = OUConfig.preset(
        "classroom",
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


def test_ou_ensemble_mean_decays_as_the_analytic_response():
    """From one start state the ensemble mean of each mode follows exp(A t) (noise averages out)."""
    config = OUConfig.preset("classroom", n=8, kappa=0.05, U=0.5, gamma=0.3, dt=0.05)
    system = make_system(config, "cpu", "float64")
    gen = system.generator(1)
    m = 4000
    start = system.initial_state(1, gen)["field_hat"]
    state = {"field_hat": start.expand(m, -1, -1).clone()}
    n_steps = 40
    for _ in range(n_steps):
        state = system.step(state, system.draw_noise(m, gen))
    t = n_steps * config.dt
    g = system.grid
    a_hat = -(config.kappa * g.k2 + config.gamma * (g.k2 == 0)) - config.U * g.ikx
    expected = torch.exp(a_hat * t) * start[0]
    mean = state["field_hat"].mean(0)
    # Standard error of the mean per mode: sqrt(var_t / m), var_t ≤ stationary variance.
    se = torch.sqrt(config.n**2 * system.ou_stationary_spectrum() / m)
    assert ((mean - expected).abs() <= 5 * se + 1e-9).all()
    # The RK4 amplification matches exp(A t) to ~1e-9 at these rates: same oracle, no noise.
    p = rk4_amplification(config.dt * system.linear_hat) ** n_steps
    assert torch.allclose(p, torch.exp(a_hat * t), atol=1e-8)


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


def test_step_uses_rk4_plus_the_noise_increment():
    config = AllenCahnConfig.preset("classroom", n=8)
    system = make_system(config, "cpu", "float64")
    gen = system.generator(0)
    state = system.initial_state(3, gen)
    noise = system.draw_noise(3, gen)
    zero = {"white": torch.zeros_like(noise["white"])}
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
    """⟨θ s(θ)ᵀ⟩ = −I on stationary data: per mode ⟨θ̂ conj ŝ⟩/N² = −1.

    The spatial-mean mode is excluded: there the stiff reaction (rate 2λε² = 8 at these
    parameters) gives the RK4-plus-noise scheme an O(dt) bias of its stationary law that the
    factor λ in the score amplifies (measured ⟨θ̂₀ŝ₀⟩/N² ≈ −4.9 ± 0.7 at dt = 1/32, −9.4 at
    dt = 1/16). Every other mode is checked.
    """
    config = AllenCahnConfig.preset(
        "classroom", lam=1000.0, dt=1 / 32, members=32, frame_members=32, spinup=100.0, record=400.0
    )
    ds = simulate(config, seed=1, device="cpu")
    system = make_system(config, "cpu", "float64")
    theta = torch.as_tensor(ds.field.values, dtype=torch.float64).reshape(-1, config.n, config.n)
    s = system.score(theta)
    cross = (torch.fft.rfft2(theta) * torch.fft.rfft2(s).conj()).real.mean(0) / config.n**2
    cross[0, 0] = -1.0
    rms = float(torch.sqrt(((cross + 1) ** 2).mean()))
    # Measured 0.032: per-mode sampling error ≈ 0.03 at the slowest modes (32 members × 400
    # frames of a field with a correlation time ≈ 10) plus the O(U·h) grid error of the
    # advected quartic term; a wrong factor anywhere in noise or score gives O(1).
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
