"""Tiny networks and data so that the default score tests run in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from gfdt_dash.score import ScoreNetConfig, TrainConfig

TINY_NET = ScoreNetConfig(widths=(4, 8), n_res_blocks=1, embed_dim=8, groups=1)


def tiny_train(n_steps: int = 6, **kw) -> TrainConfig:
    return TrainConfig(batch_size=8, n_steps=n_steps, eval_every=3, val_batches=1, **kw)


@pytest.fixture
def tiny_snapshots() -> np.ndarray:
    """Smooth random 8×8 fields shaped (member, time, y, x)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 10, 8, 8)).astype(np.float32)
    return 2.0 * (x + np.roll(x, 1, axis=-1)) + 0.5
