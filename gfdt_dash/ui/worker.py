"""The dashboard's heavy computations run in worker processes, not in the web server's process.

A job's stages (simulate, train, diagnose, responses) are Python loops over small tensors: in a
thread of the server they would hold the interpreter lock most of the time and starve the event
loop that serves every browser session. Instead each of the ``POOL_SIZE`` threads of the shared
job pool (:mod:`gfdt_dash.ui.jobs`) hands its computation to one of as many **worker processes**
with :func:`call`:

- a worker is a spawned single-process executor with one torch thread, started at a lower CPU
  priority (``GFDT_DASH_JOB_NICE``, default 10) so that page loads and clicks win over jobs;
- progress reports come back through a queue and are passed to the job's ``callback``;
  cancelling sets a shared flag that the worker's ``should_stop`` reads; a job that has not
  stopped ``CANCEL_GRACE_S`` later (a stage between two checks of the flag, or a worker still
  starting) is ended by killing its worker, which is replaced, so a cancel takes effect within
  about a second whatever the job is doing;
- results and exceptions come back through the executor's pipe. These are objects the server's
  own child computed from the server's own inputs (never a file, upload or network payload, which
  never go through pickle);
- a worker that dies (killed for lack of memory, say) fails only its own job, with a message that
  says so, and is replaced by a fresh one; other jobs carry on. The server never writes to a
  worker's progress queue and never waits for its feeder thread, so a worker killed while holding
  the queue's lock (mid-report) cannot hang the server's shutdown.

``GFDT_DASH_JOB_PROCESSES=0`` runs the computations in the pool's threads instead (one process;
what the tests' synchronous runners always do). Workers stop with the server (Linux: the kernel
signals them when it exits).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = [
    "WorkerDied",
    "call",
    "enabled",
    "shutdown",
    "start",
]

log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often a waiting job thread checks for cancellation
_DRAIN_S = 5.0  # at most this long for a finished job's last progress reports to arrive
CANCEL_GRACE_S = 1.0  # a cancelled job still running this long after the request is killed


class _Killed(Exception):
    """The worker was killed to end a cancelled job (raised as ``Cancelled`` by :func:`call`)."""


class WorkerDied(RuntimeError):
    """The worker process running a job ended without a result (e.g. killed for memory)."""


def enabled() -> bool:
    """Whether :func:`call` uses worker processes (``GFDT_DASH_JOB_PROCESSES``, default on)."""
    raw = os.environ.get("GFDT_DASH_JOB_PROCESSES", "1").strip().lower()
    return raw not in ("0", "false", "no", "off")


def _nice() -> int:
    raw = os.environ.get("GFDT_DASH_JOB_NICE", "10")
    try:
        return max(0, min(19, int(raw)))
    except ValueError as exc:
        raise ValueError(f"GFDT_DASH_JOB_NICE: {raw!r} is not an integer 0 … 19") from exc


# -- inside a worker process ------------------------------------------------------------------
_progress_queue: Any = None
_cancelled: Any = None


def _init_worker(progress_queue: Any, cancelled: Any, nice: int, plugins: tuple = ()) -> None:
    global _progress_queue, _cancelled
    _progress_queue, _cancelled = progress_queue, cancelled
    if sys.platform.startswith("linux"):  # end with the server, even if it is killed
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    with contextlib.suppress(OSError):
        os.nice(nice)
    import torch

    torch.set_num_threads(1)
    # The server's plug-in systems (GFDT_DASH_PLUGINS, inherited, and the files the server had
    # loaded when this worker started): their configs arrive pickled by class name.
    from gfdt_dash.systems import load_plugins, plugins_from_env

    plugins_from_env()
    load_plugins(plugins)


def _warm() -> int:
    """Import what jobs need, so the first job does not pay for it."""
    import gfdt_dash.response
    import gfdt_dash.score
    import gfdt_dash.systems  # noqa: F401  (all three: bound to the one name gfdt_dash)

    return os.getpid()


def _run(job_id: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    def callback(p: Any) -> None:
        _progress_queue.put((job_id, p))

    def should_stop() -> bool:
        return _cancelled.value == job_id

    try:
        return fn(*args, callback=callback, should_stop=should_stop, **kwargs)
    finally:
        _progress_queue.put((job_id, None))  # end marker: every report of the job is ahead of it


# -- in the server process --------------------------------------------------------------------
def _plugins() -> tuple[str, ...]:
    from gfdt_dash.systems import loaded_plugins

    return loaded_plugins()


class _Worker:
    """One worker process with its progress queue, cancel flag and progress dispatcher."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.progress = ctx.Queue()
        # Only workers write to it: nothing of the server waits for its feeder thread at exit
        # (a worker killed mid-report leaves the queue's write lock taken for good).
        self.progress.cancel_join_thread()
        self._closed = threading.Event()
        self.cancelled = ctx.Value("q", 0, lock=False)
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.progress, self.cancelled, _nice(), _plugins()),
        )
        self.job_id = 0
        self.callback: Callable[[Any], None] | None = None
        self._lock = threading.Lock()
        self._drained = threading.Event()  # the current job's end marker has been dispatched
        self.warm = self.executor.submit(_warm)
        self._reader = threading.Thread(target=self._dispatch, daemon=True, name="gfdt-progress")
        self._reader.start()

    def _dispatch(self) -> None:
        while not self._closed.is_set():
            try:
                item = self.progress.get(timeout=0.5)
            except queue.Empty:
                continue
            except Exception:  # the queue is closed (shutdown) or a message is unreadable
                return
            job_id, p = item
            with self._lock:
                current = job_id == self.job_id
                callback = self.callback if current else None
            if p is None:
                if current:
                    self._drained.set()
                continue
            if callback is not None:
                try:
                    callback(p)
                except Exception:  # a UI hiccup must not stop progress for later jobs
                    log.exception("progress callback failed")

    def run(
        self,
        job_id: int,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        callback: Callable[[Any], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> Any:
        with self._lock:
            self.job_id, self.callback = job_id, callback
            self._drained.clear()
        try:
            future = self.executor.submit(_run, job_id, fn, args, kwargs)
            asked: float | None = None  # when the cancel was passed on to the worker
            while True:
                try:
                    future.result(timeout=_POLL_S)
                    break
                except FutureTimeout:
                    if should_stop is None or not should_stop():
                        continue
                    if asked is None:
                        self.cancelled.value = job_id
                        asked = time.monotonic()
                    elif time.monotonic() - asked > CANCEL_GRACE_S:
                        self.kill()
                        raise _Killed() from None
                except BrokenProcessPool:
                    raise  # no end marker will come
                except BaseException:
                    break  # the job's own exception: raised below, after its last reports
            self._drained.wait(_DRAIN_S)
            return future.result()
        finally:
            with self._lock:
                self.callback = None

    def kill(self) -> None:
        """End the worker process now (a cancelled job that does not stop by itself)."""
        # ProcessPoolExecutor has no public way to stop a running call (3.14 adds one).
        for proc in list(getattr(self.executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()

    def close(self) -> None:
        self._closed.set()
        self.executor.shutdown(wait=False, cancel_futures=True)


_ids = itertools.count(1)
_idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
_all: list[_Worker] = []
_all_lock = threading.Lock()


def start(n: int) -> int:
    """Start workers until ``n`` run (in the background), so that the first jobs find them warm;
    returns how many were started (0 once they run, or with worker processes disabled)."""
    if not enabled():
        return 0
    with _all_lock:
        missing = max(0, n - len(_all))
        for _ in range(missing):
            worker = _Worker()
            _all.append(worker)
            _idle.put(worker)
    return missing


def _take() -> _Worker:
    try:
        return _idle.get_nowait()
    except queue.Empty:
        worker = _Worker()
        with _all_lock:
            _all.append(worker)
        return worker


def _replace() -> None:
    """Start a fresh idle worker in place of a killed one (it warms up in the background)."""
    worker = _Worker()
    with _all_lock:
        _all.append(worker)
    _idle.put(worker)


def _retire(worker: _Worker) -> None:
    with _all_lock:
        if worker in _all:
            _all.remove(worker)
    worker.close()


def call(
    fn: Callable[..., Any],
    *args: Any,
    callback: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    processes: bool | None = None,
    **kwargs: Any,
) -> Any:
    """``fn(*args, callback=…, should_stop=…, **kwargs)``, in a worker process when enabled.

    ``fn`` must be a module-level function and its arguments and result picklable. Exceptions
    raised by ``fn`` (``Cancelled`` included) are raised here; a worker that dies raises
    :class:`WorkerDied`.
    """
    if not (enabled() if processes is None else processes):
        return fn(*args, callback=callback, should_stop=should_stop, **kwargs)
    from gfdt_dash.progress import Cancelled

    worker = _take()
    try:
        result = worker.run(next(_ids), fn, args, kwargs, callback, should_stop)
    except _Killed:
        _retire(worker)
        _replace()
        raise Cancelled("cancelled (its worker process was stopped)") from None
    except BrokenProcessPool as exc:
        _retire(worker)
        raise WorkerDied(
            "the worker process running this job stopped unexpectedly (most likely killed "
            "for lack of memory): use fewer members, a smaller grid or a shorter record; "
            "other sessions are unaffected"
        ) from exc
    except BaseException:
        _idle.put(worker)
        raise
    _idle.put(worker)
    return result


@atexit.register
def shutdown() -> None:
    """Stop every worker (at exit; tests)."""
    with _all_lock:
        workers = list(_all)
        _all.clear()
    while True:
        try:
            _idle.get_nowait()
        except queue.Empty:
            break
    for worker in workers:
        worker.close()
