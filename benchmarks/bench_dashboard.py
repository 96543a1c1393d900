"""One user, shipped models: *Run all* until the run's last figure is drawn, per system.

    python benchmarks/bench_dashboard.py [--repeats 3] [--systems ou,allen_cahn]

Starts ``panel serve app.py --warm`` on 127.0.0.1 (a fresh temporary store; see
``load_test.LoopbackServer``), opens one headless chromium page (one session) and, for each system
in turn (classroom preset, the shipped model), clicks *Run all* and times until the job has ended
(the button is enabled again), until its responses have reached the page (the error table is
there) and until every response figure is drawn with them (all downstream panels hold data, every
map shows a lag, and every plot view of the page has finished rendering); the last two are
clocked inside the page (``performance.now``), so *data → figures* is the time from a result's
arrival to its figures. Every repeat is a new page (a new session) with a new seed, so nothing
comes from the result cache; one page at a time. Prints a markdown table (median and maximum over
the repeats). A benchmark, not a test: the numbers depend on the machine and on what else runs on
it.
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

# In the page, every 20 ms: when the responses have arrived (the error table's HTML is in the
# document) and when every response figure is drawn with them.
WATCH_JS = """() => {
  const w = window.__gfdt = {data: null, drawn: null};
  const title = v => (v.model.title && v.model.title.text) || "";
  const filled = v => v.model.renderers.some(
    r => r.data_source && r.data_source.get_length && r.data_source.get_length() > 0);
  const timer = setInterval(() => {
    if (w.data === null) {
      const models = Bokeh.documents.flatMap(d => Array.from(d.all_models));
      if (models.some(m => typeof m.text === "string" && m.text.includes("gfdt-errors"))) {
        w.data = performance.now();
      }
    }
    if (w.data === null) return;
    const plots = [...Bokeh.index.query(v => v.model.type === "Plot" || v.model.type === "Figure")];
    const curves = plots.filter(v => /kicked pixel|downstream/.test(title(v)));
    const maps = plots.filter(v => title(v).includes(", t = "));
    const waiting = plots.filter(v => title(v).includes("waiting for results"));
    if (curves.length >= 4 && curves.every(filled) && maps.length > 0 && waiting.length === 0
        && plots.every(v => v.has_finished())) {
      w.drawn = performance.now();
      clearInterval(timer);
    }
  }, 20);
}"""


def _set_seed(page, seed: int) -> None:
    box = page.locator(".bk-input-group", has_text="Seed").locator("input")
    box = box.filter(visible=True).first
    box.fill(str(seed))
    box.press("Enter")
    time.sleep(0.5)


def run_once(page, seed: int) -> tuple[float, float, float]:
    """(seconds until Run all ended, until its last figure was drawn, from the responses'
    arrival in the page until their figures were drawn) in the shown tab."""
    from playwright.sync_api import expect

    _set_seed(page, seed)
    run = page.get_by_role("button", name="Run all").first
    page.evaluate(WATCH_JS)
    start = time.perf_counter()
    clicked = page.evaluate("performance.now()")
    run.click()
    expect(run).to_be_disabled(timeout=30_000)
    expect(run).to_be_enabled(timeout=600_000)
    ended = time.perf_counter() - start
    page.wait_for_function("window.__gfdt.drawn !== null", timeout=120_000)
    marks = page.evaluate("window.__gfdt")
    return ended, (marks["drawn"] - clicked) / 1000, (marks["drawn"] - marks["data"]) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per system (new seeds)")
    parser.add_argument("--systems", default=",".join(TABS), help="comma-separated systems")
    args = parser.parse_args(argv)
    systems = args.systems.split(",")
    for system in systems:
        if system not in TABS:
            parser.error(f"--systems: unknown {system!r}; allowed: {', '.join(TABS)}")
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float, float]]] = {s: [] for s in systems}
    with tempfile.TemporaryDirectory(prefix="gfdt-bench-") as tmp:
        server = LoopbackServer(Path(tmp) / "store")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for i in range(args.repeats):
                    for system in systems:
                        title = TABS[system]
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
    print(
        "\n| system (classroom, shipped model) | Run all ended | last figure drawn "
        "| data → figures | target |"
    )
    print("|---|---|---|---|---|")
    for system, runs in results.items():
        ended = [r[0] for r in runs]
        drawn = [r[1] for r in runs]
        late = [r[2] for r in runs]
        print(
            f"| {TABS[system]} | {statistics.median(ended):.1f} s (max {max(ended):.1f}) "
            f"| {statistics.median(drawn):.1f} s (max {max(drawn):.1f}) "
            f"| {statistics.median(late):.2f} s (max {max(late):.2f}) "
            f"| ≤ {TARGETS_S[system]} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
