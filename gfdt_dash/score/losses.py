"""The variance-exploding noise schedule and the denoising score-matching loss (Song et al. 2021).

``σ(t) = σ_min (σ_max/σ_min)^t``, ``x_t = x₀ + σ(t) z``; with the network ``D(x, σ) = σ s_θ(x, σ)``
the λ(t) = σ² weighted DSM loss is ``mean((z + D(x₀ + σz, σ))²)`` (per pixel, over the batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["Denoiser", "VESchedule", "dsm_loss"]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class VESchedule:
    """``σ(t) = σ_min (σ_max/σ_min)^t`` on ``t ∈ [0, 1]``; ``g(t)² = dσ²/dt``."""

    def __init__(self, sigma_min: float, sigma_max: float) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"sigma_max: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}"
            )
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def g2(self, t: torch.Tensor) -> torch.Tensor:
        """Squared diffusion coefficient ``2 σ(t)² ln(σ_max/σ_min)`` of the forward SDE."""
        return 2 * self.sigma(t) ** 2 * self.log_ratio


def dsm_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    schedule: VESchedule,
    generator: torch.Generator,
    eps_t: float = 1e-5,
) -> torch.Tensor:
    """VE denoising score-matching loss of ``denoiser`` on clean scaled fields ``x0 (B, n, n)``.

    Draws ``t ~ U(eps_t, 1)`` and ``z ~ N(0, I)`` from ``generator`` (on ``x0``'s device).
    """
    b = x0.shape[0]
    t = eps_t + (1 - eps_t) * torch.rand(b, generator=generator, device=x0.device, dtype=x0.dtype)
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    sigma = schedule.sigma(t)
    out = denoiser(x0 + sigma[:, None, None] * z, sigma)
    return ((z + out) ** 2).mean()
