"""The page: template, one lazily built ``SystemTab`` per registered system (plug-ins named in
``GFDT_DASH_PLUGINS`` included), the Scans and About tabs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import panel as pn

from gfdt_dash import __version__
from gfdt_dash.resources import asset_path
from gfdt_dash.systems import SYSTEMS, plugins_from_env
from gfdt_dash.ui.jobs import POOL_SIZE
from gfdt_dash.ui.pacing import PACER, schedule_on
from gfdt_dash.ui.scans import ScansView
from gfdt_dash.ui.tab import SystemTab

__all__ = ["TITLE", "create_app"]

TITLE = "gfdt-dash — response theory via generative score modelling"

ABOUT = """
## About

Each system tab says what to look for at its top, explains the four ways of predicting a response
where the responses are shown (*How are the responses predicted?*) and, after a run, says what the
results show.

*Usage:* pick a preset (classroom: under a minute on two CPU cores when it trains its own model,
seconds with the shipped one; each tab shows its estimate), press **Run all**, or go step by step:
Simulate → Train/Load model → Compute responses. Every job can be cancelled; results download as
netCDF. The *Scans* tab runs and shows parameter
scans: how each method's error changes with a parameter.

Method: Giorgini, Deck, Bischoff, Souza, *Response Theory via Generative Score Modeling*,
Phys. Rev. Lett. 133, 267302 (2024), arXiv:2402.01029. The presets are a reconstruction of that
study's settings from its public code, not values read from the paper.
"""


def _about() -> pn.viewable.Viewable:
    svg = asset_path("gfdt.svg").read_text(encoding="utf-8")
    return pn.Column(
        pn.pane.SVG(svg, width=640, height=220),
        pn.pane.Markdown(ABOUT),
        pn.pane.Markdown(
            f"gfdt-dash {__version__} · shared job pool: {POOL_SIZE} job(s) at a time, each "
            "in a worker process; further jobs queue (their position is shown)."
        ),
        name="About",
    )


def create_app(sync: bool = False) -> pn.template.BaseTemplate:
    """Build the page for one session (all state lives in the returned objects).

    One system tab per registered system, after loading the plug-in files of
    ``GFDT_DASH_PLUGINS`` (paths separated by ``:``). The system tabs and the Scans tab are
    built the first time they are shown (the first system tab once the page has loaded), one
    paced callback each (:mod:`gfdt_dash.ui.pacing`), so a new page costs the server little.
    When the browser session closes, every job of its tabs is cancelled.
    """
    pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")
    plugins_from_env()  # GFDT_DASH_PLUGINS: each plug-in system gets a tab (idempotent)
    runners: list = []  # every tab's job runner: the session's job limit counts them all
    factories: dict[str, tuple[str, Callable[[], pn.viewable.Viewer]]] = {
        system: (cls.title, partial(SystemTab, system, sync=sync, session_runners=runners))
        for system, cls in SYSTEMS.items()
    }
    factories["scans"] = ("Scans", partial(ScansView, sync=sync, session_runners=runners))
    holders = {
        key: pn.Column(pn.indicators.LoadingSpinner(value=True, size=40), name=title)
        for key, (title, _) in factories.items()
    }
    keys = list(holders)
    built: dict[str, pn.viewable.Viewer] = {}
    tabs = pn.Tabs(
        *holders.values(),
        _about(),
        # Not dynamic: a dynamic Tabs re-renders a tab's whole content (figures included) on
        # the server each time it is shown again; here switching tabs costs the server nothing.
        dynamic=False,
        sizing_mode="stretch_width",
    )

    def build(key: str) -> None:
        if key not in built:
            built[key] = factories[key][1]()
            holders[key][:] = [built[key]]

    schedule = schedule_on(None if sync else pn.state.curdoc)

    def on_active(event) -> None:
        if event.new < len(keys):
            PACER.submit(schedule, partial(build, keys[event.new]), first=True)

    tabs.param.watch(on_active, "active")

    def close_session() -> None:
        for runner in runners:
            runner.close()

    def on_destroyed(_context) -> None:  # bokeh checks this exact one-argument signature
        close_session()

    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(on_destroyed)
        # paced: twenty pages opened at once would otherwise build their tabs back to back
        pn.state.onload(lambda: PACER.submit(schedule, partial(build, keys[0]), first=True))
    else:
        build(keys[0])

    # Bootstrap, not Fast: the Fast design always fetches a Google font, and the app must work
    # (and its page must load without errors) on machines without internet access.
    # No busy indicator: Panel keeps every session's indicator in one process-wide list and
    # updates all of them on every event of any session (cost grows with the square of the
    # number of sessions); each tab shows its own job progress instead.
    template = pn.template.BootstrapTemplate(
        title=TITLE,
        header_background="#1f4e79",
        main=[tabs],
        main_max_width="1800px",
        busy_indicator=None,
    )
    template.tabs = tabs  # for tests and scripting
    template.views = built  # the tabs built so far: SystemTab by system name, ScansView "scans"
    template.close_session = close_session
    return template
