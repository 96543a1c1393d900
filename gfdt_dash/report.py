"""Reproduction report: figures in the layout of the original study, error tables, timings.

``write_report(results, out_dir)`` writes, per system, ``<system>.png`` (a field snapshot and the
response at the kicked pixel and 1–3 cells downstream, every method with its ±2σ band),
``<system>_errors.csv``, ``<system>_timings.csv`` (wall and process CPU seconds per stage),
``<system>_config.json``, ``<system>_diagnostics.json``, ``<system>_model.json`` (the score
model's metadata without its loss curves), and
one ``report.md`` with the run protocol, the error tables, the reference's own noise, the score
network, its diagnostics (on fields it was not trained on, and which) and the stage times.
Figures use matplotlib's non-interactive Agg canvas, so nothing process-wide is touched.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gfdt_dash import __version__
from gfdt_dash.data import atomic_write_bytes
from gfdt_dash.pipeline import PipelineResult
from gfdt_dash.response.methods import ESTIMATORS, reference_method

__all__ = ["response_figure", "write_report"]


def response_figure(result: PipelineResult, n_down: int = 4, normalized: bool = True) -> bytes:
    """PNG bytes of one system's figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    resp = result.responses
    fig = Figure(figsize=(4 + 3.2 * n_down, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_down + 1, gridspec_kw={"width_ratios": [1.15] + [1] * n_down})
    snap = result.simulation.field.isel(member=0, time=-1).values
    im = axes[0].imshow(snap, origin="lower", cmap="RdBu_r", extent=(0, 2 * np.pi, 0, 2 * np.pi))
    axes[0].set_title(f"{result.config.title}: snapshot")
    axes[0].set_xlabel("x (flow →)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    lag = resp["lag"].values
    for i, ax in enumerate(axes[1:]):
        for name in resp["estimator"].values:
            spec = ESTIMATORS[str(name)]  # colour and label shared with the dashboard
            sel = resp.sel(estimator=spec.name, dy=0, dx=i)
            var = "response" if normalized or "response_raw" not in resp else "response_raw"
            y = sel[var].values
            if np.isnan(y).all():
                continue
            err = sel[f"{var}_stderr"].values if f"{var}_stderr" in sel else np.zeros_like(y)
            style = dict(ls="none", marker="o", ms=3) if spec.markers else dict(lw=1.6)
            ax.plot(lag, y, color=spec.color, label=spec.label, **style)
            ax.fill_between(lag, y - 2 * err, y + 2 * err, color=spec.color, alpha=0.2, lw=0)
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_title(f"kick → {i} cell{'s' if i != 1 else ''} downstream")
        ax.set_xlabel("lag (time units)")
    axes[1].set_ylabel("response R(t)" + (" normalised" if normalized else ""))
    axes[-1].legend(fontsize=7, loc="upper right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _markdown_table(df) -> str:
    cols = list(df.columns)
    lines = ["| estimator | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for idx, row in df.iterrows():
        cells = [("—" if np.isnan(v) else f"{v:.3g}") for v in row.to_numpy(dtype=float)]
        lines.append(f"| {idx} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _reference_noise(result: PipelineResult, n_down: int = 4) -> float | None:
    """``‖stderr‖/‖R‖`` of the direct perturbation over the error table's window, or None."""
    resp = result.responses
    if "perturbation" not in [str(m) for m in resp["estimator"].values]:
        return None
    sel = resp.sel(estimator="perturbation", dy=0).sel(
        dx=slice(0, n_down - 1), lag=slice(None, result.config.max_lag)
    )
    norm = float(np.sqrt((sel["response"] ** 2).sum()))
    return float(np.sqrt((sel["response_stderr"] ** 2).sum())) / norm if norm > 0 else None


def _protocol(result: PipelineResult) -> str:
    """The run protocol in words: ensemble, durations, perturbation experiments."""
    c = result.config
    experiments = math.ceil(c.n_experiments / c.members) * c.members
    text = (
        f"N = {c.n}, dt = {c.dt:g}, {c.members} members ({c.frame_members} recorded), spin-up "
        f"{c.spinup:g}, record {c.record:g} time units (frames every {c.frame_every:g}, training "
        f"snapshots every {c.snapshot_every:g}); direct perturbation: {experiments} experiments "
        f"(δ = {c.delta:g}, restarts every {c.restart_every:g})"
    )
    noise = _reference_noise(result)
    if noise is not None:
        text += f", its standard error ‖σ_R‖/‖R‖ = {noise:.3g} over the error window"
    return text + "."


def _model_summary(result: PipelineResult) -> str | None:
    model = result.model
    if model is None:
        return None
    net, train = model.metadata.get("net_config", {}), model.metadata.get("train_config", {})
    params = sum(p.numel() for p in model.net.parameters())
    return (
        f"Score network: widths {'/'.join(map(str, net.get('widths', [])))}, "
        f"{net.get('n_res_blocks')} residual blocks, Gaussian skip "
        f"{'on' if net.get('gaussian_skip') else 'off'}, {params:,} parameters; "
        f"{model.step} steps of {train.get('batch_size')} snapshots "
        f"(lr {train.get('lr'):g}, {train.get('lr_decay')}), {model.metadata.get('n_train')} "
        f"training and {model.metadata.get('n_val')} held-out snapshots."
    )


def write_report(
    results: Sequence[PipelineResult], out_dir: str | os.PathLike, title: str = "gfdt-dash report"
) -> Path:
    """Write figures, tables and ``report.md`` for ``results`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}", "", f"gfdt-dash {__version__}.", ""]
    for r in results:
        system = r.config.system
        atomic_write_bytes(out / f"{system}.png", response_figure(r))
        atomic_write_bytes(out / f"{system}_errors.csv", r.errors.to_csv().encode())
        stages = list(r.timings)
        timing_rows = ["stage,wall_s,cpu_s"] + [
            f"{k},{r.timings[k]:.1f},{r.cpu_times.get(k, float('nan')):.1f}" for k in stages
        ]
        atomic_write_bytes(out / f"{system}_timings.csv", ("\n".join(timing_rows) + "\n").encode())
        ref = reference_method(r.errors.index)
        parts += [
            f"## {r.config.title}",
            "",
            f"![{system}]({system}.png)",
            "",
            "Protocol: " + _protocol(r),
            "",
            f"Relative L2 error against **{ref}** (lags 0…{r.config.max_lag:g}, kicked pixel "
            "and 3 cells downstream); `error` is the normalised response for score methods, "
            "`error_raw` the raw one:",
            "",
            _markdown_table(r.errors),
            "",
        ]
        summary = _model_summary(r)
        if summary:
            parts += [summary, ""]
        diag = {k: v for k, v in r.diagnostics.items() if isinstance(v, int | float)}
        if diag:
            where = r.diagnostics.get("diagnosed_on", "fields not stated")
            parts += [
                f"Score diagnostics on {where}: "
                + ", ".join(f"{k} = {v:.3g}" for k, v in diag.items()),
                "",
            ]
        if r.cpu_times:
            times = ", ".join(
                f"{k} {r.timings[k]:.1f} s ({r.cpu_times.get(k, float('nan')):.1f} s CPU)"
                for k in stages
            )
            parts += [f"Stage times on {r.device}, wall (process CPU): {times}. Seed {r.seed}.", ""]
        else:
            times = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
            parts += [f"Wall time on {r.device}: {times}. Seed {r.seed}.", ""]
        atomic_write_bytes(out / f"{system}_config.json", r.config.to_json().encode())
        atomic_write_bytes(
            out / f"{system}_diagnostics.json", json.dumps(r.diagnostics, default=float).encode()
        )
        if r.model is not None:  # the score model's settings and provenance, without the curves
            meta = {k: v for k, v in r.model.metadata.items() if k != "history"}
            atomic_write_bytes(
                out / f"{system}_model.json", json.dumps(meta, indent=1, default=float).encode()
            )
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path
