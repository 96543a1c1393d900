import numpy as np

from gfdt_dash.cli import main
from gfdt_dash.data import open_dataset
from gfdt_dash.systems import get_config, simulate


def test_simulate_round_trip_matches_the_library(tmp_path, capsys):
    out = tmp_path / "run.nc"
    args = [
        "simulate",
        "--system",
        "allen_cahn",
        "--set",
        "n=8",
        "--set",
        "record=6",
        "--set",
        "spinup=1",
        "--set",
        "max_lag=2",
        "--set",
        "restart_every=2",
        "--members",
        "2",
        "--seed",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    ds = open_dataset(out)
    config = get_config(
        "allen_cahn",
        "classroom",
        n=8,
        record=6.0,
        spinup=1.0,
        max_lag=2.0,
        restart_every=2.0,
        members=2,
        frame_members=2,
    )
    direct = simulate(config, seed=4, device="cpu")
    np.testing.assert_array_equal(ds.field.values, direct.field.values)
    assert ds.attrs["config"] == direct.attrs["config"]
    assert "wrote" in capsys.readouterr().out


def test_bad_input_exits_2_naming_the_field(tmp_path, capsys):
    rc = main(["simulate", "--system", "ou", "--set", "n=7", "--out", str(tmp_path / "x.nc")])
    assert rc == 2
    assert "n: 7 must be even" in capsys.readouterr().err
    rc = main(["simulate", "--system", "ou", "--set", "kappa", "--out", str(tmp_path / "x.nc")])
    assert rc == 2
    assert "--set: expected NAME=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()
