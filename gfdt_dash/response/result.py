"""The common result layout of every response method, and the per-wavenumber normalisation.

Every method returns an ``xarray.Dataset`` with dims ``(lag, dy, dx)``:

- ``lag``: time since the kick in model time units (frame index × frame interval);
- ``dy``, ``dx``: integer offsets from the kicked pixel in ``−n/2 … n/2−1``; ``dx > 0`` is
  downstream (the advection direction x);
- ``response`` and ``response_stderr`` (the error band, one standard error); score methods add
  ``response_raw`` and ``response_raw_stderr``;
- attrs ``estimator`` (the method's name in :data:`gfdt_dash.response.methods.ESTIMATORS`) and
  provenance. Results of different methods concatenate along ``estimator``
  (:func:`gfdt_dash.response.combine`).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from gfdt_dash import __version__
from gfdt_dash.response.methods import ESTIMATORS

__all__ = [
    "NULL_RTOL",
    "from_offsets",
    "normalize",
    "null_modes",
    "response_dataset",
    "stein_error_from_r0",
    "to_offsets",
]

# A mode k whose |R̂(k, 0)| is at most NULL_RTOL · max_k |R̂(k, 0)| is excluded from R(t)R(0)⁻¹
# (its normalised response is set to 0, the pseudo-inverse convention). 1e-6 sits above float32
# round-off of the spectra and well below any physical mode of the shipped systems (the smallest
# OU "paper" C(0) mode is ~1.5e-5 of the largest).
NULL_RTOL = 1e-6


def to_offsets(c: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(..., y, x)`` in FFT order (index i = offset i mod n) → offsets ``−n/2 … n/2−1``."""
    c = c.numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
    return np.fft.fftshift(c, axes=(-2, -1))


def from_offsets(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_offsets`."""
    return np.fft.ifftshift(np.asarray(c), axes=(-2, -1))


def null_modes(r0: torch.Tensor, rtol: float = NULL_RTOL) -> torch.Tensor:
    """Boolean ``(n, n)`` mask of the (near-)null modes of the lag-0 response ``r0`` ``(y, x)``."""
    r0_hat = torch.fft.fft2(r0).abs()
    return r0_hat <= rtol * r0_hat.max()


def normalize(r: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """``R(t) R(0)⁻¹`` of a homogeneous response ``r`` ``(..., lag, y, x)`` (FFT-order offsets).

    Both are circulant matrices, so the product is the per-wavenumber division
    ``R̂(k, t)/R̂(k, 0)`` of their 2-D spectra; ``excluded`` modes are set to zero.
    """
    r_hat = torch.fft.fft2(r)
    r0_hat = r_hat[..., :1, :, :]
    safe = torch.where(excluded, torch.ones_like(r0_hat), r0_hat)
    ratio = torch.where(excluded, torch.zeros_like(r_hat), r_hat / safe)
    return torch.fft.ifft2(ratio).real


def stein_error_from_r0(r0: torch.Tensor) -> float:
    """``‖⟨x sᵀ⟩ + I‖_F / ‖I‖_F`` from the lag-0 response ``r0 = −⟨x sᵀ⟩`` ``(y, x)``.

    ``⟨x sᵀ⟩ + I`` is circulant with eigenvalues ``1 − R̂(k, 0)``, so its Frobenius norm squared
    is ``Σ_k |1 − R̂(k, 0)|²``; ``‖I‖_F² = n²``.
    """
    r0_hat = torch.fft.fft2(r0)
    return float(torch.sqrt((1.0 - r0_hat).abs().pow(2).mean()))


def response_dataset(
    response: np.ndarray,
    stderr: np.ndarray,
    lags: np.ndarray,
    estimator: str,
    attrs: dict,
    raw: np.ndarray | None = None,
    raw_stderr: np.ndarray | None = None,
) -> xr.Dataset:
    """Assemble the common layout from ``(lag, y, x)`` arrays in FFT-order offsets."""
    if estimator not in ESTIMATORS:
        raise ValueError(
            f"estimator: {estimator!r} not allowed; allowed: {', '.join(ESTIMATORS)}"
        )
    n = response.shape[-1]
    offsets = np.arange(-(n // 2), n // 2)
    dims = ("lag", "dy", "dx")
    data = {
        "response": (dims, to_offsets(response), {"long_name": "response R(t) per unit kick"}),
        "response_stderr": (dims, to_offsets(stderr), {"long_name": "standard error of response"}),
    }
    if raw is not None:
        data["response_raw"] = (dims, to_offsets(raw), {"long_name": "raw response −⟨x(t)s(0)ᵀ⟩"})
        data["response_raw_stderr"] = (
            dims,
            to_offsets(raw_stderr),
            {"long_name": "standard error of response_raw"},
        )
        data["response"][2]["long_name"] = "normalised response R(t)R(0)⁻¹"
    ds = xr.Dataset(
        data,
        coords={
            "lag": ("lag", np.asarray(lags, dtype=np.float64), {"units": "model time units"}),
            "dy": ("dy", offsets, {"long_name": "y offset from the kicked pixel (cells)"}),
            "dx": ("dx", offsets, {"long_name": "x offset from the kicked pixel, >0 downstream"}),
        },
        attrs={"estimator": estimator, "gfdt_dash_version": __version__, **attrs},
    )
    return ds
