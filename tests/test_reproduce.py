"""What ``gfdt-dash reproduce`` runs: configs and score networks per preset, protocol and device."""

from __future__ import annotations

import pytest

from gfdt_dash.reproduce import CPU_PAPER_PROTOCOL, CPU_PAPER_TRAIN_STEPS, reproduction_setup
from gfdt_dash.score import ScoreNetConfig, ScoreUNet, TrainConfig
from gfdt_dash.systems import get_config


@pytest.mark.parametrize("system", ["ou", "allen_cahn", "navier_stokes"])
def test_paper_preset_on_a_cpu_runs_the_cpu_protocol_and_the_cpu_network(system):
    config, net, train = reproduction_setup(system, "paper", device="cpu")
    assert config == get_config(system, "paper", **CPU_PAPER_PROTOCOL.get(system, {}))
    assert net == ScoreNetConfig.preset("cpu_paper")
    steps = CPU_PAPER_TRAIN_STEPS.get(system, TrainConfig.preset("cpu_paper").n_steps)
    assert train == TrainConfig.preset("cpu_paper", n_steps=steps)
    study = get_config(system, "paper")
    # The paper grid and physics stay; only the listed protocol fields change.
    changed = {k for k, v in config.to_dict().items() if study.to_dict()[k] != v}
    assert changed == set(CPU_PAPER_PROTOCOL.get(system, {}))
    assert config.n == 32


def test_cpu_protocol_keeps_at_least_1280_allen_cahn_experiments():
    config, _, _ = reproduction_setup("allen_cahn", "paper", device="cpu")
    assert config.n_experiments >= 1280
    assert config.spinup == 1000 and config.record == 2000 and config.members == 128
    _, _, train = reproduction_setup("allen_cahn", "paper", device="cpu")
    assert train == TrainConfig.preset("cpu_paper")  # the full 8000 steps


def test_study_protocol_and_study_network_on_request():
    config, net, train = reproduction_setup(
        "allen_cahn", "paper", protocol="study", score_net="paper", device="cpu"
    )
    assert config == get_config("allen_cahn", "paper")
    assert net == ScoreNetConfig.preset("paper") and train == TrainConfig.preset("paper")


def test_classroom_preset_is_unchanged():
    config, net, train = reproduction_setup("allen_cahn", "classroom", device="cpu")
    assert config == get_config("allen_cahn", "classroom")
    assert net == ScoreNetConfig.preset("classroom") and train == TrainConfig.preset("classroom")


def test_cpu_paper_network_fits_the_paper_grid_and_is_small():
    """The CPU network runs at N = 32 and has under 1 % of the study-size U-Net's parameters
    (0.21 M against 11.1 M), which is what makes ≈ 15 CPU-minutes of training enough."""
    net = ScoreUNet(ScoreNetConfig.preset("cpu_paper"), n=32)
    big = ScoreUNet(ScoreNetConfig.preset("paper"), n=32)
    count = sum(p.numel() for p in net.parameters())
    assert count < 0.03 * sum(p.numel() for p in big.parameters())
    assert 100_000 < count < 400_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(protocol="fast"), "protocol"),
        (dict(score_net="huge"), "score_net"),
    ],
)
def test_bad_choices_are_refused_by_name(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        reproduction_setup("ou", "paper", device="cpu", **kwargs)


def test_cpu_protocol_needs_the_paper_preset():
    with pytest.raises(ValueError, match="^protocol: "):
        reproduction_setup("ou", "classroom", protocol="cpu", device="cpu")
