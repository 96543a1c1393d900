"""Oracles for the Navier–Stokes simulator: exact decay, translation, conservation, forcing."""

import math

import pytest
import torch

from gfdt_dash.systems import NavierStokesConfig, make_system
from gfdt_dash.systems.fields import rk4_amplification


def _system(**overrides):
    base = dict(n=16, forcing_amp=0.0, members=4, frame_members=4)
    config = NavierStokesConfig.preset("classroom", **{**base, **overrides})
    return config, make_system(config, "cpu", "float64")


def _shell_field(system):
    """ζ₀ = cos 3x + sin 3y + 0.5 cos(3x)… all on the shell |k| = 3: zero Jacobian."""
    x = torch.as_tensor(system.grid.coords)
    zeta = torch.cos(3 * x)[None, :] + torch.sin(3 * x)[:, None] + 0.0 * x[:, None]
    return zeta[None].clone()


def _run(system, zeta0, t_end):
    phase = torch.zeros(zeta0.shape[0], system.n_forced, dtype=zeta0.dtype)
    state = {"field_hat": system.grid.to_spectral(zeta0), "phase": phase}
    gen = system.generator(0)
    for _ in range(round(t_end / system.dt)):
        state = system.step(state, system.draw_noise(1, gen))
    return system.observe(state)


def test_single_shell_decays_at_exactly_the_dissipation_rate():
    config, system = _system(U0=0.0, nu2=1e-3, nuh2=0.5)
    zeta0 = _shell_field(system)
    t_end = 1.0
    k2 = 9.0
    rate = config.nuh2 / k2**2 + config.nu2 * k2**2
    out = _run(system, zeta0, t_end)
    # The nonlinear term vanishes on one shell; RK4's error at dt·rate ≈ 0.003 is ~1e-14.
    assert torch.allclose(out, zeta0 * math.exp(-rate * t_end), atol=1e-12)


def test_background_flow_translates_the_field_by_U0_t():
    config, system = _system(U0=math.pi, nu2=0.0, nuh2=0.0)
    zeta0 = _shell_field(system)
    t_end = 0.5
    n_steps = round(t_end / config.dt)
    out = _run(system, zeta0, t_end)
    x = torch.as_tensor(system.grid.coords)
    expected = torch.cos(3 * (x - config.U0 * t_end))[None, :] + torch.sin(3 * x)[:, None]
    # RK4 on e^{−iU₀k_x t}: per-step phase error |z|⁵/120 with z = U₀·3·dt ≈ 0.29.
    z = config.U0 * 3 * config.dt
    assert torch.allclose(out[0], expected, atol=2 * n_steps * z**5 / 120)
    # And exactly the RK4 amplification of the linear operator, mode by mode.
    p = rk4_amplification(config.dt * system.linear_hat) ** n_steps
    exact_scheme = system.grid.to_physical(p * system.grid.to_spectral(zeta0))
    assert torch.allclose(out, exact_scheme, atol=1e-12)


def _random_field(system, seed):
    g = torch.Generator().manual_seed(seed)
    zeta = torch.randn(3, system.grid.n, system.grid.n, dtype=torch.float64, generator=g)
    return system.grid.to_spectral(zeta)


def _weights(system):
    """Σ over the full spectrum from the rfft half: double the columns 0 < k_x < n/2."""
    kx = system.grid.kx
    return torch.where((kx == 0) | (kx == system.grid.n // 2), 1.0, 2.0)


def test_advection_conserves_energy_and_enstrophy_with_dealiasing():
    _, system = _system(dealias=True)
    zeta_hat = system.grid.dealias * _random_field(system, 1)
    adv = system.advection_hat(zeta_hat)
    w = _weights(system)
    psi_hat = system.inv_lap * zeta_hat
    enstrophy_rate = (w * (zeta_hat.conj() * adv).real).sum((-2, -1))
    energy_rate = (w * (psi_hat.conj() * adv).real).sum((-2, -1))
    scale = (w * zeta_hat.abs() ** 2).sum((-2, -1)) * zeta_hat.abs().max()
    assert (enstrophy_rate.abs() / scale).max() < 1e-14
    assert (energy_rate.abs() / scale).max() < 1e-14


def test_skew_symmetric_advection_conserves_enstrophy_even_without_dealiasing():
    _, system = _system(dealias=False, advection="skew")
    zeta_hat = _random_field(system, 2)
    zeta_hat[:, system.grid.n // 2, :] = 0  # a real field has no usable ±Nyquist derivative
    zeta_hat[:, :, -1] = 0
    adv = system.advection_hat(zeta_hat)
    w = _weights(system)
    rate = (w * (zeta_hat.conj() * adv).real).sum((-2, -1))
    scale = (w * zeta_hat.abs() ** 2).sum((-2, -1)) * zeta_hat.abs().max()
    assert (rate.abs() / scale).max() < 1e-14


def test_forcing_is_the_real_part_of_the_normalised_inverse_fft():
    config, system = _system(forcing_amp=3.0, kf=5.0, mean_forcing_removed=0.9)
    g = torch.Generator().manual_seed(3)
    phase = 2 * math.pi * torch.rand(2, system.n_forced, dtype=torch.float64, generator=g)
    full_phase = torch.zeros(2, 16, 16, dtype=torch.float64)
    full_phase[:, system.forcing_mask.bool()] = phase
    s_full = torch.polar(config.forcing_amp * system.forcing_mask.expand_as(full_phase), full_phase)
    s_phys = torch.fft.ifft2(s_full).real
    s_phys = s_phys - 0.9 * s_phys.mean((-2, -1), keepdim=True)
    assert torch.allclose(system.forcing_hat(phase), torch.fft.rfft2(s_phys), atol=1e-12)
    ky, kx = system.grid.full_wavenumbers()
    inside = system.forcing_mask.bool()
    assert inside[0, 0]
    assert not inside[8].any() and not inside[:, 8].any()
    assert bool(((ky**2 + kx**2)[inside] <= 25).all())


def test_phases_diffuse_with_variance_2D_per_unit_time():
    config, system = _system(forcing_amp=1.0, phase_diffusion=0.7, members=2000)
    gen = system.generator(4)
    state = system.initial_state(2000, gen)
    new = system.step(state, system.draw_noise(2000, gen))
    inc = torch.remainder(new["phase"] - state["phase"] + math.pi, 2 * math.pi) - math.pi
    var = float(inc.var())
    expected = 2 * config.phase_diffusion * config.dt
    assert var == pytest.approx(expected, rel=0.01)  # 512k samples: relative se ≈ 0.002


@pytest.mark.parametrize("form", ["skew", "momentum_flux"])
def test_stepping_in_blocks_of_members_changes_nothing(form):
    """Members are independent: a step taken in blocks of members (here 3 of 2, 2, 1 — the
    last one short) equals the step of the whole batch, field and phases."""
    config = NavierStokesConfig.preset("classroom", advection=form)
    whole = make_system(config, "cpu", "float64")
    blocked = make_system(config, "cpu", "float64")
    n_fields = sum(whole.transforms_per_stage().values())
    blocked.block_bytes = 2 * n_fields * config.n**2 * 16  # two members per block
    gen = whole.generator(0)
    state = whole.initial_state(5, gen)
    for _ in range(3):
        noise = whole.draw_noise(5, gen)
        want, got = whole.step(state, noise), blocked.step(state, noise)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-13, atol=1e-12)
        state = want


@pytest.mark.parametrize(
    ("form", "stepper"),
    [("skew", "rk4"), ("momentum_flux", "rk3"), ("advective", "rk3"), ("conservative", "rk4")],
)
def test_step_returns_ordinary_tensors_and_stays_differentiable(form, stepper):
    """The step runs without autograd bookkeeping, but what it returns is ordinary tensors
    (updatable in place, usable in autograd), and with an input that requires gradients it is
    differentiable: the gradient of a linear readout matches a finite difference."""
    config = NavierStokesConfig.preset(
        "classroom", members=2, frame_members=2, advection=form, time_stepper=stepper
    )
    system = make_system(config, "cpu", "float64")
    gen = system.generator(0)
    state = system.initial_state(2, gen)
    noise = system.draw_noise(2, gen)
    new = system.step(state, noise)
    for value in new.values():
        assert not value.is_inference()
        value.add_(0.0)  # in place outside inference mode: allowed on ordinary tensors
    weight = torch.randn(new["field_hat"].shape, dtype=torch.complex128, generator=_gen(1))
    field = state["field_hat"].clone().requires_grad_()
    out = system.step({**state, "field_hat": field}, noise)["field_hat"]
    (weight.conj() * out).real.sum().backward()
    assert field.grad is not None
    direction = torch.randn(field.shape, dtype=torch.complex128, generator=_gen(2))
    direction = system.grid.hermitian(direction)

    def readout(z):
        with torch.no_grad():
            out = system.step({**state, "field_hat": z}, noise)["field_hat"]
        return float((weight.conj() * out).real.sum())

    h = 1e-6
    numeric = (readout(field + h * direction) - readout(field - h * direction)) / (2 * h)
    analytic = float((field.grad.conj() * direction).real.sum())
    assert analytic == pytest.approx(numeric, rel=1e-5)


def _gen(seed):
    return torch.Generator().manual_seed(seed)
