"""Ground truths: direct perturbation with shared noise, and the analytic OU response.

Direct perturbation (the ground truth of the comparison): kick the field by ``δ`` at pixel (0, 0),
run the kicked and the unperturbed copy with *the same* noise
(:class:`gfdt_dash.systems.PairedRun`), and record ``(x_δ(t) − x(t))/δ``; the response is its mean
over experiments.

Analytic OU response: the drift is linear, ``θ̂̇ = −(κ|k|² + γδ_k0 + iUk_x) θ̂``, so a unit kick
at the origin (``θ̂ = 1`` at every k) evolves as

    R̂(k, t) = exp(−(κ|k|² + γδ_k0) t − iU k_x t),

with ``k_x`` set to 0 at the Nyquist wavenumber exactly as the simulator's derivative
(:attr:`gfdt_dash.systems.Grid.ikx`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from gfdt_dash.progress import ProgressCallback, Reporter, StopCheck
from gfdt_dash.response.result import response_dataset
from gfdt_dash.seeds import check_seed

__all__ = ["analytic_response", "perturbation_response"]

MAX_ANALYTIC_BYTES = 2**30  # the closed-form response's (lag, y, x) array, float64


def perturbation_response(
    config: Any,
    *,
    seed: int = 0,
    device: str | torch.device = "auto",
    dtype: str = "float32",
    initial_state: dict[str, torch.Tensor] | None = None,
    spinup: float | None = None,
    batch: int | None = None,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> xr.Dataset:
    """Direct-perturbation response of any system config, mean ± standard error over experiments.

    Protocol: spin up ``config.members`` members for ``spinup`` time units (default
    ``config.spinup``; or start from ``initial_state``, a state with any number of members, and
    spin up only if ``spinup`` is given), then repeat: kick every member by ``δ = config.delta``
    at pixel (0, 0), integrate ``config.restart_every`` with shared noise, record
    ``(kicked − base)/δ`` every ``config.frame_every`` up to ``config.max_lag``, and restart from
    the running unperturbed state. One experiment = one member × one restart; the number of
    restarts is ``⌈config.n_experiments / members⌉``, so the experiment count is rounded *up* to a
    multiple of the members (``attrs["n_experiments"]`` vs ``n_experiments_requested``).

    Members are run in batches of ``batch`` (default all), each with its own spin-up, drawing
    from one ``torch.Generator`` seeded by ``seed``. The band is the standard error of the mean
    over experiments, treating them as independent: distinct members are, and successive restarts
    of one member are nearly so when ``restart_every`` is much longer than the decorrelation time
    (for the paired difference, which starts afresh at each kick, only the base state carries
    over).

    Both copies are advanced by the config's own integrator (``config.integrator``) with the same
    noise — and, for a scheme that carries its last noise increment, the same carried increment —
    so the result is the response of the simulated dynamics, the ground truth for GFDT on data
    that :func:`gfdt_dash.systems.simulate` made from the same config. A run that turns
    non-finite raises :class:`gfdt_dash.systems.SimulationDiverged` with its diagnosis.

    Returns the common layout (:mod:`gfdt_dash.response.result`), estimator ``"perturbation"``, lags
    ``0, frame_every, …, max_lag``.
    """
    from gfdt_dash.systems import PairedRun, advance, make_system
    from gfdt_dash.systems.simulate import check_state
    from gfdt_dash.validation import check_field

    seed = check_seed(seed)
    system = make_system(config, device, dtype)
    if initial_state is not None:
        initial_state = check_state(system, initial_state)
    members = config.members if initial_state is None else initial_state["field_hat"].shape[0]
    if batch is None:
        batch = members
    elif isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch: must be a positive integer, got {batch!r:.60}")
    batch = int(batch)
    if spinup is None:
        spinup = config.spinup if initial_state is None else 0.0
    else:  # within the bounds of the config's own spin-up (so it ends, and it is a number)
        spinup = check_field("spinup", spinup, config.field_specs()["spinup"])
    n_restarts = math.ceil(config.n_experiments / members)
    n_spin = config.steps(spinup)
    frame_stride = config.steps(config.frame_every)
    n_lag_steps = config.steps(config.max_lag)
    n_restart_steps = config.steps(config.restart_every)
    n_lags = n_lag_steps // frame_stride + 1
    n = config.n
    n_batches = math.ceil(members / batch)
    total = n_batches * (n_spin + (n_restarts - 1) * n_restart_steps + n_lag_steps)
    reporter = Reporter("perturbation", total, callback, should_stop)
    gen = system.generator(seed)
    # Sums of deviations from the first batch's mean (the shifted-data variance algorithm:
    # no cancellation when every experiment gives nearly the same response, as for OU).
    shift = None
    acc = torch.zeros(n_lags, n, n, dtype=torch.float64)
    acc2 = torch.zeros_like(acc)
    done = 0
    for i in range(n_batches):
        lo, bs = i * batch, min(batch, members - i * batch)
        if initial_state is None:
            state = system.initial_state(bs, gen)
        else:
            state = {k: v[lo : lo + bs].to(system.device) for k, v in initial_state.items()}
        state = advance(system, state, n_spin, gen, reporter, offset=done)
        done += n_spin
        run = PairedRun(system, state, config.delta, (0, 0))
        for r in range(n_restarts):
            checked, t_checked = run.state, spinup + r * config.restart_every  # finite so far
            frames = [run.response()]
            last = n_lag_steps if r == n_restarts - 1 else n_restart_steps
            for step in range(1, last + 1):
                run.step(gen)
                if step <= n_lag_steps and step % frame_stride == 0:
                    frames.append(run.response())
                reporter.update(done + step)
            done += last
            resp = torch.stack(frames, 1).to("cpu", torch.float64)  # (batch, lag, y, x)
            if not torch.isfinite(resp).all():
                raise system.diverged(t_checked + last * config.dt, checked, t_checked)
            if shift is None:
                shift = resp.mean(0)
            acc += (resp - shift).sum(0)
            acc2 += (resp - shift).pow(2).sum(0)
            run.restart()
    n_exp = members * n_restarts
    mean = shift + acc / n_exp
    var = torch.clamp(acc2 - acc**2 / n_exp, min=0.0) / max(n_exp - 1, 1)
    stderr = torch.sqrt(var / n_exp)
    attrs = {
        "system": config.system,
        "config": config.to_json(),
        "seed": int(seed),
        "delta": config.delta,
        "pixel": [0, 0],
        "frame_dt": config.frame_every,
        "n_members": members,
        "n_restarts": n_restarts,
        "n_experiments": n_exp,
        "n_experiments_requested": config.n_experiments,
        "n_excluded_modes": 0,
        "dtype": dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch."),
        "band": (
            "standard error over experiments (members × restarts, rounded up to whole restarts); "
            "restarts of one member are nearly independent when restart_every ≫ decorrelation"
        ),
    }
    lags = config.frame_every * np.arange(n_lags)
    return response_dataset(mean.numpy(), stderr.numpy(), lags, "perturbation", attrs)


def analytic_response(config: Any, lags: Any) -> xr.Dataset:
    """The exact response of ``config``'s system at ``lags`` (time units), where one exists.

    Dispatches on the system registry (:class:`gfdt_dash.systems.SystemSpec.analytic_response`);
    for OU ``R̂(k,t) = exp(−(κ|k|² + γδ_k0)t − iUk_x t)``. ``lags`` is a 1-D sequence of
    non-negative times. The error band is zero. Computed in float64 on the CPU.
    """
    from gfdt_dash.systems import SystemConfig, system_names, system_spec

    if not isinstance(config, SystemConfig):
        raise ValueError(f"config: expected a system config, got {type(config).__name__}")
    spec = system_spec(config)
    if spec.analytic_response is None:
        have = [n for n in system_names() if system_spec(n).analytic_response is not None]
        raise ValueError(
            f"config: the analytic response exists only for {', '.join(have)}, "
            f"got {type(config).__name__}"
        )
    try:
        lags = np.array(lags, dtype=np.float64)  # a copy: the closed form may write to it
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lags: expected a 1-D sequence of times ({exc})") from None
    if lags.ndim != 1 or lags.size == 0 or not np.isfinite(lags).all() or (lags < 0).any():
        raise ValueError("lags: expected a non-empty 1-D sequence of non-negative times")
    c = config
    size = 8 * lags.size * c.n**2  # the (lag, y, x) result in float64, complex on the way
    if size > MAX_ANALYTIC_BYTES:
        raise ValueError(
            f"lags: {lags.size:,} lags on a {c.n}×{c.n} grid would take {size / 2**30:.1f} GiB; "
            f"at most {MAX_ANALYTIC_BYTES / 2**30:.0f} GiB — ask for fewer lags"
        )
    r = np.asarray(spec.analytic_response(c, lags), dtype=np.float64)
    if r.shape != (lags.size, c.n, c.n):
        raise ValueError(
            f"analytic_response: {spec.name}'s closed form returned shape {r.shape}, expected "
            f"{(lags.size, c.n, c.n)}"
        )
    attrs = {
        "system": c.system,
        "config": c.to_json(),
        "pixel": [0, 0],
        "n_excluded_modes": 0,
        "band": "none (exact)",
    }
    return response_dataset(r, np.zeros(r.shape), lags, "analytic", attrs)
