"""Checkpoints: one ``.safetensors`` file, tensors plus JSON metadata, no pickle.

Layout of the file's tensors: ``net/<name>`` (raw weights), ``ema/<name>`` (the EMA
``AveragedModel`` state, including ``n_averaged``), and, unless saved inference-only,
``optim/<param index>/<key>`` (Adam state) and ``rng/generator`` (the training RNG state). The
safetensors header's ``__metadata__`` holds one key, ``gfdt_dash``: the model's metadata JSON plus
the optimiser's ``param_groups``.

Loading parses the file with ``safetensors`` (a length-prefixed JSON header and raw buffers; it
cannot execute code), so a pickle or a ``torch.save`` archive disguised as a checkpoint is refused
with a ``ValueError``, as is a truncated file, another format, a model for another system or grid.
Every metadata value is checked by type and range before use, and the network the metadata
describe is laid out on PyTorch's ``meta`` device (no memory) and compared tensor by tensor with
the weights in the file before it is built, so a header cannot make the loader allocate more
than the file holds.
"""

from __future__ import annotations

import json
import math
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
    model: ScoreModel,
    path: str | os.PathLike,
    *,
    training_state: bool = True,
    name: str = "path",
) -> Path:
    """Write ``model`` to ``path`` (one ``.safetensors`` file) atomically; returns the path.

    ``training_state=False`` leaves out the optimiser and RNG state (an inference-only file,
    about a third of the size, which cannot be resumed). ``name`` names the path in errors.
    """
    if not isinstance(model, ScoreModel):
        raise TypeError(f"model: expected a ScoreModel, got {type(model).__name__}")
    data = checkpoint_bytes(model, training_state=training_state)
    return atomic_write_bytes(path, data, name=name)


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
    name: str = "path",
) -> ScoreModel:
    """Load a checkpoint written by :func:`save_checkpoint` onto ``device``.

    Never unpickles. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the
    problem for anything else: not a safetensors file (corrupt, truncated, a pickle), not a
    gfdt-dash score checkpoint, a model for another system (``expect_system``) or grid size
    (``expect_n``), or weights that do not fit the recorded network config. ``name`` names the
    path in errors (e.g. ``"--model"``).
    """
    if not isinstance(path, str | os.PathLike) or not str(os.fspath(path)).strip():
        raise ValueError(f"{name}: expected a checkpoint file path, got {path!r:.60}")
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{name}: {str(path)!r} is not a regular file")
        raise FileNotFoundError(f"{name}: no such checkpoint file {str(path)!r}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {str(path)!r} ({exc.strerror})") from exc
    return model_from_bytes(
        raw,
        expect_system=expect_system,
        expect_n=expect_n,
        device=device,
        source=f"{name}: {str(path)!r}",
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
    except (SafetensorError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(
            f"{source} is not a readable safetensors checkpoint (corrupt, truncated or "
            f"another format; pickles are never loaded): {exc}"
        ) from exc
    try:
        meta = _check_metadata(header_meta[_META_KEY])
        net_config = ScoreNetConfig.from_dict(meta["net_config"])
        TrainConfig.from_dict(meta["train_config"])
        system, n = meta["system"], meta["n"]
        net_config.check_grid(n)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(
            f"{source} is a safetensors file but not a valid gfdt-dash score checkpoint "
            f"(format {FORMAT}); problem: {_describe(exc)}"
        ) from None
    if expect_system is not None and system != expect_system:
        raise ValueError(
            f"checkpoint: {source} was trained for system {system!r}, not {expect_system!r}"
        )
    if expect_n is not None and n != int(expect_n):
        raise ValueError(
            f"checkpoint: {source} was trained on a {n}×{n} grid, not {expect_n}×{expect_n}"
        )
    # A one-level network (a single width) once carried an output norm that its forward pass
    # never used; files written then hold its weights, which are dropped.
    tensors = {
        k: v
        for k, v in tensors.items()
        if not k.removeprefix("net/").removeprefix("ema/module.").startswith("out_norm.")
    }
    _check_layout(net_config, n, tensors, source)
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
        try:
            for key, v in _split(tensors, "optim").items():
                idx, name = key.split("/", 1)
                state.setdefault(int(idx), {})[name] = v.to(dev) if name != "step" else v
        except ValueError:
            raise ValueError(f"checkpoint: {source} has a malformed optimiser state") from None
        train_state = {
            "optimizer": {"state": state, "param_groups": [_group(g) for g in param_groups]},
            "generator": tensors["rng/generator"],
        }
    return ScoreModel(net, ema, meta, train_state)


def _system_names() -> tuple[str, ...]:
    from gfdt_dash.systems import system_names

    return system_names()


# Required metadata: key → (check, what it must be).
def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_REQUIRED: dict[str, tuple[Any, str]] = {
    "system": (lambda v: v == "custom" or v in _system_names(), "a system name"),
    "n": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 4 <= v <= 256 and v % 2 == 0,
        "an even integer grid size in [4, 256]",
    ),
    "net_config": (lambda v: isinstance(v, dict), "an object"),
    "train_config": (lambda v: isinstance(v, dict), "an object"),
    "scale": (_positive, "a positive finite number"),
    "sigma_min": (_positive, "a positive finite number"),
    "sigma_max": (_positive, "a positive finite number"),
    "step": (_count, "a non-negative integer"),
}
_OPTIONAL: dict[str, tuple[Any, str]] = {
    "system_config": (lambda v: v is None or isinstance(v, str), "null or a JSON text"),
    "history": (
        lambda v: isinstance(v, dict) and all(isinstance(x, list) for x in v.values()),
        "an object of lists",
    ),
    "diagnostics": (lambda v: isinstance(v, dict), "an object"),
    "optimizer_param_groups": (
        lambda v: isinstance(v, list)
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in v),
        "a list of parameter groups",
    ),
}


def _check_metadata(text: Any) -> dict[str, Any]:
    """The checkpoint metadata, every value used later checked by type and range."""
    if not isinstance(text, str):
        raise ValueError("the metadata is not a JSON text")
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError(f"the metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ValueError(f"format: {meta.get('format')!r}, expected {FORMAT!r}")
    for key, (ok, what) in _REQUIRED.items():
        if key not in meta:
            raise ValueError(f"{key}: missing from the metadata")
        if not ok(meta[key]):
            raise ValueError(f"{key}: must be {what}, got {meta[key]!r:.80}")
    for key, (ok, what) in _OPTIONAL.items():
        if key in meta and not ok(meta[key]):
            raise ValueError(f"{key}: must be {what}, got {meta[key]!r:.80}")
    if not meta["sigma_max"] > meta["sigma_min"]:
        raise ValueError(
            f"sigma_max: {meta['sigma_max']} must exceed sigma_min={meta['sigma_min']}"
        )
    if meta.get("system_config") is not None:
        from gfdt_dash.systems import config_from_dict

        raw = json.loads(meta["system_config"])
        if not isinstance(raw, dict):
            raise ValueError("system_config: must be a JSON object")
        config = config_from_dict(raw)
        if config.system != meta["system"] or config.n != meta["n"]:
            raise ValueError(
                f"system_config: describes {config.system} n={config.n}, the checkpoint "
                f"{meta['system']} n={meta['n']}"
            )
    meta.setdefault("history", {"step": [], "train_loss": [], "val_step": [], "val_loss": []})
    meta.setdefault("diagnostics", {})
    return meta


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "the metadata JSON is nested too deeply"
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)


def _check_layout(
    net_config: ScoreNetConfig, n: int, tensors: dict[str, torch.Tensor], source: str
) -> None:
    """Compare the network the metadata describe with the weights in the file, before building
    it: the layout comes from PyTorch's ``meta`` device, which allocates no memory."""
    with torch.device("meta"):
        layout = {k: tuple(v.shape) for k, v in ScoreUNet(net_config, n=n).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in _split(tensors, "net").items()}
    if layout != stored:
        expected = sum(math.prod(s) for s in layout.values())
        held = sum(math.prod(s) for s in stored.values())
        diff = sorted(set(layout) ^ set(stored)) or [
            k for k in layout if layout[k] != stored.get(k)
        ]
        raise ValueError(
            f"checkpoint: {source} holds weights that do not fit its network config: the config "
            f"describes {expected:,} numbers in {len(layout)} tensors, the file holds {held:,} "
            f"in {len(stored)} (first difference: {diff[0]!r})"
        )


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
