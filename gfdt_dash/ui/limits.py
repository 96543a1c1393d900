"""Per-session limits of a shared classroom server, checked before a job is started.

One server with a couple of cores serves a whole class, so each session may only start jobs of
bounded size and only a bounded number at a time. The limits come from environment variables
(read when a tab is created, so a restart is not needed in tests); the defaults suit a 2-core
server and admit every classroom preset and the Ornstein–Uhlenbeck paper preset. A job's cost is
estimated with the cost model the command line and scans use (:mod:`gfdt_dash.cost`): the
ensemble, the paired runs of the direct-perturbation experiment, and training.

==============================  =========  ===================================================
variable                        default    bounds
==============================  =========  ===================================================
``GFDT_DASH_MAX_N``             64         grid size ``n``
``GFDT_DASH_MAX_MEMBERS``       512        ensemble ``members``
``GFDT_DASH_MAX_MEMBER_STEPS``  25000000   member-steps of the ensemble and perturbation runs
``GFDT_DASH_MAX_OUTPUT_MB``     2048       MiB of recorded frames and snapshots
``GFDT_DASH_MAX_TRAIN_STEPS``   10000      optimiser steps of score-model training
``GFDT_DASH_MAX_SESSION_JOBS``  1          jobs running or queued at once in one session
==============================  =========  ===================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gfdt_dash.cost import CostLimits, job_cost, limit_from_env

__all__ = ["Limits", "member_steps"]

_ENV = {
    "max_n": "GFDT_DASH_MAX_N",
    "max_members": "GFDT_DASH_MAX_MEMBERS",
    "max_session_jobs": "GFDT_DASH_MAX_SESSION_JOBS",
}
_RAISE = "set by the server's administrator"


def member_steps(config) -> int:
    """Member-steps of a simulate + responses job: the ensemble and the direct-perturbation
    experiment's spin-up and paired runs (:func:`gfdt_dash.cost.job_cost`)."""
    return job_cost(config, perturbation=True).member_steps


@dataclass(frozen=True)
class Limits:
    max_n: int = 64
    max_members: int = 512
    max_member_steps: int = 25_000_000
    max_output_bytes: int = 2 * 2**30
    max_train_steps: int = 10_000
    max_session_jobs: int = 1

    @classmethod
    def from_env(cls) -> Limits:
        values: dict[str, int] = {}
        for name, var in _ENV.items():
            raw = os.environ.get(var)
            if raw:
                try:
                    values[name] = max(1, int(raw))
                except ValueError as exc:
                    raise ValueError(f"{var}: {raw!r} is not an integer") from exc
        defaults = cls()
        for name in ("max_member_steps", "max_output_bytes", "max_train_steps"):
            values[name] = limit_from_env(name, getattr(defaults, name))
        return cls(**values)

    def check(self, config, *, train_steps: int | None = None) -> None:
        """``ValueError`` naming the first field outside this server's limits and its range."""
        specs = type(config).field_specs()
        for name, limit in (("n", self.max_n), ("members", self.max_members)):
            value = getattr(config, name)
            if value > limit:
                raise ValueError(
                    f"{name}: {value} exceeds this server's limit; "
                    f"allowed: {specs[name]['lo']} … {limit}"
                )
        if train_steps is not None and train_steps > self.max_train_steps:
            raise ValueError(
                f"train_steps: {train_steps} exceeds this server's limit; "
                f"allowed: 10 … {self.max_train_steps}"
            )
        CostLimits(
            max_member_steps=self.max_member_steps,
            max_train_steps=self.max_train_steps,
            max_output_bytes=self.max_output_bytes,
            how_to_raise=tuple(
                (k, f"{_RAISE} ({v})")
                for k, v in (
                    ("max_member_steps", "GFDT_DASH_MAX_MEMBER_STEPS"),
                    ("max_output_bytes", "GFDT_DASH_MAX_OUTPUT_MB"),
                )
            ),
        ).check(job_cost(config, perturbation=True), "job")
