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

    Measured at the classroom preset (seeds 1 and 2): exact-score error 0.029 against the
    perturbation, Gaussian 0.47 (ratio ≈ 16); the GFDT's own bootstrap band is calibrated
    (two data seeds differ by rms z = 0.8), but the exact-score GFDT sits ~3 % off the direct
    response, rms z ≈ 2–2.8, max |z| ≈ 4.6–5.7 over these 80 cells. The closed-form score is that
    of the continuous equation, and the simulated chain's Stein error is 0.53 (0.24 at dt/2), so
    a small systematic offset is expected; the bounds below allow it and nothing more.
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
    assert table.loc["exact_score", "error"] < 0.06
    assert np.sqrt((z**2).mean()) < 3.5 and np.abs(z).max() < 7
    assert np.abs(z_gauss).max() > 10  # the Gaussian approximation is far outside the bands
    assert ratio > 5
