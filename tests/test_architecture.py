"""The numerical core never imports the UI stack (panel, holoviews, bokeh): the dashboard is a
layer over the core, which scripts use without it."""

import pkgutil
import subprocess
import sys

import gfdt_dash


def test_core_does_not_import_panel_holoviews_or_bokeh():
    core = [
        m.name
        for m in pkgutil.walk_packages(gfdt_dash.__path__, "gfdt_dash.")
        if not m.name.startswith("gfdt_dash.ui") and m.name != "gfdt_dash.__main__"
    ]
    assert "gfdt_dash.systems.simulate" in core
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'panel', 'holoviews', 'bokeh'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
