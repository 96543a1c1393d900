"""Run every benchmark in one go and write one table file, ``benchmarks/RESULTS.md``.

    python benchmarks/run.py [--device auto] [--threads N] [--out benchmarks/RESULTS.md]

Each ``bench_*.py`` beside this file prints a markdown section; they run one after another in
fresh processes (so one's threads or memory do not skew the next) and their output is collected
with the device, the torch version, the thread count and the date. ``--threads`` (default 1, the
product's default: ``gfdt_dash.threads``) is each benchmark's torch thread count, set through
``OMP_NUM_THREADS``; ``bench_score.py`` also measures 1 and 2 threads side by side and names the
count in every row. The README embeds the file. Timings on shared machines are noisy: read the
ratios, which each benchmark measures within one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

from gfdt_dash.threads import resolve_threads, threads_arg

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=threads_arg, help="torch threads: N or auto (default 1)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    args.threads = resolve_threads(args.threads)
    import torch

    from gfdt_dash.devices import resolve_device

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    parts = [
        "# Benchmark results",
        "",
        f"{dt.date.today()}, device `{device}` ({name or platform.machine()}), torch "
        f"{torch.__version__}, {args.threads} torch thread(s) unless a table says otherwise; "
        f"{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.1f} at the start.",
        "",
    ]
    if device.type == "cpu":
        parts += ["No GPU on this machine: no GPU rows were measured.", ""]
    for script in sorted(HERE.glob("bench_*.py")):
        cmd = [sys.executable, str(script)]
        if script.stem != "bench_dashboard":  # times the served app; its jobs pick their device
            cmd += ["--device", args.device]
        # torch reads its intra-op thread count from these at start-up
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        env["MKL_NUM_THREADS"] = str(args.threads)
        print("running", script.name, file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        parts += [f"## {script.stem.removeprefix('bench_')}", ""]
        if proc.returncode != 0:
            parts += [f"failed (exit {proc.returncode}):", "", "```", proc.stderr[-2000:], "```"]
        else:
            parts.append(proc.stdout.strip())
        parts.append("")
    parts += [f"1-min load average {os.getloadavg()[0]:.1f} at the end.", ""]
    Path(args.out).write_text("\n".join(parts))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
