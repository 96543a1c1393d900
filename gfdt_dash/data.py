"""xarray datasets at the edges: atomic writes that never destroy an input, and validated loading
of field data and of the system config a netCDF file carries.

Every writer goes through :func:`atomic_write`: the destination is checked first
(:func:`check_destination`: a regular file or nothing, in a writable folder, not one of the job's
inputs), the data go to a hidden temporary file ``.<name>.<host>-<pid>.<random>.tmp`` in the
same folder and are renamed over the destination, so a crash never leaves a half-written file.
Temporary files of the same destination left by a killed writer are removed on the next write
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "FIELD_DIMS",
    "as_field_array",
    "atomic_write",
    "atomic_write_bytes",
    "check_destination",
    "open_dataset",
    "read_config",
    "remove_stale_temps",
    "write_netcdf",
]

FIELD_DIMS = ("member", "time", "y", "x")
_ENGINE = "h5netcdf"
# A temporary file is stale when its writer is gone: written on this machine (host tag) by a
# process that no longer runs, or older than _STALE_S whatever its name says (a writer on another
# machine of a shared filesystem, or a reused pid).
_STALE_S = 6 * 3600.0
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TMP_SUFFIX_LEN = len(".abcdef-0000000.0123456789ab.tmp") + 1  # pid up to 7 digits, leading dot


def _temp_name(path: Path, pid: int | None = None) -> Path:
    """``.<name>.<host tag>-<pid>.<12 random hex>.tmp`` next to ``path``."""
    pid = os.getpid() if pid is None else pid
    return path.with_name(f".{path.name}.{_HOST}-{pid}.{uuid.uuid4().hex[:12]}.tmp")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_destination(
    path: str | os.PathLike,
    *,
    inputs: Iterable[tuple[str, str | os.PathLike | None]] = (),
    name: str = "path",
) -> Path:
    """Check that ``path`` can be written atomically without destroying anything; return it.

    ``ValueError`` naming ``name`` (e.g. ``"--out"``) when the path is empty, is a directory or
    any other non-regular file (a device, a fifo, a socket), is the same file as one of
    ``inputs`` (``(label, path)`` pairs; compared by device and inode, so symlinks and hard
    links count), lies under something that is not a folder, has a name too long to leave room
    for the temporary name, or is in a folder where a file cannot be created (tried for real
    with an empty temporary file, removed at once). Missing folders are created. Meant to be
    called before the work that produces the data.
    """
    if path is None or str(path) == "":
        raise ValueError(f"{name}: an output path is required")
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name}: expected a file path, got {type(path).__name__}")
    text = os.fspath(path)
    path = Path(path)
    if path.name in ("", ".", "..") or str(text).endswith(("/", os.sep)):
        raise ValueError(f"{name}: {str(text)!r} names a folder, not a file")
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise ValueError(f"{name}: cannot examine {str(path)!r} ({exc.strerror})") from exc
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{name}: {str(path)!r} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(
                f"{name}: {str(path)!r} exists and is not a regular file (a device, fifo or "
                "socket); refusing to replace it"
            )
        for label, other in inputs:
            if other is None:
                continue
            try:
                ost = os.stat(other)
            except OSError:
                continue
            if (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
                raise ValueError(
                    f"{name}: {str(path)!r} is the same file as the input {label} "
                    f"{str(other)!r}; writing would destroy the input — choose another {name}"
                )
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise ValueError(f"{name}: {str(folder)!r} is not a folder, cannot write {str(path)!r}")
    limit = _name_max(folder)
    if len(path.name.encode()) + _TMP_SUFFIX_LEN > limit:
        raise ValueError(
            f"{name}: the file name is {len(path.name.encode())} bytes; at most "
            f"{limit - _TMP_SUFFIX_LEN} leave room for the temporary file of an atomic write"
        )
    # Permission bits say little (root, read-only mounts, /proc): create the folder and a
    # temporary file for real.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(path)
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise ValueError(
            f"{name}: cannot write in the folder of {str(path)!r} "
            f"({exc.strerror or exc.__class__.__name__})"
        ) from None
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temps(path: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files an interrupted :func:`atomic_write` left for ``path``.

    Only files named like our own temporaries of exactly this destination
    (``.<name>.<host tag>-<pid>.<12 hex>.tmp``) are considered, and only stale ones: written on
    this machine by a process that is no longer running, or older than six hours (a writer on
    another machine sharing the folder is left alone until then). Returns the removed paths.
    """
    path = Path(path)
    pattern = re.compile(
        re.escape(f".{path.name}.") + r"([0-9a-f]{6})-(\d+)\.[0-9a-f]{12}\.tmp"
    )
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for tmp in candidates:
        m = pattern.fullmatch(tmp.name)
        if m is None:
            continue
        try:
            st = tmp.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        ours_and_dead = m.group(1) == _HOST and not _pid_alive(int(m.group(2)))
        if ours_and_dead or now - st.st_mtime > _STALE_S:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], *, name: str = "path"
) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file in the same folder, which
    is then renamed over ``path``. The destination is checked first (:func:`check_destination`,
    which creates missing folders), stale temporaries of the same destination are removed, and the
    temporary file is removed again if anything fails. Files get the process umask's permissions.
    """
    path = check_destination(path, name=name)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    try:
        write(tmp)
        if path.exists() and not path.is_file():  # appeared while we were writing
            raise ValueError(f"{name}: {str(path)!r} is no longer a regular file; not replaced")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"{name}: writing {str(path)!r} failed ({exc.strerror or exc}); nothing was replaced"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, name: str = "path") -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`), synced to disk."""

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write, name=name)


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


def write_netcdf(
    ds: xr.Dataset | xr.DataArray, path: str | os.PathLike, *, name: str = "path"
) -> Path:
    """Write a dataset to netCDF atomically (a crash never leaves a half-written file)."""
    if not isinstance(ds, xr.Dataset | xr.DataArray):
        raise TypeError(f"ds: expected an xarray Dataset or DataArray, got {type(ds).__name__}")
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    ds = ds.copy()
    ds.attrs = _netcdf_attrs(ds.attrs)
    for var in ds.variables:
        ds[var].attrs = _netcdf_attrs(ds[var].attrs)
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=_ENGINE), name=name)


# Files written before the methods' dimension of combined responses was named ``estimator``
# (``method`` is an argument of ``Dataset.sel``) call it ``method``: the pipeline's cache, scan
# cells and ``scan.nc``, ``gfdt-dash response`` outputs, single results (attr ``method``).
_LEGACY_ATTRS = {"methods": "estimators", "method_attrs": "estimator_attrs"}


def _current_layout(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the names of an older result layout replaced by today's (see above)."""
    if "method" in ds.dims and "estimator" not in ds.dims:
        ds = ds.rename({"method": "estimator"})
    attrs = dict(ds.attrs)
    for old, new in _LEGACY_ATTRS.items():
        if old in attrs and new not in attrs:
            attrs[new] = attrs.pop(old)
    if "response" in ds and "method" in attrs and "estimator" not in attrs:
        attrs["estimator"] = attrs.pop("method")
    ds.attrs = attrs
    return ds


def open_dataset(path: str | os.PathLike, *, name: str = "path") -> xr.Dataset:
    """Load a netCDF file fully into memory (the file is closed on return).

    Every reader of the package's own files goes through here, so results written in an older
    layout (a ``method`` dimension, now ``estimator``) are returned in today's.
    """
    if not isinstance(path, str | os.PathLike) or not str(os.fspath(path)).strip():
        raise ValueError(f"{name}: expected a netCDF file path, got {path!r:.60}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a directory, not a netCDF file")
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{name}: {str(path)!r} is not a regular file")
        raise FileNotFoundError(f"{name}: no such file {str(path)!r}")
    try:
        with xr.open_dataset(path, engine=_ENGINE) as ds:
            loaded = ds.load()
    except PermissionError as exc:
        raise ValueError(f"{name}: {str(path)!r} is not readable (permission denied)") from exc
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{name}: {str(path)!r} is not a readable netCDF file ({exc})") from exc
    return _current_layout(loaded)


def read_config(ds: xr.Dataset, source: str = "data") -> Any:
    """The system config stored in ``ds.attrs["config"]`` (``None`` when there is none).

    Every part is validated before use: the attribute must be a JSON object (not a list, a
    number, ``null``, nor nested beyond what a config can be), its fields must make a valid
    config, and its grid must match the data's ``x``/``y`` sizes. ``ValueError`` names
    ``source`` (e.g. the file) and the problem.
    """
    from gfdt_dash.systems import config_from_dict

    if "config" not in ds.attrs:
        return None
    text = ds.attrs["config"]
    where = f"{source}: the 'config' attribute"
    if not isinstance(text, str):
        raise ValueError(f"{where} must be a JSON text, got {type(text).__name__}")
    try:
        raw = json.loads(text)
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be a system config") from None
    except ValueError as exc:
        raise ValueError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(raw).__name__}")
    try:
        config = config_from_dict(raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{where} is not a valid system config: {exc}") from None
    for var in ("field", "snapshot"):
        if var in ds and {"x", "y"} <= set(ds[var].dims):
            sizes = (ds[var].sizes["y"], ds[var].sizes["x"])
            if sizes != (config.n, config.n):
                raise ValueError(
                    f"{where} says n={config.n}, but the {var!r} variable is on a "
                    f"{sizes[0]}×{sizes[1]} grid"
                )
    return config


def as_field_array(fields: Any, name: str = "fields") -> np.ndarray:
    """Validate user field data shaped ``(member, time, y, x)`` and return a float array.

    Accepts an ``xarray.DataArray`` with dims ``(member, time, y, x)`` in any order (transposed
    as needed), a Dataset with a ``field`` variable, or a bare numpy array / torch tensor whose
    axes are taken to be ``(member, time, y, x)``. A bare array whose axis order cannot be told
    from its shape (all four axes of one length) is refused: give it dims by wrapping it in a
    DataArray. The two spatial sizes must be equal and even; values must be real floating-point
    numbers, finite and not all equal.
    """
    bare = False
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
    else:
        bare = True
    if hasattr(fields, "detach"):
        fields = fields.detach().cpu().numpy()
    try:
        arr = np.asarray(fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not an array of numbers ({exc})") from None
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected shape (member, time, y, x), got shape {arr.shape}")
    if bare and arr.shape[0] == arr.shape[1] == arr.shape[2] == arr.shape[3] and arr.shape[0] > 1:
        raise ValueError(
            f"{name}: a bare array of shape {arr.shape} has an ambiguous axis order; pass "
            "xarray.DataArray(values, dims=('member', 'time', 'y', 'x')) (in your array's order)"
        )
    if arr.shape[2] != arr.shape[3] or arr.shape[2] % 2 or arr.shape[2] < 4:
        raise ValueError(
            f"{name}: the grid must be square with an even size >= 4, got "
            f"{arr.shape[2]}×{arr.shape[3]}"
        )
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name}: values are {arr.dtype}; fields must be floating-point (convert "
            "deliberately, e.g. values.astype(float), if these integers are a physical field)"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: values are complex; fields must be real")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: values must be floating-point numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name}: the array is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains non-finite values")
    if arr.min() == arr.max():
        raise ValueError(
            f"{name}: every value equals {arr.flat[0]:g}; constant data have no fluctuations "
            "to correlate"
        )
    return arr
