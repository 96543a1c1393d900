"""xarray datasets at the edges: atomic netCDF writes and validated loading of field data."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["FIELD_DIMS", "as_field_array", "atomic_write_bytes", "open_dataset", "write_netcdf"]

FIELD_DIMS = ("member", "time", "y", "x")
_ENGINE = "h5netcdf"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename.

    The temporary file is created like any other (so the process umask sets its permissions).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _netcdf_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """netCDF attributes must be strings or numbers: encode the rest as JSON."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, str | int | float | np.integer | np.floating):
            out[k] = v
        else:
            out[k] = json.dumps(v)
    return out


def write_netcdf(ds: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> Path:
    """Write a dataset to netCDF atomically (a crash never leaves a half-written file)."""
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    ds = ds.copy()
    ds.attrs = _netcdf_attrs(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = _netcdf_attrs(ds[name].attrs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        ds.to_netcdf(tmp, engine=_ENGINE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Load a netCDF file fully into memory (the file is closed on return)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    try:
        with xr.open_dataset(path, engine=_ENGINE) as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise ValueError(f"path: {str(path)!r} is not a readable netCDF file ({exc})") from exc


def as_field_array(fields: Any, name: str = "fields") -> np.ndarray:
    """Validate user field data shaped ``(member, time, y, x)`` and return a float array.

    Accepts a numpy array, a torch tensor, an ``xarray.DataArray`` with dims
    ``(member, time, y, x)`` (transposed as needed), or a Dataset with a ``field`` variable.
    The two spatial sizes must be equal and even; values must be finite.
    """
    if isinstance(fields, xr.Dataset):
        if "field" not in fields:
            raise ValueError(
                f"{name}: dataset has no 'field' variable; found {list(fields.data_vars)}"
            )
        fields = fields["field"]
    if isinstance(fields, xr.DataArray):
        missing = set(FIELD_DIMS) - set(fields.dims)
        if missing or fields.ndim != 4:
            raise ValueError(f"{name}: dims must be {FIELD_DIMS}, got {fields.dims}")
        fields = fields.transpose(*FIELD_DIMS).values
    if hasattr(fields, "detach"):
        fields = fields.detach().cpu().numpy()
    arr = np.asarray(fields)
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected shape (member, time, y, x), got shape {arr.shape}")
    if arr.shape[2] != arr.shape[3] or arr.shape[2] % 2 or arr.shape[2] < 4:
        raise ValueError(
            f"{name}: the grid must be square with an even size >= 4, got "
            f"{arr.shape[2]}×{arr.shape[3]}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains non-finite values")
    return arr
