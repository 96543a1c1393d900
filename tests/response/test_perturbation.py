"""Direct perturbation and the analytic OU response; combining methods and the error table."""

import json

import numpy as np
import pytest
import torch

from gfdt_dash.progress import Cancelled
from gfdt_dash.response import analytic_response, combine, error_table, perturbation_response
from gfdt_dash.response.result import from_offsets
from gfdt_dash.systems import FieldSystem, OUConfig
from gfdt_dash.systems.fields import rk4_amplification

# A small, fast OU run: 8×8 grid, 4 members × 3 restarts (n_experiments=10 is rounded up to 12).
SMALL = dict(n=8, members=4, frame_members=4, spinup=0.0, record=8.0, n_experiments=10,
             max_lag=6.0, restart_every=8.0, frame_every=1.0, snapshot_every=1.0)


@pytest.fixture(scope="module")
def ou_config():
    return OUConfig.preset("classroom", **SMALL, integrator="rk4")


@pytest.fixture(scope="module")
def direct(ou_config):
    return perturbation_response(ou_config, seed=3, device="cpu", dtype="float64")


def scheme_propagator(config, lags, amp=None):
    """The scheme's exact response to a unit kick: (noise-free one-step factor)^steps per mode."""
    system = FieldSystem(config, "cpu", "float64")
    amp = system.stepper.linear_factor() if amp is None else amp
    steps = torch.as_tensor([config.steps(t) for t in lags])[:, None, None]
    return system.grid.to_physical(amp**steps).numpy()


def test_ou_direct_equals_rk4_propagator_to_float_precision(ou_config, direct):
    """OU is linear: with shared noise the paired difference is the deterministic propagator."""
    system = FieldSystem(ou_config, "cpu", "float64")
    rk4 = rk4_amplification(ou_config.dt * system.linear_hat)
    want = scheme_propagator(ou_config, direct["lag"].values, rk4)
    got = from_offsets(direct["response"].values)
    np.testing.assert_allclose(got, want, atol=1e-13)  # float64 round-off of ~100 FFT steps
    assert direct["response_stderr"].max() < 1e-13  # every experiment is the same


def test_direct_perturbation_runs_the_configured_integrator():
    """Under LM the paired runs carry the same noise, so the response is LM's own propagator
    e^{Âdt}(1 + dt·Ĝ) per step — not RK4's — to float precision, and converges to the analytic
    response at first order."""
    config = OUConfig.preset("classroom", **SMALL, integrator="lm")
    got = perturbation_response(config, seed=3, device="cpu", dtype="float64")
    lags = got["lag"].values
    system = FieldSystem(config, "cpu", "float64")
    lm = torch.exp(config.dt * system.skew_hat) * (
        1 + config.dt * (system.linear_hat - system.skew_hat)
    )
    want = scheme_propagator(config, lags, lm)
    np.testing.assert_allclose(from_offsets(got["response"].values), want, atol=1e-13)
    assert got["response_stderr"].max() < 1e-13
    rk4 = scheme_propagator(config, lags, rk4_amplification(config.dt * system.linear_hat))
    assert np.abs(want - rk4).max() > 1e-4  # the two schemes are told apart at this dt
    exact = analytic_response(config, lags)["response"].values
    errors = []
    for dt in (1 / 8, 1 / 16, 1 / 32):
        finer = config.replace(dt=dt)
        errors.append(np.abs(perturbation_response(finer, device="cpu", dtype="float64")
                             ["response"].values - exact).max())
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(1.8 < r < 2.2 for r in ratios), ratios  # first order


def test_ou_direct_equals_analytic(ou_config, direct):
    exact = analytic_response(ou_config, direct["lag"].values)
    # RK4 global error for dt·|rate| ≤ 0.09 over 48 steps is ~1e-7 (measured 1.9e-7 on 16×16)
    np.testing.assert_allclose(direct["response"], exact["response"], atol=5e-7)
    finer = ou_config.replace(dt=1 / 64)
    fine = perturbation_response(finer, device="cpu", dtype="float64")
    # RK4 is 4th order: dt/8 shrinks the error by ~8⁴ ≈ 4000
    np.testing.assert_allclose(fine["response"], exact["response"], atol=1e-9)


def test_direct_attrs_and_layout(direct):
    a = direct.attrs
    assert a["estimator"] == "perturbation"
    assert (a["n_experiments"], a["n_experiments_requested"], a["n_restarts"]) == (12, 10, 3)
    assert json.loads(a["config"])["n"] == 8
    np.testing.assert_allclose(direct["lag"], np.arange(7.0))
    lag0 = direct["response"].isel(lag=0)
    assert float(lag0.sel(dy=0, dx=0)) == pytest.approx(1.0)
    assert float(abs(lag0).sum()) == pytest.approx(1.0)


def test_direct_batches_initial_state_and_cancel(ou_config, direct):
    halves = perturbation_response(ou_config, seed=3, device="cpu", dtype="float64", batch=2)
    np.testing.assert_allclose(halves["response"], direct["response"], atol=1e-13)
    system = FieldSystem(ou_config, "cpu", "float64")
    state = system.initial_state(2, system.generator(0))
    from_state = perturbation_response(ou_config, device="cpu", dtype="float64",
                                       initial_state=state)
    assert from_state.attrs["n_experiments"] == 10  # 2 members × 5 restarts
    with pytest.raises(Cancelled):
        perturbation_response(ou_config, device="cpu", should_stop=lambda: True)
    with pytest.raises(ValueError, match="^batch"):
        perturbation_response(ou_config, device="cpu", batch=0)
    with pytest.raises(ValueError, match="^spinup"):
        perturbation_response(ou_config, device="cpu", spinup=-1.0)


def test_analytic_travels_downstream():
    cfg = OUConfig.preset("classroom")
    r = analytic_response(cfg, [0.0, 10.0])["response"].sel(dy=0)
    assert float(r.isel(lag=0).sel(dx=0)) == pytest.approx(1.0)
    peak = int(r.isel(lag=1).idxmax("dx"))
    assert peak == round(cfg.U * 10 / (2 * np.pi / cfg.n))  # U t / h cells downstream
    with pytest.raises(ValueError, match="^config"):
        analytic_response(object(), [0.0])
    with pytest.raises(ValueError, match="^lags"):
        analytic_response(cfg, [-1.0])


def test_combine_and_error_table(ou_config, direct):
    exact = analytic_response(ou_config, np.arange(5.0))  # fewer lags: the common ones are kept
    both = combine([direct, exact])
    assert both.sizes["lag"] == 5
    assert both["estimator"].values.tolist() == ["perturbation", "analytic"]
    assert np.isnan(both["stein_error"]).all()
    table = error_table(both)
    assert table.loc["analytic", "error"] == 0.0
    assert 0 < table.loc["perturbation", "error"] < 1e-6
    assert error_table([direct, exact], "perturbation").loc["analytic", "error"] < 1e-6
    shorter = error_table(both, max_lag=2.0, n_down=2)
    assert shorter.loc["perturbation", "error"] < 1e-6
    with pytest.raises(ValueError, match="^reference"):
        error_table(both, "gaussian")
    with pytest.raises(ValueError, match="^results"):
        combine([direct, direct])
    with pytest.raises(ValueError, match="^n_down"):
        error_table(both, n_down=9)


@pytest.mark.parametrize("integrator", ["lm", "rk4"])
def test_direct_perturbation_at_paper_allen_cahn_parameters_and_n24(integrator):
    """The N ≥ 20 twin: paper λ = 4000 on a 24² grid through t = 24, kicked copy included, stays
    finite (the unprojected scheme overflowed by t ≈ 5), starts at the kick and decays."""
    from gfdt_dash.systems import AllenCahnConfig

    config = AllenCahnConfig.preset(
        "paper", n=24, members=2, frame_members=2, spinup=4.0, record=4.0, max_lag=4.0,
        restart_every=4.0, n_experiments=10, integrator=integrator,
    )
    got = perturbation_response(config, seed=1, device="cpu")
    r = got["response"]
    assert np.isfinite(r.values).all() and got.attrs["n_restarts"] == 5
    at_kick = r.sel(dy=0, dx=0).values
    np.testing.assert_allclose(at_kick[0], 1.0, atol=1e-5)  # the kick itself, at lag 0
    assert abs(at_kick[-1]) < 0.5  # decayed under the stiff reaction (rate ≈ 2λε² = 32)
