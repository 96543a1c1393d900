"""SystemTab driven through its params and events, without a browser (synchronous runner)."""

import json
import re
import threading
import time

import numpy as np
import pytest
import xarray as xr

import gfdt_dash.ui.controller as controller_module
from gfdt_dash import stages
from gfdt_dash.story import shape_statistics, verdict
from gfdt_dash.systems import SimulationDiverged, get_config
from gfdt_dash.ui import store
from gfdt_dash.ui.controller import ASK_ABOVE_S, model_differences
from gfdt_dash.ui.jobs import RESULTS, JobRunner, ResultCache
from gfdt_dash.ui.tab import SystemTab

# A tiny OU run: 16×16, 32 members, 40 recorded frames, 64 paired experiments (~1 s).
TINY = dict(spinup=10.0, record=40.0)


def tiny_tab(**kwargs) -> SystemTab:
    tab = SystemTab("ou", sync=True, **kwargs)
    tab.mirror.param.update(**TINY)
    return tab


@pytest.fixture(autouse=True)
def _fresh_cache():
    RESULTS.clear()
    yield
    RESULTS.clear()


def test_editing_a_parameter_switches_to_custom_and_presets_restore():
    tab = tiny_tab()
    assert tab.preset == "custom"
    tab.preset = "classroom"
    assert tab.mirror.record == 400.0
    tab.preset = "paper"
    assert tab.config().n == 32


def test_simulate_then_compute_fills_results_table_and_status():
    tab = tiny_tab()
    tab.simulate = True
    assert tab.runner.stage == "done"
    assert tab.sim["field"].shape == (32, 40, 16, 16)
    assert tab.status.startswith("Simulation finished")
    tab.compute = True
    assert tab.runner.stage == "done", tab.status
    methods = [str(m) for m in tab.responses["estimator"].values]
    assert {"gaussian", "exact_score", "perturbation", "analytic"} <= set(methods)
    assert tab.responses.sizes["lag"] == tab.config().n_lags
    table = tab.error_table.set_index("estimator")
    assert table.loc["analytic", "error"] == 0.0  # the reference
    # Loose physics check: 40 frames are plenty for the Gaussian estimate of a linear system.
    assert table.loc["gaussian", "error"] < 0.5
    assert np.isfinite(table.loc["exact_score", "stein_error"])
    assert tab.status.startswith("Responses finished")


def test_repeating_a_simulation_is_served_from_the_cache():
    tab = tiny_tab()
    tab.simulate = True
    first = tab.sim
    other = tiny_tab()  # another session, same config, seed and device
    other.simulate = True
    assert other.sim is first  # the very object: nothing was recomputed
    other.seed = 1
    other.simulate = True
    assert other.sim is not first


def test_a_new_kick_reuses_the_simulation_and_recomputes_the_responses():
    tab = tiny_tab()
    tab.simulate = True
    tab.compute = True
    first_sim = tab.sim
    tab.mirror.delta = 0.125  # the perturbation experiment only: the simulation is unchanged
    assert "δ" in tab.stale_reason() or "delta" in tab.stale_reason()
    tab.simulate = True
    assert tab.sim is first_sim  # served from the cache
    assert tab.stale_reason()  # the responses shown were made with the old kick
    tab.compute = True
    assert tab.stale_reason() == ""
    made = json.loads(tab.responses.attrs["estimator_attrs"])["perturbation"]
    assert made["delta"] == 0.125
    tab.mirror.kappa = 0.005  # physics: a new simulation
    tab.simulate = True
    assert tab.sim is not first_sim


def test_downloads_are_readable_netcdf(tmp_path):
    tab = tiny_tab()
    with pytest.raises(ValueError, match="no simulation"):
        tab.netcdf_bytes("simulation")
    tab.simulate = True
    tab.compute = True
    for which, var in (("simulation", "field"), ("responses", "response")):
        path = tmp_path / f"{which}.nc"
        path.write_bytes(tab.netcdf_bytes(which).getvalue())
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            assert var in ds
    with xr.open_dataset(tmp_path / "simulation.nc", engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["field"].values, tab.sim["field"].values)


def test_divergence_is_reported_and_the_tab_stays_usable(monkeypatch):
    tab = tiny_tab()

    def diverge(*args, **kwargs):
        raise SimulationDiverged(12.5, 0.125)

    monkeypatch.setattr(controller_module, "simulate", diverge)
    tab.simulate = True
    assert tab.runner.stage == "error"
    assert "non-finite" in tab.status
    assert "dt" in tab.status
    assert tab.sim is None
    monkeypatch.undo()
    tab.simulate = True
    assert tab.runner.stage == "done"


def test_out_of_memory_fails_only_that_job_with_advice(monkeypatch):
    tab = tiny_tab()

    def exhaust(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(controller_module, "simulate", exhaust)
    tab.simulate = True
    assert tab.runner.stage == "error"
    assert "out of memory" in tab.status
    assert "fewer members" in tab.status
    monkeypatch.undo()
    tab.simulate = True
    assert tab.runner.stage == "done"


def test_invalid_parameters_are_refused_before_any_job():
    tab = tiny_tab()
    tab.mirror.frame_every = 0.3
    tab.simulate = True
    assert tab.runner.job == ""
    assert "frame_every" in tab.status


def test_compute_without_simulation_explains_what_to_do():
    tab = tiny_tab()
    tab.compute = True
    assert tab.runner.stage == "error"
    assert "simulation" in tab.status


def test_a_garbage_checkpoint_is_refused_with_a_message():
    path = store.model_path("ou", "broken")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage, not a checkpoint" * 10)
    tab = tiny_tab()
    assert "saved: broken" in tab.param.model_source.objects
    tab.model_source = "saved: broken"
    tab.load_model = True
    assert tab.runner.stage == "error"
    assert tab.status.startswith("Loading model failed")
    assert tab.model is None


def test_saving_without_a_model_is_refused():
    tab = tiny_tab()
    tab.save_model = True
    assert "no model" in tab.status


@pytest.mark.parametrize(
    ("name", "stem"),
    [("my model", "my_model"), ("../../etc/passwd", "etc_passwd"), ("a.safetensors", "a")],
)
def test_model_names_are_sanitised_into_the_store(name, stem, store_dir):
    path = store.model_path("ou", name)
    assert path.stem == stem
    assert path.parent == (store_dir / "models" / "ou").resolve()


def test_unusable_model_name_is_refused():
    with pytest.raises(ValueError, match="no usable characters"):
        store.sanitize_name("../..")


def test_cancel_stops_a_running_simulation_and_the_tab_remains_usable():
    tab = SystemTab("ou")  # pooled runner; not served, so UI updates apply in the worker
    tab.mirror.param.update(spinup=10_000.0, record=40.0)
    tab.simulate = True
    deadline = time.monotonic() + 20
    while tab.runner.stage != "simulate" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tab.runner.stage == "simulate"
    tab.cancel = True
    tab.runner.wait(timeout=20)
    assert tab.runner.stage == "cancelled"
    assert not tab.runner.running
    assert "cancelled" in tab.status
    tab.mirror.spinup = 10.0
    tab.simulate = True
    tab.runner.wait(timeout=30)
    assert tab.runner.stage == "done"
    assert tab.sim is not None


def test_job_runner_reports_queue_progress_and_errors():
    seen = []
    runner = JobRunner(lambda fn: fn(), sync=True, min_interval_s=0.0)
    from gfdt_dash.progress import Reporter

    def work(callback, should_stop):
        rep = Reporter("count", 3, callback, should_stop, min_interval_s=0.0)
        for i in range(1, 4):
            rep.update(i)
        return 42

    assert runner.submit("w", work, on_progress=seen.append, on_done=seen.append)
    assert [p.done for p in seen[:-1]] == [1, 2, 3]
    assert seen[-1] == 42
    assert runner.stage == "done"
    errors = []
    runner.submit("bad", lambda cb, stop: 1 / 0, on_error=errors.append)
    assert isinstance(errors[0], ZeroDivisionError)
    assert runner.stage == "error"


def test_closed_runner_refuses_jobs_and_stops_the_running_one():
    started = threading.Event()
    runner = JobRunner(lambda fn: fn())

    def wait_for_stop(callback, should_stop):
        started.set()
        while not should_stop():
            time.sleep(0.01)
        return "stopped"

    assert runner.submit("loop", wait_for_stop)
    assert started.wait(10)
    runner.close()  # what the app does when the browser session is destroyed
    runner.wait(timeout=10)
    assert not runner.submit("again", wait_for_stop)


def test_result_cache_is_bounded_by_items_and_bytes():
    cache = ResultCache(max_items=2, max_bytes=100)
    cache.put("a", np.zeros(5))  # 40 bytes
    cache.put("b", np.zeros(5))
    cache.put("c", np.zeros(5))
    assert cache.get("a") is None
    assert len(cache) == 2
    cache.put("big", np.zeros(50))  # 400 bytes: never kept
    assert cache.get("big") is None
    cache.put("d", np.zeros(10))  # 80 bytes: evicts until the total fits
    assert len(cache) == 1


def test_train_save_and_reload_a_model_then_use_it_for_responses():
    tab = tiny_tab(train_steps=20)
    tab.simulate = True
    tab.train = True
    assert tab.runner.stage == "done", tab.status
    assert tab.model is not None
    assert tab.model_info["in use"] == "trained in this session"
    assert len(tab._losses.data) > 0  # the streamed loss curve
    tab.model_name = "tiny ou"
    tab.save_model = True
    assert "saved: tiny_ou" in tab.param.model_source.objects
    assert tab.model_source == "saved: tiny_ou"
    tab.model = None
    tab.load_model = True
    assert tab.runner.stage == "done", tab.status
    assert tab.model_info["in use"] == "loaded: tiny_ou"
    tab.compute = True
    table = tab.error_table.set_index("estimator")
    assert np.isfinite(table.loc["learned_score", "error"])
    assert np.isfinite(table.loc["learned_score", "stein_error"])


def test_saving_under_a_name_another_session_used_is_refused(store_dir):
    first = tiny_tab(train_steps=10)
    first.simulate = True
    first.train = True
    first.model_name = "shared name"
    first.save_model = True
    path = store.model_path("ou", "shared name")
    before = path.read_bytes()
    other = tiny_tab(train_steps=10, seed=3)  # another session, another model
    other.simulate = True
    other.train = True
    other.model_name = "shared name"
    other.save_model = True
    assert "already exists" in other.status and "'shared_name'" in other.status
    assert path.read_bytes() == before  # the first session's model is untouched
    other.model_name = "mine"
    other.save_model = True
    assert other.model_source == "saved: mine" and store.model_path("ou", "mine").is_file()


def test_training_and_loading_show_real_score_diagnostics_cached_per_model(monkeypatch):
    tab = tiny_tab(train_steps=20)
    tab.simulate = True
    tab.train = True
    assert tab.runner.stage == "done", tab.status
    diag = tab.diagnostics
    assert diag["source"].startswith("this session's simulation")
    for key in ("stein_error", "stein_error_exact", "score_rel_error", "hist_distance"):
        assert np.isfinite(diag[key]), key
    # The exact OU score satisfies Stein's identity up to sampling error; 20 steps do not.
    assert diag["stein_error_exact"] < diag["stein_error"]
    tab.model_name = "diag"
    tab.save_model = True
    tab.load_model = True
    assert tab.runner.stage == "done", tab.status
    loaded = tab.diagnostics
    assert loaded["source"].startswith("this session's simulation")

    def recompute(*_a, **_k):
        raise AssertionError("diagnostics recomputed instead of served from the cache")

    monkeypatch.setattr(stages, "diagnose_model", recompute)
    tab.load_model = True  # same file, same simulation: served from the cache
    assert tab.runner.stage == "done", tab.status
    assert tab.diagnostics == loaded


def test_the_shipped_models_own_diagnostics_serve_a_simulation_of_its_very_config(monkeypatch):
    def recompute(*_a, **_k):
        raise AssertionError("diagnostics recomputed for the shipped model's own config")

    tab = SystemTab("ou", sync=True)  # the classroom preset: what the shipped model was made on
    monkeypatch.setattr(stages, "diagnose_model", recompute)
    tab.run_all = True
    assert tab.runner.stage == "done", tab.status
    assert tab.model_info["in use"] == "loaded: shipped model"
    assert tab.diagnostics["source"].startswith("stored with the checkpoint: its own training")
    stored = tab.model.metadata["diagnostics"]
    assert tab.diagnostics["stein_error"] == stored["stein_error"]
    monkeypatch.undo()
    tab.mirror.param.update(**TINY)  # other sampling settings: diagnosed on this simulation
    tab.simulate = True
    tab.load_model = True
    assert tab.runner.stage == "done", tab.status
    assert tab.diagnostics["source"].startswith("this session's simulation")


def test_loading_without_a_simulation_keeps_the_checkpoint_diagnostics():
    tab = tiny_tab(train_steps=20)
    tab.simulate = True
    tab.train = True
    tab.model_name = "nosim"
    tab.save_model = True
    fresh = tiny_tab()
    fresh.model_source = "saved: nosim"
    RESULTS.clear()
    fresh.load_model = True
    assert fresh.runner.stage == "done", fresh.status
    assert fresh.diagnostics.get("source", "stored with the checkpoint") == (
        "stored with the checkpoint"
    )


@pytest.mark.parametrize(
    ("updates", "env", "message"),
    [
        (
            {"n": 32},
            {"GFDT_DASH_MAX_N": "16"},
            r"^Too big for this server: n: 32 .*allowed: 4 … 16\.$",
        ),
        ({"members": 64}, {"GFDT_DASH_MAX_MEMBERS": "32"}, r"members: 64 .*allowed: 1 … 32\.$"),
        (
            {"members": 512, "record": 7000.0},  # spin-up, record and the perturbation runs
            {},
            r"need 28,917,760 time steps .*allows per job \(25,000,000\)\. Use fewer members",
        ),
    ],
)
def test_jobs_beyond_the_server_limits_are_refused_naming_the_field(
    updates, env, message, monkeypatch
):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    tab = tiny_tab()
    tab.mirror.param.update(**updates)
    tab.simulate = True
    assert tab.runner.job == ""  # nothing was started
    assert re.search(message, tab.status), tab.status


def test_train_steps_beyond_the_limit_are_refused(monkeypatch):
    monkeypatch.setenv("GFDT_DASH_MAX_TRAIN_STEPS", "100")
    tab = tiny_tab(train_steps=500)
    tab.train = True
    assert tab.runner.job == ""
    assert "train_steps: 500" in tab.status and "10 … 100" in tab.status


def test_a_session_runs_at_most_the_allowed_number_of_jobs_at_once():
    runners = []
    first = SystemTab("ou", session_runners=runners)
    second = SystemTab("allen_cahn", session_runners=runners)
    first.mirror.param.update(spinup=10_000.0, record=40.0)
    first.simulate = True
    assert first.runner.running
    second.simulate = True
    assert second.runner.job == ""
    assert "Concurrent jobs" in second.status and "allowed: 1" in second.status
    first.cancel = True
    first.runner.wait(timeout=20)
    assert first.runner.stage == "cancelled"


def test_closing_the_browser_session_cancels_its_jobs(monkeypatch):
    from gfdt_dash.ui.app import create_app

    monkeypatch.setenv("GFDT_DASH_MAX_MEMBER_STEPS", str(10**10))
    page = create_app()
    tab = page.views["ou"]
    # 512 members of 64×64 for 10⁵ time units: hours of work, so only a working cancel lets
    # wait() return
    tab.mirror.param.update(n=64, members=512, spinup=1e5, record=40.0)
    tab.simulate = True  # hours: the estimate is shown and the job starts when asked again
    assert not tab.runner.running and "Press Simulate again" in tab.status
    tab.simulate = True
    assert tab.runner.running
    page.close_session()  # what on_session_destroyed runs
    tab.runner.wait(timeout=120)
    assert tab.sim is None
    assert not tab.runner.submit("again", lambda cb, stop: None)


def test_figures_are_placeholders_until_their_first_data_then_render_once():
    # First paint renders no figure (that was most of a new session's page time); each figure
    # is rendered once, when its data arrives, and updated in place afterwards.
    import panel as pn

    tab = tiny_tab()
    layout = tab.__panel__()
    assert not layout.select(pn.pane.HoloViews) and not layout.select(pn.pane.Bokeh)
    assert set(tab._figures) == {"snapshot", "losses", "hist"}
    responses = tab._response_figures
    tab.param.trigger("simulate")
    assert tab._figures["snapshot"].pane is not None and tab._figures["hist"].pane is not None
    # the response figures are built while the responses are computed, not yet shown
    assert responses.prepared and not responses.shown
    assert not layout.select(pn.pane.Bokeh)
    tab.param.trigger("compute")
    assert responses.shown
    models = [f.model for f in responses.curves] + [responses.maps.model]
    panes = layout.select(pn.pane.Bokeh)
    # snapshot and histogram (no loss curve: no model yet); four downstream panels and the maps
    assert len(layout.select(pn.pane.HoloViews)) == 2
    assert [p.object for p in panes] == models
    tab.seed = 1
    tab.param.trigger("simulate")
    tab.param.trigger("compute")
    # not rebuilt: the same figures, updated in place
    assert [f.model for f in responses.curves] + [responses.maps.model] == models
    assert layout.select(pn.pane.Bokeh) == panes
    assert len(layout.select(pn.pane.HoloViews)) == 2


def test_results_reach_the_page_in_one_patch_and_later_results_change_no_layout():
    # The browser lays out the whole page again for every change of a layout's children and
    # for every button that changes: the first responses' figures go in with one such change,
    # together with the error table and the verdict in one batch (one document patch when
    # served, ``_batch``), after the job's buttons are back on; later responses only change the
    # figures' data.
    import contextlib

    import panel as pn
    from bokeh.models import ColumnDataSource

    tab = tiny_tab()
    layout = tab.__panel__()
    log: list[tuple[str, int | None]] = []  # (what changed, the batch it changed in)
    batches = [0]
    inside: list[int] = []
    batch = tab._batch

    @contextlib.contextmanager
    def recorded_batch():
        batches[0] += 1
        inside.append(batches[0])
        try:
            with batch():
                yield
        finally:
            inside.pop()

    tab._batch = recorded_batch

    def record(what):
        return lambda *_: log.append((what, inside[0] if inside else None))

    for box in layout.select(pn.layout.ListLike):
        box.param.watch(record("children"), "objects")
    tab._table.param.watch(record("table"), "object")
    tab._verdict.param.watch(record("verdict"), "object")
    for button in tab._buttons.values():
        button.param.watch(record("button"), "disabled")
    for boxes in tab._button_groups.values():
        for box in boxes:
            box.param.watch(record("button"), "disabled")

    tab.param.trigger("simulate")
    log.clear()
    tab.param.trigger("compute")
    children = [b for what, b in log if what == "children"]
    assert len(children) == 1 and children[0] is not None  # one layout change, in a batch
    together = {what for what, b in log if b == children[0]}
    assert together == {"children", "table", "verdict"}, log
    buttons = [i for i, (what, _) in enumerate(log) if what == "button"]
    assert buttons and max(buttons) < log.index(("children", children[0]))  # buttons first

    figures = tab._response_figures

    def response_sources():
        models = [f.model for f in figures.curves] + [figures.maps.model]
        return [s for m in models for s in m.select({"type": ColumnDataSource})]

    sources = response_sources()
    before = [dict(s.data) for s in sources]
    tab.seed = 1
    tab.param.trigger("simulate")
    log.clear()
    tab.param.trigger("compute")
    assert [what for what, _ in log if what == "children"] == []  # updated in place
    assert response_sources() == sources
    changed = [
        s
        for s, old in zip(sources, before, strict=True)
        if "response" in s.data
        and not np.array_equal(np.asarray(old["response"]), np.asarray(s.data["response"]))
    ]
    assert changed, "the downstream panels kept the first seed's values"


def test_results_wait_for_their_turn_while_other_sessions_work_waits(monkeypatch):
    # The first results' figures go out with the error table at once only when no other
    # session's work waits for the server's event loop; otherwise they take their turn.
    from gfdt_dash.ui.pacing import PACER

    submitted = []
    monkeypatch.setattr(PACER, "submit", lambda sched, fn, first=False: submitted.append(fn))
    monkeypatch.setattr(PACER, "pending", lambda: 1)  # another session's callback waits
    tab = tiny_tab()
    tab.__panel__()
    tab.param.trigger("simulate")
    for fn in submitted:  # the HoloViews figures and the response figures' preparation
        fn()
    submitted.clear()
    assert tab._response_figures.prepared
    tab.param.trigger("compute")
    assert "gfdt-errors" in tab._table.object  # the table at once
    assert not tab._response_figures.shown and len(submitted) == 1
    submitted[0]()
    assert tab._response_figures.shown


def test_the_lag_and_the_normalization_redraw_the_response_figures_in_place():
    tab = tiny_tab()
    tab.__panel__()
    tab.param.trigger("simulate")
    tab.param.trigger("compute")
    figures = tab._response_figures
    shown = [str(m) for m in tab.responses["estimator"].values]  # no score model: no learned map
    maps = [fig for m, (fig, _, _) in figures.maps._maps.items() if m in shown]
    images = [src for m, (_, src, _) in figures.maps._maps.items() if m in shown]
    assert all(fig.title.text.endswith(", t = 0") for fig in maps)
    first = [np.array(src.data["image"][0]) for src in images]
    tab.lag_index = 5
    lag = tab.responses["lag"].values[5]
    assert all(fig.title.text.endswith(f", t = {lag:.3g}") for fig in maps)
    assert any(
        not np.array_equal(a, src.data["image"][0]) for a, src in zip(first, images, strict=True)
    )
    assert figures.maps.mapper.high == pytest.approx(
        float(np.nanmax(np.abs(tab.responses["response"].isel(lag=5).values)))
    )
    assert all("normalized" in f.model.title.text for f in figures.curves)
    tab.normalized = False
    assert all("raw R(t)" in f.model.title.text for f in figures.curves)
    assert [f.model for f in figures.curves] == [f.model for f in tab._response_figures.curves]


def _plot_extents(doc) -> dict[str, tuple[float, float, float, float, float, float]]:
    """Per plot title (response panels and histogram): its y range and x range end, and the y
    extent and largest x of the data its lines, markers, bands and bars draw."""
    from bokeh.models import GlyphRenderer, Plot

    out = {}
    for plot in doc.select({"type": Plot}):
        lo, hi, x_hi = np.inf, -np.inf, -np.inf
        for r in plot.select({"type": GlyphRenderer}):
            data = r.data_source.data
            for key in ("y", "top"):
                field = getattr(r.glyph, key, None) if hasattr(r.glyph, key) else None
                if isinstance(field, str) and len(data.get(field, [])):
                    values = np.asarray(data[field], dtype=float)
                    lo, hi = min(lo, np.nanmin(values)), max(hi, np.nanmax(values))
            if isinstance(getattr(r.glyph, "x", None), str) and len(data.get(r.glyph.x, [])):
                x_hi = max(x_hi, float(np.nanmax(np.asarray(data[r.glyph.x], dtype=float))))
        title = plot.title.text if plot.title is not None else ""
        out[title] = (plot.y_range.start, plot.y_range.end, plot.x_range.end, lo, hi, x_hi)
    return out


def test_figures_take_the_ranges_of_each_new_result():
    # Every figure re-ranges on each result: the data, then emptied by a new simulation and
    # filled with a result of fewer lags (the HoloViews figures drawn empty first, a tab built
    # before its results: their framewise ranges; with shared_axes=False HoloViews kept the
    # first ranges).
    import holoviews.plotting.bokeh  # noqa: F401  (the app's plotting backend)
    from bokeh.document import Document

    tab = tiny_tab()
    layout = tab.__panel__()
    for figure in tab._figures.values():
        figure.show()  # empty
    doc = Document()
    doc.add_root(layout.get_root(doc))
    for max_lag in (tab.mirror.max_lag, tab.mirror.max_lag / 2):
        tab.mirror.max_lag = max_lag
        tab.param.trigger("simulate")
        tab.param.trigger("compute")
        extents = _plot_extents(doc)
        checked = [t for t in extents if " — " in t or t == "pixel values vs Gaussian"]
        assert len(checked) == 5, list(extents)
        for title in checked:
            start, end, x_end, lo, hi, x_hi = extents[title]
            assert np.isfinite(lo) and hi > lo, (title, extents[title])
            assert start <= lo and end >= hi, (title, extents[title])  # the data are in view
            assert end - start <= 1.5 * (hi - lo), (title, extents[title])  # and fill it
            assert x_hi <= x_end <= x_hi + 0.2 * abs(x_hi) + 1e-9, (title, extents[title])
        maps = [t for t in extents if ", t = " in t]
        assert len(maps) == tab.responses.sizes["estimator"]  # (no score model: no learned map)
        for title in maps:  # the kick's neighbourhood, not the empty map's one pixel
            assert extents[title][2] == pytest.approx(tab.responses["dx"].values.max() + 0.5)


def test_results_from_before_the_layout_is_built_are_shown():
    import panel as pn

    tab = tiny_tab()
    tab.param.trigger("simulate")
    tab.param.trigger("compute")
    layout = tab.__panel__()
    assert len(layout.select(pn.pane.HoloViews)) == 2  # snapshot, histogram
    assert len(layout.select(pn.pane.Bokeh)) == 5  # four downstream panels, the maps


def _card_widgets(tab, layout):
    import panel as pn

    (card,) = [c for c in layout.select(pn.Card) if c.title == "Parameters"]
    return card, {w.label: w for w in card.select(pn.widgets.Widget)}


def test_parameter_widgets_are_built_when_their_card_opens_and_edit_the_config():
    from gfdt_dash.ui.params import label_of

    tab = tiny_tab()
    layout = tab.__panel__()
    card, _ = _card_widgets(tab, layout)
    assert card.collapsed and not card.objects
    card.collapsed = False
    _, widgets = _card_widgets(tab, layout)
    specs = tab.config_cls.field_specs()
    for name in specs:
        assert label_of(name, specs[name]) in widgets, name
    assert widgets["λ — double-well strength (0: OU)"].value == "0"
    assert widgets["κ — diffusivity [length²/time]"].value == "0.0025"
    assert "Job size: 16×16 grid" in _job_size(layout)
    widgets[label_of("n", specs["n"])].value = "32"
    assert tab.config().n == 32 and tab.preset == "custom"
    assert "Job size: 32×32 grid" in _job_size(layout)
    card.collapsed = True
    card.collapsed = False
    assert len(card.objects) == 1  # opened again: the same widgets, not a second set


@pytest.mark.parametrize(
    ("label", "typed", "message"),
    [
        ("ensemble members (members)", "3.7", "3.7 is not a whole number; allowed: 1 … 4096"),
        ("recorded duration (record) [time]", "1e309", "1e309 is not a finite number"),
        ("direct-perturbation experiments (n_experiments)", "5.5", "5.5 is not a whole number"),
        ("n — grid points per side (even)", "1000", "1000 is out of range; allowed: 4 … 256"),
        ("Δt — time step [time]", "0", "0 is out of range; allowed: more than 0 … 1"),
        ("Seed", "x", "'x' is not a number"),
    ],
)
def test_typed_numbers_are_never_misread_and_errors_show_inline_until_fixed(label, typed, message):
    import panel as pn

    tab = tiny_tab()
    layout = tab.__panel__()
    card, _ = _card_widgets(tab, layout)
    card.collapsed = False
    widgets = {w.label: w for w in layout.select(pn.widgets.TextInput)}
    before = tab.config()
    box = widgets[label]
    good = box.value
    box.value = typed
    assert tab.config() == before and tab.seed == 0  # nothing was set
    errors = [p for p in layout.select(pn.pane.HTML) if "gfdt-input-error" in p.css_classes]
    shown = [p.object for p in errors if p.visible]
    assert len(shown) == 1 and shown[0].startswith(f"⚠ {label}: {message}"), shown
    assert tab.button_disabled("run_all")  # Run all is off, and says why
    assert f"Fix the inputs marked in red first: {label}" in _job_size(layout, prefix="⚠")
    tab.run_all = True
    assert tab.runner.job == ""
    box.value = good  # fixed: the message goes, Run all is back
    assert not any(p.visible for p in errors)
    assert not tab.button_disabled("run_all")
    assert "Job size" in _job_size(layout)


def test_a_preset_this_server_refuses_disables_run_all_with_the_reason_in_words(monkeypatch):
    monkeypatch.setenv("GFDT_DASH_MAX_MEMBER_STEPS", "100000")
    tab = SystemTab("ou", sync=True)
    layout = tab.__panel__()
    assert tab.button_disabled("run_all")
    text = _job_size(layout, prefix="⚠")
    assert "Too big for this server" in text and "Use fewer members" in text, text
    assert "×" not in text.split("server:")[1].split("(")[0]  # words, not a formula
    tab.mirror.param.update(record=40.0, spinup=10.0)
    assert not tab.button_disabled("run_all")


def _job_size(layout, prefix: str = "Job size") -> str:
    import panel as pn

    return next(
        p.object for p in layout.select(pn.pane.Markdown) if str(p.object).startswith(prefix)
    )


def test_queued_jobs_see_their_position_move_up_as_jobs_start():
    from gfdt_dash.ui.jobs import POOL_SIZE

    releases = [threading.Event() for _ in range(POOL_SIZE)]

    def blocker(event):
        return lambda callback, should_stop: event.wait(60)

    busy = [JobRunner(lambda fn: fn()) for _ in range(POOL_SIZE)]
    queued = [JobRunner(lambda fn: fn()) for _ in range(2)]
    hold = threading.Event()  # keeps the first queued job running once it starts
    try:
        for runner, event in zip(busy, releases, strict=True):
            assert runner.submit("busy", blocker(event))
        # the pool's threads start lazily: wait until every busy job holds its thread
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while any(r.stage == "queued" for r in busy) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.queue_position for r in busy] == [0] * POOL_SIZE
        assert queued[0].submit("queued", blocker(hold))
        assert queued[1].submit("queued", lambda cb, stop: "ran")
        assert [r.queue_position for r in queued] == [1, 2]
        releases[0].set()  # one pool thread frees up: the first queued job starts
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while queued[0].stage == "queued" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued[0].queue_position == 0
        assert queued[1].queue_position == 1  # moved up, told without polling
        for event in [*releases, hold]:
            event.set()
        queued[1].wait(timeout=60)
        assert queued[1].stage == "done" and queued[1].queue_position == 0
    finally:
        for event in [*releases, hold]:
            event.set()


def test_cancelling_a_queued_job_ends_it_without_waiting_for_the_pool():
    from gfdt_dash.ui.jobs import POOL_SIZE

    release = threading.Event()
    busy = [JobRunner(lambda fn: fn()) for _ in range(POOL_SIZE)]
    queued, behind = JobRunner(lambda fn: fn()), JobRunner(lambda fn: fn())
    ran = []
    cancelled = []
    try:
        for runner in busy:
            assert runner.submit("busy", lambda cb, stop: release.wait(60))
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while any(r.stage == "queued" for r in busy) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued.submit(
            "queued", lambda cb, stop: ran.append(1), on_cancel=lambda: cancelled.append(1)
        )
        assert behind.submit("behind", lambda cb, stop: "ran")
        assert behind.queue_position == 2
        queued.cancel()
        # ended while every pool thread is still busy
        assert not queued.running and queued.stage == "cancelled" and cancelled == [1]
        assert behind.queue_position == 1  # moved up
        assert queued.submit("again", lambda cb, stop: "second")  # the tab is usable at once
        release.set()
        queued.wait(timeout=60)
        behind.wait(timeout=60)
        assert ran == [] and queued.stage == "done" and behind.stage == "done"
    finally:
        release.set()


def test_changed_parameters_mark_the_results_out_of_date_until_recomputed():
    tab = tiny_tab()
    layout = tab.__panel__()
    tab.simulate = True
    tab.compute = True
    assert tab.stale_reason() == "" and tab._stale.object == ""
    assert tab._results.styles["opacity"] == "1"
    tab.mirror.kappa = 0.005
    tab.seed = 4
    assert tab._stale.visible
    height = tab._stale.height  # fixed: the page keeps its layout while the mark comes and goes
    assert "κ 0.0025 → 0.005" in tab._stale.object and "seed 0 → 4" in tab._stale.object
    assert tab._results.styles["opacity"] != "1"
    tab.simulate = True  # a new simulation: the old responses are gone, the mark stays off
    assert tab._stale.object == "" and tab.responses is None
    tab.compute = True
    assert tab._stale.object == "" and tab.responses is not None
    assert tab._stale.visible and tab._stale.height == height
    tab.preset = "classroom"  # a preset is a change too
    assert "record 40 → 400" in tab._stale.object
    assert layout is tab.__panel__()


def test_run_all_never_pairs_a_model_with_data_of_other_parameters():
    from gfdt_dash import score

    shipped = score.load_checkpoint(score.shipped_model_path("allen_cahn"), device="cpu")
    config = get_config("allen_cahn", "classroom")
    assert model_differences(shipped, config) == ""
    assert model_differences(shipped, config.replace(record=40.0)) == ""  # sampling
    assert model_differences(shipped, config.replace(lam=500.0)) == ("λ = 1000 (now 500)")
    tab = tiny_tab(train_steps=10)
    tab.run_all = True
    assert tab.runner.stage == "done", tab.status
    assert tab.model_info["in use"] == "loaded: shipped model"  # trained for these physics
    tab.mirror.kappa = 0.005
    assert "Trained for other parameters" in tab._model_pane_text()
    tab.run_all = True
    assert tab.runner.stage == "done", tab.status
    assert tab.model_info["in use"] == "trained in this session"
    assert model_differences(tab.model, tab.config()) == ""
    assert "Trained for other parameters" not in tab._model_pane_text()
    assert "⚠" not in tab.verdict


def test_a_verdict_explains_the_results_from_the_numbers():
    import pandas as pd

    table = pd.DataFrame(
        {
            "estimator": ["perturbation", "learned_score", "exact_score", "gaussian"],
            "error": [0.0, 0.03, 0.02, 0.45],
        }
    )
    bimodal = shape_statistics(np.r_[np.full(500, -1.0), np.full(500, 1.0)])
    text = verdict("allen_cahn", table, bimodal)
    assert "Gaussian error 0.45 vs learned score 0.03" in text and "bimodal" in text
    gaussian = shape_statistics(np.random.default_rng(0).normal(size=100_000))
    same = table.assign(error=[0.0, 0.05, 0.04, 0.05])
    assert "close to Gaussian" in verdict("ou", same, gaussian)
    warned = verdict("allen_cahn", table, bimodal, "λ = 1000 (now 500)")
    assert warned.startswith("⚠ The learned score comes from a model trained for λ = 1000")


def test_a_job_over_a_minute_shows_its_estimate_and_starts_only_when_asked_again(monkeypatch):
    from gfdt_dash.ui.app import create_app

    page = create_app()  # threaded runners: the long job can be cancelled once started
    tab = page.views["ou"]
    tab.mirror.kappa = 0.003  # the shipped model does not fit: Run all would train one
    tab.train_steps = 6000  # long enough training that the job takes over a minute
    estimate = tab.estimate_s("run all", tab.config())
    assert estimate > ASK_ABOVE_S
    assert "Run all ≈ " in tab.job_summary()
    tab.run_all = True
    assert not tab.runner.running and tab.runner.job == ""  # asked, not started
    assert re.search(r"Run all will take about \d+ (s|min) .*Press Run all again", tab.status)
    tab.seed = 7  # other settings: asked again
    tab.run_all = True
    assert not tab.runner.running
    tab.run_all = True  # the same settings again: it starts
    assert tab.runner.running
    page.close_session()  # cancels it
    tab.runner.wait(timeout=120)  # a hang guard: training would run minutes
    assert tab.model is None


def _layout_changes(tab, layout) -> list[str]:
    """A log of what makes the browser lay the whole page out again: a layout's children, a
    pane's or widget's ``visible`` or size, a button's own ``disabled`` flag (a button group's
    flag is not one: the browser passes it on without drawing anything again)."""
    import panel as pn

    log: list[str] = []
    for obj in layout.select(pn.viewable.Viewable):
        name = f"{type(obj).__name__}#{id(obj)}"
        watched = ["visible", "height", "width", "sizing_mode", "margin"]
        if isinstance(obj, pn.layout.ListLike):
            watched.append("objects")
        if isinstance(obj, pn.widgets.Button):
            watched.append("disabled")
        obj.param.watch(lambda e, n=name: log.append(f"{n}.{e.name}"), watched)
    return log


def test_progress_edits_and_jobs_change_no_layout_once_results_are_shown():
    # Every change of a layout's children, of a pane's visibility or size and of a button's own
    # disabled flag makes each browser lay the whole page out again (seconds of CPU for twenty
    # pages with figures): progress reports, edits that mark the results out of date and the
    # buttons of a job that starts and ends make none of them once the figures are in.
    from gfdt_dash.progress import Progress

    tab = tiny_tab()
    layout = tab.__panel__()
    tab.simulate = True
    tab.compute = True  # results shown; the first job has cleared the buttons' own flags
    log = _layout_changes(tab, layout)
    for done in range(4):
        tab.runner.param.update(running=True, stage="simulate", fraction=done / 4)
        tab._on_progress(
            Progress("simulate", done, 4, 1.0, eta_s=3.0 - done, info={"snapshot": None})
        )
        tab._update_buttons()
    tab.runner.param.update(running=True, queue_position=3)
    tab.runner.param.update(running=False, queue_position=0, stage="done", fraction=1.0)
    tab._update_buttons()
    tab.preset = "paper"  # out of date: the mark appears in its own fixed line
    assert "Out of date" in tab._stale.object
    tab.preset = "classroom"
    tab.seed = 3
    tab.seed = 0
    tab.simulate = True  # a whole job: its buttons are switched through their groups
    assert log == []
    assert not tab.button_disabled("run_all") and tab.button_disabled("cancel")
