"""The response methods, one table: name → :class:`MethodSpec`.

Every place that names, runs, checks, colours, labels or ranks the response methods reads
:data:`ESTIMATORS`: the dispatch in :func:`gfdt_dash.pipeline.compute_responses`, the CLI's
``--methods``, scan specs, the report's figures, the dashboard's curves, legends and tables, and
the choice of the reference in :func:`gfdt_dash.response.error_table`. A combined result
(:func:`gfdt_dash.response.combine`) has one entry per method along its ``estimator``
dimension, labelled by these names.

========================  =============================================  =========================
name                      estimate                                       needs
========================  =============================================  =========================
``learned_score``         GFDT ``−⟨x(t) ŝ(x(0))ᵀ⟩``, learned score       a score model
``exact_score``           GFDT with the system's closed-form score       a system with one
``gaussian``              ``C(t) C(0)⁻¹``                                the time series only
``perturbation``          paired runs with shared noise (the truth)      the system config
``analytic``              ``exp(tA)`` per Fourier mode                   a system with one (OU)
========================  =============================================  =========================

Each entry also lists what its estimate reads (``reads``): the pipeline caches every estimate
under a key of exactly those inputs (:func:`estimate_inputs`), so a change that cannot affect an
estimate (the recorded duration for the direct perturbation, the score model for the Gaussian,
the interval of the training snapshots for the Gaussian and exact-score GFDT) reuses it.

The table itself imports nothing numerical (each estimator imports its implementation when
called), so :mod:`gfdt_dash.response.result` can validate names against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "ESTIMATORS",
    "RUN_INPUTS",
    "MethodSpec",
    "applicable_methods",
    "check_methods",
    "estimate_inputs",
    "missing_requirement",
    "reference_method",
    "system_has",
]


@dataclass(frozen=True)
class MethodSpec:
    """One response method.

    ``estimate(config, fields, *, score, max_lag, seed, device, callback, should_stop)`` returns
    the method's result in the common layout (:mod:`gfdt_dash.response.result`): ``config`` is
    the system config (``None`` for data without one), ``fields`` the ``(member, time, y, x)``
    data, ``score`` the learned score callable (``None`` without a model), ``max_lag`` in frames.

    Requirements: ``needs_score_model`` (a learned score), ``needs_config`` (the system config),
    ``needs_exact_score`` / ``needs_analytic_response`` (a system that has a closed-form score /
    response, :func:`system_has`).

    ``score_based``: a GFDT estimate with a score (:func:`gfdt_dash.response.gfdt_response`),
    which also reports the raw response and the Stein-identity error.

    ``reads``: everything the estimate depends on, by name: config groups (``"physics"``,
    ``"grid"``, ``"integrator"``, ``"ensemble"``, ``"experiment"``,
    :attr:`gfdt_dash.systems.SystemConfig.GROUPS`), single config fields (``"max_lag"``), and
    the run's other inputs (:data:`RUN_INPUTS`): ``"frames"`` (the recorded frames, the
    simulation's ``field``: a function of the seed and of the config fields that determine
    them, not of the training snapshots), ``"score_model"`` and ``"seed"``. It must name every
    input, or a cached estimate would be reused where it is wrong (:func:`estimate_inputs`).

    ``reference_rank``: methods that can serve as the truth the errors are measured against; of
    those present, the lowest rank is the reference (:func:`reference_method`). ``markers``: drawn
    as markers on top of the curves (direct perturbation), not as a line.
    """

    name: str
    label: str
    color: str
    estimate: Callable[..., Any]
    needs_score_model: bool = False
    needs_config: bool = False
    needs_exact_score: bool = False
    needs_analytic_response: bool = False
    score_based: bool = False
    reference_rank: int | None = None
    markers: bool = False
    reads: tuple[str, ...] = ()


# What an estimate can read besides config groups and fields (``MethodSpec.reads``).
RUN_INPUTS = ("frames", "score_model", "seed")


def system_has(system: Any, capability: str) -> bool:
    """Whether ``system`` (a system config or a registered system's name) has ``capability``:
    ``"exact_score"`` (a closed-form stationary score) or ``"analytic_response"`` (a closed-form
    response), as its entry in the system registry declares (:class:`gfdt_dash.systems.SystemSpec`).
    """
    from gfdt_dash.systems import system_spec

    if capability not in ("exact_score", "analytic_response"):
        raise ValueError(f"capability: {capability!r}; allowed: exact_score, analytic_response")
    return getattr(system_spec(system), capability) is not None


# -- the estimators, one uniform signature ----------------------------------------------------
def _learned_score(config, fields, *, score, max_lag, **common) -> Any:
    from gfdt_dash.response import gfdt_response

    return gfdt_response(fields, score, max_lag, estimator="learned_score", **common)


def _exact_score(config, fields, *, score, max_lag, **common) -> Any:
    from gfdt_dash.response import exact_score, gfdt_response

    exact = exact_score(config, device=common["device"])
    return gfdt_response(fields, exact, max_lag, estimator="exact_score", **common)


def _gaussian(config, fields, *, score, max_lag, **common) -> Any:
    from gfdt_dash.response import gaussian_response

    return gaussian_response(fields, max_lag, **common)


def _perturbation(config, fields, *, score, max_lag, seed, **common) -> Any:
    """Its own ensemble with the config's protocol, seeded ``seed + 1`` (mod 2**63): independent
    of the noise of the simulation the other methods use."""
    from gfdt_dash.response import perturbation_response
    from gfdt_dash.seeds import derived_seed

    return perturbation_response(config, seed=derived_seed(seed, 1), **common)


def _analytic(config, fields, *, score, max_lag, **common) -> Any:
    import numpy as np

    from gfdt_dash.response import analytic_response

    return analytic_response(config, config.frame_every * np.arange(max_lag + 1))


# Colours follow the original study's figure: Gaussian blue, exact score red, learned green,
# perturbation orange; the analytic response is black. The order is that of tables and defaults.
ESTIMATORS: Mapping[str, MethodSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            MethodSpec(
                name="learned_score",
                label="GFDT, learned score",
                color="#2ca02c",
                estimate=_learned_score,
                needs_score_model=True,
                score_based=True,
                # the recorded frames, the score, lags 0..max_lag in frames, the bootstrap seed
                reads=("frames", "score_model", "max_lag", "seed"),
            ),
            MethodSpec(
                name="exact_score",
                label="GFDT, exact score",
                color="#d62728",
                estimate=_exact_score,
                needs_config=True,
                needs_exact_score=True,
                score_based=True,
                # the closed-form score reads the physical parameters and the grid
                reads=("frames", "physics", "grid", "max_lag", "seed"),
            ),
            MethodSpec(
                name="gaussian",
                label="Gaussian C(t)C(0)⁻¹",
                color="#1f77b4",
                estimate=_gaussian,
                reads=("frames", "max_lag", "seed"),
            ),
            MethodSpec(
                name="perturbation",
                label="direct perturbation",
                color="#ff7f0e",
                estimate=_perturbation,
                needs_config=True,
                reference_rank=1,
                markers=True,
                # its own ensemble (not the recorded frames): `members` members spun up for
                # `spinup`, then the experiment; lags at the frame interval; seeded by the seed
                reads=(
                    "physics",
                    "grid",
                    "integrator",
                    "experiment",
                    "members",
                    "spinup",
                    "frame_every",
                    "seed",
                ),
            ),
            MethodSpec(
                name="analytic",
                label="analytic",
                color="#000000",
                estimate=_analytic,
                needs_config=True,
                needs_analytic_response=True,
                reference_rank=0,
                # the closed form of the equation (not of its integrator) at the frame lags
                reads=("physics", "grid", "frame_every", "max_lag"),
            ),
        )
    }
)


def check_methods(names: Iterable[Any], field: str = "methods") -> tuple[str, ...]:
    """``names`` as a tuple, each a known method, none repeated; ``ValueError`` naming ``field``
    and the allowed names otherwise."""
    if isinstance(names, str):
        raise ValueError(f"{field}: must be a sequence of method names, got the text {names!r}")
    try:
        out = tuple(names)
    except TypeError:
        raise ValueError(
            f"{field}: must be a sequence of method names, got {type(names).__name__}"
        ) from None
    if not out:
        raise ValueError(f"{field}: give at least one method; allowed: {', '.join(ESTIMATORS)}")
    for name in out:
        if not isinstance(name, str) or name not in ESTIMATORS:
            raise ValueError(f"{field}: unknown method {name!r}; allowed: {', '.join(ESTIMATORS)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{field}: repeated methods in {list(out)}")
    return out


def missing_requirement(name: str, system: Any, with_model: bool) -> str | None:
    """Why method ``name`` cannot run on data of ``system`` (a config, a system's name, or
    ``None`` for data without a config) with or without a score model; ``None`` if it can."""
    spec = ESTIMATORS[name]
    if spec.needs_score_model and not with_model:
        return "needs a score model"
    if system is None and spec.needs_config:
        return "needs the system config; the data have none"
    for need, capability, what in (
        (spec.needs_exact_score, "exact_score", "an exact score"),
        (spec.needs_analytic_response, "analytic_response", "an analytic response"),
    ):
        if need and not system_has(system, capability):
            label = system if isinstance(system, str) else system.system
            return f"needs {what}, which the system {label!r} does not have"
    return None


def applicable_methods(system: Any, with_model: bool = True) -> tuple[str, ...]:
    """Every method that can run on data of ``system`` (a config, a system's name, or ``None``
    for data without a config), in the table's order."""
    return tuple(m for m in ESTIMATORS if missing_requirement(m, system, with_model) is None)


def estimate_inputs(
    name: str, config: Any, *, seed: int, frames: Any = None, score_model: Any = None
) -> dict[str, Any] | None:
    """Everything the estimate of method ``name`` reads (its ``reads``), by name: the values of
    the config's groups and fields it lists, and of the run's inputs it lists, ``seed`` and the
    identities the caller gives of ``frames`` and ``score_model`` (e.g. cache keys; a trained
    model's identity must include the snapshots it was trained on). Two runs with equal inputs
    give the same estimate: this is the key of a cached one. ``None`` when an input it reads has
    no identity (``None``), so that it must be recomputed."""
    spec = ESTIMATORS[name]
    identities = {"frames": frames, "score_model": score_model, "seed": seed}
    inputs: dict[str, Any] = {"estimator": name, "system": config.system}
    for item in spec.reads:
        if item in identities:
            if identities[item] is None:
                return None
            inputs[item] = identities[item]
        elif item in config.GROUPS:
            inputs[item] = config.group(item)
        else:
            inputs[item] = getattr(config, item)
    return inputs


def reference_method(names: Iterable[str]) -> str | None:
    """The truth among ``names`` that errors are measured against: the analytic response where
    present, else direct perturbation; ``None`` if there is neither."""
    ranked = [n for n in names if n in ESTIMATORS and ESTIMATORS[n].reference_rank is not None]
    return min(ranked, key=lambda n: ESTIMATORS[n].reference_rank, default=None)
