"""Score-network speed on the current device: training samples/s and score evaluations fields/s,
for the classroom (16×16) and paper (32×32) network presets. Prints a markdown table.

    python benchmarks/bench_score.py [--device auto] [--threads N] [--steps 20]

Not a test: numbers depend on the machine and its load. ``--threads`` sets torch's intra-op
threads for this process (the library never does).
"""

from __future__ import annotations

import argparse
import time

import torch

from gfdt_dash.devices import resolve_device
from gfdt_dash.score import ScoreNetConfig, TrainConfig, train_score


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench(preset: str, n: int, dev: torch.device, steps: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(512, n, n, generator=gen)
    net_cfg = ScoreNetConfig.preset(preset)
    tcfg = TrainConfig.preset(preset, n_steps=steps, eval_every=10**6, val_fraction=0.0)
    train_score(data, net_config=net_cfg, train_config=tcfg.replace(n_steps=2), device=dev)
    _sync(dev)
    t0 = time.perf_counter()
    model = train_score(data, net_config=net_cfg, train_config=tcfg, device=dev)
    _sync(dev)
    train_rate = steps * tcfg.batch_size / (time.perf_counter() - t0)
    score = model.score_fn(dev, batch_size=1024)
    x = torch.randn(2048, n, n, generator=gen).to(dev)
    score(x[:256])
    _sync(dev)
    t0 = time.perf_counter()
    score(x)
    _sync(dev)
    eval_rate = x.shape[0] / (time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.net.parameters())
    return dict(preset=preset, n=n, params=n_params, batch=tcfg.batch_size, train=train_rate,
                score=eval_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    print(f"device: {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    print("| network | grid | parameters | batch | training samples/s | score fields/s |")
    print("|---|---|---|---|---|---|")
    for preset, n in (("classroom", 16), ("paper", 32)):
        r = bench(preset, n, dev, args.steps)
        print(f"| {r['preset']} | {r['n']}×{r['n']} | {r['params']:,} | {r['batch']} | "
              f"{r['train']:,.0f} | {r['score']:,.0f} |")


if __name__ == "__main__":
    main()
