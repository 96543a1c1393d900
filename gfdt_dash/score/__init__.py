"""Score models: network, VE denoising score matching, training, checkpoints, the score adapter,
diagnostics and the shipped classroom checkpoints.

Quick start::

    from gfdt_dash.systems import OUConfig, simulate
    from gfdt_dash.score import train_score, save_checkpoint, load_checkpoint
    ds = simulate(OUConfig.preset("classroom"), seed=0)
    model = train_score(ds, seed=0)           # classroom network and training presets
    score = model.score_fn()                  # (B, n, n) tensor → score, physical units
    save_checkpoint(model, "ou.safetensors")
    model = load_checkpoint("ou.safetensors", expect_system="ou", expect_n=16)
"""

from gfdt_dash.score.checkpoint import load_checkpoint, save_checkpoint
from gfdt_dash.score.config import ScoreNetConfig, TrainConfig
from gfdt_dash.score.diagnostics import diagnose, sample, stein_error
from gfdt_dash.score.losses import VESchedule, dsm_loss
from gfdt_dash.score.model import ScoreFn, ScoreModel
from gfdt_dash.score.network import ScoreUNet
from gfdt_dash.score.shipped import (
    SHIPPED_DIR,
    load_shipped,
    make_shipped_model,
    make_shipped_models,
    shipped_model_path,
)
from gfdt_dash.score.training import as_snapshots, split_snapshots, train_score

__all__ = [
    "SHIPPED_DIR",
    "ScoreFn",
    "ScoreModel",
    "ScoreNetConfig",
    "ScoreUNet",
    "TrainConfig",
    "VESchedule",
    "as_snapshots",
    "diagnose",
    "dsm_loss",
    "load_checkpoint",
    "load_shipped",
    "make_shipped_model",
    "make_shipped_models",
    "sample",
    "save_checkpoint",
    "shipped_model_path",
    "split_snapshots",
    "stein_error",
    "train_score",
]
