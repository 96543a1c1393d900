"""How many threads torch uses in a process: one policy for every entry point.

The library never calls :func:`set_threads` (it does not change process-wide state); the entry
points do, once at start-up: the command line (``--threads`` on every subcommand), the dashboard
(``app.py``; its job worker processes run one thread each), the scan workers (``gfdt_dash.scan``)
and the benchmarks. A script that uses the library directly keeps torch's own default (one thread
per core) unless it calls :func:`set_threads` itself.

**The default is one intra-op thread.** Measured on a 2-core machine shared with other jobs
(README, "Threads"): a second thread made the systems' steps 7–200× slower at the classroom
sizes and 1.8–12× slower at the paper sizes, and score training 2–4× slower (torch's OpenMP
threads spin-wait for each other, and a thread that loses its core stalls every parallel region);
on an idle machine the default took the same wall time as one thread for 1.6× the CPU.
Parallelism comes from running several processes (the dashboard's worker pool, the scan's Dask
workers) rather than from threads inside one.

``"auto"`` is for a machine one has to oneself: ``OMP_NUM_THREADS`` if that is set, otherwise the
cores this process may run on (``os.sched_getaffinity``) shared among ``processes`` workers.
"""

from __future__ import annotations

import argparse
import os

__all__ = [
    "AUTO",
    "DEFAULT_THREADS",
    "parse_threads",
    "resolve_threads",
    "set_threads",
    "threads_arg",
]

AUTO = "auto"
DEFAULT_THREADS = 1
_MAX_THREADS = 1024


def parse_threads(value: int | str | None) -> int | str | None:
    """Validate a thread setting: an integer ``>= 1``, ``"auto"``, or ``None`` (the default)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"threads: expected an integer >= 1 or 'auto', got {text!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_THREADS:
        raise ValueError(
            f"threads: expected an integer 1 … {_MAX_THREADS} or 'auto', got {value!r}"
        )
    return value


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_threads(value: int | str | None = None, *, processes: int = 1) -> int:
    """The thread count a setting stands for (see the module docstring); ``processes`` is how
    many worker processes share the machine under ``"auto"``."""
    value = parse_threads(value)
    if value is None:
        return DEFAULT_THREADS
    if value != AUTO:
        return int(value)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return min(int(env), _MAX_THREADS)
    return max(1, _available_cores() // max(1, int(processes)))


def set_threads(value: int | str | None = None) -> int:
    """Set torch's intra-op thread count for this process (entry points only); returns it."""
    import torch

    n = resolve_threads(value)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def threads_arg(text: str) -> int | str:
    """``argparse`` type of ``--threads`` (argparse names the option in its error)."""
    try:
        return parse_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("threads: ")) from None
