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

Each finished cell is written atomically to ``<out>/cells/<cell-id>.nc`` (its error table and
response curves at the kicked pixel and 3 cells downstream); ``<out>/scan.nc`` collects all
finished cells and is rewritten atomically after each one. A cell whose file exists is skipped,
so a scan that crashed or was stopped resumes where it left off, losing nothing finished.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from gfdt_dash.data import open_dataset, write_netcdf
from gfdt_dash.systems import get_config

__all__ = ["ScanSpec", "collect", "run_cell", "run_scan"]

log = logging.getLogger(__name__)
N_DOWN = 4


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanSpec:
        known = {"system", "preset", "params", "seeds", "model", "methods", "fixed", "train"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a scan field; allowed: {', '.join(sorted(known))}")
        if "system" not in d:
            raise ValueError("system: a scan needs a system")
        params = d.get("params") or {}
        if not isinstance(params, dict) or not params:
            raise ValueError("params: give at least one parameter with a list of values")
        for name, values in params.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"params.{name}: must be a non-empty list of values")
        seeds = d.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
            raise ValueError("seeds: must be a non-empty list of integers")
        model = d.get("model", "train")
        model = None if model in (None, "none") else model
        if model not in (None, "train", "shipped"):
            raise ValueError(f"model: {model!r} not allowed; allowed: train, shipped, none")
        spec = cls(
            system=d["system"],
            preset=d.get("preset", "classroom"),
            params={k: list(v) for k, v in params.items()},
            seeds=tuple(seeds),
            model=model,
            methods=tuple(d["methods"]) if d.get("methods") else None,
            fixed=dict(d.get("fixed") or {}),
            train=dict(d.get("train") or {}),
        )
        for overrides in spec.cells():  # validate every cell's config up front
            spec.config(overrides)
        return spec

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> ScanSpec:
        try:
            with open(path, "rb") as fh:
                return cls.from_dict(tomllib.load(fh))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec: {path} is not valid TOML ({exc})") from exc

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


def run_cell(spec: ScanSpec, cell: dict[str, Any], device: str = "cpu") -> xr.Dataset:
    """Run one cell (in a Dask worker or inline) and return its small result dataset."""
    from gfdt_dash.pipeline import run_pipeline
    from gfdt_dash.score import TrainConfig

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
    )
    curves = result.responses["response"].sel(dy=0, dx=list(range(N_DOWN))).drop_vars("dy")
    methods = curves["method"].values
    errors = result.errors.reindex(methods)
    stein = errors.get("stein_error", np.nan)
    ds = xr.Dataset(
        {
            "error": ("method", errors["error"].to_numpy(dtype=float)),
            "stein_error": ("method", np.broadcast_to(stein, len(methods)).astype(float)),
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


def run_scan(
    spec: ScanSpec,
    out_dir: str | os.PathLike,
    *,
    scheduler: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    device: str = "cpu",
    on_cell: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> xr.Dataset | None:
    """Run every unfinished cell on Dask and collect the results into ``<out_dir>/scan.nc``.

    ``scheduler``: address of an existing Dask scheduler; ``None`` starts a local cluster of
    ``n_workers`` processes with ``threads_per_worker`` threads each (the thread budget: torch
    inside each worker is limited to that many threads). ``on_cell(done, total, cell)`` reports
    progress as cells finish.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    out = Path(out_dir)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*cells_dir.glob(".*.tmp"), *out.glob(".*.tmp")]:
        stale.unlink(missing_ok=True)  # left by a run killed mid-write; never a finished cell
    todo = [c for c in spec.cells() if not (cells_dir / f"{cell_id(spec, c)}.nc").is_file()]
    total, done = len(spec.cells()), len(spec.cells()) - len(todo)
    log.info("scan: %d cells, %d already done", total, done)
    if todo:
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
                env={"OMP_NUM_THREADS": str(threads_per_worker)},
            )
        client = Client(scheduler or cluster)
        try:
            client.run(_limit_threads, threads_per_worker)
            futures = {client.submit(run_cell, spec, c, device, pure=False): c for c in todo}
            for future in as_completed(futures):
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
