"""The package as built into a wheel: its package list and its data files (the shipped score
models, the dashboard's logo), read from the installed copy, never from the source tree.

The full check (a fresh virtual environment with every dependency, a reproduction with the shipped
model and the dashboard's page) is ``.ci/wheel-check``, run by CI; this is its fast part.
"""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_listed_packages_are_those_of_the_source_tree():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    inits = (ROOT / "gfdt_dash").rglob("__init__.py")
    on_disk = [".".join(p.parent.relative_to(ROOT).parts) for p in inits]
    assert sorted(listed) == sorted([*on_disk, "gfdt_dash.assets"])


def test_the_wheel_carries_the_assets_and_the_installed_package_reads_them(tmp_path):
    src = tmp_path / "src"  # a copy, so the build leaves no build/ or egg-info in the repository
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("gfdt_dash", "assets"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", tmp_path / "dist", src], check=True)
    (wheel,) = (tmp_path / "dist").glob("gfdt_dash-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gfdt_dash/assets/gfdt.svg" in names
    for system in ("ou", "allen_cahn", "navier_stokes"):
        assert f"gfdt_dash/assets/models/{system}/model.safetensors" in names
        assert f"gfdt_dash/assets/models/{system}/metadata.json" in names
    # The README's illustrations are not package data.
    assert not [n for n in names if "/screenshots/" in n or "/report/" in n]

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import gfdt_dash\n"
        "from gfdt_dash.resources import asset_path\n"
        "from gfdt_dash.score import load_shipped, shipped_model_path\n"
        "site = Path(sys.argv[1]).resolve()\n"
        "for p in (Path(gfdt_dash.__file__), shipped_model_path('ou'), asset_path('gfdt.svg')):\n"
        "    assert site in p.resolve().parents, p\n"
        "assert load_shipped('ou', device='cpu').metadata['system'] == 'ou'\n"
        "assert '<svg' in asset_path('gfdt.svg').read_text(encoding='utf-8')\n"
    )
    # Only the installed copy on the path (the dependencies come from this environment).
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, site], cwd=outside, env=env, check=True)
