"""``gfdt-dash response``: reads simulation netCDF, prints the error table, writes the result."""

import numpy as np
import pytest
import xarray as xr

from gfdt_dash.cli import main
from gfdt_dash.data import open_dataset, write_netcdf
from gfdt_dash.systems import OUConfig, simulate

TINY = dict(n=8, members=4, frame_members=4, spinup=0.0, record=40.0, n_experiments=4,
            max_lag=4.0, restart_every=8.0, frame_every=1.0, snapshot_every=4.0)


def test_response_command(tmp_path, capsys):
    cfg = OUConfig.preset("classroom", **TINY)
    sim = write_netcdf(simulate(cfg, seed=1, device="cpu"), tmp_path / "sim.nc")
    out = tmp_path / "resp.nc"
    rc = main(["response", "--data", str(sim), "--out", str(out), "--device", "cpu", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "exact_score" in printed and "stein_error" in printed
    res = open_dataset(out)
    names = res["estimator"].values.tolist()
    assert names == ["exact_score", "gaussian", "perturbation", "analytic"]
    assert res.sizes["lag"] == cfg.n_lags
    lag0 = res["response"].sel(estimator="analytic", lag=0.0, dy=0, dx=0)
    np.testing.assert_allclose(lag0, 1.0)


def test_response_command_errors_name_the_method(tmp_path, capsys):
    rng = np.random.default_rng(0)
    bare = write_netcdf(
        xr.Dataset(
            {"field": (("member", "time", "y", "x"), rng.standard_normal((2, 20, 8, 8)))}
        ),
        tmp_path / "bare.nc",
    )
    args = ["response", "--data", str(bare), "--out", str(tmp_path / "r.nc"), "--device", "cpu"]
    assert main([*args, "--methods", "gaussian,exact_score", "--max-lag", "3"]) == 2
    assert "--methods 'exact_score' needs the system config" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # refused by the parser, naming the allowed ones
        main([*args, "--methods", "gaussian,nope", "--max-lag", "3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--methods: unknown method 'nope'; allowed: learned_score, exact_score," in err
    assert main(args) == 2  # no config: the lag must be given
    assert "--max-lag" in capsys.readouterr().err
    assert main([*args, "--max-lag", "3", "--quiet"]) == 0
    assert open_dataset(tmp_path / "r.nc")["estimator"].values.tolist() == ["gaussian"]


def test_response_command_learned_score(tmp_path, capsys):
    """--model: a (barely trained) checkpoint's score goes through gfdt_response."""
    from gfdt_dash.score import ScoreNetConfig, TrainConfig, save_checkpoint, train_score

    cfg = OUConfig.preset("classroom", **TINY)
    sim = simulate(cfg, seed=1, device="cpu")
    model = train_score(
        sim["snapshot"].values,
        system_config=cfg,
        net_config=ScoreNetConfig(widths=(4, 8), n_res_blocks=1, embed_dim=8, groups=1),
        train_config=TrainConfig(batch_size=8, n_steps=2, eval_every=2, val_batches=1),
        device="cpu",
    )
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    data = write_netcdf(sim, tmp_path / "sim.nc")
    out = tmp_path / "resp.nc"
    args = ["response", "--data", str(data), "--out", str(out), "--device", "cpu", "--quiet"]
    assert main([*args, "--model", str(ckpt), "--methods", "learned_score,analytic"]) == 0
    table = capsys.readouterr().out
    assert "learned_score" in table
    res = open_dataset(out)
    assert res["estimator"].values.tolist() == ["learned_score", "analytic"]
    assert np.isfinite(res["stein_error"].values[0])
    assert main([*args, "--methods", "learned_score"]) == 2
    assert "--model" in capsys.readouterr().err
