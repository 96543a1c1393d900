"""``python -m gfdt_dash.score.make_models``: (re)make the shipped classroom checkpoints.

See :mod:`gfdt_dash.score.shipped`. Example::

    python -m gfdt_dash.score.make_models --systems ou allen_cahn --device cpu
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from gfdt_dash.score.shipped import SHIPPED_DIR, make_shipped_models


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(SHIPPED_DIR), help="output folder (assets/models)")
    parser.add_argument(
        "--systems", nargs="+", help="systems (default: every one with a shipped model)"
    )
    parser.add_argument("--steps", type=int, help="training steps (default: per-system)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default, reproducible), cuda, auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for path in make_shipped_models(args.out, args.systems, n_steps=args.steps, seed=args.seed,
                                    device=args.device):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
