"""The pretrained classroom checkpoints in ``assets/models/<system>/`` and the command that makes
them: ``python -m gfdt_dash.score.make_models [--out assets/models] [--systems ...]``.

Each system's classroom preset is simulated (seed 0), a classroom network is trained on its
snapshots (with the per-system departures in ``SHIPPED_SETTINGS``), diagnostics are computed on
the held-out snapshots, and ``model.safetensors`` (inference-only weights + metadata) and a
readable copy of the metadata, ``metadata.json``, are written.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gfdt_dash.data import atomic_write_bytes
from gfdt_dash.progress import ProgressCallback, StopCheck
from gfdt_dash.resources import asset_path
from gfdt_dash.score.checkpoint import load_checkpoint, save_checkpoint
from gfdt_dash.score.config import ScoreNetConfig, TrainConfig
from gfdt_dash.score.diagnostics import diagnose
from gfdt_dash.score.model import ScoreModel
from gfdt_dash.score.training import as_snapshots, split_snapshots, train_score

__all__ = [
    "SHIPPED_DIR",
    "SHIPPED_STEPS",
    "load_shipped",
    "make_shipped_model",
    "make_shipped_models",
    "shipped_model_path",
    "shipped_systems",
]

log = logging.getLogger(__name__)

SHIPPED_DIR = asset_path("models")
# Training steps of the shipped models: longer than the interactive classroom default, since
# they are made once.
SHIPPED_STEPS = {"ou": 6000, "allen_cahn": 10000, "navier_stokes": 6000}
# Per-system departures from the classroom presets for the shipped models. Allen–Cahn: the
# classroom net of then (widths 8/16/32, 2 residual blocks, constant lr, 16000 steps on 32
# simulated members) reached 3.3×
# the exact-score GFDT error on fresh data (0.175 vs 0.053; held-out score error 0.29, worst in
# the slow low-|k| modes). Widths 16/32/64 with a cosine learning-rate decay (10000 steps) gave
# 0.146 on the same 32 members, and 0.0625 (1.17×) on 128 members (10240 training snapshots):
# the non-Gaussian correction at σ_min needs the data. The model is still of the classroom
# system (``members`` only sets how much is simulated); see tests/score/test_acceptance.py.
# Remade on data of the default ``lm`` integrator (whose stationary law is the closed-form one):
# on fresh data (seed 11) 0.051 learned vs 0.055 exact-score error; held-out score error 0.22.
# Over the tuning seeds 1–7 and 11 (acceptance protocol of tests/score/test_acceptance.py) its
# learned/exact-score error ratio is 0.35–2.06 (mean normalised error 0.039). More data was tried
# and not adopted: 256 members gave ratios 0.31–3.29 (mean error 0.054), 512 members 0.32–3.08
# (0.049), although their raw response errors (0.12–0.24 and 0.15–0.31 against 0.27–0.34) and
# Stein errors (0.31–0.49 and 0.37–0.65 against 0.59–0.72) were lower. On the held-out seeds,
# used for no choice: 0.071 vs 0.043 (seed 29, 1.66×) and 0.031 vs 0.037 (seed 41). Its layout,
# 2 residual blocks included, is the ``cpu_paper`` network's and is named here in full, so the
# classroom preset's own layout (no residual blocks since the OU and Navier–Stokes models were
# remade with it) does not change this model.
SHIPPED_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "allen_cahn": {
        "system": {"members": 128},
        "net": {"widths": (16, 32, 64), "n_res_blocks": 2},
        "train": {"lr_decay": "cosine"},
    },
}


def shipped_systems() -> tuple[str, ...]:
    """The registered systems that declare a shipped model (``SystemSpec.shipped_model``)."""
    from gfdt_dash.systems import system_names, system_spec

    return tuple(n for n in system_names() if system_spec(n).shipped_model is not None)


def shipped_model_path(system: str, root: str | os.PathLike | None = None) -> Path:
    """Path of the shipped classroom checkpoint of ``system`` (its spec's ``shipped_model``
    folder; a system without one gets the folder of its own name, which does not exist)."""
    from gfdt_dash.systems import system_spec

    folder = system_spec(system).shipped_model or system
    return Path(root or SHIPPED_DIR) / folder / "model.safetensors"


def load_shipped(system: str, device: str | torch.device = "auto") -> ScoreModel:
    """Load the shipped classroom score model of ``system`` (grid of the classroom preset)."""
    from gfdt_dash.systems import get_config

    path = shipped_model_path(system)
    if not path.is_file():
        raise FileNotFoundError(
            f"no shipped model for {system!r} at {str(path)!r}; make it with "
            "`python -m gfdt_dash.score.make_models`"
        )
    return load_checkpoint(
        path, expect_system=system, expect_n=get_config(system, "classroom").n, device=device
    )


def make_shipped_model(
    system: str,
    out_dir: str | os.PathLike | None = None,
    *,
    n_steps: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> Path:
    """Simulate, train, diagnose and write one shipped checkpoint; returns its path."""
    from gfdt_dash.systems import get_config, simulate, system_spec

    settings = SHIPPED_SETTINGS.get(system, {})
    config = get_config(system, "classroom").replace(**settings.get("system", {}))
    t0 = time.perf_counter()
    ds = simulate(config, seed=seed, device=device, callback=callback, should_stop=should_stop)
    t_sim = time.perf_counter() - t0
    steps = n_steps or SHIPPED_STEPS.get(system, 6000)
    train_cfg = TrainConfig.preset("classroom", **{**settings.get("train", {}), "n_steps": steps})
    net_cfg = ScoreNetConfig.preset("classroom", **settings.get("net", {}))
    # The model is of the classroom system: ``members`` is a run-protocol setting (the
    # stationary law does not depend on it), recorded under provenance instead.
    model = train_score(
        ds, system_config=get_config(system, "classroom"), net_config=net_cfg,
        train_config=train_cfg, seed=seed,
        device=device, callback=callback, should_stop=should_stop,
    )
    t_train = time.perf_counter() - t0 - t_sim
    arr, _ = as_snapshots(ds)
    _, held_out = split_snapshots(arr, train_cfg.val_fraction)
    exact = None
    if system_spec(system).exact_score is not None:
        exact = system_spec(system).exact_score(config, model.device, "float32")
    diag = diagnose(model, held_out, exact, seed=seed, device=model.device,
                    should_stop=should_stop)
    model.metadata["diagnostics"] = diag
    model.metadata["provenance"] = {
        "command": "python -m gfdt_dash.score.make_models",
        "simulation_seed": seed,
        "simulation_members": config.members,
        "simulate_s": round(t_sim, 1),
        "train_s": round(t_train, 1),
        "device": str(model.device),
        "torch": torch.__version__,
    }
    path = shipped_model_path(system, out_dir)
    save_checkpoint(model, path, training_state=False)
    summary = {k: v for k, v in model.metadata.items() if k != "history"}
    summary["diagnostics"] = {k: v for k, v in diag.items() if not isinstance(v, dict)}
    summary["final_losses"] = {
        "train_loss": model.history["train_loss"][-1],
        "val_loss": model.history["val_loss"][-1] if model.history["val_loss"] else None,
    }
    atomic_write_bytes(path.with_name("metadata.json"),
                       (json.dumps(summary, indent=2, default=_json_default) + "\n").encode())
    log.info("%s: wrote %s (%d bytes); diagnostics %s", system, path, path.stat().st_size,
             summary["diagnostics"])
    return path


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON-serialisable: {type(v)}")


def make_shipped_models(
    out_dir: str | os.PathLike | None = None,
    systems: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[Path]:
    """:func:`make_shipped_model` for each of ``systems`` (default: every system that declares a
    shipped model); returns the checkpoint paths."""
    return [make_shipped_model(s, out_dir, **kwargs) for s in systems or shipped_systems()]
