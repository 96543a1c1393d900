"""CI-sized classroom load test: 4 concurrent browser sessions run the OU pipeline (marker ui).

The full one is ``python benchmarks/load_test.py --sessions 20`` (see that script).
"""

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from load_test import find_chromium, markdown, run_load_test

if find_chromium() is None:
    pytest.skip("no chromium browser found (shutil.which('chromium'))", allow_module_level=True)

pytestmark = pytest.mark.ui


def test_four_concurrent_sessions_complete_the_classroom_pipeline():
    # Generous per-session limit: this checks that everyone completes without errors on a loaded
    # 2-core machine, not how fast (latencies are reported, never asserted).
    summary = run_load_test(sessions=4, timeout_s=300.0, round_trips=1)
    print(markdown(summary))
    errors = [e for r in summary["records"] for e in r["errors"]]
    assert summary["completed"] == 4, errors
    assert errors == []
    assert summary["peak_rss_mib"] > 0
    for record in summary["records"]:  # every session got widget answers in every phase
        assert {t["phase"] for t in record["round_trips"]} == {"loading", "jobs", "after"}, record
        for trip in record["round_trips"]:  # the in-page clocks: the frame follows the DOM update
            assert 0 < trip["dom_s"] <= trip["frame_s"], trip
    assert summary["cpu_s"]["server"] > 0 and summary["cpu_s"]["job workers"] > 0  # jobs ran there
    assert math.isfinite(summary["event_loop_s"][50])  # the event-loop probe got answers
