"""What every system provides, the RK4 and RK3 steps, and the paired-run stepping API.

A *state* is a ``dict`` of batch-first tensors; ``state["field_hat"]`` holds the observed field's
``rfft2`` coefficients ``(batch, n, n//2+1)``, other entries are hidden variables (the forcing
phases of Navier–Stokes). A *noise* draw is a ``dict`` of batch-first tensors too, drawn once per
time step from an explicit ``torch.Generator``, so two copies of the system can share it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from gfdt_dash.devices import resolve_device, resolve_dtype
from gfdt_dash.systems.config import SystemConfig
from gfdt_dash.systems.grid import Grid

__all__ = [
    "PairedRun",
    "SimulationDiverged",
    "State",
    "System",
    "cat_batches",
    "rk3_step",
    "rk4_step",
]

State = dict[str, torch.Tensor]


class SimulationDiverged(FloatingPointError):
    """A run produced non-finite values, with a diagnosis of whether the time step is the cause.

    ``ratio`` is the stiffest linearised rate × dt at the last state known to be finite (reached
    at ``checked_time``), as a multiple of the integrator's stability limit
    (:meth:`System.stability_ratio`); ``None`` when the system cannot tell. Above 1 the growth is
    a time-step instability and a smaller dt cures it; at or below 1 it is not, and a smaller dt
    will not help.
    """

    def __init__(
        self,
        time: float,
        dt: float,
        ratio: float | None = None,
        checked_time: float | None = None,
    ) -> None:
        head = f"the simulation produced non-finite values at t ≈ {time:.4g} (dt={dt:.4g})"
        at = "" if checked_time is None else f" (t ≈ {checked_time:.4g})"
        if ratio is None:
            advice = (
                "whether the time step is the cause was not diagnosed for this system; a smaller "
                "dt helps only if the stiffest rate × dt exceeds the integrator's stability limit"
            )
        elif ratio > 1:
            advice = (
                f"a time-step instability: at the last finite state{at} the stiffest linearised "
                f"rate × dt is {ratio:.3g} times the integrator's stability limit; try a smaller "
                f"dt (≤ {0.9 * dt / ratio:.3g})"
            )
        else:
            advice = (
                f"not a time-step instability: at the last finite state{at} the stiffest "
                f"linearised rate × dt is {ratio:.2g} of the integrator's stability limit, so a "
                "smaller time step will not help; the growth comes from the dynamics or the "
                "start state (check the parameters and initial_state)"
            )
        super().__init__(f"{head}: {advice}")
        self.time = time
        self.dt = dt
        self.ratio = ratio
        self.checked_time = checked_time

    def __reduce__(self) -> tuple:  # rebuilt from its arguments (e.g. sent between processes)
        return (type(self), (self.time, self.dt, self.ratio, self.checked_time))


def rk4_step(
    tendency: Callable[[torch.Tensor, int], torch.Tensor], y: torch.Tensor, dt: float
) -> torch.Tensor:
    """One classical RK4 step ``y(t) → y(t + dt)`` of ``dy/dt = tendency(y, stage)``.

    ``stage`` is 0 at ``t``, 1 and 2 at ``t + dt/2``, 3 at ``t + dt``; systems with time-dependent
    forcing use it to pick the forcing of that stage. The increment is accumulated in place: one
    running sum and one stage input per stage instead of four stored slopes.
    """
    k = tendency(y, 0)
    out = torch.add(y, k, alpha=dt / 6)
    k = tendency(torch.add(y, k, alpha=dt / 2), 1)
    out.add_(k, alpha=dt / 3)
    k = tendency(torch.add(y, k, alpha=dt / 2), 2)
    out.add_(k, alpha=dt / 3)
    k = tendency(torch.add(y, k, alpha=dt), 3)
    return out.add_(k, alpha=dt / 6)


def rk3_step(
    tendency: Callable[[torch.Tensor, int], torch.Tensor], y: torch.Tensor, dt: float
) -> torch.Tensor:
    """One step ``y(t) → y(t + dt)`` of Kutta's third-order Runge–Kutta scheme.

        k₁ = f(y),  k₂ = f(y + dt/2·k₁),  k₃ = f(y − dt·k₁ + 2dt·k₂),
        y(t + dt) = y + dt/6·(k₁ + 4k₂ + k₃),

    three evaluations at ``t``, ``t + dt/2`` and ``t + dt`` (``stage`` 0, 1, 2), the nodes
    classical RK4 uses too. Its stability polynomial is ``1 + z + z²/2 + z³/6`` (stable to
    |z| = 2.51 on the negative real axis and √3 on the imaginary axis). Accumulated in place like
    :func:`rk4_step`.
    """
    k = tendency(y, 0)
    out = torch.add(y, k, alpha=dt / 6)
    third = torch.add(y, k, alpha=-dt)  # y − dt·k₁, completed by + 2dt·k₂
    k = tendency(torch.add(y, k, alpha=dt / 2), 1)
    out.add_(k, alpha=2 * dt / 3)
    k = tendency(third.add_(k, alpha=2 * dt), 2)
    return out.add_(k, alpha=dt / 6)


def cat_batches(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate two states (or noise draws) along the batch dimension."""
    return {k: torch.cat([a[k], b[k]]) for k in a}


class System(ABC):
    """A stochastic system on a periodic grid, batched over ensemble members.

    Subclasses precompute their operators once in ``__init__`` and implement ``initial_state``,
    ``draw_noise`` and ``step``.
    """

    def __init__(
        self,
        config: SystemConfig,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "float32",
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.grid = Grid(config.n, self.device, self.dtype)
        self.dt = config.dt

    @abstractmethod
    def initial_state(self, batch: int, generator: torch.Generator) -> State:
        """A start state for ``batch`` members."""

    @abstractmethod
    def draw_noise(self, batch: int, generator: torch.Generator) -> State:
        """All random numbers one time step of ``batch`` members needs."""

    @abstractmethod
    def step(self, state: State, noise: State) -> State:
        """Advance every member by one time step ``dt`` with the given noise."""

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def observe(self, state: State) -> torch.Tensor:
        """The observed field in physical space, ``(batch, y, x)``."""
        return self.grid.to_physical(state["field_hat"])

    def kick(self, state: State, delta: float, pixel: tuple[int, int] = (0, 0)) -> State:
        """A copy of ``state`` with ``delta`` added to the field at ``pixel = (y, x)``.

        In Fourier space a kick at pixel ``(y0, x0)`` adds ``δ e^{−i(k_y y0 + k_x x0)h}`` to every
        coefficient (``h`` the grid spacing).
        """
        g = self.grid
        y0, x0 = pixel
        phase = torch.exp(-1j * (g.ky * y0 + g.kx * x0) * g.spacing).to(g.cdtype)
        kicked = dict(state)
        kicked["field_hat"] = g.hermitian_(state["field_hat"] + delta * phase)
        return kicked

    def is_finite(self, state: State) -> bool:
        return bool(torch.isfinite(torch.view_as_real(state["field_hat"])).all())

    def stability_ratio(self, state: State) -> float | None:
        """Stiffest linearised rate × dt at ``state`` over the integrator's stability limit.

        Above 1 the step is unstable there. ``None``: not diagnosed for this system.
        """
        return None

    def diverged(self, time: float, last_finite: State, checked_time: float) -> SimulationDiverged:
        """The error for a run that turned non-finite at ``time``, diagnosed at ``last_finite``."""
        return SimulationDiverged(time, self.dt, self.stability_ratio(last_finite), checked_time)


class PairedRun:
    """Unperturbed and kicked copies of an ensemble stepped with *the same* noise.

    Both copies are advanced in one batched step (the noise draw is duplicated, not redrawn), so
    their difference is the response to the kick without sampling noise from the forcing —
    the common-random-numbers estimator of direct perturbation.

    ``response()`` returns ``(field_kicked − field_base)/δ``, shaped ``(batch, y, x)``.
    """

    def __init__(
        self,
        system: System,
        state: State,
        delta: float,
        pixel: tuple[int, int] = (0, 0),
    ) -> None:
        self.system = system
        self.delta = float(delta)
        self.pixel = pixel
        self.batch = state["field_hat"].shape[0]
        self.state = cat_batches(state, system.kick(state, self.delta, pixel))

    @property
    def base(self) -> State:
        return {k: v[: self.batch] for k, v in self.state.items()}

    @property
    def kicked(self) -> State:
        return {k: v[self.batch :] for k, v in self.state.items()}

    def step(self, generator: torch.Generator) -> None:
        noise = self.system.draw_noise(self.batch, generator)
        self.state = self.system.step(self.state, cat_batches(noise, noise))

    def restart(self) -> None:
        """Re-kick from the running unperturbed state (the kicked copy is discarded)."""
        base = self.base
        self.state = cat_batches(base, self.system.kick(base, self.delta, self.pixel))

    def response(self) -> torch.Tensor:
        diff_hat = self.state["field_hat"][self.batch :] - self.state["field_hat"][: self.batch]
        return self.system.grid.to_physical(diff_hat) / self.delta
