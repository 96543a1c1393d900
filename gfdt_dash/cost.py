"""The cost of a job, estimated before it starts: one model for the CLI, scans and the dashboard.

A job is any combination of simulating the ensemble, training a score model and running the
direct-perturbation experiment. Its cost is counted in **member-steps** (one time step of one
ensemble member; every system's step costs about the same per grid point) and, for training, in
optimiser steps:

- simulation: ``members × (spinup + record)/dt``;
- direct perturbation (:func:`gfdt_dash.response.perturbation_response`): every member spins up
  once (``spinup/dt``, one run), then ``r = ⌈n_experiments / members⌉`` restarts of a *pair* of
  runs (kicked and unperturbed, two member-steps per step), each ``restart_every/dt`` long except
  the last, which stops at ``max_lag/dt``:
  ``members × (spinup/dt + 2 × ((r − 1) × restart_every/dt + max_lag/dt))``;
- training: ``n_steps`` optimiser steps of ``batch_size`` snapshots.

Also estimated: the bytes of frames and snapshots a simulation keeps in memory (and writes).

Limits (:class:`CostLimits`) refuse a job above them with the number and the way to raise them.
The command line's defaults admit every preset including "paper"; the environment variables
``GFDT_DASH_MAX_MEMBER_STEPS``, ``GFDT_DASH_MAX_TRAIN_STEPS`` and ``GFDT_DASH_MAX_OUTPUT_MB``
replace the defaults of the command line and the dashboard alike.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["CLI_LIMITS", "CostLimits", "JobCost", "job_cost", "limit_from_env"]


@dataclass(frozen=True)
class JobCost:
    """What a job will integrate and keep (see the module docstring for the formulas)."""

    simulate_member_steps: int = 0
    perturbation_member_steps: int = 0
    train_steps: int = 0
    train_samples: int = 0
    output_bytes: int = 0

    @property
    def member_steps(self) -> int:
        return self.simulate_member_steps + self.perturbation_member_steps

    def __add__(self, other: JobCost) -> JobCost:
        return JobCost(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )


def simulate_member_steps(config: Any) -> int:
    return config.members * (config.steps(config.spinup) + config.steps(config.record))


def perturbation_member_steps(config: Any) -> int:
    members = config.members
    restarts = math.ceil(config.n_experiments / members)
    paired = (restarts - 1) * config.steps(config.restart_every) + config.steps(config.max_lag)
    return members * (config.steps(config.spinup) + 2 * paired)


def job_cost(
    config: Any,
    *,
    simulate: bool = True,
    perturbation: bool = False,
    train_config: Any = None,
) -> JobCost:
    """The cost of simulating ``config`` (``simulate``), running its direct-perturbation
    experiment (``perturbation``) and training with ``train_config`` (a ``TrainConfig``)."""
    from gfdt_dash.systems.simulate import output_bytes

    return JobCost(
        simulate_member_steps=simulate_member_steps(config) if simulate else 0,
        perturbation_member_steps=perturbation_member_steps(config) if perturbation else 0,
        train_steps=train_config.n_steps if train_config is not None else 0,
        train_samples=(
            train_config.n_steps * train_config.batch_size if train_config is not None else 0
        ),
        output_bytes=output_bytes(config) if simulate else 0,
    )


ENV = {
    "max_member_steps": "GFDT_DASH_MAX_MEMBER_STEPS",
    "max_train_steps": "GFDT_DASH_MAX_TRAIN_STEPS",
    "max_output_bytes": "GFDT_DASH_MAX_OUTPUT_MB",
}


def limit_from_env(field: str, default: int) -> int:
    """The limit ``field`` from its environment variable (MiB for output bytes), else
    ``default``; a value that is not a positive integer is an error naming the variable."""
    var = ENV[field]
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{var}: {raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{var}: must be >= 1, got {value}")
    return value * 2**20 if field == "max_output_bytes" else value


@dataclass(frozen=True)
class CostLimits:
    """Ceilings on a job's cost; ``how_to_raise`` maps a field to the advice in its message."""

    max_member_steps: int
    max_train_steps: int
    max_output_bytes: int
    how_to_raise: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, defaults: CostLimits) -> CostLimits:
        return cls(
            max_member_steps=limit_from_env("max_member_steps", defaults.max_member_steps),
            max_train_steps=limit_from_env("max_train_steps", defaults.max_train_steps),
            max_output_bytes=limit_from_env("max_output_bytes", defaults.max_output_bytes),
            how_to_raise=defaults.how_to_raise,
        )

    def replace(self, **values: int | None) -> CostLimits:
        kept = {k: v for k, v in values.items() if v is not None}
        for k, v in kept.items():
            if v < 1:
                raise ValueError(f"{k}: must be >= 1, got {v}")
        return CostLimits(**{**self.__dict__, **kept})

    def _hint(self, field: str) -> str:
        hint = dict(self.how_to_raise).get(field)
        return f"; {hint}" if hint else ""

    def check(self, cost: JobCost, what: str = "job") -> None:
        """``ValueError`` when ``cost`` exceeds a limit: the number, the limit, how to raise it."""
        if cost.member_steps > self.max_member_steps:
            parts = []
            if cost.simulate_member_steps:
                parts.append(f"simulation {cost.simulate_member_steps:,}")
            if cost.perturbation_member_steps:
                parts.append(f"direct perturbation {cost.perturbation_member_steps:,}")
            knobs = ", ".join(
                (["record"] if cost.simulate_member_steps else [])
                + (["n_experiments or restart_every"] if cost.perturbation_member_steps else [])
            )
            raise ValueError(
                f"members × steps: this {what} needs {cost.member_steps:,} member-steps "
                f"({', '.join(parts)}); allowed: at most {self.max_member_steps:,} — lower "
                f"members, spinup, {knobs}, or raise dt" + self._hint("max_member_steps")
            )
        if cost.train_steps > self.max_train_steps:
            raise ValueError(
                f"train_steps: this {what} needs {cost.train_steps:,} optimiser steps; "
                f"allowed: at most {self.max_train_steps:,}" + self._hint("max_train_steps")
            )
        if cost.output_bytes > self.max_output_bytes:
            raise ValueError(
                f"record: this {what} would record {cost.output_bytes / 2**30:.2f} GiB of "
                f"frames and snapshots; allowed: at most {self.max_output_bytes / 2**30:.2f} GiB — "
                "shorten record, raise frame_every or snapshot_every, or use fewer members"
                + self._hint("max_output_bytes")
            )


# The command line's ceilings. A member-step's CPU time depends on the system and grid (measured
# on 2 shared cores, one torch thread, n = 32: OU ≈ 4e4 member-steps/s, Allen–Cahn ≈ 8e3/s,
# Navier–Stokes ≈ 1e3/s); 2e8 admits every preset except "paper" Navier–Stokes (5.4e8, a GPU
# job), which must be asked for with --max-member-steps.
CLI_LIMITS = CostLimits(
    max_member_steps=200_000_000,
    max_train_steps=1_000_000,
    max_output_bytes=8 * 2**30,
    how_to_raise=(
        ("max_member_steps", "raise it with --max-member-steps or GFDT_DASH_MAX_MEMBER_STEPS"),
        ("max_train_steps", "raise it with --max-train-steps or GFDT_DASH_MAX_TRAIN_STEPS"),
        ("max_output_bytes", "raise it with GFDT_DASH_MAX_OUTPUT_MB (MiB)"),
    ),
)
