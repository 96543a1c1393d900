"""Validated config fields: ``spec(...)`` declares a dataclass field with its bounds and the
metadata the dashboard's widgets read; ``check_field`` checks one value against them.

Shared by the system configs (:mod:`gfdt_dash.systems.config`) and the score configs
(:mod:`gfdt_dash.score.config`). An error names the field and its allowed range.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

__all__ = ["check_field", "spec"]


def spec(
    default: Any,
    lo: float | None = None,
    hi: float | None = None,
    doc: str = "",
    unit: str = "",
    *,
    integer: bool = False,
    lo_open: bool = False,
    choices: tuple[Any, ...] | None = None,
    group: str | None = None,
) -> Any:
    """A dataclass field with validation bounds and UI metadata; ``group`` says which part of a
    run the field belongs to (a system config's fields: see ``SystemConfig.GROUPS``)."""
    meta = {
        "lo": lo,
        "hi": hi,
        "doc": doc,
        "unit": unit,
        "integer": integer,
        "lo_open": lo_open,
        "choices": choices,
        "group": group,
    }
    return field(default=default, metadata=meta)


def check_field(name: str, value: Any, meta: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` fits the metadata of :func:`spec`."""
    choices = meta.get("choices")
    if choices is not None:
        if value not in choices:
            raise ValueError(
                f"{name}: {value!r} not allowed; allowed: {', '.join(map(str, choices))}"
            )
        return
    if isinstance(value, bool):
        return
    if meta["integer"]:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name}: must be an integer, got {value!r}")
    elif not isinstance(value, int | float):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    lo, hi = meta["lo"], meta["hi"]
    bracket = "(" if meta["lo_open"] else "["
    allowed = f"{bracket}{lo}, {hi}]"
    if lo is not None and (value < lo or (meta["lo_open"] and value == lo)):
        raise ValueError(f"{name}: {value!r} outside the allowed range {allowed}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}: {value!r} outside the allowed range {allowed}")
