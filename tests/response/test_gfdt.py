"""GFDT and Gaussian responses on fields not from our simulators: a random-phase AR(1) field.

Every Fourier mode follows x̂(t+1) = a x̂(t) + √(1−a²) √S(k) ŵ(t), so the field is stationary and
Gaussian with covariance C(0) (spectrum S) and C(t) = aᵗC(0). Its exact score is
s = −C(0)⁻¹x (ŝ = −x̂/S), and the exact response is R(t) = aᵗ I: aᵗ at the kicked pixel, 0
elsewhere.
"""

import numpy as np
import pytest
import torch
import xarray as xr

from gfdt_dash.data import open_dataset, write_netcdf
from gfdt_dash.progress import Cancelled
from gfdt_dash.response import combine, error_table, gaussian_response, gfdt_response

A = 0.6
N = 8
MAX_LAG = 6


def spectrum(n):
    k = np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    return 1.0 / (1.0 + k2)


def ar1_fields(members, length, n=N, a=A, seed=0):
    rng = np.random.default_rng(seed)
    amp = np.sqrt(spectrum(n))
    x = np.empty((members, length, n, n))
    x_hat = amp * np.fft.fft2(rng.standard_normal((members, n, n)))
    for t in range(length):
        if t:
            w_hat = np.fft.fft2(rng.standard_normal((members, n, n)))
            x_hat = a * x_hat + np.sqrt(1 - a * a) * amp * w_hat
        x[:, t] = np.fft.ifft2(x_hat).real
    return x


def gaussian_score(scale=1.0):
    s_hat = torch.as_tensor(spectrum(N))

    def score(x):
        return -scale * torch.fft.ifft2(torch.fft.fft2(x) / s_hat.to(x.device)).real.to(x.dtype)

    return score


@pytest.fixture(scope="module")
def fields():
    return ar1_fields(8, 400)


@pytest.fixture(scope="module")
def exact(fields):
    return gfdt_response(fields, gaussian_score(), MAX_LAG, device="cpu", estimator="exact_score")


def exact_response():
    r = np.zeros((MAX_LAG + 1, N, N))
    r[:, N // 2, N // 2] = A ** np.arange(MAX_LAG + 1)
    return r


def z_scores(ds, var):
    """(estimate − exact)/band for lags ≥ 1, where the exact response is aᵗ δ."""
    diff = ds[var].values[1:] - exact_response()[1:]
    return diff / ds[f"{var}_stderr"].values[1:]


def test_layout(exact):
    assert exact.sizes == {"lag": MAX_LAG + 1, "dy": N, "dx": N}
    assert exact["dx"].values.tolist() == list(range(-N // 2, N // 2))
    assert exact.attrs["estimator"] == "exact_score"
    assert exact.attrs["n_blocks"] == 64  # 8 members × 8 time ranges
    assert exact.attrs["n_excluded_modes"] == 0
    # lag 0 of the normalised response is the identity to round-off
    np.testing.assert_allclose(exact["response"].values[0], exact_response()[0], atol=1e-12)


@pytest.mark.parametrize("var", ["response", "response_raw"])
def test_exact_score_recovers_ar1_response_within_band(exact, var):
    z = z_scores(exact, var)
    # 6·64·64 cells: |z| ≤ 5 allows for the Gaussian tail; the rms checks the band's calibration
    # (a bootstrap over 64 blocks estimates σ to about ±10 %).
    assert np.abs(z).max() < 5
    assert 0.6 < np.sqrt((z**2).mean()) < 1.5


def test_stein_identity_exact_score(exact):
    # Sampling error only: ~1/√N_eff with N_eff ≈ 8·400·(1−a)/(1+a) = 800 samples per mode.
    assert exact.attrs["stein_error"] < 0.1


def test_scaled_score_shows_in_raw_and_stein_not_in_normalized(fields, exact):
    doubled = gfdt_response(fields, gaussian_score(2.0), MAX_LAG, device="cpu")
    np.testing.assert_allclose(doubled["response_raw"], 2 * exact["response_raw"], atol=1e-12)
    np.testing.assert_allclose(doubled["response"], exact["response"], atol=1e-12)
    # ⟨x sᵀ⟩ + I ≈ −2I + I: the Stein error is ≈ 1
    assert abs(doubled.attrs["stein_error"] - 1) < 0.2
    table = error_table([doubled.assign_attrs(estimator="learned_score"), exact], "exact_score")
    assert table.loc["learned_score", "error_raw"] > 0.9
    assert table.loc["learned_score", "error"] < 1e-10


def test_gaussian_equals_gfdt_with_gaussian_score(fields):
    """With zero-mean data, C(t)C(0)⁻¹ is exactly the normalised GFDT with s = −C⁻¹x."""
    x = fields - fields.mean()
    gauss = gaussian_response(x, MAX_LAG, device="cpu")
    gfdt = gfdt_response(x, gaussian_score(), MAX_LAG, device="cpu")
    np.testing.assert_allclose(gauss["response"], gfdt["response"], atol=1e-12)
    assert abs(gauss.attrs["mean"]) < 1e-12
    assert gauss.attrs["estimator"] == "gaussian" and "response_raw" not in gauss


def test_precomputed_scores_equal_callable(fields, exact):
    s = gaussian_score()(torch.as_tensor(fields)).numpy()
    pre = gfdt_response(fields, s, MAX_LAG, device="cpu", estimator="exact_score")
    np.testing.assert_allclose(pre["response_raw"], exact["response_raw"], atol=1e-12)


def test_batches_and_float32(fields, exact):
    """Small score batches change nothing; float32 input agrees to float32 accuracy."""
    calls = []

    def score(x):
        calls.append(x.shape[0])
        return gaussian_score()(x)

    small = gfdt_response(fields, score, MAX_LAG, device="cpu", batch_size=7)
    assert max(calls) == 7
    np.testing.assert_allclose(small["response_raw"], exact["response_raw"], atol=1e-12)
    single = gfdt_response(fields.astype(np.float32), gaussian_score(), MAX_LAG, device="cpu")
    np.testing.assert_allclose(single["response_raw"], exact["response_raw"], atol=1e-4)


def test_time_coordinate_sets_lags_and_provenance(fields):
    da = xr.DataArray(
        fields,
        dims=("member", "time", "y", "x"),
        coords={"time": 10.0 + 0.5 * np.arange(fields.shape[1])},
        attrs={"config": '{"system": "custom"}'},
    )
    ds = gaussian_response(da, 3, device="cpu")
    np.testing.assert_allclose(ds["lag"], [0.0, 0.5, 1.0, 1.5])
    assert ds.attrs["config"] == '{"system": "custom"}'
    assert gaussian_response(fields, 3, frame_dt=2.0, device="cpu")["lag"].values[-1] == 6.0
    with pytest.raises(ValueError, match="frame_dt"):
        gaussian_response(da, 3, frame_dt=1.0, device="cpu")


def test_progress_and_cancel(fields):
    reports = []
    gfdt_response(fields, gaussian_score(), 2, device="cpu", callback=reports.append)
    assert {r.stage for r in reports} == {"gfdt", "gfdt bootstrap"}
    assert reports[-1].done == reports[-1].total
    with pytest.raises(Cancelled):
        gaussian_response(fields, 2, device="cpu", should_stop=lambda: True)


def test_netcdf_round_trip(tmp_path, exact, fields):
    both = combine([exact, gaussian_response(fields, MAX_LAG, device="cpu")])
    path = write_netcdf(both, tmp_path / "r.nc")
    back = open_dataset(path)
    np.testing.assert_allclose(back["response"], both["response"])
    assert back["estimator"].values.tolist() == ["exact_score", "gaussian"]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(fields=np.zeros((2, 5, 4))), "fields"),
        (dict(fields=np.zeros((2, 5, 4, 6))), "fields"),
        (dict(max_lag=5), "max_lag"),
        (dict(max_lag=-1), "max_lag"),
        (dict(max_lag=1.5), "max_lag"),
        (dict(pixel=(0, 4)), "pixel"),
        (dict(frame_dt=0.0), "frame_dt"),
        (dict(n_blocks=1), "n_blocks"),
        (dict(batch_size=0), "batch_size"),
        (dict(estimator="gaussian"), "estimator"),
        (dict(score=np.zeros((2, 4, 4, 4))), "score"),
        (dict(score=lambda x: x[:, :2]), "score"),
        (dict(score=lambda x: x * np.nan), "score"),
        (dict(device="tpu"), "device"),
    ],
)
def test_validation_names_the_argument(kwargs, name):
    good = np.random.default_rng(0).standard_normal((2, 5, 4, 4))  # valid but for the one change
    args = dict(fields=good, score=lambda x: -x, max_lag=2, device="cpu")
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{name}"):
        gfdt_response(args.pop("fields"), args.pop("score"), args.pop("max_lag"), **args)


def test_null_mode_is_excluded_not_divided(fields):
    """A score blind to the spatial mean has R̂(0, t) = 0: that mode is dropped, and counted."""
    base = gaussian_score()

    def blind(x):
        s = base(x)
        return s - s.mean(dim=(-2, -1), keepdim=True)

    ds = gfdt_response(fields, blind, MAX_LAG, device="cpu")
    assert ds.attrs["n_excluded_modes"] == 1
    assert np.isfinite(ds["response"]).all() and np.isfinite(ds["response_stderr"]).all()
    # the k = 0 mode of the normalised response is zero: it sums to 0 over space at every lag
    np.testing.assert_allclose(ds["response"].sum(("dy", "dx")), 0.0, atol=1e-10)
    # the other modes are untouched: the response at the kicked pixel is still ≈ aᵗ − mean
    full = gfdt_response(fields, base, MAX_LAG, device="cpu")
    mean_mode = full["response"].mean(("dy", "dx"))
    np.testing.assert_allclose(ds["response"], full["response"] - mean_mode, atol=1e-10)
