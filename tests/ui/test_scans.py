"""The Scans tab on a real tiny scan written by ``gfdt_dash.scan.run_scan`` into the store."""

import holoviews.plotting.bokeh  # noqa: F401  (options need a plotting backend, as in the app)
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gfdt_dash.data import write_netcdf
from gfdt_dash.scan import ScanSpec, run_scan
from gfdt_dash.ui import store
from gfdt_dash.ui.scans import ScansView, scan_plot, scan_summary
from gfdt_dash.ui.views import DRAW_ORDER


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory, tiny_scan_spec):
    """A finished 2 values × 2 seeds scan (one Dask worker, a few seconds)."""
    out = tmp_path_factory.mktemp("scan")
    run_scan(ScanSpec.from_dict(tiny_scan_spec(seeds=(0, 1))), out, n_workers=1)
    return out


def _install(scan_dir, name):
    path = store.scan_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((scan_dir / "scan.nc").read_bytes())
    return path


def test_the_view_lists_store_scans_and_summarises_error_against_the_parameter(scan_dir):
    _install(scan_dir, "ou-U")
    view = ScansView()
    assert view.param.scan.objects == ["ou-U"]
    assert view.scan == "ou-U"
    assert view.parameter == "U"
    frame = view.summary
    assert set(frame["estimator"]) == {"gaussian", "analytic"}
    assert sorted(frame["value"].unique()) == [0.05, 0.1]
    assert (frame["n"] == 2).all()  # two seeds per value
    ds = view.dataset
    gauss = frame[(frame["estimator"] == "gaussian") & (frame["value"] == 0.1)].iloc[0]
    cells = ds["error"].sel(estimator="gaussian").values[ds["U"].values == 0.1]
    assert gauss["mean"] == pytest.approx(cells.mean())
    assert gauss["lo"] == pytest.approx(cells.min()) and gauss["hi"] == pytest.approx(cells.max())
    assert gauss["mean"] < 0.2  # the Gaussian estimate is exact for a linear system
    analytic = frame[frame["estimator"] == "analytic"]
    assert (analytic["mean"] == 0.0).all()  # the reference
    # the plotted data is the summary; the band follows the choice
    overlay = scan_plot({"summary": frame, "parameter": "U"}, "±1 stderr")
    area = overlay.get(3 * DRAW_ORDER.index("gaussian"))  # the Gaussian slot's band
    np.testing.assert_allclose(
        area.dimension_values("hi"),
        frame[frame["estimator"] == "gaussian"].sort_values("value").eval("mean + stderr"),
    )
    view.variable = "stein_error"  # NaN for the non-score methods: no rows, no crash
    assert view.summary.empty


def test_a_scan_written_with_the_older_method_dimension_is_shown(scan_dir):
    path = _install(scan_dir, "old-layout")
    new = xr.load_dataset(path, engine="h5netcdf")
    write_netcdf(new.rename({"estimator": "method"}), path)
    view = ScansView()
    view.scan = "old-layout"
    assert set(view.summary["estimator"]) == {"gaussian", "analytic"}
    pd.testing.assert_frame_equal(view.summary, scan_summary(new, "U"))
    assert "methods gaussian, analytic" in view.status


def test_an_empty_store_explains_how_to_make_a_scan():
    view = ScansView()
    assert view.scan is None
    assert "No finished scans" in view.status
    assert view.summary.empty


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "a/../../b", "/abs/path"])
def test_scan_names_never_leave_the_store(name, store_dir):
    try:
        path = store.scan_path(name)
    except ValueError:
        return
    assert path.parent.parent == (store_dir / "scans").resolve()


def test_unsafe_folders_in_the_store_are_not_listed(scan_dir, store_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "scan.nc").write_bytes((scan_dir / "scan.nc").read_bytes())
    (store_dir / "scans").mkdir(parents=True)
    (store_dir / "scans" / "link").symlink_to(outside)
    (store_dir / "scans" / ".hidden").mkdir()
    (store_dir / "scans" / ".hidden" / "scan.nc").write_bytes(b"x")
    assert store.saved_scans() == []


def test_a_broken_scan_file_is_reported_not_raised(store_dir):
    path = store.scan_path("broken")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not netcdf")
    view = ScansView()
    assert view.scan == "broken"
    assert "cannot be shown" in view.status
    assert view.summary.empty


def test_summary_refuses_an_unscanned_parameter(scan_dir):
    from gfdt_dash.data import open_dataset

    ds = open_dataset(scan_dir / "scan.nc")
    with pytest.raises(ValueError, match="^parameter: 'lam' was not scanned"):
        scan_summary(ds, "lam")


def _tiny_form(view, name="ou-kappa-ui", count=2):
    form = view.form
    form.system = "ou"
    form.param.update(start=0.002, stop=0.004, count=count, seeds="0", scan_name=name)
    form.methods = ["gaussian"]  # direct perturbation is added: the reference
    return form


def test_a_scan_started_from_the_tab_lands_in_the_store_and_is_shown():
    view = ScansView(sync=True)
    form = _tiny_form(view)
    cells = []
    view.runner.param.watch(lambda e: cells.append(e.new), "fraction")
    form.run_scan = True
    assert view.runner.stage == "done", form.status
    assert form.status.startswith("Scan **ou-kappa-ui** finished: 2 cells"), form.status
    assert view.scan == "ou-kappa-ui" and view.parameter == "kappa"
    assert set(view.summary["estimator"]) == {"gaussian", "perturbation"}
    assert sorted(view.summary["value"].unique()) == [0.002, 0.004]
    assert cells and cells[-1] == 1.0  # progress per finished cell
    form.run_scan = True  # the same name again: refused, the first scan is kept
    assert "already exists" in form.status
    assert len(view.dataset["cell"]) == 2


def test_a_scan_beyond_the_session_limits_is_refused_as_a_whole(monkeypatch):
    monkeypatch.setenv("GFDT_DASH_MAX_MEMBER_STEPS", "400000")  # one classroom OU cell fits
    view = ScansView(sync=True)
    form = _tiny_form(view, count=5)
    form.run_scan = True
    assert view.runner.job == ""
    assert "Too big for this server: the 5 cells need" in form.status, form.status
    assert not store.scan_path("ou-kappa-ui").parent.exists()


def test_cancelling_a_scan_stops_it_and_keeps_its_finished_cells():
    view = ScansView(sync=True)
    form = _tiny_form(view, name="ou-cancel", count=4)

    def cancel_after_the_first_cell(event):
        if event.new > 0:
            form.cancel = True

    view.runner.param.watch(cancel_after_the_first_cell, "fraction")
    form.run_scan = True
    assert view.runner.stage == "cancelled", form.status
    assert "cancelled" in form.status
    ds = view.dataset
    assert ds is not None and 1 <= ds.sizes["cell"] < 4
