"""Score diagnostics run on fields the model was not trained on, and one network-to-score adapter.

Fast: tiny networks on tiny random fields.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gfdt_dash.score import diagnose, sample, train_score
from gfdt_dash.score.diagnostics import held_out_fields
from gfdt_dash.score.model import noised_score
from gfdt_dash.score.training import split_snapshots
from tests.score.conftest import TINY_NET, tiny_train


@pytest.fixture
def tiny_model(tiny_snapshots):
    return train_score(
        tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(), seed=0, device="cpu"
    )


def _rows(fields: np.ndarray) -> set[bytes]:
    return {f.tobytes() for f in np.ascontiguousarray(fields, dtype=np.float32)}


def test_held_out_fields_of_the_training_data_are_disjoint_from_the_training_set(
    tiny_model, tiny_snapshots
):
    """Given the data it was trained on, the diagnostics see only the held-out snapshots: none
    of them is a training field, and together they are all the data."""
    fields, label = held_out_fields(tiny_model, tiny_snapshots)
    train, _ = split_snapshots(tiny_snapshots, tiny_model.train_config.val_fraction)
    assert train.shape[0] == tiny_model.metadata["n_train"]
    assert fields.shape[0] == tiny_model.metadata["n_val"] > 0
    assert not _rows(fields) & _rows(train)
    assert _rows(fields) | _rows(train) == _rows(tiny_snapshots.reshape(-1, 8, 8))
    assert "held-out" in label and "not trained on" in label


def test_other_data_are_used_whole(tiny_model, tiny_snapshots):
    fresh = tiny_snapshots[:, ::-1] + 0.25  # not the training data
    fields, label = held_out_fields(tiny_model, fresh)
    assert fields.shape[0] == fresh.shape[0] * fresh.shape[1]
    assert label.startswith(f"{fields.shape[0]} fields the model was not trained on")


def test_diagnose_on_the_training_data_reports_held_out_fields(tiny_model, tiny_snapshots):
    diag = diagnose(tiny_model, tiny_snapshots, n_samples=0, device="cpu")
    assert diag["n_fields"] == tiny_model.metadata["n_val"]
    assert "held-out" in diag["diagnosed_on"]
    assert np.isfinite(diag["held_out_loss"]) and "val_loss" not in diag


def test_a_model_without_held_out_data_is_refused_on_its_training_data(tiny_snapshots):
    model = train_score(
        tiny_snapshots,
        net_config=TINY_NET,
        train_config=tiny_train(val_fraction=0.0),
        seed=0,
        device="cpu",
    )
    with pytest.raises(ValueError, match="fields: .*held none out"):
        diagnose(model, tiny_snapshots, n_samples=0, device="cpu")


def test_one_adapter_from_network_to_score(tiny_model):
    """``score_fn`` (the GFDT score) is ``noised_score`` at σ_min in physical units, and the
    sampler's last (Tweedie) step is ``x + σ_min² noised_score`` — checked by one sampling step
    from a known start."""
    x = torch.randn(5, 8, 8, generator=torch.Generator().manual_seed(1))
    net = tiny_model.ema_net.eval()
    with torch.no_grad():
        expected = noised_score(net, x / tiny_model.scale, tiny_model.sigma_min) / tiny_model.scale
        manual = net(x / tiny_model.scale, torch.tensor(tiny_model.sigma_min)) / (
            tiny_model.sigma_min * tiny_model.scale
        )
    torch.testing.assert_close(tiny_model.score_fn("cpu")(x), expected)
    torch.testing.assert_close(expected, manual)
    # Per-sample σ: each row divided by its own σ.
    sig = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0])
    with torch.no_grad():
        per_row = noised_score(net, x, sig)
        row2 = noised_score(net, x[2:3], 2.0)
    torch.testing.assert_close(per_row[2:3], row2)
    # The sampler goes through the same adapter: one step from σ_max, then Tweedie's step.
    gen_seed = 3
    out = sample(tiny_model, 2, n_steps=1, seed=gen_seed, device="cpu")
    g = torch.Generator().manual_seed(gen_seed)
    x0 = tiny_model.sigma_max * torch.randn(2, 8, 8, generator=g)
    from gfdt_dash.score.losses import VESchedule

    sched = VESchedule(tiny_model.sigma_min, tiny_model.sigma_max)
    t = torch.ones(2)
    with torch.no_grad():
        x1 = x0 + sched.g2(t)[:, None, None] * noised_score(net, x0, sched.sigma(t))
        x1 = x1 + tiny_model.sigma_min**2 * noised_score(net, x1, tiny_model.sigma_min)
    torch.testing.assert_close(out, x1 * tiny_model.scale)
