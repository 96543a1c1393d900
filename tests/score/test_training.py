"""Training: inputs, progress, cancellation, exact resumption, reproducibility, RNG hygiene."""

from __future__ import annotations

import pytest
import torch
import xarray as xr

from gfdt_dash.progress import Cancelled
from gfdt_dash.score import save_checkpoint, train_score
from gfdt_dash.score.training import as_snapshots, split_snapshots
from tests.score.conftest import TINY_NET, tiny_train


def _weights(model):
    return {**model.net.state_dict(), **{f"ema.{k}": v for k, v in model.ema.state_dict().items()}}


def _assert_same(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_train_reports_and_records(tiny_snapshots):
    reports = []
    model = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(),
                        device="cpu", callback=reports.append)
    assert model.step == 6
    vals = [p.info for p in reports if "val_loss" in p.info]
    assert [v["step"] for v in vals] == [3, 6]  # every eval_every steps, never throttled away
    assert all(v["train_loss"] > 0 and v["val_loss"] > 0 for v in vals)
    meta = model.metadata
    assert meta["system"] == "custom" and meta["n"] == 8
    assert meta["scale"] == pytest.approx(float(split_snapshots(tiny_snapshots, 0.2)[0].std()))
    assert meta["sigma_min"] == 0.01 and meta["sigma_max"] > 5  # ≈ max distance of 8×8 fields
    assert meta["n_train"] == 4 * 8 and meta["n_val"] == 4 * 2
    assert meta["history"]["val_step"] == [3, 6]


def test_reproducible_and_global_rng_untouched(tiny_snapshots):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(), seed=5,
                    device="cpu")
    assert torch.equal(torch.random.get_rng_state(), before)
    b = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(), seed=5,
                    device="cpu")
    _assert_same(a, b)
    c = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(), seed=6,
                    device="cpu")
    assert not torch.equal(a.net.final.weight, c.net.final.weight)


def test_resume_continues_identically(tiny_snapshots, tmp_path):
    """6 steps, checkpoint (file round trip), 6 more == 12 steps in one go, bit for bit."""
    full = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(12),
                       seed=3, device="cpu")
    half = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(6),
                       seed=3, device="cpu")
    path = save_checkpoint(half, tmp_path / "half.safetensors")
    resumed = train_score(tiny_snapshots, train_config=tiny_train(12), seed=3, device="cpu",
                          resume=path)
    assert resumed.step == 12
    _assert_same(full, resumed)
    assert resumed.history["val_step"] == full.history["val_step"]
    assert resumed.history["val_loss"] == full.history["val_loss"]


def test_resume_refuses_other_data(tiny_snapshots):
    model = train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(3),
                        device="cpu")
    with pytest.raises(ValueError, match="snapshots differ"):
        train_score(tiny_snapshots + 1, train_config=tiny_train(6), device="cpu", resume=model)


def test_cancel_keeps_partial_model(tiny_snapshots):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 4

    with pytest.raises(Cancelled) as info:
        train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(50),
                    device="cpu", should_stop=stop)
    partial = info.value.partial
    assert 0 < partial.step < 50 and partial.train_state is not None


def test_inputs_dataset_dataarray_and_errors(tiny_snapshots):
    from gfdt_dash.systems import OUConfig

    cfg = OUConfig.preset("classroom", n=8)
    da = xr.DataArray(tiny_snapshots, dims=("snapshot_member", "snapshot_time", "y", "x"))
    ds = xr.Dataset({"snapshot": da.transpose("y", "x", "snapshot_time", "snapshot_member")},
                    attrs={"config": cfg.to_json(), "system": "ou"})
    arr, found = as_snapshots(ds)
    assert arr.shape == (4, 10, 8, 8) and found == cfg
    torch.testing.assert_close(torch.as_tensor(arr), torch.as_tensor(tiny_snapshots))
    arr3, _ = as_snapshots(torch.as_tensor(tiny_snapshots.reshape(-1, 8, 8)))
    assert arr3.shape == (1, 40, 8, 8)
    model = train_score(ds, net_config=TINY_NET, train_config=tiny_train(2), device="cpu")
    assert model.system == "ou" and model.system_config == cfg
    with pytest.raises(ValueError, match="square"):
        as_snapshots(tiny_snapshots[..., :6])
    with pytest.raises(ValueError, match="non-finite"):
        as_snapshots(tiny_snapshots * float("nan"))
    with pytest.raises(ValueError, match="grid n=16"):
        as_snapshots(tiny_snapshots, OUConfig.preset("classroom"))
    with pytest.raises(ValueError, match="not divisible"):
        train_score(tiny_snapshots[..., :6, :6], net_config=TINY_NET.replace(widths=(4, 8, 8)),
                    train_config=tiny_train(1), device="cpu")
