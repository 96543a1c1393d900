"""The decisions between the pipeline's stages, shared by every front end.

:func:`gfdt_dash.pipeline.run_pipeline` (``gfdt-dash reproduce`` and ``scan``) and the dashboard's
stages (:mod:`gfdt_dash.ui.controller`) call these, so they pair models with data, size networks,
diagnose and score the same way:

- :func:`model_fits`: whether a score model was trained for a config's physical parameters
  (the sampling settings, :data:`SAMPLING_FIELDS`, do not change which model fits);
- :func:`choose_model`: the model in use if it fits, else the shipped one if it fits, else none
  (one must be trained, and the plan says why);
- :func:`score_net_for`: the network and training settings of a parameter preset;
- :func:`diagnose_model`: score diagnostics against the exact score where the system has one;
  :func:`stored_diagnostics`: a checkpoint's own diagnostics when the data are of the very
  config it was trained on;
- :func:`responses_and_errors` / :func:`errors_of`: every response method and the error table;
- :func:`reference_costs`: rates for job estimates from the shipped model's recorded timings.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from gfdt_dash.progress import ProgressCallback, StopCheck

__all__ = [
    "SAMPLING_FIELDS",
    "ModelPlan",
    "choose_model",
    "diagnose_model",
    "errors_of",
    "estimate_s",
    "model_fits",
    "read_model",
    "reference_costs",
    "responses_and_errors",
    "score_net_for",
    "score_net_name",
    "shipped_path",
    "stored_diagnostics",
]

log = logging.getLogger(__name__)

# Fields that set the stationary statistics a score model learns are all the others; these
# (ensemble size, record length, response settings) do not change which model fits the data.
SAMPLING_FIELDS = frozenset(
    {
        "members",
        "frame_members",
        "spinup",
        "record",
        "frame_every",
        "snapshot_every",
        "max_lag",
        "delta",
        "n_experiments",
        "restart_every",
    }
)


def _trained_config(model: Any) -> Any:
    """The system config ``model`` was trained on, ``None`` when it records none (user data)."""
    try:
        return model.system_config
    except (ValueError, TypeError):
        return None


def model_fits(
    model: Any,
    config: Any,
    *,
    label: Callable[[str], str] = str,
    fmt: Callable[[Any], str] = str,
) -> str:
    """How the data ``model`` was trained on differ from ``config`` ("" if it fits): the grid,
    or each physical parameter with the model's value and the current one (``label(name) =
    fmt(trained) (now fmt(current))``). A model without a recorded system config (user data) is
    taken to fit any config of its grid; ``None`` is ``"no model"``."""
    if model is None:
        return "no model"
    if int(model.n) != config.n:
        return f"a {model.n}×{model.n} grid (now {config.n}×{config.n})"
    trained = _trained_config(model)
    if trained is None:
        return ""
    if type(trained) is not type(config):
        return f"another system ({trained.system})"
    return ", ".join(
        f"{label(name)} = {fmt(getattr(trained, name))} (now {fmt(getattr(config, name))})"
        for name in type(config).field_specs()
        if name not in SAMPLING_FIELDS and getattr(trained, name) != getattr(config, name)
    )


def shipped_path(system: str) -> Path | None:
    """The shipped checkpoint of ``system``, ``None`` when it has none (or its file is missing)."""
    from gfdt_dash.score import shipped_model_path

    try:
        path = Path(shipped_model_path(system))
    except (FileNotFoundError, ValueError):
        return None
    return path if path.is_file() else None


def read_model(path: str | os.PathLike, config: Any, device: str = "auto") -> Any:
    """The checkpoint at ``path``, refused (``ValueError``) unless it is of ``config``'s system
    and grid."""
    from gfdt_dash.score import load_checkpoint

    return load_checkpoint(path, expect_system=config.system, expect_n=config.n, device=device)


@dataclass(frozen=True)
class ModelPlan:
    """What :func:`choose_model` decided: ``model`` to use (``None``: train one, ``reason`` says
    why), and ``path``, the checkpoint it was read from (``None`` for the model in use)."""

    model: Any
    path: Path | None
    reason: str = ""


def choose_model(
    config: Any,
    current: Any = None,
    *,
    shipped: str | os.PathLike | None = None,
    device: str = "auto",
    differences: Callable[[Any, Any], str] = model_fits,
) -> ModelPlan:
    """The score model for ``config``, never one made for other physical parameters: ``current``
    (the model in use) if it fits, else the checkpoint at ``shipped`` if it fits, else none (a
    model must be trained). ``differences`` (default :func:`model_fits`) words a mismatch."""
    if current is not None and not differences(current, config):
        return ModelPlan(current, None)
    try:
        if shipped is None:
            raise ValueError("there is no shipped model for this system")
        model = read_model(shipped, config, device)
        diff = differences(model, config)
        if diff:
            raise ValueError(f"the shipped model was trained for {diff}")
    except ValueError as exc:
        return ModelPlan(None, None, str(exc))
    return ModelPlan(model, Path(shipped))


def score_net_name(preset: str, device: str = "auto") -> str:
    """The score network preset for a parameter preset: ``classroom`` for anything but
    ``"paper"``; for ``"paper"`` the study-size U-Net ``paper`` on a GPU and ``cpu_paper`` (a
    smaller U-Net trainable at N = 32 in about a quarter of an hour of one CPU core) on a CPU."""
    from gfdt_dash.devices import resolve_device

    if preset != "paper":
        return "classroom"
    return "cpu_paper" if resolve_device(device).type == "cpu" else "paper"


def score_net_for(preset: str, n_steps: int | None = None, device: str = "auto") -> tuple[Any, Any]:
    """(network config, training config) for a parameter preset on ``device``
    (:func:`score_net_name`); ``n_steps`` overrides the preset's number of optimiser steps."""
    from gfdt_dash.score import ScoreNetConfig, TrainConfig

    size = score_net_name(preset, device)
    steps = {} if n_steps is None else {"n_steps": n_steps}
    return ScoreNetConfig.preset(size), TrainConfig.preset(size, **steps)


def stored_diagnostics(model: Any, config: Any) -> dict[str, Any] | None:
    """The diagnostics a checkpoint carries (computed on held-out data of its own training run),
    when the data at hand are of exactly the config its metadata records (sampling settings
    included): the same stationary law, so recomputing them on fewer samples would only add
    noise. ``None`` otherwise."""
    saved = (getattr(model, "metadata", None) or {}).get("diagnostics")
    if not saved or _trained_config(model) != config:
        return None
    return dict(saved)


def diagnose_model(
    model: Any,
    simulation: Any,
    config: Any,
    *,
    device: str = "auto",
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score diagnostics of ``model`` on ``simulation`` (:func:`gfdt_dash.score.diagnose`; its
    keyword arguments pass through), against the exact score where ``config``'s system has one
    (the system registry)."""
    from gfdt_dash.response import exact_score
    from gfdt_dash.response.methods import system_has
    from gfdt_dash.score import diagnose

    exact = exact_score(config, device=device) if system_has(config, "exact_score") else None
    return diagnose(
        model,
        simulation,
        exact,
        device=device,
        callback=callback,
        should_stop=should_stop,
        **kwargs,
    )


def errors_of(responses: xr.Dataset, config: Any) -> pd.DataFrame:
    """The error table (:func:`gfdt_dash.response.error_table`, indexed by ``estimator``) over
    lags up to ``config.max_lag`` (all lags for data without a config). The bound is widened by a
    relative 1e-9: lags are multiples of the frame interval in floating point, and the last one
    computed (``config.n_lags - 1`` frames) must count."""
    from gfdt_dash.response import error_table

    max_lag = None if config is None else config.max_lag * (1 + 1e-9)
    return error_table(responses, max_lag=max_lag)


def responses_and_errors(
    config: Any,
    simulation: xr.Dataset,
    model: Any = None,
    *,
    seed: int = 0,
    device: str = "auto",
    methods: Sequence[str] | None = None,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    **kwargs: Any,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Every response method for ``config`` on ``simulation`` (the learned score from ``model``
    if given; :func:`gfdt_dash.pipeline.compute_responses`) and their error table
    (:func:`errors_of`)."""
    from gfdt_dash.pipeline import compute_responses

    combined = compute_responses(
        config,
        simulation,
        score=model.score_fn(device) if model is not None else None,
        methods=methods,
        seed=seed,
        device=device,
        callback=callback,
        should_stop=should_stop,
        **kwargs,
    )
    return combined, errors_of(combined, config)


_COSTS: dict[str, tuple[float, float, Any] | None] = {}
_COSTS_LOCK = threading.Lock()


def reference_costs(system: str) -> tuple[float, float, Any] | None:
    """(simulation member-steps per second, seconds per training step, the shipped model) from
    the shipped model's provenance, read once per process; ``None`` without one."""
    with _COSTS_LOCK:
        if system in _COSTS:
            return _COSTS[system]
    from gfdt_dash import score

    costs = None
    try:
        model = score.load_checkpoint(score.shipped_model_path(system), device="cpu")
        made = model.metadata.get("provenance") or {}
        config = model.system_config
        members = int(made.get("simulation_members", config.members))
        ensemble = members * round((config.spinup + config.record) / config.dt)
        costs = (
            ensemble / float(made["simulate_s"]),
            float(made["train_s"]) / model.train_config.n_steps,
            model,
        )
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        log.info("no job estimates for %s: %s", system, exc)
    with _COSTS_LOCK:
        _COSTS[system] = costs
    return costs


def estimate_s(
    job: str, config: Any, *, train_steps: int, model: Any = None, simulated: bool = False
) -> float | None:
    """Rough seconds ``job`` (``"simulation"``, ``"training"``, ``"responses"`` or ``"run all"``)
    takes on one otherwise idle core, from the shipped model's recorded timings
    (:func:`reference_costs`); ``None`` without a shipped model or for another job.
    ``train_steps``: optimiser steps of a training; ``model``: the model in use (Run all trains
    only if neither it nor the shipped model fits, :func:`choose_model`); ``simulated``: the
    simulation is already at hand (free)."""
    from gfdt_dash.cost import job_cost

    ref = reference_costs(config.system)
    if ref is None:
        return None
    rate, per_train_step, shipped = ref
    ensemble = config.members * round((config.spinup + config.record) / config.dt)
    paired = job_cost(config, perturbation=True).member_steps - ensemble
    simulate = 0.0 if simulated else ensemble / rate
    train = per_train_step * train_steps
    responses = paired / rate
    if job == "run all":
        fits = any(m is not None and not model_fits(m, config) for m in (model, shipped))
        return simulate + (0.0 if fits else train) + responses
    return {"simulation": simulate, "training": train, "responses": responses}.get(job)
