"""Per-session limits of a shared classroom server, checked before a job is started.

One server with a couple of cores serves a whole class, so each session may only start jobs of
bounded size and only a bounded number at a time. The limits come from environment variables
(read when a tab is created, so a restart is not needed in tests); the defaults suit a 2-core
server and admit every classroom preset and the Ornstein–Uhlenbeck paper preset:

==============================  =========  ===================================================
variable                        default    bounds
==============================  =========  ===================================================
``GFDT_DASH_MAX_N``             64         grid size ``n``
``GFDT_DASH_MAX_MEMBERS``       512        ensemble ``members``
``GFDT_DASH_MAX_MEMBER_STEPS``  20000000   time steps of all members and paired experiments
``GFDT_DASH_MAX_TRAIN_STEPS``   10000      optimiser steps of score-model training
``GFDT_DASH_MAX_SESSION_JOBS``  1          jobs running or queued at once in one session
==============================  =========  ===================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

__all__ = ["Limits", "member_steps"]

_ENV = {
    "max_n": "GFDT_DASH_MAX_N",
    "max_members": "GFDT_DASH_MAX_MEMBERS",
    "max_member_steps": "GFDT_DASH_MAX_MEMBER_STEPS",
    "max_train_steps": "GFDT_DASH_MAX_TRAIN_STEPS",
    "max_session_jobs": "GFDT_DASH_MAX_SESSION_JOBS",
}


def member_steps(config) -> int:
    """Time steps a simulate + responses job integrates: the ensemble (spin-up and record) and
    the paired perturbation experiments (two runs of ``max_lag`` each)."""
    ensemble = config.members * round((config.spinup + config.record) / config.dt)
    paired = 2 * config.n_experiments * round(config.max_lag / config.dt)
    return int(ensemble + paired)


@dataclass(frozen=True)
class Limits:
    max_n: int = 64
    max_members: int = 512
    max_member_steps: int = 20_000_000
    max_train_steps: int = 10_000
    max_session_jobs: int = 1

    @classmethod
    def from_env(cls) -> Limits:
        values = {}
        for f in fields(cls):
            raw = os.environ.get(_ENV[f.name])
            if raw:
                try:
                    values[f.name] = max(1, int(raw))
                except ValueError as exc:
                    raise ValueError(f"{_ENV[f.name]}: {raw!r} is not an integer") from exc
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
        steps = member_steps(config)
        if steps > self.max_member_steps:
            raise ValueError(
                f"members × steps: this job needs {steps:,} member-steps "
                f"(members × (spinup + record)/dt + 2 × n_experiments × max_lag/dt); "
                f"allowed: at most {self.max_member_steps:,} on this server — "
                "lower members, record, spinup, n_experiments or raise dt"
            )
        if train_steps is not None and train_steps > self.max_train_steps:
            raise ValueError(
                f"train_steps: {train_steps} exceeds this server's limit; "
                f"allowed: 10 … {self.max_train_steps}"
            )
