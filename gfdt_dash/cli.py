"""Command line: ``gfdt-dash simulate|...`` (also ``python -m gfdt_dash``).

Each subcommand is a ``_cmd_<name>(args)`` function registered in ``_build_parser``. Every
failure ends in one line on stderr naming the input and the problem, exit status 2 (``--debug``
adds the traceback); Ctrl-C ends with a short line and status 130. Outputs are checked before any
work starts: ``--out`` may never be one of the inputs or anything but a regular file. A job whose
estimated cost exceeds the limits of :mod:`gfdt_dash.cost` is refused before it starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gfdt_dash import __version__
from gfdt_dash.threads import resolve_threads, set_threads, threads_arg

log = logging.getLogger("gfdt_dash")


def _seed(text: str) -> int:
    from gfdt_dash.seeds import check_seed

    try:
        return check_seed(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("seed: ")) from None


def _int_at_least(lo: int):
    """``argparse`` type: an integer ``>= lo`` (argparse names the option in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value

    return parse


def _path(text: str) -> str:
    """``argparse`` type: a file or folder path, not empty (an empty one would mean the current
    folder, or nothing, silently)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    return text


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _method_list(text: str) -> tuple[str, ...]:
    """``argparse`` type: comma-separated method names (:mod:`gfdt_dash.response.methods`)."""
    from gfdt_dash.response.methods import check_methods

    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one method name")
    try:
        return check_methods(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("methods: ")) from None


def _limits(args: argparse.Namespace):
    """The cost ceilings of this invocation: defaults, environment, then the options."""
    from gfdt_dash.cost import CLI_LIMITS, CostLimits

    return CostLimits.from_env(CLI_LIMITS).replace(
        max_member_steps=getattr(args, "max_member_steps", None),
        max_train_steps=getattr(args, "max_train_steps", None),
    )


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["lam=1500", "dealias=true", "integrator=rk4"]`` → ``{"lam": 1500, ...}``.

    Numbers and true/false are converted; anything else stays text (choices such as
    ``integrator`` or ``advection``), and the config's validation names a wrong value's field.
    """
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
                out[name.strip()] = raw.strip()
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


def _add_common(
    p: argparse.ArgumentParser, *, device: str = "auto", seed: bool = True, threads: bool = True
) -> None:
    p.add_argument(
        "--device", default=device, help=f"auto (CUDA, MPS, CPU), cpu, cuda or mps ({device})"
    )
    if threads:  # scan has its own --threads: the threads of each worker process
        p.add_argument(
            "--threads",
            type=threads_arg,
            help="torch threads of this process: an integer >= 1, or auto (OMP_NUM_THREADS if "
            "set, else one per available core); default 1, the fastest on small and shared "
            "machines",
        )
    if seed:
        p.add_argument(
            "--seed", type=_seed, default=0, help="random seed, 0 ≤ seed < 2**63 (default 0)"
        )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true", help="log progress details (INFO)")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")


def _add_plugin(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plugin",
        action="append",
        metavar="PATH",
        help="a Python file that registers a system (gfdt_dash.systems.register_system); "
        "repeatable. Loaded before the other options are read, so --system accepts its names",
    )


def _load_plugins(argv: Sequence[str]) -> None:
    """Load the ``--plugin`` files of ``argv`` before the parser is built (its ``--system``
    choices are the registered systems)."""
    from gfdt_dash.systems import load_plugins

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    try:
        load_plugins(known.plugin)
    except ValueError as exc:
        raise ValueError(f"--{exc}") from None


def _plugin_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The ``--plugin`` files, as inputs no output may replace."""
    return [("--plugin", path) for path in getattr(args, "plugin", None) or []]


def _add_cost_limit(p: argparse.ArgumentParser, train: bool = False) -> None:
    if train:
        p.add_argument(
            "--max-train-steps",
            type=_positive_int,
            metavar="N",
            help="refuse training beyond N optimiser steps (default 1,000,000 or "
            "$GFDT_DASH_MAX_TRAIN_STEPS)",
        )
    else:
        p.add_argument(
            "--max-member-steps",
            type=_positive_int,
            metavar="N",
            help="refuse jobs estimated above N member-steps (default 200,000,000 or "
            "$GFDT_DASH_MAX_MEMBER_STEPS)",
        )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from gfdt_dash.cost import job_cost
    from gfdt_dash.data import check_destination, write_netcdf
    from gfdt_dash.systems import get_config, simulate

    overrides = _parse_overrides(args.set or [])
    if args.members is not None:
        overrides["members"] = args.members
        overrides.setdefault("frame_members", args.members)
    config = get_config(args.system, args.preset, **overrides)
    check_destination(args.out, inputs=_plugin_inputs(args), name="--out")
    _limits(args).check(job_cost(config), "simulation")
    ds = simulate(
        config,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        callback=_ProgressBar(not args.quiet),
    )
    path = write_netcdf(ds, args.out, name="--out")
    print(f"wrote {path} (field {dict(ds.field.sizes)}, snapshot {dict(ds.snapshot.sizes)})")
    return 0


def _cmd_response(args: argparse.Namespace) -> int:
    from gfdt_dash.data import check_destination, open_dataset, read_config, write_netcdf
    from gfdt_dash.pipeline import compute_responses
    from gfdt_dash.response import error_table
    from gfdt_dash.response.methods import ESTIMATORS, reference_method

    inputs = [("--data", args.data), ("--model", args.model)]
    check_destination(args.out, inputs=[*inputs, *_plugin_inputs(args)], name="--out")
    data = open_dataset(args.data, name="--data")
    if "field" not in data:
        raise ValueError(f"--data: {args.data} has no 'field' variable (member, time, y, x)")
    if not {"x", "y"} <= set(data["field"].dims):
        raise ValueError(f"--data: {args.data}: 'field' must have dims (member, time, y, x)")
    config = read_config(data, f"--data {args.data}")
    methods = args.methods
    score = None
    if args.model:
        from gfdt_dash.score import load_checkpoint

        model = load_checkpoint(
            args.model,
            expect_system=config.system if config else None,
            expect_n=data.sizes["x"],
            device=args.device,
            name="--model",
        )
        score = model.score_fn(device=args.device)
    else:
        for name in methods or ():
            if ESTIMATORS[name].needs_score_model:
                raise ValueError(f"--methods {name}: needs --model CKPT")
    try:
        combined = compute_responses(
            config,
            data,
            score=score,
            methods=methods,
            max_lag=args.max_lag,
            seed=args.seed,
            device=args.device,
            limits=_limits(args),
            callback=_ProgressBar(not args.quiet),
        )
    except ValueError as exc:  # name the command-line flags, not the library arguments
        msg = str(exc)
        for arg, flag in (
            ("methods: ", "--methods "),
            ("max_lag: ", "--max-lag: "),
            ("fields: ", f"--data {args.data}: field: "),
        ):
            if msg.startswith(arg):
                raise ValueError(flag + msg.removeprefix(arg)) from exc
        raise
    names = [str(m) for m in combined["estimator"].values]
    if reference_method(names) is not None:
        print(error_table(combined).to_string(float_format=lambda v: f"{v:.4g}"))
    path = write_netcdf(combined, args.out, name="--out")
    print(f"wrote {path} (methods {', '.join(names)}; lags {combined.sizes['lag']})")
    return 0


def _check_folder(path: str, name: str = "--out") -> Path:
    """An output folder: a folder or nothing yet, in a writable place."""
    from gfdt_dash.data import check_destination

    if not str(path).strip():
        raise ValueError(f"{name}: an output folder is required")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}: {path!r} exists and is not a folder")
    check_destination(out / "probe", name=name)  # the folder (or its nearest parent) is writable
    return out


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from gfdt_dash.cost import JobCost
    from gfdt_dash.pipeline import pipeline_cost, run_pipeline
    from gfdt_dash.report import write_report
    from gfdt_dash.reproduce import reproduction_setup
    from gfdt_dash.systems import system_names, system_spec

    raw = args.systems.split(",") if args.systems is not None else list(system_names())
    systems = [name.strip() for name in raw]
    if not all(systems):
        raise ValueError(f"--systems: an empty name in {args.systems!r}; give system names")
    repeated = sorted({name for name in systems if systems.count(name) > 1})
    if repeated:
        raise ValueError(f"--systems: {', '.join(repeated)} given more than once")
    model = "shipped" if args.use_shipped else "train"
    if args.use_shipped and args.preset != "classroom":
        raise ValueError("--use-shipped: the shipped models are for the classroom preset only")
    if args.protocol == "cpu" and args.preset != "paper":
        raise ValueError("--protocol: 'cpu' changes the paper preset only; use --preset paper")
    out = _check_folder(args.out)
    overrides = _parse_overrides(args.set or [])
    setups = []
    for system in systems:
        try:
            config, net_config, train_config = reproduction_setup(
                system.strip(),
                args.preset,
                protocol=args.protocol,
                score_net=args.score_net,
                device=args.device,
            )
        except ValueError as exc:
            raise ValueError(f"--systems: {exc}") from None
        try:
            setups.append((config.replace(**overrides), net_config, train_config))
        except ValueError as exc:
            raise ValueError(f"--set: {config.system}: {exc}") from None
    if args.use_shipped:
        missing = [c.system for c, _, _ in setups if system_spec(c).shipped_model is None]
        if missing:
            raise ValueError(
                f"--use-shipped: no shipped model for {', '.join(missing)}; leave it out of "
                "--systems or train (without --use-shipped)"
            )
        from gfdt_dash.stages import read_model, shipped_path

        for config, _, _ in setups:  # before any work: the shipped model fits the grid
            try:
                read_model(shipped_path(config.system), config, device="cpu")
            except ValueError as exc:
                raise ValueError(f"--use-shipped: {exc} (given by --set)") from None
    limits = _limits(args)
    costs = (  # what the cache from an earlier run already holds costs nothing
        pipeline_cost(
            c,
            model=model,
            train_config=tc,
            net_config=nc if model == "train" else None,
            seed=args.seed,
            cache_dir=out / "cache",
        )
        for c, nc, tc in setups
    )
    total = sum(costs, JobCost())
    limits.check(total, "reproduction")
    results = []
    for config, net_config, train_config in setups:
        print(f"== {config.title} ({args.preset}) ==", file=sys.stderr)
        result = run_pipeline(
            config,
            seed=args.seed,
            device=args.device,
            model=model,
            net_config=net_config if model == "train" else None,
            train_config=train_config if model == "train" else None,
            cache_dir=out / "cache",
            limits=limits,
            callback=_ProgressBar(not args.quiet),
        )
        print(result.errors.to_string(float_format=lambda v: f"{v:.3g}"))
        results.append(result)
    path = write_report(results, out, title=f"gfdt-dash reproduction ({args.preset} preset)")
    print(f"wrote {path}")
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    if not args.verbose:
        # Dask logs its cluster's start-up at INFO, in this process and in every worker (which
        # inherit the environment and read it when distributed is imported).
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"
        logging.getLogger("distributed").setLevel(logging.ERROR)
    from gfdt_dash.scan import ScanSpec, results_table, run_scan
    from gfdt_dash.systems import loaded_plugins

    spec = ScanSpec.from_toml(args.spec)
    out = _check_folder(args.out)

    def on_start(total: int, done: int) -> None:
        print(f"scan: {total} cells, {done} already done", file=sys.stderr)

    def on_cell(done: int, total: int, cell: dict) -> None:
        if not args.quiet:
            print(f"cell {done}/{total} done: {cell}", file=sys.stderr)

    try:
        ds = run_scan(
            spec,
            out,
            scheduler=args.scheduler,
            n_workers=args.workers,
            threads_per_worker=resolve_threads(args.threads, processes=args.workers),
            device=args.device,
            limits=_limits(args),
            on_start=on_start,
            on_cell=on_cell,
            plugins=loaded_plugins(),
        )
    except ValueError as exc:  # name the command-line flags, not the library arguments
        msg = str(exc)
        for arg, flag in (("n_workers: ", "--workers: "), ("threads_per_worker: ", "--threads: ")):
            if msg.startswith(arg):
                raise ValueError(flag + msg.removeprefix(arg)) from exc
        raise
    if ds is not None:
        print(results_table(ds).to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"wrote {out / 'scan.nc'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from gfdt_dash.cost import JobCost
    from gfdt_dash.data import check_destination, open_dataset, read_config
    from gfdt_dash.score import (
        ScoreNetConfig,
        TrainConfig,
        diagnose,
        load_checkpoint,
        save_checkpoint,
        split_snapshots,
        train_score,
    )
    from gfdt_dash.score.training import as_snapshots
    from gfdt_dash.systems import system_spec

    # (not --resume: continuing a checkpoint in place, --resume OUT --out OUT, is intended)
    check_destination(args.out, inputs=[("data", args.data), *_plugin_inputs(args)], name="--out")
    ds = open_dataset(args.data, name="data")
    if "snapshot" not in ds:
        raise ValueError(
            f"data: {args.data} has no 'snapshot' variable (write it with `gfdt-dash simulate`)"
        )
    kind = ds["snapshot"].dtype
    if kind.kind != "f":
        raise ValueError(
            f"data: {args.data}: the 'snapshot' values are {kind}; score training needs real "
            "floating-point fields"
        )
    read_config(ds, f"data {args.data}")
    overrides = {} if args.steps is None else {"n_steps": args.steps}
    resume = None
    if args.resume:
        resume = load_checkpoint(args.resume, device=args.device, name="--resume")
        if resume.train_state is None:
            raise ValueError(
                f"--resume: {args.resume} is inference-only (no optimiser state); cannot resume"
            )
    # Resuming continues the checkpoint's own training config unless --train names another.
    try:
        if resume is not None and args.train is None:
            base = resume.train_config
        else:
            base = TrainConfig.preset("classroom" if args.train is None else args.train)
    except ValueError as exc:
        raise ValueError(f"--train: {exc}") from None
    try:
        train_cfg = TrainConfig.from_dict({**base.to_dict(), **overrides})
    except ValueError as exc:
        raise ValueError(f"--steps: {exc}") from None
    if resume is not None and train_cfg.n_steps <= resume.step:
        raise ValueError(
            f"--steps: the checkpoint --resume {args.resume} has already done {resume.step} "
            f"steps and training would stop at {train_cfg.n_steps}; give --steps larger "
            f"than {resume.step} to train further"
        )
    try:
        net_config = None if resume is not None else ScoreNetConfig.preset(args.net)
    except ValueError as exc:
        raise ValueError(f"--net: {exc}") from None
    _limits(args).check(JobCost(train_steps=train_cfg.n_steps), "training")
    arr, config = as_snapshots(ds)
    try:
        model = train_score(
            arr,
            system_config=config,
            net_config=net_config,
            train_config=train_cfg,
            seed=args.seed,
            device=args.device,
            resume=resume,
            checkpoint_path=args.out if args.checkpoint_every else None,
            checkpoint_every=args.checkpoint_every,
            callback=_ProgressBar(not args.quiet),
        )
    except ValueError as exc:  # name the command-line inputs, not the library arguments
        msg = str(exc)
        if msg.startswith("resume: "):
            raise ValueError(f"--resume {args.resume}: " + msg.removeprefix("resume: ")) from exc
        raise
    if not args.no_diagnostics:
        held_out = split_snapshots(arr, train_cfg.val_fraction)[1]
        exact = None
        if config is not None and system_spec(config).exact_score is not None:
            exact = system_spec(config).exact_score(config, model.device, "float32")
        model.metadata["diagnostics"] = diagnose(
            model, held_out, exact, seed=args.seed, device=model.device
        )
        scalars = {k: v for k, v in model.metadata["diagnostics"].items() if isinstance(v, float)}
        print("diagnostics: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
    path = save_checkpoint(model, args.out, name="--out")
    print(f"wrote {path} ({model!r})")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    from gfdt_dash.response.methods import ESTIMATORS
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
    p.add_argument("--out", required=True, type=_path, help="output netCDF path")
    _add_common(p)
    _add_cost_limit(p)
    _add_plugin(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="train a score model on simulated snapshots (netCDF)")
    p.add_argument(
        "data", type=_path, help="netCDF from `gfdt-dash simulate` (its snapshot variable)"
    )
    p.add_argument("--net", default="classroom", help="network preset: classroom or paper")
    p.add_argument(
        "--train",
        help="training preset: classroom (default) or paper; with --resume the checkpoint's own",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        help="total training steps (overrides the preset); with --resume, more than the "
        "checkpoint has done",
    )
    p.add_argument("--resume", type=_path, help="checkpoint to continue (same data)")
    p.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="also write --out every K steps (resume a killed run with --resume OUT)",
    )
    p.add_argument("--no-diagnostics", action="store_true", help="skip the diagnostics")
    p.add_argument("--out", required=True, type=_path, help="output checkpoint (.safetensors)")
    _add_common(p)
    _add_cost_limit(p, train=True)
    _add_plugin(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("response", help="compute and compare responses, write netCDF")
    p.add_argument(
        "--data",
        required=True,
        type=_path,
        help="netCDF with a (member, time, y, x) variable 'field' (e.g. from simulate)",
    )
    p.add_argument(
        "--methods",
        type=_method_list,
        metavar="M1,M2,...",
        help=f"comma-separated subset of {', '.join(ESTIMATORS)} (default: all the data allow)",
    )
    scored = ", ".join(n for n, m in ESTIMATORS.items() if m.needs_score_model)
    p.add_argument("--model", type=_path, help=f"score checkpoint for {scored}")
    p.add_argument("--max-lag", type=int, help="largest lag in frames (default: config.max_lag)")
    p.add_argument(
        "--out", required=True, type=_path, help="output netCDF path (methods combined)"
    )
    _add_common(p)
    _add_cost_limit(p)
    _add_plugin(p)
    p.set_defaults(func=_cmd_response)
    p = sub.add_parser("reproduce", help="run the full comparison per system, write a report")
    p.add_argument("--preset", default="classroom", choices=["classroom", "paper"])
    p.add_argument("--systems", help="comma-separated subset (default: every registered system)")
    p.add_argument(
        "--use-shipped",
        action="store_true",
        help="use the shipped classroom score models instead of training",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="override a config parameter of every system (repeatable), e.g. --set members=8",
    )
    p.add_argument(
        "--protocol",
        default="auto",
        choices=["auto", "study", "cpu"],
        help="run protocol of the paper preset: study (as the original study), cpu (fewer "
        "Allen–Cahn perturbation experiments, a smaller Navier–Stokes ensemble; see "
        "gfdt_dash.reproduce) or auto (cpu on a CPU device, else study)",
    )
    p.add_argument(
        "--score-net",
        default="auto",
        choices=["auto", "classroom", "cpu_paper", "paper"],
        help="score network and training preset: auto (classroom for the classroom preset; for "
        "the paper preset cpu_paper on a CPU, the study-size U-Net paper on a GPU)",
    )
    p.add_argument(
        "--out", default="report", type=_path, help="report folder (default ./report)"
    )
    _add_common(p)
    _add_cost_limit(p)
    _add_cost_limit(p, train=True)
    _add_plugin(p)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("scan", help="parameter scan on Dask; results append to OUT/scan.nc")
    p.add_argument("spec", type=_path, help="scan spec (TOML), see gfdt_dash.scan")
    p.add_argument(
        "--out", required=True, type=_path, help="scan folder (resumes if it exists)"
    )
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: local)")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=2,
        help="local worker processes (default 2; at most 4 per core)",
    )
    p.add_argument(
        "--threads",
        type=threads_arg,
        help="torch threads per worker process: an integer >= 1, or auto (the available cores "
        "shared among the local workers); default 1",
    )
    _add_common(p, device="cpu", seed=False, threads=False)
    _add_cost_limit(p)
    _add_cost_limit(p, train=True)
    _add_plugin(p)
    p.set_defaults(func=_cmd_scan)
    return parser


def _one_line(exc: BaseException) -> str:
    """The error as one line: our own ``ValueError``s already name the input; anything else
    gets its type (and the hint that ``--debug`` shows where it came from)."""
    msg = " ".join(str(exc).split())
    if isinstance(exc, ValueError | FileNotFoundError) and msg:
        return msg
    if isinstance(exc, MemoryError):
        return f"out of memory ({msg or 'no details'}); rerun with --debug for the traceback"
    return f"{type(exc).__name__}: {msg or 'no message'} (rerun with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _load_plugins(argv)
    except ValueError as exc:
        commands = ("simulate", "train", "response", "reproduce", "scan")
        command = next((f"gfdt-dash {a}" for a in argv if a in commands), "gfdt-dash")
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # The process-wide thread count is the entry point's to set (the library never changes
    # process-wide state); scan's --threads is for its workers, its own process only waits.
    set_threads(None if args.command == "scan" else args.threads)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"gfdt-dash {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(f"gfdt-dash {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
