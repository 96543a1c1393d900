"""The U-Net: shapes, configs, and translation equivariance (circular padding everywhere)."""

from __future__ import annotations

import pytest
import torch

from gfdt_dash.score import ScoreNetConfig, ScoreUNet


@pytest.mark.parametrize(
    ("preset", "n", "mean_bypass"),
    [("classroom", 16, False), ("classroom", 32, True), ("paper", 32, False), ("paper", 16, True)],
)
def test_translation_equivariance(preset, n, mean_bypass):
    """Rolling the input by multiples of the total stride rolls the output identically.

    Zero padding in any convolution (down, bottleneck, or after up-sampling) breaks this at the
    borders by O(1); float32 round-off is ~1e-6.
    """
    cfg = ScoreNetConfig.preset(preset, mean_bypass=mean_bypass)
    torch.manual_seed(0)
    net = ScoreUNet(cfg, n=n).eval()
    gen = torch.Generator().manual_seed(1)
    if cfg.gaussian_skip:
        net.set_gaussian_prior(torch.randn(20, n, n, generator=gen).cumsum(-1))
    x = torch.randn(3, n, n, generator=gen)
    sigma = torch.tensor([0.01, 0.3, 5.0])
    stride = cfg.downsampling
    with torch.no_grad():
        out = net(x, sigma)
        for shift in [(stride, 0), (0, 2 * stride), (3 * stride % n, stride)]:
            rolled = net(torch.roll(x, shift, dims=(1, 2)), sigma)
            torch.testing.assert_close(rolled, torch.roll(out, shift, dims=(1, 2)),
                                       atol=2e-5, rtol=1e-4)
    assert out.shape == x.shape


def test_zero_padding_would_be_caught():
    """The equivariance check has teeth: the same net with one zero-padded conv fails it."""
    cfg = ScoreNetConfig.preset("classroom")
    torch.manual_seed(0)
    net = ScoreUNet(cfg, n=16).eval()
    net.up[-1].padding_mode = "zeros"  # the last up-sampling conv
    x = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1))
    s = torch.tensor([0.1, 1.0])
    with torch.no_grad():
        diff = net(torch.roll(x, (4, 0), dims=(1, 2)), s) - torch.roll(net(x, s), (4, 0), (1, 2))
    assert diff.abs().max() > 1e-3


def test_presets_and_validation():
    paper = ScoreNetConfig.preset("paper")
    assert paper.widths == (32, 64, 128, 256) and paper.n_res_blocks == 8
    classroom = ScoreNetConfig.preset("classroom")
    assert sum(p.numel() for p in ScoreUNet(classroom, n=16).parameters()) < sum(
        p.numel() for p in ScoreUNet(paper).parameters()
    ) / 20
    with pytest.raises(ValueError, match="widths"):
        ScoreNetConfig(widths=(3, 8))
    with pytest.raises(ValueError, match="n_res_blocks"):
        ScoreNetConfig(n_res_blocks=-1)
    with pytest.raises(ValueError, match="preset"):
        ScoreNetConfig.preset("huge")
    with pytest.raises(ValueError, match="not divisible"):
        ScoreUNet(paper)(torch.zeros(1, 12, 12), torch.tensor(1.0))


def test_gaussian_skip_is_the_exact_gaussian_score():
    """With the U-Net's last conv zeroed, the network is the Gaussian branch alone; on OU
    (a Gaussian field) its σ_min score must match the exact score. Tolerance: the per-mode
    variances are estimated from 4000 draws (≈ √(2/4000) ≈ 2 % each) and σ_min² smooths the
    least-variant modes by ≤ 0.01²/min λ_k (< 1 % here)."""
    from gfdt_dash.systems import OUConfig, make_system

    cfg = OUConfig.preset("classroom")
    system = make_system(cfg, device="cpu")
    gen = system.generator(0)
    x = system.grid.to_physical(system.initial_state(4000, gen)["field_hat"]).contiguous()
    net = ScoreUNet(ScoreNetConfig.preset("classroom"), n=cfg.n).eval()
    scale = float(x.std())
    net.set_gaussian_prior(x / scale)
    torch.nn.init.zeros_(net.final.weight)
    torch.nn.init.zeros_(net.final.bias)
    test = x[:500]
    with torch.no_grad():
        s = net(test / scale, torch.tensor(0.01)) / (0.01 * scale)
    exact = system.score(test)
    assert float((s - exact).norm() / exact.norm()) < 0.05
    with pytest.raises(ValueError, match="grid size is required"):
        ScoreUNet(ScoreNetConfig.preset("classroom"))
