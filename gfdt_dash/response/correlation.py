"""Space–time cross-correlations of homogeneous fields by FFT, summed per bootstrap block.

For fields ``a, b`` shaped ``(member, time, y, x)`` on an ``n × n`` periodic grid and a lag
``τ ∈ {0, …, T}`` the estimator is

    c(τ, r) = Σ_blocks S_b(τ, r) / Σ_blocks N_b(τ),
    S_b(τ, r) = Σ_{(m, t) ∈ b, t+τ < L} Σ_{r₀} a_m(t+τ, r₀ + r) b_m(t, r₀),
    N_b(τ)    = n² · #{(m, t) ∈ b : t + τ < L},

i.e. the average over every member, every overlapping time pair (``L − τ`` of them per member,
never wrapped around) and every grid point ``r₀`` (space is periodic, so the spatial shift is
circular and exact). Sums are computed by a 3-D real FFT over ``(time, y, x)`` with the time axis
zero-padded to ``L + T`` points, which is enough to keep lags ``0…T`` free of wrap-around.

A *block* is a group of members times one contiguous range of start times ``t``; the sums are
kept per block so that a block bootstrap (:mod:`gfdt_dash.response.bands`) can resample them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gfdt_dash.progress import Reporter

__all__ = ["BlockLayout", "CorrelationSums", "block_layout", "correlation_sums"]

# Budget for one complex spectrum of a member chunk; a chunk needs about five of them.
_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class BlockLayout:
    """How ``members × time`` is cut into bootstrap blocks.

    ``member_group[m]`` is the member group of member ``m`` (``n_groups`` contiguous groups);
    ``time_edges`` are the ``n_time_blocks + 1`` edges of the start-time ranges. Block index =
    ``group * n_time_blocks + time_block``.
    """

    member_group: np.ndarray
    n_groups: int
    time_edges: np.ndarray

    @property
    def n_time_blocks(self) -> int:
        return len(self.time_edges) - 1

    @property
    def n_blocks(self) -> int:
        return self.n_groups * self.n_time_blocks


def block_layout(members: int, length: int, n_lags: int, n_blocks: int) -> BlockLayout:
    """Blocks for a bootstrap with about ``n_blocks`` blocks.

    With ``members ≥ n_blocks`` members are pooled into ``n_blocks`` contiguous groups and time
    is not cut. Otherwise every member is its own group and its start times are cut into
    ``⌈n_blocks / members⌉`` equal ranges, each at least ``n_lags`` frames long (so fewer when
    the record is short).
    """
    if n_blocks < 2:
        raise ValueError(f"n_blocks: must be >= 2 for a bootstrap, got {n_blocks}")
    if members >= n_blocks:
        groups = np.arange(members) * n_blocks // members
        return BlockLayout(groups, n_blocks, np.array([0, length]))
    n_time = min(math.ceil(n_blocks / members), max(1, length // max(n_lags, 1)))
    edges = np.linspace(0, length, n_time + 1).round().astype(int)
    return BlockLayout(np.arange(members), members, edges)


@dataclass
class CorrelationSums:
    """Per-block sums ``S_b(τ, r)`` ``(block, lag, y, x)`` and counts ``N_b(τ)`` ``(block, lag)``.

    Offsets ``r`` are stored in FFT order (index ``i`` is offset ``i mod n``); float64 on CPU.
    """

    sums: torch.Tensor
    counts: torch.Tensor

    def mean(self) -> torch.Tensor:
        """The pooled estimate ``c(τ, r)`` ``(lag, y, x)``."""
        return self.sums.sum(0) / self.counts.sum(0)[:, None, None]


def _block_counts(layout: BlockLayout, length: int, n_lags: int, n: int) -> torch.Tensor:
    """``N_b(τ)``: pairs with start time in the block's range and ``t + τ < L``."""
    tau = np.arange(n_lags)
    lo, hi = layout.time_edges[:-1, None], layout.time_edges[1:, None]
    per_member = np.clip(np.minimum(hi, length - tau[None, :]) - lo, 0, None)  # (tb, lag)
    group_size = np.bincount(layout.member_group, minlength=layout.n_groups)
    counts = group_size[:, None, None] * per_member[None] * n * n
    return torch.as_tensor(counts.reshape(layout.n_blocks, n_lags), dtype=torch.float64)


def member_chunk_size(length: int, n_lags: int, n: int, itemsize: int) -> int:
    """Members per chunk so that one complex spectrum stays within the memory budget."""
    per_member = (length + n_lags) * n * (n // 2 + 1) * 2 * itemsize
    return max(1, _CHUNK_BYTES // per_member)


def correlation_sums(
    a: np.ndarray,
    b_of: Callable[[torch.Tensor, slice], torch.Tensor] | None,
    n_lags: int,
    layout: BlockLayout,
    *,
    device: torch.device,
    dtype: torch.dtype,
    reporter: Reporter | None = None,
    shift: float = 0.0,
) -> CorrelationSums:
    """Per-block space–time correlation sums of ``a`` with ``b`` (see the module docstring).

    ``a`` is ``(member, time, y, x)``; ``b_of(a_chunk, members)`` returns ``b`` for a member
    chunk (``a_chunk`` is that chunk of ``a − shift`` on ``device`` in ``dtype``, ``members``
    the slice of member indices); ``None`` means ``b = a − shift`` (autocorrelation). The
    chunking keeps memory bounded for any number of members; ``reporter`` counts members.
    """
    members, length, n, _ = a.shape
    if n_lags > length:
        raise ValueError(f"max_lag: {n_lags - 1} frames needs more than the {length} recorded")
    nfft = length + n_lags - 1
    shape = (nfft, n, n)
    dims = (1, 2, 3)
    counts = _block_counts(layout, length, n_lags, n)
    sums = torch.zeros(layout.n_blocks, n_lags, n, n, dtype=torch.float64)
    group = torch.as_tensor(layout.member_group)
    chunk = member_chunk_size(length, n_lags, n, torch.finfo(dtype).bits // 8)
    for start in range(0, members, chunk):
        sl = slice(start, min(start + chunk, members))
        a_c = torch.as_tensor(a[sl]).to(device=device, dtype=dtype)
        if shift:
            a_c = a_c - shift
        b_c = a_c if b_of is None else b_of(a_c, sl)
        a_hat = torch.fft.rfftn(a_c, s=shape, dim=dims)
        for tb in range(layout.n_time_blocks):
            t0, t1 = int(layout.time_edges[tb]), int(layout.time_edges[tb + 1])
            if b_of is None and layout.n_time_blocks == 1:
                b_hat = a_hat
            else:
                b_block = b_c
                if layout.n_time_blocks > 1:  # keep only the block's start times
                    b_block = torch.zeros_like(b_c)
                    b_block[:, t0:t1] = b_c[:, t0:t1]
                b_hat = torch.fft.rfftn(b_block, s=shape, dim=dims)
            # Members of one block are summed in Fourier space (linear), so only one inverse
            # transform per block is needed; the time axis is inverted first and only the lags
            # 0…T are carried through the spatial inverse.
            local = group[sl] - group[sl].min()
            n_local = int(local.max()) + 1
            prod = a_hat * b_hat.conj()
            del b_hat
            if n_local < prod.shape[0]:
                prod = torch.zeros(
                    (n_local, *prod.shape[1:]), dtype=prod.dtype, device=device
                ).index_add_(0, local.to(device), prod)
            lagged = torch.fft.ifft(prod, dim=1)[:, :n_lags]
            del prod
            corr = torch.fft.irfft2(lagged, s=(n, n), dim=(2, 3))
            idx = (group[sl].min() + torch.arange(n_local)) * layout.n_time_blocks + tb
            sums.index_add_(0, idx, corr.to("cpu", torch.float64))
            del corr, lagged
        del a_hat, a_c, b_c
        if reporter is not None:
            reporter.update(sl.stop)
    return CorrelationSums(sums, counts)
