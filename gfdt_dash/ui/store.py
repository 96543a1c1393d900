"""Where the dashboard saves and finds files: score models in
``<store>/models/<system>/<name>.safetensors``, finished scans in ``<store>/scans/<name>/scan.nc``.

The store root is ``$GFDT_DASH_STORE`` or ``./store``. Names typed by users are sanitised
(letters, digits, ``-``, ``_``, ``.``; no leading dot; at most 64 characters), so a name can never
leave its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "MODEL_SUFFIX",
    "model_path",
    "sanitize_name",
    "saved_models",
    "saved_scans",
    "scan_path",
    "store_root",
]

MODEL_SUFFIX = ".safetensors"
_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def store_root() -> Path:
    return Path(os.environ.get("GFDT_DASH_STORE", "store")).resolve()


def sanitize_name(name: str, what: str = "model name") -> str:
    """A safe file stem from user text (``ValueError`` if nothing usable is left)."""
    stem = _BAD.sub("_", name.strip()).removesuffix(MODEL_SUFFIX)
    stem = stem.lstrip("._")[:64].rstrip(".")
    if not stem.strip("_"):
        raise ValueError(f"{what}: {name!r} has no usable characters (use letters, digits, -_.)")
    return stem


def model_path(system: str, name: str) -> Path:
    folder = store_root() / "models" / sanitize_name(system)
    path = (folder / f"{sanitize_name(name)}{MODEL_SUFFIX}").resolve()
    if path.parent != folder.resolve():  # belt and braces: sanitising already forbids this
        raise ValueError(f"model name: {name!r} leaves the store folder")
    return path


def saved_models(system: str) -> list[Path]:
    folder = store_root() / "models" / sanitize_name(system)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{MODEL_SUFFIX}"))


def scan_path(name: str) -> Path:
    """``<store>/scans/<name>/scan.nc`` for a sanitised ``name`` (never outside the store)."""
    folder = (store_root() / "scans").resolve()
    path = (folder / sanitize_name(name, "scan name") / "scan.nc").resolve()
    if path.parent.parent != folder:
        raise ValueError(f"scan name: {name!r} leaves the store folder")
    return path


def saved_scans() -> list[str]:
    """Names of the finished scans in the store (folders holding a ``scan.nc``)."""
    folder = store_root() / "scans"
    if not folder.is_dir():
        return []
    return sorted(
        p.parent.name
        for p in folder.glob("*/scan.nc")
        if p.is_file() and not p.parent.is_symlink() and _is_clean(p.parent.name)
    )


def _is_clean(name: str) -> bool:
    try:
        return sanitize_name(name, "scan name") == name
    except ValueError:
        return False
