"""Long jobs off the event loop: a shared bounded job pool, a result cache and ``JobRunner``.

The dashboard's mutable module-level objects live here (and, for the worker processes, in
:mod:`gfdt_dash.ui.worker`), all bounded and thread-safe:

- the job pool shared by every browser session. Its size is ``GFDT_DASH_WORKERS`` or
  ``max(2, min(8, cores // 2))``: the classroom grids are small, so torch uses one intra-op
  thread per job and parallelism comes from running several sessions' jobs side by side; jobs
  beyond the pool size wait in a FIFO queue whose position each session sees. A pool thread only
  coordinates: the computations of its job run in a worker process (:mod:`gfdt_dash.ui.worker`),
  so the server's event loop is never starved of the interpreter lock;
- a small LRU cache of results keyed by (kind, config JSON, seed, device, ...), so that repeating
  a simulation or a response computation is instant. Cached objects are shared between sessions
  and must be treated as read-only.

``JobRunner`` runs one job at a time for one session: it submits ``fn(callback, should_stop)`` to
the pool, forwards throttled progress to the UI, cancels through a ``threading.Event`` and reports
the result or the error. Every UI update is marshalled onto the session's event loop through the
``schedule`` function it is given. With ``sync=True`` it runs jobs in the caller's thread (tests).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import param

from gfdt_dash.progress import Cancelled, Progress

__all__ = [
    "POOL_SIZE",
    "RESULTS",
    "JobContext",
    "JobRunner",
    "ResultCache",
    "jobs_in_pool",
    "simulation_key",
]

log = logging.getLogger(__name__)


def _pool_size() -> int:
    env = os.environ.get("GFDT_DASH_WORKERS")
    if env:
        return max(1, int(env))
    return max(2, min(8, (os.cpu_count() or 2) // 2))


POOL_SIZE = _pool_size()
_POOL = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="gfdt-job")
# Submitted jobs not yet started, FIFO: (token, function told the job's new 1-based position).
_WAITING: list[tuple[object, Callable[[int], None]]] = []
# Positions are told while the lock is held, so the notifications of one job reach it in the
# order the queue changed (a later, smaller position is never overwritten by an older one). A
# notifier only schedules a UI update; re-entrant because a synchronous one (tests) runs the
# session's watchers at once, which may submit another job.
_WAITING_LOCK = threading.RLock()


# Jobs submitted and not yet ended, of every session (their tokens).
_ACTIVE: set[object] = set()


def jobs_in_pool() -> int:
    """How many jobs, of all sessions, are queued or running in the pool."""
    with _WAITING_LOCK:
        return len(_ACTIVE)


def _enqueue(token: object, on_position: Callable[[int], None]) -> None:
    """Put a job at the end of the waiting queue and tell it its 1-based position."""
    with _WAITING_LOCK:
        _WAITING.append((token, on_position))
        on_position(len(_WAITING))


def _dequeue(token: object) -> None:
    """Take a job off the waiting queue and tell the jobs behind it their new positions (no
    polling: queue positions change only here)."""
    with _WAITING_LOCK:
        index = next((i for i, (t, _) in enumerate(_WAITING) if t is token), None)
        if index is None:
            return
        del _WAITING[index]
        for position, (_, notify) in enumerate(_WAITING[index:], start=index + 1):
            notify(position)


def _end(token: object) -> None:
    with _WAITING_LOCK:
        _ACTIVE.discard(token)


def _nbytes(value: Any) -> int:
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    return int(getattr(value, "nbytes", 0) or 0)


class ResultCache:
    """Thread-safe LRU cache bounded by entry count and by total bytes of its values."""

    def __init__(self, max_items: int = 12, max_bytes: int = 2**30) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key][0]

    def put(self, key: Hashable, value: Any) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return  # too big to keep; recomputing is the honest answer
        with self._lock:
            self._data[key] = (value, size)
            self._data.move_to_end(key)
            while len(self._data) > self.max_items or self._total() > self.max_bytes:
                self._data.popitem(last=False)

    def _total(self) -> int:
        return sum(size for _, size in self._data.values())

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


RESULTS = ResultCache()


def explain(exc: Exception) -> Exception:
    """The error a user should read: out-of-memory errors get what to do about them."""
    import torch

    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return MemoryError(
            "out of memory: this job needs more memory than the server has free; use fewer "
            "members, a smaller grid or a shorter record (other sessions are unaffected)"
        )
    return exc


class JobRunner(param.Parameterized):
    """Runs one job at a time for one session, with progress, ETA, queue position and cancel.

    ``schedule(fn)`` must run ``fn()`` on the session's event loop (it is called from worker
    threads); the ``on_*`` callbacks passed to :meth:`submit` therefore always run there.
    """

    running = param.Boolean(default=False, doc="a job is queued or running")
    job = param.String(default="", doc="name of the current job")
    stage = param.String(default="", doc="current stage of the job")
    fraction = param.Number(default=0.0, bounds=(0.0, 1.0), doc="progress of the stage")
    eta_s = param.Number(default=None, allow_None=True, doc="estimated seconds left in the stage")
    queue_position = param.Integer(default=0, doc="position in the shared pool's queue (0: runs)")

    def __init__(
        self,
        schedule: Callable[[Callable[[], None]], None],
        *,
        sync: bool = False,
        min_interval_s: float = 0.5,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self._schedule = schedule
        self.sync = sync
        self.min_interval_s = min_interval_s
        self._stop = threading.Event()
        self._future: Future | None = None
        self._closed = False
        # a queued job's withdrawal: ends it at once, without waiting for a pool thread
        self._withdraw: Callable[[], bool] | None = None

    # -- public ------------------------------------------------------------------------------
    def submit(
        self,
        name: str,
        fn: Callable[[Callable[[Progress], None], Callable[[], bool]], Any],
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
    ) -> bool:
        """Start ``fn(callback, should_stop)``; ``False`` if a job already runs or closed."""
        if self.running or self._closed:
            return False
        self._stop = threading.Event()
        stop = self._stop
        token = object()
        self.param.update(running=True, job=name, stage="queued", fraction=0.0, eta_s=None)
        last = [0.0]

        def callback(p: Progress) -> None:
            now = time.perf_counter()
            if now - last[0] < self.min_interval_s and p.done < p.total:
                return
            last[0] = now
            self._ui(lambda: self._show_progress(p, on_progress))

        def finish(kind: str, value: Any = None) -> None:
            self.param.update(running=False, stage=kind, queue_position=0, eta_s=None)
            if kind == "done":
                self.fraction = 1.0
                if on_done is not None:
                    on_done(value)
            elif kind == "cancelled":
                if on_cancel is not None:
                    on_cancel()
            elif on_error is not None:
                on_error(value)

        started = threading.Event()
        ended = threading.Lock()  # held by whoever ends a queued job first: pool thread or cancel

        def withdraw() -> bool:
            if started.is_set() or not ended.acquire(blocking=False):
                return False
            _dequeue(token)
            _end(token)
            self._ui(lambda: finish("cancelled"))
            return True

        def work() -> None:
            if not ended.acquire(blocking=False):
                return  # withdrawn while queued: already reported as cancelled
            try:
                run()
            finally:
                _end(token)

        def run() -> None:
            started.set()
            _dequeue(token)
            if stop.is_set():
                self._ui(lambda: finish("cancelled"))
                return
            self._ui(lambda: self.param.update(stage="starting", queue_position=0))
            try:
                result = fn(callback, stop.is_set)
            except Cancelled:
                self._ui(lambda: finish("cancelled"))
            except Exception as exc:  # shown to the user; the worker stays alive
                log.exception("job %s failed", name)
                exc = explain(exc)
                self._ui(lambda exc=exc: finish("error", exc))
            else:
                if stop.is_set():
                    self._ui(lambda: finish("cancelled"))
                else:
                    self._ui(lambda: finish("done", result))

        with _WAITING_LOCK:
            _ACTIVE.add(token)
        if self.sync:
            work()
            return True
        self._withdraw = withdraw
        _enqueue(token, lambda pos: self._ui(lambda: self._show_position(pos)))
        self._future = _POOL.submit(work)
        return True

    def cancel(self) -> None:
        """Stop the running job (its worker is stopped if it does not stop by itself, see
        :mod:`gfdt_dash.ui.worker`); a queued one is withdrawn at once and never starts."""
        self._stop.set()
        if self._withdraw is not None:
            self._withdraw()

    def close(self) -> None:
        """Cancel and refuse further jobs (the session is gone)."""
        self._closed = True
        self.cancel()

    @property
    def closed(self) -> bool:
        """The session is gone: no more jobs or UI updates."""
        return self._closed

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current job's worker returns (tests and shutdown)."""
        if self._future is not None:
            self._future.result(timeout=timeout)

    # -- internals ---------------------------------------------------------------------------
    def _ui(self, fn: Callable[[], None]) -> None:
        if self._closed and not self.sync:
            return
        if self.sync:
            fn()
        else:
            self._schedule(fn)

    def _show_position(self, position: int) -> None:
        if self.stage == "queued":  # a job that has started keeps position 0
            self.queue_position = position

    def _show_progress(self, p: Progress, on_progress: Callable[[Progress], None] | None) -> None:
        if not self.running:
            return
        self.param.update(stage=p.stage, fraction=min(1.0, max(0.0, p.fraction)), eta_s=p.eta_s)
        if on_progress is not None:
            on_progress(p)


class JobContext:
    """What a running job of a system tab sees: the config snapshot, progress/stop hooks, UI
    marshalling through its ``runner``, and what the job's stages have made so far."""

    def __init__(
        self, runner: JobRunner, config: Any, seed: int, device: str, model_path: Path | None
    ) -> None:
        self.runner = runner
        self.config = config
        self.seed = int(seed)
        self.device = device
        self.model_path = model_path
        self.callback: Callable[[Progress], None] | None = None
        self.should_stop: Callable[[], bool] | None = None
        self.sim: Any = None
        self.model: Any = None
        self.model_key: str | None = None
        self.preset = "classroom"
        self.train_steps = 2000

    def ui(self, fn: Callable[[], None]) -> None:
        self.runner._ui(fn)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with this job's progress and cancel hooks, in a worker
        process (``worker.call``) unless the runner runs jobs synchronously."""
        from gfdt_dash.ui import worker

        return worker.call(
            fn,
            *args,
            callback=self.callback,
            should_stop=self.should_stop,
            processes=False if self.runner.sync else None,
            **kwargs,
        )

    def require_simulation(self) -> Any:
        if self.sim is None:
            self.sim = RESULTS.get(simulation_key(self.config, self.seed, self.device))
        if self.sim is None:
            raise ValueError("run the simulation for these parameters first (or use Run all)")
        return self.sim

    def current_model(self) -> tuple[Any, str | None]:
        if self.model is not None and int(self.model.n) != self.config.n:
            raise ValueError(
                f"the score model is for a {self.model.n}×{self.model.n} grid, the simulation "
                f"is {self.config.n}×{self.config.n}; train or load a matching model"
            )
        return self.model, self.model_key


def simulation_key(config: Any, seed: int, device: str) -> tuple:
    """The result cache's key of a simulation: only the fields a simulation depends on (physics,
    grid, integrator, ensemble; :data:`gfdt_dash.pipeline.SIMULATION_GROUPS`), so a new kick δ or
    perturbation protocol reuses the simulation, as the pipeline's cache does."""
    from gfdt_dash.pipeline import SIMULATION_GROUPS

    return ("simulate", config.key(*SIMULATION_GROUPS), int(seed), device)
