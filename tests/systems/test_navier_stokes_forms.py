"""Oracles for the four advection forms of the Navier–Stokes simulator.

Each packed evaluation (complex fields w = u + iv, one complex FFT for two real fields) is checked
against the plain formula evaluated field by field with irfft2/rfft2; each form's conservation
law is checked on the grid without dealiasing, both as an instantaneous rate and over unforced,
inviscid runs; with the 2/3 rule the four forms coincide.
"""

import dataclasses
import math

import pytest
import torch

from gfdt_dash.systems import NavierStokesConfig, config_from_dict, get_config, make_system

FORMS = NavierStokesConfig.advection_forms


def _system(form, n=16, **overrides):
    base = dict(n=n, forcing_amp=0.0, members=4, frame_members=4, advection=form)
    config = NavierStokesConfig.preset("classroom", **{**base, **overrides})
    return make_system(config, "cpu", "float64")


def _random_hat(system, seed, batch=3, amplitude=1.0):
    g = torch.Generator().manual_seed(seed)
    n = system.grid.n
    zeta = amplitude * torch.randn(batch, n, n, dtype=torch.float64, generator=g)
    return system.grid.to_spectral(zeta)


def _plain_formula(system, form, zeta_hat):
    """N̂(ζ) of ``form`` evaluated the plain way: one irfft2 per field, one rfft2 per product."""
    g = system.grid
    to_grid, to_hat = g.to_physical, g.to_spectral
    u = to_grid(g.iky * system.inv_lap * zeta_hat)
    v = to_grid(-g.ikx * system.inv_lap * zeta_hat)
    zeta_x, zeta_y, zeta = to_grid(g.ikx * zeta_hat), to_grid(g.iky * zeta_hat), to_grid(zeta_hat)
    advective = to_hat(u * zeta_x + v * zeta_y)
    conservative = g.ikx * to_hat(u * zeta) + g.iky * to_hat(v * zeta)
    # (∂ₓ² − ∂_y²) and ∂ₓ∂_y as compositions of the grid's first derivatives
    momentum_flux = -(g.ikx * g.ikx - g.iky * g.iky) * to_hat(u * v) - g.ikx * g.iky * to_hat(
        v * v - u * u
    )
    out = {
        "skew": 0.5 * (advective + conservative),
        "advective": advective,
        "conservative": conservative,
        "momentum_flux": momentum_flux,
    }[form]
    return out if system.mask is None else system.mask * out


def _parseval_weights(system):
    """Σ over the full spectrum from the rfft2 half: double the columns 0 < k_x < n/2."""
    kx = system.grid.kx
    return torch.where((kx == 0) | (kx == system.grid.n // 2), 1.0, 2.0)


def _invariants(system, zeta_hat):
    """Mean, energy −½Σψζ and enstrophy ½Σζ² (grid sums) per member."""
    w = _parseval_weights(system) / system.grid.n**2
    power = w * zeta_hat.abs() ** 2
    energy = 0.5 * (-system.inv_lap * power).sum((-2, -1))
    enstrophy = 0.5 * power.sum((-2, -1))
    return zeta_hat[:, 0, 0].real, energy, enstrophy


@pytest.mark.parametrize("dealias", [False, True])
@pytest.mark.parametrize("form", FORMS)
def test_packed_evaluation_equals_the_plain_formula(form, dealias):
    system = _system(form, dealias=dealias)
    zeta_hat = _random_hat(system, 1)
    if dealias:
        zeta_hat = system.grid.dealias * zeta_hat
    expected = _plain_formula(system, form, zeta_hat)
    got = system.advection_hat(zeta_hat)
    # float64 round-off of a few FFTs of white-noise fields, relative to the largest coefficient
    assert float((got - expected).abs().max() / expected.abs().max()) < 1e-13


def test_forms_differ_by_aliasing_and_coincide_with_dealiasing():
    zeta_hat = _random_hat(_system("skew"), 2)
    for dealias, agree in ((False, False), (True, True)):
        outputs = []
        for form in FORMS:
            system = _system(form, dealias=dealias)
            z = system.grid.dealias * zeta_hat if dealias else zeta_hat
            outputs.append(system.advection_hat(z))
        scale = outputs[0].abs().max()
        spread = max(float((o - outputs[0]).abs().max() / scale) for o in outputs[1:])
        # white noise is strongly aliased: the undealiased forms differ at O(1)
        assert (spread < 1e-13) if agree else (spread > 1e-2)


@pytest.mark.parametrize("form", FORMS)
def test_conservation_rates_on_the_grid(form):
    """d/dt of mean, energy and enstrophy under the advection alone, for a random field."""
    system = _system(form)
    zeta_hat = _random_hat(system, 3)
    adv = system.advection_hat(zeta_hat)
    w = _parseval_weights(system)
    psi_hat = system.inv_lap * zeta_hat
    scale = float((w * zeta_hat.abs() ** 2).sum((-2, -1)).max() * zeta_hat.abs().max())
    enstrophy_rate = (w * (zeta_hat.conj() * adv).real).sum((-2, -1)).abs().max() / scale
    energy_rate = (w * (psi_hat.conj() * adv).real).sum((-2, -1)).abs().max() / scale
    mean_rate = adv[:, 0, 0].abs().max() / zeta_hat.abs().max()
    tol = 1e-14  # float64 round-off; the non-conserved rates below are O(1e-2) and larger
    assert mean_rate < tol
    assert (enstrophy_rate < tol) == (form == "skew")
    assert (energy_rate < tol) == (form == "conservative")


@pytest.mark.parametrize("form", FORMS)
def test_unforced_inviscid_runs_keep_what_the_form_conserves(form):
    """200 RK4 steps with U₀, forcing, viscosities and the mean damping switched off.

    The initial field is white noise, as aliased as a field on this grid can be. RK4's own drift
    of a conserved quadratic invariant is O(dt⁴) (measured 2e-8 here, 9e-10 at half the step);
    a quantity the form does not conserve changes by 3 % (skew's energy) to more than 100 %
    (advective and momentum_flux are not bounded by any quadratic invariant and grow).
    """
    system = _system(form, U0=0.0, nu2=0.0, nuh2=0.0, dt=1 / 64)
    zeta_hat = _random_hat(system, 4, batch=2, amplitude=2.0)
    zeta_hat[:, 0, 0] = 0  # zero mean: the mean's own damping (rate 1) then has nothing to do
    phase = torch.zeros(2, system.n_forced, dtype=torch.float64)
    state = {"field_hat": system.grid.hermitian(zeta_hat), "phase": phase}
    _, energy0, enstrophy0 = _invariants(system, state["field_hat"])
    gen = system.generator(0)
    for _ in range(200):
        state = system.step(state, system.draw_noise(2, gen))
    mean, energy1, enstrophy1 = _invariants(system, state["field_hat"])
    energy = float(((energy1 - energy0) / energy0).abs().max())
    enstrophy = float(((enstrophy1 - enstrophy0) / enstrophy0).abs().max())
    assert float(mean.abs().max() / zeta_hat.abs().max()) < 1e-14
    assert (energy < 1e-6) == (form == "conservative")
    assert (enstrophy < 1e-6) == (form == "skew")
    assert min(energy, enstrophy) > 1e-2 or form in ("skew", "conservative")


def test_advection_form_is_validated_and_old_configs_load_as_the_original_form():
    with pytest.raises(ValueError, match="^advection: 'upwind' not allowed"):
        NavierStokesConfig.preset("classroom", advection="upwind")
    old = NavierStokesConfig.preset("classroom").to_dict()
    del old["advection"]  # saved before the field existed, i.e. with the original study's form
    assert config_from_dict(old).advection == "skew"
    assert NavierStokesConfig.advection_forms[0] == "skew"
    field = {f.name: f for f in dataclasses.fields(NavierStokesConfig)}["advection"]
    assert field.default == "skew"
    for preset in ("classroom", "paper"):
        assert get_config("navier_stokes", preset).advection == "skew"


def test_dt_is_checked_for_rk4_stability_of_the_linear_rates():
    # classroom ν² = 1e-4 on n = 64: ν²|k|⁴ at |k|² = 2·32² is 419, dt·419 ≫ 2.785
    with pytest.raises(ValueError, match=r"^dt: .* RK4 stability"):
        NavierStokesConfig.preset("classroom", n=64)
    assert NavierStokesConfig.preset("classroom", n=64, dt=1 / 256).n == 64


@pytest.mark.slow
@pytest.mark.parametrize("form", ["skew", "conservative"])
def test_forms_with_a_quadratic_invariant_stay_bounded_without_hyperviscosity(form):
    """Classroom forcing with ν² = 0: aliasing pumps the grid scale, but enstrophy (skew) or
    energy (conservative) bounds every mode. (advective and momentum_flux diverge here: measured
    at t ≈ 18 and 22.)"""
    config = NavierStokesConfig.preset(
        "classroom", nu2=0.0, advection=form, members=16, frame_members=16
    )
    system = make_system(config, "cpu", "float32")
    gen = system.generator(0)
    state = system.initial_state(16, gen)
    for _ in range(round(30 / config.dt)):
        state = system.step(state, system.draw_noise(16, gen))
    assert system.is_finite(state)
    assert float(system.observe(state).abs().max()) < 50  # measured ≤ 6; |ζ| is O(1)–O(10)


def _spread_of_forms(n):
    """Largest difference between the forms' vorticity after 2 time units, from a smooth field."""
    x = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    zeta = torch.sin(x)[None, :] + torch.cos(2 * x)[:, None] + 0.5 * torch.sin(x[:, None] + x)
    results = []
    for form in FORMS:
        system = _system(form, n=n)
        phase = torch.zeros(1, system.n_forced, dtype=torch.float64)
        state = {"field_hat": system.grid.to_spectral(zeta[None]), "phase": phase}
        gen = system.generator(0)
        for _ in range(64):
            state = system.step(state, system.draw_noise(1, gen))
        results.append(system.observe(state))
    return max(float((r - results[0]).abs().max()) for r in results[1:])


def test_forms_converge_to_one_flow_with_resolution():
    """The forms differ only through aliasing, which a smooth flow outgrows exponentially with
    the grid: from the shells |k| ≤ 2 (|ζ| ≈ 2.4), the cascade reaches n/2 = 8 on n = 16 within
    2 time units (spread measured 1.5e-2) but hardly n/2 = 16 on n = 32 (measured 1.9e-5)."""
    coarse, fine = _spread_of_forms(16), _spread_of_forms(32)
    assert coarse > 1e-3
    assert fine < 1e-4
    assert fine < coarse / 100
