"""Frozen, validated configs of the score network (a U-Net with circular padding) and of its
training (variance-exploding denoising score matching).

Presets: ``paper`` reconstructs the original study's U-Net (widths 32/64/128/256, 8 residual
blocks at the bottleneck) and optimiser (a GPU job: 11 M parameters, ≈ 45 training samples/s on
one CPU thread); ``classroom`` is a much smaller network (widths 8/16/32, no residual blocks,
16,825 parameters) that learns a useful score of the 16×16 classroom data in its 2000 steps of
64 in 20–25 CPU-seconds of one thread; ``cpu_paper`` is the network and training that
``gfdt-dash reproduce --preset paper`` uses on a CPU: the shipped Allen–Cahn classroom model's
layout (widths 16/32/64 with the Gaussian skip, 0.21 M parameters, ≈ 600 training samples/s at
32×32 on one thread) trained for 8000 steps of 64 with a cosine decay, about 15 CPU-minutes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from gfdt_dash.validation import check_field, spec

__all__ = ["ScoreNetConfig", "TrainConfig"]


class _Config:
    """Validation, presets and (de)serialisation shared by the two configs."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.metadata:
                object.__setattr__(  # a plain Python value: numpy scalars converted
                    self, f.name, check_field(f.name, getattr(self, f.name), f.metadata)
                )
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks of a subclass."""

    @classmethod
    def preset(cls, name: str = "classroom", **overrides: Any):
        """A named preset (``classroom``, ``paper`` or ``cpu_paper``), optionally with overrides."""
        if not isinstance(name, str) or name not in cls.presets:
            raise ValueError(
                f"preset: unknown preset {name!r} for {cls.__name__}; "
                f"allowed: {', '.join(cls.presets)}"
            )
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{unknown[0]}: not a field of {cls.__name__}")
        return cls(**{**cls.presets[name], **overrides})

    def replace(self, **overrides: Any):
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"{unknown[0]}: not a field of {type(self).__name__}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-native values (tuples become lists)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__}: must be a mapping of field names, got {d!r:.60}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names, key=str)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a field of {cls.__name__}; unknown {unknown}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


@dataclass(frozen=True)
class ScoreNetConfig(_Config):
    """Layout of the noise-conditional U-Net (see :class:`gfdt_dash.score.network.ScoreUNet`).

    ``widths[0]`` is the full-resolution width; each further entry halves the grid with a
    stride-2 convolution, so the grid size must be divisible by ``2**(len(widths) - 1)``.
    ``n_res_blocks`` residual blocks run at the coarsest level (the bottleneck). GroupNorm uses
    ``min(groups, channels // 4)`` groups (at least 1). ``embed_dim`` is the width of the
    Gaussian-Fourier noise embedding (of ``log σ``, random frequencies with std
    ``fourier_scale``). ``mean_bypass`` routes the spatial mean (the k = 0 mode) around the
    U-Net through a small dense branch, as in the original study's January 2024 configs.

    ``gaussian_skip`` (not in the original study; on in the classroom preset) adds the exact
    denoiser of the Gaussian with the training data's mean and per-mode variance ``λ_k`` and scales
    the U-Net by ``σ/√(1+σ²)``: ``D(x, σ) = −σ F⁻¹[(x̂ − μ̂)/(λ_k + σ²)] + σ/√(1+σ²) U(x, σ)``.
    Without it a small network trained briefly cannot resolve the tiny outputs ``σ_min x/λ_k`` of
    the high-variance modes, and its σ_min score is wrong there (measured: Stein error ≈ 3 on
    the OU classroom data); with it the U-Net learns only the non-Gaussian correction, in
    score units of O(1) at σ_min. The score is still ``D(x, σ)/σ``.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)
    n_res_blocks: int = spec(8, 0, 64, "residual blocks at the bottleneck", integer=True)
    embed_dim: int = spec(256, 4, 4096, "noise-embedding width (even)", integer=True)
    groups: int = spec(32, 1, 256, "maximum GroupNorm groups", integer=True)
    fourier_scale: float = spec(16.0, 0.0, 1e3, "std of the random Fourier frequencies",
                                lo_open=True)
    mean_bypass: bool = spec(False, choices=(False, True))
    gaussian_skip: bool = spec(False, choices=(False, True))

    # Classroom: no residual blocks; 2000 steps are step-limited rather than network-limited. On
    # classroom data (simulation seeds 1–4, training seeds 0 and 1), the same U-Net with 2
    # residual blocks at the bottleneck (56,185 parameters) reached, in 2000 steps, a held-out
    # score error 0–2 % lower on Allen–Cahn and a held-out loss 1 % lower on Navier–Stokes, in
    # 1.4× the CPU time; in equal CPU time (2840 steps) this one is 7 % and 1 % better. Two
    # levels (widths 8/16) were 2.2× faster per step but 4–5 % worse at equal steps on
    # Allen–Cahn, and on Navier–Stokes still worse with 30 % more steps.
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "classroom": dict(
            widths=(8, 16, 32), n_res_blocks=0, embed_dim=32, groups=4, gaussian_skip=True
        ),
        "paper": dict(widths=(32, 64, 128, 256), n_res_blocks=8, embed_dim=256, groups=32),
        "cpu_paper": dict(
            widths=(16, 32, 64), n_res_blocks=2, embed_dim=32, groups=4, gaussian_skip=True
        ),
    }

    def _validate(self) -> None:
        w = self.widths
        if isinstance(w, tuple) and all(isinstance(c, np.integer) for c in w):
            w = tuple(map(int, w))  # numpy integers are integers
            object.__setattr__(self, "widths", w)
        if not isinstance(w, tuple) or not 1 <= len(w) <= 6:
            raise ValueError(f"widths: expected a tuple of 1..6 channel counts, got {w!r}")
        for c in w:
            if not isinstance(c, int) or isinstance(c, bool) or not 4 <= c <= 1024 or c % 4:
                raise ValueError(
                    f"widths: each width must be a multiple of 4 in [4, 1024], got {w!r}"
                )
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim: must be even, got {self.embed_dim}")

    @property
    def downsampling(self) -> int:
        """The factor by which the grid shrinks at the bottleneck; n must be divisible by it."""
        return 2 ** (len(self.widths) - 1)

    def check_grid(self, n: int) -> None:
        if n % self.downsampling or n < self.downsampling:
            raise ValueError(
                f"n: grid size {n} is not divisible by 2**(len(widths)-1) = {self.downsampling}; "
                f"use fewer widths or another grid"
            )


@dataclass(frozen=True)
class TrainConfig(_Config):
    """Variance-exploding denoising score matching with Adam, grad clipping, EMA.

    ``σ(t) = σ_min (σ_max/σ_min)^t`` with ``t ~ U(eps_t, 1)``, in units of the scaled data (the
    data are divided by their pixel standard deviation). ``sigma_max=None`` takes
    ``sigma_max_factor`` × the largest pairwise distance among up to ``sigma_max_pairs`` random
    training snapshots. ``warmup`` is a linear learning-rate warm-up in steps; after it,
    ``lr_decay="cosine"`` lowers the rate as ``lr (1 + cos πu)/2``, ``u`` the fraction of the
    post-warm-up steps done (0 at ``n_steps``; resuming to a larger ``n_steps`` stretches what is
    left of the schedule). Validation loss is
    evaluated every ``eval_every`` steps on the held-out ``val_fraction`` of the snapshots (the
    last snapshot times of each member: less correlated with training than a random split).
    """

    lr: float = spec(2e-4, 0.0, 1.0, "Adam learning rate", lo_open=True)
    grad_clip: float = spec(1.0, 0.0, 1e6, "gradient-norm clip (0: off)")
    ema_decay: float = spec(0.999, 0.0, 1.0, "EMA decay of the weights")
    batch_size: int = spec(128, 1, 65536, "batch size", integer=True)
    n_steps: int = spec(20000, 1, 10_000_000, "total optimiser steps", integer=True)
    warmup: int = spec(0, 0, 1_000_000, "linear learning-rate warm-up steps", integer=True)
    lr_decay: str = spec("constant", choices=("constant", "cosine"))
    val_fraction: float = spec(0.2, 0.0, 0.9, "held-out fraction of the snapshots")
    eval_every: int = spec(200, 1, 1_000_000, "steps between validation losses", integer=True)
    val_batches: int = spec(4, 1, 1000, "batches per validation loss", integer=True)
    sigma_min: float = spec(0.01, 0.0, 100.0, "smallest noise σ_min (scaled units)",
                            lo_open=True)
    sigma_max: float | None = None
    sigma_max_factor: float = spec(1.0, 0.0, 100.0, "σ_max / max pairwise distance",
                                   lo_open=True)
    sigma_max_pairs: int = spec(256, 2, 100000, "snapshots sampled for σ_max", integer=True)
    eps_t: float = spec(1e-5, 0.0, 0.5, "smallest diffusion time t")

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "classroom": dict(lr=1e-3, batch_size=64, n_steps=2000, warmup=100, eval_every=250),
        "paper": dict(lr=2e-4, batch_size=128, n_steps=100_000, warmup=5000, eval_every=1000),
        "cpu_paper": dict(
            lr=1e-3, batch_size=64, n_steps=8000, warmup=200, lr_decay="cosine", eval_every=500
        ),
    }

    def _validate(self) -> None:
        if self.ema_decay >= 1:
            raise ValueError(
                "ema_decay: 1.0 would keep the initial weights forever (the EMA weights are the "
                "ones used); allowed range [0, 1)"
            )
        smax = self.sigma_max
        if smax is not None and (not isinstance(smax, int | float) or not smax > self.sigma_min):
            raise ValueError(
                f"sigma_max: must be None or a number > sigma_min={self.sigma_min}, got {smax!r}"
            )
