"""The server's event loop: scheduling onto a session, and pacing the heavy UI work of all sessions.

One thread serves every browser session. Building a tab's widgets or rendering a HoloViews figure
for the first time takes a few hundred milliseconds of it, and callbacks that are ready together
run back to back before the loop reads its sockets again: twenty students opening the page at
once, or several figures arriving together, used to hold every session's clicks for seconds.
``PACER`` runs such work one piece at a time, in submission order across sessions. While other
sessions' pieces wait, it leaves the loop free after each piece for at least as long as the piece
took, so that their clicks are answered between them, and so it does while jobs of several
sessions are in the job pool (their figures are on the way); a session alone (one user, say)
gets its pieces one after the other with only a short gap (``gap_s``) for the loop to read its
sockets, so its figures are not kept waiting for nobody.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["PACER", "Pacer", "schedule_on"]

log = logging.getLogger(__name__)

Schedule = Callable[[Callable[[], None]], None]


def schedule_on(doc: Any) -> Schedule:
    """A function that runs callbacks on ``doc``'s event loop (directly when not served); its
    ``session`` attribute is ``doc`` (the pacer tells sessions apart by it)."""
    if doc is None or getattr(doc, "session_context", None) is None:
        return lambda fn: fn()
    from panel.io.state import set_curdoc

    def schedule(fn: Callable[[], None]) -> None:
        def run() -> None:
            with set_curdoc(doc):
                fn()

        try:
            doc.add_next_tick_callback(run)  # bokeh: thread-safe; runs holding the doc's lock
        except Exception:  # the session has been destroyed meanwhile
            log.debug("dropped a UI update for a closed session")

    schedule.session = doc  # type: ignore[attr-defined]
    return schedule


def _session(schedule: Schedule) -> Any:
    """The session a schedule serves (the schedule itself when it does not say)."""
    return getattr(schedule, "session", schedule)


class Pacer:
    """Runs submitted callbacks one at a time with the event loop left free between them.

    ``submit(schedule, fn)`` queues ``fn`` to run through its session's ``schedule`` (so under
    that session's document lock); ``first=True`` queues it ahead of the others (a tab the user
    opens waits for no figure of another session). After a callback the pacer waits
    ``max(gap_s, its duration)`` before dispatching the next if a callback of another session
    (another ``schedule``) is waiting or ``crowded()`` says other sessions are at work, else
    ``gap_s``. A callback its session never runs
    (the session closed) holds the queue for ``stall_s`` at most. Outside a running event loop
    (scripts, tests) ``fn`` runs at once. ``call_later(delay_s, fn)`` defaults to the running
    asyncio loop's.
    """

    def __init__(
        self,
        gap_s: float = 0.05,
        stall_s: float = 5.0,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        crowded: Callable[[], bool] = lambda: False,
    ) -> None:
        self.gap_s = gap_s
        self.crowded = crowded
        self.stall_s = stall_s
        self._call_later = call_later
        self._first: deque[tuple[Schedule, Callable[[], None]]] = deque()
        self._queue: deque[tuple[Schedule, Callable[[], None]]] = deque()
        self._lock = threading.Lock()
        self._busy = False
        self._turn = 0  # number of the callback dispatched last
        self._ended = 0  # number of the last callback that ended (or was given up on)

    def submit(self, schedule: Schedule, fn: Callable[[], None], first: bool = False) -> None:
        call_later = self._call_later
        if call_later is None:
            try:
                call_later = asyncio.get_running_loop().call_later
            except RuntimeError:  # not on an event loop: nobody to keep waiting
                fn()
                return
        with self._lock:
            (self._first if first else self._queue).append((schedule, fn))
            if self._busy:
                return
            self._busy = True
        self._dispatch(call_later)

    def pending(self) -> int:
        """Callbacks waiting for their turn (the one running not included)."""
        with self._lock:
            return len(self._first) + len(self._queue)

    def _dispatch(self, call_later: Callable[[float, Callable[[], None]], Any]) -> None:
        with self._lock:
            if not (self._first or self._queue):
                self._busy = False
                return
            schedule, fn = (self._first or self._queue).popleft()
            self._turn += 1
            turn = self._turn

        def run() -> None:
            start = time.perf_counter()
            try:
                fn()
            finally:
                self._end(turn, schedule, time.perf_counter() - start, call_later)

        schedule(run)
        call_later(self.stall_s, lambda: self._end(turn, schedule, 0.0, call_later))

    def _end(
        self,
        turn: int,
        schedule: Schedule,
        duration_s: float,
        call_later: Callable[[float, Callable[[], None]], Any],
    ) -> None:
        with self._lock:
            if turn <= self._ended:  # already moved on (ran after all, or the watchdog)
                return
            self._ended = turn
            mine = _session(schedule)
            others = any(_session(s) != mine for s, _ in (*self._first, *self._queue))
        wait = max(self.gap_s, duration_s) if others or self.crowded() else self.gap_s
        call_later(wait, lambda: self._dispatch(call_later))


def _several_jobs() -> bool:
    """Jobs of more than one session are in the shared pool (one job per session at a time by
    default, :class:`gfdt_dash.ui.limits.Limits`)."""
    from gfdt_dash.ui.jobs import jobs_in_pool

    return jobs_in_pool() > 1


# The server's pacer, shared by every session (see the module docstring).
PACER = Pacer(crowded=_several_jobs)
