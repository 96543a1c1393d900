"""Table-driven: every bad input at a public boundary gets one clear error naming the input."""

import numpy as np
import pytest
import xarray as xr

from gfdt_dash.cli import main
from gfdt_dash.data import as_field_array, open_dataset, write_netcdf
from gfdt_dash.response import (
    analytic_response,
    error_table,
    exact_score,
    gaussian_response,
    gfdt_response,
    perturbation_response,
)
from gfdt_dash.scan import ScanSpec
from gfdt_dash.systems import NavierStokesConfig, OUConfig, get_config, simulate

RNG = np.random.default_rng(0)
GOOD = RNG.standard_normal((2, 12, 8, 8))
OU = OUConfig.preset(
    "classroom", n=8, members=2, frame_members=2, record=12.0, max_lag=4.0, restart_every=4.0
)


def _garbage(tmp_path):
    path = tmp_path / "garbage.nc"
    path.write_bytes(b"\x00not a netcdf file" * 20)
    return path


def _truncated(tmp_path):
    path = tmp_path / "trunc.nc"
    write_netcdf(xr.Dataset({"field": (("member", "time", "y", "x"), GOOD)}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


CASES = [
    # configs and presets
    ("n odd", lambda: get_config("ou", n=9), ValueError, "^n:"),
    ("n huge", lambda: get_config("ou", n=4096), ValueError, "^n:"),
    ("dt zero", lambda: get_config("ou", dt=0.0), ValueError, "^dt:"),
    ("dt nan", lambda: get_config("allen_cahn", dt=float("nan")), ValueError, "^dt:"),
    ("dt unstable", lambda: get_config("allen_cahn", lam=1e5), ValueError, "^dt:"),
    ("members 0", lambda: get_config("navier_stokes", members=0), ValueError, "^members:"),
    ("members absurd", lambda: get_config("ou", members=10**6), ValueError, "^members:"),
    ("eps2 negative", lambda: get_config("ou", eps2=-1.0), ValueError, "^eps2:"),
    ("kappa inf", lambda: get_config("ou", kappa=float("inf")), ValueError, "^kappa:"),
    ("record absurd", lambda: get_config("ou", record=1e9), ValueError, "^record:"),
    (
        "frame_every off-grid",
        lambda: get_config("ou", frame_every=0.1),
        ValueError,
        "^frame_every:",
    ),
    ("kf zero", lambda: get_config("navier_stokes", kf=0.0), ValueError, "^kf:"),
    ("U0 string", lambda: get_config("navier_stokes", U0="fast"), ValueError, "^U0:"),
    ("unknown parameter", lambda: get_config("ou", viscosity=1.0), ValueError, "^viscosity:"),
    ("unknown preset", lambda: get_config("ou", "huge"), ValueError, "^preset:"),
    ("unknown system", lambda: get_config("lorenz96"), ValueError, "^system:"),
    # simulate
    ("simulate members 0", lambda: simulate(OU, members=0, device="cpu"), ValueError, "^members:"),
    ("simulate device", lambda: simulate(OU, device="tpu"), ValueError, "^device:"),
    ("simulate dtype", lambda: simulate(OU, device="cpu", dtype="float16"), ValueError, "^dtype:"),
    (
        "simulate too big",
        lambda: simulate(
            OUConfig.preset("paper", members=4096, frame_members=4096, record=2e4), device="cpu"
        ),
        ValueError,
        "^record:",
    ),
    # field arrays
    ("fields 3-D", lambda: as_field_array(GOOD[0]), ValueError, "^fields:"),
    ("fields not square", lambda: as_field_array(GOOD[..., :6]), ValueError, "^fields:"),
    ("fields odd grid", lambda: as_field_array(GOOD[..., :7, :7]), ValueError, "^fields:"),
    (
        "fields NaN",
        lambda: as_field_array(np.where(GOOD > 2, np.nan, GOOD)),
        ValueError,
        "^fields:",
    ),
    (
        "fields wrong dims",
        lambda: as_field_array(xr.DataArray(GOOD, dims=("a", "b", "c", "d"))),
        ValueError,
        "^fields:",
    ),
    (
        "dataset without field",
        lambda: as_field_array(xr.Dataset({"u": (("a",), [1.0])})),
        ValueError,
        "^fields:",
    ),
    # estimators
    (
        "gaussian max_lag too big",
        lambda: gaussian_response(GOOD, 50, device="cpu"),
        ValueError,
        "max_lag",
    ),
    (
        "gaussian max_lag negative",
        lambda: gaussian_response(GOOD, -1, device="cpu"),
        ValueError,
        "max_lag",
    ),
    (
        "gfdt score shape",
        lambda: gfdt_response(GOOD, np.zeros((2, 12, 4, 4)), 3, device="cpu"),
        ValueError,
        "score",
    ),
    (
        "gfdt score not callable",
        lambda: gfdt_response(GOOD, "exact", 3, device="cpu"),
        ValueError,
        "score",
    ),
    (
        "exact score for NS",
        lambda: exact_score(NavierStokesConfig.preset("classroom")),
        ValueError,
        "config",
    ),
    (
        "analytic for NS",
        lambda: analytic_response(NavierStokesConfig.preset("classroom"), [0.0]),
        ValueError,
        "^ou_config:",
    ),
    ("analytic negative lag", lambda: analytic_response(OU, [-1.0]), ValueError, "^lags:"),
    ("perturbation without config", lambda: perturbation_response({"n": 8}), TypeError, "^config:"),
    (
        "error table bad reference",
        lambda: error_table([analytic_response(OU, [0.0, 1.0])], reference="gaussian"),
        ValueError,
        "^reference:",
    ),
    # files
    ("missing file", lambda: open_dataset("/nonexistent/run.nc"), FileNotFoundError, "^path:"),
    # scans
    (
        "scan bad model",
        lambda: ScanSpec.from_dict({"system": "ou", "params": {"U": [0.1]}, "model": "gpt"}),
        ValueError,
        "^model:",
    ),
    (
        "scan cell out of range",
        lambda: ScanSpec.from_dict({"system": "ou", "params": {"n": [7]}}),
        ValueError,
        "^n:",
    ),
]


@pytest.mark.parametrize(("name", "call", "exc", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_named_error(name, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("make", [_garbage, _truncated], ids=["garbage", "truncated"])
def test_corrupt_netcdf_files_are_refused(tmp_path, make):
    with pytest.raises(ValueError, match="^path: .* is not a readable netCDF file"):
        open_dataset(make(tmp_path))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["simulate", "--system", "ou", "--set", "dt=-1", "--out", "x.nc"], "dt:"),
        (["simulate", "--system", "ou", "--set", "dt=abc", "--out", "x.nc"], "--set dt:"),
        (["response", "--data", "missing.nc", "--out", "r.nc"], "--data: no such file"),
        (["scan", "missing.toml", "--out", "scan"], "missing.toml"),
    ],
)
def test_cli_reports_bad_input_with_exit_code_2(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
