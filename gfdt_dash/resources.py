"""Where the package's data files are: the shipped score models and the dashboard's logo.

They live in the repository's top-level ``assets/`` folder, which the build installs as the
package ``gfdt_dash.assets`` (``package-dir`` in pyproject.toml), in a wheel and in an editable
install alike. A source tree used without installing it (on ``PYTHONPATH``) has no such package;
then the folder is read where it lies, beside the package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["asset_path"]


def asset_path(*parts: str) -> Path:
    """Path of ``assets/<parts...>``, e.g. ``asset_path("models", "ou", "model.safetensors")``.

    pip installs packages as folders on disk (never zipped), so this is a plain file path.
    """
    try:
        root = Path(files("gfdt_dash.assets"))
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[1] / "assets"
    return root.joinpath(*parts)
