"""What the results say, in words: a verdict computed from the error table and the shape of the
field's distribution (shown by the dashboard under its figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gfdt_dash.response.methods import ESTIMATORS, reference_method

__all__ = ["shape_statistics", "verdict"]


def shape_statistics(values: np.ndarray) -> dict[str, float]:
    """Skewness, excess kurtosis and Sarle's bimodality coefficient
    ``b = (skew² + 1) / (kurtosis)`` of pixel values (``b > 5/9`` suggests two modes; a Gaussian
    has ``b = 1/3``)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 4 or x.std() == 0:
        return {}
    z = (x - x.mean()) / x.std()
    skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    return {"skewness": skew, "excess_kurtosis": kurt - 3.0, "bimodality": (skew**2 + 1) / kurt}


def verdict(system: str, table: pd.DataFrame, stats: dict[str, float], mismatch: str = "") -> str:
    """A few sentences on what the results show, computed from the error table and the shape of
    the field's distribution (``shape_statistics``)."""
    if table is None or table.empty or "error" not in table:
        return ""
    errors = {str(m): float(e) for m, e in zip(table["estimator"], table["error"], strict=False)}
    labels = {m: spec.label for m, spec in ESTIMATORS.items()}
    reference = reference_method(errors) or "perturbation"
    gauss, learned, exact = (errors.get(m) for m in ("gaussian", "learned_score", "exact_score"))
    bimodal = stats.get("bimodality", 0.0) > 5 / 9
    kurt = stats.get("excess_kurtosis", 0.0)
    shape = (
        "the field is bimodal (two humps in the histogram)"
        if bimodal
        else f"the field is close to Gaussian (histogram: excess kurtosis {kurt:+.2f})"
        if abs(kurt) < 0.3
        else f"the field is not Gaussian (histogram: excess kurtosis {kurt:+.2f})"
    )
    parts = []
    if mismatch and mismatch != "no model" and learned is not None:
        parts.append(
            f"⚠ The learned score comes from a model trained for {mismatch}: its curve is not "
            "a fair test of these parameters."
        )
    ref = labels.get(reference, reference)
    if gauss is not None and learned is not None and np.isfinite(learned):
        if gauss > 2 * learned and gauss > 0.1:
            parts.append(
                f"**Gaussian error {gauss:.2g} vs learned score {learned:.2g}:** {shape}, so the "
                "Gaussian approximation, which sees only the covariance, fails; the learned "
                f"score follows {ref}."
            )
        elif learned > 2 * gauss and learned > 0.1:
            parts.append(
                f"**Learned score error {learned:.2g} vs Gaussian {gauss:.2g}:** the score model "
                "is the weak link here (see its Stein error); more training or data would help. "
                f"Meanwhile {shape}."
            )
        else:
            both = "are both small" if max(gauss, learned) < 0.1 else "are alike"
            parts.append(
                f"**Gaussian error {gauss:.2g} and learned score {learned:.2g} {both}:** "
                f"{shape}"
                + (
                    ", so the Gaussian estimate C(t)C(0)⁻¹ is already (nearly) exact."
                    if not bimodal and abs(kurt) < 0.3
                    else "."
                )
            )
    elif gauss is not None:
        parts.append(f"**Gaussian error {gauss:.2g}** against {ref}: {shape}.")
    if exact is not None and learned is not None and np.isfinite(learned):
        parts.append(
            f"The exact score gives {exact:.2g}"
            + (
                ": the learned score is about as good."
                if learned <= 1.5 * exact + 0.02
                else f": the gap to {learned:.2g} is the cost of learning the score."
            )
        )
    if "analytic" in errors and "perturbation" in errors:
        parts.append(
            f"Direct perturbation differs from the analytic response by "
            f"{errors['perturbation']:.2g}."
        )
    return " ".join(parts)
