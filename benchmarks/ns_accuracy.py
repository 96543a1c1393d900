"""Accuracy of the Navier–Stokes advection forms and time steppers, measured with their speed.

Two measurements per (advection form, time stepper):

- **transient** (paper physics, n = 32, float64, frozen forcing phases, from a turbulent state):
  the relative L2 distance on the n = 32 modes after ``--t-end`` time units (2) to a dealiased
  n = 96 run of the same physics (forcing amplitude × 9: it is in unnormalised coefficients),
  averaged over members with independent phases; next to it the scheme's own time error (the
  same form at dt/8). The start state is a spun-up n = 32 field without its Nyquist modes; the
  reference starts from the same field.
- **stationary** (classroom physics, n = 16, float32, the phases diffusing): the mean energy
  ½⟨|u|²⟩ and enstrophy ½⟨ζ²⟩ over ``--record`` time units after a spin-up, with the standard
  error from the members' means, and the ratio to a dealiased n = 32 run of the same physics.

    python benchmarks/ns_accuracy.py [--t-end 2] [--members 4] [--record 200]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch

from gfdt_dash.systems import NavierStokesConfig, make_system

FORMS = NavierStokesConfig.advection_forms
STEPPERS = ("rk4", "rk3")


def _map_phases(coarse, fine, phase):
    """Phases of the coarse system's forced modes placed at the same wavenumbers of ``fine``."""

    def modes(system):
        ky, kx = system.grid.full_wavenumbers()
        mask = system.forcing_mask.bool()
        return list(zip(ky[mask].tolist(), kx[mask].tolist(), strict=True))

    position = {k: i for i, k in enumerate(modes(coarse))}
    order = [position[k] for k in modes(fine)]  # the forced sets coincide (k_f < n/2 on both)
    return phase[:, order]


def _to_fine(zeta_hat, n_fine):
    """rfft2 coefficients of the same field on an ``n_fine`` grid (zero padding)."""
    batch, n, _ = zeta_hat.shape
    out = zeta_hat.new_zeros(batch, n_fine, n_fine // 2 + 1)
    m = n // 2  # the coarse Nyquist modes are zero (see _without_nyquist)
    scale = (n_fine / n) ** 2
    out[:, :m, :m] = scale * zeta_hat[:, :m, :m]
    out[:, -m + 1 :, :m] = scale * zeta_hat[:, -m + 1 :, :m]
    return out


def _to_coarse(zeta_hat, n):
    """The n-grid modes (Nyquist excluded) of a finer field's rfft2 coefficients."""
    n_fine = zeta_hat.shape[-2]
    m = n // 2
    out = zeta_hat.new_zeros(zeta_hat.shape[0], n, n // 2 + 1)
    scale = (n / n_fine) ** 2
    out[:, :m, :m] = scale * zeta_hat[:, :m, :m]
    out[:, -m + 1 :, :m] = scale * zeta_hat[:, -m + 1 :, :m]
    return out


def _without_nyquist(zeta_hat):
    n = zeta_hat.shape[-2]
    out = zeta_hat.clone()
    out[:, n // 2, :] = 0
    out[:, :, n // 2] = 0
    return out


def _run(config, state, t_end, dtype="float64"):
    system = make_system(config, "cpu", dtype)
    gen = system.generator(0)
    batch = state["field_hat"].shape[0]
    for _ in range(round(t_end / config.dt)):
        state = system.step(state, system.draw_noise(batch, gen))
    return state


def _relative_l2(a, b):
    """Per-member relative L2 distance of rfft2 arrays (Parseval weights), averaged."""
    n = a.shape[-2]
    kx = torch.arange(a.shape[-1])
    w = torch.where((kx == 0) | (kx == n // 2), 1.0, 2.0).to(a.real.dtype)
    num = (w * (a - b).abs() ** 2).sum((-2, -1))
    den = (w * b.abs() ** 2).sum((-2, -1))
    return float((num / den).sqrt().mean())


def transient(args):
    base = NavierStokesConfig.preset(
        "paper",
        phase_diffusion=0.0,
        members=args.members,
        frame_members=args.members,
        frame_every=1 / 16,
    )
    spin = make_system(base, "cpu", "float64")
    gen = spin.generator(args.seed)
    state = _run(base, spin.initial_state(args.members, gen), args.t_spin)
    start = {"field_hat": _without_nyquist(state["field_hat"]), "phase": state["phase"]}
    fine_n = 96
    fine_config = base.replace(
        n=fine_n,
        dealias=True,
        forcing_amp=base.forcing_amp * (fine_n / base.n) ** 2,
        dt=base.dt / 2,
    )
    fine = make_system(fine_config, "cpu", "float64")
    fine_start = {
        "field_hat": _to_fine(start["field_hat"], fine_n),
        "phase": _map_phases(spin, fine, start["phase"]),
    }
    t0 = time.perf_counter()
    reference = _to_coarse(_run(fine_config, fine_start, args.t_end)["field_hat"], base.n)
    print(f"reference n = {fine_n} dealiased: {time.perf_counter() - t0:.0f} s", flush=True)
    rows = {}
    for form in FORMS:
        for stepper in STEPPERS:
            config = base.replace(advection=form, time_stepper=stepper)
            coarse = _run(config, dict(start), args.t_end)["field_hat"]
            fine_dt = _run(config.replace(dt=config.dt / 8), dict(start), args.t_end)
            rows[form, stepper] = (
                _relative_l2(coarse, reference),
                _relative_l2(coarse, fine_dt["field_hat"]),
            )
            print(form, stepper, rows[form, stepper], flush=True)
    dealiased = _run(base.replace(dealias=True), dict(start), args.t_end)["field_hat"]
    rows["dealiased (skew)", "rk4"] = (_relative_l2(dealiased, reference), float("nan"))
    return rows


def _energy_enstrophy(system, zeta_hat):
    """Per-member ½⟨|u|²⟩ and ½⟨ζ²⟩ (grid means) from rfft2 coefficients."""
    n = system.grid.n
    kx = system.grid.kx
    w = torch.where((kx == 0) | (kx == n // 2), 1.0, 2.0) / n**4
    power = w * zeta_hat.abs() ** 2
    return 0.5 * (-system.inv_lap * power).sum((-2, -1)), 0.5 * power.sum((-2, -1))


def stationary(args):
    base = NavierStokesConfig.preset(
        "classroom", members=args.stat_members, frame_members=args.stat_members
    )
    configs = {(f, s): base.replace(advection=f, time_stepper=s) for f in FORMS for s in STEPPERS}
    configs["dealiased n = 32", "rk4"] = base.replace(
        n=32, dealias=True, forcing_amp=base.forcing_amp * 4
    )
    out = {}
    for key, config in configs.items():
        system = make_system(config, "cpu", "float32")
        gen = system.generator(args.seed)
        batch = config.members
        state = system.initial_state(batch, gen)
        for _ in range(config.steps(args.spinup)):
            state = system.step(state, system.draw_noise(batch, gen))
        energy, enstrophy = torch.zeros(batch), torch.zeros(batch)
        every = config.steps(0.25)
        count = 0
        for i in range(config.steps(args.record)):
            state = system.step(state, system.draw_noise(batch, gen))
            if (i + 1) % every == 0:
                e, z = _energy_enstrophy(system, state["field_hat"].to(torch.complex128))
                energy += e.float()
                enstrophy += z.float()
                count += 1
        energy, enstrophy = energy / count, enstrophy / count
        out[key] = tuple(
            (float(x.mean()), float(x.std() / math.sqrt(batch))) for x in (energy, enstrophy)
        )
        print(key, out[key], flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-end", type=float, default=2.0)
    parser.add_argument("--t-spin", type=float, default=16.0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--stat-members", type=int, default=32)
    parser.add_argument("--spinup", type=float, default=50.0)
    parser.add_argument("--record", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=("transient", "stationary"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"1-min load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.skip != "transient":
        rows = transient(args)
        print(
            f"\ntransient: paper physics, n = 32, float64, frozen phases, {args.members} members, "
            f"start after {args.t_spin:g} time units; after {args.t_end:g} time units\n"
        )
        print("| form | stepper | rel. L2 to dealiased n = 96 | time error (vs dt/8) |")
        print("|---|---|---|---|")
        for (form, stepper), (dist, terr) in rows.items():
            print(f"| {form} | {stepper} | {dist:.4f} | {terr:.1e} |")
    if args.skip != "stationary":
        stats = stationary(args)
        ref = stats["dealiased n = 32", "rk4"]
        print(
            f"\nstationary: classroom physics, float32, {args.stat_members} members, "
            f"{args.record:g} time units after {args.spinup:g}; ± standard error of the mean\n"
        )
        print("| form | stepper | energy | ×ref | enstrophy | ×ref |")
        print("|---|---|---|---|---|---|")
        for (form, stepper), ((e, se), (z, sz)) in stats.items():
            print(
                f"| {form} | {stepper} | {e:.4g} ± {se:.2g} | {e / ref[0][0]:.3f} | "
                f"{z:.4g} ± {sz:.2g} | {z / ref[1][0]:.3f} |"
            )


if __name__ == "__main__":
    main()
