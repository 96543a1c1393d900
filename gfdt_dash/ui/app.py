"""The page: template, one lazily built ``SystemTab`` per system, the Scans and About tabs."""

from __future__ import annotations

from pathlib import Path

import panel as pn

from gfdt_dash import __version__
from gfdt_dash.systems import SYSTEMS
from gfdt_dash.ui.jobs import POOL_SIZE
from gfdt_dash.ui.scans import ScansView
from gfdt_dash.ui.tab import SystemTab

__all__ = ["TITLE", "create_app"]

TITLE = "gfdt-dash — response theory via generative score modelling"
_ASSETS = Path(__file__).resolve().parents[2] / "assets"

ABOUT = """
## How the responses are predicted

Kick a stochastic field by a small **δ** at one pixel: how does the mean field respond downstream
over time? The *generalized fluctuation–dissipation theorem* answers from unperturbed data alone,
**R(t) = −⟨x(t) s(x(0))ᵀ⟩**, where **s = ∇ log p** is the score of the stationary density. Here the
score is **learned** by denoising score matching (a small circular U-Net), and compared with

- the **exact score** (Ornstein–Uhlenbeck and Allen–Cahn have closed forms),
- the **Gaussian** (quasi-Gaussian) estimate **C(t) C(0)⁻¹**,
- **direct perturbation** (paired runs with the same noise, the ground truth),
- the **analytic** response (Ornstein–Uhlenbeck only).

Score responses are shown **raw** and **normalized** (R(t)R(0)⁻¹); the raw one and the
Stein-identity error expose amplitude errors of the learned score. Bands are one standard error.

*Usage:* pick a preset (classroom runs in about a minute on two CPU cores, seconds with the shipped
model), press **Run all**, or go step by step: Simulate → Train/Load model → Compute responses.
Every job can be cancelled; results download as netCDF.

Method: Giorgini, Deck, Bischoff, Souza, *Response Theory via Generative Score Modeling*,
Phys. Rev. Lett. 133, 267302 (2024), arXiv:2402.01029. The presets are a reconstruction of that
study's settings from its public code, not values read from the paper.
"""


def _about() -> pn.viewable.Viewable:
    svg = (_ASSETS / "gfdt.svg").read_text(encoding="utf-8")
    return pn.Column(
        pn.pane.SVG(svg, width=640, height=220),
        pn.pane.Markdown(ABOUT),
        pn.pane.Markdown(
            f"gfdt-dash {__version__} · shared worker pool: {POOL_SIZE} job(s) at a time; "
            "further jobs queue (their position is shown)."
        ),
        name="About",
    )


def create_app(sync: bool = False) -> pn.template.BaseTemplate:
    """Build the page for one session (all state lives in the returned objects).

    Tabs are built the first time they are shown, so the first paint is quick. When the browser
    session closes, every job of its tabs is cancelled.
    """
    pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")
    holders = {system: pn.Column(name=cls.title) for system, cls in SYSTEMS.items()}
    built: dict[str, SystemTab] = {}
    runners: list = []  # every tab's job runner: the session's job limit counts them all
    scans = ScansView()
    tabs = pn.Tabs(
        *holders.values(),
        pn.Column(scans, name="Scans"),
        _about(),
        dynamic=True,
        sizing_mode="stretch_width",
    )

    def build(system: str) -> None:
        if system in built:
            return
        tab = SystemTab(system, sync=sync, session_runners=runners)
        built[system] = tab
        holders[system][:] = [tab]

    def on_active(event) -> None:
        systems = list(holders)
        if event.new < len(systems):
            build(systems[event.new])

    tabs.param.watch(on_active, "active")
    for holder in holders.values():
        holder.append(pn.indicators.LoadingSpinner(value=True, size=40))

    def close_session() -> None:
        for runner in runners:
            runner.close()

    def on_destroyed(_context) -> None:  # bokeh checks this exact one-argument signature
        close_session()

    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(on_destroyed)
        pn.state.onload(lambda: build(next(iter(holders))))
    else:
        build(next(iter(holders)))

    # Bootstrap, not Fast: the Fast design always fetches a Google font, and the app must work
    # (and its page must load without errors) on machines without internet access.
    template = pn.template.BootstrapTemplate(
        title=TITLE, header_background="#1f4e79", main=[tabs], main_max_width="1800px"
    )
    template.tabs = tabs  # for tests and scripting
    template.system_tabs = built
    template.scans = scans
    template.close_session = close_session
    return template
