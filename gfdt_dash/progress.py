"""Progress reporting and cancellation for long loops.

Every long function of the core takes ``callback`` (called with a :class:`Progress`) and
``should_stop`` (a no-argument callable returning ``True`` to cancel). Neither knows about any UI.
The reporter throttles callbacks to a few per second so that a fast loop does not flood a GUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cancelled", "Progress", "ProgressCallback", "Reporter", "StopCheck"]


class Cancelled(RuntimeError):
    """Raised inside a long loop when its ``should_stop`` check returns ``True``."""


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``done``/``total`` count work units of ``stage`` (steps, batches, experiments);
    ``eta_s`` is the estimated time left in seconds (``None`` until it can be estimated);
    ``info`` carries stage-specific live data (e.g. ``{"loss": 0.3}`` or a snapshot array).
    """

    stage: str
    done: int
    total: int
    elapsed_s: float
    eta_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 1.0


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]


class Reporter:
    """Throttled progress reporter and cancellation point for one stage of work.

    ``update(done, **info)`` reports at most every ``min_interval_s`` seconds (always the first
    and the last unit) and raises :class:`Cancelled` when ``should_stop()`` is true.
    """

    def __init__(
        self,
        stage: str,
        total: int,
        callback: ProgressCallback | None = None,
        should_stop: StopCheck | None = None,
        min_interval_s: float = 0.25,
    ) -> None:
        for name, fn in (("callback", callback), ("should_stop", should_stop)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name}: must be a callable or None, got {fn!r:.60}")
        self.stage = stage
        self.total = int(total)
        self.callback = callback
        self.should_stop = should_stop
        self.min_interval_s = min_interval_s
        self._t0 = time.perf_counter()
        self._last = -float("inf")

    def check(self) -> None:
        """Raise :class:`Cancelled` if the caller asked to stop."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"{self.stage} cancelled")

    def due(self, done: int) -> bool:
        """Whether a report for ``done`` would be sent now (lets callers skip costly ``info``)."""
        if self.callback is None:
            return False
        return done >= self.total or time.perf_counter() - self._last >= self.min_interval_s

    def update(self, done: int, force: bool = False, **info: Any) -> None:
        self.check()
        if self.callback is None or not (force or self.due(done)):
            return
        now = time.perf_counter()
        self._last = now
        elapsed = now - self._t0
        eta = elapsed * (self.total - done) / done if 0 < done < self.total else None
        if done >= self.total:
            eta = 0.0
        self.callback(Progress(self.stage, int(done), self.total, elapsed, eta, dict(info)))
