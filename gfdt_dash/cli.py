"""Command line: ``gfdt-dash simulate|...`` (also ``python -m gfdt_dash``).

Each subcommand is a ``_cmd_<name>(args)`` function registered in ``_build_parser``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from gfdt_dash import __version__

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
    ds = simulate(config, seed=args.seed, device=args.device, dtype=args.dtype,
                  callback=_ProgressBar(not args.quiet))
    path = write_netcdf(ds, args.out)
    print(f"wrote {path} (field {dict(ds.field.sizes)}, snapshot {dict(ds.snapshot.sizes)})")
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
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a config parameter (repeatable), e.g. --set lam=1500")
    p.add_argument("--members", type=int, help="ensemble members (overrides the preset)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--out", required=True, help="output netCDF path")
    _add_common(p)
    p.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gfdt-dash {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
