"""One system end to end: simulate → score model → the four-way responses → errors.

Used by ``gfdt-dash reproduce`` and ``gfdt-dash scan``; each stage is also a function of its own.
With a ``cache_dir`` every stage's product is stored under a key of (config, seed, model choice)
and reused on the next call, so an interrupted run resumes at the first unfinished stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from gfdt_dash.cost import CostLimits, JobCost, job_cost
from gfdt_dash.data import atomic_write_bytes, open_dataset, write_netcdf
from gfdt_dash.devices import resolve_device
from gfdt_dash.progress import Progress, ProgressCallback, StopCheck
from gfdt_dash.seeds import check_seed, derived_seed
from gfdt_dash.systems import OUConfig, SystemConfig, simulate

__all__ = [
    "PipelineResult",
    "compute_responses",
    "default_methods",
    "obtain_model",
    "pipeline_cost",
    "run_pipeline",
]

log = logging.getLogger(__name__)

ModelChoice = Any  # "shipped" | "train" | a checkpoint path | a ScoreModel | None


def default_methods(config: SystemConfig | None, with_model: bool = True) -> tuple[str, ...]:
    """Every method that applies: ``config`` None means user data without a system config."""
    methods = ["learned_score"] if with_model else []
    if config is not None and config.system in ("ou", "allen_cahn"):
        methods.append("exact_score")
    methods.append("gaussian")
    if config is not None:
        methods.append("perturbation")
    if isinstance(config, OUConfig):
        methods.append("analytic")
    return tuple(methods)


def _staged(callback: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """Rename the stage of every report (so one callback can follow a whole pipeline)."""
    if callback is None:
        return None

    def relay(p: Progress) -> None:
        callback(Progress(stage, p.done, p.total, p.elapsed_s, p.eta_s, p.info))

    return relay


def obtain_model(
    choice: ModelChoice,
    config: SystemConfig,
    simulation: xr.Dataset,
    *,
    seed: int = 0,
    device: str = "auto",
    train_config: Any = None,
    net_config: Any = None,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
):
    """The score model: ``"shipped"``, ``"train"`` (on the simulation's snapshots, with
    ``net_config`` and ``train_config``; default the classroom presets), a checkpoint path, or a
    :class:`~gfdt_dash.score.ScoreModel` as is. ``None`` means no model."""
    from gfdt_dash.score import ScoreModel, load_checkpoint, load_shipped, train_score

    seed = check_seed(seed)
    if choice is None or isinstance(choice, ScoreModel):
        return choice
    if choice == "shipped":
        return load_shipped(config.system, device=device)
    if choice == "train":
        return train_score(
            simulation,
            system_config=config,
            net_config=net_config,
            train_config=train_config,
            seed=seed,
            device=device,
            callback=callback,
            should_stop=should_stop,
        )
    return load_checkpoint(choice, expect_system=config.system, expect_n=config.n, device=device)


def compute_responses(
    config: SystemConfig | None,
    simulation: xr.Dataset,
    *,
    score=None,
    methods: Sequence[str] | None = None,
    max_lag: int | None = None,
    seed: int = 0,
    device: str = "auto",
    limits: CostLimits | None = None,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> xr.Dataset:
    """Every requested response from ``simulation``, combined along ``method``.

    The one dispatcher from method names to estimators (the CLI, the dashboard and the pipeline
    all use it). ``config`` may be ``None`` for data that did not come from our simulators: then
    only ``gaussian`` and ``learned_score`` apply. ``score`` is the learned score callable.
    ``max_lag`` is in frames (default ``config.max_lag`` at the frame interval). The direct
    perturbation runs its own ensemble with the config's protocol and ``seed + 1`` (mod 2**63;
    independent of the simulation's noise). With ``limits`` the cost of that experiment is
    checked before anything runs (:mod:`gfdt_dash.cost`).
    """
    from gfdt_dash.response import (
        METHODS,
        analytic_response,
        combine,
        exact_score,
        gaussian_response,
        gfdt_response,
        perturbation_response,
    )

    methods = tuple(default_methods(config, score is not None) if methods is None else methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"methods: unknown method {method!r}; allowed: {', '.join(METHODS)}")
        if method == "learned_score" and score is None:
            raise ValueError("methods: 'learned_score' needs a score model")
        if config is None and method in ("exact_score", "perturbation", "analytic"):
            raise ValueError(f"methods: {method} needs the system config; the data have none")
    if max_lag is None:
        if config is None:
            raise ValueError("max_lag: required when the data carry no system config")
        max_lag = config.n_lags - 1
    seed = check_seed(seed)
    if limits is not None and "perturbation" in methods:
        limits.check(job_cost(config, simulate=False, perturbation=True), "perturbation experiment")
    common = dict(device=device, seed=seed, should_stop=should_stop)
    results = []
    for method in methods:
        cb = _staged(callback, method)
        if method in ("learned_score", "exact_score"):
            fn = score if method == "learned_score" else exact_score(config, device=device)
            results.append(
                gfdt_response(simulation, fn, max_lag, method=method, callback=cb, **common)
            )
        elif method == "gaussian":
            results.append(gaussian_response(simulation, max_lag, callback=cb, **common))
        elif method == "perturbation":
            results.append(
                perturbation_response(
                    config, **{**common, "seed": derived_seed(seed, 1)}, callback=cb
                )
            )
        else:
            results.append(analytic_response(config, config.frame_every * np.arange(max_lag + 1)))
    return combine(results)


@dataclass
class PipelineResult:
    """Everything one run of :func:`run_pipeline` produced."""

    config: SystemConfig
    seed: int
    device: str
    simulation: xr.Dataset
    responses: xr.Dataset
    errors: pd.DataFrame
    model: Any = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cpu_times: dict[str, float] = field(default_factory=dict)


def _cache_key(config: SystemConfig, seed: int, model: ModelChoice, training: Any = None) -> str:
    tag = model if isinstance(model, str | os.PathLike) else ("none" if model is None else "given")
    key = {"config": config.to_dict(), "seed": seed, "model": str(tag)}
    if training is not None:  # a trained model depends on its network and training configs
        key["training"] = training
    raw = json.dumps(key, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _stage(path: Path | None, compute, load=open_dataset, save=write_netcdf):
    """A pipeline stage with an optional on-disk cache: load ``path`` if it exists, else compute
    (and save there when a path is given; netCDF by default)."""
    if path is not None and path.is_file():
        return load(path)
    value = compute()
    if path is not None:
        save(value, path)
    return value


def pipeline_cost(
    config: SystemConfig,
    *,
    model: ModelChoice = "shipped",
    methods: Sequence[str] | None = None,
    train_config: Any = None,
) -> JobCost:
    """What :func:`run_pipeline` with these arguments will cost (:mod:`gfdt_dash.cost`): the
    simulation, the direct perturbation if it is among the methods, training if ``model`` is
    ``"train"`` (``train_config`` default: the classroom preset)."""
    methods = tuple(default_methods(config) if methods is None else methods)
    if model == "train" and train_config is None:
        from gfdt_dash.score import TrainConfig

        train_config = TrainConfig.preset("classroom")
    return job_cost(
        config,
        perturbation="perturbation" in methods,
        train_config=train_config if model == "train" else None,
    )


def run_pipeline(
    config: SystemConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    model: ModelChoice = "shipped",
    methods: Sequence[str] | None = None,
    train_config: Any = None,
    net_config: Any = None,
    diagnose_model: bool = True,
    cache_dir: str | os.PathLike | None = None,
    limits: CostLimits | None = None,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> PipelineResult:
    """Simulate, obtain the score model, compute every response and the error table.

    ``model``: ``"shipped"`` (the classroom checkpoint; grid must match), ``"train"``, a
    checkpoint path, a ScoreModel, or ``None`` (no learned-score method); ``"train"`` uses
    ``net_config`` and ``train_config`` (default: the classroom presets). Stage wall times are in
    ``timings`` and the process CPU times in ``cpu_times`` (seconds); with ``cache_dir`` finished
    stages are reused (the simulation and responses as netCDF, a trained model as a checkpoint,
    diagnostics as JSON), and so are the times recorded when they were computed
    (``timings.json``). The diagnostics are those of :func:`gfdt_dash.score.diagnose`: on the
    held-out snapshots when the model was trained on this simulation. With ``limits`` the whole
    job's cost (:func:`pipeline_cost`) is checked before anything runs.
    """
    from gfdt_dash.score import diagnose, load_checkpoint, save_checkpoint

    seed = check_seed(seed)
    methods = tuple(default_methods(config) if methods is None else methods)
    if model is None:
        methods = tuple(m for m in methods if m != "learned_score")
    if limits is not None:
        cost = pipeline_cost(config, model=model, methods=methods, train_config=train_config)
        limits.check(cost, f"{config.system} run")
    dev = str(resolve_device(device))
    folder = None
    training = None
    if model == "train":
        from gfdt_dash.score import ScoreNetConfig, TrainConfig

        net_config = net_config or ScoreNetConfig.preset("classroom")
        train_config = train_config or TrainConfig.preset("classroom")
        training = {"net": net_config.to_dict(), "train": train_config.to_dict()}
    if cache_dir is not None:
        folder = Path(cache_dir) / f"{config.system}-{_cache_key(config, seed, model, training)}"
        folder.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    cpu_times: dict[str, float] = {}
    recorded: dict[str, dict[str, float]] = {}
    if folder is not None and (folder / "timings.json").is_file():
        recorded = json.loads((folder / "timings.json").read_text())

    def cached(name: str) -> Path | None:
        return folder / name if folder is not None else None

    def timed(stage: str, product: str | None, t0: float, c0: float) -> None:
        """Record a stage's wall and CPU time; a stage whose product came from the cache keeps
        the times recorded when it was computed."""
        path = cached(product) if product is not None else None
        from_cache = path is not None and path.is_file() and path.stat().st_mtime < t_start
        if stage in recorded and from_cache:
            timings[stage], cpu_times[stage] = recorded[stage]["wall_s"], recorded[stage]["cpu_s"]
        else:
            timings[stage] = time.perf_counter() - t0
            cpu_times[stage] = time.process_time() - c0
            recorded[stage] = {"wall_s": timings[stage], "cpu_s": cpu_times[stage]}
            if folder is not None:
                atomic_write_bytes(folder / "timings.json", json.dumps(recorded).encode())

    t_start = time.time()
    t0, c0 = time.perf_counter(), time.process_time()
    simulation = _stage(
        cached("simulation.nc"),
        lambda: simulate(
            config,
            seed=seed,
            device=dev,
            callback=_staged(callback, "simulate"),
            should_stop=should_stop,
        ),
    )
    timed("simulate", "simulation.nc", t0, c0)

    t0, c0 = time.perf_counter(), time.process_time()
    score_model = None
    if model is not None:
        ckpt = cached("model.safetensors")
        if model == "train" and ckpt is not None and ckpt.is_file():
            score_model = load_checkpoint(
                ckpt, expect_system=config.system, expect_n=config.n, device=dev
            )
        else:
            score_model = obtain_model(
                model,
                config,
                simulation,
                seed=seed,
                device=dev,
                train_config=train_config,
                net_config=net_config,
                callback=_staged(callback, "train"),
                should_stop=should_stop,
            )
            if model == "train" and ckpt is not None:
                save_checkpoint(score_model, ckpt)
    timed("model", "model.safetensors" if model == "train" else None, t0, c0)

    t0, c0 = time.perf_counter(), time.process_time()
    responses = _stage(
        cached("responses.nc"),
        lambda: compute_responses(
            config,
            simulation,
            score=score_model.score_fn(dev) if score_model is not None else None,
            methods=methods,
            seed=seed,
            device=dev,
            callback=callback,
            should_stop=should_stop,
        ),
    )
    timed("responses", "responses.nc", t0, c0)

    diagnostics: dict[str, Any] = {}
    if score_model is not None and diagnose_model:
        t0, c0 = time.perf_counter(), time.process_time()
        from gfdt_dash.response import exact_score

        exact = exact_score(config, device=dev) if config.system != "navier_stokes" else None
        diagnostics = _stage(
            cached("diagnostics.json"),
            lambda: diagnose(
                score_model,
                simulation,
                exact,
                seed=seed,
                device=dev,
                callback=_staged(callback, "diagnose"),
                should_stop=should_stop,
            ),
            load=lambda path: json.loads(path.read_text()),
            save=lambda value, path: atomic_write_bytes(path, json.dumps(value).encode()),
        )
        timed("diagnose", "diagnostics.json", t0, c0)

    from gfdt_dash.response import error_table

    errors = error_table(responses, max_lag=config.max_lag)
    return PipelineResult(
        config=config,
        seed=seed,
        device=dev,
        simulation=simulation,
        responses=responses,
        errors=errors,
        model=score_model,
        diagnostics=diagnostics,
        timings=timings,
        cpu_times=cpu_times,
    )
