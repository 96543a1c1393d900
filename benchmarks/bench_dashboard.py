"""One user, shipped models: *Run all* until the run's last figure is drawn, per system.

    python benchmarks/bench_dashboard.py [--repeats 3]

Starts ``panel serve app.py --warm`` on 127.0.0.1 (a fresh temporary store; see
``load_test.LoopbackServer``), opens one headless chromium page (one session) and, for each system
in turn (classroom preset, the shipped model), clicks *Run all* and times until the job has ended
(the button is enabled again) and until its last figure has been drawn (the response maps'
placeholder is gone). Every repeat is a new page (a new session, so its figures are drawn anew)
with a new seed, so nothing comes from the result cache; one page at a time. Prints
a markdown table (median and maximum over the repeats). A benchmark, not a test: the numbers
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import ARGS, CHROMIUM, LoopbackServer

TABS = {"ou": "Ornstein–Uhlenbeck", "allen_cahn": "Allen–Cahn", "navier_stokes": "Navier–Stokes"}
TARGETS_S = {"ou": 10, "allen_cahn": 20, "navier_stokes": 30}
MAPS_PLACEHOLDER = "The maps appear with the responses."


def _set_seed(page, seed: int) -> None:
    box = page.locator(".bk-input-group", has_text="Seed").locator("input")
    box = box.filter(visible=True).first
    box.fill(str(seed))
    box.press("Enter")
    time.sleep(0.5)


def run_once(page, seed: int) -> tuple[float, float]:
    """(seconds until Run all ended, seconds until its last figure was drawn) in the shown tab."""
    from playwright.sync_api import expect

    _set_seed(page, seed)
    run = page.get_by_role("button", name="Run all").first
    placeholders = page.get_by_text(MAPS_PLACEHOLDER).count()
    start = time.perf_counter()
    run.click()
    expect(run).to_be_disabled(timeout=30_000)
    expect(run).to_be_enabled(timeout=600_000)
    ended = time.perf_counter() - start
    expect(page.get_by_text(MAPS_PLACEHOLDER)).to_have_count(placeholders - 1, timeout=120_000)
    return ended, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per system (new seeds)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float]]] = {s: [] for s in TABS}
    with tempfile.TemporaryDirectory(prefix="gfdt-bench-") as tmp:
        server = LoopbackServer(Path(tmp) / "store")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for i in range(args.repeats):
                    for system, title in TABS.items():
                        context = browser.new_context(viewport={"width": 1500, "height": 1200})
                        page = context.new_page()
                        page.goto(server.url)
                        page.get_by_role("button", name="Run all").first.wait_for(timeout=120_000)
                        if system != "ou":
                            page.locator(".bk-tab", has_text=title).click()
                            run = page.get_by_role("button", name="Run all").first
                            run.wait_for(timeout=60_000)
                        results[system].append(run_once(page, seed=100 + i))
                        print(system, results[system][-1], file=sys.stderr, flush=True)  # progress
                        context.close()
                browser.close()
        finally:
            server.stop()
    print("\n| system (classroom, shipped model) | Run all ended | last figure drawn | target |")
    print("|---|---|---|---|")
    for system, runs in results.items():
        ended = [r[0] for r in runs]
        drawn = [r[1] for r in runs]
        print(
            f"| {TABS[system]} | {statistics.median(ended):.1f} s (max {max(ended):.1f}) "
            f"| {statistics.median(drawn):.1f} s (max {max(drawn):.1f}) "
            f"| ≤ {TARGETS_S[system]} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
