"""The forcing evaluated at a step's last stage is carried into the next step's first stage.

The phases at t + dt of one step are those at t of the next, so a state carries the forcing's
phase factors at its phases (``state["forcing"]``, with a copy of the phases they were evaluated
at). Stepping with them must give exactly what recomputing them gives, and a carried value that
no longer belongs to the state's phases must never be used.
"""

import math

import pytest
import torch

from gfdt_dash.systems import NavierStokesConfig, PairedRun, make_system
from gfdt_dash.systems.simulate import check_state

COMBOS = [("momentum_flux", "rk3"), ("skew", "rk4"), ("conservative", "rk3")]


def _system(form="momentum_flux", stepper="rk3", dtype="float32", **overrides):
    config = NavierStokesConfig.preset(
        "classroom", advection=form, time_stepper=stepper, **overrides
    )
    return make_system(config, "cpu", dtype)


def _without(state, key="forcing"):
    return {k: v for k, v in state.items() if k != key}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("form", "stepper"), COMBOS)
def test_carried_forcing_gives_bit_identical_steps(form, stepper):
    system = _system(form, stepper)
    gen = system.generator(2)
    carried = system.initial_state(6, gen)
    recomputed = _without(carried)
    for _ in range(20):
        noise = system.draw_noise(6, gen)
        carried = system.step(carried, noise)
        recomputed = system.step(_without(recomputed), noise)
        _assert_same(carried, recomputed)
    width = 2 * len(system._target)
    assert torch.equal(carried["forcing"][:, :width], system.forcing_terms(carried["phase"]))
    assert torch.equal(carried["forcing"][:, width:], carried["phase"])


def _stale_cases(state):
    """States whose phases were changed by hand while the carried forcing was kept."""
    shifted = state["phase"] + 0.5 * math.pi
    replaced = dict(state, phase=shifted)
    in_place = {k: v.clone() for k, v in state.items()}
    in_place["phase"].add_(0.5 * math.pi)
    sliced = {k: v[1:3].clone() for k, v in state.items()}
    sliced["phase"][0, :5] = 1.0  # one member, a few modes
    return {"replaced": replaced, "in place": in_place, "partly": sliced}


@pytest.mark.parametrize(("form", "stepper"), COMBOS[:2])
def test_a_stale_carried_forcing_is_recomputed(form, stepper):
    system = _system(form, stepper)
    gen = system.generator(3)
    state = system.initial_state(4, gen)
    state = system.step(state, system.draw_noise(4, gen))
    for name, stale in _stale_cases(state).items():
        noise = system.draw_noise(stale["phase"].shape[0], gen)
        got = system.step(stale, noise)
        want = system.step(_without(stale), noise)
        _assert_same(got, want)
        # the test can fail: with the stale factors forced in, the step differs
        width = 2 * len(system._target)
        forged = dict(stale, forcing=torch.cat([stale["forcing"][:, :width], stale["phase"]], 1))
        wrong = system.step(forged, noise)
        assert not torch.equal(wrong["field_hat"], want["field_hat"]), name


def test_carried_factors_do_not_depend_on_the_forcing_amplitude():
    """A state made by a system with other forcing amplitude and c_S steps as if made here."""
    here = _system(forcing_amp=2.0, mean_forcing_removed=0.5)
    other = _system(forcing_amp=7.0, mean_forcing_removed=0.9)
    gen = other.generator(4)
    state = other.step(other.initial_state(3, gen), other.draw_noise(3, gen))
    noise = here.draw_noise(3, gen)
    _assert_same(here.step(state, noise), here.step(_without(state), noise))


def test_kicked_copies_and_blocks_of_members_use_the_carried_forcing_correctly():
    whole = _system()
    blocked = _system()
    n_fields = sum(whole.transforms_per_stage().values())
    blocked.block_bytes = 2 * n_fields * whole.grid.n**2 * 8  # two members per block
    gen = whole.generator(5)
    state = whole.initial_state(5, gen)
    for _ in range(3):
        noise = whole.draw_noise(5, gen)
        _assert_same(blocked.step(state, noise), whole.step(_without(state), noise))
        state = whole.step(state, noise)
    run = PairedRun(whole, state, 0.1)
    plain = PairedRun(whole, _without(state), 0.1)
    for _ in range(3):
        run.step(whole.generator(6))
        plain.step(whole.generator(6))
        plain.state = _without(plain.state)
    assert torch.equal(run.state["field_hat"], plain.state["field_hat"])


def test_unforced_states_carry_nothing_and_carried_states_pass_the_state_check():
    unforced = _system(forcing_amp=0.0)
    gen = unforced.generator(0)
    state = unforced.initial_state(2, gen)
    assert "forcing" not in state
    assert "forcing" not in unforced.step(state, unforced.draw_noise(2, gen))
    forced = _system()
    state = forced.initial_state(2, gen)
    assert "forcing" in state
    check_state(forced, state)
    check_state(forced, _without(state))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kf", [3.0, 10.6, 15.5])
def test_phase_factors_match_the_direct_formula_and_pair_exactly(kf, dtype):
    """cos σ (cos δ, sin δ) equals ½(cos φ_k + cos φ_{−k}, sin φ_k − sin φ_{−k}) to round-off,
    and the forcing of k and −k in the k_x = 0 column are exact conjugates (any kf, any width
    of the trigonometric functions' vector loops)."""
    system = _system(dtype=dtype, n=32, kf=kf)
    g = torch.Generator().manual_seed(1)
    phase = (20 * torch.rand(7, system.n_forced, generator=g) - 5).to(system.dtype)
    pair = phase[:, system._pair]
    n_target = len(system._target)
    cos, sin = torch.cos(pair.double()), torch.sin(pair.double())
    direct = torch.stack(
        [cos[:, :n_target] + cos[:, n_target:], sin[:, :n_target] - sin[:, n_target:]], -1
    )
    got = system.forcing_terms(phase).view(7, n_target, 2).double()
    eps = torch.finfo(system.dtype).eps
    assert float((2 * got - direct).abs().max()) < 50 * eps
    forcing = system.forcing_hat(phase)
    n = system.grid.n
    edges = forcing[..., [0, n // 2]]
    mirrored = edges[:, (-torch.arange(n)) % n]
    assert torch.equal(mirrored, edges.conj().resolve_conj())
    assert float(edges.abs().max()) > 0


def test_phases_are_reduced_by_whole_turns():
    """Increments of several turns either way: the new phases lie in [0, 2π] (to one rounding)
    and are the unreduced sums less whole turns."""
    system = _system(dtype="float64")
    gen = system.generator(7)
    state = system.initial_state(3, gen)
    noise = {"dW": 40 * system.draw_noise(3, gen)["dW"] / system.phase_step}
    new = system.step(state, noise)
    raw = state["phase"] + system.phase_step * noise["dW"].sum(1)
    assert float(raw.abs().max()) > 40  # several turns
    phase = new["phase"]
    assert float(phase.min()) >= -1e-12 and float(phase.max()) <= 2 * math.pi + 1e-12
    turns = (raw - phase) / (2 * math.pi)
    assert float((turns - turns.round()).abs().max()) < 1e-12
