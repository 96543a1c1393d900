"""CI-sized classroom load test: 4 concurrent browser sessions run the OU pipeline (marker ui).

The full one is ``python benchmarks/load_test.py --sessions 20`` (see that script).
"""

import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from load_test import markdown, run_load_test

pytestmark = pytest.mark.ui


def test_four_concurrent_sessions_complete_the_classroom_pipeline():
    t0 = time.perf_counter()
    summary = run_load_test(sessions=4, timeout_s=80.0, round_trips=1)
    print(markdown(summary))
    errors = [e for r in summary["records"] for e in r["errors"]]
    assert summary["completed"] == 4, errors
    assert errors == []
    assert summary["peak_rss_mib"] > 0
    # every session got a page and widget answers: nobody was starved while others computed
    assert summary["round_trip_s"][100] < 30
    assert time.perf_counter() - t0 < 90
