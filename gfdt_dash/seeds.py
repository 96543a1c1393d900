"""Seeds: the one range every entry point accepts.

torch seeds a generator with a 64-bit value and folds anything else into that range (``-1``
seeds the same stream as ``2**64 - 1``), so two different seeds could silently give one ensemble.
Seeds are therefore checked where they enter — ``0 <= seed < 2**63`` — and refused otherwise.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["MAX_SEED", "check_seed", "derived_seed"]

MAX_SEED = 2**63  # exclusive


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an ``int`` if it is an integer with ``0 <= seed < 2**63``, else ``ValueError``
    naming ``name`` (booleans and floats are refused, even whole ones)."""
    if isinstance(seed, bool):
        raise ValueError(f"{name}: must be an integer, got {seed!r}")
    try:
        value = operator.index(seed)
    except TypeError:
        raise ValueError(f"{name}: must be an integer, got {seed!r}") from None
    if not 0 <= value < MAX_SEED:
        raise ValueError(f"{name}: {value} outside the allowed range 0 ≤ seed < 2**63")
    return value


def derived_seed(seed: int, offset: int) -> int:
    """A second, independent stream's seed, ``(seed + offset) mod 2**63`` (stays in range)."""
    return (check_seed(seed) + offset) % MAX_SEED
