"""The end-to-end pipeline, its stage cache and the reproduction report."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gfdt_dash.data import write_netcdf
from gfdt_dash.pipeline import compute_responses, default_methods, run_pipeline
from gfdt_dash.report import write_report
from gfdt_dash.systems import AllenCahnConfig, NavierStokesConfig, OUConfig

TINY_OU = OUConfig.preset(
    "classroom",
    n=8,
    members=8,
    frame_members=8,
    record=60.0,
    max_lag=8.0,
    restart_every=8.0,
    n_experiments=16,
)


def test_default_methods_follow_the_system():
    assert default_methods(TINY_OU)[-1] == "analytic"
    assert "exact_score" in default_methods(AllenCahnConfig.preset("classroom"))
    ns = default_methods(NavierStokesConfig.preset("classroom"))
    assert "exact_score" not in ns
    assert "analytic" not in ns


def test_pipeline_without_model_caches_every_stage(tmp_path):
    first = run_pipeline(TINY_OU, seed=2, device="cpu", model=None, cache_dir=tmp_path)
    assert list(first.errors.index) == ["exact_score", "gaussian", "perturbation", "analytic"]
    # OU is linear: the Gaussian and exact-score GFDT agree with the closed form, and the direct
    # perturbation (shared noise) is the scheme's own propagator, which differs from the closed
    # form only by the default `lm` integrator's first-order transient error (2.0e-4 here).
    assert first.errors.loc["perturbation", "error"] < 1e-3
    assert first.errors.loc["gaussian", "error"] < 0.2
    files = sorted(p.name.split("-")[0] for p in (tmp_path / "ou").iterdir())
    assert files == ["responses", "simulation", "timings.json"]
    again = run_pipeline(TINY_OU, seed=2, device="cpu", model=None, cache_dir=tmp_path)
    np.testing.assert_array_equal(
        again.responses["response"].values, first.responses["response"].values
    )
    # Stages read from the cache report the times measured when they were computed.
    for stage in ("simulate", "responses"):
        assert again.timings[stage] == first.timings[stage]
        assert again.cpu_times[stage] == first.cpu_times[stage]
    assert set(first.cpu_times) == {"simulate", "model", "responses"}
    # A cache written before the methods' dimension was named `estimator` is still used.
    cached = next((tmp_path / "ou").glob("responses-*"))
    write_netcdf(xr.load_dataset(cached, engine="h5netcdf").rename(estimator="method"), cached)
    old = run_pipeline(TINY_OU, seed=2, device="cpu", model=None, cache_dir=tmp_path)
    assert old.responses["response"].dims == ("estimator", "lag", "dy", "dx")
    pd.testing.assert_frame_equal(old.errors, first.errors)


def test_a_new_kick_reuses_the_cached_simulation_and_recomputes_the_responses(
    tmp_path, monkeypatch
):
    import gfdt_dash.pipeline as pipeline

    calls = []
    real_simulate = pipeline.simulate

    def counting_simulate(config, **kwargs):
        calls.append(config)
        return real_simulate(config, **kwargs)

    monkeypatch.setattr(pipeline, "simulate", counting_simulate)
    run = dict(seed=2, device="cpu", model=None, methods=["perturbation"], cache_dir=tmp_path)
    first = run_pipeline(TINY_OU, **run)
    assert len(calls) == 1
    kicked = TINY_OU.replace(delta=0.125)
    second = run_pipeline(kicked, **run)
    assert len(calls) == 1  # the simulation came from the cache
    assert json.loads(second.simulation.attrs["config"])["delta"] == 0.125
    # the responses were recomputed with the new kick: the perturbation's attrs carry it, and
    # OU is linear, so the response itself agrees to rounding (float32 differences / δ)
    attrs = json.loads(second.responses.attrs["estimator_attrs"])["perturbation"]
    assert attrs["delta"] == 0.125
    np.testing.assert_allclose(
        second.responses["response"].values, first.responses["response"].values, atol=1e-3
    )
    names = sorted(p.name.split("-")[0] for p in (tmp_path / "ou").iterdir())
    assert names == ["responses", "responses", "simulation", "timings.json"]
    run_pipeline(TINY_OU.replace(record=40.0), **run)  # a recorded-duration change re-simulates
    assert len(calls) == 2


def test_learned_score_needs_a_model():
    with pytest.raises(ValueError, match="^methods: 'learned_score' needs a score model"):
        compute_responses(TINY_OU, None, methods=["learned_score"])


def test_report_has_figures_tables_and_timings(tmp_path):
    result = run_pipeline(TINY_OU, seed=0, device="cpu", model=None)
    path = write_report([result], tmp_path, title="test report")
    text = path.read_text()
    assert "## Ornstein–Uhlenbeck" in text
    assert "| estimator | error | error_raw |" in text and "| exact_score |" in text
    assert "Stage times on cpu, wall (process CPU): simulate" in text
    timings = (tmp_path / "ou_timings.csv").read_text().splitlines()
    assert timings[0] == "stage,wall_s,cpu_s" and timings[1].startswith("simulate,")
    png = (tmp_path / "ou.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ou_errors.csv").read_text().startswith("estimator,error")
