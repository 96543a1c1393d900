"""Browser tests: the served app in chromium via Playwright (marker ``ui``).

One ``panel serve app.py`` subprocess on 127.0.0.1 serves every test of the module; each test
opens its own browser context, i.e. its own session. Screenshots go to pytest's temporary folder;
``GFDT_DASH_SCREENSHOTS=1`` writes them to ``assets/screenshots`` instead (the README's images:
refresh them deliberately, e.g. ``make screenshots``).
"""

import json
import os
import sys
import time
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.ui

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from load_test import (  # noqa: E402
    ARGS,
    CHROMIUM,
    FIGURES_DRAWN_JS,
    LoopbackServer,
    find_chromium,
)

ROOT = Path(__file__).resolve().parents[2]
TABS = {"ou": "Ornstein–Uhlenbeck", "allen_cahn": "Allen–Cahn", "navier_stokes": "Navier–Stokes"}
if find_chromium() is None:
    pytest.skip("no chromium browser found (shutil.which('chromium'))", allow_module_level=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    if os.environ.get("GFDT_DASH_SCREENSHOTS") == "1":
        folder = ROOT / "assets" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Jobs at normal CPU priority: these tests check behaviour, and on a machine shared with
    # other work the default lowered priority (for a classroom server's event loop) would let
    # that work starve the jobs for minutes.
    srv = LoopbackServer(tmp_path_factory.mktemp("store"), env={"GFDT_DASH_JOB_NICE": "0"})
    yield srv.url
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, url):
    context = browser.new_context(viewport={"width": 1500, "height": 1200})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.get_by_role("button", name="Run all").first.wait_for(timeout=60_000)
    return context, page, errors


def show_tab(page, title, timeout=60_000):
    """Click the tab ``title`` and wait until the previously shown tab's content is hidden, so
    that the next ``get_by_role("button", name="Run all").first`` is this tab's own (a hidden
    tab's buttons leave the role tree only once the switch is drawn)."""
    shown = page.get_by_role("button", name="Run all")
    previous = shown.first.element_handle() if shown.count() else None
    page.locator(".bk-tab", has_text=title).click()
    if previous is not None:
        page.wait_for_function(
            "(el) => !el.isConnected || el.offsetParent === null || "
            "getComputedStyle(el).visibility === 'hidden'",
            arg=previous,
            timeout=timeout,
        )
    page.get_by_role("button", name="Run all").first.wait_for(timeout=timeout)


def wait_text(page, text, timeout=120_000):
    page.get_by_text(text).first.wait_for(timeout=timeout)


def wait_figures_drawn(page, timeout=60_000):
    """Until the run's figures are drawn with its results: figures are drawn empty ahead of
    their data while the server is idle, or else when their data arrive (one at a time across
    sessions), so they may follow the job's end by a few seconds."""
    page.wait_for_function(FIGURES_DRAWN_JS, timeout=timeout)


def test_page_loads_without_errors_and_every_tab_renders(server, browser, shots):
    context, page, errors = open_page(browser, server)
    assert page.title().startswith("gfdt-dash")
    # the parameter widgets are built when their card is first opened
    page.get_by_text("Parameters", exact=True).first.click()
    page.get_by_text("λ — double-well strength (0: OU)", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=shots / "ou.png", full_page=True)
    for system, title in list(TABS.items())[1:]:
        page.locator(".bk-tab", has_text=title).click()
        page.get_by_role("button", name="Run all").nth(0).wait_for(timeout=30_000)
        time.sleep(1.0)
        page.screenshot(path=shots / f"{system}.png", full_page=True)
    page.locator(".bk-tab", has_text="About").click()
    wait_text(page, "Each system tab says what to look for")
    page.screenshot(path=shots / "about.png", full_page=True)
    assert errors == []
    context.close()


def test_run_all_on_ou_fills_the_figure_and_error_table(server, browser, shots):
    from gfdt_dash.score import shipped_model_path

    context, page, errors = open_page(browser, server)
    if not shipped_model_path("ou").is_file():
        # Without the shipped model Run all trains one: keep that short in a test.
        box = page.locator(".bk-input-group", has_text="Train steps").locator("input").first
        box.fill("30")
        box.press("Enter")
        time.sleep(0.5)
    page.get_by_role("button", name="Run all").click()
    wait_text(page, "Run all finished", timeout=150_000)
    wait_figures_drawn(page)
    assert_error_table(
        page, ("analytic", "perturbation", "learned_score", "exact_score", "gaussian")
    )
    # score diagnostics of the session's model on the session's simulation
    for key in ("score_rel_error", "hist_distance", "spectrum_distance"):
        assert page.get_by_text(key, exact=True).count() == 1, key
    page.get_by_text("Response at the kicked pixel").scroll_into_view_if_needed()
    page.screenshot(path=shots / "ou_curves.png")
    # the maps at a later lag: the response has spread and moved downstream
    handle = page.locator(".noUi-handle").first
    handle.focus()
    for _ in range(8):
        handle.press("ArrowRight")
    assert handle.get_attribute("aria-valuenow").startswith("8"), handle.get_attribute(
        "aria-valuenow"
    )
    # every map redrawn at lag 8 (t = 8: one frame per time unit); titles are drawn on canvas
    page.wait_for_function(
        """() => Bokeh.documents.flatMap(d => Array.from(d.all_models)).filter(
             m => m.title && m.title.text && m.title.text.endsWith(', t = 8')).length === 5""",
        timeout=60_000,
    )
    page.get_by_text("Response maps").scroll_into_view_if_needed()
    page.screenshot(path=shots / "ou_maps.png")
    assert errors == []
    context.close()


def test_cancel_stops_a_simulation_and_the_tab_stays_usable(server, browser):
    context, page, errors = open_page(browser, server)
    page.get_by_role("button", name="paper").click()  # long enough to be cancelled midway
    page.get_by_role("button", name="Simulate", exact=True).click()
    wait_text(page, "Press Simulate again to start it", timeout=30_000)  # minutes: asked first
    page.get_by_role("button", name="Simulate", exact=True).click()
    wait_text(page, "simulate:", timeout=60_000)
    page.get_by_role("button", name="Cancel").click()
    wait_text(page, "Simulation cancelled", timeout=30_000)
    page.get_by_role("button", name="classroom").click()
    page.get_by_role("button", name="Simulate", exact=True).click()
    wait_text(page, "Simulation finished", timeout=120_000)
    assert errors == []
    context.close()


def set_seed(page, seed):
    box = page.locator(".bk-input-group", has_text="Seed").locator("input").first
    box.fill(str(seed))
    box.press("Enter")


def test_two_sessions_run_jobs_without_seeing_each_other(server, browser):
    ctx_a, page_a, errors_a = open_page(browser, server)
    ctx_b, page_b, errors_b = open_page(browser, server)
    # seeds no other test uses, so neither simulation is already in the shared result cache
    set_seed(page_a, 11)
    set_seed(page_b, 12)
    time.sleep(0.5)
    page_a.get_by_role("button", name="Simulate", exact=True).click()
    page_b.get_by_role("button", name="Compute responses").click()
    # B has no simulation of its own: A's running job must not count for it
    wait_text(page_b, "Responses failed", timeout=30_000)
    wait_text(page_a, "Simulation finished", timeout=120_000)
    assert page_b.get_by_text("Simulation finished").count() == 0
    assert page_a.get_by_text("Responses failed").count() == 0
    page_b.get_by_role("button", name="Simulate", exact=True).click()
    page_a.get_by_role("button", name="Compute responses").click()
    wait_text(page_b, "Simulation finished", timeout=120_000)
    wait_text(page_a, "Responses finished", timeout=120_000)
    assert page_b.get_by_text("Responses finished").count() == 0
    assert errors_a == []
    assert errors_b == []
    ctx_a.close()
    ctx_b.close()


def test_run_all_on_navier_stokes_classroom(server, browser, shots):
    from gfdt_dash.score import shipped_model_path

    context, page, errors = open_page(browser, server)
    show_tab(page, TABS["navier_stokes"])
    # tabs are built when first shown; buttons of hidden tabs are not in the role tree
    run = page.get_by_role("button", name="Run all").first
    run.wait_for(timeout=30_000)
    if not shipped_model_path("navier_stokes").is_file():
        box = page.locator(".bk-input-group", has_text="Train steps").locator("input")
        box = box.filter(visible=True).first
        box.fill("30")
        box.press("Enter")
        time.sleep(0.5)
    run.click()
    wait_text(page, "Run all finished", timeout=150_000)
    wait_figures_drawn(page)
    assert_error_table(page, ("perturbation", "learned_score", "gaussian"))  # no exact score
    heading = page.get_by_text("Response at the kicked pixel").filter(visible=True).first
    heading.scroll_into_view_if_needed()
    page.screenshot(path=shots / "navier_stokes_results.png")
    assert errors == []
    context.close()


EXPECTED_METHODS = {  # per system: the rows of its error table
    "ou": ("analytic", "perturbation", "learned_score", "exact_score", "gaussian"),
    "allen_cahn": ("perturbation", "learned_score", "exact_score", "gaussian"),
    "navier_stokes": ("perturbation", "learned_score", "gaussian"),
}

# Every Bokeh plot of the page (all tabs) with its y range and the extent of the data it draws
# (line and marker y values, band edges, histogram bar tops; images are left out).
RANGES_JS = """
() => {
  const out = [];
  const column = (data, name) => (data instanceof Map ? data.get(name) : data[name]);
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      if (!(m.x_range && m.y_range && m.renderers && m.title)) continue;
      let lo = Infinity, hi = -Infinity, n = 0;
      for (const r of m.renderers) {
        if (!r.glyph || !r.data_source || !r.data_source.data) continue;
        if (r.glyph.image !== undefined) continue;  // maps and snapshots: fixed pixel extents
        for (const key of ["y", "top", "bottom"]) {
          const spec = r.glyph[key];
          const values = spec && spec.field ? column(r.data_source.data, spec.field) : null;
          if (!values) continue;
          for (const v of values) {
            if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); n++; }
          }
        }
      }
      out.push({title: m.title.text || "", start: m.y_range.start, end: m.y_range.end,
                lo: lo, hi: hi, n: n});
    }
  }
  return out;
}
"""


def range_problems(page) -> list[str]:
    """Plots whose y range does not fit their own data: the range must cover the data and be at
    most three times as tall (Bokeh pads by 10 % each side; a range shared with another figure's
    data is what this catches: the Navier–Stokes curves in 0–2 drawn on a 0–20 axis)."""
    problems = []
    for plot in page.evaluate(RANGES_JS):
        if plot["n"] == 0 or "loss" in plot["title"]:  # no data yet; the loss axis is log
            continue
        lo, hi, start, end = plot["lo"], plot["hi"], plot["start"], plot["end"]
        span = max(hi - lo, 1e-9 * max(1.0, abs(hi)))
        if not (start <= lo + 1e-6 * span and end >= hi - 1e-6 * span):
            problems.append(f"clipped: {json.dumps(plot)}")
        elif end - start > 3 * span:
            problems.append(f"squashed: {json.dumps(plot)}")
    return problems


def assert_ranges_fit(page, timeout_s: float = 30.0) -> int:
    """Every plot's ranges fit its own data (retried while the last updates arrive; a hang
    guard, not a timing check); returns the number of plots with data."""
    deadline = time.monotonic() + timeout_s
    while True:
        problems = range_problems(page)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert problems == [], "\n".join(problems)
    return sum(1 for p in page.evaluate(RANGES_JS) if p["n"] > 0)


# Bokeh renders every component in its own shadow root: search them all.
TABLES_JS = """
() => {
  const found = [];
  const walk = root => {
    found.push(...root.querySelectorAll('table.gfdt-errors'));
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  const up = e => e.parentElement || (e.getRootNode() && e.getRootNode().host) || null;
  return found.map(t => ({
  methods: Array.from(t.querySelectorAll('tbody tr')).map(r => r.dataset.estimator),
  numbers: Array.from(t.querySelectorAll('tbody td')).map(c => c.textContent),
  headers: Array.from(t.querySelectorAll('th')).map(h => h.textContent),
  truncated: Array.from(t.querySelectorAll('th, td')).filter(
    c => c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1).length,
  clipped: (() => {
    for (let e = up(t); e; e = up(e)) {
      const s = getComputedStyle(e);
      if (/(auto|scroll|hidden)/.test(s.overflowY) && e.clientHeight + 1 < t.offsetHeight) {
        return true;
      }
    }
    return false;
  })(),
}));
}
"""


def assert_error_table(page, methods, timeout_s: float = 30.0) -> None:
    """A rendered error table with exactly these methods' rows, numbers in them, headers in
    words, nothing truncated and no scrolling needed to see every row."""
    deadline = time.monotonic() + timeout_s  # a hang guard for the table's update
    while True:
        tables = [t for t in page.evaluate(TABLES_JS) if sorted(t["methods"]) == sorted(methods)]
        if tables or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert tables, page.evaluate(TABLES_JS)
    table = tables[0]
    assert sum(any(ch.isdigit() for ch in c) for c in table["numbers"]) >= len(methods)
    assert "relative error of the response" in table["headers"], table["headers"]
    assert table["truncated"] == 0 and not table["clipped"], table


def run_all_in_shown_tab(page, timeout=900_000):
    """Click the shown tab's Run all and wait until the job has ended (the button is off while
    it runs; a hidden tab's buttons are not in the role tree)."""
    from playwright.sync_api import expect

    run = page.get_by_role("button", name="Run all").first
    run.wait_for(timeout=60_000)
    finished = page.get_by_text("Run all finished").count()
    run.click()
    # The job started: the button goes off while it runs, or, for a job the server's result
    # cache answers at once (another session computed the same run), it has already finished.
    done = page.get_by_text("Run all finished")
    # A hang guard for the start; generous, since on 2 busy cores (server, job workers and the
    # browser laying out the figures of the tabs already run) a role query can wait tens of s.
    deadline = time.monotonic() + 180
    while not run.is_disabled(timeout=180_000) and done.count() == finished:
        assert time.monotonic() < deadline, "Run all did not start"
        time.sleep(0.05)
    expect(run).to_be_enabled(timeout=timeout)
    expect(done).not_to_have_count(finished, timeout=30_000)


def test_three_systems_in_one_session_keep_their_own_axis_ranges(server, browser, shots):
    context, page, errors = open_page(browser, server)
    drawn = 0
    for system, title in TABS.items():
        if system != "ou":
            show_tab(page, title)
        run_all_in_shown_tab(page)
        wait_figures_drawn(page)
        assert_error_table(page, EXPECTED_METHODS[system])
        plots = assert_ranges_fit(page)
        assert plots > drawn, (system, plots, drawn)  # this system's figures were checked too
        drawn = plots
        heading = page.get_by_text("Response at the kicked pixel").filter(visible=True).first
        heading.scroll_into_view_if_needed()
        page.screenshot(path=shots / f"{system}_results.png")
    assert errors == []
    context.close()


def test_allen_cahn_error_table_in_a_fresh_session(server, browser):
    context, page, errors = open_page(browser, server)
    show_tab(page, TABS["allen_cahn"])
    run_all_in_shown_tab(page)
    wait_figures_drawn(page)
    assert_error_table(page, EXPECTED_METHODS["allen_cahn"])
    assert errors == []
    context.close()


# The response figures of the page (downstream panels and maps): each plot's bokeh model id, its
# renderers' data source ids, and the downstream panels' response values (a signature of the data).
RESPONSE_PLOTS_JS = """
() => Bokeh.documents.flatMap(d => Array.from(d.all_models))
  .filter(m => m.renderers && m.title && /kicked pixel|downstream|, t = /.test(m.title.text || ""))
  .map(m => ({
    id: m.id,
    title: m.title.text || "",
    sources: m.renderers.filter(r => r.data_source).map(r => r.data_source.id),
    values: m.renderers.filter(r => r.data_source).map(r => {
      const data = r.data_source.data;
      const col = data instanceof Map ? data.get("response") : data.response;
      return col && col.length !== undefined && typeof col[0] === "number"
        ? Array.from(col).join(",") : "";
    }).join("|"),
  }))
"""


def response_plots(page) -> dict[str, dict]:
    return {p["id"]: p for p in page.evaluate(RESPONSE_PLOTS_JS)}


def test_changed_seed_marks_results_out_of_date_until_recomputed(server, browser):
    # ... and the new results update the figures already drawn in place: the same bokeh plots and
    # data sources with new data, not new plots (a second result costs no first render).
    from playwright.sync_api import expect

    context, page, errors = open_page(browser, server)
    run_all_in_shown_tab(page)
    wait_figures_drawn(page)
    first = response_plots(page)
    assert len(first) == 4 + len(EXPECTED_METHODS["ou"]), first  # 4 panels, a map per method
    stale = page.locator(".gfdt-stale")
    assert stale.count() == 0
    set_seed(page, 5)
    expect(stale).to_have_count(1, timeout=30_000)
    expect(stale).to_contain_text("seed 0 → 5")
    expect(stale).to_contain_text("Run all")
    run_all_in_shown_tab(page)
    expect(stale).to_have_count(0, timeout=30_000)
    assert_ranges_fit(page)  # the figures re-ranged on the new results
    deadline = time.monotonic() + 30  # a hang guard for the update
    while True:
        second = response_plots(page)
        changed = [i for i in first if i in second and second[i]["values"] != first[i]["values"]]
        if changed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert changed, "the downstream panels kept the first seed's values"
    # The four downstream panels are the same plots with the same sources, updated in place (the
    # maps, emptied by the new simulation, may be drawn anew when their data return).
    panels = [i for i in first if ", t = " not in first[i]["title"]]
    assert len(panels) == 4, [first[i]["title"] for i in first]
    assert all(i in second and second[i]["sources"] == first[i]["sources"] for i in panels)
    assert errors == []
    context.close()


def test_a_scan_started_from_the_scans_tab_shows_progress_and_cancels(server, browser, shots):
    from playwright.sync_api import expect

    context, page, errors = open_page(browser, server)
    page.locator(".bk-tab", has_text="Scans").click()
    run = page.get_by_role("button", name="Run scan")
    run.wait_for(timeout=60_000)
    run.click()  # the form's default: Allen–Cahn, λ at three values, seeds 0 and 1
    cancel = page.get_by_role("button", name="Cancel scan")
    expect(cancel).to_be_enabled(timeout=30_000)
    expect(run).to_be_disabled()
    wait_text(page, "cells done", timeout=120_000)  # its progress line
    cancel.click()
    wait_text(page, "its finished cells are kept", timeout=60_000)
    expect(run).to_be_enabled(timeout=30_000)
    expect(cancel).to_be_disabled()
    page.screenshot(path=shots / "scans.png")
    assert errors == []
    context.close()
