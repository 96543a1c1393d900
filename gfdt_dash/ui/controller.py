"""The state and the stages of a system tab: what :class:`gfdt_dash.ui.tab.SystemTab` does.

State (the simulation, the score model, the responses) lives on the tab instance, i.e. per
browser session. Actions are ``param.Event``s; each starts one job on the tab's
:class:`~gfdt_dash.ui.jobs.JobRunner`. Job functions receive an immutable config snapshot, so the
widgets can move while a job runs; their computations are the core's pipeline stages
(:mod:`gfdt_dash.stages`, :func:`gfdt_dash.systems.simulate`, :func:`gfdt_dash.score.train_score`)
run in a worker process (:mod:`gfdt_dash.ui.worker`). Results come back to the event loop, are
kept here and handed to the layout (:mod:`gfdt_dash.ui.layout`) through its ``_draw_*`` and
``_update_*`` methods.

The controller keeps results honest: the (config, seed) and model each shown result was made with
are remembered, and any change marks the results *out of date* (``stale_reason``) until the next
run; *Run all* uses a score model only if it was trained for the current physical parameters
(:func:`gfdt_dash.stages.choose_model`) and trains one otherwise; a verdict
(:func:`gfdt_dash.story.verdict`) says in words what the error table and the field's histogram
show; jobs estimated (``estimate_s``) to take over ``ASK_ABOVE_S`` start only when asked for twice.
"""

from __future__ import annotations

import io
import logging
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr

from gfdt_dash import stages
from gfdt_dash.data import write_netcdf
from gfdt_dash.devices import available_devices
from gfdt_dash.progress import Progress
from gfdt_dash.story import shape_statistics, verdict
from gfdt_dash.systems import SYSTEMS, SystemConfig, get_config, output_bytes, simulate
from gfdt_dash.ui import store
from gfdt_dash.ui.jobs import RESULTS, JobContext, JobRunner, simulation_key
from gfdt_dash.ui.limits import Limits, member_steps
from gfdt_dash.ui.pacing import schedule_on
from gfdt_dash.ui.params import ConfigMirror, format_value, label_of, mirror_class

__all__ = ["ASK_ABOVE_S", "TabController", "model_differences"]

log = logging.getLogger(__name__)

PRESETS = ("classroom", "paper", "custom")
SHIPPED = "shipped model"
_HIST_SAMPLES = 200_000  # pixel values drawn for the histogram (keeps the plot cheap)
# Score diagnostics after training/loading: enough reverse-diffusion samples for the histogram and
# spectrum distances to be indicative, few enough to take seconds on a classroom grid.
DIAG_SAMPLES, DIAG_STEPS, DIAG_FIELDS = 128, 100, 1024
ASK_ABOVE_S = 60.0  # jobs estimated to take longer are started only when asked twice
_BUTTON_LABELS = {
    "run all": "Run all",
    "simulation": "Simulate",
    "training": "Train score model",
    "responses": "Compute responses",
    "loading model": "Load model",
}
_STORED = "stored with the checkpoint"
_SAVE_LOCK = threading.Lock()  # check-then-save of model files, for every session of the server

# Scalar diagnostics shown in the table, in this order (``score.diagnose``'s keys).
_DIAG_KEYS = (
    "stein_error",
    "stein_error_exact",
    "score_rel_error",
    "hist_distance",
    "spectrum_distance",
    "held_out_loss",
    "val_loss",
    "n_fields",
)


def model_differences(model: Any, config: SystemConfig) -> str:
    """:func:`gfdt_dash.stages.model_fits` in the dashboard's words: each differing parameter by
    its symbol, values as typed (``"λ = 1000 (now 500)"``); "" if the model fits."""
    return stages.model_fits(
        model, config, label=lambda name: label_of(name, {}, short=True), fmt=format_value
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class TabController(param.Parameterized):
    """Simulate → score model → responses for one system: parameters, actions, jobs, state."""

    preset = param.Selector(default="classroom", objects=list(PRESETS), doc="parameter preset")
    device = param.Selector(default="cpu", objects=["cpu", "cuda", "mps"], doc="compute device")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="random seed of the simulation")
    model_source = param.Selector(default=None, objects=[], allow_None=True, label="Model to load")
    model_name = param.String(default="", doc="name to save the model under (letters, digits)")
    train_steps = param.Integer(
        default=2000, bounds=(10, 1_000_000), doc="optimiser steps of score-model training"
    )
    normalized = param.Boolean(default=True, doc="show R(t)R(0)⁻¹ instead of raw R(t)")
    lag_index = param.Integer(default=0, bounds=(0, None), label="lag (frame)")

    simulate = param.Event(label="Simulate")
    train = param.Event(label="Train score model")
    load_model = param.Event(label="Load model")
    compute = param.Event(label="Compute responses")
    run_all = param.Event(label="Run all")
    cancel = param.Event(label="Cancel")
    save_model = param.Event(label="Save model")

    status = param.String(default="Ready.", doc="one-line status")

    def __init__(
        self,
        system: str,
        *,
        sync: bool = False,
        limits: Limits | None = None,
        session_runners: list[JobRunner] | None = None,
        **params: Any,
    ) -> None:
        if system not in SYSTEMS:
            raise ValueError(f"system: unknown {system!r}; allowed: {', '.join(SYSTEMS)}")
        super().__init__(**params)
        self.system = system
        self.config_cls = SYSTEMS[system]
        self.mirror: ConfigMirror = mirror_class(self.config_cls)()
        self._applying_preset = False
        self.mirror.set_config(get_config(system, self.preset))
        self.mirror.param.watch(self._on_mirror_edit, list(self.config_cls.field_specs()))

        devices = available_devices()
        self.param.device.objects = [d for d in ("cpu", "cuda", "mps") if d in devices]
        self._devices_disabled = [d for d in ("cpu", "cuda", "mps") if d not in devices]

        self._doc = pn.state.curdoc
        self._notifications = pn.state.notifications
        self._schedule = schedule_on(None if sync else self._doc)
        self.runner = JobRunner(self._schedule, sync=sync)
        self.limits = limits or Limits.from_env()
        # the runners of every tab of this browser session (shared list), for the job limit
        self._session_runners = session_runners if session_runners is not None else []
        self._session_runners.append(self.runner)

        # session state
        self.sim: xr.Dataset | None = None
        self.sim_key: tuple | None = None
        self.model: Any = None
        self.model_key: str | None = None
        self.model_info: dict[str, Any] = {}
        self.responses: xr.Dataset | None = None
        self.error_table = pd.DataFrame()
        self.diagnostics: dict[str, Any] = {}
        # (config, seed) the shown simulation and responses were made with (stale marking)
        self.shown: dict[str, tuple[SystemConfig, int] | None] = {"sim": None, "responses": None}
        self.model_config: SystemConfig | None = None  # what the model in use was trained on
        self.sim_stats: dict[str, float] = {}
        self.verdict = ""
        self._responses_model: str | None = None
        self.input_errors: dict[str, str] = {}  # parameter → what is wrong with what was typed
        self._asked: tuple | None = None  # the long job the user was asked to confirm
        self._sim_final = False  # the running job's simulation is shown: no more live frames
        self._responses_waiting = False  # responses arrived, shown when their job ends

        self.refresh_models()
        self.runner.param.watch(self._on_runner, ["running"])

    # -- parameters and presets --------------------------------------------------------------
    @param.depends("preset", watch=True)
    def _apply_preset(self) -> None:
        if self.preset == "custom":
            return
        self._applying_preset = True
        try:
            self.mirror.set_config(get_config(self.system, self.preset))
        finally:
            self._applying_preset = False

    def _on_mirror_edit(self, *_events: Any) -> None:
        if not self._applying_preset and self.preset != "custom":
            self.preset = "custom"

    def config(self) -> SystemConfig:
        """The validated config snapshot for a job (``ValueError`` names the bad field)."""
        return self.mirror.to_config()

    def refusal(self) -> str:
        """Why a job cannot start with the current inputs, in plain words ("" if it can)."""
        if self.input_errors:
            return "Fix the inputs marked in red first: " + "; ".join(self.input_errors.values())
        try:
            config = self.config()
        except ValueError as exc:
            return f"These parameters do not fit together: {exc}"
        try:
            self.limits.check(config, train_steps=self.train_steps)
        except ValueError as exc:
            steps = member_steps(config)
            if steps > self.limits.max_member_steps:
                return (
                    f"Too big for this server: these settings need {steps:,} time steps of all "
                    f"ensemble members together, {steps / self.limits.max_member_steps:.1f} "
                    f"times what this server allows per job "
                    f"({self.limits.max_member_steps:,}). Use fewer members or a shorter record, "
                    "or the classroom preset."
                )
            return f"Too big for this server: {exc}."
        return ""

    def estimate_s(self, job: str, config: SystemConfig) -> float | None:
        """Rough seconds ``job`` takes (:func:`gfdt_dash.stages.estimate_s`) with this tab's
        training steps and model; a cached simulation counts as free."""
        cached = RESULTS.get(simulation_key(config, self.seed, self.device)) is not None
        return stages.estimate_s(
            job, config, train_steps=self.train_steps, model=self.model, simulated=cached
        )

    def job_summary(self) -> str:
        """One line on the size of a job with the current parameters, or why it cannot run."""
        reason = self.refusal()
        if reason:
            return f"⚠ {reason}"
        config = self.config()
        estimate = self.estimate_s("run all", config)
        about = f" · Run all ≈ {_duration(estimate)} of computing" if estimate is not None else ""
        return (
            f"Job size: {config.n}×{config.n} grid · {config.members} members · "
            f"{config.n_frames:,} frames · {member_steps(config):,} member-steps · "
            f"{output_bytes(config) / 2**20:,.0f} MiB of data{about}"
        )

    def refresh_models(self) -> None:
        """List the shipped model (if any) and the saved ones for this system."""
        options: dict[str, Path] = {}
        shipped = stages.shipped_path(self.system)
        if shipped is not None:
            options[SHIPPED] = shipped
        for path in store.saved_models(self.system):
            options[f"saved: {path.stem}"] = path
        self._model_paths = options
        self.param.model_source.objects = list(options)
        if self.model_source not in options:
            self.model_source = next(iter(options), None)

    # -- actions -----------------------------------------------------------------------------
    @param.depends("simulate", watch=True)
    def _do_simulate(self) -> None:
        self._start("simulation", self._simulate_stage)

    @param.depends("train", watch=True)
    def _do_train(self) -> None:
        self._start("training", self._train_stage)

    @param.depends("load_model", watch=True)
    def _do_load(self) -> None:
        self._start("loading model", self._load_stage)

    @param.depends("compute", watch=True)
    def _do_compute(self) -> None:
        self._start("responses", self._compute_stage)

    @param.depends("run_all", watch=True)
    def _do_run_all(self) -> None:
        def run_all(ctx: JobContext) -> None:
            self._simulate_stage(ctx)
            # the model in use if it fits these parameters, else the shipped one if it does,
            # else a new one: never a model made for other parameters
            plan = stages.choose_model(
                ctx.config,
                ctx.model,
                shipped=self._model_paths.get(SHIPPED),
                device=ctx.device,
                differences=model_differences,
            )
            if plan.model is None:
                log.info("run all: training a model (%s)", plan.reason)
                note = f"Training a score model for these parameters: {plan.reason}."
                ctx.ui(lambda: setattr(self, "status", note))
                self._train_stage(ctx)
            elif plan.path is not None:
                self._use_model(ctx, plan.model, plan.path)
            self._compute_stage(ctx)

        self._start("run all", run_all)

    @param.depends("cancel", watch=True)
    def _do_cancel(self) -> None:
        if self.runner.running:
            self.runner.cancel()
            self._set_status("Cancelling…")

    @param.depends("save_model", watch=True)
    def _do_save(self) -> None:
        from gfdt_dash import score

        if self.model is None:
            self._notify("error", "Save model: there is no model yet; train or load one first.")
            return
        try:
            path = store.model_path(self.system, self.model_name or f"{self.system}-model")
            with _SAVE_LOCK:  # every session of the server saves through this process
                if path.exists():
                    raise ValueError(
                        f"save as: a model named {path.stem!r} already exists in the store "
                        "(saved by this or another session); choose another name"
                    )
                score.save_checkpoint(self.model, path)
        except (OSError, ValueError) as exc:
            self._notify("error", f"Save model failed: {exc}")
            return
        self.refresh_models()
        self.model_source = f"saved: {path.stem}"
        self._notify("success", f"Saved the model as {path.stem!r}.")

    # -- job plumbing ------------------------------------------------------------------------
    def _start(self, name: str, body: Callable[[JobContext], None]) -> None:
        if self.runner.running:
            self._notify("warning", f"{self.runner.job} is still running; cancel it first.")
            return
        busy = [r for r in self._session_runners if r.running]
        if len(busy) >= self.limits.max_session_jobs:
            self._notify(
                "warning",
                f"Concurrent jobs: this session already runs {len(busy)} job(s) "
                f"({', '.join(r.job for r in busy)}); allowed: {self.limits.max_session_jobs} "
                "at a time on this shared server. Wait for it or cancel it.",
            )
            return
        reason = self.refusal()
        if reason:
            self._notify("warning", reason)
            return
        config = self.config()
        estimate = self.estimate_s(name, config)
        ask = (name, config.to_json(), self.seed, self.device, self.train_steps)
        if estimate is not None and estimate > ASK_ABOVE_S and self._asked != ask:
            self._asked = ask  # pressing the same button again with the same settings starts it
            self._notify(
                "warning",
                f"{name.capitalize()} will take about {_duration(estimate)} on this server "
                "(estimated from the shipped model's timings; longer while other jobs run). "
                f"Press {_BUTTON_LABELS[name]} again to start it, or change the settings.",
            )
            return
        self._asked = None
        model_path = self._model_paths.get(self.model_source) if self.model_source else None
        ctx = JobContext(self.runner, config, self.seed, self.device, model_path)
        ctx.preset, ctx.train_steps = self.preset, self.train_steps
        ctx.sim = (
            self.sim if self.sim_key == simulation_key(config, self.seed, self.device) else None
        )
        ctx.model, ctx.model_key = self.model, self.model_key

        def fn(callback: Callable[[Progress], None], should_stop: Callable[[], bool]) -> None:
            ctx.callback, ctx.should_stop = callback, should_stop
            body(ctx)

        self._sim_final = False
        self._set_status(f"{name.capitalize()}: queued…")
        self.runner.submit(
            name,
            fn,
            on_progress=self._on_progress,
            on_done=lambda _: self._set_status(f"{name.capitalize()} finished.", "success"),
            on_error=lambda exc: self._notify("error", f"{name.capitalize()} failed: {exc}"),
            on_cancel=lambda: self._notify("warning", f"{name.capitalize()} cancelled."),
        )

    def _on_progress(self, p: Progress) -> None:
        snap = p.info.get("snapshot")
        if snap is not None and not self._sim_final:  # not after the finished field is shown
            self._draw_snapshot(snap, f"live field, member 0 ({p.stage})")
        if "train_loss" in p.info:
            row = {
                "step": float(p.info.get("step", p.done)),
                "train_loss": float(p.info["train_loss"]),
                "val_loss": float(p.info.get("val_loss", np.nan) or np.nan),
            }
            self._draw_losses(pd.DataFrame([row]))
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s else ""
        self.status = f"{p.stage}: {100 * p.fraction:.0f}%{eta}"

    def _on_runner(self, event: param.parameterized.Event) -> None:
        self._update_buttons()
        if not event.new and self._responses_waiting:
            self._present_responses()

    def _on_input_error(self, name: str, message: str | None) -> None:
        if message:
            self.input_errors[name] = message
        else:
            self.input_errors.pop(name, None)
        self._update_summary()

    def _set_status(self, text: str, level: str | None = None) -> None:
        self.status = text
        if level is not None and self._notifications is not None:
            getattr(self._notifications, level)(text, duration=4000)

    def _notify(self, level: str, text: str) -> None:
        self.status = text
        if self._notifications is not None:
            getattr(self._notifications, level)(text, duration=0 if level == "error" else 4000)

    # -- stages (run in a worker; UI updates go through ctx.ui) -------------------------------
    def _simulate_stage(self, ctx: JobContext) -> None:
        key = simulation_key(ctx.config, ctx.seed, ctx.device)
        ds = RESULTS.get(key)
        if ds is None:
            ds = ctx.call(simulate, ctx.config, seed=ctx.seed, device=ctx.device)
            RESULTS.put(key, ds)
        ctx.sim = ds
        ctx.ui(lambda: self._show_simulation(ds, key, (ctx.config, ctx.seed)))

    def _train_stage(self, ctx: JobContext) -> None:
        from gfdt_dash import score

        sim = ctx.require_simulation()
        ctx.ui(self._clear_losses)
        net_config, train_config = stages.score_net_for(
            ctx.preset, ctx.train_steps, device=ctx.device
        )
        model = ctx.call(
            score.train_score,
            sim,
            system_config=ctx.config,
            net_config=net_config,
            train_config=train_config,
            seed=ctx.seed,
            device=ctx.device,
        )
        key = f"trained-{uuid.uuid4().hex}"
        ctx.model, ctx.model_key = model, key
        ctx.ui(lambda: self._show_model(model, key, "trained in this session"))
        self._diagnose_stage(ctx)

    def _load_stage(self, ctx: JobContext) -> None:
        if ctx.model_path is None:
            raise ValueError("no model selected; train one or pick a saved/shipped model")
        path = Path(ctx.model_path)
        self._use_model(ctx, stages.read_model(path, ctx.config, ctx.device), path)

    def _use_model(self, ctx: JobContext, model: Any, path: Path) -> None:
        stat = path.stat()
        key = f"file:{path}:{stat.st_mtime_ns}:{stat.st_size}"
        ctx.model, ctx.model_key = model, key
        origin = "shipped model" if path == self._model_paths.get(SHIPPED) else path.stem
        ctx.ui(lambda: self._show_model(model, key, f"loaded: {origin}"))
        self._diagnose_stage(ctx)

    def _diagnose_stage(self, ctx: JobContext) -> None:
        """Score diagnostics of the job's model on this session's simulation (if there is one):
        Stein error, relative error against the exact score (OU, Allen–Cahn), and histogram and
        spectrum distances of reverse-diffusion samples. Cached per (model, simulation); a
        checkpoint's own diagnostics are reused for a simulation of exactly the config it was
        trained on (:func:`gfdt_dash.stages.stored_diagnostics`)."""
        try:
            sim = ctx.require_simulation()
        except ValueError:
            return  # loaded without a simulation: the checkpoint's own diagnostics stay shown
        model, model_key = ctx.current_model()
        stored = stages.stored_diagnostics(model, ctx.config)
        if stored is not None:
            source = f"{_STORED}: its own training run of these parameters (not recomputed)"
            ctx.ui(lambda: self._show_diagnostics(stored, model_key, source))
            return
        sim_key = simulation_key(ctx.config, ctx.seed, ctx.device)
        key = ("diagnose", model_key, sim_key, DIAG_SAMPLES, DIAG_STEPS)
        diag = RESULTS.get(key)
        if diag is None:
            diag = ctx.call(
                stages.diagnose_model,
                model,
                sim,
                ctx.config,
                n_samples=DIAG_SAMPLES,
                sample_steps=DIAG_STEPS,
                max_fields=DIAG_FIELDS,
                seed=ctx.seed,
                device=ctx.device,
            )
            RESULTS.put(key, diag)
        ctx.ui(lambda: self._show_diagnostics(diag, model_key))

    def _compute_stage(self, ctx: JobContext) -> None:
        sim = ctx.require_simulation()
        model, model_key = ctx.current_model()
        key = ("responses", ctx.config.to_json(), ctx.seed, ctx.device, model_key)
        cached = RESULTS.get(key)
        if cached is None:
            combined, errors = ctx.call(
                stages.responses_and_errors,
                ctx.config,
                sim,
                model,
                seed=ctx.seed,
                device=ctx.device,
            )
            cached = (combined, errors.reset_index())
            RESULTS.put(key, cached)
        combined, table = cached
        made = (ctx.config, ctx.seed, model_key, model_differences(model, ctx.config))
        ctx.ui(lambda: self._show_responses(combined, table, made))

    # -- results into the views (event loop) -------------------------------------------------
    def _show_simulation(
        self, ds: xr.Dataset, key: tuple, made: tuple[SystemConfig, int] | None = None
    ) -> None:
        if key != self.sim_key:
            self.responses = None
            self.error_table = pd.DataFrame()
            self.shown["responses"] = None
            self.verdict = ""
            self._draw_responses(None)
            self._update_table()
        self.sim, self.sim_key = ds, key
        self.shown["sim"] = made
        self._sim_final = True
        self._prepare_responses()
        field = ds["field"]
        self._draw_snapshot(field.isel(member=0, time=-1).values, "last frame, member 0")
        values = field.values.reshape(-1)
        # an even subsample (a random one would cost the event loop a permutation of them all)
        values = values[:: -(-values.size // _HIST_SAMPLES)]
        self.sim_stats = shape_statistics(values)
        self._draw_histogram(values)
        self.status = (
            f"Simulation ready: {ds.sizes['member']} members × {ds.sizes['time']} frames "
            f"of {ds.sizes['y']}×{ds.sizes['x']}."
        )
        self._update_downloads()
        self._update_stale()

    def _show_model(self, model: Any, key: str, origin: str) -> None:
        self.model, self.model_key = model, key
        meta = dict(model.metadata)
        try:
            self.model_config = model.system_config
        except (ValueError, TypeError):  # a checkpoint of user data without a system config
            self.model_config = None
        self.model_info = {
            "in use": origin,
            **{k: meta[k] for k in ("system", "n", "step", "sigma_min", "sigma_max") if k in meta},
        }
        saved = meta.get("diagnostics") or {}
        self.diagnostics = {k: saved[k] for k in _DIAG_KEYS if k in saved}
        if self.diagnostics:
            self.diagnostics = {"source": _STORED, **self.diagnostics}
        history = meta.get("history") or {}
        if history.get("step"):
            # Training and validation losses are logged at different steps: one row per step.
            train = pd.DataFrame(
                {"step": history["step"], "train_loss": history.get("train_loss", [])}
            )
            val = pd.DataFrame(
                {"step": history.get("val_step", []), "val_loss": history.get("val_loss", [])}
            )
            frame = train.merge(val, on="step", how="outer").sort_values("step").astype(float)
            self._clear_losses()
            self._draw_losses(frame)
        self.status = f"Score model ready ({origin})."
        self._update_stale()
        self._update_model_pane()

    def _show_diagnostics(
        self, diag: dict[str, Any], model_key: str | None, source: str | None = None
    ) -> None:
        if model_key != self.model_key:
            return  # another model was loaded meanwhile
        where = diag.get("diagnosed_on", "this session's simulation")
        own = f"this session's simulation: {where}; {DIAG_SAMPLES} samples × {DIAG_STEPS} steps"
        self.diagnostics = {
            "source": source or own,
            **{k: diag[k] for k in _DIAG_KEYS if k in diag},
        }
        self._update_model_pane()

    def _show_responses(
        self, combined: xr.Dataset, table: pd.DataFrame, made: tuple | None = None
    ) -> None:
        self.responses = combined
        self.error_table = table
        mismatch = ""
        if made is not None:
            config, seed, model_key, mismatch = made
            self.shown["responses"] = (config, seed)
            self._responses_model = model_key
        self.verdict = verdict(self.system, table, self.sim_stats, mismatch)
        self.param.lag_index.bounds = (0, combined.sizes["lag"] - 1)
        self.lag_index = min(self.lag_index, combined.sizes["lag"] - 1)
        self.status = "Responses ready: " + ", ".join(map(str, combined["estimator"].values)) + "."
        if self.runner.running:
            # Responses are a job's last stage: shown when it ends, a moment later, after its
            # buttons are back on (the browser lays the whole page out again for each button
            # that changes, which costs less before the new figures are in it).
            self._responses_waiting = True
        else:
            self._present_responses()

    def _present_responses(self) -> None:
        """The responses' figures, error table, verdict and downloads, in one document patch."""
        self._responses_waiting = False
        with self._batch():
            self._draw_responses(self.responses)
            self._update_table()
            self._update_downloads()
            self._update_stale()

    # -- downloads ---------------------------------------------------------------------------
    def netcdf_bytes(self, which: str) -> io.BytesIO:
        """The simulation or the responses as netCDF bytes (via an atomic temp-file write)."""
        ds = self.sim if which == "simulation" else self.responses
        if ds is None:
            raise ValueError(f"download: no {which} yet")
        with tempfile.TemporaryDirectory(prefix="gfdt-dash-") as tmp:
            path = write_netcdf(ds, Path(tmp) / f"{which}.nc")
            return io.BytesIO(path.read_bytes())

    def stale_reason(self) -> str:
        """Why the shown results no longer match the settings ("" while they do): the changed
        parameters and seed, or another score model in use."""
        shown = self.shown["responses"] or self.shown["sim"]
        if shown is None:
            return ""
        old, old_seed = shown
        try:
            config = self.config()
        except ValueError:
            return "the parameters are being edited (some are invalid)"
        specs = self.config_cls.field_specs()
        changes = [
            f"{label_of(name, specs[name], short=True)} {format_value(getattr(old, name))} → "
            f"{format_value(getattr(config, name))}"
            for name in specs
            if getattr(old, name) != getattr(config, name)
        ]
        if old_seed != self.seed:
            changes.append(f"seed {old_seed} → {self.seed}")
        if self.shown["responses"] is not None and self._responses_model != self.model_key:
            changes.append("another score model is in use")
        return ", ".join(changes)
