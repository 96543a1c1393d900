"""Noise-conditional U-Net with circular padding everywhere (after the original study's
``NoiseConditionalScoreNetwork`` in CliMAgen.jl; reference §2).

The network ``D(x, σ)`` maps a batch of scaled fields ``(B, n, n)`` and noise levels ``(B,)`` to
``(B, n, n)``; it is trained to return ``σ ∇log p_σ(x)`` (≈ −z for ``x = x₀ + σz``), so the score
is ``D(x, σ)/σ`` (:mod:`gfdt_dash.score.model` holds the one adapter that does this).

Every convolution, including the stride-2 down-sampling ones and the ones after the
nearest-neighbour up-sampling, pads circularly: the fields live on a periodic grid, and the network
commutes with translations by multiples of its total stride (``2**(levels-1)`` pixels; the tests
check this). PyTorch's default Kaiming-uniform initialisation is used (the original used Flux's
Glorot-uniform; harmless).

Speed (CPU training and sampling are dominated by the convolutions around the full-resolution
maps): the circular padding has a hand-written backward (:class:`_CircularPad`); each "nearest ×2
up-sampling + 3×3 conv" is computed at the coarse resolution as one 2×2 conv with four output
channels per channel (one per output-pixel parity), whose outputs are interleaved into place
(:class:`UpsampleConv`); and the per-level ``dense(embedding)`` projections are one matrix
product (:meth:`ScoreUNet._shifts`). All compute the same function with the same parameters as
the textbook layers (``nn.Conv2d(padding_mode="circular")`` after ``F.interpolate``, one
``nn.Linear`` call per level) to float32 round-off (the merged kernel taps are summed before the
products); ``tests/score/test_network.py`` checks this against stored outputs and
``benchmarks/bench_score.py --compare REV`` measures the effect.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from gfdt_dash.score.config import ScoreNetConfig

__all__ = ["CircularConv2d", "ScoreUNet", "UpsampleConv"]


class _CircularPad(torch.autograd.Function):
    """One cell of periodic padding on every side of ``(B, C, H, W)`` maps.

    The forward is ``F.pad(mode="circular")``; the backward folds the border gradients onto the
    opposite edges with two copies and four slice additions, where autograd's own backward of
    the padding zero-fills and scatters every slice it copied (several times slower).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 1, 1, 1), mode="circular")

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad[..., 1:-1].clone()  # fold along x
        g[..., 0] += grad[..., -1]
        g[..., -1] += grad[..., 0]
        out = g[..., 1:-1, :].clone()  # then along y
        out[..., 0, :] += g[..., -1, :]
        out[..., -1, :] += g[..., 0, :]
        return out


# _STRIDE_TAPS[a, p, u]: kernel row u (offset u - 1) of a stride-2 conv carries the gradient of
# output row i + p to input row 2i + a (the rows 2r + u - 1 ≡ 2i + a with r = i + p).
_STRIDE_TAPS = ((0, 1, 0), (0, 0, 0)), ((0, 0, 1), (1, 0, 0))


@functools.cache
def _stride_taps(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(9, 16)``: row ``(u, v)``, column ``(a, b, p, q)`` holds
    ``_STRIDE_TAPS[a, p, u] · _STRIDE_TAPS[b, q, v]`` (zeros and ones). Made outside inference
    mode even when first asked for inside it, so that the cached tensor also serves training."""
    with torch.inference_mode(False):
        taps = torch.tensor(_STRIDE_TAPS, dtype=dtype, device=device)
        return torch.einsum("apu,bqv->uvabpq", taps, taps).reshape(9, 16)


class _StrideTwoConv(torch.autograd.Function):
    """Circular 3×3 conv with stride 2 of an even-sized map; forward as ``F.conv2d`` on the padded
    map. Backward: weight and bias gradients from ``convolution_backward``; the input gradient
    as a stride-1 2×2 conv of the (right/bottom circularly padded) output gradient with four
    channels per input channel (one per input-pixel parity, ``_STRIDE_TAPS``) and a pixel
    shuffle, where the strided transposed conv it replaces is several times slower on CPU.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="circular")
        ctx.save_for_backward(padded, weight)
        return F.conv2d(padded, weight, bias, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        padded, weight = ctx.saved_tensors
        grad = grad.contiguous()
        c_out, c_in = weight.shape[:2]
        grad_x = None
        if ctx.needs_input_grad[0]:
            taps = _stride_taps(weight.dtype, weight.device)
            kernel = (weight.transpose(0, 1).reshape(c_in, c_out, 9) @ taps).view(
                c_in, c_out, 2, 2, 2, 2
            )
            kernel = kernel.permute(0, 2, 3, 1, 4, 5).reshape(4 * c_in, c_out, 2, 2)
            grad_x = F.pixel_shuffle(
                F.conv2d(F.pad(grad, (0, 1, 0, 1), mode="circular"), kernel), 2
            )
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad,
            padded,
            weight,
            [c_out],
            [2, 2],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            1,
            [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
        )
        return grad_x, grad_w, grad_b


class _TapSum(torch.autograd.Function):
    """``out[:, 0, h, w] = Σ_{u,v} z[:, 3u + v, h + u - 1, w + v - 1]`` (indices mod the map size):
    the sum of nine per-tap maps, each shifted circularly by its tap's offset. Backward: the
    output gradient shifted back by each offset, one channel per tap."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        h, w = z.shape[-2:]
        padded = F.pad(z, (1, 1, 1, 1), mode="circular")
        out = padded[:, :1, :h, :w].clone()
        for tap in range(1, 9):
            u, v = divmod(tap, 3)
            out += padded[:, tap : tap + 1, u : u + h, v : v + w]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        h, w = grad.shape[-2:]
        padded = F.pad(grad, (1, 1, 1, 1), mode="circular")
        return torch.cat(
            [
                padded[:, :, 2 - u : 2 - u + h, 2 - v : 2 - v + w]
                for u in range(3)
                for v in range(3)
            ],
            dim=1,
        )


class CircularConv2d(nn.Conv2d):
    """3×3 convolution with circular padding: ``nn.Conv2d(c_in, c_out, 3, stride, padding=1,
    padding_mode="circular")`` (same parameters, same output) with a cheaper backward
    (:class:`_CircularPad`; :class:`_StrideTwoConv` for stride 2 on even-sized maps).

    With one output channel (the network's last layer) and stride 1 it is computed as a 1×1 conv
    to nine per-tap maps and their circularly shifted sum (:class:`_TapSum`), the same products
    summed in another order (float32 round-off): oneDNN's kernels for a single output channel
    are several times slower than for nine.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (2, 2) and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
            return _StrideTwoConv.apply(x, self.weight, self.bias)
        if self.out_channels == 1 and self.stride == (1, 1):
            c_in = self.in_channels
            per_tap = self.weight.reshape(c_in, 9).t().reshape(9, c_in, 1, 1)
            return _TapSum.apply(F.conv2d(x, per_tap)) + self.bias.view(1, 1, 1, 1)
        return F.conv2d(_CircularPad.apply(x), self.weight, self.bias, self.stride)


# _PHASE[a, p, u]: the share of kernel row u (offset u - 1) that lands on coarse row i - 1 + p
# when fine row 2i + a of a nearest ×2 up-sampled map is convolved (fine rows 2i + a + u - 1
# come from coarse rows ⌊(2i + a + u - 1)/2⌋). Even rows (a = 0) only see coarse rows i - 1 and
# i, odd rows (a = 1) only i and i + 1: _WINDOW[a] keeps those two rows of _PHASE[a], so
# _WINDOW[a, p, u] is the share of row u on coarse row i - 1 + a + p.
_PHASE = ((1, 0, 0), (0, 1, 1), (0, 0, 0)), ((0, 0, 0), (1, 1, 0), (0, 0, 1))
_WINDOW = _PHASE[0][:2], _PHASE[1][1:]


@functools.cache
def _window_taps(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(9, 16)``: row ``(u, v)``, column ``(a, b, p, q)`` holds
    ``_WINDOW[a, p, u] · _WINDOW[b, q, v]`` (zeros and ones). Made outside inference mode even
    when first asked for inside it (a score evaluation before any training), so that the cached
    tensor can be saved for a later training step's backward."""
    with torch.inference_mode(False):
        window = torch.tensor(_WINDOW, dtype=dtype, device=device)
        return torch.einsum("apu,bqv->uvabpq", window, window).reshape(9, 16)


class _Interleave(torch.autograd.Function):
    """``(B, 4C, m + 1, m + 1)`` parity maps to the ``(B, C, 2m, 2m)`` fine map: fine pixel
    ``(2i + a, 2j + b)`` is channel ``4c + 2a + b`` at ``(i + a, j + b)``.

    One strided view (the indices enter the offset linearly) and one copy each way: a pixel
    shuffle that also picks each parity's ``m × m`` window.
    """

    @staticmethod
    def _view(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, c4, m1, _ = shape
        s_b, s_c, s_r, s_s = t.stride()
        size = (b, c4 // 4, m1 - 1, 2, m1 - 1, 2)
        return t.as_strided(size, (s_b, 4 * s_c, s_r, 2 * s_c + s_r, s_s, s_c + s_s))

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        y = y.contiguous()
        ctx.shape = y.shape
        b, c4, m1, _ = y.shape
        return _Interleave._view(y, y.shape).reshape(b, c4 // 4, 2 * (m1 - 1), 2 * (m1 - 1))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.new_zeros(ctx.shape)
        view = _Interleave._view(out, ctx.shape)
        view.copy_(grad.reshape(view.shape))
        return out


class UpsampleConv(CircularConv2d):
    """Nearest ×2 up-sampling followed by a circular 3×3 convolution, as one coarse-grid conv.

    Output pixel ``(2i + a, 2j + b)`` only sees the coarse pixels ``i - 1 + a + p``,
    ``j - 1 + b + q`` (``p, q ∈ {0, 1}``) through a 2×2 kernel whose taps are sums of the
    original ones (``_WINDOW``); the four parities become four output channels of one 2×2 conv
    on the circularly padded ``(m + 2, m + 2)`` map (``(m + 1)²`` outputs each), and
    :class:`_Interleave` puts each parity's window in place. Same parameters and (to round-off)
    the same output as ``CircularConv2d(F.interpolate(x, scale_factor=2))``, with 9/4 fewer input
    pixels, none of the up-sampled copies, and 4/9 of the taps (a 3×3 coarse kernel per parity
    would hold five structural zeros).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = _window_taps(self.weight.dtype, self.weight.device)
        c_out, c_in = self.weight.shape[:2]
        kernel = (self.weight.reshape(c_out, c_in, 9) @ taps).view(c_out, c_in, 2, 2, 2, 2)
        kernel = kernel.permute(0, 2, 3, 1, 4, 5).reshape(4 * c_out, c_in, 2, 2)
        out = F.conv2d(_CircularPad.apply(x), kernel, self.bias.repeat_interleave(4))
        return _Interleave.apply(out)


def _conv(c_in: int, c_out: int, stride: int = 1) -> CircularConv2d:
    return CircularConv2d(c_in, c_out, stride=stride)


def _norm(channels: int, max_groups: int) -> nn.GroupNorm:
    groups = max(1, min(max_groups, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


class GaussianFourierEmbedding(nn.Module):
    """``[sin 2πWc, cos 2πWc]`` of ``c = log σ`` with fixed random ``W ~ N(0, scale²)``.

    ``W`` is a buffer drawn from a fixed-seed generator, so a fresh network with the same config
    embeds identically and checkpoints carry it.
    """

    def __init__(self, embed_dim: int, scale: float) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("W", torch.randn(embed_dim // 2, generator=gen) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        proj = 2 * math.pi * c[:, None] * self.W[None, :]
        return torch.cat([proj.sin(), proj.cos()], dim=-1)


class ResBlock(nn.Module):
    """GN+SiLU → conv → + Dense(embedding) → GN+SiLU → conv, plus the skip connection."""

    def __init__(self, channels: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(channels, groups)
        self.conv1 = _conv(channels, channels)
        self.dense = nn.Linear(embed_dim, channels)
        self.norm2 = _norm(channels, groups)
        self.conv2 = _conv(channels, channels)

    def forward(self, h: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """``shift``: this block's ``dense(embedding)`` as ``(B, channels, 1, 1)``."""
        out = self.conv1(F.silu(self.norm1(h))) + shift
        out = self.conv2(F.silu(self.norm2(out)))
        return h + out


class ScoreUNet(nn.Module):
    """U-Net ``D(x, σ)`` on ``(B, n, n)`` fields; see the module docstring.

    Encoder: conv (1→w₀), then a stride-2 conv per further width, each followed by
    ``+ Dense(embedding)`` and GN+SiLU. Bottleneck: ``n_res_blocks`` residual blocks. Decoder:
    per level, nearest ×2 up-sampling + circular conv to the next-finer width
    (:class:`UpsampleConv`), ``+ Dense``,
    GN+SiLU, concatenation with the encoder's feature map; a final conv to one channel.

    With ``mean_bypass`` the U-Net sees the field minus its spatial mean, its output is made
    mean-free, and a dense branch on (mean, embedding) supplies the uniform part of the output.
    """

    def __init__(self, config: ScoreNetConfig | None = None, n: int | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ScoreNetConfig.preset("classroom")
        if cfg.gaussian_skip:
            if n is None:
                raise ValueError("n: the grid size is required when gaussian_skip is on")
            cfg.check_grid(n)
            # Data mean and per-mode variance (rfft2, ortho); set by set_gaussian_prior.
            self.register_buffer("prior_mean", torch.zeros(()))
            self.register_buffer("prior_var", torch.ones(n, n // 2 + 1))
        w, e, g = cfg.widths, cfg.embed_dim, cfg.groups
        self.embed = nn.Sequential(
            GaussianFourierEmbedding(e, cfg.fourier_scale), nn.Linear(e, e), nn.SiLU()
        )
        self.down = nn.ModuleList([_conv(1, w[0])])
        self.down += [_conv(w[i - 1], w[i], stride=2) for i in range(1, len(w))]
        self.down_dense = nn.ModuleList([nn.Linear(e, c) for c in w])
        self.down_norm = nn.ModuleList([_norm(c, g) for c in w])
        self.mid = nn.ModuleList([ResBlock(w[-1], e, g) for _ in range(cfg.n_res_blocks)])
        # Decoder level i goes from the level-i map to level i-1; the input of every level
        # below the bottleneck is the concatenation with the encoder map (twice the width).
        self.up = nn.ModuleList()
        self.up_dense = nn.ModuleList()
        self.up_norm = nn.ModuleList()
        for i in range(len(w) - 1, 0, -1):
            c_in = w[i] if i == len(w) - 1 else 2 * w[i]
            self.up.append(UpsampleConv(c_in, w[i - 1]))
            self.up_dense.append(nn.Linear(e, w[i - 1]))
            self.up_norm.append(_norm(w[i - 1], g))
        self.final = _conv(2 * w[0] if len(w) > 1 else w[0], 1)
        if cfg.mean_bypass:
            self.mean_branch = nn.Sequential(
                nn.Linear(e + 1, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU(), nn.Linear(e, 1)
            )

    @torch.no_grad()
    def set_gaussian_prior(self, fields: torch.Tensor) -> None:
        """Mean and per-mode variance of (scaled) training fields ``(S, n, n)`` for the
        Gaussian skip; homogeneity makes the covariance diagonal in Fourier space."""
        mean = fields.mean()
        power = torch.fft.rfft2(fields - mean, norm="ortho").abs().pow(2).mean(0)
        self.prior_mean.copy_(mean)
        self.prior_var.copy_(power.clamp_min(1e-12))

    def _shifts(self, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every level's ``dense(embedding)`` as ``(B, C, 1, 1)`` views, in the order the forward
        uses them (encoder, bottleneck blocks, decoder), from one matrix product with the
        layers' weights stacked: the same products as one ``nn.Linear`` call per level."""
        denses = [*self.down_dense, *(block.dense for block in self.mid), *self.up_dense]
        weight = torch.cat([d.weight for d in denses])
        bias = torch.cat([d.bias for d in denses])
        out = torch.addmm(bias, emb, weight.t())[:, :, None, None]
        return out.split([d.out_features for d in denses], dim=1)

    def _gaussian_denoiser(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``−σ F⁻¹[(x̂ − μ̂)/(λ_k + σ²)]``: σ times the score of the noised Gaussian prior."""
        if tuple(self.prior_var.shape) != (x.shape[-1], x.shape[-1] // 2 + 1):
            raise ValueError(
                f"x: this network's Gaussian skip is for a {self.prior_var.shape[0]}-grid, "
                f"got {x.shape[-1]}"
            )
        s2 = sigma[:, None, None] ** 2
        x_hat = torch.fft.rfft2(x - self.prior_mean, norm="ortho")
        return -sigma[:, None, None] * torch.fft.irfft2(
            x_hat / (self.prior_var + s2), s=x.shape[-2:], norm="ortho"
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, n, n)`` scaled fields; ``sigma``: ``(B,)`` or scalar noise levels."""
        if x.ndim != 3 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"x: expected shape (batch, n, n), got {tuple(x.shape)}")
        self.config.check_grid(x.shape[-1])
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        emb = self.embed(sigma.log())
        shifts = iter(self._shifts(emb))
        h = x[:, None]
        if self.config.mean_bypass:
            mean = h.mean(dim=(-2, -1), keepdim=True)
            h = h - mean
        skips = []
        for conv, norm in zip(self.down, self.down_norm, strict=True):
            h = F.silu(norm(conv(h) + next(shifts)))
            skips.append(h)
        for block in self.mid:
            h = block(h, next(shifts))
        skips.pop()  # the bottleneck map is ``h`` itself
        for conv, norm in zip(self.up, self.up_norm, strict=True):
            h = F.silu(norm(conv(h) + next(shifts)))
            h = torch.cat([h, skips.pop()], dim=1)
        out = self.final(h)
        if self.config.mean_bypass:
            out = out - out.mean(dim=(-2, -1), keepdim=True)
            scaled_mean = mean.flatten(1) * x.shape[-1]  # the k = 0 mode, ortho-normalised
            uniform = self.mean_branch(torch.cat([scaled_mean, emb], dim=1)) / x.shape[-1]
            out = out + uniform[:, :, None, None]
        out = out[:, 0]
        if self.config.gaussian_skip:
            c_out = (sigma / torch.sqrt(1 + sigma**2))[:, None, None]
            out = self._gaussian_denoiser(x, sigma) + c_out * out
        return out
