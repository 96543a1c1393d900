"""Atomic writes: nothing half-written, ordinary permissions, no temporary files left."""

import os

import pytest
import xarray as xr

from gfdt_dash.data import atomic_write_bytes, open_dataset, write_netcdf


def test_atomic_write_replaces_whole_files_with_umask_permissions(tmp_path):
    path = atomic_write_bytes(tmp_path / "sub" / "a.json", b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failed_netcdf_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_netcdf(xr.Dataset({"v": ("x", [1.0, 2.0])}), tmp_path / "d.nc")
    bad = xr.Dataset({"v": ("x", [object(), object()])})  # not encodable
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the engine raises
        write_netcdf(bad, path)
    assert open_dataset(path)["v"].values.tolist() == [1.0, 2.0]
    assert [p.name for p in tmp_path.iterdir()] == ["d.nc"]
