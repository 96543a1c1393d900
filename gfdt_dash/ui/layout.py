"""The widgets, panes and figures of a system tab: what :class:`gfdt_dash.ui.tab.SystemTab` shows.

The live figures are ``DynamicMap``s over streams (``views.py``) that the controller's results are
sent to, the response figures bokeh figures updated in place (``views.ResponseFigures``), all
through the ``_draw_*`` methods. The figures are rendered only when their first data arrives (a
one-line placeholder until then): rendering empty HoloViews figures server-side made up most of
the time a new session's page took to appear. The panes (model, diagnostics, error table,
verdict, out-of-date mark, downloads, buttons) are refreshed by the ``_update_*`` methods.
"""

from __future__ import annotations

import contextlib
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr

from gfdt_dash.systems import system_spec
from gfdt_dash.ui import views
from gfdt_dash.ui.controller import model_differences
from gfdt_dash.ui.pacing import PACER
from gfdt_dash.ui.params import NumberField, mirror_widgets

__all__ = ["METHOD_TEXT", "TabLayout"]

METHOD_TEXT = """
Kick a stochastic field by a small **δ** at one pixel: how does the mean field respond downstream
over time? The *generalized fluctuation–dissipation theorem* answers from unperturbed data alone,
**R(t) = −⟨x(t) s(x(0))ᵀ⟩**, where **s = ∇ log p** is the score of the stationary density. Here the
score is **learned** by denoising score matching (a small circular U-Net), and compared with

- the **exact score** (Ornstein–Uhlenbeck and Allen–Cahn have closed forms),
- the **Gaussian** (quasi-Gaussian) estimate **C(t) C(0)⁻¹**,
- **direct perturbation** (paired runs with the same noise, the ground truth),
- the **analytic** response (Ornstein–Uhlenbeck only).

Score responses are shown **raw** and **normalized** (R(t)R(0)⁻¹); the raw one and the
Stein-identity error expose amplitude errors of the learned score. Bands are one standard error;
lags are in the model's time units.
"""


class TabLayout:
    """The view half of a system tab (mixed into :class:`gfdt_dash.ui.tab.SystemTab` before
    the controller, whose state it reads and whose ``_draw_*``/``_update_*`` calls it answers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.methods = views.system_methods(self.system)
        # streams (figures are created in __panel__, once)
        self._snapshot = hv.streams.Pipe(data={})
        self._hist = hv.streams.Pipe(data={})
        self._losses = hv.streams.Buffer(views.empty_loss_frame(), length=50_000, index=False)
        self._layout: pn.viewable.Viewable | None = None
        self._figures: dict[str, views.LazyFigure] = {}  # filled by _build_layout
        self._response_figures: views.ResponseFigures | None = None  # ditto

    # -- results into the figures (event loop) -----------------------------------------------
    def _draw_snapshot(self, field: np.ndarray, title: str) -> None:
        self._snapshot.send({"field": field, "title": title})
        self._reveal("snapshot")

    def _draw_histogram(self, values: np.ndarray) -> None:
        self._hist.send({"values": values})
        self._reveal("hist")

    def _clear_losses(self) -> None:
        self._losses.clear()

    def _draw_losses(self, rows: pd.DataFrame) -> None:
        self._losses.send(rows[list(views.empty_loss_frame().columns)])
        self._reveal("losses")

    def _prepare_responses(self) -> None:
        """Build the response figures ahead of their data (one paced callback; not sent to the
        browser until the responses arrive): called when a simulation is shown, whose
        responses may follow."""
        figures = self._response_figures
        if figures is not None and not figures.prepared and not self.runner.closed:
            PACER.submit(self._schedule, figures.prepare)

    def _batch(self) -> contextlib.AbstractContextManager:
        """Changes made inside reach the browser as one document patch (see ``_batched``)."""
        return _batched(self._doc)

    def _draw_responses(self, combined: xr.Dataset | None) -> None:
        """Put the responses into their figures (``None`` empties them).

        The four downstream panels and the maps (:class:`~gfdt_dash.ui.views.ResponseFigures`)
        are bokeh figures whose data sources, ranges and titles are set in place. Figures built
        already (drawn, or prepared while the job ran) are filled at once, in the caller's
        callback: with the error table, in one document patch (``_batch``), so the browser lays
        the page out once for the results. Otherwise, or while other sessions' work waits for
        the event loop or their jobs run (``PACER``), one paced callback builds and draws them
        all (with the tab's responses of its own time, the latest).
        """
        figures = self._response_figures
        if self.runner.closed or figures is None:
            return
        if combined is None and not figures.shown:
            return  # nothing drawn to empty

        def draw() -> None:
            with _batched(self._doc):
                figures.update(self.responses, self.normalized, self.lag_index, reveal=True)

        if figures.prepared and not PACER.pending() and not PACER.crowded():
            draw()
        else:
            PACER.submit(self._schedule, draw)

    def _on_view_option(self, event: param.parameterized.Event) -> None:
        """Raw/normalized redraws every response figure, the lag only the maps (in place)."""
        with _batched(self._doc):
            self._response_figures.update(
                self.responses,
                self.normalized,
                self.lag_index,
                maps_only=event.name == "lag_index",
            )

    def _update_downloads(self) -> None:
        if hasattr(self, "_dl_sim"):
            self._dl_sim.disabled = self.sim is None
            self._dl_resp.disabled = self.responses is None

    def _reveal(self, *names: str) -> None:
        """Render these HoloViews figures (snapshot, histogram, loss) if not yet shown (once;
        their streams update them afterwards).

        Each figure is one paced callback (``PACER``: every session's clicks are answered
        between them) whose changes go to the browser as one document patch, with one walk over
        the document's models (``_batched``).
        """
        if self.runner.closed:  # the session is gone: nothing to render for
            return
        for name in names:
            figure = self._figures.get(name)
            if figure is not None and figure.pane is None:
                PACER.submit(self._schedule, lambda f=figure: self._show(f))

    def _show(self, figure: views.LazyFigure) -> None:
        with _batched(self._doc):
            figure.show()  # once, if revealed twice before its turn

    def _model_pane_text(self) -> str:
        text = _markdown_table("Model in use", self.model_info)
        if self.model is not None:
            try:
                diff = model_differences(self.model, self.config())
            except ValueError:
                diff = ""
            if diff:
                text += (
                    f"\n\n⚠ **Trained for other parameters:** {diff}. Its learned score "
                    "does not describe these parameters: Run all trains a matching one."
                )
        return text

    def _update_model_pane(self) -> None:
        if hasattr(self, "_model_pane"):
            self._model_pane.object = self._model_pane_text()
            self._diag_pane.object = _markdown_table("Score diagnostics", self.diagnostics)

    def _update_table(self) -> None:
        if hasattr(self, "_table"):
            self._table.object = views.error_table_html(self.error_table)
            # Shown or not by its style, not ``visible``: the browser lays the whole page out
            # again each time a pane is shown or hidden, and this one comes with the results.
            self._verdict.styles = _VERDICT_STYLE if self.verdict else {}
            self._verdict.object = self.verdict

    def _update_stale(self, *_: Any) -> None:
        if not hasattr(self, "_stale"):
            return
        reason = self.stale_reason()
        self._stale.object = (
            f"<div class='gfdt-stale' style='background:#fff3cd;border:1px solid #e0a800;"
            f"padding:2px 10px;border-radius:4px;font-size:0.9em;box-sizing:border-box;"
            f"max-height:{_STALE_HEIGHT}px;overflow:auto'>⚠ <b>Out of date:</b> the results "
            f"below were computed before these changes: {reason}. Press <b>Run all</b> to "
            "recompute.</div>"
            if reason
            else ""
        )
        self._results.styles = {"opacity": "0.45"} if reason else {"opacity": "1"}
        self._update_model_pane()

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build_layout()
        return self._layout

    def _parameters_card(self) -> pn.Card:
        """The parameter widgets, in a card whose content is built when first opened (about a
        third of a new page's cost on the server otherwise)."""
        card = pn.Card(title="Parameters", collapsed=True)

        def on_toggle(event: param.parameterized.Event) -> None:
            if not event.new and not card.objects:
                card[:] = [mirror_widgets(self.mirror, self._on_input_error)]

        card.param.watch(on_toggle, "collapsed")
        return card

    def _number(self, p: param.Integer) -> NumberField:
        lo, hi = p.bounds
        return NumberField(
            self,
            p.name,
            p.label,
            integer=True,
            lo=lo,
            hi=hi,
            doc=p.doc,
            on_error=self._on_input_error,
        )

    def _build_layout(self) -> pn.viewable.Viewable:
        btn = pn.widgets.Button.from_param
        self._buttons = {
            "run_all": btn(self.param.run_all, color="primary"),
            "simulate": btn(self.param.simulate),
            "train": btn(self.param.train),
            "load_model": btn(self.param.load_model),
            "compute": btn(self.param.compute),
            "cancel": btn(self.param.cancel, color="danger"),
        }
        save = btn(self.param.save_model)
        device = pn.widgets.Select.from_param(
            self.param.device,
            options=["cpu", "cuda", "mps"],
            disabled_options=self._devices_disabled,
        )
        progress = pn.indicators.Progress(value=0, max=1000, sizing_mode="stretch_width")
        queue = pn.pane.Markdown("", margin=(0, 10))

        def on_progress(*_: Any) -> None:
            r = self.runner
            progress.value = int(1000 * r.fraction)
            # a cancelled or failed job's bar stops where it was, greyed
            progress.bar_color = {"done": "success", "cancelled": "secondary"}.get(
                r.stage, "secondary" if r.stage == "error" else "primary"
            )
            if r.running and r.queue_position:
                queue.object = f"queued: position {r.queue_position} in the shared pool"
            elif r.running:
                eta = f" — ETA {r.eta_s:.0f} s" if r.eta_s else ""
                queue.object = f"**{r.job}** · {r.stage}{eta}"
            else:
                queue.object = f"{r.job}: {r.stage}" if r.job else ""

        self.runner.param.watch(on_progress, ["fraction", "stage", "queue_position", "running"])

        summary = self._summary = pn.pane.Markdown(
            self.job_summary(), styles={"font-size": "0.9em"}
        )

        def on_edit(*_: Any) -> None:
            summary.object = self.job_summary()
            self._update_buttons()

        self.mirror.param.watch(on_edit, list(self.config_cls.field_specs()))
        self.param.watch(on_edit, ["train_steps"])

        self._model_pane = pn.pane.Markdown(_markdown_table("Model in use", self.model_info))
        self._diag_pane = pn.pane.Markdown(_markdown_table("Score diagnostics", self.diagnostics))
        self._table = pn.pane.HTML(views.error_table_html(self.error_table))
        self._verdict = pn.pane.Markdown(
            self.verdict, styles=_VERDICT_STYLE if self.verdict else {}
        )
        # A line of fixed height, always there (empty while the results are up to date): the
        # browser lays the whole page out again each time a pane is shown or hidden or changes
        # size, and this one changes with every edit.
        self._stale = pn.pane.HTML("", height=_STALE_HEIGHT, sizing_mode="stretch_width")
        self._dl_sim = pn.widgets.FileDownload(
            callback=lambda: self.netcdf_bytes("simulation"),
            filename=f"{self.system}_simulation.nc",
            label="Download simulation (netCDF)",
            disabled=True,
        )
        self._dl_resp = pn.widgets.FileDownload(
            callback=lambda: self.netcdf_bytes("responses"),
            filename=f"{self.system}_responses.nc",
            label="Download responses (netCDF)",
            disabled=True,
        )

        b = self._buttons
        # The buttons are switched on and off through the group around them (see _update_buttons)
        groups = self._button_groups = {
            "start": [
                _ButtonGroup(b["run_all"], pn.Row(b["simulate"], b["compute"])),
                _ButtonGroup(b["train"]),
            ],
            "cancel": [_ButtonGroup(b["cancel"])],
            "load": [_ButtonGroup(b["load_model"])],
        }
        for group, off in self._buttons_off().items():  # the state the page is built with
            for box in groups[group]:
                for button in box.select(pn.widgets.Button):
                    button.disabled = off
        controls = pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.preset),
            device,
            self._number(self.param.seed),
            summary,
            groups["start"][0],
            pn.Row(groups["start"][1], groups["cancel"][0]),
            self._number(self.param.train_steps),
            _rule(),
            pn.widgets.Select.from_param(self.param.model_source),
            groups["load"][0],
            self._model_pane,
            pn.Row(pn.widgets.TextInput.from_param(self.param.model_name, label="save as"), save),
            _rule(),
            self._parameters_card(),
            width=340,
        )

        methods = self.methods
        self.param.watch(self._on_view_option, ["normalized", "lag_index"])

        # Built on first data, not here: see views.LazyFigure.
        fig = self._figures
        fig["snapshot"] = views.LazyFigure(
            lambda: hv.DynamicMap(views.snapshot_image, streams=[self._snapshot]),
            "Field snapshot: shown live once a simulation runs.",
            width=340,
        )
        fig["losses"] = views.LazyFigure(
            lambda: hv.DynamicMap(views.loss_overlay, streams=[self._losses]),
            "Score-matching loss: shown once a model is trained or loaded.",
            width=380,
        )
        fig["hist"] = views.LazyFigure(
            lambda: hv.DynamicMap(views.histogram_overlay, streams=[self._hist]),
            "Pixel values vs Gaussian: shown once a simulation finishes.",
            width=380,
        )
        self._response_figures = views.ResponseFigures(
            methods,
            middle=[
                pn.pane.Markdown(
                    "### Response maps (dx right = downstream; colours: ± the largest "
                    "value at that lag)"
                ),
                pn.widgets.IntSlider.from_param(self.param.lag_index),
            ],
        )

        status = pn.pane.Markdown(self.param.status, margin=(0, 10))
        self._results = pn.Column(
            pn.FlexBox(fig["snapshot"].panel, fig["losses"].panel, fig["hist"].panel),
            pn.pane.Markdown("### Response at the kicked pixel and downstream"),
            pn.Card(
                pn.pane.Markdown(METHOD_TEXT),
                title="How are the responses predicted?",
                collapsed=True,
            ),
            pn.Row(
                pn.widgets.Checkbox.from_param(self.param.normalized, width=120),
                pn.pane.HTML(views.method_legend_html(methods)),
            ),
            self._response_figures.panel,
            pn.Row(
                pn.Column("### Error against the reference", self._table),
                pn.Column(self._diag_pane),
            ),
            pn.Row(self._dl_sim, self._dl_resp),
            sizing_mode="stretch_width",
        )
        main = pn.Column(
            pn.pane.Markdown(system_spec(self.system).story, styles={"font-size": "0.95em"}),
            pn.Row(status, queue),
            progress,
            self._stale,
            self._verdict,
            self._results,
            sizing_mode="stretch_width",
        )
        self.mirror.param.watch(self._update_stale, list(self.config_cls.field_specs()))
        self.param.watch(self._update_stale, ["seed"])
        layout = pn.Row(controls, main, sizing_mode="stretch_width")
        # State that arrived before the layout was built (e.g. results of a synchronous job).
        if self.sim is not None:
            self._reveal("snapshot", "hist")
        if len(self._losses.data):
            self._reveal("losses")
        if self.responses is not None:
            self._draw_responses(self.responses)
        self._update_stale()
        self._update_buttons()
        return layout

    def _update_buttons(self) -> None:
        """Buttons that start jobs are off while a job runs or the inputs are refused; Cancel is
        on while a job runs.

        They are switched through the disabled flag of the group around them (``_ButtonGroup``):
        the browser sets that on its buttons' elements, whereas each button whose own flag
        changes is drawn again with a layout of the whole page (twelve of them per job). A
        button's own flag holds only the state the page was built with (a group's flag reaches
        its buttons when it changes, not when they are first drawn): it is cleared once, the
        first time its group is switched on.
        """
        for group, off in self._buttons_off().items():
            for box in getattr(self, "_button_groups", {}).get(group, []):
                box.disabled = off
                if not off:
                    for button in box.select(pn.widgets.Button):
                        button.disabled = False

    def _buttons_off(self) -> dict[str, bool]:
        running, refused = self.runner.running, bool(self.refusal())
        return {"start": running or refused, "cancel": not running, "load": running}

    def button_disabled(self, name: str) -> bool:
        """Whether the button ``name`` (a key of ``_buttons``) is off in the browser: by its own
        flag or its group's."""
        button = self._buttons[name]
        return button.disabled or any(
            box.disabled
            for boxes in self._button_groups.values()
            for box in boxes
            if button in box.select(pn.widgets.Button)
        )

    def _update_summary(self) -> None:
        if hasattr(self, "_summary"):
            self._summary.object = self.job_summary()
        self._update_buttons()


_STALE_HEIGHT = 62  # px: the out-of-date line, three lines of text (it scrolls beyond)

_VERDICT_STYLE = {"background": "#eef6ee", "padding": "2px 12px", "border-radius": "4px"}


class _ButtonGroup(pn.Column):
    """A column of buttons switched on and off together by its ``disabled`` flag (bokeh's
    ``disabled`` of a layout, which the browser passes on to the buttons' elements without
    drawing them again)."""

    disabled = param.Boolean(default=False, doc="Whether the buttons inside are off.")


def _batched(doc: Any) -> contextlib.AbstractContextManager:
    """Hold ``doc``'s change events and freeze its model graph: what is changed inside goes to
    the browser as one document patch when the block ends, and bokeh walks the document's models
    once for it, not once per figure (nothing without a document)."""
    if getattr(doc, "models", None) is None:
        return contextlib.nullcontext()
    return pn.io.hold(doc, freeze=True)


def _rule() -> pn.pane.HTML:
    # Not pn.layout.Divider: its stylesheet is always fetched from the CDN (offline machines).
    return pn.pane.HTML("<hr style='margin:4px 0'>", sizing_mode="stretch_width")


def _markdown_table(title: str, values: dict[str, Any]) -> str:
    if not values:
        return f"**{title}:** none yet"
    rows = []
    for k, v in values.items():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        rows.append(f"| {k} | {text} |")
    return f"**{title}**\n\n| | |\n|---|---|\n" + "\n".join(rows)
