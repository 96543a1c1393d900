"""The end-to-end pipeline, its stage cache and the reproduction report."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gfdt_dash.cost import CLI_LIMITS, job_cost
from gfdt_dash.data import write_netcdf
from gfdt_dash.pipeline import (
    _cache_key,
    compute_responses,
    default_methods,
    pipeline_cost,
    run_pipeline,
)
from gfdt_dash.report import write_report
from gfdt_dash.response.methods import ESTIMATORS, RUN_INPUTS, estimate_inputs
from gfdt_dash.systems import SYSTEMS, AllenCahnConfig, NavierStokesConfig, OUConfig

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
    files = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "ou").iterdir())
    assert files == [
        "estimate-analytic",
        "estimate-exact_score",
        "estimate-gaussian",
        "estimate-perturbation",
        "simulation",
        "timings.json",
    ]
    again = run_pipeline(TINY_OU, seed=2, device="cpu", model=None, cache_dir=tmp_path)
    xr.testing.assert_identical(again.responses, first.responses)
    # Stages read from the cache report the times measured when they were computed; the
    # responses stage's are the sums of its methods' (each recorded by its file).
    for stage in ("simulate", "responses"):
        assert again.timings[stage] == first.timings[stage]
        assert again.cpu_times[stage] == first.cpu_times[stage]
    assert set(first.cpu_times) == {"simulate", "model", "responses"}
    recorded = json.loads((tmp_path / "ou" / "timings.json").read_text())
    per_method = [v["wall_s"] for k, v in recorded.items() if k.startswith("estimate-")]
    assert len(per_method) == 4
    assert first.timings["responses"] == pytest.approx(sum(per_method), rel=1e-12)
    # A combined responses file of the earlier stage cache (one file keyed on everything, with
    # the methods' dimension still named `method`) is not read: the estimates come from their
    # own files.
    old_key = _cache_key(TINY_OU, 2, "none", list(first.errors.index))
    stale = (first.responses * 0 + 7.0).rename(estimator="method")
    write_netcdf(stale, tmp_path / "ou" / f"responses-{old_key}.nc")
    old = run_pipeline(TINY_OU, seed=2, device="cpu", model=None, cache_dir=tmp_path)
    xr.testing.assert_identical(old.responses, first.responses)
    pd.testing.assert_frame_equal(old.errors, first.errors)
    # A file in an estimate's place that is not one is refused, not read as one.
    foreign = next((tmp_path / "ou").glob("estimate-gaussian-*"))
    write_netcdf(first.responses.sel(estimator="gaussian"), foreign)
    with pytest.raises(ValueError, match="^cache_dir: .*estimate-gaussian-.* not a cached"):
        run_pipeline(TINY_OU, seed=2, device="cpu", model=None, cache_dir=tmp_path)


def test_a_new_kick_reuses_the_cached_simulation_and_recomputes_the_perturbation(
    tmp_path, monkeypatch
):
    import gfdt_dash.pipeline as pipeline

    calls = []
    real_simulate = pipeline.simulate

    def counting_simulate(config, **kwargs):
        calls.append(config)
        return real_simulate(config, **kwargs)

    monkeypatch.setattr(pipeline, "simulate", counting_simulate)
    estimated = _count_estimates(monkeypatch)
    run = dict(seed=2, device="cpu", model=None, methods=["perturbation"], cache_dir=tmp_path)
    first = run_pipeline(TINY_OU, **run)
    assert len(calls) == 1
    kicked = TINY_OU.replace(delta=0.125)
    second = run_pipeline(kicked, **run)
    assert len(calls) == 1  # the simulation came from the cache
    assert json.loads(second.simulation.attrs["config"])["delta"] == 0.125
    # the perturbation was recomputed with the new kick: its attrs carry it, and OU is linear,
    # so the response itself agrees to rounding (float32 differences / δ)
    assert estimated == ["perturbation", "perturbation"]
    attrs = json.loads(second.responses.attrs["estimator_attrs"])["perturbation"]
    assert attrs["delta"] == 0.125
    np.testing.assert_allclose(
        second.responses["response"].values, first.responses["response"].values, atol=1e-3
    )
    names = sorted(p.name.split("-")[0] for p in (tmp_path / "ou").iterdir())
    assert names == ["estimate", "estimate", "simulation", "timings.json"]
    # A recorded-duration change re-simulates; the direct perturbation runs its own ensemble,
    # so it is reused, and its attrs name the config of this run.
    longer = TINY_OU.replace(record=40.0)
    third = run_pipeline(longer, **run)
    assert len(calls) == 2
    assert estimated == ["perturbation", "perturbation"]
    attrs = json.loads(third.responses.attrs["estimator_attrs"])["perturbation"]
    assert json.loads(attrs["config"])["record"] == 40.0
    xr.testing.assert_identical(
        third.responses, run_pipeline(longer, **{**run, "cache_dir": None}).responses
    )


def test_the_cost_limits_leave_out_what_the_cache_holds(tmp_path):
    """A run whose direct perturbation (or training) exceeds a limit is refused without a cache
    and accepted once that product is cached, with the same results; what is not cached (the
    simulation, here removed from the cache) still counts."""
    from gfdt_dash.score import ScoreNetConfig, TrainConfig

    simulation = job_cost(TINY_OU).member_steps
    perturbation = job_cost(TINY_OU, simulate=False, perturbation=True).member_steps
    # admits the simulation, not the simulation and the perturbation together
    limits = CLI_LIMITS.replace(max_member_steps=simulation + perturbation - 1)
    run = dict(seed=2, model=None, methods=["gaussian", "perturbation"])
    with pytest.raises(ValueError, match="^members × steps: .*direct perturbation"):
        run_pipeline(TINY_OU, **run, cache_dir=tmp_path, limits=limits)
    assert not (tmp_path / "ou").exists()  # refused before anything ran
    cost = pipeline_cost(TINY_OU, **run, cache_dir=tmp_path)
    assert cost.member_steps == simulation + perturbation
    first = run_pipeline(TINY_OU, **run, device="cpu", cache_dir=tmp_path)
    cost = pipeline_cost(TINY_OU, **run, cache_dir=tmp_path)
    assert cost.member_steps == 0
    assert cost.output_bytes == job_cost(TINY_OU).output_bytes  # the cached run is loaded
    # the same run with another seed is not cached
    assert pipeline_cost(TINY_OU, **{**run, "seed": 3}, cache_dir=tmp_path).member_steps == (
        simulation + perturbation
    )
    (simulation_file,) = (tmp_path / "ou").glob("simulation-*.nc")
    simulation_file.unlink()
    assert pipeline_cost(TINY_OU, **run, cache_dir=tmp_path).member_steps == simulation
    again = run_pipeline(TINY_OU, **run, device="cpu", cache_dir=tmp_path, limits=limits)
    xr.testing.assert_identical(again.responses, first.responses)
    with pytest.raises(ValueError, match="^members × steps: .*direct perturbation"):
        run_pipeline(TINY_OU, **run, limits=limits)  # without the cache

    # training: a cached trained model costs no optimiser steps
    trained = dict(
        seed=2,
        device="cpu",
        model="train",
        methods=["learned_score", "analytic"],
        net_config=ScoreNetConfig.preset("classroom", widths=(4, 8), embed_dim=8, groups=2),
        train_config=TrainConfig.preset("classroom", n_steps=2, batch_size=8),
        diagnose_model=False,
        cache_dir=tmp_path,
    )
    few = CLI_LIMITS.replace(max_train_steps=1)
    with pytest.raises(ValueError, match="^train_steps: this ou run needs 2 optimiser steps"):
        run_pipeline(TINY_OU, **trained, limits=few)
    model = run_pipeline(TINY_OU, **trained)
    again = run_pipeline(TINY_OU, **trained, limits=few)
    xr.testing.assert_identical(again.responses, model.responses)


def _count_estimates(monkeypatch) -> list[str]:
    """The methods whose estimates the pipeline computes from now on, in order."""
    import gfdt_dash.pipeline as pipeline

    estimated = []
    real_estimate = pipeline._estimate

    def counting_estimate(method, *args):
        estimated.append(method)
        return real_estimate(method, *args)

    monkeypatch.setattr(pipeline, "_estimate", counting_estimate)
    return estimated


def test_every_method_names_only_inputs_that_exist():
    for name, spec in ESTIMATORS.items():
        assert spec.reads, name
        for config_class in SYSTEMS.values():
            fields = set(config_class.field_specs())
            for item in spec.reads:
                assert item in RUN_INPUTS or item in config_class.GROUPS or item in fields, item
    config = TINY_OU
    assert estimate_inputs("learned_score", config, seed=0, frames="s") is None
    perturbation = estimate_inputs("perturbation", config, seed=3, frames="s")
    assert perturbation["seed"] == 3 and "frames" not in perturbation
    assert perturbation["experiment"] == config.group("experiment")
    assert "record" not in json.dumps(perturbation)


# One field of each config group (and each ensemble field), the seed, the score model and the
# list of methods, changed in turn from TINY_OU, and the methods whose estimates must be
# recomputed. The analytic response is of the equation (not of its integrator) at the frame
# lags; the direct perturbation runs its own ensemble (members spun up for `spinup`, seeded by
# the run's seed) and does not read the recorded run; the GFDT and Gaussian estimates read the
# recorded frames (not the training snapshots) and the lags, the learned one also the model.
# The model is trained on the run's snapshots unless a change says "checkpoint" (a file trained
# once, read by both runs).
GFDT = {"learned_score", "exact_score", "gaussian"}
CHANGES = [
    ("physics", {"config": {"kappa": 5e-3}}, GFDT | {"perturbation", "analytic"}),
    ("grid", {"config": {"dt": 1 / 4}}, GFDT | {"perturbation", "analytic"}),
    ("integrator", {"config": {"integrator": "rk4"}}, GFDT | {"perturbation"}),
    ("ensemble: record", {"config": {"record": 40.0}}, GFDT),
    ("ensemble: frame_members", {"config": {"frame_members": 4}}, GFDT),
    # the frames are the same (test_snapshots_alone_leave_the_recorded_frames_unchanged); only
    # the model trained on the snapshots changes, and with it the learned-score estimate
    ("ensemble: snapshot_every", {"config": {"snapshot_every": 2.0}}, {"learned_score"}),
    (
        "ensemble: snapshot_every, checkpoint",
        {"config": {"snapshot_every": 2.0}, "model": "checkpoint"},
        set(),
    ),
    ("ensemble: record, checkpoint", {"config": {"record": 40.0}, "model": "checkpoint"}, GFDT),
    ("ensemble: members", {"config": {"members": 4, "frame_members": 4}}, GFDT | {"perturbation"}),
    ("ensemble: spinup", {"config": {"spinup": 50.0}}, GFDT | {"perturbation"}),
    ("ensemble: frame_every", {"config": {"frame_every": 2.0}}, set(ESTIMATORS)),
    ("experiment: delta", {"config": {"delta": 0.125}}, {"perturbation"}),
    ("experiment: n_experiments", {"config": {"n_experiments": 32}}, {"perturbation"}),
    ("experiment: max_lag", {"config": {"max_lag": 4.0}}, set(ESTIMATORS)),
    ("seed", {"seed": 5}, GFDT | {"perturbation"}),
    ("score model", {"train_steps": 3}, {"learned_score"}),
    ("methods", {"methods": ["perturbation", "gaussian", "analytic"]}, set()),
]


@pytest.mark.parametrize(("what", "change", "recomputed"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_estimate_is_recomputed_exactly_when_what_it_reads_changes(
    what, change, recomputed, tmp_path, monkeypatch
):
    from gfdt_dash.score import ScoreNetConfig, TrainConfig, save_checkpoint

    net = ScoreNetConfig.preset("classroom", widths=(4, 8), embed_dim=8, groups=2)

    def run(cache_dir, config=TINY_OU, seed=2, train_steps=2, methods=None, model="train"):
        trains = model == "train"
        return run_pipeline(
            config,
            seed=seed,
            device="cpu",
            model=model,
            methods=methods,
            net_config=net if trains else None,
            train_config=(
                TrainConfig.preset("classroom", n_steps=train_steps, batch_size=8)
                if trains
                else None
            ),
            diagnose_model=False,
            cache_dir=cache_dir,
        )

    args = {k: v for k, v in change.items() if k != "config"}
    if args.get("model") == "checkpoint":
        args["model"] = tmp_path / "model.safetensors"
        save_checkpoint(run(None, methods=["analytic", "learned_score"]).model, args["model"])
    estimated = _count_estimates(monkeypatch)
    run(tmp_path / "cache", model=args.get("model", "train"))
    assert sorted(estimated) == sorted(ESTIMATORS)
    estimated.clear()
    config = TINY_OU.replace(**change.get("config", {}))
    cached = run(tmp_path / "cache", config, **args)
    assert set(estimated) == recomputed
    # every estimate, recomputed or read back, is what a run without a cache gives
    xr.testing.assert_identical(cached.responses, run(None, config, **args).responses)


@pytest.mark.parametrize("system", ["ou", "allen_cahn", "navier_stokes"])
def test_snapshots_alone_leave_the_recorded_frames_unchanged(system):
    """The frames key leaves out exactly SNAPSHOT_ONLY: changing the snapshot interval gives
    bit-identical frames, while the ensemble size (beyond the recorded members) changes them,
    as the noise of all members comes from one generator."""
    from gfdt_dash.pipeline import SIMULATION_GROUPS, SNAPSHOT_ONLY
    from gfdt_dash.systems import get_config, simulate

    assert SNAPSHOT_ONLY == ("snapshot_every",)
    small = dict(n=8, members=4, frame_members=2, spinup=1.0, record=4.0, snapshot_every=1.0)
    base = get_config(system, "classroom", **small, max_lag=1.0, restart_every=1.0)
    assert set(SNAPSHOT_ONLY) <= set(base.group(*SIMULATION_GROUPS))
    frames = simulate(base, seed=3, device="cpu")
    other = simulate(base.replace(snapshot_every=2.0), seed=3, device="cpu")
    assert other.sizes["snapshot_time"] != frames.sizes["snapshot_time"]
    xr.testing.assert_identical(other["field"], frames["field"])
    more = simulate(base.replace(members=6), seed=3, device="cpu")
    assert more["field"].shape == frames["field"].shape
    assert not np.array_equal(more["field"].values, frames["field"].values)


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
