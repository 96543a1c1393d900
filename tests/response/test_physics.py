"""The central claims on simulated data (slow): GFDT against the ground truths.

Tolerances are statements about error bands: z = (R_m − R_ref)/√(σ_m² + σ_ref²) over lags ≥ 1 and
the pixels dx = 0…3 downstream of the kick (dy = 0), the cells the product reports. With ~80
cells, |z| < 4 everywhere and an rms below 2 is "agreement within bands".
"""

import numpy as np
import pytest

from gfdt_dash.response import (
    analytic_response,
    combine,
    error_table,
    exact_score,
    gaussian_response,
    gfdt_response,
    perturbation_response,
)
from gfdt_dash.systems import AllenCahnConfig, OUConfig, simulate

pytestmark = pytest.mark.slow


def z_downstream(ds, method, reference):
    cells = ds.sel(dy=0, dx=slice(0, 3)).isel(lag=slice(1, None))
    m, r = cells.sel({"method": method}), cells.sel({"method": reference})
    band = np.sqrt(m["response_stderr"] ** 2 + r["response_stderr"] ** 2)
    return ((m["response"] - r["response"]) / band).values


def test_ou_gfdt_and_gaussian_agree_with_analytic():
    cfg = OUConfig.preset("classroom", spinup=0.0, record=200.0)  # OU starts stationary
    data = simulate(cfg, seed=11, device="cpu")
    max_lag = cfg.n_lags - 1
    gfdt = gfdt_response(data, exact_score(cfg, "cpu"), max_lag, method="exact_score",
                         device="cpu")
    both = combine([gfdt, gaussian_response(data, max_lag, device="cpu"),
                    analytic_response(cfg, gfdt["lag"].values)])
    table = error_table(both)
    print("\nOU classroom vs analytic:\n", table.to_string())
    for method in ("exact_score", "gaussian"):
        z = z_downstream(both, method, "analytic")
        assert np.abs(z).max() < 4, method
        assert np.sqrt((z**2).mean()) < 2, method
    assert table.loc["exact_score", "error"] < 0.05
    # the simulated law differs from the continuous one by O(dt·rate), so the raw response and
    # the Stein error show a few per cent on top of sampling error
    assert gfdt.attrs["stein_error"] < 0.15


def test_allen_cahn_exact_score_beats_gaussian():
    """Exact-score GFDT tracks direct perturbation; the Gaussian approximation does not.

    Measured at the classroom preset: exact-score error 0.029 against the perturbation, Gaussian
    0.47 (ratio ≈ 16). The whole residual of the exact-score GFDT sits in the k = 0 (spatial
    mean) mode: its R̂(0, t) stays ≈ 0.85 while the direct one decays to ~0 within two time
    units. Cause: the closed-form score is that of the continuous equation, and on the simulated
    chain (dt = 1/16, stiff reaction) its spatial sum has a non-zero mean inside each well
    (Σs ≈ ∓10 in the ± well; ∓2 at dt = 1/64, an O(dt) bias; Stein error 0.53). Members stay in
    one well for long stretches, so −⟨x̄(t) Σs(0)⟩ does not decay. With the mean mode removed
    from both responses the agreement is within bands (rms z ≈ 0.9, max ≈ 2.2); the full-field
    bounds below allow the documented offset and no more. The GFDT band itself is calibrated:
    two data seeds differ by rms z ≈ 0.8.
    """
    cfg = AllenCahnConfig.preset("classroom")
    data = simulate(cfg, seed=1, device="cpu")
    max_lag = cfg.n_lags - 1
    both = combine([
        gfdt_response(data, exact_score(cfg, "cpu"), max_lag, method="exact_score",
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
    assert table.loc["exact_score", "error"] < 0.06
    assert np.sqrt((z**2).mean()) < 3.5 and np.abs(z).max() < 7
    assert np.abs(z_gauss).max() > 10  # the Gaussian approximation is far outside the bands
    assert ratio > 5
