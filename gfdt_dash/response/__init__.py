"""Response functions of homogeneous stochastic fields: GFDT, Gaussian, direct perturbation, exact.

Quick start::

    from gfdt_dash.systems import OUConfig, simulate
    from gfdt_dash.response import (analytic_response, combine, error_table, exact_score,
                                    gaussian_response, gfdt_response, perturbation_response)
    cfg = OUConfig.preset("classroom")
    ds = simulate(cfg, seed=1)
    res = combine([
        gfdt_response(ds, exact_score(cfg), 20, method="exact_score"),
        gaussian_response(ds, 20),
        analytic_response(cfg, ds.time.values[:21] - ds.time.values[0]),
    ])
    error_table(res)

Every result shares one layout (dims ``lag, dy, dx``; ``response`` and ``response_stderr``), see
:mod:`gfdt_dash.response.result`.
"""

from gfdt_dash.response.bands import N_BOOT, bootstrap_stderr
from gfdt_dash.response.correlation import (
    BlockLayout,
    CorrelationSums,
    block_layout,
    correlation_sums,
)
from gfdt_dash.response.gfdt import ScoreFn, exact_score, gaussian_response, gfdt_response
from gfdt_dash.response.metrics import combine, error_table
from gfdt_dash.response.perturbation import analytic_response, perturbation_response
from gfdt_dash.response.result import (
    METHODS,
    NULL_RTOL,
    from_offsets,
    normalize,
    null_modes,
    response_dataset,
    stein_error,
    to_offsets,
)

__all__ = [
    "METHODS",
    "NULL_RTOL",
    "N_BOOT",
    "BlockLayout",
    "CorrelationSums",
    "ScoreFn",
    "analytic_response",
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
    "response_dataset",
    "stein_error",
    "to_offsets",
]
