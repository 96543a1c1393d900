"""Pure plotting functions of state, and the streams that update them in place.

Every figure is a ``DynamicMap`` over a ``Pipe`` (or ``Buffer``) plus parameter streams, created
once per tab; a new result is *sent* to the stream, the bokeh models are patched, nothing is
rebuilt. Overlays always hold the same layers (one per method slot, empty when a method has no
result) because a ``DynamicMap`` cannot add layers after its first render. ``LazyFigure`` defers
a figure's first render to its first data; ``results_table`` is the read-only table of results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import xarray as xr

from gfdt_dash.response.methods import ESTIMATORS, applicable_methods, reference_method

__all__ = [
    "DRAW_ORDER",
    "LazyFigure",
    "error_table_html",
    "histogram_overlay",
    "loss_overlay",
    "method_legend_html",
    "response_curves",
    "response_map",
    "results_table",
    "snapshot_image",
    "system_methods",
]

# Method slots in drawing order (names of the result's ``estimator`` coordinate; labels and
# colours from the methods' table, as in the report's figures): a closed-form reference
# underneath, the estimates over it, and the markers of direct perturbation (the truth) on top.
DRAW_ORDER: tuple[str, ...] = tuple(
    [m for m, s in ESTIMATORS.items() if not s.markers and s.reference_rank is not None]
    + [m for m, s in ESTIMATORS.items() if not s.markers and s.reference_rank is None]
    + [m for m, s in ESTIMATORS.items() if s.markers]
)
N_DOWNSTREAM = 4  # panels: the kicked pixel and 1..3 cells downstream
LAG_LABEL = "lag t (model time units)"


def system_methods(system: str) -> tuple[str, ...]:
    """The methods a system has (:func:`gfdt_dash.response.applicable_methods`), in drawing
    order (the truth last)."""
    have = applicable_methods(system)
    return tuple(m for m in DRAW_ORDER if m in have)


def _slots(methods: tuple[str, ...] | None) -> list[tuple[str, str, str]]:
    """(name, label, colour) of ``methods`` (default: all), in their order."""
    return [(m, ESTIMATORS[m].label, ESTIMATORS[m].color) for m in (methods or DRAW_ORDER)]


_LOSS_COLUMNS = ("step", "train_loss", "val_loss")


def empty_loss_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in _LOSS_COLUMNS})


def methods_of(ds: xr.Dataset) -> list[str]:
    return [str(m) for m in ds["estimator"].values]


def _variable(ds: xr.Dataset, method: str, normalized: bool) -> tuple[xr.DataArray, xr.DataArray]:
    """(response, stderr) of one method; raw values for score methods when not normalized."""
    sub = ds.sel(estimator=method)
    name = "response"
    if not normalized and "response_raw" in ds and bool(np.isfinite(sub["response_raw"]).any()):
        name = "response_raw"
    err_name = f"{name}_stderr"
    resp = sub[name]
    err = sub[err_name] if err_name in ds else xr.zeros_like(resp)
    return resp, err.fillna(0.0)


def response_curves(
    data: dict | None,
    dx: int,
    normalized: bool = True,
    methods: tuple[str, ...] | None = None,
) -> hv.Overlay:
    """Response vs lag at ``dx`` cells downstream of the kick, one curve + band per method of
    ``methods`` (default: all); direct perturbation, the truth, as markers on top.

    ``data["responses"]`` is the combined result (dims estimator, lag, dy, dx). Each panel has its
    own axis ranges, recomputed for every new result (``framewise``; each figure is a pane of
    its own with Panel's axis linking off, see :class:`LazyFigure`).
    """
    ds = (data or {}).get("responses")
    layers = []
    for method, label, color in _slots(methods):
        lag = resp = err = np.empty(0)
        if ds is not None and method in methods_of(ds) and dx in ds["dx"].values:
            r, e = _variable(ds, method, normalized)
            r = r.sel(dy=0, dx=dx)
            keep = np.isfinite(r.values)
            if keep.any():
                lag = ds["lag"].values[keep]
                resp = r.values[keep]
                err = e.sel(dy=0, dx=dx).values[keep]
        table = pd.DataFrame({"lag": lag, "response": resp, "stderr": err})
        common = dict(framewise=True)
        layers.append(
            hv.Spread(table, "lag", ["response", "stderr"], label=label).opts(
                color=color, alpha=0.2, line_alpha=0, **common
            )
        )
        if ESTIMATORS[method].markers:
            layers.append(
                hv.Scatter(table, "lag", ["response", "stderr"], label=label).opts(
                    color=color, size=7, line_color="black", tools=["hover"], **common
                )
            )
        else:
            layers.append(
                hv.Curve(table, "lag", ["response", "stderr"], label=label).opts(
                    color=color, line_width=2, tools=["hover"], **common
                )
            )
    title = "kicked pixel" if dx == 0 else f"{dx} cell{'s' if dx > 1 else ''} downstream"
    kind = "normalized R(t)R(0)⁻¹" if normalized else "raw R(t)"
    return hv.Overlay(layers).opts(
        title=f"{title} — {kind}",
        xlabel=LAG_LABEL,
        ylabel="response per unit kick",
        show_legend=False,  # see method_legend_html
        width=440,
        height=260,
        framewise=True,
    )


def method_legend_html(methods: tuple[str, ...] | None = None) -> str:
    """The colour key of the response figures, as HTML with a sample per method of ``methods``
    (default: all): a line, or a marker for direct perturbation (the truth).

    Not bokeh's legend: bokeh draws no sample for a glyph without data and, in the served app,
    lost the samples once results streamed in; the key must always show the colours.
    """

    def sample(method: str, color: str) -> str:
        if ESTIMATORS[method].markers:
            return (
                f"<span style='display:inline-block;width:10px;height:10px;border-radius:50%;"
                f"background:{color};border:1px solid black;vertical-align:middle;"
                f"margin:0 15px 0 3px'></span>"
            )
        return (
            f"<span style='display:inline-block;width:28px;height:0;border-top:3px solid "
            f"{color};vertical-align:middle;margin-right:6px'></span>"
        )

    items = "".join(
        f"<span style='margin-right:18px;white-space:nowrap'>{sample(m, color)}{label}"
        f"{' (the truth)' if ESTIMATORS[m].markers else ''}</span>"
        for m, label, color in _slots(methods)
    )
    return f"<div class='gfdt-legend' style='font-size:14px'>{items} (bands: ±1 stderr)</div>"


def map_scale(ds: xr.Dataset, lag_index: int, normalized: bool) -> float:
    """The colour range ±scale of the response maps at one lag: the largest magnitude of any
    method's map at that lag, so the maps share one scale per lag (and a late lag, whose
    response has decayed and spread, is not drawn blank on the scale of lag 0)."""
    i = int(min(max(lag_index, 0), ds.sizes["lag"] - 1))
    peak = 0.0
    for method in methods_of(ds):
        values = _variable(ds, method, normalized)[0].isel(lag=i).values
        if np.isfinite(values).any():
            peak = max(peak, float(np.nanmax(np.abs(values))))
    return peak if peak > 0 else 1.0


def response_map(data: dict | None, method: str, lag_index: int, normalized: bool) -> hv.Image:
    """The response field around the kicked pixel at one lag (dx right = downstream), on the
    colour scale of that lag (:func:`map_scale`)."""
    ds = (data or {}).get("responses")
    label = ESTIMATORS[method].label
    # The same options with and without data: a map emptied (a new simulation) and filled
    # again is updated in place, and keeps the plot options of its first render. No
    # ``shared_axes=False`` here or in any figure: with it, HoloViews (1.23) can keep the ranges
    # of an earlier frame instead of recomputing them for each one (``framewise``).
    common = dict(
        width=250,
        height=230,
        framewise=True,
        cmap="RdBu_r",
        colorbar=True,
        tools=["hover"],
    )
    if ds is None or method not in methods_of(ds):
        img = hv.Image(np.zeros((2, 2)), ["dx", "dy"], "response", bounds=(-0.5, -0.5, 0.5, 0.5))
        return img.opts(title=f"{label}: waiting for results", clim=(-1.0, 1.0), **common)
    r, _ = _variable(ds, method, normalized)
    i = int(min(max(lag_index, 0), ds.sizes["lag"] - 1))
    field = r.isel(lag=i).transpose("dy", "dx")
    lag_value = float(ds["lag"].values[i])
    scale = map_scale(ds, i, normalized)
    img = hv.Image(
        (field["dx"].values, field["dy"].values, field.values),
        ["dx", "dy"],
        "response",
    )
    return img.opts(title=f"{label}, t = {lag_value:.3g}", clim=(-scale, scale), **common)


def snapshot_image(data: dict | None) -> hv.Image:
    """Member 0's field (live during a simulation), on the [0, 2π)² box."""
    field = (data or {}).get("field")
    title = (data or {}).get("title", "field snapshot")
    if field is None:
        field = np.zeros((2, 2))
    box = (0.0, 0.0, 2 * math.pi, 2 * math.pi)
    return hv.Image(np.asarray(field)[::-1], ["x", "y"], "field", bounds=box).opts(
        title=title,
        cmap="RdBu_r",
        symmetric=True,
        colorbar=True,
        tools=["hover"],
        width=340,
        height=300,
        framewise=True,
    )


def loss_overlay(data: pd.DataFrame) -> hv.Overlay:
    """Streaming training and validation loss of the score model (log scale)."""
    # Validation losses arrive every few reports only: drop the gaps so the line is drawn.
    curves = [
        hv.Curve(data.dropna(subset=[col]), "step", (col, "loss"), label=label).opts(
            color=color, tools=["hover"], framewise=True
        )
        for col, label, color in (
            ("train_loss", "train", "#1f77b4"),
            ("val_loss", "validation", "#d62728"),
        )
    ]
    return hv.Overlay(curves).opts(
        title="score-matching loss",
        logy=True,
        width=380,
        height=300,
        framewise=True,
        legend_position="top_right",
    )


def histogram_overlay(data: dict | None) -> hv.Overlay:
    """Histogram of the field's pixel values against a Gaussian of the same mean and variance."""
    values = (data or {}).get("values")
    if values is None or len(values) < 2:
        values = np.zeros(0)
        edges = np.linspace(-1, 1, 41)
        counts = np.zeros(40)
        x = np.linspace(-1, 1, 2)
        pdf = np.zeros(2)
    else:
        counts, edges = np.histogram(values, bins=60, density=True)
        mu, sd = float(np.mean(values)), float(np.std(values))
        x = np.linspace(edges[0], edges[-1], 200)
        sd = max(sd, 1e-12)
        pdf = np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    hist = hv.Histogram((edges, counts), kdims=["value"], vdims=["density"], label="field").opts(
        alpha=0.5, color="#1f77b4", line_alpha=0, framewise=True
    )
    gauss = hv.Curve((x, pdf), "value", "density", label="Gaussian, same variance").opts(
        color="#d62728", line_width=2, framewise=True
    )
    return (hist * gauss).opts(
        title="pixel values vs Gaussian",
        width=380,
        height=300,
        framewise=True,
        legend_position="top_right",
    )


class LazyFigure:
    """A HoloViews figure that is rendered the first time its data arrives.

    Until :meth:`show`, ``panel`` holds a one-line placeholder; ``show`` creates the figure
    (``make()``, DynamicMaps over the tab's streams, which already hold the data) and swaps it in
    once. Later data goes through the streams and patches the figure in place.
    """

    def __init__(self, make: Callable[[], Any], placeholder: str, width: int) -> None:
        self._make = make
        self.pane: pn.pane.HoloViews | None = None
        self.panel = pn.Column(
            pn.pane.Markdown(
                placeholder, width=width, styles={"color": "#666"}, sizing_mode="fixed"
            ),
            sizing_mode="fixed",
        )

    def show(self) -> None:
        if self.pane is None:
            # Not linked: Panel links the axis ranges of all its HoloViews panes by dimension
            # name by default, across figures and tabs (every "response" axis would share one
            # range). Each figure keeps its own ranges, recomputed for each new data.
            self.pane = pn.pane.HoloViews(self._make(), linked_axes=False, sizing_mode="fixed")
            self.panel[:] = [self.pane]


# The error table's columns in words (``gfdt_dash.response.error_table``'s names).
_TABLE_HEADERS = {
    "error": "relative error of the response",
    "error_raw": "relative error of the raw response (score methods)",
    "stein_error": "Stein-identity error ‖⟨x sᵀ⟩ + I‖/‖I‖",
}


def error_table_html(frame: pd.DataFrame) -> str:
    """The error table as a plain HTML table: every row shown, headers in words that wrap.

    ``frame`` has an ``estimator`` column and any of ``error``, ``error_raw``, ``stein_error``; the
    reference (the analytic response, else direct perturbation) is named in the caption.
    A plain table, not a grid widget: a handful of rows need no scrolling, and the page's HTML is
    replaced as a whole with each result.
    """
    if frame is None or frame.empty or "estimator" not in frame:
        return "<p style='color:#666'>No errors yet: they appear with the responses.</p>"
    labels = {m: spec.label for m, spec in ESTIMATORS.items()}
    columns = [c for c in _TABLE_HEADERS if c in frame]
    reference = reference_method(str(m) for m in frame["estimator"])
    cell = "padding:4px 10px;border-bottom:1px solid #ddd;text-align:right"
    head = "".join(
        f"<th style='{cell};white-space:normal;max-width:180px'>{_TABLE_HEADERS[c]}</th>"
        for c in columns
    )
    rows = []
    for _, row in frame.iterrows():
        method = str(row["estimator"])
        name = labels.get(method, method)
        if method == reference:
            name += " (reference)"
        values = "".join(
            f"<td style='{cell}'>{'—' if not np.isfinite(row[c]) else f'{row[c]:.3g}'}</td>"
            for c in columns
        )
        rows.append(
            f"<tr data-estimator='{method}'><td style='{cell};text-align:left'>{name}</td>"
            f"{values}</tr>"
        )
    caption = (
        f"Relative L2 error against {labels.get(reference, reference)}, over all lags at the "
        "kicked pixel and 3 cells downstream."
        if reference
        else ""
    )
    return (
        "<table class='gfdt-errors' style='border-collapse:collapse;font-size:14px'>"
        f"<caption style='caption-side:bottom;color:#555;font-size:12px'>{caption}</caption>"
        f"<thead><tr><th style='{cell};text-align:left'>method</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def results_table(frame: pd.DataFrame, height: int) -> pn.widgets.Tabulator:
    """A read-only table of results.

    Tabulator's own CSS makes its table ``visibility: visible``, which would paint it through the
    ``visibility: hidden`` of an inactive tab: it inherits its tab's visibility instead.
    """
    return pn.widgets.Tabulator(
        frame,
        disabled=True,
        show_index=False,
        layout="fit_data_stretch",
        height=height,
        stylesheets=[".tabulator { visibility: inherit !important; }"],
    )
