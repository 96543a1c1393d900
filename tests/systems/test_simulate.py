"""The driver: layout, reproducibility, progress, cancellation, divergence, paired runs."""

import numpy as np
import pytest
import torch

from gfdt_dash.progress import Cancelled
from gfdt_dash.systems import (
    AllenCahnConfig,
    NavierStokesConfig,
    OUConfig,
    PairedRun,
    SimulationDiverged,
    advance,
    config_from_json,
    make_system,
    simulate,
)

TINY = dict(
    n=8,
    members=3,
    frame_members=2,
    spinup=2.0,
    record=8.0,
    frame_every=1.0,
    snapshot_every=4.0,
    max_lag=4.0,
    restart_every=4.0,
)


@pytest.mark.parametrize("cls", [OUConfig, AllenCahnConfig, NavierStokesConfig])
def test_dataset_layout_and_provenance(cls):
    config = cls.preset("classroom", **TINY)
    ds = simulate(config, seed=7, device="cpu")
    assert ds.field.dims == ("member", "time", "y", "x")
    assert ds.field.shape == (2, 8, 8, 8)
    assert ds.snapshot.shape == (3, 2, 8, 8)
    np.testing.assert_allclose(ds.time.values, 2.0 + np.arange(1, 9))
    assert config_from_json(ds.attrs["config"]) == config
    assert ds.attrs["seed"] == 7
    assert ds.attrs["system"] == config.system
    assert "gfdt_dash_version" in ds.attrs
    # Frames and snapshots are the same states where their times coincide.
    np.testing.assert_array_equal(ds.snapshot.values[:2, 0], ds.field.values[:, 3])


def test_same_seed_is_bit_identical_and_other_seeds_differ():
    config = AllenCahnConfig.preset("classroom", **TINY)
    a = simulate(config, seed=1, device="cpu")
    b = simulate(config, seed=1, device="cpu")
    c = simulate(config, seed=2, device="cpu")
    np.testing.assert_array_equal(a.field.values, b.field.values)
    assert not np.array_equal(a.field.values, c.field.values)


def test_progress_reports_live_snapshots_and_cancel_stops():
    config = OUConfig.preset("classroom", **TINY)
    reports = []
    simulate(config, seed=0, device="cpu", callback=reports.append)
    assert reports[-1].done == reports[-1].total == config.steps(10.0)
    assert any("snapshot" in r.info and r.info["snapshot"].shape == (8, 8) for r in reports)
    with pytest.raises(Cancelled):
        simulate(config, seed=0, device="cpu", should_stop=lambda: True)


def test_divergence_stops_at_once_with_advice():
    config = AllenCahnConfig.preset("classroom", **TINY)
    system = make_system(config, "cpu")
    huge = {"field_hat": system.grid.to_spectral(torch.full((3, 8, 8), 50.0))}
    with pytest.raises(SimulationDiverged, match="smaller dt") as info:
        simulate(config, seed=0, device="cpu", initial_state=huge)
    assert info.value.time <= config.spinup  # found in the spin-up (checks every 64 steps)


def test_absurd_output_sizes_are_refused_before_running():
    config = OUConfig.preset(
        "paper", members=4096, frame_members=4096, record=20000.0, restart_every=100.0
    )
    with pytest.raises(ValueError, match="^record:"):
        simulate(config, device="cpu")


@pytest.mark.parametrize("cls", [OUConfig, AllenCahnConfig, NavierStokesConfig])
def test_paired_run_shares_noise(cls):
    """The unperturbed half of a paired run is the plain run with the same noise stream."""
    config = cls.preset("classroom", **TINY)
    system = make_system(config, "cpu", "float64")
    gen = system.generator(3)
    start = system.initial_state(2, gen)
    paired = PairedRun(system, start, delta=0.1)
    plain = dict(start)
    gen_a, gen_b = system.generator(9), system.generator(9)
    for _ in range(5):
        paired.step(gen_a)
        plain = system.step(plain, system.draw_noise(2, gen_b))
    for key in plain:  # every entry, the LM scheme's carried noise increment included
        torch.testing.assert_close(paired.base[key], plain[key], rtol=0, atol=0)
    assert not torch.equal(paired.kicked["field_hat"], plain["field_hat"])
    if "noise_prev" in plain:  # the kicked copy carries the same increment
        torch.testing.assert_close(paired.kicked["noise_prev"], plain["noise_prev"], rtol=0, atol=0)
    # The kick adds δ at pixel (0, 0) exactly.
    fresh = PairedRun(system, start, delta=0.25)
    diff = fresh.response()
    expected = torch.zeros_like(diff)
    expected[:, 0, 0] = 1.0
    torch.testing.assert_close(diff, expected)


def test_divergence_advice_says_whether_dt_is_the_cause():
    """The message recommends a smaller dt exactly when rate × dt exceeds the stability limit."""
    unstable = str(SimulationDiverged(3.0, 0.1, ratio=4.0, checked_time=2.0))
    assert "a time-step instability" in unstable and "smaller dt (≤ 0.0225)" in unstable
    stable = str(SimulationDiverged(3.0, 0.1, ratio=0.25, checked_time=2.0))
    assert "not a time-step instability" in stable and "will not help" in stable
    assert "smaller dt" not in stable
    assert "not diagnosed" in str(SimulationDiverged(3.0, 0.1))
    # A huge start state makes the cubic term stiff: a genuine time-step instability.
    config = AllenCahnConfig.preset("classroom", **TINY)
    system = make_system(config, "cpu")
    huge = {"field_hat": system.grid.to_spectral(torch.full((3, 8, 8), 50.0))}
    ratio = system.stability_ratio(huge)
    # uniform θ: the Jacobian is diagonal, most negative rate λε²(3·50² − 1) at k = 0 with
    # λε² = 4, dt = 1/16, against LM's limit 2
    assert ratio == pytest.approx(4 * (3 * 2500 - 1) / 16 / 2.0, rel=1e-4)
    with pytest.raises(SimulationDiverged, match="a time-step instability.*smaller dt") as info:
        simulate(config, seed=0, device="cpu", initial_state=huge)
    assert info.value.ratio > 1


def test_divergence_not_caused_by_dt_is_reported_as_such():
    """Growth that a smaller dt cannot cure: the anti-Hermitian round-off of the kx = 0 column
    left unprojected (the Allen–Cahn blow-up at N ≥ 20) is diagnosed as no time-step instability.
    """
    config = AllenCahnConfig.preset("paper", n=24, members=2, frame_members=2)
    system = make_system(config, "cpu", "float32")
    # the unprojected scheme: neither the step's projection nor the noise draw's
    system.grid.hermitian_ = lambda field_hat: field_hat
    system.grid._symmetrise_edges_ = lambda field_hat, weight: field_hat
    gen = system.generator(0)
    with pytest.raises(SimulationDiverged, match="not a time-step instability") as info:
        advance(system, system.initial_state(2, gen), config.steps(20.0), gen)
    assert info.value.ratio < 1
    # and the projected scheme runs through the same stretch
    system = make_system(config, "cpu", "float32")
    gen = system.generator(0)
    assert system.is_finite(advance(system, system.initial_state(2, gen), config.steps(20.0), gen))
