"""The Navier–Stokes time steppers: Kutta's RK3 next to classical RK4.

Orders are measured by self-convergence on the paper physics with frozen forcing phases
(``phase_diffusion = 0``: the forcing is a fixed function of space, the run deterministic), from
a turbulent state; the configs' dt check uses the chosen scheme's stability limits; configs saved
before the field existed load with RK4.
"""

import math

import pytest
import torch

from gfdt_dash.systems import NavierStokesConfig, config_from_dict, get_config, make_system
from gfdt_dash.systems.base import rk3_step
from gfdt_dash.systems.config import NS_TIME_STEPPERS


def test_rk3_step_is_kuttas_scheme_on_a_linear_equation():
    """For dy/dt = λy one step multiplies by 1 + z + z²/2 + z³/6 (z = λdt), every 3-stage
    third-order scheme's polynomial; the stage index runs 0, 1, 2."""
    lam = torch.tensor([-0.7 + 2.0j, -3.0 + 0.0j, 0.0 + 1.5j], dtype=torch.complex128)
    y = torch.tensor([1.0 + 0.5j, -2.0 + 0.0j, 0.3 - 1.0j], dtype=torch.complex128)
    stages = []

    def f(x, stage):
        stages.append(stage)
        return lam * x

    dt = 0.37
    z = lam * dt
    got = rk3_step(f, y, dt)
    assert stages == [0, 1, 2]
    torch.testing.assert_close(got, y * (1 + z + z**2 / 2 + z**3 / 6), rtol=1e-15, atol=1e-15)


def test_rk3_uses_the_forcing_at_the_start_half_step_and_end():
    """dy/dt = g(t) (no y dependence): RK3 with stages at t, t + dt/2, t + dt is Simpson's rule,
    exact for cubics in t."""
    dt = 0.5
    times = {0: 0.0, 1: dt / 2, 2: dt}

    def g(t):
        return 1.0 - 2.0 * t + 3.0 * t**2 - 4.0 * t**3

    y = torch.zeros(1, dtype=torch.float64)
    got = rk3_step(lambda x, stage: torch.full_like(x, g(times[stage])), y, dt)
    exact = dt - dt**2 + dt**3 - dt**4
    assert float(got) == pytest.approx(exact, rel=1e-14)


def _turbulent_start(config, t_spin=2.0):
    """A state after ``t_spin`` time units of the (frozen-phase) dynamics, float64."""
    system = make_system(config.replace(time_stepper="rk4"), "cpu", "float64")
    gen = system.generator(3)
    state = system.initial_state(2, gen)
    for _ in range(round(t_spin / config.dt)):
        state = system.step(state, system.draw_noise(2, gen))
    return state


def _run(config, state, dt, t_end):
    system = make_system(config.replace(dt=dt), "cpu", "float64")
    gen = system.generator(0)
    for _ in range(round(t_end / dt)):
        state = system.step(state, system.draw_noise(2, gen))
    return state["field_hat"]


@pytest.mark.parametrize(("stepper", "order"), [("rk3", 3), ("rk4", 4)])
def test_self_convergence_order_on_the_paper_physics(stepper, order):
    """Errors after 0.25 time units against a run at dt/16 fall by 2^order when dt halves from
    the paper dt 1/128 (measured ratios: RK3 8.01 and 8.11, RK4 15.97 and 16.05); the forcing
    phases are frozen, so each run is deterministic."""
    config = NavierStokesConfig.preset(
        "paper",
        phase_diffusion=0.0,
        members=2,
        frame_members=2,
        frame_every=1 / 16,
        time_stepper=stepper,
    )
    start = _turbulent_start(config, t_spin=1.0)
    t_end, dt0 = 0.25, 1 / 128
    reference = _run(config, start, dt0 / 16, t_end)
    errors = [
        float((_run(config, start, dt0 / 2**i, t_end) - reference).abs().max()) for i in range(3)
    ]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    for ratio in ratios:
        assert ratio == pytest.approx(2**order, rel=0.15), (errors, ratios)


@pytest.mark.parametrize("form", ["conservative", "momentum_flux"])
def test_rk3_keeps_the_state_exactly_hermitian_without_a_second_projection(form):
    """RK3's combinations (one with a negative weight) of exactly Hermitian tendencies are
    exactly Hermitian, so the forms without the final projection stay the rfft2 of real fields."""
    config = NavierStokesConfig.preset(
        "paper", advection=form, time_stepper="rk3", members=2, frame_members=2
    )
    system = make_system(config, "cpu", "float32")
    gen = system.generator(1)
    state = system.initial_state(2, gen)
    for _ in range(64):
        state = system.step(state, system.draw_noise(2, gen))
    n = system.grid.n
    rows = (-torch.arange(n)) % n
    edges = state["field_hat"][..., [0, n // 2]]
    assert system.is_finite(state)
    assert float((edges[:, rows] - edges.conj()).abs().max()) == 0.0


def test_time_stepper_is_validated_and_old_configs_load_with_rk4():
    with pytest.raises(ValueError, match="^time_stepper: 'euler' not allowed"):
        NavierStokesConfig.preset("classroom", time_stepper="euler")
    for preset in ("classroom", "paper"):
        assert get_config("navier_stokes", preset).time_stepper == "rk4"
    old = NavierStokesConfig.preset("classroom", time_stepper="rk3").to_dict()
    del old["time_stepper"]  # saved before the field existed: simulated with RK4
    assert config_from_dict(old).time_stepper == "rk4"
    assert NavierStokesConfig.legacy_defaults["time_stepper"] == "rk4"
    assert NavierStokesConfig.field_specs()["time_stepper"]["group"] == "integrator"


def test_dt_check_uses_the_chosen_schemes_stability_limits():
    """The background flow's imaginary rate U₀(n/2 − 1) = 7π on the classroom grid: RK4 allows
    dt ≤ 0.9·2√2/(7π) = 0.1157, RK3 only 0.9·√3/(7π) = 0.0709 (a dt of 1/12 lies between)."""
    assert NS_TIME_STEPPERS["rk3"][1] == pytest.approx(math.sqrt(3))
    rate = math.pi * 7
    NavierStokesConfig.preset("classroom", dt=1 / 12, frame_every=1 / 4)  # RK4: fine
    with pytest.raises(ValueError, match=r"^dt: .*RK3 stability.*\(0, 0\.07089\]") as info:
        NavierStokesConfig.preset("classroom", dt=1 / 12, frame_every=1 / 4, time_stepper="rk3")
    assert f"{0.9 * math.sqrt(3) / rate:.4g}" in str(info.value)
    NavierStokesConfig.preset("classroom", dt=1 / 16, time_stepper="rk3")
    # the real axis: ν²|k|⁴ at |k|² = 2·32² on n = 64 is 419; RK3: dt ≤ 0.9·2.512/419 = 0.0054
    with pytest.raises(ValueError, match=r"^dt: .*RK3 stability"):
        NavierStokesConfig.preset("classroom", n=64, dt=1 / 176, time_stepper="rk3")
    NavierStokesConfig.preset("classroom", n=64, dt=1 / 176)  # RK4: ≤ 0.9·2.785/419 = 0.00598


def test_the_shipped_model_fits_the_default_and_not_rk3():
    """The shipped classroom model was trained on RK4 data (its saved config predates the
    field): it fits the default config, and a config with RK3 is told apart by name."""
    from gfdt_dash.score import load_shipped
    from gfdt_dash.stages import model_fits

    model = load_shipped("navier_stokes", device="cpu")
    assert model.system_config.time_stepper == "rk4"
    assert model_fits(model, get_config("navier_stokes", "classroom")) == ""
    other = get_config("navier_stokes", "classroom", time_stepper="rk3")
    assert model_fits(model, other) == "time_stepper = rk4 (now rk3)"
