"""Browser tests: the served app in Debian's chromium via Playwright (marker ``ui``).

One ``panel serve app.py`` subprocess on 127.0.0.1 serves every test of the module; each test
opens its own browser context, i.e. its own session.
"""

import sys
import time
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.ui

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from load_test import ARGS, CHROMIUM, LoopbackServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "assets" / "screenshots"
TABS = {"ou": "Ornstein–Uhlenbeck", "allen_cahn": "Allen–Cahn", "navier_stokes": "Navier–Stokes"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LoopbackServer(tmp_path_factory.mktemp("store"))
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


def wait_text(page, text, timeout=120_000):
    page.get_by_text(text).first.wait_for(timeout=timeout)


MAPS_PLACEHOLDER = "The maps appear with the responses."


def wait_figures_drawn(page, placeholders_before: int, timeout=60_000):
    """Until the run's last figure has replaced its placeholder: first renders are paced (one at
    a time across sessions), so they follow the job's end by a few seconds. Counts placeholders:
    Playwright finds a hidden tab's placeholder visible too (its markdown resets visibility)."""
    from playwright.sync_api import expect

    maps = page.get_by_text(MAPS_PLACEHOLDER)
    expect(maps).to_have_count(placeholders_before - 1, timeout=timeout)


def test_page_loads_without_errors_and_every_tab_renders(server, browser):
    context, page, errors = open_page(browser, server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert page.title().startswith("gfdt-dash")
    # the parameter widgets are built when their card is first opened
    page.get_by_text("Parameters", exact=True).first.click()
    page.get_by_text("n_experiments", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=SHOTS / "ou.png", full_page=True)
    for system, title in list(TABS.items())[1:]:
        page.locator(".bk-tab", has_text=title).click()
        page.get_by_role("button", name="Run all").nth(0).wait_for(timeout=30_000)
        time.sleep(1.0)
        page.screenshot(path=SHOTS / f"{system}.png", full_page=True)
    page.locator(".bk-tab", has_text="About").click()
    wait_text(page, "How the responses are predicted")
    page.screenshot(path=SHOTS / "about.png", full_page=True)
    assert errors == []
    context.close()


def test_run_all_on_ou_fills_the_figure_and_error_table(server, browser):
    from gfdt_dash.score import shipped_model_path

    context, page, errors = open_page(browser, server)
    if not shipped_model_path("ou").is_file():
        # Without the shipped model Run all trains one: keep that short in a test.
        box = page.locator(".bk-input-group", has_text="Train steps").locator("input").first
        box.fill("30")
        box.press("Enter")
        time.sleep(0.5)
    placeholders = page.get_by_text(MAPS_PLACEHOLDER).count()
    page.get_by_role("button", name="Run all").click()
    wait_text(page, "Run all finished", timeout=150_000)
    wait_figures_drawn(page, placeholders)
    table = page.locator(".tabulator")
    for method in ("analytic", "perturbation", "learned_score", "exact_score", "gaussian"):
        assert table.get_by_text(method, exact=True).count() == 1, method
    row = page.locator(".tabulator-row", has_text="learned_score").inner_text()
    assert any(ch.isdigit() for ch in row), row  # errors are numbers, not blanks
    # score diagnostics of the session's model on the session's simulation
    for key in ("score_rel_error", "hist_distance", "spectrum_distance"):
        assert page.get_by_text(key, exact=True).count() == 1, key
    page.get_by_text("Response at the kicked pixel").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "ou_curves.png")
    # the maps at a later lag: the response has spread and moved downstream
    handle = page.locator(".noUi-handle").first
    handle.focus()
    for _ in range(8):
        handle.press("ArrowRight")
    assert handle.get_attribute("aria-valuenow").startswith("8"), handle.get_attribute(
        "aria-valuenow"
    )
    time.sleep(1.5)  # the maps' round trip
    page.get_by_text("Response maps").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "ou_maps.png")
    assert errors == []
    context.close()


def test_cancel_stops_a_simulation_and_the_tab_stays_usable(server, browser):
    context, page, errors = open_page(browser, server)
    page.get_by_role("button", name="paper").click()  # long enough to be cancelled midway
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


def test_run_all_on_navier_stokes_classroom(server, browser):
    from gfdt_dash.score import shipped_model_path

    context, page, errors = open_page(browser, server)
    page.locator(".bk-tab", has_text=TABS["navier_stokes"]).click()
    # tabs are built when first shown; buttons of hidden tabs are not in the role tree
    run = page.get_by_role("button", name="Run all").first
    run.wait_for(timeout=30_000)
    if not shipped_model_path("navier_stokes").is_file():
        box = page.locator(".bk-input-group", has_text="Train steps").locator("input")
        box = box.filter(visible=True).first
        box.fill("30")
        box.press("Enter")
        time.sleep(0.5)
    placeholders = page.get_by_text(MAPS_PLACEHOLDER).count()
    run.click()
    wait_text(page, "Run all finished", timeout=150_000)
    wait_figures_drawn(page, placeholders)
    table = page.locator(".tabulator").filter(visible=True).first  # the shown tab's table
    for method in ("perturbation", "learned_score", "gaussian"):
        assert table.get_by_text(method, exact=True).count() == 1, method
    assert table.get_by_text("exact_score", exact=True).count() == 0  # no closed form
    heading = page.get_by_text("Response at the kicked pixel").filter(visible=True).first
    heading.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "navier_stokes_results.png")
    assert errors == []
    context.close()
