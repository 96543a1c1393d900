"""The decisions shared by the pipeline and the dashboard (gfdt_dash.stages)."""

from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from gfdt_dash import score, stages
from gfdt_dash.pipeline import pipeline_cost, run_pipeline
from gfdt_dash.systems import get_config, simulate

# A small OU run of the classroom physics (the shipped model fits it): 16×16, 40 frames.
TINY = get_config("ou", "classroom").replace(spinup=10.0, record=40.0, n_experiments=16)


@pytest.fixture(scope="module")
def shipped():
    return score.load_checkpoint(score.shipped_model_path("ou"), device="cpu")


def test_model_fits_compares_the_physics_not_the_sampling(shipped):
    classroom = get_config("ou", "classroom")
    assert stages.model_fits(shipped, classroom) == ""
    assert stages.model_fits(shipped, classroom.replace(members=64, record=40.0)) == ""
    assert stages.model_fits(shipped, classroom.replace(kappa=0.005)) == (
        "kappa = 0.0025 (now 0.005)"
    )
    assert stages.model_fits(shipped, classroom.replace(n=32)).startswith("a 16×16 grid")
    assert stages.model_fits(None, classroom) == "no model"
    worded = stages.model_fits(
        shipped, classroom.replace(kappa=0.005), label=str.upper, fmt=lambda v: f"<{v}>"
    )
    assert worded == "KAPPA = <0.0025> (now <0.005>)"


def test_choose_model_keeps_a_fitting_model_else_the_shipped_one_else_none(shipped):
    path = stages.shipped_path("ou")
    assert path is not None and path.is_file()
    keep = stages.choose_model(TINY, shipped, shipped=path, device="cpu")
    assert keep.model is shipped and keep.path is None
    other = TINY.replace(kappa=0.005)
    loaded = stages.choose_model(TINY, _Stub(shipped, other), shipped=path, device="cpu")
    assert loaded.path == path and stages.model_fits(loaded.model, TINY) == ""
    train = stages.choose_model(other, shipped, shipped=path, device="cpu")
    assert train.model is None
    assert train.reason == "the shipped model was trained for kappa = 0.0025 (now 0.005)"
    none = stages.choose_model(TINY, None, shipped=None)
    assert none.model is None and "no shipped model" in none.reason


class _Stub:
    """A model recorded as trained on ``config`` (everything else from ``model``)."""

    def __init__(self, model, config):
        self.n, self.system_config, self.metadata = model.n, config, {}


def test_score_net_for_sizes_the_network_by_preset_and_device():
    import torch

    # the paper preset: the study-size U-Net on a GPU, the CPU-trainable one on a CPU
    paper_net, paper_train = stages.score_net_for("paper", device=torch.device("cuda"))
    cpu_net, cpu_train = stages.score_net_for("paper", device="cpu")
    assert cpu_net == score.ScoreNetConfig.preset("cpu_paper") != paper_net
    assert cpu_train == score.TrainConfig.preset("cpu_paper")
    class_net, class_train = stages.score_net_for("classroom", n_steps=123)
    assert paper_net == score.ScoreNetConfig.preset("paper")
    assert paper_train == score.TrainConfig.preset("paper")
    assert class_net == score.ScoreNetConfig.preset("classroom") != paper_net
    assert class_train.n_steps == 123
    assert stages.score_net_for("custom") == stages.score_net_for("classroom")


def test_stored_diagnostics_only_for_the_very_config_trained_on(shipped):
    stored = stages.stored_diagnostics(shipped, get_config("ou", "classroom"))
    assert stored == shipped.metadata["diagnostics"]
    assert stages.stored_diagnostics(shipped, TINY) is None  # another record length
    assert stages.stored_diagnostics(_Stub(shipped, TINY), TINY) is None  # none stored


def test_diagnose_model_uses_the_exact_score_the_registry_declares(shipped):
    sim = simulate(TINY, seed=0, device="cpu")
    diag = stages.diagnose_model(shipped, sim, TINY, n_samples=0, seed=0, device="cpu")
    # OU has a closed-form score, satisfying Stein's identity up to sampling error.
    assert np.isfinite(diag["score_rel_error"]) and np.isfinite(diag["stein_error_exact"])
    assert "hist_distance" not in diag  # no samples drawn


def test_errors_of_counts_the_last_lag_despite_rounding():
    # lags 0.1·k in floating point: 0.1·3 = 0.30000000000000004 > max_lag 0.3
    lag = 0.1 * np.arange(4)
    ref = np.ones((4, 1, 8))
    est = ref.copy()
    est[-1] = 2.0  # differs at the last lag only
    ds = xr.Dataset(
        {
            "response": (("estimator", "lag", "dy", "dx"), np.stack([est, ref])),
            "stein_error": ("estimator", [0.0, 0.0]),
        },
        coords={"estimator": ["gaussian", "perturbation"], "lag": lag, "dy": [0], "dx": range(8)},
    )
    table = stages.errors_of(ds, SimpleNamespace(max_lag=0.3))
    assert table.loc["gaussian", "error"] == pytest.approx(0.5)  # ‖1‖ over 16 → 4 of 16 differ
    assert table.loc["perturbation", "error"] == 0.0


def test_the_pipeline_and_the_dashboard_share_model_choice_and_diagnostics(shipped):
    result = run_pipeline(TINY, seed=1, device="cpu", model="auto")
    assert stages.model_fits(result.model, TINY) == ""
    assert result.model.metadata["provenance"] == shipped.metadata["provenance"]  # the shipped
    own = stages.diagnose_model(result.model, result.simulation, TINY, seed=1, device="cpu")
    assert own == result.diagnostics
    _, errors = stages.responses_and_errors(
        TINY, result.simulation, result.model, seed=1, device="cpu"
    )
    np.testing.assert_array_equal(errors.to_numpy(), result.errors.to_numpy())
    other = TINY.replace(kappa=0.005)
    assert pipeline_cost(other, model="auto") == pipeline_cost(other, model="train")
    assert pipeline_cost(TINY, model="auto") == pipeline_cost(TINY, model="shipped")


def test_estimates_count_training_only_when_no_model_fits(shipped):
    if stages.reference_costs("ou") is None:
        pytest.skip("the shipped OU model records no timings")
    fits = stages.estimate_s("run all", TINY, train_steps=2000)
    other = TINY.replace(kappa=0.005)
    trains = stages.estimate_s("run all", other, train_steps=2000)
    train = stages.estimate_s("training", other, train_steps=2000)
    assert trains == pytest.approx(fits + train)
    assert stages.estimate_s("run all", other, train_steps=2000, model=_Stub(shipped, other)) == (
        pytest.approx(fits)
    )
    assert stages.estimate_s("simulation", TINY, train_steps=1, simulated=True) == 0.0
    assert stages.estimate_s("unknown", TINY, train_steps=1) is None
