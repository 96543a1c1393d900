"""The trained score model and the ONE adapter from network to score (the EMA net at σ_min).

A :class:`ScoreModel` holds the raw network, its EMA average (the weights that are used), the
training state needed to resume, and a JSON-able ``metadata`` dict (system, grid, system config,
network/training configs, data scale, σ's, loss history, diagnostics, code version).

Units: the network works on *scaled* fields ``x/scale``; :meth:`ScoreModel.score_fn` returns the
score of the *physical* fields, ``s_phys(x) = s_scaled(x/scale)/scale`` with
``s_scaled(y) = D_ema(y, σ_min)/σ_min``. :func:`noised_score` is the one place where a network
output becomes a score (``D(y, σ)/σ``); the GFDT score, the sampler and the diagnostics all go
through it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gfdt_dash.devices import resolve_device
from gfdt_dash.score.config import ScoreNetConfig, TrainConfig
from gfdt_dash.score.network import ScoreUNet

__all__ = ["FORMAT", "ScoreFn", "ScoreModel", "make_ema", "noised_score"]

FORMAT = "gfdt-dash-score/1"
ScoreFn = Callable[[Any], Any]


def noised_score(net: ScoreUNet, y: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``∇ log p_σ(y) = D(y, σ)/σ``: the score of the σ-noised *scaled* data ``y`` ``(B, n, n)``
    from the denoiser network (trained to return ``σ ∇ log p_σ``); ``sigma`` a scalar or ``(B,)``.
    """
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    out = net(y, sigma)
    return out / (sigma[:, None, None] if sigma.ndim else sigma)


def make_ema(net: ScoreUNet, decay: float) -> AveragedModel:
    """EMA of ``net``'s weights (and buffers) with ``decay``, via ``torch.optim.swa_utils``."""
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class ScoreModel:
    """A score network with its EMA, training state and metadata.

    ``train_state`` (``None`` for an inference-only model) holds ``optimizer`` (the Adam state
    dict) and ``generator`` (the RNG state as a uint8 tensor) to resume training exactly.
    """

    def __init__(
        self,
        net: ScoreUNet,
        ema: AveragedModel,
        metadata: dict[str, Any],
        train_state: dict[str, Any] | None = None,
    ) -> None:
        self.net = net
        self.ema = ema
        self.metadata = metadata
        self.train_state = train_state

    # -- metadata views ----------------------------------------------------------------------
    @property
    def system(self) -> str:
        return self.metadata["system"]

    @property
    def n(self) -> int:
        return int(self.metadata["n"])

    @property
    def scale(self) -> float:
        return float(self.metadata["scale"])

    @property
    def sigma_min(self) -> float:
        return float(self.metadata["sigma_min"])

    @property
    def sigma_max(self) -> float:
        return float(self.metadata["sigma_max"])

    @property
    def step(self) -> int:
        return int(self.metadata["step"])

    @property
    def history(self) -> dict[str, list]:
        return self.metadata["history"]

    @property
    def diagnostics(self) -> dict[str, Any]:
        return self.metadata.setdefault("diagnostics", {})

    @property
    def net_config(self) -> ScoreNetConfig:
        return ScoreNetConfig.from_dict(self.metadata["net_config"])

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.metadata["train_config"])

    @property
    def system_config(self):
        """The system config the data came from (``None`` for user data without one)."""
        from gfdt_dash.systems import config_from_json

        text = self.metadata.get("system_config")
        return None if text is None else config_from_json(text)

    @property
    def ema_net(self) -> ScoreUNet:
        """The EMA network (the one used for scores); a view, not a copy."""
        return self.ema.module

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def __reduce__(self) -> tuple:
        """Pickled (e.g. sent to a worker process) as its safetensors checkpoint bytes."""
        from gfdt_dash.score import checkpoint

        return (checkpoint._rebuild, (checkpoint.checkpoint_bytes(self), str(self.device)))

    def __repr__(self) -> str:
        return (
            f"ScoreModel(system={self.system!r}, n={self.n}, step={self.step}, "
            f"scale={self.scale:.4g}, sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:.4g})"
        )

    # -- the adapter -------------------------------------------------------------------------
    def score_fn(self, device: str | torch.device = "auto", batch_size: int = 1024) -> ScoreFn:
        """The score ``s(x) ≈ ∇ log p(x)`` of physical fields, from the EMA net at ``σ_min``.

        Returns a callable taking fields shaped ``(..., n, n)`` (a torch tensor on any device, or
        a numpy array) and returning the score with the same shape, type, device and dtype, in
        physical units. It evaluates a private copy of the EMA network on ``device`` in eval
        mode without gradients, ``batch_size`` fields at a time.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        dev = resolve_device(device)
        net = copy.deepcopy(self.ema_net).to(dev).eval().requires_grad_(False)
        dtype = self.dtype
        n, scale, sigma_min = self.n, self.scale, self.sigma_min

        def score(x):
            as_numpy = isinstance(x, np.ndarray)
            xt = torch.from_numpy(x) if as_numpy else x
            if not isinstance(xt, torch.Tensor):
                raise TypeError(f"x: expected a torch tensor or numpy array, got {type(x)}")
            if xt.ndim < 2 or tuple(xt.shape[-2:]) != (n, n):
                raise ValueError(
                    f"x: expected fields shaped (..., {n}, {n}) for this model, "
                    f"got {tuple(xt.shape)}"
                )
            flat = xt.reshape(-1, n, n)
            out = torch.empty_like(flat)
            with torch.inference_mode():
                for i in range(0, flat.shape[0], batch_size):
                    y = flat[i : i + batch_size].to(device=dev, dtype=dtype) / scale
                    s = noised_score(net, y, sigma_min) / scale
                    out[i : i + batch_size] = s.to(device=out.device, dtype=out.dtype)
            out = out.reshape(xt.shape)
            return out.numpy() if as_numpy else out

        return score
