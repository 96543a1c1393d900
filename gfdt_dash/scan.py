"""Parameter scans on Dask: every cell runs the pipeline; results append to one dataset on disk.

A scan spec (TOML, or the same dict in Python)::

    system = "allen_cahn"
    preset = "classroom"
    seeds = [0, 1]
    model = "train"            # or "shipped" (grid must match) or none
    methods = ["learned_score", "exact_score", "gaussian", "perturbation"]
    [params]
    lam = [500.0, 1000.0, 2000.0]
    [fixed]                    # optional overrides for every cell
    record = 200.0
    [train]                    # optional TrainConfig overrides
    n_steps = 1500

``system`` may be a plug-in system (:mod:`gfdt_dash.systems.registry`): load its file with
``gfdt-dash scan --plugin PATH``, or name it in the spec, ``plugins = ["my_system.py"]`` (paths
relative to the spec's folder). Every Dask worker loads the same files before its cells.

Each finished cell is written atomically to ``<out>/cells/<cell-id>.nc`` (its error table and
response curves at the kicked pixel and 3 cells downstream, along an ``estimator`` dimension);
``<out>/scan.nc`` collects all finished cells and is rewritten atomically after each one. A cell
whose file exists is skipped, so a scan that crashed or was stopped resumes where it left off,
losing nothing finished. Cells and scans written with the older ``method`` dimension are read
in today's layout (:func:`gfdt_dash.data.open_dataset`).

The whole spec is validated before any cluster starts: the type of every table and value,
unknown keys in every section, every cell's config and training config, the seeds
(``0 <= seed < 2**63``; ``seed`` is not a parameter), at most :data:`MAX_CELLS` cells, and, with
``limits``, the summed cost of the unfinished cells (:mod:`gfdt_dash.cost`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import socket
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from gfdt_dash.cost import CostLimits, JobCost
from gfdt_dash.data import open_dataset, write_netcdf
from gfdt_dash.progress import Cancelled, StopCheck
from gfdt_dash.seeds import check_seed
from gfdt_dash.systems import get_config, load_plugins
from gfdt_dash.validation import is_integer

__all__ = [
    "MAX_CELLS",
    "ScanSpec",
    "collect",
    "results_table",
    "run_cell",
    "run_scan",
    "unfinished_cells",
]

log = logging.getLogger(__name__)
N_DOWN = 4
MAX_CELLS = 10_000  # parameter combinations × seeds in one scan
_SCALAR = (bool, int, float, str)
_CONNECT_TIMEOUT_S = 5.0
# Local worker processes and torch threads per worker at most: 4 processes per core buy nothing
# more on a local cluster, and a typo (--workers 100000) must not start thousands of processes.
MAX_LOCAL_WORKERS = 4 * (os.cpu_count() or 1)
MAX_THREADS = 1024


def _table(d: dict[str, Any], name: str, optional: bool = True) -> dict[str, Any]:
    value = d.get(name)
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name}: must be a table of NAME = VALUE, got {value!r:.60}")
    for key, v in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{name}: keys must be names, got {key!r}")
        if name != "params" and not isinstance(v, _SCALAR):
            raise ValueError(
                f"{name}.{key}: must be a number, true/false or a string, got {v!r:.60}"
            )
    return value


def _check_cells(configs: list[Any], model: str | None, methods: list[str] | None) -> None:
    """Refuse a method no cell can run (one needing a model when ``model`` is none, an exact
    score or analytic response the system lacks) and a shipped model on another grid."""
    from gfdt_dash.response.methods import missing_requirement

    for method in methods or ():
        why = missing_requirement(method, configs[0], model is not None)
        if why is not None:
            raise ValueError(f"methods: {method!r} {why}")
    if model == "shipped":
        from gfdt_dash.systems import system_spec

        if system_spec(configs[0]).shipped_model is None:
            raise ValueError(f"model: no shipped model for {configs[0].system}; use \"train\"")
        shipped_n = get_config(configs[0].system, "classroom").n
        for config in configs:
            if config.n != shipped_n:
                raise ValueError(
                    f"n: the shipped {config.system} model is for n={shipped_n}, a cell has "
                    f"n={config.n}; use model = \"train\" or n = {shipped_n}"
                )


@dataclass(frozen=True)
class ScanSpec:
    """A validated scan: the grid of parameter values × seeds of one system."""

    system: str
    preset: str
    params: dict[str, list[Any]]
    seeds: tuple[int, ...] = (0,)
    model: str | None = "train"
    methods: tuple[str, ...] | None = None
    fixed: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    plugins: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanSpec:
        """A validated spec; ``ValueError`` names the first bad field (``section.key``)."""
        from gfdt_dash.response.methods import check_methods
        from gfdt_dash.score import TrainConfig

        if not isinstance(d, dict):
            raise ValueError(f"spec: must be a table of scan fields, got {type(d).__name__}")
        known = {
            "system",
            "preset",
            "params",
            "seeds",
            "model",
            "methods",
            "fixed",
            "train",
            "plugins",
        }
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a scan field; allowed: {', '.join(sorted(known))}")
        plugins = d.get("plugins", [])
        if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
            raise ValueError(f"plugins: must be a list of file paths, got {plugins!r:.60}")
        try:
            load_plugins(plugins)
        except ValueError as exc:
            raise ValueError(f"plugins: {exc}") from None
        if "system" not in d:
            raise ValueError("system: a scan needs a system")
        for name in ("system", "preset"):
            if name in d and not isinstance(d[name], str):
                raise ValueError(f"{name}: must be a string, got {d[name]!r:.60}")
        params = _table(d, "params", optional=False)
        if not params:
            raise ValueError("params: give at least one parameter with a list of values")
        for name, values in params.items():
            if name in ("seed", "seeds"):
                raise ValueError(f"params.{name}: seeds are not a parameter; use seeds = [...]")
            if not isinstance(values, list) or not values:
                raise ValueError(f"params.{name}: must be a non-empty list of values")
            for v in values:
                if not isinstance(v, _SCALAR):
                    raise ValueError(
                        f"params.{name}: values must be numbers, true/false or strings, "
                        f"got {v!r:.60}"
                    )
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:  # two cells of one config would compute the same thing twice
                raise ValueError(f"params.{name}: repeated values {', '.join(repeated)}")
        seeds = d.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds:
            raise ValueError("seeds: must be a non-empty list of integers")
        seeds = [check_seed(s, "seeds") for s in seeds]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: repeated values in {seeds}")
        n_cells = math.prod(len(v) for v in params.values()) * len(seeds)
        if n_cells > MAX_CELLS:
            raise ValueError(
                f"params: {n_cells:,} cells (values × seeds); a scan may have at most "
                f"{MAX_CELLS:,} — split it into several scans"
            )
        model = d.get("model", "train")
        model = None if model in (None, "none") else model
        if model not in (None, "train", "shipped"):
            raise ValueError(f"model: {model!r} not allowed; allowed: train, shipped, none")
        methods = d.get("methods")
        if methods is not None:
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                raise ValueError(f"methods: must be a list of method names, got {methods!r:.60}")
            if not methods:  # leave the field out to run every method that applies
                raise ValueError("methods: give at least one method name")
            check_methods(methods)
        fixed = _table(d, "fixed")
        for name in ("seed", "seeds"):
            if name in fixed:
                raise ValueError(f"fixed.{name}: seeds are not a parameter; use seeds = [...]")
        for name in fixed:
            if name in params:
                raise ValueError(
                    f"fixed.{name}: also scanned in params; give it in one of the two tables"
                )
        train = _table(d, "train")
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        for key in train:
            if key not in names:
                raise ValueError(
                    f"train.{key}: not a training parameter; allowed: {', '.join(sorted(names))}"
                )
        try:
            TrainConfig.preset("classroom", **train)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"train.{exc}") from None
        spec = cls(
            system=d["system"],
            preset=d.get("preset", "classroom"),
            params={k: list(v) for k, v in params.items()},
            seeds=tuple(seeds),
            model=model,
            methods=tuple(methods) if methods else None,
            fixed=dict(fixed),
            train=dict(train),
            plugins=tuple(plugins),
        )
        configs = [spec.config(c) for c in spec.cells()]  # every cell's config, up front
        _check_cells(configs, model, methods)
        return spec

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> ScanSpec:
        """Read and validate a TOML spec; errors name the file and the field."""
        if not isinstance(path, str | os.PathLike) or not str(os.fspath(path)).strip():
            raise ValueError(f"spec: expected the path of a TOML file, got {path!r:.60}")
        path = Path(path)
        if not path.is_file():
            if path.exists():
                raise ValueError(f"spec: {str(path)!r} is not a regular file")
            raise FileNotFoundError(f"spec: no such file {str(path)!r}")
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"spec: {str(path)!r} is not valid TOML ({exc})") from None
        except OSError as exc:
            raise ValueError(f"spec: cannot read {str(path)!r} ({exc.strerror})") from None
        if isinstance(raw.get("plugins"), list):  # relative to the spec's folder
            raw["plugins"] = [
                str(path.parent / p) if isinstance(p, str) else p for p in raw["plugins"]
            ]
        try:
            return cls.from_dict(raw)
        except ValueError as exc:
            raise ValueError(f"spec {str(path)!r}: {exc}") from None

    def cells(self) -> list[dict[str, Any]]:
        """One dict of overrides (parameters and ``seed``) per cell."""
        names = list(self.params)
        return [
            {**dict(zip(names, values, strict=True)), "seed": seed}
            for values in itertools.product(*(self.params[n] for n in names))
            for seed in self.seeds
        ]

    def config(self, cell: dict[str, Any]):
        overrides = {k: v for k, v in cell.items() if k != "seed"}
        return get_config(self.system, self.preset, **{**(self.fixed or {}), **overrides})

    def cost(self, cells: list[dict[str, Any]] | None = None) -> JobCost:
        """The summed cost of ``cells`` (default all) as :func:`run_cell` runs them."""
        from gfdt_dash.pipeline import pipeline_cost
        from gfdt_dash.score import TrainConfig

        train = TrainConfig.preset("classroom", **(self.train or {}))
        return sum(
            (
                pipeline_cost(
                    self.config(c), model=self.model, methods=self.methods, train_config=train
                )
                for c in (self.cells() if cells is None else cells)
            ),
            JobCost(),
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=list)


def cell_id(spec: ScanSpec, cell: dict[str, Any]) -> str:
    raw = json.dumps(
        {
            "config": spec.config(cell).to_dict(),
            "seed": cell["seed"],
            "model": spec.model,
            "methods": spec.methods,
            "train": spec.train,
        },
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def run_cell(
    spec: ScanSpec,
    cell: dict[str, Any],
    device: str = "cpu",
    plugins: tuple[str, ...] = (),
    stop_event: str | None = None,
) -> xr.Dataset:
    """Run one cell (in a Dask worker or inline) and return its small result dataset.

    ``plugins``: plug-in files to load first (a worker process has not loaded the files that
    registered a plug-in system in the process that submitted the cell; loading is idempotent).
    ``stop_event``: the name of a Dask ``Event`` whose setting stops the cell
    (:class:`~gfdt_dash.progress.Cancelled`; looked up at most every ``_STOP_POLL_S``).
    """
    from gfdt_dash.pipeline import run_pipeline
    from gfdt_dash.score import TrainConfig

    load_plugins((*plugins, *spec.plugins))
    config = spec.config(cell)
    train = TrainConfig.preset("classroom", **spec.train) if spec.train else None
    result = run_pipeline(
        config,
        seed=cell["seed"],
        device=device,
        model=spec.model,
        methods=spec.methods,
        train_config=train,
        diagnose_model=False,
        should_stop=None if stop_event is None else _event_check(stop_event),
    )
    curves = result.responses["response"].sel(dy=0, dx=list(range(N_DOWN))).drop_vars("dy")
    methods = curves["estimator"].values
    errors = result.errors.reindex(methods)
    stein = errors.get("stein_error", np.nan)
    ds = xr.Dataset(
        {
            "error": ("estimator", errors["error"].to_numpy(dtype=float)),
            "stein_error": ("estimator", np.broadcast_to(stein, len(methods)).astype(float)),
            "curve": curves,
        }
    )
    ds.attrs = {
        "cell": json.dumps(cell),
        "config": config.to_json(),
        "timings": json.dumps(result.timings),
    }
    return ds


def collect(spec: ScanSpec, cells_dir: Path) -> xr.Dataset | None:
    """All finished cells stacked along a ``cell`` dim with one coordinate per parameter."""
    parts = []
    for cell in spec.cells():
        path = cells_dir / f"{cell_id(spec, cell)}.nc"
        if path.is_file():
            ds = open_dataset(path)
            ds = ds.expand_dims(cell=[len(parts)])
            for name, value in cell.items():
                ds = ds.assign_coords({name: ("cell", [value])})
            parts.append(ds)
    if not parts:
        return None
    out = xr.concat(parts, dim="cell", combine_attrs="drop")
    out.attrs = {
        "scan": spec.to_json(),
        "system": spec.system,
        "parameters": json.dumps(list(spec.params)),
    }
    return out


def results_table(ds: xr.Dataset):
    """The error of every method per cell, indexed by the cell's parameter values and seed."""
    import pandas as pd

    names = [*json.loads(ds.attrs.get("parameters", "[]")), "seed"]
    names = [n for n in names if n in ds.coords]
    table = ds["error"].transpose("cell", "estimator").to_pandas()
    if len(names) > 1:
        table.index = pd.MultiIndex.from_arrays([ds[n].values for n in names], names=names)
    else:
        table.index = pd.Index(ds[names[0]].values, name=names[0])
    table.columns.name = "error"
    return table


def _check_scheduler(address: str) -> None:
    """``ValueError`` unless a TCP connection to ``address`` opens within a few seconds."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler: expected an address like tcp://host:8786, got {address!r}")
    rest = address.strip()
    scheme, sep, tail = rest.partition("://")
    if sep:
        if scheme not in ("tcp", "tls"):
            raise ValueError(
                f"scheduler: {address!r}: only tcp:// and tls:// addresses are supported"
            )
        rest = tail
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"scheduler: {address!r} is not HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ValueError(
            f"scheduler: cannot reach {address!r} within {_CONNECT_TIMEOUT_S:g} s ({reason})"
        ) from None


def unfinished_cells(spec: ScanSpec, out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The cells of ``spec`` without a finished result under ``out_dir``."""
    cells_dir = Path(out_dir) / "cells"
    return [c for c in spec.cells() if not (cells_dir / f"{cell_id(spec, c)}.nc").is_file()]


_STOP_POLL_S = 0.5  # how often a scan's waits and its running cells look for a stop


def _event_check(name: str) -> Callable[[], bool]:
    """A ``should_stop`` for a cell in a Dask worker: whether the Dask ``Event`` ``name`` is
    set, asked of the scheduler at most every ``_STOP_POLL_S`` (the pipeline checks often)."""
    from dask.distributed import Event

    event = Event(name)
    last = [-math.inf, False]

    def check() -> bool:
        now = time.monotonic()
        if now - last[0] >= _STOP_POLL_S:
            last[0], last[1] = now, event.is_set()
        return last[1]

    return check


def run_scan(
    spec: ScanSpec,
    out_dir: str | os.PathLike,
    *,
    scheduler: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    device: str = "cpu",
    limits: CostLimits | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_cell: Callable[[int, int, dict[str, Any]], None] | None = None,
    plugins: tuple[str, ...] | None = None,
    should_stop: StopCheck | None = None,
) -> xr.Dataset | None:
    """Run every unfinished cell on Dask and collect the results into ``<out_dir>/scan.nc``.

    ``scheduler``: address of an existing Dask scheduler (checked to accept connections first);
    ``None`` starts a local cluster of ``n_workers`` processes with ``threads_per_worker`` threads
    each (the thread budget: torch inside each worker is limited to that many threads). With
    ``limits`` the summed cost of the unfinished cells is checked before any cluster starts.
    ``on_start(total, done)`` is called
    once everything is validated, before any cell runs; ``on_cell(done, total, cell)`` reports
    progress as cells finish. ``plugins``: plug-in files every worker loads before its cells
    (default: every plug-in file loaded in this process,
    :func:`gfdt_dash.systems.loaded_plugins`), so a scan of a plug-in system runs anywhere.
    ``should_stop`` (checked every ``_STOP_POLL_S`` while cells run) cancels the scan: the
    cells not yet started are cancelled, the running ones stop at their next check (through a
    Dask ``Event``, so on an external scheduler too) and :class:`~gfdt_dash.progress.Cancelled`
    is raised; finished cells stay on disk, and a later call resumes with the rest.
    """
    from gfdt_dash.systems import loaded_plugins

    plugins = tuple(loaded_plugins() if plugins is None else plugins)
    if not isinstance(spec, ScanSpec):
        raise TypeError(
            "spec: expected a ScanSpec (ScanSpec.from_dict or from_toml), got "
            f"{type(spec).__name__}"
        )
    for name, value, most in (
        ("n_workers", n_workers, MAX_LOCAL_WORKERS),
        ("threads_per_worker", threads_per_worker, MAX_THREADS),
    ):
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name}: must be an integer >= 1, got {value!r:.60}")
        if value > most:
            raise ValueError(f"{name}: {value} is more than this machine can run; at most {most}")
    n_workers, threads_per_worker = int(n_workers), int(threads_per_worker)
    for name, fn in (("on_start", on_start), ("on_cell", on_cell), ("should_stop", should_stop)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name}: must be a callable or None, got {fn!r:.60}")
    from gfdt_dash.devices import resolve_device

    resolve_device(device)  # a wrong name is refused here, not in every worker
    if out_dir is None or str(out_dir) == "":
        raise ValueError("out_dir: a scan folder is required")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir: {str(out)!r} exists and is not a folder")
    cells_dir = out / "cells"
    todo = unfinished_cells(spec, out)
    total, done = len(spec.cells()), len(spec.cells()) - len(todo)
    if todo and limits is not None:
        limits.check(spec.cost(todo), f"scan ({len(todo)} cells to run)")
    if todo and scheduler is not None:
        _check_scheduler(scheduler)
    cells_dir.mkdir(parents=True, exist_ok=True)
    log.info("scan: %d cells, %d already done", total, done)
    if on_start is not None:
        on_start(total, done)
    if todo:
        from dask.distributed import Client, Event, LocalCluster, wait

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=min(n_workers, len(todo)),  # an idle worker is only a process more
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=":0",  # a free port: never a port-in-use warning
                env={"OMP_NUM_THREADS": str(threads_per_worker)},
            )
        try:
            client = Client(scheduler or cluster, timeout=f"{_CONNECT_TIMEOUT_S:g}s")
        except Exception as exc:
            if cluster is not None:
                cluster.close()
            if scheduler is None:
                raise
            raise ValueError(
                f"scheduler: {scheduler!r} accepted a connection but did not answer as a "
                f"Dask scheduler ({type(exc).__name__}: {str(exc)[:120]})"
            ) from exc
        try:
            stop = Event(f"gfdt-scan-stop-{uuid.uuid4().hex}", client=client)
            client.run(_limit_threads, threads_per_worker)
            futures = {
                client.submit(run_cell, spec, c, device, plugins, stop.name, pure=False): c
                for c in todo
            }
            pending = set(futures)
            while pending:
                if should_stop is not None and should_stop():
                    stop.set()  # the running cells end at their next check
                    client.cancel(list(pending))
                    raise Cancelled(f"scan cancelled; {done} of {total} cells are finished")
                try:
                    finished, pending = wait(
                        pending, timeout=_STOP_POLL_S, return_when="FIRST_COMPLETED"
                    )
                except TimeoutError:
                    continue
                for future in finished:
                    cell = futures[future]
                    write_netcdf(future.result(), cells_dir / f"{cell_id(spec, cell)}.nc")
                    done += 1
                    write_netcdf(collect(spec, cells_dir), out / "scan.nc")
                    if on_cell is not None:
                        on_cell(done, total, cell)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    result = collect(spec, cells_dir)
    if result is not None:
        write_netcdf(result, out / "scan.nc")
    return result


def _limit_threads(n: int) -> None:
    """Runs inside each Dask worker process (an entry point of its own): its torch threads."""
    from gfdt_dash.threads import set_threads

    set_threads(n)
