"""Validated config fields: ``spec(...)`` declares a dataclass field with its bounds and the
metadata the dashboard's widgets read; ``check_field`` checks one value against them.

Shared by the system configs (:mod:`gfdt_dash.systems.config`) and the score configs
(:mod:`gfdt_dash.score.config`). An error names the field and its allowed range.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import field
from typing import Any

import numpy as np

__all__ = ["check_field", "is_integer", "is_number", "spec"]


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
    run the field belongs to (a system config's fields: see ``SystemConfig.GROUPS``). A field
    whose default is ``True`` or ``False`` takes exactly those two values."""
    if choices is None and isinstance(default, bool):
        choices = (False, True)
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


def is_integer(value: Any) -> bool:
    """``value`` is an integer (Python or numpy), not a boolean (``True`` is not a count)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_number(value: Any) -> bool:
    """``value`` is a real number (Python or numpy, integer or float), not a boolean."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar of its kind (``np.int64(3)`` → ``3``); anything else
    as it is."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def _is_choice(value: Any, choice: Any) -> bool:
    """``value`` equals ``choice`` and is of its kind: ``1`` is not ``True``, ``1.0`` not ``1``
    of a choice of names."""
    if isinstance(value, bool) != isinstance(choice, bool):
        return False
    if isinstance(choice, str) and not isinstance(value, str):
        return False
    try:
        return bool(value == choice)
    except (TypeError, ValueError):  # arrays and other objects without a plain equality
        return False


def check_field(name: str, value: Any, meta: dict[str, Any]) -> Any:
    """Raise ``ValueError`` naming ``name`` unless ``value`` fits the metadata of :func:`spec`;
    return the value as a plain Python scalar (numpy scalars are accepted and converted).

    Booleans are refused for numeric fields (``True`` is not a member count), and a field with
    choices takes exactly one of them (``1`` is not ``True``).
    """
    value = _plain(value)
    choices = meta.get("choices")
    if choices is not None:
        if not any(_is_choice(value, c) for c in choices):
            raise ValueError(
                f"{name}: {value!r:.80} not allowed; allowed: {', '.join(map(str, choices))}"
            )
        return value
    if isinstance(value, bool):
        kind = "an integer" if meta["integer"] else "a number"
        raise ValueError(f"{name}: must be {kind}, got {value!r}")
    if meta["integer"]:
        if not isinstance(value, int):
            raise ValueError(f"{name}: must be an integer, got {value!r:.80}")
    else:
        if not isinstance(value, numbers.Real):
            raise ValueError(f"{name}: must be a number, got {value!r:.80}")
        try:
            value = float(value)  # 2 and 2.0 are one value
        except OverflowError:
            value = math.inf if value > 0 else -math.inf
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    lo, hi = meta["lo"], meta["hi"]
    bracket = "(" if meta["lo_open"] else "["
    allowed = f"{bracket}{lo}, {hi}]"
    shown = repr(value)
    if isinstance(value, int) and abs(value) > 10**30:  # too long to print whole
        digits = round(value.bit_length() * math.log10(2))
        shown = f"{'-' if value < 0 else ''}an integer of {digits} digits"
    if lo is not None and (value < lo or (meta["lo_open"] and value == lo)):
        raise ValueError(f"{name}: {shown} outside the allowed range {allowed}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}: {shown} outside the allowed range {allowed}")
    return value
