"""The page: template, tabs, about."""

from __future__ import annotations

import panel as pn

from gfdt_dash import __version__


def create_app() -> pn.template.BaseTemplate:
    pn.extension(sizing_mode="stretch_width")
    template = pn.template.FastListTemplate(
        title="gfdt-dash — response theory via generative score modelling",
        header_background="#1f4e79",
    )
    template.main.append(
        pn.pane.Markdown(f"gfdt-dash {__version__}: the dashboard is being built.")
    )
    return template
