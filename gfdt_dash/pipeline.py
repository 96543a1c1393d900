"""One system end to end: simulate → score model → the four-way responses → errors.

Used by ``gfdt-dash reproduce`` and ``gfdt-dash scan``; each stage is also a function of its own.
With a ``cache_dir`` every stage's product is stored under a key of what it depends on (the
simulation: the config's physics, grid, integrator and ensemble, and the seed; the model and its
diagnostics: also the model choice; each method's response: what that estimate reads, its
``reads`` in :data:`gfdt_dash.response.methods.ESTIMATORS`) and reused on the next call, so an
interrupted run resumes at the first unfinished stage, a changed kick δ reuses the simulation,
the model, its diagnostics and the GFDT and Gaussian estimates, a changed interval of the
training snapshots reuses the estimates that read only the recorded frames (Gaussian, exact
score; the learned score too unless its model is trained on those snapshots), and a changed
recorded run, score model or list of methods reuses the direct-perturbation experiment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from gfdt_dash import stages
from gfdt_dash.cost import CostLimits, JobCost, job_cost
from gfdt_dash.data import atomic_write_bytes, open_dataset, write_netcdf
from gfdt_dash.devices import resolve_device
from gfdt_dash.progress import Progress, ProgressCallback, StopCheck
from gfdt_dash.response.methods import (
    ESTIMATORS,
    applicable_methods,
    check_methods,
    estimate_inputs,
    missing_requirement,
)
from gfdt_dash.seeds import check_seed
from gfdt_dash.systems import SystemConfig, simulate
from gfdt_dash.validation import is_integer

__all__ = [
    "PipelineResult",
    "compute_responses",
    "default_methods",
    "obtain_model",
    "pipeline_cost",
    "run_pipeline",
]

log = logging.getLogger(__name__)

ModelChoice = Any  # "shipped" | "train" | "auto" | a checkpoint path | a ScoreModel | None


def default_methods(config: SystemConfig | None, with_model: bool = True) -> tuple[str, ...]:
    """Every method that applies: ``config`` None means user data without a system config."""
    return applicable_methods(config, with_model)


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
    ``net_config`` and ``train_config``; default the classroom network,
    :func:`~gfdt_dash.stages.score_net_for`), ``"auto"`` (the shipped model if it was trained for
    these physical parameters, else train, as the dashboard's Run all does:
    :func:`~gfdt_dash.stages.choose_model`), a checkpoint path, or a
    :class:`~gfdt_dash.score.ScoreModel` as is. ``None`` means no model."""
    from gfdt_dash.score import ScoreModel, load_checkpoint, load_shipped, train_score

    seed = check_seed(seed)
    if choice is None or isinstance(choice, ScoreModel):
        return choice
    if choice == "shipped":
        model = load_shipped(config.system, device=device)
        if model.n != config.n:
            raise ValueError(
                f"model: the shipped {config.system} model is for a {model.n}×{model.n} grid, "
                f"not n={config.n}; train one (model='train') or use n={model.n}"
            )
        return model
    if choice == "auto":
        plan = stages.choose_model(
            config, shipped=stages.shipped_path(config.system), device=device
        )
        if plan.model is not None:
            return plan.model
        log.info("%s: training a score model (%s)", config.system, plan.reason)
        choice = "train"
    if choice == "train":
        default_net, default_train = stages.score_net_for("classroom")
        return train_score(
            simulation,
            system_config=config,
            net_config=net_config or default_net,
            train_config=train_config or default_train,
            seed=seed,
            device=device,
            callback=callback,
            should_stop=should_stop,
        )
    return load_checkpoint(choice, expect_system=config.system, expect_n=config.n, device=device)


def _checked_request(
    config: SystemConfig | None,
    methods: Sequence[str] | None,
    with_score: bool,
    max_lag: int | None,
) -> tuple[tuple[str, ...], int]:
    """The methods (default: every one that applies) and ``max_lag`` in frames of a responses
    request, each refused (``ValueError`` naming it) when it cannot run."""
    if methods is None:
        methods = default_methods(config, with_score)
    elif isinstance(methods, str):
        raise ValueError(f"methods: must be a sequence of method names, got the text {methods!r}")
    methods = check_methods(methods)
    for method in methods:
        why = missing_requirement(method, config, with_score)
        if why is not None:
            raise ValueError(f"methods: {method!r} {why}")
    if max_lag is None:
        if config is None:
            raise ValueError("max_lag: required when the data carry no system config")
        max_lag = config.n_lags - 1
    recorded = [m for m in methods if "frames" in ESTIMATORS[m].reads]
    if config is not None and recorded and is_integer(max_lag) and max_lag >= config.n_frames:
        # refused before the simulation runs, not after
        raise ValueError(
            f"max_lag: {max_lag} frames needs a record longer than the config's "
            f"{config.n_frames} frames ({', '.join(recorded)} estimate from the record); "
            "raise record or lower max_lag"
        )
    return methods, max_lag


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
    """Every requested response from ``simulation``, combined along ``estimator``.

    The one dispatcher from method names to estimators (the CLI, the dashboard and the pipeline
    all use it), through :data:`gfdt_dash.response.methods.ESTIMATORS`. ``config`` may be
    ``None`` for data that did not come from our simulators: then only ``gaussian`` and
    ``learned_score`` apply. ``score`` is the learned score callable. A method that is unknown,
    or whose requirements the arguments do not meet, is refused (``ValueError`` naming
    ``methods``) before anything runs.
    ``max_lag`` is in frames (default ``config.max_lag`` at the frame interval). The direct
    perturbation runs its own ensemble with the config's protocol and ``seed + 1`` (mod 2**63;
    independent of the simulation's noise). With ``limits`` the cost of that experiment is
    checked before anything runs (:mod:`gfdt_dash.cost`).
    """
    from gfdt_dash.response import combine

    if config is not None and not isinstance(config, SystemConfig):
        raise TypeError(f"config: expected a SystemConfig or None, got {type(config).__name__}")
    methods, max_lag = _checked_request(config, methods, score is not None, max_lag)
    if not isinstance(simulation, xr.Dataset | xr.DataArray):
        raise TypeError(
            f"simulation: expected an xarray Dataset with a 'field' variable, got "
            f"{type(simulation).__name__}"
        )
    field = simulation
    if isinstance(simulation, xr.Dataset) and "field" in simulation:
        field = simulation["field"]
    if config is not None and field.sizes.get("x") not in (None, config.n):
        raise ValueError(
            f"config: n={config.n}, but the simulation's field is on a "
            f"{field.sizes.get('y')}×{field.sizes['x']} grid"
        )
    seed = check_seed(seed)
    if limits is not None and "perturbation" in methods:
        limits.check(job_cost(config, simulate=False, perturbation=True), "perturbation experiment")
    return combine(
        [
            _estimate(
                method, config, simulation, score, max_lag, seed, device, callback, should_stop
            )
            for method in methods
        ]
    )


def _estimate(method, config, simulation, score, max_lag, seed, device, callback, should_stop):
    """One method's result (the common layout), its progress reported as stage ``method``."""
    return ESTIMATORS[method].estimate(
        config,
        simulation,
        score=score,
        max_lag=max_lag,
        seed=seed,
        device=device,
        callback=_staged(callback, method),
        should_stop=should_stop,
    )


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


# What the simulation reads of a config; each response method's reads are in its table entry.
SIMULATION_GROUPS = ("physics", "grid", "integrator", "ensemble")

# Fields the simulation reads that leave its recorded frames (``field``, which the GFDT and
# Gaussian estimates read) unchanged. The frames are the states of members 0…frame_members−1 at
# times spinup + frame_every·(1…n_frames), n_frames = record/frame_every, of one ensemble
# stepped together with one random generator, so they depend on
# - every physics field (the equation), n and dt (the grid and the discrete trajectory) and every
#   integrator field (the scheme, e.g. Navier–Stokes' advection form, dealiasing, stepper);
# - members: each step draws the noise (and Navier–Stokes' forcing phases) of all members from
#   that one generator, so a member's noise depends on how many are drawn;
# - frame_members, spinup, record and frame_every: which members and times are kept;
# - the seed.
# snapshot_every only chooses which states are also copied into the training snapshots:
# observing a state neither advances it nor draws noise, so the frames are bit-identical
# (tests/test_pipeline.py checks it, and the effect of members, for each built-in system). Every
# other field of those groups (a plug-in system's own) is taken to change the frames.
SNAPSHOT_ONLY = ("snapshot_every",)


def _check_model_args(model: Any, train_config: Any, net_config: Any, limits: Any) -> None:
    """``TypeError``/``ValueError`` naming ``model``, ``train_config``, ``net_config`` or
    ``limits`` when one is of a kind :func:`run_pipeline` cannot use."""
    from gfdt_dash.score import ScoreModel, ScoreNetConfig, TrainConfig

    if model is not None and not isinstance(model, ScoreModel | str | os.PathLike):
        raise TypeError(
            "model: expected 'shipped', 'train', 'auto', a checkpoint path, a ScoreModel or "
            f"None, got {type(model).__name__}"
        )
    named = isinstance(model, str) and model in ("shipped", "train", "auto")
    if isinstance(model, str) and not named and (not model.strip() or not Path(model).is_file()):
        raise ValueError(
            f"model: {model!r} is neither 'shipped', 'train' nor 'auto', nor a checkpoint file"
        )
    for name, value, kind in (
        ("train_config", train_config, TrainConfig),
        ("net_config", net_config, ScoreNetConfig),
        ("limits", limits, CostLimits),
    ):
        if value is not None and not isinstance(value, kind):
            raise TypeError(
                f"{name}: expected a {kind.__name__} or None, got {type(value).__name__}"
            )


def _model_tag(
    model: ModelChoice, config: SystemConfig, train_config: Any, net_config: Any = None
) -> Any:
    """What identifies the score model in a cache key (a checkpoint by its bytes, a trained one by
    its training settings); ``None`` when it cannot be identified (a model object, a missing
    file), so that nothing depending on it is cached."""
    if model is None:
        return "none"
    if model == "train":
        return {
            "train": None if train_config is None else train_config.to_dict(),
            "net": None if net_config is None else net_config.to_dict(),
        }
    if isinstance(model, str | os.PathLike):
        from gfdt_dash.score import shipped_model_path

        path = Path(shipped_model_path(config.system) if model == "shipped" else model)
        if path.is_file():
            return {"checkpoint": hashlib.sha256(path.read_bytes()).hexdigest()}
    return None


def _cache_key(config: SystemConfig, seed: int, *parts: Any, groups: Sequence[str] = ()) -> str:
    """Key of a stage's product: the config's fields in ``groups`` (all when empty), the seed
    and whatever else the stage depends on (``parts``)."""
    return _digest([config.key(*groups), seed, *parts])


def _digest(value: Any) -> str:
    """A short stable hash of a JSON-able ``value`` (others by their text): a cache file's key."""
    raw = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A numpy scalar or array as the Python value JSON can hold; anything else as its text
    (as :func:`~gfdt_dash.response.combine` keeps attrs)."""
    return value.tolist() if isinstance(value, np.generic | np.ndarray) else str(value)


def _plain_attrs(result: xr.Dataset) -> xr.Dataset:
    """``result`` with its attrs as they read back from a cached estimate (JSON values), so that
    a fresh estimate and a cached one combine to the same dataset."""
    result.attrs = json.loads(json.dumps(result.attrs, default=_plain))
    return result


# A cached estimate keeps its attrs as one JSON text (netCDF attributes hold only text and
# numbers), read back as they were.
_ESTIMATE_ATTRS = "estimate_attrs"


def _save_estimate(result: xr.Dataset, path: Path) -> None:
    stored = result.copy()
    stored.attrs = {_ESTIMATE_ATTRS: json.dumps(result.attrs, default=_plain)}
    write_netcdf(stored, path)


def _is_cached(path: Path | None) -> bool:
    """Whether the product at ``path`` (a cache file, or ``None``: not cached) is there to be read
    back instead of computed: the one test of the pipeline and of its cost estimate."""
    return path is not None and path.is_file() and os.access(path, os.R_OK)


def _train_defaults(model: ModelChoice, train_config: Any, net_config: Any) -> tuple[Any, Any]:
    """``train_config`` and ``net_config`` with the defaults spelled out when ``model`` is
    ``"train"`` (a trained model is keyed on them), as given otherwise."""
    if model != "train":
        return train_config, net_config
    default_net, default_train = stages.score_net_for("classroom")
    return train_config or default_train, net_config or default_net


@dataclass(frozen=True)
class _Cache:
    """Where one run's products are cached (``folder``; ``None``: nowhere, every path ``None``),
    each under a key of what it depends on: the one place that names a cache file, for
    :func:`run_pipeline`, which reads and writes them, and :func:`pipeline_cost`, which leaves
    out the work of those already there.

    The simulation is keyed on its config groups and the seed (so a new kick δ reuses it), the
    model and its diagnostics (on the simulated data) also on the model's identity ``tag``
    (:func:`_model_tag`; ``None``: nothing that depends on the model is cached), each method's
    estimate on what it reads (its table entry, :func:`estimate_inputs`): the recorded frames by
    the fields that determine them (all the simulation's but :data:`SNAPSHOT_ONLY`) and the
    seed; a model trained here (``trained``) by its own key, which includes the snapshots it
    was trained on, a checkpoint by its bytes.
    """

    folder: Path | None
    config: SystemConfig
    seed: int
    tag: Any
    trained: bool = False

    @classmethod
    def of(
        cls,
        config: SystemConfig,
        seed: int,
        model: ModelChoice,
        train_config: Any,
        net_config: Any,
        cache_dir: str | os.PathLike | None,
    ) -> _Cache:
        """The cache of a run with these arguments (``train_config`` and ``net_config`` with
        their defaults spelled out, :func:`_train_defaults`)."""
        if cache_dir is None:  # nothing is cached: the model need not be identified
            return cls(None, config, seed, None)
        tag = _model_tag(model, config, train_config, net_config)
        return cls(Path(cache_dir) / config.system, config, seed, tag, model == "train")

    def key(self, stage: str) -> str:
        """The key of ``stage``: ``"simulation"``, ``"model"`` or ``"diagnostics"``."""
        parts = () if stage == "simulation" else (self.tag,)
        return _cache_key(self.config, self.seed, *parts, groups=SIMULATION_GROUPS)

    def frames_key(self) -> str:
        """The key of the recorded frames: the seed and the fields that determine them."""
        fields = self.config.group(*SIMULATION_GROUPS)
        kept = {name: value for name, value in fields.items() if name not in SNAPSHOT_ONLY}
        return _digest([self.config.system, kept, self.seed])

    def path(self, stage: str) -> Path | None:
        """The file of ``stage`` (``"simulation"``, ``"model"`` or ``"diagnostics"``)."""
        if self.folder is None or (stage != "simulation" and self.tag is None):
            return None
        suffix = {"simulation": ".nc", "model": ".safetensors", "diagnostics": ".json"}[stage]
        return self.folder / f"{stage}-{self.key(stage)}{suffix}"

    def estimate(self, method: str) -> Path | None:
        """The file of ``method``'s estimate, keyed on everything it reads; ``None`` also when an
        input it reads cannot be identified (a model object)."""
        score_model = self.key("model") if self.trained and self.tag is not None else self.tag
        inputs = estimate_inputs(
            method, self.config, seed=self.seed, frames=self.frames_key(), score_model=score_model
        )
        if self.folder is None or inputs is None:
            return None
        return self.folder / f"estimate-{method}-{_digest(inputs)}.nc"


def _stage(path: Path | None, compute, load=open_dataset, save=write_netcdf):
    """A pipeline stage with an optional on-disk cache: load ``path`` if it is there
    (:func:`_is_cached`), else compute (and save there when a path is given; netCDF by
    default)."""
    if _is_cached(path):
        try:
            return load(path)
        except (OSError, ValueError) as exc:  # a product of this cache cannot be half-written
            msg = str(exc)
            if msg.startswith("cache_dir: "):
                raise
            raise ValueError(
                f"cache_dir: {str(path)!r} cannot be read back ({msg}); remove it to recompute"
            ) from exc
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
    net_config: Any = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> JobCost:
    """What :func:`run_pipeline` with these arguments will cost (:mod:`gfdt_dash.cost`): the
    simulation, the direct perturbation if it is among the methods, training if ``model`` is
    ``"train"`` (``train_config`` default: the classroom preset).

    With ``cache_dir`` a product the run will read back from the cache instead of computing
    (the same files :func:`run_pipeline` looks for) costs nothing: the simulation's
    member-steps, the direct perturbation's when its estimate is cached, training when the
    trained model is. A cached simulation is still loaded, so its recorded frames and
    snapshots (``output_bytes``) count all the same.
    """
    methods = tuple(default_methods(config) if methods is None else methods)
    train_config, net_config = _train_defaults(model, train_config, net_config)
    cache = _Cache.of(config, check_seed(seed), model, train_config, net_config, cache_dir)
    return _cost(cache, model, methods, train_config)


def _cost(cache: _Cache, model: ModelChoice, methods: Sequence[str], train_config: Any) -> JobCost:
    """:func:`pipeline_cost` of a run of ``cache.config`` whose products are cached in
    ``cache`` (``train_config`` with its defaults spelled out, :func:`_train_defaults`)."""
    config = cache.config
    trains = model == "train" and not _is_cached(cache.path("model"))
    if model == "auto":  # trains unless the shipped model fits; a model it trains is not cached
        fits = stages.choose_model(
            config, shipped=stages.shipped_path(config.system), device="cpu"
        ).model
        trains = fits is None
        if trains and train_config is None:
            train_config = stages.score_net_for("classroom")[1]
    cost = job_cost(
        config,
        perturbation="perturbation" in methods and not _is_cached(cache.estimate("perturbation")),
        train_config=train_config if trains else None,
    )
    if _is_cached(cache.path("simulation")):
        cost = replace(cost, simulate_member_steps=0)
    return cost


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
    ``timings`` and the process CPU times in ``cpu_times`` (seconds; the responses stage's are the
    sums of its methods'); with ``cache_dir`` finished stages are reused, each keyed on what it
    depends on (the simulation as netCDF, a trained model as a checkpoint, diagnostics as JSON, in
    ``<cache_dir>/<system>/<stage>-<key>``; each method's estimate as netCDF,
    ``estimate-<method>-<key>.nc``, keyed on what it reads,
    :func:`gfdt_dash.response.methods.estimate_inputs`; nothing that depends on a ScoreModel
    object is cached, as it has no key), and so are the times recorded when they were computed
    (``timings.json`` beside them, by file name). The diagnostics are those of
    :func:`gfdt_dash.stages.diagnose_model`: on the held-out snapshots when the model was trained
    on this simulation. With ``limits`` the whole job's cost (:func:`pipeline_cost`) is checked
    before anything runs.
    """
    from gfdt_dash.response import combine
    from gfdt_dash.score import load_checkpoint, save_checkpoint

    if not isinstance(config, SystemConfig):
        raise TypeError(f"config: expected a SystemConfig, got {type(config).__name__}")
    seed = check_seed(seed)
    _check_model_args(model, train_config, net_config, limits)
    methods = check_methods(default_methods(config) if methods is None else methods)
    if model is None:
        methods = tuple(m for m in methods if not ESTIMATORS[m].needs_score_model)
        if not methods:
            raise ValueError("methods: every method asked for needs a score model, and model=None")
    methods, max_lag = _checked_request(config, methods, model is not None, None)
    train_config, net_config = _train_defaults(model, train_config, net_config)
    cache = _Cache.of(config, seed, model, train_config, net_config, cache_dir)
    if limits is not None:
        limits.check(_cost(cache, model, methods, train_config), f"{config.system} run")
    dev = str(resolve_device(device))
    folder = cache.folder
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"cache_dir: cannot make the folder {str(folder)!r} ({exc.strerror or exc})"
            ) from None
    timings: dict[str, float] = {}
    cpu_times: dict[str, float] = {}
    recorded: dict[str, dict[str, float]] = {}
    if folder is not None and (folder / "timings.json").is_file():
        try:
            recorded = json.loads((folder / "timings.json").read_text())
        except (OSError, ValueError):  # unreadable: the times are recorded afresh
            recorded = {}
        if not isinstance(recorded, dict):
            recorded = {}

    def load_simulation(path: Path) -> xr.Dataset:
        ds = open_dataset(path)
        # the same data as this config's run would give; the attrs name this config
        ds.attrs["config"] = config.to_json()
        return ds

    def measured(path: Path | None, t0: float, c0: float) -> tuple[float, float]:
        """Wall and CPU seconds of a product (``path``) since ``t0``, ``c0``; one that came
        from the cache keeps the times recorded when it was computed (``timings.json``, by file
        name)."""
        from_cache = _is_cached(path) and path.stat().st_mtime < t_start
        if from_cache and path.name in recorded:
            return recorded[path.name]["wall_s"], recorded[path.name]["cpu_s"]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if path is not None and folder is not None:
            recorded[path.name] = {"wall_s": wall, "cpu_s": cpu}
            atomic_write_bytes(folder / "timings.json", json.dumps(recorded).encode())
        return wall, cpu

    def timed(stage: str, path: Path | None, t0: float, c0: float) -> None:
        timings[stage], cpu_times[stage] = measured(path, t0, c0)

    def load_estimate(path: Path) -> xr.Dataset:
        ds = open_dataset(path)
        if _ESTIMATE_ATTRS not in ds.attrs:
            raise ValueError(f"cache_dir: {str(path)!r} is not a cached estimate; remove it")
        ds.attrs = json.loads(ds.attrs[_ESTIMATE_ATTRS])
        if "config" in ds.attrs:  # the same estimate as this config's run would give
            ds.attrs["config"] = config.to_json()
        return ds

    preloaded = None
    if isinstance(model, str | os.PathLike) and model not in ("train", "auto"):
        # a checkpoint (the shipped one or a file) is read, and checked against this config's
        # system and grid, before anything is simulated
        t0, c0 = time.perf_counter(), time.process_time()
        preloaded = obtain_model(model, config, None, seed=seed, device=dev)
        timed("model", None, t0, c0)

    t_start = time.time()
    t0, c0 = time.perf_counter(), time.process_time()
    simulation = _stage(
        cache.path("simulation"),
        lambda: simulate(
            config,
            seed=seed,
            device=dev,
            callback=_staged(callback, "simulate"),
            should_stop=should_stop,
        ),
        load=load_simulation,
    )
    timed("simulate", cache.path("simulation"), t0, c0)

    t0, c0 = time.perf_counter(), time.process_time()
    score_model = preloaded
    if preloaded is None and model is not None:
        ckpt = cache.path("model")
        if model == "train" and _is_cached(ckpt):
            score_model = load_checkpoint(
                ckpt, expect_system=config.system, expect_n=config.n, device=dev, name="cache_dir"
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
    if preloaded is None:
        timed("model", ckpt if model == "train" else None, t0, c0)

    # The responses stage's times are the sums of its methods' (each measured, or recorded
    # when its cached estimate was computed).
    score = score_model.score_fn(dev) if score_model is not None else None
    results = []
    timings["responses"] = cpu_times["responses"] = 0.0
    for method in methods:
        t0, c0 = time.perf_counter(), time.process_time()
        path = cache.estimate(method)
        results.append(
            _stage(
                path,
                lambda m=method: _plain_attrs(
                    _estimate(
                        m, config, simulation, score, max_lag, seed, dev, callback, should_stop
                    )
                ),
                load=load_estimate,
                save=_save_estimate,
            )
        )
        wall, cpu = measured(path, t0, c0)
        timings["responses"] += wall
        cpu_times["responses"] += cpu
    responses = combine(results)

    diagnostics: dict[str, Any] = {}
    if score_model is not None and diagnose_model:
        t0, c0 = time.perf_counter(), time.process_time()
        diagnostics = _stage(
            cache.path("diagnostics"),
            lambda: stages.diagnose_model(
                score_model,
                simulation,
                config,
                seed=seed,
                device=dev,
                callback=_staged(callback, "diagnose"),
                should_stop=should_stop,
            ),
            load=lambda path: json.loads(path.read_text()),
            save=lambda value, path: atomic_write_bytes(path, json.dumps(value).encode()),
        )
        timed("diagnose", cache.path("diagnostics"), t0, c0)

    errors = stages.errors_of(responses, config)
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
