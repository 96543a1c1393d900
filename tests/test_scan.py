"""Parameter scans on a real two-worker Dask LocalCluster, resumable cell by cell."""

import pytest
import xarray as xr

from gfdt_dash.data import open_dataset, write_netcdf
from gfdt_dash.scan import ScanSpec, cell_id, collect, run_scan


def test_scan_runs_on_two_workers_and_resumes(tmp_path, tiny_scan_spec):
    spec = ScanSpec.from_dict(tiny_scan_spec())
    seen = []
    ds = run_scan(spec, tmp_path, n_workers=2, on_cell=lambda d, t, c: seen.append((d, t)))
    assert sorted(seen) == [(1, 2), (2, 2)]
    assert ds.sizes["cell"] == 2
    assert sorted(ds["U"].values.tolist()) == [0.05, 0.1]
    assert ds["curve"].dims == ("cell", "estimator", "lag", "dx")
    assert float(ds["error"].sel(estimator="gaussian").max()) < 0.2
    on_disk = open_dataset(tmp_path / "scan.nc")
    assert on_disk.sizes["cell"] == 2
    # A finished cell survives anything that happens later: remove one, rerun, only it is redone.
    missing = tmp_path / "cells" / f"{cell_id(spec, spec.cells()[0])}.nc"
    kept = tmp_path / "cells" / f"{cell_id(spec, spec.cells()[1])}.nc"
    stamp = kept.stat().st_mtime_ns
    missing.unlink()
    seen.clear()
    run_scan(spec, tmp_path, n_workers=1, on_cell=lambda d, t, c: seen.append(c))
    assert seen == [spec.cells()[0]]
    assert kept.stat().st_mtime_ns == stamp
    # Cells written before the methods' dimension was named `estimator` collect with new ones.
    current = open_dataset(tmp_path / "scan.nc")
    old = xr.load_dataset(kept, engine="h5netcdf").rename({"estimator": "method"})
    write_netcdf(old, kept)
    assert "method" in xr.load_dataset(kept, engine="h5netcdf").dims
    mixed = collect(spec, tmp_path / "cells")
    assert mixed["curve"].dims == ("cell", "estimator", "lag", "dx")
    xr.testing.assert_identical(mixed["error"], current["error"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {}}, "^params:"),
        ({"params": {"U": 0.1}}, "^params.U:"),
        ({"params": {"U": [100.0]}}, "^U:"),
        ({"seeds": [0.5]}, "^seeds:"),
        ({"model": "bogus"}, "^model:"),
        ({"colour": 1}, "^colour: not a scan field"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(change, message, tiny_scan_spec):
    with pytest.raises(ValueError, match=message):
        ScanSpec.from_dict({**tiny_scan_spec(), **change})


def test_the_shipped_example_spec_is_valid():
    from pathlib import Path

    spec = ScanSpec.from_toml(
        Path(__file__).resolve().parents[1] / "examples" / "allen_cahn_lam.toml"
    )
    assert len(spec.cells()) == 6
    assert {c["lam"] for c in spec.cells()} == {250.0, 500.0, 1000.0}


def test_a_stopped_scan_cancels_its_cells_even_on_an_external_scheduler(tmp_path, tiny_scan_spec):
    from dask.distributed import Client, LocalCluster

    from gfdt_dash.progress import Cancelled

    raw = tiny_scan_spec()
    # 32×32, 256 members, 10⁵ time units of spin-up: many minutes per cell; only a working stop
    # frees the worker within the hang guard below
    raw["fixed"].update(n=32, members=256, spinup=1e5)
    spec = ScanSpec.from_dict(raw)
    checks = []

    def should_stop():
        checks.append(1)
        return len(checks) > 4  # after a few polls, with a cell running on the one worker

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with pytest.raises(Cancelled, match="0 of 2 cells are finished"):
            run_scan(spec, tmp_path, scheduler=cluster.scheduler_address, should_stop=should_stop)
        # the running cell stopped: the cluster's only thread takes new work again
        with Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result(timeout=120) == 3  # a hang guard
    assert not list((tmp_path / "cells").glob("*.nc"))
