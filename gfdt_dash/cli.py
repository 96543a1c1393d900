"""Command line: ``gfdt-dash simulate|...`` (also ``python -m gfdt_dash``).

Each subcommand is a ``_cmd_<name>(args)`` function registered in ``_build_parser``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gfdt_dash import __version__
from gfdt_dash.threads import resolve_threads, set_threads, threads_arg

log = logging.getLogger("gfdt_dash")


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["lam=1500", "dealias=true"]`` → ``{"lam": 1500.0, "dealias": True}``."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set: expected NAME=VALUE, got {item!r}")
        low = raw.strip().lower()
        if low in ("true", "false"):
            out[name.strip()] = low == "true"
            continue
        try:
            out[name.strip()] = int(raw)
        except ValueError:
            try:
                out[name.strip()] = float(raw)
            except ValueError:
                raise ValueError(f"--set {name}: {raw!r} is not a number or true/false") from None
    return out


class _ProgressBar:
    """A one-line text progress bar on stderr (throttling is done by the core's Reporter)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.quiet = not enabled

    def __call__(self, p) -> None:
        if self.quiet:
            return
        width = 30
        filled = int(width * p.fraction)
        eta = f" ETA {p.eta_s:5.0f}s" if p.eta_s else ""
        line = f"{p.stage:>10} [{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total}{eta}"
        end = "\r" if self.enabled and p.done < p.total else "\n"
        if self.enabled or p.done >= p.total:
            print(line, end=end, file=sys.stderr, flush=True)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda or mps")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=threads_arg,
        help="torch threads of this process: an integer >= 1, or auto (OMP_NUM_THREADS if set, "
        "else one per available core); default 1, the fastest on small and shared machines",
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from gfdt_dash.data import write_netcdf
    from gfdt_dash.systems import get_config, simulate

    overrides = _parse_overrides(args.set or [])
    if args.members is not None:
        overrides["members"] = args.members
        overrides.setdefault("frame_members", min(args.members, 10**9))
    config = get_config(args.system, args.preset, **overrides)
    if config.frame_members > config.members:
        config = config.replace(frame_members=config.members)
    ds = simulate(
        config,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        callback=_ProgressBar(not args.quiet),
    )
    path = write_netcdf(ds, args.out)
    print(f"wrote {path} (field {dict(ds.field.sizes)}, snapshot {dict(ds.snapshot.sizes)})")
    return 0


def _cmd_response(args: argparse.Namespace) -> int:
    from gfdt_dash.data import open_dataset, write_netcdf
    from gfdt_dash.pipeline import compute_responses
    from gfdt_dash.response import error_table
    from gfdt_dash.systems import config_from_json

    data = open_dataset(args.data)
    if "field" not in data:
        raise ValueError(f"--data: {args.data} has no 'field' variable (member, time, y, x)")
    config = config_from_json(data.attrs["config"]) if "config" in data.attrs else None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    score = None
    if args.model:
        from gfdt_dash.score import load_checkpoint

        model = load_checkpoint(
            args.model,
            expect_system=config.system if config else None,
            expect_n=data.sizes["x"],
            device=args.device,
        )
        score = model.score_fn(device=args.device)
    elif methods and "learned_score" in methods:
        raise ValueError("--methods learned_score: needs --model CKPT")
    try:
        combined = compute_responses(
            config,
            data,
            score=score,
            methods=methods,
            max_lag=args.max_lag,
            seed=args.seed,
            device=args.device,
            callback=_ProgressBar(not args.quiet),
        )
    except ValueError as exc:  # name the command-line flags, not the library arguments
        msg = str(exc)
        for arg, flag in (("methods: ", "--methods "), ("max_lag: ", "--max-lag: ")):
            if msg.startswith(arg):
                raise ValueError(flag + msg.removeprefix(arg)) from exc
        raise
    names = [str(m) for m in combined["method"].values]
    if {"analytic", "perturbation"} & set(names):
        print(error_table(combined).to_string(float_format=lambda v: f"{v:.4g}"))
    path = write_netcdf(combined, args.out)
    print(f"wrote {path} (methods {', '.join(names)}; lags {combined.sizes['lag']})")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from gfdt_dash.pipeline import run_pipeline
    from gfdt_dash.report import write_report
    from gfdt_dash.systems import get_config

    systems = args.systems.split(",") if args.systems else ["ou", "allen_cahn", "navier_stokes"]
    model = "shipped" if args.use_shipped else "train"
    if args.use_shipped and args.preset != "classroom":
        raise ValueError("--use-shipped: the shipped models are for the classroom preset only")
    out = Path(args.out)
    results = []
    for system in systems:
        config = get_config(system, args.preset)
        print(f"== {config.title} ({args.preset}) ==", file=sys.stderr)
        result = run_pipeline(
            config,
            seed=args.seed,
            device=args.device,
            model=model,
            cache_dir=out / "cache",
            callback=_ProgressBar(not args.quiet),
        )
        print(result.errors.to_string(float_format=lambda v: f"{v:.3g}"))
        results.append(result)
    path = write_report(results, out, title=f"gfdt-dash reproduction ({args.preset} preset)")
    print(f"wrote {path}")
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from gfdt_dash.scan import ScanSpec, run_scan

    spec = ScanSpec.from_toml(args.spec)

    def on_cell(done: int, total: int, cell: dict) -> None:
        if not args.quiet:
            print(f"cell {done}/{total} done: {cell}", file=sys.stderr)

    ds = run_scan(
        spec,
        args.out,
        scheduler=args.scheduler,
        n_workers=args.workers,
        threads_per_worker=resolve_threads(args.threads, processes=args.workers),
        device=args.device,
        on_cell=on_cell,
    )
    if ds is not None:
        table = ds["error"].to_pandas() if ds.sizes["cell"] > 1 else ds["error"].to_series()
        print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"wrote {Path(args.out) / 'scan.nc'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from gfdt_dash.data import open_dataset
    from gfdt_dash.score import (
        ScoreNetConfig,
        TrainConfig,
        diagnose,
        save_checkpoint,
        split_snapshots,
        train_score,
    )
    from gfdt_dash.score.training import as_snapshots
    from gfdt_dash.systems import FieldSystem, make_system

    ds = open_dataset(args.data)
    overrides = {} if args.steps is None else {"n_steps": args.steps}
    train_cfg = TrainConfig.preset(args.train, **overrides)
    model = train_score(
        ds,
        net_config=None if args.resume else ScoreNetConfig.preset(args.net),
        train_config=train_cfg,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        checkpoint_path=args.out if args.checkpoint_every else None,
        checkpoint_every=args.checkpoint_every,
        callback=_ProgressBar(not args.quiet),
    )
    if not args.no_diagnostics:
        arr, config = as_snapshots(ds)
        held_out = split_snapshots(arr, train_cfg.val_fraction)[1]
        system = make_system(config, device=model.device) if config is not None else None
        exact = system.score if isinstance(system, FieldSystem) else None
        model.metadata["diagnostics"] = diagnose(
            model, held_out, exact, seed=args.seed, device=model.device
        )
        scalars = {k: v for k, v in model.metadata["diagnostics"].items() if isinstance(v, float)}
        print("diagnostics: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
    path = save_checkpoint(model, args.out)
    print(f"wrote {path} ({model!r})")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    from gfdt_dash.systems import SYSTEMS

    parser = argparse.ArgumentParser(
        prog="gfdt-dash",
        description="Response functions of stochastic fields from learned scores (GFDT).",
    )
    parser.add_argument("--version", action="version", version=f"gfdt-dash {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate an ensemble and write netCDF")
    p.add_argument("--system", required=True, choices=sorted(SYSTEMS))
    p.add_argument("--preset", default="classroom", help="classroom (default) or paper")
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="override a config parameter (repeatable), e.g. --set lam=1500",
    )
    p.add_argument("--members", type=int, help="ensemble members (overrides the preset)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--out", required=True, help="output netCDF path")
    _add_common(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="train a score model on simulated snapshots (netCDF)")
    p.add_argument("data", help="netCDF from `gfdt-dash simulate` (its snapshot variable)")
    p.add_argument("--net", default="classroom", help="network preset: classroom or paper")
    p.add_argument("--train", default="classroom", help="training preset: classroom or paper")
    p.add_argument("--steps", type=int, help="total training steps (overrides the preset)")
    p.add_argument("--resume", help="checkpoint to continue (same data)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="K",
        help="also write --out every K steps (resume a killed run with --resume OUT)",
    )
    p.add_argument("--no-diagnostics", action="store_true", help="skip the diagnostics")
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    _add_common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("response", help="compute and compare responses, write netCDF")
    p.add_argument(
        "--data",
        required=True,
        help="netCDF with a (member, time, y, x) variable 'field' (e.g. from simulate)",
    )
    p.add_argument(
        "--methods",
        help="comma-separated subset of learned_score, exact_score, "
        "gaussian, perturbation, analytic (default: all the data allow)",
    )
    p.add_argument("--model", help="score checkpoint for learned_score")
    p.add_argument("--max-lag", type=int, help="largest lag in frames (default: config.max_lag)")
    p.add_argument("--out", required=True, help="output netCDF path (methods combined)")
    _add_common(p)
    p.set_defaults(func=_cmd_response)
    p = sub.add_parser("reproduce", help="run the full comparison per system, write a report")
    p.add_argument("--preset", default="classroom", choices=["classroom", "paper"])
    p.add_argument("--systems", help="comma-separated subset (default: all three)")
    p.add_argument(
        "--use-shipped",
        action="store_true",
        help="use the shipped classroom score models instead of training",
    )
    p.add_argument("--out", default="report", help="report folder (default ./report)")
    _add_common(p)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("scan", help="parameter scan on Dask; results append to OUT/scan.nc")
    p.add_argument("spec", help="scan spec (TOML), see gfdt_dash.scan")
    p.add_argument("--out", required=True, help="scan folder (resumes if it exists)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: local)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    p.add_argument(
        "--threads",
        type=threads_arg,
        help="torch threads per worker process: an integer >= 1, or auto (the available cores "
        "shared among the local workers); default 1",
    )
    p.add_argument("--device", default="cpu", help="device inside the workers (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no per-cell progress")
    p.set_defaults(func=_cmd_scan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _build_parser()
    args = parser.parse_args(argv)
    # The process-wide thread count is the entry point's to set (STYLE rule 5); scan's
    # --threads is for its workers, its own process only waits for them.
    set_threads(None if args.command == "scan" else args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gfdt-dash {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
