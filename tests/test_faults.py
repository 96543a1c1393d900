"""Fault injection: a scan killed mid-run loses no finished cell and resumes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from gfdt_dash.data import open_dataset

SPEC = """
system = "ou"
preset = "classroom"
model = "none"
methods = ["gaussian", "analytic"]
seeds = [0, 1, 2]
[params]
U = [0.05, 0.1]
[fixed]
n = 8
members = 4
frame_members = 4
record = 40.0
max_lag = 8.0
restart_every = 8.0
"""


@pytest.mark.slow
def test_killed_scan_keeps_finished_cells_and_resumes(tmp_path):
    spec = tmp_path / "scan.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "gfdt_dash",
        "scan",
        str(spec),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    cells = out / "cells"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(cells.glob("*.nc"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Dask worker, mid-run
    proc.wait()
    finished = sorted(cells.glob("*.nc"))
    assert 2 <= len(finished) < 6, "kill the scan while cells are still running"
    for path in finished:  # every file that exists is complete
        assert open_dataset(path)["error"].notnull().any()
    stamps = {p.name: p.stat().st_mtime_ns for p in finished}
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already done" in rerun.stderr
    assert {p.name: p.stat().st_mtime_ns for p in finished} == stamps
    assert open_dataset(out / "scan.nc").sizes["cell"] == 6
    assert not list(cells.glob(".*.tmp"))


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint_to_the_same_weights(tmp_path):
    import torch

    from gfdt_dash.data import write_netcdf
    from gfdt_dash.score import load_checkpoint
    from gfdt_dash.systems import OUConfig, simulate

    data = tmp_path / "sim.nc"
    write_netcdf(simulate(OUConfig.preset("classroom", record=80.0), seed=1, device="cpu"), data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(out, *extra):
        return [
            sys.executable,
            "-m",
            "gfdt_dash",
            "train",
            str(data),
            "--out",
            str(out),
            "--steps",
            "240",
            "--no-diagnostics",
            "--device",
            "cpu",
            "--quiet",
            *extra,
        ]

    killed = tmp_path / "killed.safetensors"
    proc = subprocess.Popen(
        train(killed, "--checkpoint-every", "40"),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    step = 0
    while time.monotonic() < deadline and step < 80:
        time.sleep(0.05)
        if killed.exists():
            step = load_checkpoint(killed, device="cpu").step
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 80 <= step < 240, "kill the training while it runs"
    assert load_checkpoint(killed, device="cpu").step % 40 == 0  # a whole checkpoint, no torn file
    resumed = subprocess.run(
        train(killed, "--resume", str(killed)), env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole.safetensors"
    done = subprocess.run(train(whole), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    a, b = load_checkpoint(killed, device="cpu"), load_checkpoint(whole, device="cpu")
    assert a.step == b.step == 240
    for (name, x), (_, y) in zip(
        a.ema_net.state_dict().items(), b.ema_net.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
