"""The *Scans* tab: run parameter scans from the browser, and show finished ones from the store
(error of each method against one scanned parameter).

A scan started here (``ScanForm``) runs ``gfdt_dash.scan.run_scan`` — the machinery of
``gfdt-dash scan`` — as one job of the session: on an embedded Dask ``LocalCluster`` of
``GFDT_DASH_SCAN_WORKERS`` worker processes (default 1), or on the scheduler at
``GFDT_DASH_SCHEDULER`` when one is set. Its cells appear in the plot as they finish; the
session's limits apply to the whole scan (every cell, and all cells' member-steps together).
Cancelling cancels the cells not yet started and stops the running ones at their next check
(``run_scan``'s ``should_stop``, on the embedded cluster and on an external scheduler alike);
the embedded cluster is then closed.

A scan (``gfdt_dash.scan.run_scan``) written to ``<store>/scans/<name>/scan.nc`` holds ``error``
(cell, estimator), ``stein_error`` (cell, estimator) and one coordinate per scanned parameter on the
``cell`` dim. For the chosen parameter the view shows, per method, the mean over all cells with
that value (the seeds, and the values of any other scanned parameter) with a min–max band or a
±1 standard-error band — e.g. how the Gaussian estimate degrades as Allen–Cahn's λ grows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr

from gfdt_dash.data import open_dataset
from gfdt_dash.progress import Progress
from gfdt_dash.response.methods import ESTIMATORS
from gfdt_dash.systems import SYSTEMS, get_config, system_spec
from gfdt_dash.ui import store
from gfdt_dash.ui.jobs import JobRunner
from gfdt_dash.ui.limits import Limits, member_steps
from gfdt_dash.ui.pacing import schedule_on
from gfdt_dash.ui.params import NumberField, label_of, parse_number
from gfdt_dash.ui.views import (
    DRAW_ORDER,
    LazyFigure,
    method_legend_html,
    results_table,
    system_methods,
)

__all__ = ["ScanForm", "ScansView", "scan_plot", "scan_spec_dict", "scan_summary"]

log = logging.getLogger(__name__)
_SUMMARY_COLUMNS = ("value", "estimator", "mean", "lo", "hi", "stderr", "n")


def scan_parameters(ds: xr.Dataset) -> list[str]:
    """The scanned parameters, in the scan's order (attrs ``parameters``, a JSON list)."""
    names = json.loads(ds.attrs.get("parameters", "[]"))
    return [n for n in names if n in ds.coords and ds[n].dims == ("cell",)]


def scan_summary(ds: xr.Dataset, parameter: str, variable: str = "error") -> pd.DataFrame:
    """One row per (parameter value, method): mean, min (``lo``), max (``hi``), standard error
    and count of ``variable`` over the cells with that value; NaN cells (a method that has no
    value there, e.g. the reference's Stein error) are left out."""
    if parameter not in scan_parameters(ds):
        raise ValueError(
            f"parameter: {parameter!r} was not scanned; scanned: {', '.join(scan_parameters(ds))}"
        )
    if variable not in ("error", "stein_error"):
        raise ValueError(f"variable: {variable!r}; allowed: error, stein_error")
    rows = []
    values = ds[parameter].values
    for method in (str(m) for m in ds["estimator"].values):
        data = ds[variable].sel(estimator=method).values
        for value in np.unique(values):
            x = data[values == value]
            x = x[np.isfinite(x)]
            if x.size == 0:
                continue
            stderr = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
            rows.append(
                (
                    float(value),
                    method,
                    float(x.mean()),
                    float(x.min()),
                    float(x.max()),
                    stderr,
                    int(x.size),
                )
            )
    return pd.DataFrame(rows, columns=list(_SUMMARY_COLUMNS))


def scan_plot(data: dict | None, band: str = "min–max") -> hv.Overlay:
    """Error against the scanned parameter, one line + band per method slot (fixed layers)."""
    frame = (data or {}).get("summary")
    parameter = (data or {}).get("parameter", "parameter")
    variable = (data or {}).get("variable", "error")
    if frame is None:
        frame = pd.DataFrame(columns=list(_SUMMARY_COLUMNS))
    layers = []
    for method in DRAW_ORDER:
        label, color = ESTIMATORS[method].label, ESTIMATORS[method].color
        sub = frame[frame["estimator"] == method].sort_values("value")
        if band == "min–max":
            lo, hi = sub["lo"].to_numpy(float), sub["hi"].to_numpy(float)
        else:
            lo = (sub["mean"] - sub["stderr"]).to_numpy(float)
            hi = (sub["mean"] + sub["stderr"]).to_numpy(float)
        x = sub["value"].to_numpy(float)
        table = pd.DataFrame({"value": x, "mean": sub["mean"].to_numpy(float), "lo": lo, "hi": hi})
        layers.append(
            hv.Area(table, "value", ["lo", "hi"], label=label).opts(
                color=color, alpha=0.2, line_alpha=0, framewise=True
            )
        )
        layers.append(
            hv.Curve(table, "value", ["mean", "lo", "hi"], label=label).opts(
                color=color, line_width=2, tools=["hover"], framewise=True
            )
        )
        layers.append(
            hv.Scatter(table, "value", ["mean"], label=label).opts(
                color=color, size=6, framewise=True
            )
        )
    return hv.Overlay(layers).opts(
        title=f"{variable} against {parameter} (mean over cells, band: {band})",
        xlabel=parameter,
        ylabel=f"relative {variable.replace('_', ' ')}",
        show_legend=False,  # the HTML key above the figure (see views.method_legend_html)
        width=640,
        height=380,
        framewise=True,
    )


_NONE = "(none)"


def _scan_workers() -> int:
    raw = os.environ.get("GFDT_DASH_SCAN_WORKERS", "1")
    try:
        return max(1, int(raw))
    except ValueError as exc:
        raise ValueError(f"GFDT_DASH_SCAN_WORKERS: {raw!r} is not an integer") from exc


def parameter_values(
    system: str, name: str, start: float, stop: float, count: int
) -> list[float | int]:
    """``count`` evenly spaced values of parameter ``name`` from ``start`` to ``stop`` (whole
    numbers for an integer parameter, duplicates dropped)."""
    spec = SYSTEMS[system].field_specs()[name]
    values = np.linspace(start, stop, count) if count > 1 else np.array([start])
    if spec.get("integer"):
        return list(dict.fromkeys(round(float(v)) for v in values))
    return list(dict.fromkeys(float(f"{v:.6g}") for v in values))


def scan_spec_dict(
    system: str,
    preset: str,
    params: dict[str, list[Any]],
    seeds: list[int],
    methods: list[str],
    model: str,
) -> dict[str, Any]:
    """The scan spec (as ``gfdt-dash scan`` reads it from TOML) for the form's choices."""
    return {
        "system": system,
        "preset": preset,
        "seeds": list(seeds),
        "model": model,
        "methods": list(methods),
        "params": {k: list(v) for k, v in params.items()},
    }


def check_scan_limits(spec: Any, limits: Limits) -> None:
    """``ValueError`` unless every cell fits this server's limits and all cells together take
    at most the member-steps one job may (the session's limits apply to the whole scan)."""
    total = 0
    for cell in spec.cells():
        config = spec.config(cell)
        limits.check(config)
        total += member_steps(config)
    if total > limits.max_member_steps:
        raise ValueError(
            f"Too big for this server: the {len(spec.cells())} cells need {total:,} time steps "
            f"of all ensemble members together, {total / limits.max_member_steps:.1f} times "
            f"what one job may take here ({limits.max_member_steps:,}). Use fewer values or "
            "seeds, or shorter records."
        )
    if spec.model == "train":
        from gfdt_dash.score import TrainConfig

        steps = TrainConfig.preset("classroom").n_steps
        if steps > limits.max_train_steps:
            raise ValueError(
                f"train_steps: training {steps} steps per cell exceeds this server's limit "
                f"({limits.max_train_steps})"
            )


def run_scan_job(
    spec: Any,
    out: Any,
    *,
    callback: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool],
    on_cell: Callable[[int, int], None] | None = None,
) -> Any:
    """``run_scan(spec, out)`` on the embedded cluster or ``GFDT_DASH_SCHEDULER``, reporting a
    :class:`Progress` per finished cell; ``should_stop`` cancels it (``Cancelled``,
    :func:`gfdt_dash.scan.run_scan`)."""
    from dask.distributed import LocalCluster

    from gfdt_dash.scan import run_scan

    address = os.environ.get("GFDT_DASH_SCHEDULER") or None
    total = len(spec.cells())
    t0 = time.perf_counter()
    if callback is not None:
        callback(Progress("scan: starting workers", 0, total, 0.0))
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=_scan_workers(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        address = cluster.scheduler_address

    def cell_done(done: int, total: int, cell: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - t0
        if callback is not None:
            callback(Progress("scan", done, total, elapsed, None, {"cell": cell}))
        if on_cell is not None:
            on_cell(done, total)

    try:
        return run_scan(spec, out, scheduler=address, on_cell=cell_done, should_stop=should_stop)
    finally:
        if cluster is not None:
            cluster.close(timeout=5)


class ScanForm(pn.viewable.Viewer):
    """Choose a system, one or two parameters with ranges, seeds and methods; run the scan."""

    system = param.Selector(default="allen_cahn", objects=list(SYSTEMS))
    preset = param.Selector(default="classroom", objects=["classroom", "paper"])
    parameter = param.Selector(default="lam", objects=[], label="parameter 1")
    start = param.Number(default=250.0, label="from")
    stop = param.Number(default=1000.0, label="to")
    count = param.Integer(default=3, bounds=(1, 20), label="values")
    parameter2 = param.Selector(default=_NONE, objects=[_NONE], label="parameter 2")
    start2 = param.Number(default=0.0, label="from")
    stop2 = param.Number(default=1.0, label="to")
    count2 = param.Integer(default=2, bounds=(1, 20), label="values")
    seeds = param.String(default="0, 1", doc="seeds, separated by commas")
    methods = param.ListSelector(default=[], objects=[])
    model = param.Selector(
        default="none", objects=["none", "shipped", "train"], label="score model"
    )
    scan_name = param.String(default="", label="scan name", doc="folder name in the store")
    run_scan = param.Event(label="Run scan")
    cancel = param.Event(label="Cancel scan")
    status = param.String(default="")

    def __init__(
        self,
        runner: JobRunner,
        on_cells: Callable[[str], None],
        limits: Limits | None = None,
        session_runners: list[JobRunner] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.runner = runner
        self.limits = limits or Limits.from_env()
        self._session_runners = session_runners if session_runners is not None else [runner]
        self._on_cells = on_cells
        self.input_errors: dict[str, str] = {}
        self._cancelled = False
        self.param.system.objects = list(SYSTEMS)  # plug-ins registered after import included
        self._system_changed()

    def _numeric(self, system: str) -> dict[str, str]:
        specs = SYSTEMS[system].field_specs()
        return {
            label_of(n, m): n for n, m in specs.items() if m.get("choices") is None and n != "n"
        }

    @param.depends("system", watch=True)
    def _system_changed(self) -> None:
        names = self._numeric(self.system)  # label (symbol — words [unit]) → name
        self.param.parameter.objects = names
        self.param.parameter2.objects = {_NONE: _NONE, **names}
        have = [m for m in system_methods(self.system) if m != "analytic"]
        self.param.methods.objects = {ESTIMATORS[m].label: m for m in have}  # shown in words
        self.methods = [m for m in have if m != "learned_score"]
        # The parameter a new scan starts with: the one the system's story is about.
        first = system_spec(self.system).scan_parameter or next(iter(names.values()))
        self.parameter2 = _NONE
        if self.parameter == first:
            self._parameter_changed()
        else:
            self.parameter = first

    @param.depends("parameter", watch=True)
    def _parameter_changed(self) -> None:
        self.start, self.stop = self._default_range(self.parameter)
        if not self.scan_name or self.scan_name.startswith(tuple(SYSTEMS)):
            self.scan_name = f"{self.system}-{self.parameter}"

    @param.depends("parameter2", watch=True)
    def _parameter2_changed(self) -> None:
        if self.parameter2 != _NONE:
            self.start2, self.stop2 = self._default_range(self.parameter2)

    def _default_range(self, name: str) -> tuple[float, float]:
        value = float(getattr(get_config(self.system, self.preset), name))
        meta = SYSTEMS[self.system].field_specs()[name]
        lo, hi = meta.get("lo"), meta.get("hi")
        a, b = (value / 2, value * 2) if value > 0 else (value - 1, value + 1)
        if lo is not None:
            a = max(a, lo)
        if hi is not None:
            b = min(b, hi)
        return float(f"{a:.4g}"), float(f"{b:.4g}")

    def spec(self) -> Any:
        """The validated ``ScanSpec`` of the form (``ValueError`` naming what is wrong)."""
        from gfdt_dash.scan import ScanSpec

        if self.input_errors:
            raise ValueError(
                "Fix the inputs marked in red first: " + "; ".join(self.input_errors.values())
            )
        seeds = [
            int(parse_number(part, "seeds", integer=True, lo=0, hi=2**31 - 1))
            for part in self.seeds.split(",")
            if part.strip()
        ]
        if not seeds:
            raise ValueError("seeds: give at least one seed (e.g. 0, 1)")
        if not self.methods:
            raise ValueError("methods: choose at least one method")
        if "learned_score" in self.methods and self.model == "none":
            raise ValueError("score model: the learned score needs a model (shipped or train)")
        params = {
            self.parameter: parameter_values(
                self.system, self.parameter, self.start, self.stop, self.count
            )
        }
        if self.parameter2 != _NONE:
            if self.parameter2 == self.parameter:
                raise ValueError("parameter 2: choose a parameter other than parameter 1")
            params[self.parameter2] = parameter_values(
                self.system, self.parameter2, self.start2, self.stop2, self.count2
            )
        methods = list(self.methods)
        if "perturbation" not in methods:  # the reference the errors are measured against
            methods.append("perturbation")
        spec = ScanSpec.from_dict(
            scan_spec_dict(self.system, self.preset, params, seeds, methods, self.model)
        )
        check_scan_limits(spec, self.limits)
        return spec

    @param.depends("run_scan", watch=True)
    def _start(self) -> None:
        busy = [r for r in self._session_runners if r.running]
        if len(busy) >= self.limits.max_session_jobs:
            self.status = (
                f"⚠ This session already runs {', '.join(r.job for r in busy)}; allowed: "
                f"{self.limits.max_session_jobs} job(s) at a time. Wait for it or cancel it."
            )
            return
        try:
            spec = self.spec()
            name = store.sanitize_name(self.scan_name, "scan name")
            out = store.scan_path(name).parent
            if out.exists():
                raise ValueError(
                    f"scan name: a scan named {name!r} already exists in the store; choose "
                    "another name"
                )
        except ValueError as exc:
            self.status = f"⚠ {exc}"
            return
        out.mkdir(parents=True)
        self._cancelled = False
        cells = len(spec.cells())
        self.status = f"Scan **{name}**: {cells} cells queued…"
        runner = self.runner

        def fn(callback: Callable[[Progress], None], should_stop: Callable[[], bool]) -> Any:
            return run_scan_job(
                spec,
                out,
                callback=callback,
                should_stop=should_stop,
                on_cell=lambda done, total: runner._ui(lambda: self._on_cells(name)),
            )

        def on_progress(p: Progress) -> None:
            if not self._cancelled:
                self.status = f"Scan **{name}**: {p.stage} — {p.done}/{p.total} cells done."

        def on_done(_: Any) -> None:
            self.status = f"Scan **{name}** finished: {cells} cells."
            self._on_cells(name)

        def on_cancel() -> None:
            self.status = f"Scan **{name}** cancelled; its finished cells are kept."
            self._on_cells(name)

        def on_error(exc: BaseException) -> None:
            self.status = f"⚠ Scan **{name}** failed: {exc}"

        runner.submit(
            "scan",
            fn,
            on_progress=on_progress,
            on_done=on_done,
            on_error=on_error,
            on_cancel=on_cancel,
        )

    @param.depends("cancel", watch=True)
    def _cancel(self) -> None:
        if self.runner.running:
            self._cancelled = True
            self.runner.cancel()
            self.status = "Scan cancelled: stopping its workers…"

    def _number(self, name: str, integer: bool = False) -> NumberField:
        p = self.param[name]
        lo, hi = p.bounds if p.bounds else (None, None)

        def on_error(key: str, message: str | None) -> None:
            if message:
                self.input_errors[key] = message
            else:
                self.input_errors.pop(key, None)

        return NumberField(
            self, name, p.label, integer=integer, lo=lo, hi=hi, doc=p.doc, on_error=on_error
        )

    def __panel__(self) -> pn.viewable.Viewable:
        btn = pn.widgets.Button.from_param
        run = btn(self.param.run_scan, color="primary")
        cancel = btn(self.param.cancel, color="danger", disabled=True)
        progress = pn.indicators.Progress(value=0, max=1000, sizing_mode="stretch_width")

        def on_runner(*_: Any) -> None:
            r = self.runner
            run.disabled = r.running
            cancel.disabled = not r.running
            if not self._cancelled:
                progress.value = int(1000 * r.fraction)
            progress.bar_color = (
                "success"
                if r.stage == "done"
                else ("secondary" if self._cancelled or r.stage == "cancelled" else "primary")
            )

        self.runner.param.watch(on_runner, ["running", "fraction", "stage"])
        second = pn.Row(
            self._number("start2"),
            self._number("stop2"),
            self._number("count2", True),
            visible=self.parameter2 != _NONE,
        )
        self.param.watch(lambda e: setattr(second, "visible", e.new != _NONE), "parameter2")
        return pn.Card(
            pn.widgets.Select.from_param(
                self.param.system, options={cls.title: k for k, cls in SYSTEMS.items()}
            ),
            pn.widgets.RadioButtonGroup.from_param(self.param.preset),
            pn.widgets.Select.from_param(self.param.parameter),
            pn.Row(self._number("start"), self._number("stop"), self._number("count", True)),
            pn.widgets.Select.from_param(self.param.parameter2),
            second,
            pn.widgets.TextInput.from_param(self.param.seeds),
            pn.widgets.CheckBoxGroup.from_param(self.param.methods, inline=False),
            pn.widgets.RadioButtonGroup.from_param(self.param.model),
            pn.widgets.TextInput.from_param(self.param.scan_name),
            pn.Row(run, cancel),
            progress,
            pn.pane.Markdown(self.param.status),
            title="New scan",
            collapsed=False,
        )


class ScansView(pn.viewable.Viewer):
    """Pick a finished scan and a scanned parameter; see each method's error against it."""

    scan = param.Selector(default=None, objects=[], allow_None=True, doc="finished scan")
    parameter = param.Selector(default=None, objects=[], allow_None=True, label="x axis")
    variable = param.Selector(default="error", objects=["error", "stein_error"], label="y axis")
    band = param.Selector(default="min–max", objects=["min–max", "±1 stderr"])
    refresh = param.Event(label="Refresh list")
    status = param.String(default="")

    def __init__(
        self,
        *,
        sync: bool = False,
        limits: Limits | None = None,
        session_runners: list[JobRunner] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.dataset: xr.Dataset | None = None
        self.summary = pd.DataFrame(columns=list(_SUMMARY_COLUMNS))
        self._pipe = hv.streams.Pipe(data={})
        self._layout: pn.viewable.Viewable | None = None
        self._figure: LazyFigure | None = None  # rendered with the first scan shown
        self._schedule = schedule_on(None if sync else pn.state.curdoc)
        self.runner = JobRunner(self._schedule, sync=sync)
        runners = session_runners if session_runners is not None else []
        runners.append(self.runner)  # a scan is one of the session's jobs
        self.form = ScanForm(self.runner, self.show_scan, limits=limits, session_runners=runners)
        self._rescan()

    def show_scan(self, name: str) -> None:
        """Show scan ``name`` (listed anew: a scan being run gains cells as they finish)."""
        names = store.saved_scans()
        self.param.scan.objects = list(names)
        if name not in names:
            return
        if self.scan == name:
            self._load()
        else:
            self.scan = name

    @param.depends("refresh", watch=True)
    def _rescan(self) -> None:
        names = store.saved_scans()
        self.param.scan.objects = list(names)  # param appends None to the list it is given
        if self.scan not in names:
            self.scan = names[0] if names else None
        elif self.scan is not None:
            self._load()
        if not names:
            self.status = (
                f"No finished scans in {store.store_root() / 'scans'} yet: start one with "
                "**Run scan**, or run `gfdt-dash scan SPEC.toml --out <store>/scans/<name>`."
            )

    @param.depends("scan", watch=True)
    def _load(self) -> None:
        self.dataset = None
        if self.scan is None:
            self._update()
            return
        try:
            ds = open_dataset(store.scan_path(self.scan))
            parameters = scan_parameters(ds)
            if not parameters or "error" not in ds:
                raise ValueError("not a scan result (no error variable or scanned parameter)")
        except (OSError, ValueError) as exc:
            self.status = f"Scan {self.scan!r} cannot be shown: {exc}"
            self._update()
            return
        self.dataset = ds
        self.param.parameter.objects = list(parameters)
        if self.parameter not in parameters:
            self.parameter = parameters[0]  # triggers _update
        else:
            self._update()

    @param.depends("parameter", "variable", watch=True)
    def _update(self) -> None:
        ds = self.dataset
        if ds is None or self.parameter is None:
            self.summary = pd.DataFrame(columns=list(_SUMMARY_COLUMNS))
            self._pipe.send({})
            return
        self.summary = scan_summary(ds, self.parameter, self.variable)
        self._pipe.send(
            {"summary": self.summary, "parameter": self.parameter, "variable": self.variable}
        )
        if self._figure is not None:
            self._figure.reveal(self._schedule)
        methods = ", ".join(str(m) for m in ds["estimator"].values)
        self.status = (
            f"Scan **{self.scan}**: {ds.attrs.get('system', '?')}, {ds.sizes['cell']} cells, "
            f"methods {methods}."
        )
        if hasattr(self, "_table"):
            self._table.value = self.summary

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            band = hv.streams.Params(self, ["band"])
            self._figure = LazyFigure(
                lambda: hv.DynamicMap(
                    lambda data, band: scan_plot(data, band), streams=[self._pipe, band]
                ),
                "The plot appears with the first scan.",
                width=640,
            )
            self._table = results_table(self.summary, height=220)
            controls = pn.Column(
                self.form,
                pn.pane.Markdown("### Finished scans"),
                pn.widgets.Select.from_param(self.param.scan),
                pn.widgets.Select.from_param(self.param.parameter),
                pn.widgets.RadioButtonGroup.from_param(self.param.variable),
                pn.widgets.RadioButtonGroup.from_param(self.param.band),
                pn.widgets.Button.from_param(self.param.refresh),
                width=340,
            )
            main = pn.Column(
                pn.pane.Markdown(self.param.status),
                pn.pane.HTML(method_legend_html()),
                self._figure.panel,
                self._table,
                sizing_mode="stretch_width",
            )
            self._layout = pn.Row(controls, main, sizing_mode="stretch_width")
            if self.dataset is not None:
                self._figure.reveal(self._schedule)
        return self._layout
