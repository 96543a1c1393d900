"""The *Scans* tab: finished parameter scans in the store, error of each method against one
scanned parameter.

A scan (``gfdt_dash.scan.run_scan``) written to ``<store>/scans/<name>/scan.nc`` holds ``error``
(cell, method), ``stein_error`` (cell, method) and one coordinate per scanned parameter on the
``cell`` dim. For the chosen parameter the view shows, per method, the mean over all cells with
that value (the seeds, and the values of any other scanned parameter) with a min–max band or a
±1 standard-error band — e.g. how the Gaussian estimate degrades as Allen–Cahn's λ grows.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr

from gfdt_dash.data import open_dataset
from gfdt_dash.ui import store
from gfdt_dash.ui.pacing import schedule_on
from gfdt_dash.ui.views import METHODS, LazyFigure, method_legend_html, results_table

__all__ = ["ScansView", "scan_plot", "scan_summary"]

log = logging.getLogger(__name__)
_SUMMARY_COLUMNS = ("value", "method", "mean", "lo", "hi", "stderr", "n")


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
    for method in (str(m) for m in ds["method"].values):
        data = ds[variable].sel({"method": method}).values  # sel(method=...) is sel's own arg
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
    for method, label, color in METHODS:
        sub = frame[frame["method"] == method].sort_values("value")
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


class ScansView(pn.viewable.Viewer):
    """Pick a finished scan and a scanned parameter; see each method's error against it."""

    scan = param.Selector(default=None, objects=[], allow_None=True, doc="finished scan")
    parameter = param.Selector(default=None, objects=[], allow_None=True, label="x axis")
    variable = param.Selector(default="error", objects=["error", "stein_error"], label="y axis")
    band = param.Selector(default="min–max", objects=["min–max", "±1 stderr"])
    refresh = param.Event(label="Refresh list")
    status = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.dataset: xr.Dataset | None = None
        self.summary = pd.DataFrame(columns=list(_SUMMARY_COLUMNS))
        self._pipe = hv.streams.Pipe(data={})
        self._layout: pn.viewable.Viewable | None = None
        self._figure: LazyFigure | None = None  # rendered with the first scan shown
        self._schedule = schedule_on(pn.state.curdoc)
        self._rescan()

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
                f"No finished scans in {store.store_root() / 'scans'} yet: run "
                "`gfdt-dash scan SPEC.toml --out <store>/scans/<name>`."
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
        methods = ", ".join(str(m) for m in ds["method"].values)
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
