"""The driver: spin-up, record, frame streams, progress, cancellation, divergence detection."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from gfdt_dash import __version__
from gfdt_dash.progress import ProgressCallback, Reporter, StopCheck
from gfdt_dash.seeds import check_seed
from gfdt_dash.systems.base import State, System
from gfdt_dash.systems.config import SystemConfig
from gfdt_dash.systems.registry import system_spec

__all__ = ["MAX_OUTPUT_BYTES", "advance", "make_system", "output_bytes", "simulate"]

# Frames and snapshots are kept in host memory; refuse runs that would exceed this.
MAX_OUTPUT_BYTES = 8 * 2**30
_CHECK_EVERY = 64  # steps between finiteness checks (each one synchronises the device)


def make_system(
    config: SystemConfig, device: str | torch.device = "auto", dtype: str | torch.dtype = "float32"
) -> System:
    """The simulator for ``config`` on ``device`` in ``dtype`` (its registered factory)."""
    if not isinstance(config, SystemConfig):
        raise TypeError(f"config: expected a SystemConfig, got {type(config).__name__}")
    return system_spec(config).make_system(config, device, dtype)


def check_members(config: SystemConfig, members: object) -> int:
    """A member count for ``config``'s system, within the bounds of its ``members`` field."""
    from gfdt_dash.validation import check_field

    return check_field("members", members, config.field_specs()["members"])


def check_state(system: System, state: object, name: str = "initial_state") -> State:
    """``state`` if it is a state of ``system`` (the same variables, each a tensor shaped
    ``(members, …)`` like the system's own), else ``ValueError`` naming ``name``."""
    ref = system.initial_state(1, system.generator(0))
    # the field is required; a scheme's carried variables (e.g. its last noise) may be left out
    if not isinstance(state, dict) or "field_hat" not in state or not set(state) <= set(ref):
        got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{name}: expected a state of {type(system).__name__} (a dict of tensors "
            f"{sorted(ref)}), got {got}"
        )
    batch = None
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.ndim != ref[key].ndim:
            raise ValueError(f"{name}: {key!r} must be a tensor shaped (members, …)")
        if value.shape[1:] != ref[key].shape[1:] or value.shape[0] < 1:
            raise ValueError(
                f"{name}: {key!r} has shape {tuple(value.shape)}, expected (members, "
                f"{', '.join(map(str, ref[key].shape[1:]))})"
            )
        if value.dtype != ref[key].dtype:
            raise ValueError(f"{name}: {key!r} is {value.dtype}, expected {ref[key].dtype}")
        if batch is not None and value.shape[0] != batch:
            raise ValueError(f"{name}: its tensors have different member counts")
        batch = value.shape[0]
    return state


def advance(
    system: System,
    state: State,
    n_steps: int,
    generator: torch.Generator,
    reporter: Reporter | None = None,
    t0: float = 0.0,
    offset: int = 0,
) -> State:
    """Step ``state`` ``n_steps`` times, checking for divergence and reporting progress.

    Divergence raises :class:`SimulationDiverged`, diagnosed at the last state checked finite.
    """
    last_finite, t_finite = state, t0
    for i in range(1, n_steps + 1):
        state = system.step(state, system.draw_noise(state["field_hat"].shape[0], generator))
        if i % _CHECK_EVERY == 0 or i == n_steps:
            if not system.is_finite(state):
                raise system.diverged(t0 + i * system.dt, last_finite, t_finite)
            last_finite, t_finite = state, t0 + i * system.dt
        if reporter is not None:
            reporter.update(offset + i)
    return state


def output_bytes(config: SystemConfig, members: int | None = None) -> int:
    """Bytes of the frames and snapshots :func:`simulate` keeps in host memory (float32)."""
    members = config.members if members is None else int(members)
    frame_members = min(config.frame_members, members)
    return 4 * config.n**2 * (frame_members * config.n_frames + members * config.n_snapshots)


def simulate(
    config: SystemConfig,
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "float32",
    members: int | None = None,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    initial_state: State | None = None,
) -> xr.Dataset:
    """Simulate an ensemble and record its two frame streams.

    After ``config.spinup`` time units (discarded) the run lasts ``config.record`` time units and
    records

    - ``field`` ``(member, time, y, x)``: frames every ``config.frame_every`` of the first
      ``config.frame_members`` members, for the response statistics;
    - ``snapshot`` ``(snapshot_member, snapshot_time, y, x)``: every ``config.snapshot_every`` of
      all members, for score training (``snapshot_member`` counts all members, ``member`` only the
      ``frame_members`` first ones).

    The same ``seed`` on the same device gives bit-identical output. ``callback`` receives
    :class:`~gfdt_dash.progress.Progress` reports whose ``info["snapshot"]`` is member 0's current
    field; ``should_stop`` cancels (raises :class:`~gfdt_dash.progress.Cancelled`). A run that
    turns non-finite raises :class:`SimulationDiverged` at once.
    """
    if not isinstance(config, SystemConfig):
        raise TypeError(f"config: expected a SystemConfig, got {type(config).__name__}")
    seed = check_seed(seed)
    # an override obeys the config's own bounds (an absurd ensemble is refused, not allocated)
    members = config.members if members is None else check_members(config, members)
    frame_members = min(config.frame_members, members)
    n = config.n
    n_frames, n_snaps = config.n_frames, config.n_snapshots
    out_bytes = output_bytes(config, members)
    if out_bytes > MAX_OUTPUT_BYTES:
        raise ValueError(
            f"record: the recorded frames would take {out_bytes / 2**30:.1f} GiB "
            f"(limit {MAX_OUTPUT_BYTES / 2**30:.0f} GiB); shorten record, raise frame_every or "
            "snapshot_every, or use fewer members"
        )
    system = make_system(config, device, dtype)
    gen = system.generator(seed)
    if initial_state is None:
        state = system.initial_state(members, gen)
    else:
        state = check_state(system, initial_state)
        if state["field_hat"].shape[0] != members:
            raise ValueError(
                f"initial_state: has {state['field_hat'].shape[0]} members, expected {members}"
            )

    n_spin = config.steps(config.spinup)
    n_rec = config.steps(config.record)
    frame_stride = config.steps(config.frame_every)
    snap_stride = config.steps(config.snapshot_every)
    reporter = Reporter("simulate", n_spin + n_rec, callback, should_stop)

    state = advance(system, state, n_spin, gen, reporter)

    frames = np.empty((frame_members, n_frames, n, n), dtype=np.float32)
    snaps = np.empty((members, n_snaps, n, n), dtype=np.float32)
    t_spin = n_spin * system.dt
    last_finite, t_finite = state, t_spin
    for i in range(1, n_rec + 1):
        state = system.step(state, system.draw_noise(members, gen))
        save_frame = i % frame_stride == 0 and i // frame_stride <= n_frames
        save_snap = i % snap_stride == 0 and i // snap_stride <= n_snaps
        field = None
        if save_frame or save_snap:
            field = system.observe(state)
            if not torch.isfinite(field).all():
                raise system.diverged(t_spin + i * system.dt, last_finite, t_finite)
            last_finite, t_finite = state, t_spin + i * system.dt
            host = field.to(device="cpu", dtype=torch.float32).numpy()
            if save_frame:
                frames[:, i // frame_stride - 1] = host[:frame_members]
            if save_snap:
                snaps[:, i // snap_stride - 1] = host
        elif i % _CHECK_EVERY == 0:
            if not system.is_finite(state):
                raise system.diverged(t_spin + i * system.dt, last_finite, t_finite)
            last_finite, t_finite = state, t_spin + i * system.dt
        if reporter.due(n_spin + i):
            field = system.observe(state) if field is None else field
            reporter.update(n_spin + i, snapshot=field[0].to("cpu", torch.float32).numpy())
        else:
            reporter.check()

    return _to_dataset(config, frames, snaps, seed, system, t_spin)


def _to_dataset(config, frames, snaps, seed, system, t_spin) -> xr.Dataset:
    n = config.n
    coords = system.grid.coords
    time = t_spin + config.frame_every * np.arange(1, frames.shape[1] + 1)
    snap_time = t_spin + config.snapshot_every * np.arange(1, snaps.shape[1] + 1)
    long_name = system_spec(config).field_label
    ds = xr.Dataset(
        {
            "field": (("member", "time", "y", "x"), frames, {"long_name": long_name}),
            "snapshot": (
                ("snapshot_member", "snapshot_time", "y", "x"),
                snaps,
                {"long_name": f"{long_name}, score-training snapshots"},
            ),
        },
        coords={
            "member": np.arange(frames.shape[0]),
            "snapshot_member": np.arange(snaps.shape[0]),
            "time": ("time", time, {"units": "model time units"}),
            "snapshot_time": ("snapshot_time", snap_time, {"units": "model time units"}),
            "y": ("y", coords, {"long_name": "y", "units": "radians of the 2π box"}),
            "x": (
                "x",
                coords,
                {"long_name": "x (advection direction)", "units": "radians of the 2π box"},
            ),
        },
        attrs={
            "system": config.system,
            "config": config.to_json(),
            "seed": int(seed),
            "grid_size": n,
            "dt": config.dt,
            "device": str(system.device),
            "dtype": str(system.dtype).removeprefix("torch."),
            "gfdt_dash_version": __version__,
            "title": f"{config.title} simulation by gfdt-dash",
        },
    )
    return ds
