"""Pure plotting functions of state, and the figures that they update in place.

The live figures (field snapshot, loss curve, histogram) are ``DynamicMap``s over a ``Pipe`` (or
``Buffer``), created once per tab; a new frame is *sent* to the stream, the bokeh models are
patched, nothing is rebuilt; ``LazyFigure`` defers their first render to their first data. The
response figures (downstream panels and maps, :class:`ResponseFigures`) are bokeh figures built
here, each method a glyph with its own data source, that a result updates in place (data,
ranges, titles): HoloViews took 0.16 s of the server's time per panel and 0.57 s for the maps
to draw them the first time, more than the product allows between a result and its figure.
``results_table`` is the read-only table of results.
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
from bokeh.layouts import gridplot
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    Grid,
    HoverTool,
    Image,
    Line,
    LinearColorMapper,
    Patch,
    Range1d,
    Scatter,
)
from bokeh.plotting import figure as bokeh_figure
from holoviews.plotting.util import process_cmap

from gfdt_dash.response.methods import ESTIMATORS, applicable_methods, reference_method

__all__ = [
    "DRAW_ORDER",
    "CurvesFigure",
    "LazyFigure",
    "MapsFigure",
    "ResponseFigures",
    "error_table_html",
    "histogram_overlay",
    "loss_overlay",
    "method_legend_html",
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


def _curve(
    ds: xr.Dataset, method: str, dx: int, normalized: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lag, response, stderr) of one method at ``dx`` cells downstream, finite values only
    (empty arrays when the method or the cell is not in ``ds``)."""
    empty = np.empty(0)
    if method not in methods_of(ds) or dx not in ds["dx"].values:
        return empty, empty, empty
    r, e = _variable(ds, method, normalized)
    r = r.sel(dy=0, dx=dx)
    keep = np.isfinite(r.values)
    if not keep.any():
        return empty, empty, empty
    return ds["lag"].values[keep], r.values[keep], e.sel(dy=0, dx=dx).values[keep]


def _padded(lo: float, hi: float, fraction: float) -> tuple[float, float]:
    """[lo, hi] widened by ``fraction`` of its span each side (a span of 0 by ``fraction`` of
    its value, or of 1)."""
    span = hi - lo
    if not span > 0:
        span = max(abs(hi), 1.0)
    return lo - fraction * span, hi + fraction * span


def _set_range(rng: Range1d, lo: float, hi: float) -> None:
    """The range's extent and the one the *reset* tool returns to (that of the data shown)."""
    rng.update(start=lo, end=hi, reset_start=lo, reset_end=hi)


_TOOLS = "save,pan,wheel_zoom,box_zoom,reset"


class CurvesFigure:
    """Response vs lag at ``dx`` cells downstream of the kick: one bokeh figure with a band
    (± 1 standard error) and a line per method of ``methods``, direct perturbation, the truth,
    as markers on top (the methods' drawing order).

    ``update(ds, normalized)`` puts a result in (``None`` empties it): the figure's data
    sources, its axis ranges (its own, recomputed from the data shown) and its title change in
    place, nothing is rebuilt. ``ds`` is the combined result (dims estimator, lag, dy, dx).
    """

    def __init__(self, dx: int, methods: tuple[str, ...] | None = None) -> None:
        self.dx = dx
        fig = bokeh_figure(
            width=440,
            height=260,
            tools=_TOOLS,
            x_range=Range1d(0.0, 1.0),
            y_range=Range1d(0.0, 1.0),
            x_axis_label=LAG_LABEL,
            y_axis_label="response per unit kick",
        )
        fig.toolbar.logo = None
        _no_grid(fig)
        self._sources: dict[str, tuple[ColumnDataSource, ColumnDataSource]] = {}
        shown = []
        for method, label, color in _slots(methods):
            # add_glyph, not fig.patch/line/scatter: those add a selection, non-selection,
            # hover and muted copy of each glyph, models to build, send and draw for nothing
            band = ColumnDataSource({"lag": [], "edge": []})
            fig.add_glyph(
                band, Patch(x="lag", y="edge", fill_color=color, fill_alpha=0.2, line_alpha=0)
            )
            points = ColumnDataSource({"lag": [], "response": [], "stderr": []})
            if ESTIMATORS[method].markers:
                glyph = Scatter(x="lag", y="response", size=7, fill_color=color, line_color="black")
            else:
                glyph = Line(x="lag", y="response", line_color=color, line_width=2)
            shown.append(fig.add_glyph(points, glyph, name=label))
            self._sources[method] = (band, points)
        fig.add_tools(
            HoverTool(
                renderers=shown,
                tooltips=[
                    ("method", "$name"),
                    ("lag", "@lag"),
                    ("response", "@response"),
                    ("stderr", "@stderr"),
                ],
            )
        )
        self.model = fig

    def update(self, ds: xr.Dataset | None, normalized: bool = True) -> None:
        x_lo = y_lo = np.inf
        x_hi = y_hi = -np.inf
        for method, (band, points) in self._sources.items():
            lag = resp = err = np.empty(0)
            if ds is not None:
                lag, resp, err = _curve(ds, method, self.dx, normalized)
            points.data = {"lag": lag, "response": resp, "stderr": err}
            band.data = {
                "lag": np.concatenate([lag, lag[::-1]]),
                "edge": np.concatenate([resp + err, (resp - err)[::-1]]),
            }
            if lag.size:
                x_lo, x_hi = min(x_lo, lag.min()), max(x_hi, lag.max())
                y_lo = min(y_lo, float(np.min(resp - err)), float(resp.min()))
                y_hi = max(y_hi, float(np.max(resp + err)), float(resp.max()))
        if np.isfinite(x_lo):
            _set_range(self.model.x_range, *_padded(float(x_lo), float(x_hi), 0.02))
            _set_range(self.model.y_range, *_padded(y_lo, y_hi, 0.05))
        else:
            _set_range(self.model.x_range, 0.0, 1.0)
            _set_range(self.model.y_range, 0.0, 1.0)
        name = (
            "kicked pixel"
            if self.dx == 0
            else (f"{self.dx} cell{'s' if self.dx > 1 else ''} downstream")
        )
        kind = "normalized R(t)R(0)⁻¹" if normalized else "raw R(t)"
        self.model.title.text = f"{name} — {kind}"


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


class MapsFigure:
    """The response field around the kicked pixel at one lag (dx right = downstream), one map
    per method of ``methods``, three to a row, on one colour scale: ± the largest magnitude of
    any map at that lag (:func:`map_scale`).

    ``update(ds, lag_index, normalized)`` puts a result in (``None`` empties the maps: "waiting
    for results"); images, ranges, titles and the colour scale change in place.
    """

    def __init__(self, methods: tuple[str, ...] | None = None) -> None:
        self.mapper = LinearColorMapper(palette=process_cmap("RdBu_r", 256), low=-1.0, high=1.0)
        self._maps: dict[str, tuple[Any, ColumnDataSource, str]] = {}
        slots = _slots(methods)
        n_cols = 3
        for i, (method, label, _) in enumerate(slots):
            # Small multiples: every map shows the same neighbourhood on the same colour scale,
            # so the dy axis is drawn on the first of each row, the dx axis under the last map
            # of each column and one colour bar beside the first row (the browser reads the
            # styles of every axis each time it lays the page out: fewer axes, faster pages).
            fig = bokeh_figure(
                frame_width=200,  # room for the longest title
                frame_height=200,
                min_border_right=15,
                tools=_TOOLS,
                x_range=Range1d(-0.5, 0.5),
                y_range=Range1d(-0.5, 0.5),
                x_axis_label="dx",
                y_axis_label="dy",
                x_axis_location="below" if i + n_cols >= len(slots) else None,
                y_axis_location="left" if i % n_cols == 0 else None,
            )
            _no_grid(fig)
            source = ColumnDataSource(_image_data(None))
            fig.add_glyph(
                source,
                Image(image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=self.mapper),
            )
            if i == min(n_cols, len(slots)) - 1:
                fig.add_layout(
                    ColorBar(color_mapper=self.mapper, width=8, title="response"), "right"
                )
            fig.add_tools(
                HoverTool(tooltips=[("dx", "$x{0}"), ("dy", "$y{0}"), ("response", "@image")])
            )
            self._maps[method] = (fig, source, label)
        self.model = gridplot(
            [fig for fig, _, _ in self._maps.values()], ncols=n_cols, toolbar_location="right"
        )
        self.model.toolbar.logo = None

    def update(self, ds: xr.Dataset | None, lag_index: int = 0, normalized: bool = True) -> None:
        i = scale = lag_value = None
        if ds is not None:
            i = int(min(max(lag_index, 0), ds.sizes["lag"] - 1))
            scale = map_scale(ds, i, normalized)
            lag_value = float(ds["lag"].values[i])
        self.mapper.update(low=-(scale or 1.0), high=scale or 1.0)
        for method, (fig, source, label) in self._maps.items():
            field = None
            if ds is not None and method in methods_of(ds):
                field = _variable(ds, method, normalized)[0].isel(lag=i).transpose("dy", "dx")
            data = _image_data(field)
            source.data = data
            x0, y0 = data["x"][0], data["y"][0]
            _set_range(fig.x_range, x0, x0 + data["dw"][0])
            _set_range(fig.y_range, y0, y0 + data["dh"][0])
            waiting = field is None
            fig.title.text = (
                f"{label}: waiting for results" if waiting else f"{label}, t = {lag_value:.3g}"
            )


def _no_grid(fig: Any) -> None:
    """No grid lines (as in the app's HoloViews figures): fewer things to lay out and paint."""
    fig.center = [r for r in fig.center if not isinstance(r, Grid)]


def _image_data(field: xr.DataArray | None) -> dict[str, list]:
    """An image glyph's data: the field (dims dy, dx; row 0 at the smallest dy, drawn at the
    bottom) with pixels centred on its coordinates, or a blank 2×2 on [-0.5, 0.5]²."""
    if field is None:
        return {"image": [np.zeros((2, 2))], "x": [-0.5], "y": [-0.5], "dw": [1.0], "dh": [1.0]}
    dx, dy = field["dx"].values.astype(float), field["dy"].values.astype(float)
    step_x = float(dx[1] - dx[0]) if dx.size > 1 else 1.0
    step_y = float(dy[1] - dy[0]) if dy.size > 1 else 1.0
    return {
        "image": [np.asarray(field.values, dtype=float)],
        "x": [float(dx[0]) - step_x / 2],
        "y": [float(dy[0]) - step_y / 2],
        "dw": [step_x * dx.size],
        "dh": [step_y * dy.size],
    }


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
        self.panel = pn.Column(_placeholder(placeholder, width), sizing_mode="fixed")

    def show(self) -> None:
        if self.pane is None:
            # Not linked: Panel links the axis ranges of all its HoloViews panes by dimension
            # name by default, across figures and tabs (every "response" axis would share one
            # range). Each figure keeps its own ranges, recomputed for each new data.
            self.pane = pn.pane.HoloViews(self._make(), linked_axes=False, sizing_mode="fixed")
            self.panel[:] = [self.pane]


def _placeholder(text: str, width: int) -> pn.pane.Markdown:
    return pn.pane.Markdown(text, width=width, styles={"color": "#666"}, sizing_mode="fixed")


class ResponseFigures:
    """A tab's response figures: the downstream panels (:class:`CurvesFigure`, in a row that
    wraps) above ``middle`` (e.g. a heading and the lag slider) and the maps
    (:class:`MapsFigure`) below it.

    ``panel`` holds placeholders until the first responses: :meth:`update` with ``reveal``
    then builds every figure with them and swaps them all in with one change of ``panel``, so
    the browser lays the page out once for all of them (it lays out the whole page for each
    change of a layout's children). Later responses, an empty result (``None``) or another
    lag or normalization change the figures' data, ranges and titles in place.
    """

    def __init__(self, methods: tuple[str, ...], middle: list[Any]) -> None:
        self.methods = methods
        self.curves: list[CurvesFigure] = []
        self.maps: MapsFigure | None = None
        self._middle = middle
        self._waiting = _placeholder(
            "No responses yet: press **Compute responses** (or **Run all**).", 440
        )
        self.panel = pn.Column(
            self._waiting, *middle, _placeholder("The maps appear with the responses.", 900)
        )

    @property
    def shown(self) -> bool:
        return self.panel[0] is not self._waiting

    @property
    def prepared(self) -> bool:
        return self.maps is not None

    def prepare(self) -> None:
        """Build the figures (bokeh models, not yet in the page), once: what the first
        responses then cost is only filling them in and sending them."""
        if self.maps is None:
            self.curves = [CurvesFigure(dx, self.methods) for dx in range(N_DOWNSTREAM)]
            self.maps = MapsFigure(self.methods)

    def update(
        self,
        ds: xr.Dataset | None,
        normalized: bool,
        lag_index: int,
        reveal: bool = False,
        maps_only: bool = False,
    ) -> None:
        """Put ``ds`` (``None``: no responses) into the figures drawn; with ``reveal`` and
        responses, draw them first if they are not yet."""
        if not self.shown:
            if not (reveal and ds is not None):
                return
            self.prepare()
            self._fill(ds, normalized, lag_index, maps_only=False)
            self.panel[:] = [
                pn.FlexBox(*(_bokeh_pane(f.model) for f in self.curves)),
                *self._middle,
                _bokeh_pane(self.maps.model),
            ]
            return
        self._fill(ds, normalized, lag_index, maps_only)

    def _fill(self, ds: xr.Dataset | None, normalized: bool, lag_index: int, maps_only: bool):
        if not maps_only:
            for figure in self.curves:
                figure.update(ds, normalized)
        self.maps.update(ds, lag_index, normalized)


def _bokeh_pane(model: Any) -> pn.pane.Bokeh:
    return pn.pane.Bokeh(model, sizing_mode="fixed")


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
