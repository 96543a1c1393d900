"""One user, shipped models: *Run all* until the run's last figure is drawn, per system.

    python benchmarks/bench_dashboard.py [--repeats 3] [--systems ou,allen_cahn]

Starts ``panel serve app.py --warm`` on 127.0.0.1 (a fresh temporary store; see
``load_test.LoopbackServer``), opens one headless chromium page (one session) and, for each system
in turn (classroom preset, the shipped model), waits until the page has settled (``--settle``: no
change from the server for 3 s, as when a user reads the page before clicking), clicks *Run
all* and times until the job has ended (the button is enabled again), until its responses have
reached the page (the server's message carrying the error table has arrived, stamped before the
page handles it) and until every response figure of the tab is drawn with them (all downstream
panels hold data, every map shows a lag, and every shown plot view has finished rendering), and
each figure on its own; these are clocked inside the page (``performance.now``), so *data →
figures* is the time from a result's arrival to its figures.
Every repeat is a new page (a new session) with a new seed, so nothing comes from the result
cache; one page at a time. Prints markdown tables (median and maximum over the repeats). A
benchmark, not a test: the numbers depend on the machine and on what else runs on it.
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

# Before the page's own scripts: every message the server sends is stamped (performance.now) as
# it reaches the page, before Bokeh handles it; ``window.__gfdt_table`` is the time of the first
# one since ``window.__gfdt_table = null`` that carries the error table's HTML. (Polling the
# document for the table instead finds it only once the page has finished handling that
# message: late by all the rendering done meanwhile, all of it when the figures come in the same
# message.)
INIT_JS = """(() => {
  window.__gfdt_table = null;
  const Base = window.WebSocket;
  window.WebSocket = class extends Base {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (window.__gfdt_table === null && typeof e.data === "string"
            && e.data.includes("gfdt-errors")) {
          window.__gfdt_table = performance.now();
        }
      });
    }
  };
})();"""

# In the page, every 20 ms: when the responses arrived (the message that brought the error
# table's HTML, see INIT_JS), when each response figure of the shown tab is drawn with them (by
# its title: the kicked pixel, 1–3 cells downstream, and all the maps) and when every one is.
# Figures of hidden tabs do not count.
WATCH_JS = """() => {
  const w = window.__gfdt = {data: null, drawn: null, each: {}};
  window.__gfdt_table = null;
  const title = v => (v.model.title && v.model.title.text) || "";
  const shown = v => v.el && v.el.checkVisibility({visibilityProperty: true});
  const filled = v => v.model.renderers.some(
    r => r.data_source && r.data_source.get_length && r.data_source.get_length() > 0);
  const timer = setInterval(() => {
    if (w.data === null) {
      const models = Bokeh.documents.flatMap(d => Array.from(d.all_models));
      if (models.some(m => typeof m.text === "string" && m.text.includes("gfdt-errors"))) {
        w.data = window.__gfdt_table !== null ? window.__gfdt_table : performance.now();
      }
    }
    if (w.data === null) return;
    const plots = [...Bokeh.index.query(v => v.model.type === "Plot" || v.model.type === "Figure")]
      .filter(shown);
    const curves = plots.filter(v => /kicked pixel|downstream/.test(title(v)));
    const maps = plots.filter(v => title(v).includes(", t = "));
    const waiting = plots.filter(v => title(v).includes("waiting for results"));
    const now = performance.now();
    for (const v of curves) {
      const key = title(v).split(" — ")[0];
      if (!(key in w.each) && filled(v) && v.has_finished()) w.each[key] = now;
    }
    if (!("maps" in w.each) && maps.length > 0 && waiting.length === 0
        && maps.every(v => v.has_finished())) {
      w.each.maps = now;
    }
    if (curves.length >= 4 && curves.every(filled) && maps.length > 0 && waiting.length === 0
        && plots.every(v => v.has_finished())) {
      w.drawn = now;
      clearInterval(timer);
    }
  }, 20);
}"""

# Resolves once no Bokeh document of the page has changed for ``quiet`` ms (the server has
# sent all it does for a new page or tab) and every shown plot has finished drawing; with the
# ms the page was busy from the call.
SETTLE_JS = """(quiet) => new Promise(resolve => {
  const t0 = performance.now();
  let last = t0;
  for (const d of Bokeh.documents) d.on_change(() => { last = performance.now(); });
  const shown = v => v.el && v.el.checkVisibility({visibilityProperty: true});
  const timer = setInterval(() => {
    const plots = [...Bokeh.index.query(v => v.model.type === "Plot" || v.model.type === "Figure")];
    if (performance.now() - last >= quiet && plots.filter(shown).every(v => v.has_finished())) {
      clearInterval(timer);
      resolve(last - t0);
    }
  }, 50);
})"""

FIGURES = ("kicked pixel", "1 cell downstream", "2 cells downstream", "3 cells downstream", "maps")


def _set_seed(page, seed: int) -> None:
    box = page.locator(".bk-input-group", has_text="Seed").locator("input")
    box = box.filter(visible=True).first
    box.fill(str(seed))
    box.press("Enter")
    time.sleep(0.5)


def run_once(page, seed: int) -> tuple[float, float, float, dict[str, float]]:
    """(seconds until Run all ended, until its last figure was drawn, from the responses'
    arrival in the page until their figures were drawn, and the same for each figure) in the
    shown tab."""
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
    each = {k: (t - marks["data"]) / 1000 for k, t in marks["each"].items()}
    return ended, (marks["drawn"] - clicked) / 1000, (marks["drawn"] - marks["data"]) / 1000, each


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per system (new seeds)")
    parser.add_argument("--systems", default=",".join(TABS), help="comma-separated systems")
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="before clicking Run all, wait until the page has had no change from the server "
        "for this many seconds (0: click as soon as the button is there)",
    )
    args = parser.parse_args(argv)
    if not args.settle >= 0:
        parser.error(f"--settle: {args.settle} s; allowed: 0 or more seconds")
    systems = args.systems.split(",")
    for system in systems:
        if system not in TABS:
            parser.error(f"--systems: unknown {system!r}; allowed: {', '.join(TABS)}")
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float, float, dict[str, float]]]] = {
        s: [] for s in systems
    }
    with tempfile.TemporaryDirectory(prefix="gfdt-bench-") as tmp:
        server = LoopbackServer(Path(tmp) / "store")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for i in range(args.repeats):
                    for system in systems:
                        title = TABS[system]
                        context = browser.new_context(viewport={"width": 1500, "height": 1200})
                        context.add_init_script(INIT_JS)
                        page = context.new_page()
                        page.goto(server.url)
                        page.get_by_role("button", name="Run all").first.wait_for(timeout=120_000)
                        if system != "ou":
                            page.locator(".bk-tab", has_text=title).click()
                            run = page.get_by_role("button", name="Run all").first
                            run.wait_for(timeout=60_000)
                        if args.settle > 0:
                            busy = page.evaluate(SETTLE_JS, int(args.settle * 1000))
                            print(
                                f"{system}: page settled after {busy / 1000:.1f} s", file=sys.stderr
                            )
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
    print("\nFrom the responses' arrival in the page until each figure was drawn (median, max):\n")
    print("| system | " + " | ".join(FIGURES) + " |")
    print("|---|" + "---|" * len(FIGURES))
    for system, runs in results.items():
        cells = []
        for key in FIGURES:
            times = [r[3][key] for r in runs if key in r[3]]
            cells.append(f"{statistics.median(times):.2f} s ({max(times):.2f})" if times else "—")
        print(f"| {TABS[system]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
