"""Fixed inputs for the network-output fixture ``data/network_reference.safetensors``.

The fixture holds the outputs of the shipped networks and of freshly initialised classroom and
paper-layout networks on these inputs, computed with the layer-by-layer forward the network had
before its speed work (each dense projection of the noise embedding, each conv, one at a time):
``gfdt_dash/score/network.py`` as of git revision ``REFERENCE_REV``, given the same weights.
``test_network.py`` checks that the current forward reproduces them to float32 round-off.
Regenerate (only on purpose: when a shipped model is remade or the network's function changes)
with ``python tests/score/network_reference.py`` in a git checkout.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

from gfdt_dash.score import ScoreNetConfig, ScoreUNet, load_shipped

FIXTURE = Path(__file__).parent / "data" / "network_reference.safetensors"
# The last revision whose network ran layer by layer (before the speed work).
REFERENCE_REV = "538ebf8"


def cases() -> dict[str, tuple[ScoreUNet, torch.Tensor, torch.Tensor]]:
    """name → (network in eval mode, fields ``(4, n, n)``, noise levels ``(4,)``)."""
    out = {}
    for system in ("ou", "allen_cahn", "navier_stokes"):
        model = load_shipped(system, device="cpu")
        n = model.n
        x = torch.randn(4, n, n, generator=torch.Generator().manual_seed(0))
        sigma = torch.tensor([model.sigma_min, 0.1, 1.0, 10.0])
        out[f"{system}_net"] = (model.net.eval(), x, sigma)
        out[f"{system}_ema"] = (model.ema_net.eval(), x, sigma)
    for name, cfg, n in (
        (
            "classroom_bypass_32",
            ScoreNetConfig.preset(
                "classroom", widths=(8, 16, 32), n_res_blocks=2, mean_bypass=True
            ),
            32,
        ),
        ("paper2_bypass_16", ScoreNetConfig.preset("paper", n_res_blocks=2, mean_bypass=True), 16),
    ):
        torch.manual_seed(0)
        net = ScoreUNet(cfg, n=n).eval()
        gen = torch.Generator().manual_seed(1)
        if cfg.gaussian_skip:
            net.set_gaussian_prior(torch.randn(20, n, n, generator=gen).cumsum(-1))
        x = torch.randn(4, n, n, generator=gen) + 0.5
        out[name] = (net, x, torch.tensor([0.01, 0.1, 1.0, 10.0]))
    return out


def module_at(rev: str, path: str):
    """The module in ``path`` (e.g. ``gfdt_dash/score/network.py``) as of git revision ``rev``,
    executed against the current package for its imports (also used by
    ``benchmarks/bench_score.py --compare``)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"],
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = f"{Path(path).stem}_at_{rev}".replace("-", "_").replace("~", "_").replace("^", "_")
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def reference_outputs() -> dict[str, torch.Tensor]:
    """name → the output of :func:`cases`' network, weights and inputs by the network as of
    ``REFERENCE_REV`` (needs a git checkout that has the revision)."""
    old = module_at(REFERENCE_REV, "gfdt_dash/score/network.py")
    outputs = {}
    with torch.no_grad():
        for name, (net, x, s) in cases().items():
            ref = old.ScoreUNet(net.config, n=x.shape[-1])
            ref.load_state_dict(net.state_dict())
            outputs[name] = ref.eval()(x, s).contiguous()
    return outputs


def main() -> None:
    from safetensors.torch import save_file

    FIXTURE.parent.mkdir(exist_ok=True)
    save_file(reference_outputs(), str(FIXTURE))


if __name__ == "__main__":
    main()
