"""The central claims on simulated data (slow): GFDT against the ground truths.

Tolerances are statements about error bands: z = (R_m − R_ref)/√(σ_m² + σ_ref²) over lags ≥ 1 and
the pixels dx = 0…3 downstream of the kick (dy = 0), the cells the product reports. With ~80
cells, |z| < 4 everywhere and an rms below 2 is "agreement within bands".
"""

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
from gfdt_dash.response.result import response_dataset
from gfdt_dash.systems import AllenCahnConfig, Grid, OUConfig, simulate

pytestmark = pytest.mark.slow


def z_downstream(ds, method, reference):
    cells = ds.sel(dy=0, dx=slice(0, 3)).isel(lag=slice(1, None))
    m, r = cells.sel(estimator=method), cells.sel(estimator=reference)
    band = np.sqrt(m["response_stderr"] ** 2 + r["response_stderr"] ** 2)
    return ((m["response"] - r["response"]) / band).values


def _ou_responses(cfg):
    data = simulate(cfg, seed=11, device="cpu")
    max_lag = cfg.n_lags - 1
    gfdt = gfdt_response(data, exact_score(cfg, "cpu"), max_lag, estimator="exact_score",
                         device="cpu")
    return gfdt, [gfdt, gaussian_response(data, max_lag, device="cpu"),
                  analytic_response(cfg, gfdt["lag"].values)]


def lm_correlation_response(cfg, lags):
    """Closed-form C(t)C(0)⁻¹ of OU data made by the LM scheme (per mode, n = t/dt steps):

        e^{Â n dt} (1 − r dt)^{n−1} (1 − r dt/2),   r = κ|k|² + γδ_k0   (n ≥ 1; 1 at n = 0).

    θₙ = Zₙ + ξₙ/2 carries half of the increment that drives the next step, so the lag-one
    covariance is (1 − r dt)v + q/4 = (1 − r dt/2)v (v = q/(2r dt) the exact variance). The
    paired-run response of the chain is e^{Â n dt}(1 − r dt)ⁿ and the SDE's e^{(Â − r) n dt}; both
    differ from this by O(r dt) — the scheme is first order for the dynamics, exact for the law.
    """
    g = Grid(cfg.n, torch.device("cpu"), torch.float64)
    rate = cfg.kappa * g.k2 + torch.where(g.is_mean, cfg.gamma, 0.0)
    out = []
    for t in lags:
        n = cfg.steps(t)
        chain = (1 - rate * cfg.dt) ** (n - 1) * (1 - rate * cfg.dt / 2) if n else 1 + 0 * rate
        out.append(g.to_physical(torch.exp(-cfg.U * g.ikx * cfg.dt * n) * chain))
    r = torch.stack(out).numpy()
    attrs = {"system": cfg.system, "config": cfg.to_json(), "pixel": [0, 0],
             "n_excluded_modes": 0, "band": "none (exact)"}
    return response_dataset(r, np.zeros(r.shape), np.asarray(lags), "analytic", attrs)


def test_ou_gfdt_and_gaussian_agree_with_the_lm_closed_form_and_analytic():
    """LM data (the default): the exact score is exact for the simulated law, so the Stein error
    is sampling error only; the correlation-based responses match the scheme's closed form
    within bands and the SDE's analytic response to within the O(r dt) of the dynamics."""
    cfg = OUConfig.preset("classroom", spinup=0.0, record=200.0)  # OU starts stationary
    assert cfg.integrator == "lm"
    gfdt, results = _ou_responses(cfg)
    both = combine(results)
    table = error_table(both)
    print("\nOU classroom (LM) vs analytic:\n", table.to_string())
    oracle = lm_correlation_response(cfg, gfdt["lag"].values)
    want = oracle.sel(dy=0, dx=slice(0, 3)).isel(lag=slice(1, None))["response"].values
    for method in ("exact_score", "gaussian"):
        got = both.sel(estimator=method).sel(dy=0, dx=slice(0, 3)).isel(lag=slice(1, None))
        z = ((got["response"] - want) / got["response_stderr"]).values  # the oracle is exact
        assert np.abs(z).max() < 4, method
        assert np.sqrt((z**2).mean()) < 2, method
    # measured 0.0082 (normalised) and 0.0126 (raw); RK4 data: 0.0075 and 0.021
    assert table.loc["exact_score", "error"] < 0.05
    assert table.loc["exact_score", "error_raw"] < 0.05
    # measured 0.062 = the sampling floor of 32 members × 200 frames (RK4 data: 0.065)
    assert gfdt.attrs["stein_error"] < 0.1


def test_ou_gfdt_and_gaussian_agree_with_analytic_on_rk4_data():
    """RK4 data: fourth order for the dynamics, so the normalised responses match the SDE's."""
    cfg = OUConfig.preset("classroom", spinup=0.0, record=200.0, integrator="rk4")
    gfdt, results = _ou_responses(cfg)
    both = combine(results)
    table = error_table(both)
    print("\nOU classroom (RK4) vs analytic:\n", table.to_string())
    for method in ("exact_score", "gaussian"):
        z = z_downstream(both, method, "analytic")
        assert np.abs(z).max() < 4, method
        assert np.sqrt((z**2).mean()) < 2, method
    assert table.loc["exact_score", "error"] < 0.05
    # the simulated law differs from the continuous one by O(dt·rate), so the raw response and
    # the Stein error show a few per cent on top of sampling error
    assert gfdt.attrs["stein_error"] < 0.15


def test_allen_cahn_exact_score_beats_gaussian():
    """Exact-score GFDT tracks direct perturbation within bands; the Gaussian approximation does
    not.

    Classroom preset (LM, dt = 1/16), one direct-perturbation run (seed 2) against data seeds
    1, 3, 4, 6: exact-score error 0.19, 0.060, 0.064, 0.059 (raw 0.097, 0.062, 0.062, 0.061;
    Stein 0.057, 0.033, 0.039, 0.027), Gaussian 0.31–0.46. The spatial-mean mode is the noisy
    part: members stay in one well for long stretches, so −⟨θ̂₀(t)ŝ₀(0)⟩ averages over few well
    switches; in seed 1 it stays ≈ −6/N² at every lag (seed 3: ≈ +0.2/N²), which the bootstrap
    band shows (exact-score z rms 0.1) and which dominates that seed's error. Without the k = 0
    mode seed 1 gives 0.083 against the Gaussian's 0.29 (seed 3: 0.061 vs 0.43). With the study's
    RK4 scheme the same seeds gave errors 0.045–0.062 but raw errors 0.19–0.21 and Stein 0.53–0.57:
    its stationary law is biased at O(dt), and λ amplifies that in the mean mode.
    """
    cfg = AllenCahnConfig.preset("classroom")
    data = simulate(cfg, seed=1, device="cpu")
    max_lag = cfg.n_lags - 1
    both = combine([
        gfdt_response(data, exact_score(cfg, "cpu"), max_lag, estimator="exact_score",
                      device="cpu"),
        gaussian_response(data, max_lag, device="cpu"),
        perturbation_response(cfg, seed=2, device="cpu"),
    ])
    table = error_table(both)
    ratio = table.loc["gaussian", "error"] / table.loc["exact_score", "error"]
    z = z_downstream(both, "exact_score", "perturbation")
    z_gauss = z_downstream(both, "gaussian", "perturbation")
    print("\nAllen–Cahn classroom vs direct perturbation:\n", table.to_string())
    print(f"Gaussian / exact-score error ratio: {ratio:.1f}; exact-score z: max "
          f"{np.abs(z).max():.1f}, rms {np.sqrt((z**2).mean()):.1f}; Gaussian z: max "
          f"{np.abs(z_gauss).max():.1f}")
    no_mean = both.assign(response=both["response"] - both["response"].mean(("dy", "dx")))
    z_no_mean = z_downstream(no_mean, "exact_score", "perturbation")
    print(f"exact-score z without the k = 0 mode: max {np.abs(z_no_mean).max():.1f}, rms "
          f"{np.sqrt((z_no_mean**2).mean()):.1f}")
    assert np.abs(z_no_mean).max() < 4 and np.sqrt((z_no_mean**2).mean()) < 1.5
    assert np.sqrt((z**2).mean()) < 1.5 and np.abs(z).max() < 4  # the k = 0 mode included
    assert table.loc["exact_score", "error_raw"] < 2 * table.loc["exact_score", "error"]
    assert table.loc["exact_score", "stein_error"] < 0.1
    assert ratio > 1
    # Without the noisy mean mode (see the docstring): measured 0.083 and ratio 3.5 here.
    errors = error_table(no_mean)["error"]
    assert errors["exact_score"] < 0.1
    assert errors["gaussian"] / errors["exact_score"] > 3
    # Far outside the bands; measured 10.5 here, where the mean mode widens the bands, and 21
    # on data whose mean mode happened to average well.
    assert np.abs(z_gauss).max() > 8
