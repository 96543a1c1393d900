"""Checkpoints: bit-exact round trip, no pickle ever, refusals with clear messages."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from gfdt_dash.score import load_checkpoint, save_checkpoint, train_score
from tests.score.conftest import TINY_NET, tiny_train


@pytest.fixture
def model(tiny_snapshots):
    return train_score(tiny_snapshots, net_config=TINY_NET, train_config=tiny_train(4),
                       device="cpu")


def test_round_trip_bit_exact(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    back = load_checkpoint(path, expect_system="custom", expect_n=8, device="cpu")
    for a, b in [(model.net, back.net), (model.ema, back.ema)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert back.metadata == model.metadata
    x = torch.randn(5, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.score_fn("cpu")(x), back.score_fn("cpu")(x))
    opt_a, opt_b = model.train_state["optimizer"], back.train_state["optimizer"]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    assert all(torch.equal(opt_a["state"][i][k], opt_b["state"][i][k])
               for i in opt_a["state"] for k in opt_a["state"][i])
    assert torch.equal(model.train_state["generator"], back.train_state["generator"])
    small = save_checkpoint(model, tmp_path / "infer.safetensors", training_state=False)
    assert small.stat().st_size < path.stat().st_size
    assert load_checkpoint(small, device="cpu").train_state is None


class _Payload:
    """Unpickling this would create the marker (a directory: no file handle left open)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("kind", ["pickle", "torch_save"])
def test_pickle_payload_is_never_executed(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"net": _Payload(marker)}, path)
    # Sanity: the payload really does fire when unpickled.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_checkpoint(path, device="cpu")
    assert not marker.exists()


def test_refusals(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="system 'custom', not 'ou'"):
        load_checkpoint(path, expect_system="ou", device="cpu")
    with pytest.raises(ValueError, match="8×8 grid, not 16×16"):
        load_checkpoint(path, expect_n=16, device="cpu")
    raw = path.read_bytes()
    for cut in (4, 100, len(raw) // 2, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
            load_checkpoint(bad, device="cpu")
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint|not a gfdt-dash"):
        load_checkpoint(other, device="cpu")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_atomic_write_leaves_no_temp_files(model, tmp_path):
    save_checkpoint(model, tmp_path / "m.safetensors")
    save_checkpoint(model, tmp_path / "m.safetensors")  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_score_fn_units_shapes_and_types(model):
    """s_phys(x) = s_scaled(x/scale)/scale; numpy in → numpy out; chunking changes nothing."""
    x = torch.randn(7, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = model.score_fn("cpu", batch_size=3)(x)
    assert s.dtype == torch.float64 and s.shape == x.shape
    net = model.ema_net
    with torch.no_grad():
        manual = net((x / model.scale).float(), torch.tensor(model.sigma_min)) / (
            model.sigma_min * model.scale
        )
    torch.testing.assert_close(s.float(), manual, rtol=1e-5, atol=1e-5)
    s_np = model.score_fn("cpu", batch_size=100)(x.numpy())
    assert isinstance(s_np, np.ndarray)
    np.testing.assert_allclose(s_np, s.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(\.\.\., 8, 8\)"):
        model.score_fn("cpu")(torch.zeros(2, 16, 16))


def test_a_one_level_file_with_the_unused_output_norm_loads(tiny_snapshots, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    one_level = TINY_NET.replace(widths=(4,))
    model = train_score(tiny_snapshots, net_config=one_level, train_config=tiny_train(2),
                        device="cpu")
    path = save_checkpoint(model, tmp_path / "m.safetensors", training_state=False)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    for prefix in ("net/", "ema/module."):  # what such a file held besides the used weights
        tensors[f"{prefix}out_norm.weight"] = torch.ones(4)
        tensors[f"{prefix}out_norm.bias"] = torch.zeros(4)
    old = tmp_path / "old.safetensors"
    save_file(tensors, old, metadata=meta)
    back = load_checkpoint(old, device="cpu")
    x = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.score_fn("cpu")(x), back.score_fn("cpu")(x))
