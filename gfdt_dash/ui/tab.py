"""``SystemTab``: the one generic tab reused for every system.

A tab is its controller (:mod:`gfdt_dash.ui.controller`: parameters, actions, jobs running the
core's pipeline stages, the state of the session's results) and its layout
(:mod:`gfdt_dash.ui.layout`: widgets, panes and figures that show that state).
"""

from __future__ import annotations

import panel as pn

from gfdt_dash.ui.controller import TabController
from gfdt_dash.ui.layout import TabLayout

__all__ = ["SystemTab"]


class SystemTab(TabLayout, TabController, pn.viewable.Viewer):
    """Simulate → score model → responses for one system, with live feedback.

    ``SystemTab(system, sync=False, limits=None, session_runners=None, **params)``: ``sync``
    runs jobs in the caller's thread (tests); ``limits`` are the server's job limits (default
    from the environment); ``session_runners`` is the list of job runners shared by the tabs of
    one browser session (the per-session job limit).
    """
