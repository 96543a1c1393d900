"""The ``train`` CLI subcommand, the shipped-model helpers and the diagnostics (fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from gfdt_dash.cli import main
from gfdt_dash.data import write_netcdf
from gfdt_dash.score import (
    ScoreNetConfig,
    diagnose,
    load_checkpoint,
    load_shipped,
    sample,
    shipped_model_path,
    train_score,
)
from gfdt_dash.score.diagnostics import histogram_distance, radial_spectrum, stein_error
from gfdt_dash.score.shipped import SHIPPED_SETTINGS
from gfdt_dash.systems import OUConfig, get_config, make_system
from tests.score.conftest import TINY_NET, tiny_train


def test_cli_train_and_resume(tmp_path, tiny_snapshots, capsys):
    cfg = OUConfig.preset("classroom", n=8)
    ds = xr.Dataset(
        {"snapshot": (("snapshot_member", "snapshot_time", "y", "x"), tiny_snapshots)},
        attrs={"config": cfg.to_json(), "system": "ou"},
    )
    data = write_netcdf(ds, tmp_path / "data.nc")
    out = tmp_path / "m.safetensors"
    argv = ["train", str(data), "--steps", "3", "--no-diagnostics", "--device", "cpu",
            "--quiet", "--out", str(out)]
    assert main(argv) == 0
    model = load_checkpoint(out, expect_system="ou", expect_n=8, device="cpu")
    assert model.step == 3 and model.system_config == cfg
    argv[argv.index("3")] = "5"
    assert main([*argv, "--resume", str(out)]) == 0
    assert load_checkpoint(out, device="cpu").step == 5
    assert main(["train", str(tmp_path / "missing.nc"), "--out", str(out)]) == 2


@pytest.mark.parametrize("system", ["ou", "allen_cahn", "navier_stokes"])
def test_shipped_models_load(system):
    path = shipped_model_path(system)
    assert path.stat().st_size < 3 * 2**20
    model = load_shipped(system, device="cpu")
    cfg = get_config(system, "classroom")
    assert model.system == system and model.n == cfg.n and model.system_config == cfg
    assert model.train_state is None  # inference-only
    net = SHIPPED_SETTINGS.get(system, {}).get("net", {})
    assert model.net_config == ScoreNetConfig.preset("classroom", **net)
    diag = model.diagnostics
    # The Allen–Cahn model was diagnosed before the held-out loss got its present name.
    held_out_loss = diag["held_out_loss"] if system != "allen_cahn" else diag["val_loss"]
    assert np.isfinite(diag["stein_error"]) and np.isfinite(held_out_loss)
    if system != "navier_stokes":
        assert np.isfinite(diag["score_rel_error"])


def test_shipped_refusals():
    with pytest.raises(ValueError, match="unknown system"):
        shipped_model_path("lorenz")


def test_stein_error_of_exact_ou_score_is_small():
    """Stationary OU draws and the exact score satisfy ⟨x sᵀ⟩ = −I up to sampling error
    (~1/√(samples) per mode); a score off by a factor 2 has Stein error exactly 1."""
    cfg = OUConfig.preset("classroom")
    system = make_system(cfg, device="cpu", dtype="float64")
    gen = system.generator(0)
    x = system.grid.to_physical(system.initial_state(4000, gen)["field_hat"])
    s = system.score(x)
    assert stein_error(x, s) < 0.05
    assert stein_error(x, 2 * s) == pytest.approx(1.0, abs=0.05)


def test_diagnostics_and_sampler(tiny_snapshots):
    model = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(4),
                        device="cpu")
    d = diagnose(model, tiny_snapshots, exact_score=lambda x: -x, n_samples=16,
                 sample_steps=10, device="cpu")
    for key in ("held_out_loss", "stein_error", "score_rel_error", "stein_error_exact",
                "hist_distance", "spectrum_distance"):
        assert np.isfinite(d[key]), key
    assert len(d["spectrum"]["data"]) == 8 // 2 + 1
    a = sample(model, 5, n_steps=10, seed=1, device="cpu")
    b = sample(model, 5, n_steps=10, seed=1, device="cpu")
    assert a.shape == (5, 8, 8) and torch.equal(a, b)
    x = torch.randn(200, 8, 8, generator=torch.Generator().manual_seed(0))
    assert histogram_distance(x, x) == 0
    assert histogram_distance(x + 1, x) == pytest.approx(1.0, rel=0.1)
    np.testing.assert_allclose(radial_spectrum(x), 1.0, rtol=0.2)  # white noise: flat
