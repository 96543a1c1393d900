"""gfdt-dash dashboard: ``panel serve app.py``."""

import panel as pn

from gfdt_dash.ui.app import create_app

if pn.state.served:
    create_app().servable(title="gfdt-dash")
