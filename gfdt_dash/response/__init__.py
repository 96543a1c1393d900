"""Response functions of homogeneous stochastic fields: GFDT, Gaussian, direct perturbation, exact.

Quick start::

    from gfdt_dash.systems import OUConfig, simulate
    from gfdt_dash.response import (analytic_response, combine, error_table, exact_score,
                                    gaussian_response, gfdt_response, perturbation_response)
    cfg = OUConfig.preset("classroom")
    ds = simulate(cfg, seed=1)
    res = combine([
        gfdt_response(ds, exact_score(cfg), 20, estimator="exact_score"),
        gaussian_response(ds, 20),
        analytic_response(cfg, ds.time.values[:21] - ds.time.values[0]),
    ])
    error_table(res)
    res.sel(estimator="gaussian")     # one method's result

Every result shares one layout (dims ``lag, dy, dx``; ``response`` and ``response_stderr``), see
:mod:`gfdt_dash.response.result`; :func:`combine` stacks them along ``estimator``. The methods,
their requirements, labels and colours are one table, :data:`ESTIMATORS`
(:mod:`gfdt_dash.response.methods`).
"""

from gfdt_dash.response.bands import N_BOOT, bootstrap_stderr
from gfdt_dash.response.correlation import (
    BlockLayout,
    CorrelationSums,
    block_layout,
    correlation_sums,
)
from gfdt_dash.response.gfdt import TensorScore, exact_score, gaussian_response, gfdt_response
from gfdt_dash.response.methods import ESTIMATORS, MethodSpec, applicable_methods, reference_method
from gfdt_dash.response.metrics import combine, error_table
from gfdt_dash.response.perturbation import analytic_response, perturbation_response
from gfdt_dash.response.result import (
    NULL_RTOL,
    from_offsets,
    normalize,
    null_modes,
    response_dataset,
    stein_error_from_r0,
    to_offsets,
)

__all__ = [
    "ESTIMATORS",
    "NULL_RTOL",
    "N_BOOT",
    "BlockLayout",
    "CorrelationSums",
    "MethodSpec",
    "TensorScore",
    "analytic_response",
    "applicable_methods",
    "block_layout",
    "bootstrap_stderr",
    "combine",
    "correlation_sums",
    "error_table",
    "exact_score",
    "from_offsets",
    "gaussian_response",
    "gfdt_response",
    "normalize",
    "null_modes",
    "perturbation_response",
    "reference_method",
    "response_dataset",
    "stein_error_from_r0",
    "to_offsets",
]
