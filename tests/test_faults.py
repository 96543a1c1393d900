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
