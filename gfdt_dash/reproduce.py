"""What ``gfdt-dash reproduce`` runs: the system configs and the score network per preset.

The ``paper`` presets are the original study's protocols (reconstructed; see the README). Two
parts of them do not fit a CPU, so on a CPU ``reproduce --preset paper`` runs the **CPU
protocol** (:data:`CPU_PAPER_PROTOCOL`) and the ``cpu_paper`` score network unless told
otherwise:

- Allen–Cahn: 1,280 direct-perturbation experiments instead of 12,800 (about 12 M member-steps
  instead of 86 M; the reference's standard error is then ≈ 9 % of the response norm);
- Navier–Stokes: 128 members spun up for 64 time units instead of 2,048 for 1,024 (the study's
  spin-up alone is 2.7 × 10⁸ member-steps, ≈ 8 CPU-hours at 9,000 member-steps/s), training
  snapshots every half time unit instead of every 2 (2,048 snapshots), 128 perturbation
  experiments (the study's count);
- the score network: ``cpu_paper`` (:class:`~gfdt_dash.score.ScoreNetConfig` and
  :class:`~gfdt_dash.score.TrainConfig` presets of that name, ≈ 15 CPU-minutes of training at
  N = 32) instead of the study-size U-Net ``paper`` (11 M parameters, a GPU job); for OU (a
  Gaussian field, which the network's Gaussian skip already describes) 3,000 training steps and
  for Navier–Stokes 4,000 (:data:`CPU_PAPER_TRAIN_STEPS`), Allen–Cahn the preset's 8,000.

Grid, physical parameters, time step, spin-up and record of OU and Allen–Cahn, frame and lag
settings are the paper preset's everywhere. ``protocol="study"`` and ``score_net="paper"`` ask
for the full study settings on any device.
"""

from __future__ import annotations

from typing import Any

from gfdt_dash.devices import resolve_device

__all__ = [
    "CPU_PAPER_PROTOCOL",
    "CPU_PAPER_TRAIN_STEPS",
    "PROTOCOLS",
    "SCORE_NETS",
    "reproduction_setup",
]

CPU_PAPER_PROTOCOL: dict[str, dict[str, Any]] = {
    "allen_cahn": {"n_experiments": 1280},
    "navier_stokes": {
        "members": 128,
        "spinup": 64.0,
        "snapshot_every": 0.5,
    },
}
CPU_PAPER_TRAIN_STEPS: dict[str, int] = {"ou": 3000, "navier_stokes": 4000}
PROTOCOLS = ("auto", "study", "cpu")
SCORE_NETS = ("auto", "classroom", "cpu_paper", "paper")


def _on_cpu(device: str) -> bool:
    return resolve_device(device).type == "cpu"


def reproduction_setup(
    system: str,
    preset: str,
    *,
    protocol: str = "auto",
    score_net: str = "auto",
    device: str = "auto",
):
    """``(system config, ScoreNetConfig, TrainConfig)`` that ``reproduce`` runs for ``system``.

    ``protocol``: ``"study"`` (the preset as it is), ``"cpu"`` (the preset with
    :data:`CPU_PAPER_PROTOCOL`'s changes; only for ``preset="paper"``) or ``"auto"`` (``cpu``
    for the paper preset on a CPU ``device``, else ``study``). ``score_net``: a preset name of
    the network and its training, or ``"auto"``: ``classroom`` for the classroom preset; for
    the paper preset ``paper`` on a GPU and ``cpu_paper`` on a CPU. The CPU protocol with the
    ``cpu_paper`` network trains for :data:`CPU_PAPER_TRAIN_STEPS` steps where listed.
    """
    from gfdt_dash.score import ScoreNetConfig, TrainConfig
    from gfdt_dash.systems import get_config

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: {protocol!r} not allowed; allowed: {', '.join(PROTOCOLS)}")
    if score_net not in SCORE_NETS:
        raise ValueError(f"score_net: {score_net!r} not allowed; allowed: {', '.join(SCORE_NETS)}")
    if protocol == "cpu" and preset != "paper":
        raise ValueError("protocol: 'cpu' changes the paper preset only; use it with preset paper")
    cpu = preset == "paper" and (protocol == "cpu" or (protocol == "auto" and _on_cpu(device)))
    config = get_config(system, preset, **(CPU_PAPER_PROTOCOL.get(system, {}) if cpu else {}))
    if score_net == "auto":
        from gfdt_dash.stages import score_net_name

        score_net = score_net_name(preset, device)
    train = TrainConfig.preset(score_net)
    if cpu and score_net == "cpu_paper" and system in CPU_PAPER_TRAIN_STEPS:
        train = train.replace(n_steps=CPU_PAPER_TRAIN_STEPS[system])
    return config, ScoreNetConfig.preset(score_net), train
