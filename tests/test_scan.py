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
