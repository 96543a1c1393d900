"""Error bands of the correlation-based responses: a block bootstrap of the ratio estimator.

The estimate is ``c = Σ_b S_b / Σ_b N_b`` over blocks ``b`` (member groups × time ranges, see
:func:`gfdt_dash.response.correlation.block_layout`). A bootstrap resample draws ``B`` blocks
with replacement (multiplicities ``w_b``), gives ``c* = Σ w_b S_b / Σ w_b N_b`` and pushes it
through the same transform as the estimate (sign, normalisation with the *same* excluded modes).
The band is the standard deviation of the transformed resamples — the bootstrap standard error.
Blocks must be longer than the decorrelation time for this to be honest; member groups are
independent by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gfdt_dash.progress import Reporter
from gfdt_dash.response.correlation import CorrelationSums

__all__ = ["N_BOOT", "bootstrap_stderr"]

N_BOOT = 200
_RESAMPLES_PER_CHUNK = 25


def bootstrap_stderr(
    sums: CorrelationSums,
    transforms: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    *,
    generator: torch.Generator,
    n_boot: int = N_BOOT,
    reporter: Reporter | None = None,
) -> dict[str, torch.Tensor]:
    """Bootstrap standard error of each ``transforms[name](c)`` ``(lag, y, x)``.

    Each transform maps a batch of correlation estimates ``(batch, lag, y, x)`` to responses of
    the same shape. Resamples are processed in chunks so memory stays bounded.
    """
    n_blocks = sums.sums.shape[0]
    flat = sums.sums.reshape(n_blocks, -1)
    centre = {name: f(sums.mean()[None])[0] for name, f in transforms.items()}
    acc = {name: torch.zeros_like(c) for name, c in centre.items()}
    acc2 = {name: torch.zeros_like(c) for name, c in centre.items()}
    done = 0
    while done < n_boot:
        b = min(_RESAMPLES_PER_CHUNK, n_boot - done)
        idx = torch.randint(0, n_blocks, (b, n_blocks), generator=generator)
        w = torch.zeros(b, n_blocks, dtype=torch.float64).scatter_add_(
            1, idx, torch.ones(b, n_blocks, dtype=torch.float64)
        )
        counts = w @ sums.counts  # (b, lag)
        est = (w @ flat).reshape(b, *sums.sums.shape[1:]) / counts[:, :, None, None]
        for name, f in transforms.items():
            dev = f(est) - centre[name]
            acc[name] += dev.sum(0)
            acc2[name] += dev.pow(2).sum(0)
        done += b
        if reporter is not None:
            reporter.update(done)
    return {
        name: torch.sqrt(torch.clamp(acc2[name] / n_boot - (acc[name] / n_boot) ** 2, min=0.0))
        * (n_boot / (n_boot - 1)) ** 0.5
        for name in transforms
    }
