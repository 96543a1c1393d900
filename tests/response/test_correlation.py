"""The FFT correlation estimator against a brute-force double loop (exact, float64)."""

import numpy as np
import pytest
import torch

import gfdt_dash.response.correlation as corr_mod
from gfdt_dash.response import block_layout, correlation_sums


def brute_force(a, b, n_lags, layout):
    """Σ over (m, t) in each block with t + τ < L and over r₀ of a(t+τ, r₀+r) b(t, r₀)."""
    members, length, n, _ = a.shape
    sums = np.zeros((layout.n_blocks, n_lags, n, n))
    counts = np.zeros((layout.n_blocks, n_lags))
    for m in range(members):
        for tb in range(layout.n_time_blocks):
            blk = layout.member_group[m] * layout.n_time_blocks + tb
            for t in range(layout.time_edges[tb], layout.time_edges[tb + 1]):
                for tau in range(n_lags):
                    if t + tau >= length:
                        continue
                    counts[blk, tau] += n * n
                    for ry in range(n):
                        for rx in range(n):
                            shifted = np.roll(a[m, t + tau], (-ry, -rx), axis=(0, 1))
                            sums[blk, tau, ry, rx] += (shifted * b[m, t]).sum()
    return sums, counts


@pytest.mark.parametrize(("members", "n_blocks"), [(3, 2), (3, 6), (4, 4)])
def test_fft_estimator_equals_double_loop(members, n_blocks):
    rng = np.random.default_rng(0)
    length, n, n_lags = 9, 4, 7  # lags up to 6 of 9 frames: overlaps 9, 8, …, 3 are unequal
    a = rng.standard_normal((members, length, n, n))
    b = rng.standard_normal((members, length, n, n))
    layout = block_layout(members, length, n_lags // 3, n_blocks)
    got = correlation_sums(
        a,
        lambda _chunk, sl: torch.as_tensor(b[sl]),
        n_lags,
        layout,
        device=torch.device("cpu"),
        dtype=torch.float64,
    )
    want_sums, want_counts = brute_force(a, b, n_lags, layout)
    np.testing.assert_allclose(got.counts.numpy(), want_counts)
    np.testing.assert_allclose(got.sums.numpy(), want_sums, atol=1e-11)
    mean = want_sums.sum(0) / want_counts.sum(0)[:, None, None]
    np.testing.assert_allclose(got.mean().numpy(), mean, atol=1e-13)


def test_autocorrelation_and_member_chunks(monkeypatch):
    """b = a − shift (``b_of=None``) with several member chunks gives the same sums."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 12, 4, 4)) + 0.3
    layout = block_layout(5, 12, 4, 2)
    kwargs = dict(device=torch.device("cpu"), dtype=torch.float64, shift=0.3)
    whole = correlation_sums(a, None, 4, layout, **kwargs)
    monkeypatch.setattr(corr_mod, "_CHUNK_BYTES", 1)  # one member per chunk
    chunked = correlation_sums(a, None, 4, layout, **kwargs)
    want, _ = brute_force(a - 0.3, a - 0.3, 4, layout)
    np.testing.assert_allclose(whole.sums.numpy(), want, atol=1e-11)
    np.testing.assert_allclose(chunked.sums.numpy(), want, atol=1e-11)


def test_block_layout():
    many = block_layout(128, 2000, 51, 64)
    assert many.n_blocks == 64 and many.n_time_blocks == 1
    assert np.bincount(many.member_group).tolist() == [2] * 64
    one = block_layout(1, 2000, 21, 64)
    assert one.n_groups == 1 and one.n_time_blocks == 64
    capped = block_layout(1, 2000, 51, 64)  # 2000 // 51 blocks of at least 51 frames
    assert capped.n_time_blocks == 39
    short = block_layout(1, 100, 51, 64)  # blocks no shorter than the lag window
    assert short.n_time_blocks == 1
    with pytest.raises(ValueError, match="n_blocks"):
        block_layout(4, 10, 2, 1)
