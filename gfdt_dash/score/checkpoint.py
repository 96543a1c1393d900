"""Checkpoints: one ``.safetensors`` file, tensors plus JSON metadata, no pickle (SPEC §3).

Layout of the file's tensors: ``net/<name>`` (raw weights), ``ema/<name>`` (the EMA
``AveragedModel`` state, including ``n_averaged``), and, unless saved inference-only,
``optim/<param index>/<key>`` (Adam state) and ``rng/generator`` (the training RNG state). The
safetensors header's ``__metadata__`` holds one key, ``gfdt_dash``: the model's metadata JSON plus
the optimiser's ``param_groups``.

Loading parses the file with ``safetensors`` (a length-prefixed JSON header and raw buffers; it
cannot execute code), so a pickle or a ``torch.save`` archive disguised as a checkpoint is refused
with a ``ValueError``, as is a truncated file, another format, a model for another system or grid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gfdt_dash.data import atomic_write_bytes
from gfdt_dash.devices import resolve_device
from gfdt_dash.score.config import ScoreNetConfig, TrainConfig
from gfdt_dash.score.model import FORMAT, ScoreModel, make_ema
from gfdt_dash.score.network import ScoreUNet

__all__ = ["checkpoint_bytes", "load_checkpoint", "model_from_bytes", "save_checkpoint"]

_META_KEY = "gfdt_dash"


def _tensors(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared/non-contiguous storage: store independent CPU copies.
    return {f"{prefix}/{k}": v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_checkpoint(
    model: ScoreModel, path: str | os.PathLike, *, training_state: bool = True
) -> Path:
    """Write ``model`` to ``path`` (one ``.safetensors`` file) atomically; returns the path.

    ``training_state=False`` leaves out the optimiser and RNG state (an inference-only file,
    about a third of the size, which cannot be resumed).
    """
    return atomic_write_bytes(path, checkpoint_bytes(model, training_state=training_state))


def checkpoint_bytes(model: ScoreModel, *, training_state: bool = True) -> bytes:
    """The bytes :func:`save_checkpoint` writes (also how a model travels between processes)."""
    tensors = {**_tensors("net", model.net.state_dict()), **_tensors("ema", model.ema.state_dict())}
    meta: dict[str, Any] = dict(model.metadata)
    if training_state and model.train_state is not None:
        opt = model.train_state["optimizer"]
        for idx, state in opt["state"].items():
            tensors.update(_tensors(f"optim/{idx}", state))
        tensors["rng/generator"] = model.train_state["generator"].to("cpu").clone()
        meta["optimizer_param_groups"] = opt["param_groups"]
    return st_save(tensors, metadata={_META_KEY: json.dumps(meta)})


def _split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    p = prefix + "/"
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def load_checkpoint(
    path: str | os.PathLike,
    *,
    expect_system: str | None = None,
    expect_n: int | None = None,
    device: str | torch.device = "auto",
) -> ScoreModel:
    """Load a checkpoint written by :func:`save_checkpoint` onto ``device``.

    Never unpickles. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the
    problem for anything else: not a safetensors file (corrupt, truncated, a pickle), not a
    gfdt-dash score checkpoint, a model for another system (``expect_system``) or grid size
    (``expect_n``), or weights that do not fit the recorded network config.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"path: no such checkpoint file {str(path)!r}")
    return model_from_bytes(
        path.read_bytes(),
        expect_system=expect_system,
        expect_n=expect_n,
        device=device,
        source=f"path: {str(path)!r}",
    )


def model_from_bytes(
    raw: bytes,
    *,
    expect_system: str | None = None,
    expect_n: int | None = None,
    device: str | torch.device = "auto",
    source: str = "checkpoint bytes",
) -> ScoreModel:
    """:func:`load_checkpoint` for bytes in memory; ``source`` names them in errors."""
    try:
        tensors = st_load(raw)
        header_meta = _read_header_metadata(raw)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{source} is not a readable safetensors checkpoint (corrupt, truncated or "
            f"another format; pickles are never loaded): {exc}"
        ) from exc
    try:
        meta = json.loads(header_meta[_META_KEY])
        if meta.get("format") != FORMAT:
            raise KeyError("format")
        net_config = ScoreNetConfig.from_dict(meta["net_config"])
        TrainConfig.from_dict(meta["train_config"])
        system, n = meta["system"], int(meta["n"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{source} is a safetensors file but not a gfdt-dash score checkpoint "
            f"(format {FORMAT}); problem: {exc!r}"
        ) from exc
    if expect_system is not None and system != expect_system:
        raise ValueError(
            f"checkpoint: {source} was trained for system {system!r}, not {expect_system!r}"
        )
    if expect_n is not None and n != int(expect_n):
        raise ValueError(
            f"checkpoint: {source} was trained on a {n}×{n} grid, not {expect_n}×{expect_n}"
        )
    dev = resolve_device(device)
    param_groups = meta.pop("optimizer_param_groups", None)
    net = ScoreUNet(net_config, n=n)
    ema = make_ema(net, float(meta["train_config"]["ema_decay"]))
    try:
        net.load_state_dict(_split(tensors, "net"))
        ema.load_state_dict(_split(tensors, "ema"))
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint: {source} holds weights that do not fit its network config: {exc}"
        ) from exc
    dtype = net.state_dict()["final.weight"].dtype
    net.to(dev, dtype)
    ema.to(dev, dtype)
    train_state = None
    if param_groups is not None and "rng/generator" in tensors:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, v in _split(tensors, "optim").items():
            idx, name = key.split("/", 1)
            state.setdefault(int(idx), {})[name] = v.to(dev) if name != "step" else v
        train_state = {
            "optimizer": {"state": state, "param_groups": [_group(g) for g in param_groups]},
            "generator": tensors["rng/generator"],
        }
    return ScoreModel(net, ema, meta, train_state)


def _rebuild(raw: bytes, device: str) -> ScoreModel:
    """Unpickling hook of :class:`ScoreModel` (see ``ScoreModel.__reduce__``)."""
    return model_from_bytes(raw, device=device)


def _group(group: dict[str, Any]) -> dict[str, Any]:
    """JSON turned tuples (Adam's ``betas``) into lists: restore them."""
    return {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}


def _read_header_metadata(raw: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (the library's ``load`` does not return it)."""
    if len(raw) < 8:
        raise ValueError("file shorter than a safetensors header")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError("header length exceeds the file size")
    header = json.loads(raw[8 : 8 + size].decode("utf-8"))
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise ValueError("no gfdt-dash metadata in the safetensors header")
    return meta
