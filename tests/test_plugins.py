"""Plug-in systems: a system written outside the package (examples/advection_diffusion.py) works
through the command line, the response estimators, scans and the dashboard; broken plug-ins are
refused with one line naming the file."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gfdt_dash.cli import _build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "advection_diffusion.py"
NAME = "advection_diffusion"


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gfdt_dash", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def by_method(ds):
    """``{method: (response, stderr)}`` over lags ≥ 1 and the cells dy, dx = 0…3 around the kick
    (the flow blows at 30°, so the response travels along both axes)."""
    dim = next(d for d in ds["response"].dims if d not in ("lag", "dy", "dx"))
    cells = ds.sel(dy=[0, 1, 2, 3], dx=[0, 1, 2, 3]).isel(lag=slice(1, None))
    return {
        str(m): (cells["response"].values[i], cells["response_stderr"].values[i])
        for i, m in enumerate(ds[dim].values)
    }


def test_plugin_system_simulates_and_its_exact_score_gfdt_matches_its_analytic_response(
    tmp_path, clean_registry
):
    # RK4 data: fourth order for the dynamics, so the normalised responses estimated from the
    # data follow the SDE's closed form (the LM scheme's dynamics are first order).
    sim = run_cli(
        "simulate",
        "--plugin",
        str(PLUGIN),
        "--system",
        NAME,
        "--set",
        "record=200",
        "--set",
        "integrator=rk4",
        "--quiet",
        "--out",
        "sim.nc",
        cwd=tmp_path,
    )
    assert sim.returncode == 0, sim.stderr
    data = xr.open_dataset(tmp_path / "sim.nc")
    assert data.attrs["system"] == NAME and data["field"].shape == (32, 200, 16, 16)
    assert data["field"].attrs["long_name"] == "tracer θ"
    resp = run_cli(
        "response",
        "--plugin",
        str(PLUGIN),
        "--data",
        "sim.nc",
        "--device",
        "cpu",
        "--methods",
        "exact_score,analytic,gaussian",
        "--quiet",
        "--out",
        "r.nc",
        cwd=tmp_path,
    )
    assert resp.returncode == 0, resp.stderr
    assert "exact_score" in resp.stdout and "analytic" in resp.stdout  # the error table
    ds = xr.open_dataset(tmp_path / "r.nc")
    got = by_method(ds)
    truth = got["analytic"][0]
    assert not got["analytic"][1].any()  # the closed form has no band
    for method in ("exact_score", "gaussian"):
        r, err = got[method]
        z = (r - truth) / err
        # measured (seed 0): max |z| 3.6, rms 0.96 over 320 cells
        assert np.abs(z).max() < 4.5, method
        assert np.sqrt((z**2).mean()) < 2, method

    # The check can fail: the closed form of a flow at −30° instead of +30° is far outside the
    # bands of the same estimates.
    from gfdt_dash.response import analytic_response
    from gfdt_dash.systems import config_from_json, load_plugin

    load_plugin(PLUGIN)
    config = config_from_json(data.attrs["config"])
    wrong = analytic_response(config.replace(angle=-30.0), ds["lag"].values)
    wrong = wrong.sel(dy=[0, 1, 2, 3], dx=[0, 1, 2, 3]).isel(lag=slice(1, None))
    r, err = got["exact_score"]
    z_wrong = (r - wrong["response"].values[0]) / err
    assert np.sqrt((z_wrong**2).mean()) > 10


def test_plugin_exact_score_is_minus_the_inverse_covariance(clean_registry):
    """Oracle: the stationary covariance is circulant with kernel c = F⁻¹[N²Σ̂/(2r)] (built here
    from the equation, Σ̂ = ε²/(1 + ℓ²|k|²)², r = κ|k|² + γ), so s(c) = −C⁻¹Ce₀ = −δ₀; and the
    LM scheme's stationary law (its start draw) has that covariance."""
    import torch

    from gfdt_dash.systems import Grid, get_config, load_plugin, make_system

    load_plugin(PLUGIN)
    config = get_config(NAME, n=8, ell=0.7, angle=50.0)
    g = Grid(8, torch.device("cpu"), torch.float64)
    sigma = config.eps2 / (1 + config.ell**2 * g.k2) ** 2
    variance = g.n**2 * sigma / (2 * (config.kappa * g.k2 + config.gamma))
    kernel = g.to_physical(variance.to(g.cdtype))[None]
    system = make_system(config, "cpu", "float64")
    delta = torch.zeros(1, 8, 8, dtype=torch.float64)
    delta[0, 0, 0] = 1.0
    torch.testing.assert_close(system.score(kernel), -delta, atol=1e-10, rtol=0)
    torch.testing.assert_close(system.stepper.ou_stationary_variance(), variance)
    theta = system.observe(system.initial_state(20000, system.generator(0)))
    sample = (theta * theta[:, :1, :1]).mean(0)  # c(x) = ⟨θ(x) θ(0)⟩
    assert float((sample - kernel[0]).abs().max() / kernel.max()) < 0.05


def test_plugin_option_on_every_subcommand_that_takes_a_system_or_its_data(clean_registry):
    from gfdt_dash.systems import load_plugin

    load_plugin(PLUGIN)  # what main() does before building the parser
    parser = _build_parser()
    for argv in (
        ["simulate", "--system", NAME, "--out", "x.nc"],
        ["train", "x.nc", "--out", "m.safetensors"],
        ["response", "--data", "x.nc", "--out", "r.nc"],
        ["reproduce", "--systems", NAME],
        ["scan", "spec.toml", "--out", "scan"],
    ):
        args = parser.parse_args([*argv, "--plugin", str(PLUGIN), "--plugin", str(PLUGIN)])
        assert args.plugin == [str(PLUGIN)] * 2


def test_reproduce_with_a_plugin_system_refuses_shipped_models_it_does_not_have(
    tmp_path, capsys, clean_registry
):
    rc = main(
        [
            "reproduce",
            "--plugin",
            str(PLUGIN),
            "--systems",
            NAME,
            "--use-shipped",
            "--out",
            str(tmp_path / "rep"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == (
        f"gfdt-dash reproduce: error: --use-shipped: no shipped model for {NAME}; "
        "leave it out of --systems or train (without --use-shipped)"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        (
            "raise RuntimeError('boom\\n  on two lines')\n",
            r"failed to load \(RuntimeError: boom on two lines\)",
        ),
        ("import numpy\n", "registered no system"),
        (
            "from gfdt_dash.systems import register_system, system_spec\n"
            "register_system(system_spec('ou'))\n",
            r"failed to load \(ValueError: name: a system named 'ou' is already registered",
        ),
    ],
    ids=["missing", "raises", "registers nothing", "duplicate"],
)
def test_a_broken_plugin_is_one_line_naming_the_path(
    tmp_path, capsys, clean_registry, content, reason
):
    path = tmp_path / "bad_plugin.py"
    if content is not None:
        path.write_text(content)
    rc = main(
        ["simulate", "--plugin", str(path), "--system", "ou", "--out", str(tmp_path / "x.nc")]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    import re

    assert re.match(
        rf"gfdt-dash simulate: error: --plugin '{re.escape(str(path))}': {reason}", err
    ), err
    assert not (tmp_path / "x.nc").exists()


def test_a_broken_plugin_through_a_real_subprocess(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import not_a_module_anywhere\n")
    proc = run_cli(
        "simulate", "--plugin", str(path), "--system", "ou", "--out", "x.nc", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr
    assert "ModuleNotFoundError" in proc.stderr and "Traceback" not in proc.stderr


def test_dashboard_has_a_tab_for_each_plugin_of_the_environment(monkeypatch, clean_registry):
    from gfdt_dash.ui.app import create_app
    from gfdt_dash.ui.jobs import RESULTS

    monkeypatch.setenv("GFDT_DASH_PLUGINS", f"{PLUGIN}:{PLUGIN}")  # loaded once
    page = create_app(sync=True)
    titles = [t.name for t in page.tabs.objects]
    assert titles[:4] == [
        "Ornstein–Uhlenbeck",
        "Allen–Cahn",
        "Navier–Stokes",
        "Advection–diffusion (oblique flow)",
    ]
    page.tabs.active = 3  # builds the tab
    tab = page.views[NAME]
    assert tab.methods == ("analytic", "learned_score", "exact_score", "gaussian", "perturbation")
    tab.mirror.param.update(spinup=0.0, record=40.0)
    RESULTS.clear()
    try:
        tab.simulate = True
        assert tab.runner.stage == "done", tab.status
        tab.compute = True
        assert tab.runner.stage == "done", tab.status
        key = "estimator" if "estimator" in tab.error_table else "method"  # either layout
        table = tab.error_table.set_index(key)
        assert table.loc["analytic", "error"] == 0.0
        assert table.loc["exact_score", "error"] < 0.5  # loose: 40 frames
    finally:
        RESULTS.clear()
        page.close_session()


def test_a_broken_plugin_in_the_environment_names_the_variable_and_path(
    monkeypatch, tmp_path, clean_registry
):
    from gfdt_dash.systems import plugins_from_env

    missing = tmp_path / "nowhere.py"
    with pytest.raises(ValueError, match=rf"^GFDT_DASH_PLUGINS: plugin '{missing}': no such file"):
        plugins_from_env({"GFDT_DASH_PLUGINS": f"{PLUGIN}:{missing}"})


def test_a_scan_of_a_plugin_system_runs_on_dask_workers(tmp_path, clean_registry):
    """The workers are fresh processes: they load the plug-in from the paths passed along."""
    from gfdt_dash.scan import ScanSpec, run_scan
    from gfdt_dash.systems import load_plugin

    load_plugin(PLUGIN)
    spec = ScanSpec.from_dict(
        {
            "system": NAME,
            "model": "none",
            "methods": ["exact_score", "analytic"],
            "params": {"angle": [0.0, 90.0]},
            "fixed": {
                "n": 8,
                "members": 8,
                "frame_members": 8,
                "spinup": 0.0,
                "record": 40.0,
                "snapshot_every": 4.0,
                "max_lag": 4.0,
                "restart_every": 4.0,
            },
        }
    )
    ds = run_scan(spec, tmp_path / "scan", n_workers=1)
    assert ds.sizes["cell"] == 2
    errors = ds["error"].values
    assert np.isfinite(errors).all() and errors.max() < 1.0


def test_dashboard_worker_processes_load_the_plugins_of_the_environment(
    monkeypatch, clean_registry
):
    """A plug-in config crosses to a fresh worker process pickled by class name: the worker
    loads GFDT_DASH_PLUGINS (inherited) before it unpickles the job."""
    from gfdt_dash.systems import get_config, plugins_from_env, simulate
    from gfdt_dash.ui import worker

    worker.shutdown()  # workers of earlier tests started before the plug-in was configured
    monkeypatch.setenv("GFDT_DASH_PLUGINS", str(PLUGIN))
    plugins_from_env()
    config = get_config(
        NAME,
        n=8,
        members=4,
        frame_members=4,
        spinup=0.0,
        record=8.0,
        snapshot_every=4.0,
        max_lag=4.0,
        restart_every=4.0,
    )
    try:
        ds = worker.call(simulate, config, seed=2, device="cpu", processes=True)
    finally:
        worker.shutdown()
    ref = simulate(config, seed=2, device="cpu")
    np.testing.assert_array_equal(ds["field"].values, ref["field"].values)


def test_a_scan_spec_may_name_its_plugin_files(tmp_path, clean_registry):
    import shutil

    from gfdt_dash.scan import ScanSpec

    shutil.copy(PLUGIN, tmp_path / "ad.py")
    toml = tmp_path / "scan.toml"
    toml.write_text(
        f'system = "{NAME}"\nplugins = ["ad.py"]\nmodel = "none"\n[params]\nangle = [0.0, 45.0]\n'
    )
    spec = ScanSpec.from_toml(toml)  # the path is relative to the spec's folder
    assert spec.plugins == (str(tmp_path / "ad.py"),)
    assert spec.config(spec.cells()[1]).angle == 45.0
    toml.write_text(f'system = "{NAME}"\nplugins = ["gone.py"]\n[params]\nangle = [0.0]\n')
    with pytest.raises(ValueError, match=r"^spec '.*scan.toml': plugins: plugin '.*gone.py': no "):
        ScanSpec.from_toml(toml)
    with pytest.raises(ValueError, match="^plugins: must be a list of file paths"):
        ScanSpec.from_dict({"system": "ou", "plugins": "ad.py", "params": {"U": [0.1]}})
