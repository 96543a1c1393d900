import json
import logging

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


def test_scan_is_quiet_and_its_table_names_the_parameter_values(
    tmp_path, capfd, monkeypatch, tiny_scan_spec
):
    # the CLI quiets Dask process-wide; give this process its state back afterwards
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "info")
    dask_log = logging.getLogger("distributed")
    monkeypatch.setattr(dask_log, "level", dask_log.level)
    spec = tiny_scan_spec(seeds=(0, 3))
    spec["params"] = {"U": [0.05]}
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for table in ("params", "fixed"):
        lines += [f"[{table}]", *(f"{k} = {json.dumps(v)}" for k, v in spec[table].items())]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    assert main(["scan", str(path), "--out", str(tmp_path / "scan"), "--workers", "1"]) == 0
    out, err = capfd.readouterr()
    assert "INFO" not in err and "distributed" not in err, err  # Dask's logging only on --verbose
    assert err.splitlines()[0] == "scan: 2 cells, 0 already done"
    header, names, first, second = out.splitlines()[:4]
    assert header.split() == ["error", "gaussian", "analytic"]
    assert names.split() == ["U", "seed"]
    assert first.split()[:2] == ["0.05", "0"] and second.split()[0] == "3"


def test_set_accepts_a_choice_and_names_a_wrong_one(tmp_path, capsys):
    out = tmp_path / "rk4.nc"
    small = ["--set", "n=8", "--set", "record=2", "--set", "spinup=0", "--set", "max_lag=1"]
    small += ["--set", "restart_every=1", "--members", "1", "--device", "cpu", "--quiet"]
    args = ["simulate", "--system", "allen_cahn", "--set", "integrator=rk4", *small]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads(open_dataset(out).attrs["config"])["integrator"] == "rk4"
    bad = ["simulate", "--system", "allen_cahn", "--set", "integrator=euler", *small]
    assert main([*bad, "--out", str(tmp_path / "bad.nc")]) == 2
    assert "integrator: 'euler' not allowed; allowed: " in capsys.readouterr().err
    bad = ["simulate", "--system", "allen_cahn", "--set", "lam=abc", *small]
    assert main([*bad, "--out", str(tmp_path / "bad.nc")]) == 2
    assert "lam: must be a number, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "bad.nc").exists()


def test_reproduce_set_overrides_every_system_and_names_a_wrong_one(tmp_path, capsys):
    out = str(tmp_path / "rep")
    args = ["reproduce", "--systems", "ou,navier_stokes", "--use-shipped", "--out", out]
    assert main([*args, "--set", "kappa=0.01"]) == 2
    err = capsys.readouterr().err
    assert "--set: navier_stokes: kappa: not a parameter of navier_stokes" in err
    assert main([*args, "--set", "members=0"]) == 2
    assert "--set: ou: members: 0 outside the allowed range [1, 4096]" in capsys.readouterr().err


def test_reproduce_again_from_its_cache_needs_no_member_steps(tmp_path, capsys):
    """A rerun into the same folder reads the simulation and the direct perturbation from the
    cache, so a member-step limit that refuses the first run admits it, with the same errors."""
    small = ["members=8", "frame_members=8", "record=40", "spinup=20", "n_experiments=8"]
    args = ["reproduce", "--systems", "ou", "--use-shipped", "--out", str(tmp_path / "rep")]
    args += [item for value in small for item in ("--set", value)] + ["--quiet"]
    capsys.readouterr()
    assert main([*args, "--max-member-steps", "10"]) == 2
    assert "needs 7,680 member-steps (simulation 3,840" in capsys.readouterr().err
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main([*args, "--max-member-steps", "10"]) == 0
    assert capsys.readouterr().out == first
