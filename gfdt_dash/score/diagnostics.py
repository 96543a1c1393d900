"""Score-quality diagnostics shown to the user.

Every diagnostic is computed on fields the model was not trained on (:func:`held_out_fields`):
given the simulation a model was trained on, only the snapshots its training held out; given
other data, all of them. ``diagnosed_on`` says which.

- ``held_out_loss``: the DSM loss of the EMA net on those fields (fixed noise draw);
- ``stein_error``: ``‖⟨x ŝᵀ⟩ + I‖_F/‖I‖_F``. For homogeneous fields ``⟨x ŝᵀ⟩`` is circulant with
  eigenvalues ``⟨x̂(k) conj(ŝ(k))⟩/N²``, which a true score makes −1 at every ``k`` (Stein's
  identity: integrate ``x ∇log p`` by parts);
- ``score_rel_error``: ``‖ŝ − s‖/‖s‖`` against an exact score (OU, Allen–Cahn);
- samples from the reverse VE-SDE (Euler–Maruyama) compared with the data: the 1-Wasserstein
  distance of the pixel histograms (in units of the data's std) and the RMS of log₁₀ of the ratio
  of the radially averaged power spectra.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gfdt_dash.devices import resolve_device
from gfdt_dash.progress import ProgressCallback, Reporter, StopCheck
from gfdt_dash.score.losses import VESchedule
from gfdt_dash.score.model import ScoreFn, ScoreModel, noised_score
from gfdt_dash.score.training import _fingerprint, as_snapshots, split_snapshots
from gfdt_dash.validation import is_integer

__all__ = [
    "diagnose",
    "held_out_fields",
    "histogram_distance",
    "radial_spectrum",
    "sample",
    "score_relative_error",
    "spectrum_distance",
    "stein_error",
]


def stein_error(fields: torch.Tensor, scores: torch.Tensor) -> float:
    """``‖⟨x sᵀ⟩ + I‖_F/‖I‖_F`` of homogeneous fields ``(B, n, n)`` and their scores."""
    from gfdt_dash.response import stein_error_from_r0 as stein_from_r0

    n = fields.shape[-1]
    x_hat = torch.fft.fft2(fields.double())
    s_hat = torch.fft.fft2(scores.double())
    cross = (x_hat * s_hat.conj()).mean(0) / n**2  # eigenvalues of ⟨x sᵀ⟩
    r0 = -torch.fft.ifft2(cross).real  # the lag-0 response −⟨x sᵀ⟩ as a field
    return stein_from_r0(r0)


def score_relative_error(learned: torch.Tensor, exact: torch.Tensor) -> float:
    """``‖ŝ − s‖₂/‖s‖₂`` over all fields and pixels."""
    return float((learned.double() - exact.double()).norm() / exact.double().norm())


def radial_spectrum(fields: torch.Tensor) -> np.ndarray:
    """Mean power ``|x̂(k)|²/N²`` of fields ``(B, n, n)`` in shells ``|k| ∈ [j − ½, j + ½)``,
    ``j = 0 … n/2``."""
    n = fields.shape[-1]
    power = (torch.fft.fft2(fields.double()).abs() ** 2).mean(0) / n**2
    k = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
    shell = torch.round(torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).long().flatten()
    keep = shell <= n // 2
    sums = torch.zeros(n // 2 + 1, dtype=torch.float64).index_add_(
        0, shell[keep], power.flatten().cpu()[keep]
    )
    counts = torch.zeros(n // 2 + 1, dtype=torch.float64).index_add_(
        0, shell[keep], torch.ones(int(keep.sum()), dtype=torch.float64)
    )
    return (sums / counts).numpy()


def spectrum_distance(samples: torch.Tensor, data: torch.Tensor) -> float:
    """RMS over shells of ``log₁₀(P_samples/P_data)`` of the radial spectra."""
    ratio = radial_spectrum(samples) / radial_spectrum(data)
    return float(np.sqrt(np.mean(np.log10(ratio) ** 2)))


def histogram_distance(samples: torch.Tensor, data: torch.Tensor) -> float:
    """1-Wasserstein distance of the pixel-value distributions, in units of the data's std."""
    a = np.sort(samples.double().flatten().cpu().numpy())
    b = np.sort(data.double().flatten().cpu().numpy())
    q = np.linspace(0.0, 1.0, 1001)[1:-1]
    w1 = float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))
    return w1 / float(b.std())


@torch.no_grad()
def sample(
    model: ScoreModel,
    n_samples: int,
    *,
    n_steps: int = 250,
    seed: int = 0,
    device: str | torch.device = "auto",
    batch_size: int = 1024,
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> torch.Tensor:
    """Draw fields ``(n_samples, n, n)`` in physical units from the reverse VE-SDE.

    Euler–Maruyama on ``dx = −g(t)² s(x, σ(t)) dt + g(t) dW̄`` from ``t = 1``
    (``x ~ N(0, σ_max² I)``) down to ``t = 0`` (``σ_min``) in ``n_steps`` equal steps, with the
    EMA network; the last step is a Tweedie denoising step ``x + σ_min² s``.
    """
    dev = resolve_device(device)
    net = model.ema_net
    net_dev = model.device
    sched = VESchedule(model.sigma_min, model.sigma_max)
    gen = torch.Generator(device=dev).manual_seed(seed)
    n, dtype = model.n, model.dtype
    dt = 1.0 / n_steps
    reporter = Reporter("sample", n_steps, callback, should_stop)
    was_training = net.training
    net.eval().to(dev)
    out = []
    try:
        for start in range(0, n_samples, batch_size):
            b = min(batch_size, n_samples - start)
            x = sched.sigma_max * torch.randn(b, n, n, generator=gen, device=dev, dtype=dtype)
            for i in range(n_steps):
                t = torch.full((b,), 1.0 - i * dt, device=dev, dtype=dtype)
                score = noised_score(net, x, sched.sigma(t))
                g2 = sched.g2(t)[:, None, None]
                x = x + g2 * score * dt
                if i < n_steps - 1:
                    z = torch.randn(x.shape, generator=gen, device=dev, dtype=dtype)
                    x = x + torch.sqrt(g2 * dt) * z
                if start == 0:
                    reporter.update(i + 1)
                else:
                    reporter.check()
            x = x + sched.sigma_min**2 * noised_score(net, x, sched.sigma_min)
            out.append(x * model.scale)
    finally:
        net.to(net_dev).train(was_training)
    return torch.cat(out)


def held_out_fields(model: ScoreModel, fields: Any) -> tuple[np.ndarray, str]:
    """The fields of ``fields`` that ``model`` was not trained on, ``(S, n, n)``, and a label.

    ``fields`` is anything :func:`~gfdt_dash.score.training.as_snapshots` accepts. If they are
    the model's training data (same fingerprint as ``metadata["data_fingerprint"]``), the part
    its training held out is returned: :func:`~gfdt_dash.score.training.split_snapshots` with
    the model's ``val_fraction`` (the last snapshot times of every member), the complement of
    what it was trained on; with no held-out part this is refused. Other data are returned
    whole.
    """
    arr, _ = as_snapshots(fields)
    n = arr.shape[-1]
    if _fingerprint(arr) != model.metadata.get("data_fingerprint"):
        count = arr.shape[0] * arr.shape[1]
        return arr.reshape(-1, n, n), f"{count} fields the model was not trained on"
    fraction = model.train_config.val_fraction
    held_out = split_snapshots(arr, fraction)[1]
    if held_out.shape[0] == 0:
        raise ValueError(
            "fields: these are the model's training data and its training held none out "
            "(val_fraction = 0); diagnose it on other data"
        )
    what = "snapshot times of every member" if arr.shape[1] >= 2 else "members"
    return held_out, (
        f"{held_out.shape[0]} held-out training snapshots (the last {fraction:.0%} of the {what}, "
        "not trained on)"
    )


def diagnose(
    model: ScoreModel,
    fields: Any,
    exact_score: ScoreFn | None = None,
    *,
    n_samples: int = 512,
    sample_steps: int = 250,
    max_fields: int = 4096,
    seed: int = 0,
    device: str | torch.device = "auto",
    callback: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict[str, Any]:
    """All diagnostics of ``model`` on stationary ``fields`` (physical units) it was not trained
    on.

    ``fields``: anything :func:`~gfdt_dash.score.training.as_snapshots` accepts (a simulate
    Dataset's ``snapshot`` is used); if they are the model's training data only the held-out
    part is used (:func:`held_out_fields`); at most ``max_fields`` of them, evenly spaced.
    ``exact_score`` (a callable on ``(B, n, n)`` tensors) adds ``score_rel_error`` and the exact
    score's own ``stein_error_exact`` (the sampling floor). ``n_samples=0`` skips sampling.

    Returns a JSON-able dict: ``held_out_loss``, ``stein_error``, [``score_rel_error``,
    ``stein_error_exact``], [``hist_distance``, ``spectrum_distance``, ``spectrum`` (shells,
    data, samples), ``histogram`` (bin edges, data and sample densities)], ``n_fields`` and
    ``diagnosed_on`` (which fields, in words).
    """
    from gfdt_dash.score.losses import dsm_loss

    for arg, value, lo, hi in (
        ("n_samples", n_samples, 0, 100_000),
        ("sample_steps", sample_steps, 1, 100_000),
        ("max_fields", max_fields, 1, 10**7),
    ):
        if not is_integer(value) or not lo <= value <= hi:
            raise ValueError(f"{arg}: must be an integer in [{lo}, {hi:,}], got {value!r:.60}")
    n = model.n
    flat, diagnosed_on = held_out_fields(model, fields)
    if flat.shape[-1] != n:
        raise ValueError(f"fields: grid {flat.shape[-1]} does not match the model's {n}")
    if flat.shape[0] > max_fields:
        flat = flat[np.linspace(0, flat.shape[0] - 1, max_fields).round().astype(int)]
    dev = resolve_device(device)
    x = torch.as_tensor(np.ascontiguousarray(flat), device=dev).contiguous()
    reporter = Reporter("diagnose", 3, callback, should_stop)
    score = model.score_fn(device=dev)(x)
    out: dict[str, Any] = {
        "diagnosed_on": diagnosed_on,
        "n_fields": int(x.shape[0]),
        "stein_error": stein_error(x, score),
    }

    gen = torch.Generator(device=dev).manual_seed(seed)
    sched = VESchedule(model.sigma_min, model.sigma_max)
    net = model.ema_net
    net_dev = model.device
    with torch.no_grad():
        net.to(dev)
        try:
            losses = [
                float(dsm_loss(net, chunk.to(model.dtype) / model.scale, sched, gen))
                * chunk.shape[0]
                for chunk in x.split(1024)
            ]
        finally:
            net.to(net_dev)
    out["held_out_loss"] = sum(losses) / x.shape[0]
    reporter.update(1)
    if exact_score is not None:
        exact = torch.as_tensor(exact_score(x.clone())).to(dev)
        out["score_rel_error"] = score_relative_error(score, exact)
        out["stein_error_exact"] = stein_error(x, exact)
    reporter.update(2)
    if n_samples > 0:
        samples = sample(
            model, n_samples, n_steps=sample_steps, seed=seed + 1, device=dev,
            should_stop=should_stop,
        )
        out["hist_distance"] = histogram_distance(samples, x)
        out["spectrum_distance"] = spectrum_distance(samples, x)
        out["spectrum"] = {
            "k": list(range(n // 2 + 1)),
            "data": radial_spectrum(x).tolist(),
            "samples": radial_spectrum(samples).tolist(),
        }
        lim = float(x.abs().max()) * 1.2
        edges = np.linspace(-lim, lim, 61)
        out["histogram"] = {
            "edges": edges.tolist(),
            "data": np.histogram(x.cpu().numpy(), edges, density=True)[0].tolist(),
            "samples": np.histogram(samples.cpu().numpy(), edges, density=True)[0].tolist(),
        }
    reporter.update(3)
    out = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in out.items()}
    return out
