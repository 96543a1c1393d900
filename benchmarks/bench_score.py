"""Score-network speed on the current device: training samples/s and score evaluations fields/s,
for the classroom (16×16), cpu_paper and paper (32×32) network presets, at each torch thread count
asked for. Prints a markdown table.

    python benchmarks/bench_score.py [--device auto] [--threads 1,2] [--presets ...] [--steps 20]
    python benchmarks/bench_score.py --compare REV [--presets classroom,cpu_paper] [--repeat 7]

``--compare REV`` instead times the training step (the step of ``train_score``: DSM loss,
backward, clipping, fused Adam, EMA) of each preset as of git revision ``REV`` (its
``gfdt_dash/score/network.py`` and the presets of its ``gfdt_dash/score/config.py``, loaded from
git: layout and batch size) against the current code and presets, in one process on one thread
with the repeats interleaved: CPU-time medians, training samples/s and their ratios, comparable
on a shared machine.

Not a test: numbers depend on the machine and its load (the load average is printed with the
table). The thread counts are measured in turn within each repeat and the medians reported, so
their ratios are comparable even on a shared machine. This script is an entry point: it sets
torch's threads itself (``gfdt_dash.threads``), which the library never does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from gfdt_dash.devices import resolve_device
from gfdt_dash.score import ScoreNetConfig, ScoreUNet, TrainConfig, train_score
from gfdt_dash.threads import set_threads

SIZES = {"classroom": 16, "cpu_paper": 32, "paper": 32}
EVAL_FIELDS = {"classroom": 2048, "cpu_paper": 1024, "paper": 256}


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


def _train_step(net, data: torch.Tensor, batch: int):
    """One ``train_score`` step (same calls) on ``net``, as a closure."""
    from gfdt_dash.score.losses import VESchedule, dsm_loss
    from gfdt_dash.score.model import make_ema
    from gfdt_dash.score.training import _adam_kernels, _EmaUpdate

    net.train()
    params = list(net.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, **_adam_kernels(data.device))
    ema = _EmaUpdate(make_ema(net, 0.999), net, 0.999)
    gen = torch.Generator().manual_seed(0)
    schedule = VESchedule(0.01, 20.0)

    def step() -> None:
        idx = torch.randint(data.shape[0], (batch,), generator=gen)
        loss = dsm_loss(net, data[idx], schedule, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()
        ema()

    return step


def compare(rev: str, presets: list[str], steps: int, repeat: int) -> None:
    """Training step of each preset as of ``rev`` against now (see the module docstring)."""
    # the loader of code at a git revision is the one the network's test fixture is made with
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "score"))
    from network_reference import module_at

    set_threads(1)
    old_net = module_at(rev, "gfdt_dash/score/network.py")
    old_cfg = module_at(rev, "gfdt_dash/score/config.py")
    load0 = os.getloadavg()[0]
    rows = []
    for preset in presets:
        n = SIZES[preset]
        gen = torch.Generator().manual_seed(0)
        data = torch.randn(512, n, n, generator=gen).cumsum(-1) / 4
        variants = {}
        for label, module, config in (
            (f"at {rev}", old_net, old_cfg),
            ("now", sys.modules["gfdt_dash.score.network"], sys.modules["gfdt_dash.score.config"]),
        ):
            net_cfg = ScoreNetConfig.from_dict(config.ScoreNetConfig.preset(preset).to_dict())
            batch = config.TrainConfig.preset(preset).batch_size
            torch.manual_seed(0)
            net = module.ScoreUNet(net_cfg, n=n)
            if net_cfg.gaussian_skip:
                net.set_gaussian_prior(data)
            n_params = sum(p.numel() for p in net.parameters())
            variants[label] = (_train_step(net, data, batch), batch, n_params, net_cfg)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for step, *_ in variants.values():  # warm-up
            for _ in range(3):
                step()
        for _ in range(repeat):
            for name, (step, *_) in variants.items():
                t0 = time.process_time()
                for _ in range(steps):
                    step()
                times[name].append((time.process_time() - t0) / steps)
        base = None
        for name, (_, batch, n_params, net_cfg) in variants.items():
            t = statistics.median(times[name])
            rate = batch / t
            base = base or rate
            layout = f"{'/'.join(map(str, net_cfg.widths))}, {net_cfg.n_res_blocks} res. blocks"
            rows.append((preset, n, name, layout, n_params, batch, t * 1e3, rate, rate / base))
    print(
        f"torch {torch.__version__}, 1 thread, CPU time per training step, median of {repeat} "
        f"interleaved repeats of {steps} steps; 1-min load average {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores\n"
    )
    print(
        "| network | grid | code | layout | parameters | batch | ms/step | training samples/s "
        "| speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for preset, n, name, layout, n_params, batch, ms, rate, ratio in rows:
        print(
            f"| {preset} | {n}×{n} | {name} | {layout} | {n_params:,} | {batch} | {ms:.2f} "
            f"| {rate:,.0f} | {ratio:.2f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument(
        "--steps", type=int, default=20, help="classroom steps (cpu_paper: 1/2, paper: 1/4)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="time the training step against the code and presets at this revision (one thread)",
    )
    parser.add_argument(
        "--presets",
        help="comma-separated presets (default: all; with --compare: classroom,cpu_paper)",
    )
    args = parser.parse_args()
    if args.compare:
        presets = (args.presets or "classroom,cpu_paper").split(",")
        compare(args.compare, presets, args.steps, args.repeat)
        return
    counts = [int(t) for t in args.threads.split(",")]
    dev = resolve_device(args.device)
    load0 = os.getloadavg()[0]
    rows = []
    presets = args.presets.split(",") if args.presets else list(SIZES)
    for preset in presets:
        if preset not in SIZES:
            raise SystemExit(f"--presets: unknown preset {preset!r}; allowed: {', '.join(SIZES)}")
        steps = {"classroom": args.steps, "cpu_paper": max(2, args.steps // 2)}.get(
            preset, max(2, args.steps // 4)
        )
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
            f"| {preset} | {n}×{n} | {n_params:,} | {batch} | {t} | {train:,.0f} | {score:,.0f} |"
        )


if __name__ == "__main__":
    main()
