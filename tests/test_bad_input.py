"""Table-driven: every bad input at a public boundary gets one clear error naming the input.

One table per class of bad input (configs, seeds, field arrays, netCDF config attributes,
checkpoint metadata, output destinations, job cost, scan specs, command lines); every row must be
refused with an error that names the offending field, option or file. The command-line tables
also run through the real ``gfdt-dash`` in a subprocess: exit status 2, one line, no traceback.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from gfdt_dash.cli import main
from gfdt_dash.cost import CLI_LIMITS, job_cost
from gfdt_dash.data import (
    FIELD_DIMS,
    as_field_array,
    check_destination,
    open_dataset,
    read_config,
    remove_stale_temps,
    write_netcdf,
)
from gfdt_dash.pipeline import compute_responses, run_pipeline
from gfdt_dash.response import (
    analytic_response,
    combine,
    error_table,
    exact_score,
    gaussian_response,
    gfdt_response,
    perturbation_response,
)
from gfdt_dash.scan import MAX_CELLS, ScanSpec, run_scan
from gfdt_dash.score import (
    ScoreNetConfig,
    TrainConfig,
    load_checkpoint,
    save_checkpoint,
    train_score,
)
from gfdt_dash.seeds import check_seed
from gfdt_dash.systems import (
    NavierStokesConfig,
    OUConfig,
    config_from_dict,
    config_from_json,
    get_config,
    load_plugin,
    simulate,
)
from gfdt_dash.ui.limits import Limits

RNG = np.random.default_rng(0)
GOOD = RNG.standard_normal((2, 12, 8, 8))
OU = OUConfig.preset(
    "classroom", n=8, members=2, frame_members=2, record=12.0, max_lag=4.0, restart_every=4.0
)


GOOD_DS = xr.Dataset({"field": (("member", "time", "y", "x"), GOOD)})
SCAN = {"system": "ou", "model": "none", "params": {"U": [0.1]}, "fixed": {"n": 8}}


def _scan(**change):
    return lambda: ScanSpec.from_dict({**SCAN, **change})


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


# OU on 64×64, 512 members, 900 time units: few member-steps but 7.7 GiB of recorded frames (the
# dashboard's limits used to accept it).
BIG_OUTPUT = get_config(
    "ou",
    n=64,
    members=512,
    frame_members=512,
    record=900.0,
    spinup=0.0,
    dt=0.25,
    frame_every=1.0,
    snapshot_every=10.0,
    max_lag=10.0,
    restart_every=10.0,
    n_experiments=512,
)


def _read_config(text):
    ds = GOOD_DS.copy()
    ds.attrs["config"] = text
    return read_config(ds, "f.nc")


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
    (
        "kf forcing only the mean",
        lambda: get_config("navier_stokes", kf=0.99),
        ValueError,
        r"^kf: 0.99 forces no wavenumber but k = 0 .*forcing_amp=8.0 .*allowed: kf >= 1",
    ),
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
        "^config:",
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
    ("scan spec not a table", lambda: ScanSpec.from_dict([1]), ValueError, "^spec:"),
    ("scan system not a string", _scan(system=3), ValueError, "^system:"),
    ("scan params not a table", _scan(params=3), ValueError, "^params:"),
    ("scan seed as a parameter", _scan(params={"seed": [1, 2]}), ValueError, "^params.seed:"),
    ("scan seed in fixed", _scan(fixed={"seed": 1}), ValueError, "^fixed.seed:"),
    ("scan param values a table", _scan(params={"U": {"a": 1}}), ValueError, "^params.U:"),
    ("scan param value a list", _scan(params={"U": [[0.1]]}), ValueError, "^params.U:"),
    ("scan fixed value a list", _scan(fixed={"n": [8]}), ValueError, "^fixed.n:"),
    ("scan fixed unknown key", _scan(fixed={"colour": 1}), ValueError, "^colour:"),
    ("scan train unknown key", _scan(train={"bogus": 1}), ValueError, "^train.bogus:"),
    ("scan train bad value", _scan(train={"n_steps": -1}), ValueError, "^train.n_steps:"),
    ("scan methods a string", _scan(methods="gaussian"), ValueError, "^methods:"),
    ("scan methods unknown", _scan(methods=["nope"]), ValueError, "^methods:"),
    ("scan seeds repeated", _scan(seeds=[1, 1]), ValueError, "^seeds:"),
    ("scan seed negative", _scan(seeds=[-1]), ValueError, "^seeds: -1 outside"),
    ("scan seed too big", _scan(seeds=[2**63]), ValueError, "^seeds: 9223372036854775808"),
    (
        "scan too many cells",
        _scan(params={f"p{i}": list(range(10)) for i in range(6)}),
        ValueError,
        f"^params: 1,000,000 cells .* at most {MAX_CELLS:,}",
    ),
    # seeds: 0 <= seed < 2**63 everywhere, never folded into the generator's range
    ("seed -1", lambda: check_seed(-1), ValueError, "^seed: -1 outside"),
    ("seed 2**63", lambda: check_seed(2**63), ValueError, "^seed: 9223372036854775808 outside"),
    ("seed float", lambda: check_seed(1.0), ValueError, "^seed: must be an integer"),
    ("seed bool", lambda: check_seed(False), ValueError, "^seed: must be an integer"),
    ("simulate seed -1", lambda: simulate(OU, seed=-1, device="cpu"), ValueError, "^seed:"),
    (
        "simulate seed 2**63",
        lambda: simulate(OU, seed=2**63, device="cpu"),
        ValueError,
        "^seed:",
    ),
    (
        "responses seed -1",
        lambda: compute_responses(
            None, GOOD_DS, methods=["gaussian"], max_lag=2, seed=-1, device="cpu"
        ),
        ValueError,
        "^seed:",
    ),
    (
        "perturbation seed 2**63",
        lambda: perturbation_response(OU, seed=2**63, device="cpu"),
        ValueError,
        "^seed: 9223372036854775808 outside",
    ),
    (
        "training seed -1",
        lambda: train_score(GOOD_DS, seed=-1, device="cpu"),
        ValueError,
        "^seed: -1 outside",
    ),
    # field values: real floating-point, not constant; bare arrays with an unambiguous order
    (
        "fields constant",
        lambda: as_field_array(np.ones((2, 12, 8, 8))),
        ValueError,
        "^fields:.*constant",
    ),
    (
        "fields complex",
        lambda: as_field_array(GOOD.astype(complex)),
        ValueError,
        "^fields: values are complex",
    ),
    ("fields boolean", lambda: as_field_array(GOOD > 0), ValueError, "^fields: values are bool"),
    (
        "fields integer",
        lambda: as_field_array((10 * GOOD).astype(np.int32)),
        ValueError,
        "^fields: values are int32",
    ),
    ("fields strings", lambda: as_field_array(GOOD.astype(str)), ValueError, "^fields:"),
    (
        "bare array of ambiguous axis order",
        lambda: as_field_array(RNG.standard_normal((8, 8, 8, 8))),
        ValueError,
        "^fields: a bare array of shape .* ambiguous axis order",
    ),
    (
        "estimator given a constant field",
        lambda: gaussian_response(np.zeros((2, 12, 8, 8)), 3, device="cpu"),
        ValueError,
        "^fields:.*constant",
    ),
    # the config attribute of a netCDF file, validated by type
    ("config a list", lambda: _read_config("[1, 2]"), ValueError, "^f.nc: the 'config' .* list"),
    ("config null", lambda: _read_config("null"), ValueError, "^f.nc: .*JSON object, got NoneType"),
    ("config a number", lambda: _read_config("3"), ValueError, "^f.nc: .*JSON object, got int"),
    (
        "config nested thousands deep",
        lambda: _read_config("[" * 100_000 + "]" * 100_000),
        ValueError,
        "^f.nc: .*nested too deeply",
    ),
    ("config not JSON", lambda: _read_config("{oops"), ValueError, "^f.nc: .*not valid JSON"),
    ("config not text", lambda: _read_config(np.array([1, 2])), ValueError, "^f.nc: .*JSON text"),
    (
        "config unknown field",
        lambda: _read_config(json.dumps({"system": "ou", "colour": 1})),
        ValueError,
        "^f.nc: .*colour: not a parameter",
    ),
    (
        "config system a list",
        lambda: _read_config(json.dumps({"system": ["ou"]})),
        ValueError,
        "^f.nc: .*not a valid system config",
    ),
    (
        "config grid contradicts the data",
        lambda: _read_config(OU.replace(n=16).to_json()),
        ValueError,
        "^f.nc: .*says n=16, but the 'field' variable is on a 8×8 grid",
    ),
    # cost: one model, refused above the limit with the number and the way to raise it
    (
        "perturbation protocol of hours (CLI)",
        lambda: CLI_LIMITS.check(
            job_cost(
                OUConfig.preset("paper", members=4096, frame_members=1, n_experiments=10**6),
                simulate=False,
                perturbation=True,
            )
        ),
        ValueError,
        "^members × steps: this job needs 6,540,492,800 member-steps .*--max-member-steps",
    ),
    (
        "7.7 GiB OU job on the classroom server",
        lambda: Limits().check(BIG_OUTPUT),
        ValueError,
        "^record: this job would record 7.73 GiB",
    ),
]


def _scan_dict(**change):
    return {**SCAN, **change}


# Wrong kinds and sizes at every public function: refused at the boundary, naming the argument.
CASES += [
    # configs: booleans are not numbers, numbers are not booleans, absurd sizes end in an error
    ("members True", lambda: get_config("ou", members=True), ValueError, "^members: must be an in"),
    ("kappa True", lambda: get_config("ou", kappa=True), ValueError, "^kappa: must be a number"),
    ("dt True", lambda: get_config("ou", dt=True), ValueError, "^dt: must be a number, got True"),
    (
        "1 for a true/false field",
        lambda: get_config("navier_stokes", dealias=1),
        ValueError,
        "^dealias: 1 not allowed; allowed: False, True",
    ),
    (
        "n of 400 digits",
        lambda: get_config("ou", n=10**400),
        ValueError,
        "^n: an integer of 400 digits outside the allowed range",
    ),
    ("kappa of 400 digits", lambda: get_config("ou", kappa=10**400), ValueError, "^kappa: must be"),
    ("preset a list", lambda: get_config("ou", ["classroom"]), ValueError, "^preset: unknown"),
    (
        "dt of 1e-300 (steps without end)",
        lambda: get_config("ou", dt=1e-300),
        ValueError,
        r"^dt: 1e-300 makes 5e\+302 time steps of spin-up and record; at most 1,000,000,000",
    ),
    ("dt subnormal", lambda: get_config("ou", dt=5e-324), ValueError, "^dt: 4.94066e-324 makes"),
    (
        "an override named system",
        lambda: get_config("ou", system="allen_cahn"),
        ValueError,
        "^system: not a parameter of ou",
    ),
    ("config from a list", lambda: config_from_dict([1, 2]), TypeError, "^config: must be a map"),
    ("config from bad JSON", lambda: config_from_json("{oops"), ValueError, "^config: not a JSON"),
    ("config from a JSON list", lambda: config_from_json("[]"), ValueError, "^config: must be"),
    (
        "ema_decay 1 (weights never move)",
        lambda: TrainConfig(ema_decay=1.0),
        ValueError,
        "^ema_decay: 1.0 would keep the initial weights",
    ),
    ("n_steps True", lambda: TrainConfig(n_steps=True), ValueError, "^n_steps: must be an integer"),
    ("training preset a dict", lambda: TrainConfig.preset({}), ValueError, "^preset: unknown"),
    ("training override unknown", lambda: TrainConfig().replace(lr_max=1.0), ValueError,
     "^lr_max: not a field of TrainConfig"),
    ("network preset override unknown", lambda: ScoreNetConfig.preset("classroom", depth=3),
     ValueError, "^depth: not a field of ScoreNetConfig"),
    (
        "network config from a number",
        lambda: ScoreNetConfig.from_dict(3),
        TypeError,
        "^ScoreNetConfig: must be a mapping",
    ),
    # simulate: the config, an ensemble within the config's bounds, callables, states, devices
    ("simulate a dict", lambda: simulate(OU.to_dict(), device="cpu"), TypeError, "^config:"),
    (
        "simulate 10**30 members",
        lambda: simulate(OU, members=10**30, device="cpu"),
        ValueError,
        "^members: 1000000000000000000000000000000 outside the allowed range",
    ),
    (
        "simulate 2.5 members",
        lambda: simulate(OU, members=2.5, device="cpu"),
        ValueError,
        "^members: must be an integer, got 2.5",
    ),
    (
        "simulate callback not callable",
        lambda: simulate(OU, device="cpu", callback=3),
        TypeError,
        "^callback: must be a callable",
    ),
    (
        "simulate should_stop not callable",
        lambda: simulate(OU, device="cpu", should_stop="no"),
        TypeError,
        "^should_stop: must be a callable",
    ),
    (
        "simulate from a state of other variables",
        lambda: simulate(OU, device="cpu", initial_state={"x": torch.zeros(2, 8, 5)}),
        ValueError,
        "^initial_state: expected a state of FieldSystem",
    ),
    (
        "simulate from a state of another grid",
        lambda: simulate(
            OU,
            device="cpu",
            initial_state={
                "field_hat": torch.zeros(2, 4, 3, dtype=torch.complex64),
                "noise_prev": torch.zeros(2, 4, 3, dtype=torch.complex64),
            },
        ),
        ValueError,
        r"^initial_state: 'field_hat' has shape \(2, 4, 3\), expected \(members, 8, 5\)",
    ),
    ("device cpu:x", lambda: simulate(OU, device="cpu:x"), ValueError, "^device: 'cpu:x' is not"),
    ("device empty", lambda: simulate(OU, device=""), ValueError, "^device: empty name"),
    ("device a number", lambda: simulate(OU, device=3), ValueError, "^device: expected a name"),
    # estimators: seeds, bootstrap size, null threshold, overflow, score values, lags
    (
        "gaussian seed -1",
        lambda: gaussian_response(GOOD, 3, seed=-1, device="cpu"),
        ValueError,
        "^seed: -1 outside",
    ),
    (
        "gaussian n_boot 1",
        lambda: gaussian_response(GOOD, 3, n_boot=1, device="cpu"),
        ValueError,
        "^n_boot: must be an integer from 2",
    ),
    (
        "gaussian n_boot of hours",
        lambda: gaussian_response(GOOD, 3, n_boot=10**9, device="cpu"),
        ValueError,
        "^n_boot:",
    ),
    (
        "gaussian null_rtol nan",
        lambda: gaussian_response(GOOD, 3, null_rtol=float("nan"), device="cpu"),
        ValueError,
        r"^null_rtol: must be a number in \[0, 1\)",
    ),
    (
        "gaussian of values whose products overflow",
        lambda: gaussian_response(GOOD * 1e300, 3, device="cpu"),
        ValueError,
        "^fields: their correlations overflow in float64",
    ),
    (
        "gfdt of a complex score",
        lambda: gfdt_response(GOOD, lambda x: x.to(torch.complex64), 3, device="cpu"),
        ValueError,
        "^score: the callable must return real floating-point values",
    ),
    (
        "fields with dates for times",
        lambda: gaussian_response(
            xr.DataArray(GOOD, dims=FIELD_DIMS, coords={"time": np.arange(12).astype("M8[D]")}),
            2,
            device="cpu",
        ),
        ValueError,
        "^fields: the time coordinate must be numbers",
    ),
    (
        "fields with a decreasing time",
        lambda: gaussian_response(
            xr.DataArray(GOOD, dims=FIELD_DIMS, coords={"time": -np.arange(12.0)}), 2, device="cpu"
        ),
        ValueError,
        "^fields: the time coordinate must increase",
    ),
    ("pixel a number", lambda: gaussian_response(GOOD, 2, pixel=3, device="cpu"), ValueError,
     "^pixel: expected"),
    ("pixel of booleans", lambda: gaussian_response(GOOD, 2, pixel=(True, 0), device="cpu"),
     ValueError, "^pixel: expected"),
    ("frame_dt True", lambda: gaussian_response(GOOD, 2, frame_dt=True, device="cpu"),
     ValueError, "^frame_dt: must be a positive number"),
    ("frame_dt whose lags overflow", lambda: gaussian_response(GOOD, 2, frame_dt=1e308,
     device="cpu"), ValueError, "^frame_dt: must be a positive number"),
    ("analytic lags of text", lambda: analytic_response(OU, "abc"), ValueError, "^lags: expected"),
    (
        "analytic lags of gigabytes",
        lambda: analytic_response(OU, np.arange(3_000_000, dtype=float)),
        ValueError,
        "^lags: 3,000,000 lags on a 8×8 grid would take 1.4 GiB",
    ),
    (
        "perturbation spin-up of 10**12 time units",
        lambda: perturbation_response(OU, spinup=1e12, device="cpu"),
        ValueError,
        "^spinup: 1000000000000.0 outside the allowed range",
    ),
    (
        "perturbation batch as text",
        lambda: perturbation_response(OU, batch="2", device="cpu"),
        ValueError,
        "^batch: must be a positive integer",
    ),
    (
        "perturbation from a wrong state",
        lambda: perturbation_response(OU, initial_state={"a": 1}, device="cpu"),
        ValueError,
        "^initial_state:",
    ),
    ("combine a number", lambda: combine(3), TypeError, "^results: expected a list"),
    ("combine numbers", lambda: combine([1, 2]), TypeError, "^results: item 0 is not a response"),
    ("error table of text", lambda: error_table("abc"), TypeError, "^results: expected a combined"),
    (
        "error table max_lag negative",
        lambda: error_table(
            [analytic_response(OU, [0.0, 1.0]), gaussian_response(GOOD, 1, device="cpu")],
            max_lag=-1,
        ),
        ValueError,
        "^max_lag: must be a number >= the first lag 0",
    ),
    # pipeline: the config, the model choice, its settings, a cache folder that is a file
    ("pipeline config text", lambda: run_pipeline("ou"), TypeError, "^config: expected a System"),
    (
        "pipeline model misspelt",
        lambda: run_pipeline(OU, model="shiped", device="cpu"),
        ValueError,
        "^model: 'shiped' is neither 'shipped', 'train' nor 'auto', nor a checkpoint file",
    ),
    (
        "pipeline train_config a dict",
        lambda: run_pipeline(OU, model="train", train_config={"n_steps": 2}, device="cpu"),
        TypeError,
        "^train_config: expected a TrainConfig",
    ),
    (
        "pipeline shipped model on another grid",
        lambda: run_pipeline(OU, model="shipped", methods=["learned_score"], device="cpu"),
        ValueError,
        "^model: the shipped ou model is for a 16×16 grid, not n=8",
    ),
    (
        "pipeline cache folder is a file",
        lambda: run_pipeline(OU, model=None, methods=["gaussian"], cache_dir=__file__),
        ValueError,
        "^cache_dir: cannot make the folder",
    ),
    (
        "pipeline only model methods without a model",
        lambda: run_pipeline(OU, model=None, methods=["learned_score"], device="cpu"),
        ValueError,
        "^methods: every method asked for needs a score model",
    ),
    (
        "pipeline lags beyond the record",
        lambda: run_pipeline(OU.replace(record=4.0), model=None, device="cpu"),
        ValueError,
        "^max_lag: 4 frames needs a record longer than the config's 4 frames",
    ),
    (
        "responses with a config of another grid",
        lambda: compute_responses(OU.replace(n=16), GOOD_DS, methods=["gaussian"], device="cpu"),
        ValueError,
        "^config: n=16, but the simulation's field is on a 8×8 grid",
    ),
    (
        "responses of no method",
        lambda: compute_responses(None, GOOD_DS, methods=[], max_lag=2, device="cpu"),
        ValueError,
        "^methods: give at least one method",
    ),
    # score models
    (
        "training net_config a dict",
        lambda: train_score(GOOD, net_config={"widths": (4,)}, device="cpu"),
        TypeError,
        "^net_config:",
    ),
    ("training on text", lambda: train_score("abc", device="cpu"), ValueError, "^snapshots: not"),
    (
        "training checkpoints into a folder",
        lambda: train_score(
            GOOD, checkpoint_path=Path(__file__).parent, checkpoint_every=1, device="cpu"
        ),
        ValueError,
        "^checkpoint_path: .* is a directory",
    ),
    ("checkpoint path None", lambda: load_checkpoint(None), ValueError, "^path: expected a check"),
    ("save text as a model", lambda: save_checkpoint("abc", "x.st"), TypeError, "^model: expected"),
    # files
    ("open_dataset None", lambda: open_dataset(None), ValueError, "^path: expected a netCDF"),
    ("destination a number", lambda: check_destination(3), TypeError, "^path: expected a file"),
    ("write text as netCDF", lambda: write_netcdf("abc", "x.nc"), TypeError, "^ds: expected"),
    ("plug-in path None", lambda: load_plugin(None), ValueError, "^plugin: expected the path"),
    ("scan spec path None", lambda: ScanSpec.from_toml(None), ValueError, "^spec: expected the"),
    # scan specs
    ("scan repeated values", _scan(params={"U": [0.1, 0.1]}), ValueError, "^params.U: repeated"),
    (
        "scan parameter also fixed",
        _scan(fixed={"n": 8, "U": 0.2}),
        ValueError,
        "^fixed.U: also scanned in params",
    ),
    ("scan no methods", _scan(methods=[]), ValueError, "^methods: give at least one method"),
    ("scan true as a number", _scan(params={"U": [True]}), ValueError, "^U: must be a number"),
    (
        "scan learned score without a model",
        _scan(methods=["learned_score"]),
        ValueError,
        "^methods: 'learned_score' needs a score model",
    ),
    (
        "scan exact score of Navier–Stokes",
        _scan(system="navier_stokes", params={"U0": [1.0]}, methods=["exact_score"]),
        ValueError,
        "^methods: 'exact_score' needs an exact score",
    ),
    (
        "scan shipped model on another grid",
        _scan(model="shipped"),
        ValueError,
        "^n: the shipped ou model is for n=16, a cell has n=8",
    ),
]


def test_kf_below_one_forces_only_the_mean_and_is_accepted_only_without_forcing():
    """|k| ≤ kf selects k = 0 alone for kf < 1 (the refused case above), the four |k| = 1 modes
    besides from kf = 1; without forcing kf does not matter and is accepted."""
    from gfdt_dash.systems import make_system

    unforced = get_config("navier_stokes", n=8, kf=0.99, forcing_amp=0.0)
    assert make_system(unforced, device="cpu").n_forced == 1
    lowest = get_config("navier_stokes", n=8, kf=1.0)
    assert make_system(lowest, device="cpu").n_forced == 5


def test_numpy_scalars_are_accepted_as_plain_values():
    config = get_config(
        "ou", n=np.int64(16), members=np.int32(4), frame_members=4, kappa=np.float32(0.01)
    )
    assert (config.n, config.members) == (16, 4) and type(config.n) is int
    assert type(config.kappa) is float
    assert config.to_json() == get_config("ou", n=16, members=4, frame_members=4,
                                          kappa=float(np.float32(0.01))).to_json()
    assert TrainConfig(n_steps=np.int64(10)).n_steps == 10
    assert ScoreNetConfig(widths=(np.int64(4), np.int64(8)), groups=1).widths == (4, 8)
    res = gaussian_response(GOOD, np.int64(2), n_boot=np.int64(10), n_blocks=np.int64(2),
                            frame_dt=np.float32(0.5), pixel=(np.int64(1), 2), device="cpu")
    assert res.sizes["lag"] == 3
    assert simulate(OU.replace(record=2.0, max_lag=1.0, restart_every=1.0, spinup=0.0),
                    members=np.int64(1), seed=np.int64(3), device="cpu").sizes["member"] == 1


def test_diagnostics_sizes_are_refused_before_sampling(checkpoint_bytes):
    from gfdt_dash.score import diagnose
    from gfdt_dash.score.checkpoint import model_from_bytes

    model = model_from_bytes(checkpoint_bytes, device="cpu")
    fields = RNG.standard_normal((4, 8, 8)).astype(np.float32)
    for kwargs, message in [
        ({"sample_steps": 0}, "^sample_steps: must be an integer in"),
        ({"sample_steps": 10**9}, "^sample_steps:"),
        ({"n_samples": 10**9}, "^n_samples:"),
        ({"max_fields": 0}, "^max_fields:"),
    ]:
        with pytest.raises(ValueError, match=message):
            diagnose(model, fields, device="cpu", **kwargs)


def test_a_wrong_device_name_ends_in_one_line(tmp_path, capsys):
    for device, message in [
        ("cpu:x", "device: 'cpu:x' is not a device name"),
        ("", "device: empty name"),
    ]:
        argv = ["simulate", "--system", "ou", "--device", device, "--out", str(tmp_path / "x.nc")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.iterdir())


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
        (["simulate", "--system", "ou", "--set", "dt=abc", "--out", "x.nc"], "dt: must be a"),
        (["response", "--data", "missing.nc", "--out", "r.nc"], "--data: no such file"),
        (["scan", "missing.toml", "--out", "scan"], "missing.toml"),
    ],
)
def test_cli_reports_bad_input_with_exit_code_2(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_an_array_with_stated_dims_is_accepted_in_any_axis_order():
    values = RNG.standard_normal((8, 8, 8, 8))  # (y, x, member, time): ambiguous when bare
    arr = as_field_array(xr.DataArray(values, dims=("y", "x", "member", "time")))
    np.testing.assert_array_equal(arr, values.transpose(2, 3, 0, 1))


# -- output destinations: nothing is ever destroyed ------------------------------------------


def _dest_same_file(tmp):
    data = tmp / "in.nc"
    data.write_bytes(b"input")
    return data, [("--data", data)], "is the same file as the input --data"


def _dest_symlink(tmp):
    data = tmp / "in.nc"
    data.write_bytes(b"input")
    (tmp / "link.nc").symlink_to(data)
    return tmp / "link.nc", [("--data", data)], "is the same file as the input --data"


def _dest_hard_link(tmp):
    data = tmp / "in.nc"
    data.write_bytes(b"input")
    os.link(data, tmp / "hard.nc")
    return tmp / "hard.nc", [("--data", data)], "is the same file as the input --data"


def _dest_device(tmp):
    return Path(os.devnull), [], "exists and is not a regular file"


def _dest_fifo(tmp):
    os.mkfifo(tmp / "pipe")
    return tmp / "pipe", [], "exists and is not a regular file"


def _dest_directory(tmp):
    return tmp, [], "is a directory"


def _dest_long_name(tmp):
    return tmp / ("a" * 250 + ".nc"), [], "leave room for the temporary file"


def _dest_under_a_file(tmp):
    (tmp / "file").write_bytes(b"x")
    return tmp / "file" / "out.nc", [], "is not a folder"


def _dest_trailing_slash(tmp):
    return str(tmp / "new") + "/", [], "names a folder, not a file"


def _dest_unwritable(tmp):
    return Path("/proc/gfdt-dash/out.nc"), [], "cannot write in the folder"


DESTINATIONS = [
    _dest_same_file,
    _dest_symlink,
    _dest_hard_link,
    _dest_device,
    _dest_fifo,
    _dest_directory,
    _dest_long_name,
    _dest_under_a_file,
    _dest_trailing_slash,
    _dest_unwritable,
]


@pytest.mark.parametrize("make", DESTINATIONS, ids=[f.__name__[6:] for f in DESTINATIONS])
def test_destinations_that_would_destroy_something_are_refused(tmp_path, make):
    path, inputs, message = make(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=f"^--out: .*{message}"):
        check_destination(path, inputs=inputs, name="--out")
    if not inputs:  # every writer checks the same way (inputs are known only to the caller)
        with pytest.raises(ValueError, match=f"^--out: .*{message}"):
            write_netcdf(GOOD_DS, path, name="--out")
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stale_temporaries_of_the_target_are_removed_and_nothing_else(tmp_path, monkeypatch):
    from gfdt_dash import data

    target = tmp_path / "run.nc"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    killed = data._temp_name(target, dead_pid)  # this machine, writer gone: stale at once
    live = data._temp_name(target)  # a running writer's (ours)
    other_target = data._temp_name(tmp_path / "other.nc", dead_pid)
    not_ours = tmp_path / ".run.nc.tmp"
    monkeypatch.setattr(data, "_HOST", "abcdef")  # as if written on another machine:
    remote = data._temp_name(target, dead_pid)  # left alone for six hours,
    ancient = data._temp_name(target, dead_pid)  # then removed
    monkeypatch.undo()
    for p in (killed, live, other_target, not_ours, remote, ancient):
        p.write_bytes(b"partial")
    old = time.time() - 7 * 3600
    for p in (other_target, not_ours, ancient):
        os.utime(p, (old, old))
    write_netcdf(GOOD_DS, target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["run.nc", live.name, other_target.name, not_ours.name, remote.name])
    assert remove_stale_temps(target) == []


# -- checkpoint metadata: validated by type before use ----------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes():
    from gfdt_dash.score import ScoreNetConfig, TrainConfig, train_score
    from gfdt_dash.score.checkpoint import checkpoint_bytes as to_bytes

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 8, 8)).astype(np.float32)
    model = train_score(
        x + np.roll(x, 1, axis=-1),
        net_config=ScoreNetConfig(widths=(4, 8), n_res_blocks=1, embed_dim=8, groups=1),
        train_config=TrainConfig(batch_size=4, n_steps=2, eval_every=2, val_batches=1),
        device="cpu",
    )
    return to_bytes(model)


def _with_metadata(raw, change):
    from safetensors.torch import load, save

    from gfdt_dash.score.checkpoint import _read_header_metadata

    meta = json.loads(_read_header_metadata(raw)["gfdt_dash"])
    new = change(meta)
    return save(load(raw), metadata={"gfdt_dash": new if isinstance(new, str) else json.dumps(new)})


def _drop(key):
    return lambda m: {k: v for k, v in m.items() if k != key}


def _set(key, value):
    return lambda m: {**m, key: value}


CHECKPOINT_METADATA = [
    ("metadata a list", lambda m: "[1]", "must be a JSON object, got list"),
    ("metadata null", lambda m: "null", "must be a JSON object, got NoneType"),
    ("metadata nested deeply", lambda m: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("no scale", _drop("scale"), "scale: missing"),
    ("no n", _drop("n"), "n: missing"),
    ("no net_config", _drop("net_config"), "net_config: missing"),
    ("no step", _drop("step"), "step: missing"),
    ("scale zero", _set("scale", 0), "scale: must be a positive finite number, got 0"),
    ("scale negative", _set("scale", -1.5), "scale: must be a positive finite number"),
    ("scale a string", _set("scale", "big"), "scale: must be a positive finite number"),
    ("n a string", _set("n", "8"), "n: must be an even integer"),
    ("step negative", _set("step", -3), "step: must be a non-negative integer"),
    ("sigma_max below sigma_min", _set("sigma_max", 1e-4), "sigma_max: .* must exceed"),
    ("system a list", _set("system", ["ou"]), "system: must be a system name"),
    ("net_config a list", _set("net_config", [1, 2]), "net_config: must be an object"),
    ("history a string", _set("history", "x"), "history: must be an object of lists"),
    ("system_config a list", _set("system_config", "[1]"), "system_config: must be a JSON object"),
    (
        "param groups malformed",
        _set("optimizer_param_groups", [{"params": "x"}]),
        "optimizer_param_groups: must be a list",
    ),
    (
        "network of gigabytes",
        lambda m: {
            **m,
            "net_config": {**m["net_config"], "widths": [1024, 1024], "n_res_blocks": 64},
        },
        r"describes [\d,]{13} numbers .* the file holds",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [c[1:] for c in CHECKPOINT_METADATA],
    ids=[c[0] for c in CHECKPOINT_METADATA],
)
def test_checkpoint_metadata_is_validated_before_use(checkpoint_bytes, change, message):
    from gfdt_dash.score.checkpoint import model_from_bytes

    bad = _with_metadata(checkpoint_bytes, change)
    with pytest.raises(ValueError, match=f"ckpt.*{message}"):
        model_from_bytes(bad, device="cpu", source="ckpt")


def test_the_untampered_checkpoint_loads(checkpoint_bytes):
    from gfdt_dash.score.checkpoint import model_from_bytes

    assert model_from_bytes(_with_metadata(checkpoint_bytes, lambda m: m), device="cpu").step == 2


# -- cost: the model counts what the protocols integrate --------------------------------------


def test_the_cost_model_counts_the_member_steps_actually_integrated(monkeypatch):
    """Count every member advanced by one step in simulate and in the perturbation experiment
    (whose paired runs step twice the members) and compare with the estimate."""
    from gfdt_dash.systems.fields import FieldSystem

    counted = [0]
    original = FieldSystem.step

    def counting(self, state, noise):
        counted[0] += state["field_hat"].shape[0]
        return original(self, state, noise)

    monkeypatch.setattr(FieldSystem, "step", counting)
    config = OU.replace(n_experiments=5, spinup=2.0)  # 2 members: 3 restarts, rounded up
    simulate(config, device="cpu")
    assert counted[0] == job_cost(config).member_steps
    counted[0] = 0
    perturbation_response(config, device="cpu")
    assert counted[0] == job_cost(config, simulate=False, perturbation=True).member_steps


# -- scans: everything refused before a cluster starts ----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_workers": 0}, "^n_workers: must be an integer >= 1"),
        ({"threads_per_worker": 0}, "^threads_per_worker: must be an integer >= 1"),
        ({"scheduler": "nonsense"}, "^scheduler: 'nonsense' is not HOST:PORT"),
        ({"scheduler": "tcp://127.0.0.1:1"}, "^scheduler: cannot reach 'tcp://127.0.0.1:1'"),
        ({"limits": CLI_LIMITS.replace(max_member_steps=10)}, "^members × steps: this scan"),
        ({"n_workers": 10**5}, "^n_workers: 100000 is more than this machine can run"),
        ({"threads_per_worker": 10**5}, "^threads_per_worker: 100000 is more"),
        ({"device": "tpu"}, "^device: unknown device 'tpu'"),
        ({"on_cell": "print"}, "^on_cell: must be a callable"),
    ],
    ids=[
        "workers 0",
        "threads 0",
        "bad address",
        "unreachable scheduler",
        "over the limit",
        "workers beyond the machine",
        "threads beyond the machine",
        "unknown device",
        "on_cell not callable",
    ],
)
def test_scan_arguments_are_refused_before_any_cluster_starts(tmp_path, kwargs, message):
    spec = ScanSpec.from_dict({**SCAN, "methods": ["gaussian"]})
    t0 = time.perf_counter()
    with pytest.raises((ValueError, TypeError), match=message):
        run_scan(spec, tmp_path / "scan", **kwargs)
    assert time.perf_counter() - t0 < 15  # no cluster was started, nothing waited long
    assert not (tmp_path / "scan").exists()


# -- the command line: one line naming the input, exit 2, inputs untouched --------------------


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory, checkpoint_bytes):
    """Small input files, good and bad, for the command-line tables."""
    d = tmp_path_factory.mktemp("cli")
    run = simulate(OU.replace(record=16.0, spinup=0.0, n_experiments=2), device="cpu")
    write_netcdf(run, d / "run.nc")
    for name, change in [
        ("cfg_list", lambda ds: ds.attrs.update(config="[1, 2]")),
        ("cfg_deep", lambda ds: ds.attrs.update(config="[" * 100_000 + "]" * 100_000)),
        ("cfg_grid", lambda ds: ds.attrs.update(config=OU.replace(n=16).to_json())),
        (
            "cfg_hours",
            lambda ds: ds.attrs.update(
                config=OU.replace(
                    members=4096, n_experiments=10**6, restart_every=100.0, spinup=0.0
                ).to_json()
            ),
        ),
    ]:
        ds = run.copy()
        change(ds)
        write_netcdf(ds, d / f"{name}.nc")
    write_netcdf(run.assign(field=run.field * 0 + 1.0), d / "const.nc")
    write_netcdf(run.assign(field=(run.field * 10).astype(np.int32)), d / "int.nc")
    write_netcdf(run.drop_vars("snapshot"), d / "nosnap.nc")
    write_netcdf(run.assign(snapshot=(run.snapshot * 10).astype(np.int16)), d / "intsnap.nc")
    (d / "garbage.nc").write_bytes(b"\x00not a netcdf file" * 20)
    (d / "ckpt.safetensors").write_bytes(checkpoint_bytes)
    (d / "scale0.safetensors").write_bytes(
        _with_metadata(checkpoint_bytes, _set("scale", 0))
    )
    (d / "link.nc").symlink_to(d / "run.nc")
    (d / "folder").mkdir()
    spec = (
        'system = "ou"\nmodel = "none"\nmethods = ["gaussian"]\n[params]\nU = [0.1]\n'
        "[fixed]\nn = 8\nmembers = 2\nframe_members = 2\nrecord = 16.0\n"
    )
    (d / "good.toml").write_text(spec)
    (d / "seedparam.toml").write_text(spec.replace("U = [0.1]", "seed = [1, 2]"))
    (d / "broken.toml").write_text("system = \n")
    (d / "plugin_exit.py").write_text("import sys\nsys.exit(3)\n")

    return d


# (id, argv with {d} for the folder of inputs, text the error must contain, in a subprocess too)
CLI_CASES = [
    ("response --out is --data", "response --data {d}/run.nc --out {d}/run.nc",
     "--out: '{d}/run.nc' is the same file as the input --data", False),
    ("response --out links to --data", "response --data {d}/run.nc --out {d}/link.nc",
     "same file as the input --data", False),
    ("train --out is the data", "train {d}/run.nc --out {d}/run.nc",
     "same file as the input data", False),
    ("--out a device", "response --data {d}/run.nc --out /dev/null",
     "--out: '/dev/null' exists and is not a regular file", False),
    ("--out a folder", "simulate --system ou --out {d}/folder",
     "--out: '{d}/folder' is a directory", False),
    ("--data missing", "response --data {d}/missing.nc --out {d}/r.nc",
     "--data: no such file '{d}/missing.nc'", False),
    ("--data a folder", "response --data {d}/folder --out {d}/r.nc",
     "--data: '{d}/folder' is a directory", False),
    ("--data garbage", "response --data {d}/garbage.nc --out {d}/r.nc",
     "--data: '{d}/garbage.nc' is not a readable netCDF file", False),
    ("config a list", "response --data {d}/cfg_list.nc --out {d}/r.nc",
     "cfg_list.nc: the 'config' attribute must be a JSON object, got list", False),
    ("config nested deeply", "response --data {d}/cfg_deep.nc --out {d}/r.nc",
     "cfg_deep.nc: the 'config' attribute is nested too deeply", True),
    ("config grid contradicts data", "response --data {d}/cfg_grid.nc --out {d}/r.nc",
     "cfg_grid.nc: the 'config' attribute says n=16", False),
    ("train config nested deeply", "train {d}/cfg_deep.nc --out {d}/m.safetensors",
     "cfg_deep.nc: the 'config' attribute is nested too deeply", False),
    ("field constant", "response --data {d}/const.nc --out {d}/r.nc --methods gaussian",
     "const.nc: field: every value equals 1", False),
    ("field integer", "response --data {d}/int.nc --out {d}/r.nc --methods gaussian",
     "int.nc: field: values are int32", False),
    ("perturbation protocol of hours",
     "response --data {d}/cfg_hours.nc --out {d}/r.nc --methods perturbation",
     "needs 1,599,340,544 member-steps (direct perturbation 1,599,340,544); allowed: at most "
     "200,000,000", True),
    ("simulation beyond the limit",
     "simulate --system ou --set members=4096 --set spinup=100000 --out {d}/big.nc",
     "--max-member-steps", False),
    ("training beyond the limit", "train {d}/run.nc --steps 50 --max-train-steps 10 --out {d}/m.st",
     "train_steps: this training needs 50 optimiser steps; allowed: at most 10", False),
    ("checkpoint scale 0",
     "response --data {d}/run.nc --model {d}/scale0.safetensors --methods learned_score "
     "--out {d}/r.nc", "--model: '{d}/scale0.safetensors' .* scale: must be a positive", False),
    ("checkpoint not safetensors",
     "response --data {d}/run.nc --model {d}/run.nc --methods learned_score --out {d}/r.nc",
     "--model: '{d}/run.nc' is not a readable safetensors checkpoint", False),
    ("resume with fewer steps",
     "train {d}/run.nc --resume {d}/ckpt.safetensors --steps 1 --out {d}/m.safetensors",
     "--steps: the checkpoint --resume {d}/ckpt.safetensors has already done 2 steps and "
     "training would stop at 1", True),
    ("resume with no more steps",
     "train {d}/run.nc --resume {d}/ckpt.safetensors --out {d}/m.safetensors",
     "has already done 2 steps and training would stop at 2", False),
    ("train data without snapshots", "train {d}/nosnap.nc --out {d}/m.safetensors",
     "data: {d}/nosnap.nc has no 'snapshot' variable", False),
    ("train on integer snapshots", "train {d}/intsnap.nc --out {d}/m.safetensors",
     "data: {d}/intsnap.nc: the 'snapshot' values are int16", False),
    ("seed -1", "simulate --system ou --seed -1 --out {d}/x.nc",
     "argument --seed: -1 outside the allowed range", True),
    ("seed 2**63", "simulate --system ou --seed 9223372036854775808 --out {d}/x.nc",
     "argument --seed: 9223372036854775808 outside", False),
    ("scan spec not TOML", "scan {d}/broken.toml --out {d}/scan",
     "spec: '{d}/broken.toml' is not valid TOML", False),
    ("scan seed as a parameter", "scan {d}/seedparam.toml --out {d}/scan",
     "spec '{d}/seedparam.toml': params.seed: seeds are not a parameter", True),
    ("scan workers 0", "scan {d}/good.toml --out {d}/scan --workers 0",
     "argument --workers: must be >= 1", False),
    ("scan scheduler unreachable",
     "scan {d}/good.toml --out {d}/scan --scheduler tcp://127.0.0.1:1",
     "scheduler: cannot reach 'tcp://127.0.0.1:1'", True),
    ("scan --out a file", "scan {d}/good.toml --out {d}/run.nc",
     "--out: '{d}/run.nc' exists and is not a folder", False),
    ("reproduce unknown system", "reproduce --systems lorenz --out {d}/rep",
     "--systems: system: unknown system 'lorenz'", False),
    ("reproduce cpu protocol of the classroom preset",
     "reproduce --preset classroom --protocol cpu --out {d}/rep",
     "--protocol: 'cpu' changes the paper preset only", False),
    ("reproduce unknown score net", "reproduce --preset paper --score-net huge --out {d}/rep",
     "argument --score-net: invalid choice: 'huge'", False),
    ("--set system", "simulate --system ou --set system=allen_cahn --out {d}/x.nc",
     "system: not a parameter of ou", False),
    ("--set members=true", "simulate --system ou --set members=true --out {d}/x.nc",
     "members: must be an integer, got True", True),
    ("--set dealias=1", "simulate --system navier_stokes --set dealias=1 --out {d}/x.nc",
     "dealias: 1 not allowed; allowed: False, True", False),
    ("--set dt subnormal", "simulate --system ou --set dt=5e-324 --out {d}/x.nc",
     "dt: 4.94066e-324 makes", False),
    ("--model empty", "response --data {d}/run.nc --model= --out {d}/r.nc",
     "argument --model: an empty path", False),
    ("--train empty", "train {d}/run.nc --train= --out {d}/m.safetensors",
     "--train: preset: unknown preset ''", False),
    ("--systems empty", "reproduce --systems= --use-shipped --out {d}/rep",
     "--systems: an empty name in ''", False),
    ("--systems repeated", "reproduce --systems ou,ou --use-shipped --out {d}/rep",
     "--systems: ou given more than once", False),
    ("reproduce --out empty", "reproduce --systems ou --use-shipped --out=",
     "argument --out: an empty path", False),
    ("shipped model on another grid", "reproduce --systems ou --use-shipped --set n=8 --out "
     "{d}/rep", "--use-shipped: .* was trained on a 16×16 grid, not 8×8 (given by --set)", True),
    ("plugin that exits", "simulate --system ou --plugin {d}/plugin_exit.py --out {d}/x.nc",
     "--plugin '{d}/plugin_exit.py': failed to load (SystemExit: 3)", True),
    ("scan workers beyond the machine", "scan {d}/good.toml --out {d}/scan --workers 100000",
     "--workers: 100000 is more than this machine can run", False),
]


def _argv(template, d):
    return [a.replace("{d}", str(d)) for a in template.split()]


def _pattern(fragment, d):
    """The fragment as literal text, with {d} the folder and " .* " standing for anything."""
    return re.escape(fragment.replace("{d}", str(d))).replace(re.escape(" .* "), ".*")


def _digests(d):
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize(
    ("argv", "fragment"), [c[1:3] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_bad_input_ends_in_one_line_naming_it(cli_dir, capsys, argv, fragment):
    before = _digests(cli_dir)
    try:
        rc = main([*_argv(argv, cli_dir), "--device", "cpu", "--quiet"])
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert re.search(_pattern(fragment, cli_dir), last), err
    if "usage:" not in err:
        assert err.strip().count("\n") == 0, err
    assert _digests(cli_dir) == before  # no input was touched


def test_the_real_cli_prints_no_traceback(cli_dir):
    """A subset of the table through ``python -m gfdt_dash`` in subprocesses (run in parallel)."""
    cases = [c for c in CLI_CASES if c[3]]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gfdt_dash", *_argv(argv, cli_dir), "--device", "cpu"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _, argv, _, _ in cases
    ]
    for (name, _, fragment, _), proc in zip(cases, procs, strict=True):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, err)
        assert "Traceback" not in err, (name, err)
        last = err.strip().splitlines()[-1]
        assert last.startswith("gfdt-dash "), (name, err)
        assert re.search(_pattern(fragment, cli_dir), last), (name, err)


def test_debug_shows_the_traceback_and_unexpected_errors_stay_one_line(
    cli_dir, capsys, monkeypatch
):
    import gfdt_dash.cli as cli

    def boom(args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "_cmd_simulate", boom)
    argv = ["simulate", "--system", "ou", "--out", str(cli_dir / "x.nc")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "gfdt-dash simulate: error: RuntimeError: disk on fire "
        "(rerun with --debug for the traceback)\n"
    )
    assert cli.main([*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "disk on fire" in err


def test_ctrl_c_ends_with_a_short_line_and_status_130(cli_dir, capsys, monkeypatch):
    import gfdt_dash.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_response", interrupted)
    argv = ["response", "--data", str(cli_dir / "run.nc"), "--out", str(cli_dir / "r.nc")]
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == "gfdt-dash response: interrupted\n"


def test_a_damaged_pipeline_cache_is_named_and_its_timings_recorded_afresh(tmp_path):
    """Cache products are written atomically, so a damaged one was changed from outside: it is
    refused naming the cache and the file (never a raw parser error); unreadable stage times
    are simply recorded again."""
    config = OU.replace(record=16.0, spinup=0.0)
    kwargs = dict(model=None, methods=["gaussian", "analytic"], cache_dir=tmp_path, device="cpu")
    run_pipeline(config, **kwargs)
    folder = tmp_path / "ou"
    (folder / "timings.json").write_text("{oops")
    again = run_pipeline(config, **kwargs)
    assert set(again.timings) >= {"simulate", "responses"}
    (simulation,) = folder.glob("simulation-*.nc")
    simulation.write_bytes(simulation.read_bytes()[:100])
    with pytest.raises(ValueError, match="^cache_dir: .*simulation-.* cannot be read back"):
        run_pipeline(config, **kwargs)


PLUGIN = """
from dataclasses import dataclass
from typing import ClassVar

from gfdt_dash.systems import OUConfig, SystemSpec, register_system, system_spec


@dataclass(frozen=True)
class OutTestConfig(OUConfig):
    system: ClassVar[str] = "out_test"


make = system_spec("ou").make_system
register_system(SystemSpec(name="out_test", config_class=OutTestConfig, make_system=make))
"""


def test_out_never_replaces_a_plugin_file(tmp_path, capsys, clean_registry):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    argv = ["simulate", "--system", "out_test", "--plugin", str(plugin), "--out", str(plugin)]
    assert main([*argv, "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--out: '{plugin}' is the same file as the input --plugin" in err, err
    assert plugin.read_text() == PLUGIN
