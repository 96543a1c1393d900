"""The table of response methods, the ``estimator`` dimension, and results of the older layout."""

import json

import numpy as np
import pytest
import xarray as xr

from gfdt_dash.data import open_dataset, write_netcdf
from gfdt_dash.pipeline import compute_responses, default_methods
from gfdt_dash.response import (
    ESTIMATORS,
    analytic_response,
    applicable_methods,
    combine,
    error_table,
    gaussian_response,
    gfdt_response,
    reference_method,
)
from gfdt_dash.systems import AllenCahnConfig, NavierStokesConfig, OUConfig

OU = OUConfig.preset("classroom", n=8)
LAGS = 4


@pytest.fixture(scope="module")
def fields():
    return np.random.default_rng(3).standard_normal((4, 40, 8, 8))


@pytest.fixture(scope="module")
def combined(fields):
    """Gaussian and analytic responses on a common lag grid (frame interval 1 time unit)."""
    gauss = gaussian_response(fields, LAGS, frame_dt=OU.frame_every, device="cpu")
    exact = analytic_response(OU, OU.frame_every * np.arange(LAGS + 1))
    return combine([gauss, exact])


def test_the_table_holds_the_studys_methods_labels_and_colours():
    assert list(ESTIMATORS) == [
        "learned_score",
        "exact_score",
        "gaussian",
        "perturbation",
        "analytic",
    ]
    colours = {name: spec.color for name, spec in ESTIMATORS.items()}
    # The original study's figure: Gaussian blue, exact score red, learned green, perturbation
    # orange; the analytic response black.
    assert colours == {
        "learned_score": "#2ca02c",
        "exact_score": "#d62728",
        "gaussian": "#1f77b4",
        "perturbation": "#ff7f0e",
        "analytic": "#000000",
    }
    assert len({spec.label for spec in ESTIMATORS.values()}) == len(ESTIMATORS)
    assert all(spec.name == name for name, spec in ESTIMATORS.items())
    assert [n for n, s in ESTIMATORS.items() if s.markers] == ["perturbation"]
    assert [n for n, s in ESTIMATORS.items() if s.score_based] == ["learned_score", "exact_score"]
    with pytest.raises(TypeError):
        ESTIMATORS["mine"] = ESTIMATORS["gaussian"]  # read-only


@pytest.mark.parametrize(
    ("system", "with_model", "expected"),
    [
        (OU, True, ("learned_score", "exact_score", "gaussian", "perturbation", "analytic")),
        ("ou", False, ("exact_score", "gaussian", "perturbation", "analytic")),
        (
            AllenCahnConfig.preset("classroom"),
            True,
            ("learned_score", "exact_score", "gaussian", "perturbation"),
        ),
        (
            NavierStokesConfig.preset("classroom"),
            True,
            ("learned_score", "gaussian", "perturbation"),
        ),
        ("navier_stokes", False, ("gaussian", "perturbation")),
        (None, True, ("learned_score", "gaussian")),  # user data without a system config
        (None, False, ("gaussian",)),
    ],
)
def test_the_applicable_methods_follow_the_system_and_the_model(system, with_model, expected):
    assert applicable_methods(system, with_model) == expected
    if not isinstance(system, str):
        assert default_methods(system, with_model) == expected


def test_the_reference_is_analytic_where_present_else_perturbation():
    assert reference_method(["gaussian", "perturbation", "analytic"]) == "analytic"
    assert reference_method(["learned_score", "perturbation"]) == "perturbation"
    assert reference_method(["gaussian", "exact_score"]) is None


@pytest.mark.parametrize(
    ("config", "methods", "message"),
    [
        (
            OU,
            ["gaussian", "nope"],
            r"^methods: unknown method 'nope'; allowed: learned_score, "
            r"exact_score, gaussian, perturbation, analytic$",
        ),
        (OU, ["gaussian", "gaussian"], "^methods: repeated methods"),
        (OU, "gaussian", "^methods: must be a sequence"),
        (OU, ["learned_score"], "^methods: 'learned_score' needs a score model"),
        (None, ["perturbation"], "^methods: 'perturbation' needs the system config"),
        (
            AllenCahnConfig.preset("classroom", n=8),
            ["analytic"],
            "^methods: 'analytic' needs an analytic response, which the system 'allen_cahn'",
        ),
        (
            NavierStokesConfig.preset("classroom", n=8),
            ["exact_score"],
            "^methods: 'exact_score' needs an exact score, which the system 'navier_stokes'",
        ),
    ],
)
def test_dispatch_refuses_unknown_or_unmet_methods_before_running(config, methods, message):
    with pytest.raises(ValueError, match=message):
        compute_responses(config, None, methods=methods, max_lag=2)


def test_dispatch_runs_each_estimator_of_the_table(fields):
    data = xr.Dataset({"field": (("member", "time", "y", "x"), fields)})
    res = compute_responses(
        None,
        data,
        score=lambda x: -x,
        methods=["gaussian", "learned_score"],
        max_lag=LAGS,
        device="cpu",
    )
    assert res["estimator"].values.tolist() == ["gaussian", "learned_score"]
    direct = gfdt_response(fields, lambda x: -x, LAGS, device="cpu")
    np.testing.assert_allclose(
        res["response_raw"].sel(estimator="learned_score"), direct["response_raw"]
    )


def test_selecting_by_estimator_returns_that_result_alone(combined, fields):
    gauss = combined.sel(estimator="gaussian")
    assert "estimator" not in gauss.dims and str(gauss["estimator"].values) == "gaussian"
    alone = gaussian_response(fields, LAGS, frame_dt=OU.frame_every, device="cpu")
    np.testing.assert_array_equal(gauss["response"].values, alone["response"].values)
    assert not np.allclose(gauss["response"], combined["response"].sel(estimator="analytic"))


def test_gfdt_response_method_argument_is_a_deprecated_alias(fields):
    with pytest.warns(DeprecationWarning, match="estimator"):
        old = gfdt_response(fields, lambda x: -x, LAGS, device="cpu", method="exact_score")
    assert old.attrs["estimator"] == "exact_score"


def _old_layout(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` as files were written before the dimension was renamed ``estimator``."""
    old = ds.rename({"estimator": "method"}) if "estimator" in ds.dims else ds.copy()
    renames = {"estimators": "methods", "estimator_attrs": "method_attrs", "estimator": "method"}
    old.attrs = {renames.get(k, k): v for k, v in ds.attrs.items()}
    return old


def test_results_written_in_the_old_layout_load_in_the_new(tmp_path, combined):
    path = write_netcdf(_old_layout(combined), tmp_path / "old.nc")
    raw = xr.load_dataset(path, engine="h5netcdf")
    assert "method" in raw.dims and "methods" in raw.attrs  # really the old layout on disk
    back = open_dataset(path)
    assert "method" not in back.dims and "method" not in back.variables
    assert back["estimator"].values.tolist() == ["gaussian", "analytic"]
    assert "methods" not in back.attrs and "method_attrs" not in back.attrs
    assert set(json.loads(back.attrs["estimator_attrs"])) == {"gaussian", "analytic"}
    np.testing.assert_array_equal(
        back["response"].sel(estimator="gaussian"), combined["response"].sel(estimator="gaussian")
    )
    expected = error_table(combined)
    np.testing.assert_allclose(error_table(back).to_numpy(), expected.to_numpy())
    assert error_table(back).index.name == "estimator"


def test_a_single_result_in_the_old_layout_loads_and_combines(tmp_path, combined):
    exact = analytic_response(OU, OU.frame_every * np.arange(LAGS + 1))
    path = write_netcdf(_old_layout(exact), tmp_path / "analytic.nc")
    back = open_dataset(path)
    assert back.attrs["estimator"] == "analytic" and "method" not in back.attrs
    assert combine([back])["estimator"].values.tolist() == ["analytic"]


def test_a_combined_result_of_the_old_layout_in_memory_is_refused_with_the_cure(combined):
    with pytest.raises(ValueError, match="^results: .*'estimator'.*open_dataset"):
        error_table(_old_layout(combined))
