"""The U-Net: shapes, configs, and translation equivariance (circular padding everywhere)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from gfdt_dash.score import ScoreNetConfig, ScoreUNet
from gfdt_dash.score.network import CircularConv2d, UpsampleConv


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
            torch.testing.assert_close(
                rolled, torch.roll(out, shift, dims=(1, 2)), atol=2e-5, rtol=1e-4
            )
    assert out.shape == x.shape


class _ReferenceUpConv(torch.nn.Module):
    """The textbook layer :class:`UpsampleConv` replaces: nearest ×2, then a 3×3 conv with
    ``padding_mode`` (same weights)."""

    def __init__(self, fast: UpsampleConv, padding_mode: str = "circular") -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(
            *fast.weight.shape[1::-1], 3, padding=1, padding_mode=padding_mode
        )
        self.conv.load_state_dict(fast.state_dict())

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def test_zero_padding_would_be_caught():
    """The equivariance check has teeth: the same net with one zero-padded conv fails it."""
    cfg = ScoreNetConfig.preset("classroom")
    torch.manual_seed(0)
    net = ScoreUNet(cfg, n=16).eval()
    net.up[-1] = _ReferenceUpConv(net.up[-1], padding_mode="zeros")  # the last up-sampling conv
    x = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(1))
    s = torch.tensor([0.1, 1.0])
    with torch.no_grad():
        diff = net(torch.roll(x, (4, 0), dims=(1, 2)), s) - torch.roll(net(x, s), (4, 0), (1, 2))
    assert diff.abs().max() > 1e-3


@pytest.mark.parametrize(
    ("m", "stride", "c_out"),
    [
        (1, 1, 4),
        (2, 1, 4),
        (5, 1, 4),
        (2, 2, 4),
        (5, 2, 4),
        (8, 2, 4),
        (16, 1, 4),
        (16, 2, 4),
        (1, 1, 1),
        (5, 1, 1),
        (16, 1, 1),
        (8, 2, 1),
    ],
)
def test_fast_layers_match_the_textbook_layers(m, stride, c_out):
    """CircularConv2d is nn.Conv2d(padding_mode="circular") exactly (the same ops forward; its
    hand-written backward folds the padding's gradient, or at stride 2 on even maps computes the
    input gradient per parity; odd maps take the plain path; with one output channel at stride
    1 it sums per-tap maps, to round-off); UpsampleConv is nearest ×2 + that conv
    to float32 round-off (its merged taps are summed first: relative errors ~1e-7, bound 1e-5),
    in the output and in the gradients of input, weight and bias."""
    gen = torch.Generator().manual_seed(m)
    torch.manual_seed(m)
    fast = CircularConv2d(6, c_out, stride=stride)
    plain = torch.nn.Conv2d(6, c_out, 3, stride=stride, padding=1, padding_mode="circular")
    plain.load_state_dict(fast.state_dict())
    up = UpsampleConv(6, c_out)
    up_ref = _ReferenceUpConv(up)
    x = torch.randn(3, 6, m, m, generator=gen)
    # one output channel at stride 1: the taps are summed in another order (round-off)
    exact_conv = c_out > 1 or stride > 1
    for a, b, exact in ((fast, plain, exact_conv), (up, up_ref, False)):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = a(xa), b(xb)
        g = torch.randn(ya.shape, generator=gen)
        ya.backward(g)
        yb.backward(g)
        pairs = [(ya.detach(), yb.detach()), (xa.grad, xb.grad)]
        pairs += list(
            zip((p.grad for p in a.parameters()), (p.grad for p in b.parameters()), strict=True)
        )
        for u, v in pairs:
            assert u.shape == v.shape
            if exact:
                torch.testing.assert_close(u, v, atol=1e-6, rtol=1e-6)
            else:
                torch.testing.assert_close(u, v, atol=1e-5 * float(v.abs().max()), rtol=0)


def test_shipped_networks_unchanged_by_the_fast_layers():
    """The shipped checkpoints give the same σ_min outputs as with the textbook layers."""
    from gfdt_dash.score import load_shipped

    for system in ("ou", "allen_cahn", "navier_stokes"):
        model = load_shipped(system, device="cpu")
        fast = model.ema_net.eval()
        ref = copy.deepcopy(fast)
        for i, layer in enumerate(ref.up):
            ref.up[i] = _ReferenceUpConv(layer)
        x = torch.randn(16, model.n, model.n, generator=torch.Generator().manual_seed(0))
        sigma = torch.tensor(model.sigma_min)
        with torch.no_grad():
            a, b = fast(x, sigma), ref(x, sigma)
        torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()), rtol=0)


def test_presets_and_validation():
    paper = ScoreNetConfig.preset("paper")
    assert paper.widths == (32, 64, 128, 256) and paper.n_res_blocks == 8
    classroom = ScoreNetConfig.preset("classroom")
    assert (
        sum(p.numel() for p in ScoreUNet(classroom, n=16).parameters())
        < sum(p.numel() for p in ScoreUNet(paper).parameters()) / 20
    )
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


def test_outputs_match_the_reference_fixture():
    """The forward reproduces, to float32 round-off, the outputs stored in
    ``data/network_reference.safetensors`` by the layer-by-layer forward (one dense projection
    and one conv at a time) for the shipped networks and fresh classroom/paper-layout ones; a
    perturbed weight is caught."""
    from network_reference import FIXTURE, cases
    from safetensors.torch import load_file

    reference = load_file(str(FIXTURE))
    found = cases()
    assert set(found) == set(reference)
    with torch.no_grad():
        for name, (net, x, sigma) in found.items():
            ref = reference[name]
            torch.testing.assert_close(
                net(x, sigma), ref, atol=1e-5 * float(ref.abs().max()), rtol=0, msg=name
            )
        net, x, sigma = found["ou_net"]
        net.up_dense[0].bias[0] += 1e-2
        diff = net(x, sigma) - reference["ou_net"]
    assert diff.abs().max() > 1e-4


def test_the_reference_fixture_is_the_reference_revisions_output():
    """The fixture is what the network as of ``REFERENCE_REV`` computes, bit for bit, loaded by
    ``module_at`` (the loader ``benchmarks/bench_score.py --compare`` uses too)."""
    import subprocess

    from network_reference import FIXTURE, REFERENCE_REV, reference_outputs
    from safetensors.torch import load_file

    known = subprocess.run(
        ["git", "cat-file", "-e", f"{REFERENCE_REV}^{{commit}}"],
        cwd=FIXTURE.parent,
        capture_output=True,
    )
    if known.returncode != 0:
        pytest.skip(f"not a git checkout with the revision {REFERENCE_REV}")
    reference = load_file(str(FIXTURE))
    outputs = reference_outputs()
    assert set(outputs) == set(reference)
    for name, out in outputs.items():
        assert torch.equal(out, reference[name]), name


def test_training_after_a_first_forward_in_inference_mode():
    """The cached kernel-tap tables are made outside inference mode even when a score evaluation
    (inference mode) asks for them first, so a later training step can save them for its
    backward; with inference-mode tables this step raised."""
    from gfdt_dash.score import network

    network._window_taps.cache_clear()
    network._stride_taps.cache_clear()
    torch.manual_seed(0)
    net = ScoreUNet(ScoreNetConfig.preset("classroom"), n=16)
    x, sigma = torch.randn(2, 16, 16), torch.tensor([0.1, 1.0])
    with torch.inference_mode():
        net(x, sigma)
    net(x, sigma).square().sum().backward()
    assert all(p.grad is not None for p in net.parameters())
