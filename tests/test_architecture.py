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


def test_system_names_are_spelt_out_in_at_most_three_modules_outside_the_systems_package():
    """What a system can do is declared in its registry entry (gfdt_dash.systems.registry);
    other modules ask the registry instead of testing for a name. String constants equal to a
    built-in system's name (not docstrings or comments) are counted per module."""
    import ast
    from pathlib import Path

    from gfdt_dash.systems import BUILTIN_SYSTEMS

    root = Path(gfdt_dash.__file__).parent
    assert len(BUILTIN_SYSTEMS) == 3
    spelt = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "systems":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        lines = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in BUILTIN_SYSTEMS
        ]
        if lines:
            spelt[str(rel)] = lines
    # today: score/shipped.py (the shipped models' training settings) and ui/scans.py (the
    # system a new scan starts with)
    assert len(spelt) <= 3, spelt
