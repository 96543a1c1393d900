"""Simulator throughput: member-steps per second, side by side in one run.

For each system at the classroom and paper grid sizes, on the chosen device:

- **gfdt-dash**: ``System.step`` as the driver calls it (noise draw included); Navier–Stokes once
  per advection form and time stepper (``rk4``: 4 tendency evaluations per step, ``rk3``: 3);
- **numpy**: a plain NumPy implementation of the same step (same operators, numpy.fft, one
  transform per real field);
- **peer** (Navier–Stokes only): torch-cfd's ``NavierStokes2DSpectral`` (advective form, no
  forcing) with its default low-storage RK4/Crank–Nicolson stepper (5 stages) on the same grid,
  batch and dtype, when ``torch_cfd`` is installed (``pip install --no-deps torch-cfd einops``;
  it is not a dependency of gfdt-dash);
- **FFT floor**: the time of only the FFTs one of our steps must do, batched as we batch them.
  The OU step does none (its noise is drawn in spectral space, ``Grid.white_hat``); its FFT floor
  is the one ``rfft2`` that drawing the noise on the grid would take, kept for comparison;
- **FFT + RNG floor**: the FFTs the step does plus drawing its Gaussian numbers
  (``Tensor.normal_`` of the same count, torch's CPU generator; for OU the draw alone). No
  implementation of the same step with the same generator can go below it.

Navier–Stokes timings interleave the contenders repeat by repeat and report medians, so slow
phases of a shared machine hit all of them alike. Compare the ratios, which are measured in one
run.

**Allocator.** Every step of every contender allocates and frees dozens of arrays of up to a few
MB. glibc's malloc returns freed memory at the top of its heap to the system once more than its
trim threshold is free, and serves large requests with fresh mappings; the pages then fault in
again on the next touch. How often that happens depends on the process's allocation history
(measured at the paper size: 0 to 1,700 page faults per Navier–Stokes step, the same step
taking 3.5 to 7.4 ms; torch-cfd's 1,400 to 6,300, 8.8 to 17 ms), so the ratios swing from run
to run. ``--allocator keep`` (the default) keeps freed memory in the heap for every contender
alike, so the ratios measure the arithmetic: it sets glibc's trim threshold to 1 GiB and its
mmap threshold to 32 MiB first (``mallopt``); ``--allocator default`` leaves them.

    python benchmarks/bench_systems.py [--device auto] [--threads N] [--repeat 3] [--clock cpu]
        [--systems ou,allen_cahn,navier_stokes] [--allocator keep|default]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import torch

from gfdt_dash.systems import NavierStokesConfig, get_config, make_system

BATCH = {"classroom": 32, "paper": 128}
# Tendency (drift) evaluations per step of each time integrator.
STAGES = {"rk4": 4, "rk3": 3, "lm": 1}


def numpy_field_step(config, batch, rng):
    """The OU / Allen–Cahn step in NumPy on the rfft2 coefficients, for ``config.integrator``:
    RK4 plus the noise, or LM (one drift evaluation, averaged noise, exact advection)."""
    n = config.n
    ky = np.fft.fftfreq(n, 1 / n)[:, None]
    kx = np.fft.rfftfreq(n, 1 / n)[None, :]
    k2 = kx**2 + ky**2
    ikx = 1j * np.where(np.abs(kx) == n / 2, 0.0, kx)
    sigma = config.eps2 / (1 + k2)
    skew = -config.U * ikx
    lin = -config.kappa * k2 - config.gamma * (k2 == 0) + skew + config.lam * sigma
    amp = math.sqrt(config.dt) * n * np.sqrt(sigma)
    lam, dt = config.lam, config.dt

    def explicit(th):
        return -lam * sigma * np.fft.rfft2(np.fft.irfft2(th, s=(n, n)) ** 3)

    state = np.fft.rfft2(0.1 * rng.standard_normal((batch, n, n)))
    prev = amp * np.fft.rfft2(rng.standard_normal((batch, n, n)))
    half = np.exp(0.5 * dt * skew)
    euler = 1 + dt * (lin - skew)

    def rk4_step():
        nonlocal state

        def drift(th):
            return lin * th + explicit(th) if lam else lin * th

        k1 = drift(state)
        k2_ = drift(state + 0.5 * dt * k1)
        k3 = drift(state + 0.5 * dt * k2_)
        k4 = drift(state + dt * k3)
        noise = amp * np.fft.rfft2(rng.standard_normal((batch, n, n)))
        state = state + dt / 6 * (k1 + 2 * k2_ + 2 * k3 + k4) + noise

    def lm_step():
        nonlocal state, prev
        th = half * state
        new = amp * np.fft.rfft2(rng.standard_normal((batch, n, n)))
        out = euler * th + 0.5 * (half * prev + new)
        if lam:
            out = out + dt * explicit(th)
        state, prev = half * out, half * new

    return rk4_step if config.integrator == "rk4" else lm_step


def numpy_ns_step(system, batch, rng):
    """The Navier–Stokes step in NumPy with the operators of ``system``, its advection form
    evaluated the plain way (one inverse transform per real field, one forward per product)."""
    g, c = system.grid, system.config
    n, dt = c.n, c.dt
    ikx, iky = g.ikx.cpu().numpy(), g.iky.cpu().numpy()
    inv_lap = system.inv_lap.cpu().numpy()
    lin = system.linear_hat.cpu().numpy()
    pos, neg = system._pos.cpu().numpy(), system._neg.cpu().numpy()
    target, scale = system._target.cpu().numpy(), system._forcing_scale.cpu().numpy()
    step_sd = system.phase_step
    half = n // 2 + 1
    form = c.advection

    def forcing(phase):
        e = np.exp(1j * phase)
        out = np.zeros((phase.shape[0], n * half), dtype=complex)
        out[:, target] = scale * (e[:, pos] + np.conj(e[:, neg]))
        return out.reshape(-1, n, half)

    def to_grid(*fields_hat):
        return np.fft.irfft2(np.stack(fields_hat, axis=1), s=(n, n)).transpose(1, 0, 2, 3)

    def adv(z):
        psi = inv_lap * z
        if form == "momentum_flux":
            u, v = to_grid(iky * psi, -ikx * psi)
            f = np.fft.rfft2(np.stack([u * v, u * u - v * v], axis=1))
            return -(ikx * ikx - iky * iky) * f[:, 0] + ikx * iky * f[:, 1]
        u, v, zx, zy, zeta = to_grid(iky * psi, -ikx * psi, ikx * z, iky * z, z)
        if form == "advective":
            return np.fft.rfft2(u * zx + v * zy)
        f = np.fft.rfft2(np.stack([u * zeta, v * zeta], axis=1))
        conservative = ikx * f[:, 0] + iky * f[:, 1]
        if form == "conservative":
            return conservative
        return 0.5 * (np.fft.rfft2(u * zx + v * zy) + conservative)

    zeta = np.fft.rfft2(rng.standard_normal((batch, n, n)))
    phase = 2 * np.pi * rng.random((batch, system.n_forced))

    def step():
        nonlocal zeta, phase
        dw = rng.standard_normal((batch, 2, system.n_forced))
        ph = phase + step_sd * dw[:, 0]
        p1 = ph + step_sd * dw[:, 1]
        f0, fh, f1 = forcing(phase), forcing(ph), forcing(p1)

        def tend(z, f):
            return lin * z - adv(z) + f

        k1 = tend(zeta, f0)
        k2 = tend(zeta + 0.5 * dt * k1, fh)
        if c.time_stepper == "rk3":
            k3 = tend(zeta - dt * k1 + 2 * dt * k2, f1)
            zeta = zeta + dt / 6 * (k1 + 4 * k2 + k3)
        else:
            k3 = tend(zeta + 0.5 * dt * k2, fh)
            k4 = tend(zeta + dt * k3, f1)
            zeta = zeta + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        phase = np.remainder(p1, 2 * np.pi)

    return step


def peer_ns_step(config, batch, device, dtype=torch.float32):
    """torch-cfd's pseudo-spectral vorticity solver on the same grid, batch and dtype."""
    try:
        from torch_cfd import grids, spectral
    except ImportError:
        return None
    n = config.n
    grid = grids.Grid(shape=(n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)), device=device)
    eq = spectral.NavierStokes2DSpectral(
        viscosity=1e-3, grid=grid, smooth=False, step_fn=spectral.RK4CrankNicolsonStepper()
    ).to(device)
    w_hat = torch.fft.rfft2(torch.randn(batch, n, n, device=device, dtype=dtype))
    state = [w_hat]

    def step():
        with torch.no_grad():
            state[0], _ = eq(state[0], config.dt)

    return step


def fft_floor(system, batch, rng: bool = False):
    """Only the FFTs one step of ``system`` performs, in the same batching (and, with ``rng``,
    the draw of its Gaussian numbers)."""
    n, g = system.grid.n, system.grid
    real = torch.randn(batch, n, n, device=system.device, dtype=system.dtype)
    spec = g.to_spectral(real)
    gen = system.generator(0)
    noise = system.draw_noise(batch, gen)
    normals = [
        torch.empty(torch.view_as_real(v).shape if v.is_complex() else v.shape, dtype=system.dtype)
        for v in noise.values()
    ]

    def draw():
        if rng:
            for x in normals:
                x.normal_(generator=gen)

    if system.config.system == "navier_stokes":
        counts = system.transforms_per_stage()
        full = torch.randn(batch, n, n, device=system.device, dtype=g.cdtype)
        inverse = full[:, None].expand(batch, counts["complex inverse"], n, n).contiguous()
        forward = full[:, None].expand(batch, counts["complex forward"], n, n).contiguous()

        stages = STAGES[system.config.time_stepper]

        def run():
            draw()
            for _ in range(stages):  # each stage the transforms of one advection evaluation
                torch.fft.ifft2(inverse, norm="forward")  # unnormalised, as the step does
                if counts["real inverse"]:
                    g.to_physical(spec)
                if counts["complex forward"]:
                    torch.fft.fft2(forward)
                if counts["real forward"]:
                    g.to_spectral(real)

        return run
    lam = system.config.lam
    stages = 4 if system.config.integrator == "rk4" else 1  # drift evaluations per step

    def run():
        draw()
        if not lam:
            if not rng:  # OU: the rfft2 a grid-space noise draw would need (the step has none)
                g.to_spectral(real)
        else:
            for _ in range(stages):
                g.to_physical(spec)
                g.to_spectral(real)

    return run


def _interleaved(fns: dict, n_iter: int, repeat: int, sync, clock=time.perf_counter):
    """Median seconds per call of each function, the repeats of all of them interleaved.

    ``clock=time.process_time`` (CPU runs with one thread) counts only the time the process ran,
    not the time it waited for a core on an oversubscribed machine. Each function first runs
    ``n_iter`` times untimed: the first steps of a simulation also pay for the allocator's first
    touch of fresh pages (thousands of page faults per step at the paper size), which long runs
    do not.
    """
    for fn in fns.values():
        for _ in range(n_iter):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(n_iter):
                fn()
            sync()
            times[name].append((clock() - t0) / n_iter)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_field_system(system_name, preset, args, rng):
    """One row per integrator; each step and its floors timed interleaved."""
    batch = BATCH[preset]
    rows = []
    for integrator in ("lm", "rk4"):
        config = get_config(system_name, preset, integrator=integrator)
        system = make_system(config, args.device, "float32")
        dev = system.device
        sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
        gen = system.generator(0)
        state = [system.initial_state(batch, gen)]

        def ours(system=system, state=state, gen=gen):
            state[0] = system.step(state[0], system.draw_noise(batch, gen))

        fns = {
            "ours": ours,
            "floor": fft_floor(system, batch),
            "rng floor": fft_floor(system, batch, rng=True),
        }
        n_iter = 200 if preset == "classroom" else 50
        t = _interleaved(fns, n_iter, max(args.repeat, 5), sync, _clock(args))
        np_step = numpy_field_step(config, batch, rng)
        t_np = _interleaved({"numpy": np_step}, n_iter // 5, args.repeat, sync, _clock(args))
        rows.append(
            (
                f"{system_name} ({integrator})",
                preset,
                config.n,
                batch,
                STAGES[integrator] if config.lam else 0,  # a linear step: one product
                str(dev),
                batch / t["ours"],
                t_np["numpy"] / t["ours"],
                None,
                t["ours"] / t["floor"],
                t["ours"] / t["rng floor"],
            )
        )
    return rows


def _clock(args):
    return time.process_time if args.clock == "cpu" else time.perf_counter


def bench_navier_stokes(preset, args, rng):
    """One row per advection form and time stepper; ours, torch-cfd and the FFT floors timed
    interleaved."""
    batch = BATCH[preset]
    combos = [(f, t) for f in NavierStokesConfig.advection_forms for t in ("rk4", "rk3")]
    systems = {
        (f, t): make_system(
            get_config("navier_stokes", preset, advection=f, time_stepper=t), args.device, "float32"
        )
        for f, t in combos
    }
    dev = systems[combos[0]].device
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    fns = {}
    for key, system in systems.items():
        gen = system.generator(0)
        state = [system.initial_state(batch, gen)]

        def ours(system=system, state=state, gen=gen):
            state[0] = system.step(state[0], system.draw_noise(batch, gen))

        fns[key] = ours
        fns[key, "floor"] = fft_floor(system, batch)
        fns[key, "rng floor"] = fft_floor(system, batch, rng=True)
    peer = peer_ns_step(systems[combos[0]].config, batch, dev)
    if peer is not None:
        fns["torch-cfd"] = peer
    n_iter = 20 if preset == "paper" else 50
    clock = _clock(args)
    t = _interleaved(fns, n_iter, max(args.repeat, 5), sync, clock)
    rows = []
    for key, system in systems.items():
        np_step = numpy_ns_step(system, batch, rng)
        t_np = _interleaved({"numpy": np_step}, max(2, n_iter // 5), args.repeat, sync, clock)
        t_np = t_np["numpy"]
        t_peer = t.get("torch-cfd")
        rows.append(
            (
                f"navier_stokes ({key[0]}, {key[1]})",
                preset,
                system.config.n,
                batch,
                STAGES[key[1]],
                str(dev),
                batch / t[key],
                t_np / t[key],
                (t_peer / t[key]) if t_peer else None,
                t[key] / t[key, "floor"],
                t[key] / t[key, "rng floor"],
            )
        )
    return rows


def keep_freed_memory() -> bool:
    """glibc only: keep freed memory in the heap (trim threshold 1 GiB, mmap threshold 32 MiB),
    so no step pays for pages returned to the system by an earlier one. ``False`` elsewhere."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(
            libc.mallopt(m_trim_threshold, 1 << 30) and libc.mallopt(m_mmap_threshold, 32 << 20)
        )
    except (OSError, AttributeError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--systems", default="ou,allen_cahn,navier_stokes")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default=None,
        help="timer: wall time, or the process's CPU time (one CPU thread only; the default "
        "then, since it does not count the time a shared machine makes the process wait)",
    )
    parser.add_argument(
        "--allocator",
        choices=("keep", "default"),
        default="keep",
        help="keep: glibc keeps freed memory in its heap (mallopt), so no contender pays page "
        "faults for memory an earlier step returned to the system; default: the allocator as it "
        "comes (see the module docstring)",
    )
    args = parser.parse_args()
    allocator = "default"
    if args.allocator == "keep":
        allocator = "glibc keeps freed memory" if keep_freed_memory() else "default (no glibc)"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock is None:
        cpu = torch.get_num_threads() == 1 and not torch.cuda.is_available()
        args.clock = "cpu" if cpu else "wall"
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        parser.error("--clock cpu needs --threads 1 (CPU time of several threads adds up)")
    rng = np.random.default_rng(0)
    load0 = os.getloadavg()[0]
    rows = []
    for system_name in args.systems.split(","):
        for preset in ("classroom", "paper"):
            if system_name == "navier_stokes":
                rows += bench_navier_stokes(preset, args, rng)
            else:
                rows += bench_field_system(system_name, preset, args, rng)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
        f"clock: {args.clock}, allocator: {allocator}; 1-min load average {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores\n"
    )
    print(
        "| system | preset | N | members | stages/step | device | member-steps/s | × numpy | "
        "× torch-cfd | step / FFT floor | step / FFT+RNG floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer = f"{r[8]:.2f}" if r[8] is not None else "—"
        print(
            f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:,.0f} | {r[7]:.1f} | "
            f"{peer} | {r[9]:.2f} | {r[10]:.2f} |"
        )
    print(
        "\n× numpy and × torch-cfd: how many times faster our step is (>1: ours faster). "
        "FFT floor: our step time over the time of its FFTs alone (OU: the one rfft2 a "
        "grid-space noise draw would take; the step itself does no FFT). FFT+RNG floor: the "
        "FFTs the step does plus drawing its Gaussian numbers with torch's generator (OU: the "
        "draw alone). stages/step: drift (tendency) evaluations per step (0: the linear "
        "step is one multiplication). Navier–Stokes: medians of interleaved repeats; rows "
        "(form, time stepper); torch-cfd integrates the unforced equation in advective form "
        "with 5 RK stages per step, ours the forced one (phases, noise) with 4 (rk4) or 3 (rk3)."
    )


if __name__ == "__main__":
    main()
