"""Responses from time series: the GFDT with a score, and the Gaussian (quasi-Gaussian) one.

GFDT (generalized fluctuation–dissipation theorem): for a stationary process with density ``p`` and
score ``s = ∇ log p``,

    R(t) = −⟨x(t) s(x(0))ᵀ⟩,           R̃(t) = R(t) R(0)⁻¹,

and the Gaussian approximation replaces ``s`` by the score of the Gaussian with the data's mean
and covariance, ``s(x) = −C(0)⁻¹(x − μ)``, which gives ``R(t) = C(t) C(0)⁻¹`` with
``C(t) = ⟨(x(t) − μ)(x(0) − μ)ᵀ⟩``. The fields are assumed statistically homogeneous on the
periodic grid, so every matrix is circulant: averages run over members, time pairs and all grid
points (:mod:`gfdt_dash.response.correlation`), and ``R(t) R(0)⁻¹`` is a per-wavenumber division
(:func:`gfdt_dash.response.result.normalize`). Error bands: block bootstrap
(:mod:`gfdt_dash.response.bands`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr

from gfdt_dash.data import as_field_array
from gfdt_dash.devices import resolve_device
from gfdt_dash.progress import ProgressCallback, Reporter, StopCheck
from gfdt_dash.response.bands import N_BOOT, bootstrap_stderr
from gfdt_dash.response.correlation import block_layout, correlation_sums
from gfdt_dash.response.methods import ESTIMATORS
from gfdt_dash.response.result import (
    NULL_RTOL,
    normalize,
    null_modes,
    response_dataset,
    stein_error_from_r0,
)
from gfdt_dash.seeds import check_seed
from gfdt_dash.validation import is_integer, is_number

__all__ = ["TensorScore", "exact_score", "gaussian_response", "gfdt_response"]

# A score on a batch of fields: a tensor (B, n, n) → the score ∇ log p, same shape, device, dtype.
TensorScore = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_N_BLOCKS = 64


def exact_score(
    config: Any, device: str | torch.device = "auto", dtype: str = "float32"
) -> TensorScore:
    """The closed-form score of ``config``'s system, as a callable on ``(B, n, n)``.

    Dispatches on the system registry (:class:`gfdt_dash.systems.SystemSpec.exact_score`); for
    OU and Allen–Cahn ``s(θ) = (2/N²)[λ(θ − θ³) + Σ⁻¹(κΔ − γP₀)θ]`` (see
    :mod:`gfdt_dash.systems.fields`), in physical units, on ``device`` in ``dtype``.
    """
    from gfdt_dash.systems import SystemConfig, system_names, system_spec

    if not isinstance(config, SystemConfig):
        raise ValueError(f"config: expected a system config, got {type(config).__name__}")
    spec = system_spec(config)
    if spec.exact_score is None:
        have = [n for n in system_names() if system_spec(n).exact_score is not None]
        raise ValueError(
            f"config: an exact score exists only for {', '.join(have)}, got {type(config).__name__}"
        )
    return spec.exact_score(config, device, dtype)


def _prepare(fields: Any, frame_dt: float | None, max_lag: int, pixel: Any) -> tuple:
    """Validated ``(array, frame_dt, n_lags, provenance attrs)`` of the user's input."""
    attrs: dict[str, Any] = {}
    coord_dt = None
    da = fields["field"] if isinstance(fields, xr.Dataset) and "field" in fields else fields
    if isinstance(fields, xr.Dataset | xr.DataArray):
        for key in ("config", "system", "seed"):
            if key in fields.attrs:
                attrs[f"data_{key}" if key == "seed" else key] = fields.attrs[key]
    if isinstance(da, xr.DataArray) and "time" in da.coords and da.sizes.get("time", 0) > 1:
        times = da["time"].values
        if times.dtype.kind not in "iuf":  # dates, texts: no number of time units
            raise ValueError(
                f"fields: the time coordinate must be numbers (time units), got {times.dtype}; "
                "drop it and pass frame_dt"
            )
        steps = np.diff(np.asarray(times, dtype=np.float64))
        if not (np.isfinite(steps).all() and steps[0] > 0):
            raise ValueError("fields: the time coordinate must increase (finite values)")
        if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            raise ValueError("fields: the time coordinate is not evenly spaced")
        coord_dt = float(steps[0])
    arr = as_field_array(fields, "fields")
    if frame_dt is not None:
        if not (
            is_number(frame_dt)
            and math.isfinite(frame_dt)
            and frame_dt > 0
            and math.isfinite(frame_dt * arr.shape[1])
        ):
            raise ValueError(f"frame_dt: must be a positive number, got {frame_dt!r:.60}")
        if coord_dt is not None and not math.isclose(frame_dt, coord_dt, rel_tol=1e-6):
            raise ValueError(
                f"frame_dt: {frame_dt} contradicts the time coordinate's spacing {coord_dt}"
            )
    dt = coord_dt if coord_dt is not None else float(frame_dt) if frame_dt is not None else 1.0
    if not is_integer(max_lag) or max_lag < 0:
        raise ValueError(
            f"max_lag: must be a non-negative integer number of frames, got {max_lag!r}"
        )
    if max_lag >= arr.shape[1]:
        raise ValueError(
            f"max_lag: {max_lag} frames needs a record longer than its {arr.shape[1]} frames"
        )
    n = arr.shape[-1]
    if (
        not isinstance(pixel, tuple | list | np.ndarray)
        or len(pixel) != 2
        or not all(is_integer(p) and 0 <= p < n for p in pixel)
    ):
        raise ValueError(f"pixel: expected (y, x) integers in [0, {n}), got {pixel!r}")
    return arr, dt, int(max_lag) + 1, attrs


def _compute_dtype(arr: np.ndarray, device: torch.device) -> torch.dtype:
    if arr.dtype == np.float64 and device.type != "mps":
        return torch.float64
    return torch.float32


MAX_BOOT = 100_000  # bootstrap resamples at most (each one a pass over the block sums)


def _check_common(
    batch_size: int,
    n_blocks: int | None,
    estimator: str | None = None,
    *,
    seed: Any = 0,
    n_boot: Any = N_BOOT,
    null_rtol: Any = NULL_RTOL,
) -> tuple[int, int]:
    """Validate the arguments every correlation estimator shares; ``(seed, n_boot)``."""
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r:.60}")
    if n_blocks is not None and (not is_integer(n_blocks) or n_blocks < 2):
        raise ValueError(f"n_blocks: must be an integer >= 2, got {n_blocks!r:.60}")
    if not is_integer(n_boot) or not 2 <= n_boot <= MAX_BOOT:
        raise ValueError(
            f"n_boot: must be an integer from 2 to {MAX_BOOT:,} (bootstrap resamples), "
            f"got {n_boot!r:.60}"
        )
    if not (is_number(null_rtol) and 0 <= null_rtol < 1):
        raise ValueError(
            f"null_rtol: must be a number in [0, 1) (a fraction of the largest mode), got "
            f"{null_rtol!r:.60}"
        )
    seed = check_seed(seed)
    if estimator is not None:
        allowed = [m for m, spec in ESTIMATORS.items() if spec.score_based]
        if estimator not in allowed:
            raise ValueError(f"estimator: {estimator!r} not allowed; allowed: {', '.join(allowed)}")
    return seed, int(n_boot)


def _check_finite(c: torch.Tensor, arr: np.ndarray) -> None:
    """The correlations of fields too large for the arithmetic overflow to inf/NaN: refuse them
    rather than return a response of NaN."""
    if not torch.isfinite(c).all():
        big = float(np.abs(arr).max())
        raise ValueError(
            f"fields: their correlations overflow in {str(c.dtype).removeprefix('torch.')} "
            f"(values up to {big:.3g}); rescale the fields (or pass float64 data)"
        )


def _score_source(
    score: Any, arr: np.ndarray, batch_size: int
) -> Callable[[torch.Tensor, slice], torch.Tensor]:
    """``b_of(chunk, members)`` for :func:`correlation_sums`: evaluate or slice the score."""
    if callable(score):

        def evaluate(chunk: torch.Tensor, _members: slice) -> torch.Tensor:
            flat = chunk.reshape(-1, *chunk.shape[2:])
            out = []
            for i in range(0, flat.shape[0], batch_size):
                batch = flat[i : i + batch_size]
                s = score(batch)
                if not isinstance(s, torch.Tensor) or s.shape != batch.shape:
                    got = getattr(s, "shape", type(s).__name__)
                    raise ValueError(
                        f"score: the callable must return a tensor shaped like its input "
                        f"{tuple(batch.shape)}, got {got}"
                    )
                if s.is_complex() or not (s.is_floating_point() or s.dtype == batch.dtype):
                    raise ValueError(
                        f"score: the callable must return real floating-point values, got {s.dtype}"
                    )
                out.append(s.to(device=chunk.device, dtype=chunk.dtype))
            s_all = torch.cat(out).reshape(chunk.shape)
            if not torch.isfinite(s_all).all():
                raise ValueError("score: the callable returned non-finite values")
            return s_all

        return evaluate
    s_arr = as_field_array(score, "score")
    if s_arr.shape != arr.shape:
        raise ValueError(f"score: precomputed scores have shape {s_arr.shape}, fields {arr.shape}")

    def sliced(chunk: torch.Tensor, members: slice) -> torch.Tensor:
        return torch.as_tensor(s_arr[members]).to(device=chunk.device, dtype=chunk.dtype)

    return sliced


def _estimate_attrs(excluded, null_rtol, pixel, dt, members, length, layout, n_boot, seed) -> dict:
    """Provenance shared by the GFDT and Gaussian results."""
    return dict(
        n_excluded_modes=int(excluded.sum()),
        null_rtol=null_rtol,
        pixel=list(map(int, pixel)),
        frame_dt=dt,
        n_members=members,
        n_frames=length,
        n_blocks=layout.n_blocks,
        n_boot=n_boot,
        seed=int(seed),
        band="block bootstrap over members (× time ranges), one standard error",
    )


def gfdt_response(
    fields: Any,
    score: TensorScore | Any,
    max_lag: int,
    *,
    frame_dt: float | None = None,
    pixel: tuple[int, int] = (0, 0),
    device: str | torch.device = "auto",
    batch_size: int = 1024,
    n_blocks: int | None = None,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    estimator: str = "learned_score",
    null_rtol: float = NULL_RTOL,
    n_boot: int = N_BOOT,
    method: str | None = None,
) -> xr.Dataset:
    """GFDT response ``R(t) = −⟨x(t) s(x(0))ᵀ⟩`` of homogeneous fields, raw and normalised.

    Parameters
    ----------
    fields
        ``(member, time, y, x)`` array, tensor, DataArray or Dataset with a ``field`` variable;
        frames equally spaced in time, square even grid.
    score
        A callable mapping a tensor ``(B, n, n)`` (on ``device``, float32 — float64 when
        ``fields`` is float64) to the score ``∇ log p`` of the same shape in physical units
        (1/field units); evaluated in batches of ``batch_size`` fields. Or precomputed score
        fields shaped like ``fields``.
    max_lag
        Largest lag in frames; the result has lags ``0 … max_lag``.
    frame_dt
        Time between frames; taken from a DataArray's ``time`` coordinate when present (an
        argument that contradicts it is an error), else this value, else 1.
    pixel
        The kicked pixel ``(y, x)``. By homogeneity the response around every pixel is the
        same, so this only labels the result (``attrs["pixel"]``).
    n_blocks
        Bootstrap blocks (default 64): member groups, or members × time ranges when there are
        fewer members (:func:`~gfdt_dash.response.correlation.block_layout`).
    seed
        Seeds the bootstrap's own ``torch.Generator``.
    estimator
        ``"learned_score"`` or ``"exact_score"``: the label of the result.
    method
        Deprecated name of ``estimator``.
    null_rtol
        Modes with ``|R̂(k,0)| ≤ null_rtol · max|R̂(k,0)|`` are excluded from ``R(t)R(0)⁻¹``.

    Returns
    -------
    Dataset in the common layout (:mod:`gfdt_dash.response.result`): ``response`` (normalised),
    ``response_raw``, their bootstrap standard errors; attrs ``stein_error`` =
    ``‖⟨x sᵀ⟩ + I‖_F/‖I‖_F``, ``n_excluded_modes``, ``n_members``, ``n_frames``,
    ``n_blocks``, ``n_boot``.

    The mean of ``x`` is not subtracted: ``⟨s⟩ = 0`` for a true score, and the formula is used as
    written.
    """
    if method is not None:
        warnings.warn(
            "gfdt_response(method=...) is deprecated; use estimator=...",
            DeprecationWarning,
            stacklevel=2,
        )
        estimator = method
    seed, n_boot = _check_common(
        batch_size, n_blocks, estimator, seed=seed, n_boot=n_boot, null_rtol=null_rtol
    )
    arr, dt, n_lags, attrs = _prepare(fields, frame_dt, max_lag, pixel)
    dev = resolve_device(device)
    dtype = _compute_dtype(arr, dev)
    b_of = _score_source(score, arr, batch_size)
    members, length = arr.shape[:2]
    layout = block_layout(members, length, n_lags, n_blocks or DEFAULT_N_BLOCKS)
    reporter = Reporter("gfdt", members, callback, should_stop)
    sums = correlation_sums(arr, b_of, n_lags, layout, device=dev, dtype=dtype, reporter=reporter)
    raw = -sums.mean()
    _check_finite(raw, arr)
    excluded = null_modes(raw[0], null_rtol)
    transforms = {
        "raw": lambda c: -c,
        "normalized": lambda c: normalize(-c, excluded),
    }
    gen = torch.Generator().manual_seed(int(seed))
    band_rep = Reporter("gfdt bootstrap", n_boot, callback, should_stop)
    err = bootstrap_stderr(sums, transforms, generator=gen, n_boot=n_boot, reporter=band_rep)
    attrs.update(
        stein_error=stein_error_from_r0(raw[0]),
        **_estimate_attrs(excluded, null_rtol, pixel, dt, members, length, layout, n_boot, seed),
    )
    return response_dataset(
        normalize(raw, excluded).numpy(),
        err["normalized"].numpy(),
        dt * np.arange(n_lags),
        estimator,
        attrs,
        raw=raw.numpy(),
        raw_stderr=err["raw"].numpy(),
    )


def gaussian_response(
    fields: Any,
    max_lag: int,
    *,
    frame_dt: float | None = None,
    pixel: tuple[int, int] = (0, 0),
    device: str | torch.device = "auto",
    n_blocks: int | None = None,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    null_rtol: float = NULL_RTOL,
    n_boot: int = N_BOOT,
) -> xr.Dataset:
    """Quasi-Gaussian response ``R(t) = C(t) C(0)⁻¹`` of homogeneous fields.

    ``C(t) = ⟨(x(t) − μ)(x(0) − μ)ᵀ⟩`` with ``μ`` the *global scalar mean* over members, time
    and space (as in the original study; for homogeneous fields it is the natural estimator of
    the constant mean field). Arguments and result layout as :func:`gfdt_response`, without the
    raw response (``R(0) = I`` by construction); attrs carry ``mean`` and ``n_excluded_modes``.
    """
    seed, n_boot = _check_common(1, n_blocks, seed=seed, n_boot=n_boot, null_rtol=null_rtol)
    arr, dt, n_lags, attrs = _prepare(fields, frame_dt, max_lag, pixel)
    dev = resolve_device(device)
    dtype = _compute_dtype(arr, dev)
    members, length = arr.shape[:2]
    mu = float(arr.mean(dtype=np.float64))
    layout = block_layout(members, length, n_lags, n_blocks or DEFAULT_N_BLOCKS)
    reporter = Reporter("gaussian", members, callback, should_stop)
    sums = correlation_sums(
        arr, None, n_lags, layout, device=dev, dtype=dtype, reporter=reporter, shift=mu
    )
    cov = sums.mean()
    _check_finite(cov, arr)
    excluded = null_modes(cov[0], null_rtol)
    gen = torch.Generator().manual_seed(int(seed))
    band_rep = Reporter("gaussian bootstrap", n_boot, callback, should_stop)
    err = bootstrap_stderr(
        sums,
        {"normalized": lambda c: normalize(c, excluded)},
        generator=gen,
        n_boot=n_boot,
        reporter=band_rep,
    )
    attrs.update(
        mean=mu,
        variance=float(cov[0, 0, 0]),
        **_estimate_attrs(excluded, null_rtol, pixel, dt, members, length, layout, n_boot, seed),
    )
    return response_dataset(
        normalize(cov, excluded).numpy(),
        err["normalized"].numpy(),
        dt * np.arange(n_lags),
        "gaussian",
        attrs,
    )
