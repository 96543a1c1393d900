"""Score-network speed on the current device: training samples/s and score evaluations fields/s,
for the classroom (16×16) and paper (32×32) network presets, at each torch thread count asked
for. Prints a markdown table.

    python benchmarks/bench_score.py [--device auto] [--threads 1,2] [--steps 20] [--repeat 3]

Not a test: numbers depend on the machine and its load (the load average is printed with the
table). The thread counts are measured in turn within each repeat and the medians reported, so
their ratios are comparable even on a shared machine. This script is an entry point: it sets
torch's threads itself (``gfdt_dash.threads``), which the library never does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from gfdt_dash.devices import resolve_device
from gfdt_dash.score import ScoreNetConfig, ScoreUNet, TrainConfig, train_score
from gfdt_dash.threads import set_threads

SIZES = {"classroom": 16, "paper": 32}
EVAL_FIELDS = {"classroom": 2048, "paper": 256}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench(preset: str, dev: torch.device, steps: int) -> tuple[float, float]:
    """(training samples/s, score fields/s) of the ``preset`` network on random fields."""
    n = SIZES[preset]
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
    x = torch.randn(EVAL_FIELDS[preset], n, n, generator=gen).to(dev)
    score(x[:64])
    _sync(dev)
    t0 = time.perf_counter()
    score(x)
    _sync(dev)
    return train_rate, x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--steps", type=int, default=20, help="classroom steps (paper: 1/4)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    dev = resolve_device(args.device)
    load0 = os.getloadavg()[0]
    rows = []
    for preset in SIZES:
        steps = args.steps if preset == "classroom" else max(2, args.steps // 4)
        runs: dict[int, list[tuple[float, float]]] = {t: [] for t in counts}
        for _ in range(args.repeat):
            for t in counts:
                set_threads(t)
                runs[t].append(bench(preset, dev, steps))
        net = ScoreUNet(ScoreNetConfig.preset(preset), n=SIZES[preset])
        n_params = sum(p.numel() for p in net.parameters())
        batch = TrainConfig.preset(preset).batch_size
        for t in counts:
            train = statistics.median(r[0] for r in runs[t])
            score = statistics.median(r[1] for r in runs[t])
            rows.append((preset, SIZES[preset], n_params, batch, t, train, score))
    print(
        f"device: {dev}, torch {torch.__version__}, threads {args.threads} (each row names its "
        f"own), median of {args.repeat}; 1-min load average {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores\n"
    )
    print("| network | grid | parameters | batch | threads | training samples/s | score fields/s |")
    print("|---|---|---|---|---|---|---|")
    for preset, n, n_params, batch, t, train, score in rows:
        print(
            f"| {preset} | {n}×{n} | {n_params:,} | {batch} | {t} | {train:,.0f} | "
            f"{score:,.0f} |"
        )


if __name__ == "__main__":
    main()
