"""Comparing methods: concatenation along ``estimator`` and the error table, against the
reference the methods' table names (the analytic response where the system has one, else the direct
perturbation):

    err(m) = ‖R_m − R_ref‖₂ / ‖R_ref‖₂

over lags ``0 … T`` and the pixels ``dx = 0 … n_down−1`` downstream of the kick (``dy = 0``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from gfdt_dash.response.methods import ESTIMATORS, reference_method

__all__ = ["combine", "error_table"]

_PER_ESTIMATOR_ATTRS = ("stein_error", "n_excluded_modes")


def combine(results: list[xr.Dataset]) -> xr.Dataset:
    """Concatenate results of different methods along a new ``estimator`` dimension.

    (Not ``method``: that is an argument of ``Dataset.sel``, so ``sel(method="gaussian")``
    returned every method; ``res.sel(estimator="gaussian")`` is the Gaussian result alone.)

    Lags are matched on their values (rounded to 1e-9) and only the common ones are kept.
    Variables missing from a method (``response_raw`` of non-score methods) are NaN there.
    Per-method scalars (``stein_error``, ``n_excluded_modes``) become ``(estimator,)`` variables
    (NaN where absent); every input's attrs are kept as JSON in ``attrs["estimator_attrs"]``.
    """
    if isinstance(results, xr.Dataset | str | bytes) or not hasattr(results, "__iter__"):
        raise TypeError(
            f"results: expected a list of response datasets, got {type(results).__name__}"
        )
    results = list(results)
    if not results:
        raise ValueError("results: need at least one result to combine")
    for i, r in enumerate(results):
        if not isinstance(r, xr.Dataset) or not {"response", "lag", "dx"} <= set(r.variables):
            raise TypeError(
                f"results: item {i} is not a response dataset (lag, dy, dx; response), got "
                f"{type(r).__name__}"
            )
    names = [r.attrs.get("estimator") for r in results]
    for m in names:
        if m not in ESTIMATORS:
            raise ValueError(f"results: unknown estimator {m!r}; allowed: {', '.join(ESTIMATORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"results: duplicate estimators {names}")
    sizes = {r.sizes["dx"] for r in results}
    if len(sizes) != 1:
        raise ValueError(f"results: grids of different sizes {sorted(sizes)}")
    variables = sorted({v for r in results for v in r.data_vars})
    prepared = []
    for r in results:
        r = r.assign_coords(lag=np.round(r["lag"].values, 9))
        for v in variables:
            if v not in r:
                r[v] = xr.full_like(r["response"], np.nan)
        for a in _PER_ESTIMATOR_ATTRS:
            r[a] = float(r.attrs.get(a, np.nan))
        prepared.append(r.drop_attrs(deep=False))
    aligned = xr.align(*prepared, join="inner")
    if aligned[0].sizes["lag"] == 0:
        raise ValueError("results: the methods have no lag in common")
    out = xr.concat(aligned, dim=xr.DataArray(names, dims="estimator", name="estimator"))
    out.attrs = {
        "estimators": names,
        "estimator_attrs": json.dumps(
            {m: r.attrs for m, r in zip(names, results, strict=True)}, default=str
        ),
        "gfdt_dash_version": results[0].attrs.get("gfdt_dash_version", ""),
    }
    return out


def error_table(
    results: xr.Dataset | list[xr.Dataset],
    reference: str | None = None,
    n_down: int = 4,
    max_lag: float | None = None,
) -> pd.DataFrame:
    """Relative L2 errors of every method against ``reference``.

    ``reference`` defaults to the truth among the results
    (:func:`gfdt_dash.response.methods.reference_method`: ``"analytic"`` if present, else
    ``"perturbation"``). Norms run over
    lags ``≤ max_lag`` (default all) and pixels ``dy = 0``, ``dx = 0 … n_down−1``. Columns:
    ``error`` (of ``response``, the normalised one for score methods), ``error_raw`` (of
    ``response_raw``, score methods only), ``stein_error``; one row per method, indexed by
    ``estimator`` (the reference's own row has error 0).
    """
    ds = combine(results) if isinstance(results, list | tuple) else results
    if not isinstance(ds, xr.Dataset):
        raise TypeError(
            f"results: expected a combined dataset or a list of results, got {type(ds).__name__}"
        )
    if "estimator" not in ds.dims or "response" not in ds:
        hint = (
            " (this one has the 'method' dimension of files written before it was renamed: "
            "read them with gfdt_dash.data.open_dataset)"
            if "method" in ds.dims
            else ""
        )
        raise ValueError(
            f"results: expected a combined dataset with an 'estimator' dimension{hint}"
        )
    methods = [str(m) for m in ds["estimator"].values]
    if reference is None:
        reference = reference_method(methods)
        if reference is None:
            raise ValueError("reference: no analytic or perturbation result to compare against")
    if reference not in methods:
        raise ValueError(f"reference: {reference!r} not among the methods {methods}")
    if (
        not isinstance(n_down, int | np.integer)
        or isinstance(n_down, bool)
        or not 1 <= n_down <= ds.sizes["dx"] // 2
    ):
        raise ValueError(f"n_down: must be an integer in [1, {ds.sizes['dx'] // 2}], got {n_down}")
    sel = ds.sel(dy=0, dx=slice(0, n_down - 1))
    if max_lag is not None:
        lag0 = float(ds["lag"].min())
        if (
            isinstance(max_lag, bool)
            or not isinstance(max_lag, int | float | np.integer | np.floating)
            or not np.isfinite(max_lag)
            or max_lag < lag0
        ):
            raise ValueError(
                f"max_lag: must be a number >= the first lag {lag0:g}, got {max_lag!r:.60}"
            )
        sel = sel.sel(lag=slice(None, max_lag))
    ref = sel["response"].sel(estimator=reference)
    ref_norm = float(np.sqrt((ref**2).sum()))
    rows = []
    for m in methods:
        row = {"estimator": m}
        for col, var in (("error", "response"), ("error_raw", "response_raw")):
            if var not in sel:
                row[col] = np.nan
                continue
            diff = sel[var].sel(estimator=m) - ref
            row[col] = float(np.sqrt((diff**2).sum(skipna=False))) / ref_norm
        row["stein_error"] = float(sel["stein_error"].sel(estimator=m))
        rows.append(row)
    return pd.DataFrame(rows).set_index("estimator")
