"""``SystemTab``: the one generic tab reused for the three systems.

State (the simulation, the score model, the responses) lives on the tab instance, i.e. per
browser session. Actions are ``param.Event``s; each starts one job on the tab's
:class:`~gfdt_dash.ui.jobs.JobRunner`. Job functions receive an immutable config snapshot, so the
widgets can move while a job runs. Figures are ``DynamicMap``s over streams (``views.py``) that
results are sent to. The figures are rendered only when their first data arrives (a one-line
placeholder until then): rendering empty HoloViews figures server-side made up most of the time a
new session's page took to appear.

The tab keeps results honest: the (config, seed) and model each shown result was made with are
remembered, and any change marks the results *out of date* (``stale_reason``) until the next run;
*Run all* uses a score model only if it was trained for the current physical parameters
(``model_differences``, from the checkpoint's metadata) and trains one otherwise; a verdict
(``verdict``) says in words what the error table and the field's histogram show; jobs estimated
(``estimate_s``) to take over ``ASK_ABOVE_S`` start only when asked for twice.
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

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr

from gfdt_dash.data import write_netcdf
from gfdt_dash.devices import available_devices
from gfdt_dash.progress import Progress
from gfdt_dash.systems import SYSTEMS, SystemConfig, get_config, output_bytes, simulate
from gfdt_dash.ui import store, views, worker
from gfdt_dash.ui.jobs import RESULTS, JobRunner
from gfdt_dash.ui.limits import Limits, member_steps
from gfdt_dash.ui.pacing import schedule_on
from gfdt_dash.ui.params import (
    ConfigMirror,
    NumberField,
    format_value,
    label_of,
    mirror_class,
    mirror_widgets,
)

__all__ = ["SystemTab", "model_differences", "reference_costs", "verdict"]

log = logging.getLogger(__name__)

PRESETS = ("classroom", "paper", "custom")
SHIPPED = "shipped model"
_HIST_SAMPLES = 200_000  # pixel values drawn for the histogram (keeps the plot cheap)
# Score diagnostics after training/loading: enough reverse-diffusion samples for the histogram and
# spectrum distances to be indicative, few enough to take seconds on a classroom grid.
DIAG_SAMPLES, DIAG_STEPS, DIAG_FIELDS = 128, 100, 1024


class SystemTab(pn.viewable.Viewer):
    """Simulate → score model → responses for one system, with live feedback."""

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
        self.methods = views.system_methods(system)
        # (config, seed) the shown simulation and responses were made with (stale marking)
        self.shown: dict[str, tuple[SystemConfig, int] | None] = {"sim": None, "responses": None}
        self.model_config: SystemConfig | None = None  # what the model in use was trained on
        self.sim_stats: dict[str, float] = {}
        self.verdict = ""
        self._responses_model: str | None = None
        self.input_errors: dict[str, str] = {}  # parameter → what is wrong with what was typed
        self._asked: tuple | None = None  # the long job the user was asked to confirm
        self._sim_final = False  # the running job's simulation is shown: no more live frames

        # streams (figures are created in __panel__, once)
        self._snapshot = hv.streams.Pipe(data={})
        self._hist = hv.streams.Pipe(data={})
        self._losses = hv.streams.Buffer(views.empty_loss_frame(), length=50_000, index=False)
        self._responses = hv.streams.Pipe(data={})
        self._layout: pn.viewable.Viewable | None = None
        self._figures: dict[str, views.LazyFigure] = {}  # filled by _build_layout

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
        """Rough seconds ``job`` takes on one otherwise idle core, from the shipped model's
        recorded timings (simulation member-steps per second, seconds per training step);
        ``None`` without a shipped model. A cached simulation counts as free."""
        ref = reference_costs(self.system)
        if ref is None:
            return None
        rate, per_train_step, shipped = ref
        ensemble = config.members * round((config.spinup + config.record) / config.dt)
        paired = member_steps(config) - ensemble
        cached = RESULTS.get(_sim_key(config, self.seed, self.device)) is not None
        simulate = 0.0 if cached else ensemble / rate
        train = per_train_step * self.train_steps
        responses = paired / rate
        if job == "simulation":
            return simulate
        if job == "training":
            return train
        if job == "responses":
            return responses
        if job == "run all":
            fits = self.model is not None and not model_differences(self.model, config)
            fits = fits or (shipped is not None and not model_differences(shipped, config))
            return simulate + (0.0 if fits else train) + responses
        return None

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
        from gfdt_dash import score

        options: dict[str, Path] = {}
        try:
            shipped = score.shipped_model_path(self.system)
        except (FileNotFoundError, ValueError):
            shipped = None
        if shipped is not None and Path(shipped).is_file():
            options[SHIPPED] = Path(shipped)
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
        def run_all(ctx: _Job) -> None:
            self._simulate_stage(ctx)
            if ctx.model is None or model_differences(ctx.model, ctx.config):
                # The model in use does not fit these parameters: the shipped one if it was
                # trained for them, else a new one; never a model made for other parameters.
                shipped = self._model_paths.get(SHIPPED)
                try:
                    if shipped is None:
                        raise ValueError("there is no shipped model for this system")
                    model = self._read_model(ctx, shipped)
                    diff = model_differences(model, ctx.config)
                    if diff:
                        raise ValueError(f"the shipped model was trained for {diff}")
                    self._use_model(ctx, model, shipped)
                except ValueError as exc:
                    log.info("run all: training a model (%s)", exc)
                    note = f"Training a score model for these parameters: {exc}."
                    ctx.ui(lambda: setattr(self, "status", note))
                    self._train_stage(ctx)
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
    def _start(self, name: str, body: Callable[[_Job], None]) -> None:
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
        ctx = _Job(self, config, self.seed, self.device, model_path)
        ctx.preset, ctx.train_steps = self.preset, self.train_steps
        ctx.sim = self.sim if self.sim_key == _sim_key(config, self.seed, self.device) else None
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
            self._snapshot.send({"field": snap, "title": f"live field, member 0 ({p.stage})"})
            self._reveal("snapshot")
        if "train_loss" in p.info:
            row = {
                "step": float(p.info.get("step", p.done)),
                "train_loss": float(p.info["train_loss"]),
                "val_loss": float(p.info.get("val_loss", np.nan) or np.nan),
            }
            self._losses.send(pd.DataFrame([row]))
            self._reveal("losses")
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s else ""
        self.status = f"{p.stage}: {100 * p.fraction:.0f}%{eta}"

    def _on_runner(self, event: param.parameterized.Event) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Buttons that start jobs are off while a job runs or the inputs are refused."""
        running, refused = self.runner.running, bool(self.refusal())
        for name, button in getattr(self, "_buttons", {}).items():
            if name == "cancel":
                button.disabled = not running
            elif name == "load_model":
                button.disabled = running
            else:
                button.disabled = running or refused

    def _on_input_error(self, name: str, message: str | None) -> None:
        if message:
            self.input_errors[name] = message
        else:
            self.input_errors.pop(name, None)
        if hasattr(self, "_summary"):
            self._summary.object = self.job_summary()
        self._update_buttons()

    def _set_status(self, text: str, level: str | None = None) -> None:
        self.status = text
        if level is not None and self._notifications is not None:
            getattr(self._notifications, level)(text, duration=4000)

    def _notify(self, level: str, text: str) -> None:
        self.status = text
        if self._notifications is not None:
            getattr(self._notifications, level)(text, duration=0 if level == "error" else 4000)

    # -- stages (run in a worker; UI updates go through ctx.ui) -------------------------------
    def _simulate_stage(self, ctx: _Job) -> None:
        key = _sim_key(ctx.config, ctx.seed, ctx.device)
        ds = RESULTS.get(key)
        if ds is None:
            ds = ctx.call(simulate, ctx.config, seed=ctx.seed, device=ctx.device)
            RESULTS.put(key, ds)
        ctx.sim = ds
        ctx.ui(lambda: self._show_simulation(ds, key, (ctx.config, ctx.seed)))

    def _train_stage(self, ctx: _Job) -> None:
        from gfdt_dash import score

        sim = ctx.require_simulation()
        ctx.ui(self._losses.clear)
        size = "paper" if ctx.preset == "paper" else "classroom"
        model = ctx.call(
            score.train_score,
            sim,
            system_config=ctx.config,
            net_config=score.ScoreNetConfig.preset(size),
            train_config=score.TrainConfig.preset(size, n_steps=ctx.train_steps),
            seed=ctx.seed,
            device=ctx.device,
        )
        key = f"trained-{uuid.uuid4().hex}"
        ctx.model, ctx.model_key = model, key
        ctx.ui(lambda: self._show_model(model, key, "trained in this session"))
        self._diagnose_stage(ctx)

    def _load_stage(self, ctx: _Job) -> None:
        if ctx.model_path is None:
            raise ValueError("no model selected; train one or pick a saved/shipped model")
        self._use_model(ctx, self._read_model(ctx, Path(ctx.model_path)), Path(ctx.model_path))

    def _read_model(self, ctx: _Job, path: Path) -> Any:
        from gfdt_dash import score

        return score.load_checkpoint(
            path, expect_system=self.system, expect_n=ctx.config.n, device=ctx.device
        )

    def _use_model(self, ctx: _Job, model: Any, path: Path) -> None:
        stat = path.stat()
        key = f"file:{path}:{stat.st_mtime_ns}:{stat.st_size}"
        ctx.model, ctx.model_key = model, key
        origin = "shipped model" if path == self._model_paths.get(SHIPPED) else path.stem
        ctx.ui(lambda: self._show_model(model, key, f"loaded: {origin}"))
        self._diagnose_stage(ctx)

    def _diagnose_stage(self, ctx: _Job) -> None:
        """Score diagnostics of the job's model on this session's simulation (if there is one):
        Stein error, relative error against the exact score (OU, Allen–Cahn), and histogram and
        spectrum distances of reverse-diffusion samples. Cached per (model, simulation)."""
        try:
            sim = ctx.require_simulation()
        except ValueError:
            return  # loaded without a simulation: the checkpoint's own diagnostics stay shown
        model, model_key = ctx.current_model()
        sim_key = _sim_key(ctx.config, ctx.seed, ctx.device)
        key = ("diagnose", model_key, sim_key, DIAG_SAMPLES, DIAG_STEPS)
        diag = RESULTS.get(key)
        if diag is None:
            diag = ctx.call(
                worker.diagnose_job,
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

    def _compute_stage(self, ctx: _Job) -> None:
        sim = ctx.require_simulation()
        model, model_key = ctx.current_model()
        key = ("responses", ctx.config.to_json(), ctx.seed, ctx.device, model_key)
        cached = RESULTS.get(key)
        if cached is None:
            cached = ctx.call(
                worker.responses_job, ctx.config, sim, model, seed=ctx.seed, device=ctx.device
            )
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
            self._responses.send({})
            self._update_table()
        self.sim, self.sim_key = ds, key
        self.shown["sim"] = made
        self._sim_final = True
        field = ds["field"]
        self._snapshot.send(
            {"field": field.isel(member=0, time=-1).values, "title": "last frame, member 0"}
        )
        values = field.values.reshape(-1)
        # an even subsample (a random one would cost the event loop a permutation of them all)
        values = values[:: -(-values.size // _HIST_SAMPLES)]
        self.sim_stats = shape_statistics(values)
        self._hist.send({"values": values})
        self._reveal("snapshot", "hist")
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
            self.diagnostics = {"source": "stored with the checkpoint", **self.diagnostics}
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
            self._losses.clear()
            self._losses.send(frame[list(views.empty_loss_frame().columns)])
            self._reveal("losses")
        self.status = f"Score model ready ({origin})."
        self._update_stale()
        self._update_model_pane()

    def _show_diagnostics(self, diag: dict[str, Any], model_key: str | None) -> None:
        if model_key != self.model_key:
            return  # another model was loaded meanwhile
        where = diag.get("diagnosed_on", "this session's simulation")
        self.diagnostics = {
            "source": f"this session's simulation: {where}; {DIAG_SAMPLES} samples × "
            f"{DIAG_STEPS} steps",
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
        self._responses.send({"responses": combined})
        self._reveal("curves", "maps")
        self.status = "Responses ready: " + ", ".join(map(str, combined["method"].values)) + "."
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

    def _update_downloads(self) -> None:
        if hasattr(self, "_dl_sim"):
            self._dl_sim.disabled = self.sim is None
            self._dl_resp.disabled = self.responses is None

    def _reveal(self, *names: str) -> None:
        """Render these figures if not yet shown (once; their streams update them afterwards).

        ``"curves"`` names every downstream panel. Each figure is one paced callback
        (``LazyFigure.reveal``), so that every session's clicks are answered between them.
        """
        if self.runner.closed:  # the session is gone: nothing to render for
            return
        for name in names:
            for key in _CURVES if name == "curves" else (name,):
                if key in self._figures:
                    self._figures[key].reveal(self._schedule)

    def _model_pane_text(self) -> str:
        text = _markdown_table("Model in use", self.model_info)
        if self.model is not None:
            try:
                diff = model_differences(self.model, self.config())
            except ValueError:
                diff = ""
            if diff:
                text += (
                    f"\n\n⚠ **Trained for other parameters:** {diff}. Its learned score "
                    "does not describe these parameters: Run all trains a matching one."
                )
        return text

    def _update_model_pane(self) -> None:
        if hasattr(self, "_model_pane"):
            self._model_pane.object = self._model_pane_text()
            self._diag_pane.object = _markdown_table("Score diagnostics", self.diagnostics)

    def _update_table(self) -> None:
        if hasattr(self, "_table"):
            self._table.object = views.error_table_html(self.error_table)
            self._verdict.object = self.verdict
            self._verdict.visible = bool(self.verdict)

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

    def _update_stale(self, *_: Any) -> None:
        if not hasattr(self, "_stale"):
            return
        reason = self.stale_reason()
        self._stale.object = (
            f"<div class='gfdt-stale' style='background:#fff3cd;border:1px solid #e0a800;"
            f"padding:6px 10px;border-radius:4px'>⚠ <b>Out of date:</b> the results below were "
            f"computed before these changes: {reason}. Press <b>Run all</b> to recompute.</div>"
            if reason
            else ""
        )
        self._stale.visible = bool(reason)
        self._results.styles = {"opacity": "0.45"} if reason else {"opacity": "1"}
        self._update_model_pane()

    # -- layout ------------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build_layout()
        return self._layout

    def _parameters_card(self) -> pn.Card:
        """The parameter widgets, in a card whose content is built when first opened (about a
        third of a new page's cost on the server otherwise)."""
        card = pn.Card(title="Parameters", collapsed=True)

        def on_toggle(event: param.parameterized.Event) -> None:
            if not event.new and not card.objects:
                card[:] = [mirror_widgets(self.mirror, self._on_input_error)]

        card.param.watch(on_toggle, "collapsed")
        return card

    def _number(self, p: param.Integer) -> NumberField:
        lo, hi = p.bounds
        return NumberField(
            self,
            p.name,
            p.label,
            integer=True,
            lo=lo,
            hi=hi,
            doc=p.doc,
            on_error=self._on_input_error,
        )

    def _build_layout(self) -> pn.viewable.Viewable:
        btn = pn.widgets.Button.from_param
        self._buttons = {
            "run_all": btn(self.param.run_all, color="primary"),
            "simulate": btn(self.param.simulate),
            "train": btn(self.param.train),
            "load_model": btn(self.param.load_model),
            "compute": btn(self.param.compute),
            "cancel": btn(self.param.cancel, color="danger", disabled=True),
        }
        save = btn(self.param.save_model)
        device = pn.widgets.Select.from_param(
            self.param.device,
            options=["cpu", "cuda", "mps"],
            disabled_options=self._devices_disabled,
        )
        progress = pn.indicators.Progress(value=0, max=1000, sizing_mode="stretch_width")
        queue = pn.pane.Markdown("", margin=(0, 10))

        def on_progress(*_: Any) -> None:
            r = self.runner
            progress.value = int(1000 * r.fraction)
            # a cancelled or failed job's bar stops where it was, greyed
            progress.bar_color = {"done": "success", "cancelled": "secondary"}.get(
                r.stage, "secondary" if r.stage == "error" else "primary"
            )
            if r.running and r.queue_position:
                queue.object = f"queued: position {r.queue_position} in the shared pool"
            elif r.running:
                eta = f" — ETA {r.eta_s:.0f} s" if r.eta_s else ""
                queue.object = f"**{r.job}** · {r.stage}{eta}"
            else:
                queue.object = f"{r.job}: {r.stage}" if r.job else ""

        self.runner.param.watch(on_progress, ["fraction", "stage", "queue_position", "running"])

        summary = self._summary = pn.pane.Markdown(
            self.job_summary(), styles={"font-size": "0.9em"}
        )

        def on_edit(*_: Any) -> None:
            summary.object = self.job_summary()
            self._update_buttons()

        self.mirror.param.watch(on_edit, list(self.config_cls.field_specs()))
        self.param.watch(on_edit, ["train_steps"])

        self._model_pane = pn.pane.Markdown(_markdown_table("Model in use", self.model_info))
        self._diag_pane = pn.pane.Markdown(_markdown_table("Score diagnostics", self.diagnostics))
        self._table = pn.pane.HTML(views.error_table_html(self.error_table))
        self._verdict = pn.pane.Markdown(
            self.verdict,
            visible=bool(self.verdict),
            styles={"background": "#eef6ee", "padding": "2px 12px", "border-radius": "4px"},
        )
        self._stale = pn.pane.HTML("", visible=False)
        self._dl_sim = pn.widgets.FileDownload(
            callback=lambda: self.netcdf_bytes("simulation"),
            filename=f"{self.system}_simulation.nc",
            label="Download simulation (netCDF)",
            disabled=True,
        )
        self._dl_resp = pn.widgets.FileDownload(
            callback=lambda: self.netcdf_bytes("responses"),
            filename=f"{self.system}_responses.nc",
            label="Download responses (netCDF)",
            disabled=True,
        )

        controls = pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.preset),
            device,
            self._number(self.param.seed),
            summary,
            self._buttons["run_all"],
            pn.Row(self._buttons["simulate"], self._buttons["compute"]),
            pn.Row(self._buttons["train"], self._buttons["cancel"]),
            self._number(self.param.train_steps),
            _rule(),
            pn.widgets.Select.from_param(self.param.model_source),
            self._buttons["load_model"],
            self._model_pane,
            pn.Row(pn.widgets.TextInput.from_param(self.param.model_name, label="save as"), save),
            _rule(),
            self._parameters_card(),
            width=340,
        )

        params_stream = hv.streams.Params(self, ["normalized", "lag_index"])

        norm_stream = hv.streams.Params(self, ["normalized"])
        methods = self.methods

        def curves_for(dx: int) -> hv.DynamicMap:
            def curves(data: dict, normalized: bool) -> hv.Overlay:
                return views.response_curves(data, dx, normalized, methods)

            # not on the lag stream: moving the lag slider redraws the maps only
            return hv.DynamicMap(curves, streams=[self._responses, norm_stream])

        def map_for(method: str) -> hv.DynamicMap:
            def image(data: dict, normalized: bool, lag_index: int) -> hv.Image:
                return views.response_map(data, method, lag_index, normalized)

            return hv.DynamicMap(image, streams=[self._responses, params_stream])

        # Built on first data, not here: see views.LazyFigure.
        fig = self._figures
        fig["snapshot"] = views.LazyFigure(
            lambda: hv.DynamicMap(views.snapshot_image, streams=[self._snapshot]),
            "Field snapshot: shown live once a simulation runs.",
            width=340,
        )
        fig["losses"] = views.LazyFigure(
            lambda: hv.DynamicMap(views.loss_overlay, streams=[self._losses]),
            "Score-matching loss: shown once a model is trained or loaded.",
            width=380,
        )
        fig["hist"] = views.LazyFigure(
            lambda: hv.DynamicMap(views.histogram_overlay, streams=[self._hist]),
            "Pixel values vs Gaussian: shown once a simulation finishes.",
            width=380,
        )
        no_responses = "No responses yet: press **Compute responses** (or **Run all**)."
        for dx, key in enumerate(_CURVES):  # one placeholder line for the group
            fig[key] = views.LazyFigure(
                lambda dx=dx: curves_for(dx), "" if dx else no_responses, width=0 if dx else 440
            )
        fig["maps"] = views.LazyFigure(
            lambda: hv.Layout([map_for(m) for m in methods]).cols(3).opts(shared_axes=False),
            "The maps appear with the responses.",
            width=900,
        )

        status = pn.pane.Markdown(self.param.status, margin=(0, 10))
        self._results = pn.Column(
            pn.FlexBox(fig["snapshot"].panel, fig["losses"].panel, fig["hist"].panel),
            pn.pane.Markdown("### Response at the kicked pixel and downstream"),
            pn.Card(
                pn.pane.Markdown(METHOD_TEXT),
                title="How are the responses predicted?",
                collapsed=True,
            ),
            pn.Row(
                pn.widgets.Checkbox.from_param(self.param.normalized, width=120),
                pn.pane.HTML(views.method_legend_html(methods)),
            ),
            pn.FlexBox(*(fig[key].panel for key in _CURVES)),
            pn.pane.Markdown(
                "### Response maps (dx right = downstream; colours: ± the largest "
                "value at that lag)"
            ),
            pn.widgets.IntSlider.from_param(self.param.lag_index),
            fig["maps"].panel,
            pn.Row(
                pn.Column("### Error against the reference", self._table),
                pn.Column(self._diag_pane),
            ),
            pn.Row(self._dl_sim, self._dl_resp),
            sizing_mode="stretch_width",
        )
        main = pn.Column(
            pn.pane.Markdown(STORIES[self.system], styles={"font-size": "0.95em"}),
            pn.Row(status, queue),
            progress,
            self._stale,
            self._verdict,
            self._results,
            sizing_mode="stretch_width",
        )
        self.mirror.param.watch(self._update_stale, list(self.config_cls.field_specs()))
        self.param.watch(self._update_stale, ["seed"])
        layout = pn.Row(controls, main, sizing_mode="stretch_width")
        # State that arrived before the layout was built (e.g. results of a synchronous job).
        if self.sim is not None:
            self._reveal("snapshot", "hist")
        if len(self._losses.data):
            self._reveal("losses")
        if self.responses is not None:
            self._reveal("curves", "maps")
        self._update_stale()
        self._update_buttons()
        return layout


ASK_ABOVE_S = 60.0  # jobs estimated to take longer are started only when asked twice
_BUTTON_LABELS = {
    "run all": "Run all",
    "simulation": "Simulate",
    "training": "Train score model",
    "responses": "Compute responses",
    "loading model": "Load model",
}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


_COSTS: dict[str, tuple[float, float, Any] | None] = {}
_COSTS_LOCK = threading.Lock()


def reference_costs(system: str) -> tuple[float, float, Any] | None:
    """(simulation member-steps per second, seconds per training step, the shipped model) from
    the shipped model's provenance, read once per server; ``None`` without one."""
    with _COSTS_LOCK:
        if system in _COSTS:
            return _COSTS[system]
    from gfdt_dash import score

    costs = None
    try:
        model = score.load_checkpoint(score.shipped_model_path(system), device="cpu")
        made = model.metadata.get("provenance") or {}
        config = model.system_config
        members = int(made.get("simulation_members", config.members))
        ensemble = members * round((config.spinup + config.record) / config.dt)
        costs = (
            ensemble / float(made["simulate_s"]),
            float(made["train_s"]) / model.train_config.n_steps,
            model,
        )
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        log.info("no job estimates for %s: %s", system, exc)
    with _COSTS_LOCK:
        _COSTS[system] = costs
    return costs


_SAVE_LOCK = threading.Lock()  # check-then-save of model files, for every session of the server

# Fields that set the stationary statistics a score model learns; the others (ensemble size,
# record length, response settings) do not change which model fits the data.
_SAMPLING_FIELDS = frozenset(
    {
        "members",
        "frame_members",
        "spinup",
        "record",
        "frame_every",
        "snapshot_every",
        "max_lag",
        "delta",
        "n_experiments",
        "restart_every",
    }
)


def model_differences(model: Any, config: SystemConfig) -> str:
    """How the data ``model`` was trained on differ from ``config`` ("" if it fits): the grid,
    or each physical parameter with the model's value and the current one. A model without a
    recorded system config (user data) is taken to fit any config of its grid."""
    if model is None:
        return "no model"
    if int(model.n) != config.n:
        return f"a {model.n}×{model.n} grid (now {config.n}×{config.n})"
    try:
        trained = model.system_config
    except (ValueError, TypeError):
        trained = None
    if trained is None:
        return ""
    if type(trained) is not type(config):
        return f"another system ({trained.system})"
    specs = type(config).field_specs()
    return ", ".join(
        f"{label_of(name, specs[name], short=True)} = {format_value(getattr(trained, name))} "
        f"(now {format_value(getattr(config, name))})"
        for name in specs
        if name not in _SAMPLING_FIELDS and getattr(trained, name) != getattr(config, name)
    )


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
    errors = {str(m): float(e) for m, e in zip(table["method"], table["error"], strict=False)}
    labels = {m: label for m, label, _ in views.METHODS}
    reference = next((m for m, e in errors.items() if e == 0), "perturbation")
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


STORIES = {
    "ou": (
        "**What to look for.** A linear field: its stationary density is Gaussian, so every "
        "method should match the analytic response (black), and the Gaussian estimate is exact "
        "— a benchmark for the learned score. The flow U carries the kick downstream (the peak "
        "arrives later in the panels further right and moves right in the maps) while "
        "diffusion κ spreads it."
    ),
    "allen_cahn": (
        "**What to look for.** The double well (λ) pushes each pixel towards one of two values: "
        "the histogram has two humps where a Gaussian has one. The Gaussian estimate "
        "C(t)C(0)⁻¹ therefore misses the response, while the GFDT with the exact or the learned "
        "score follows direct perturbation (orange dots, the truth). Change λ and compare."
    ),
    "navier_stokes": (
        "**What to look for.** Turbulent vorticity driven by a forcing whose phases drift "
        "(dynamics hidden from the field). No closed-form score exists: only the learned score "
        "and the Gaussian estimate can be compared with direct perturbation (orange dots, the "
        "truth), as the mean flow U₀ carries the response downstream."
    ),
}

METHOD_TEXT = """
Kick a stochastic field by a small **δ** at one pixel: how does the mean field respond downstream
over time? The *generalized fluctuation–dissipation theorem* answers from unperturbed data alone,
**R(t) = −⟨x(t) s(x(0))ᵀ⟩**, where **s = ∇ log p** is the score of the stationary density. Here the
score is **learned** by denoising score matching (a small circular U-Net), and compared with

- the **exact score** (Ornstein–Uhlenbeck and Allen–Cahn have closed forms),
- the **Gaussian** (quasi-Gaussian) estimate **C(t) C(0)⁻¹**,
- **direct perturbation** (paired runs with the same noise, the ground truth),
- the **analytic** response (Ornstein–Uhlenbeck only).

Score responses are shown **raw** and **normalized** (R(t)R(0)⁻¹); the raw one and the
Stein-identity error expose amplitude errors of the learned score. Bands are one standard error;
lags are in the model's time units.
"""

# The downstream response panels (the kicked pixel, then 1, 2, … cells downstream).
_CURVES = tuple(f"curves{dx}" for dx in range(views.N_DOWNSTREAM))

# Scalar diagnostics shown in the table, in this order (``score.diagnose``'s keys; checkpoints
# made before the diagnostics were named for their held-out fields store ``val_loss``, also the
# loss on held-out snapshots).
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


class _Job:
    """What a running job sees: the config snapshot, progress/stop hooks, UI marshalling."""

    def __init__(
        self, tab: SystemTab, config: SystemConfig, seed: int, device: str, model_path: Path | None
    ) -> None:
        self.tab = tab
        self.config = config
        self.seed = int(seed)
        self.device = device
        self.model_path = model_path
        self.callback: Callable[[Progress], None] | None = None
        self.should_stop: Callable[[], bool] | None = None
        self.sim: xr.Dataset | None = None
        self.model: Any = None
        self.model_key: str | None = None
        self.preset = "classroom"
        self.train_steps = 2000

    def ui(self, fn: Callable[[], None]) -> None:
        self.tab.runner._ui(fn)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with this job's progress and cancel hooks, in a worker
        process (``worker.call``) unless the tab runs jobs synchronously."""
        return worker.call(
            fn,
            *args,
            callback=self.callback,
            should_stop=self.should_stop,
            processes=False if self.tab.runner.sync else None,
            **kwargs,
        )

    def require_simulation(self) -> xr.Dataset:
        if self.sim is None:
            self.sim = RESULTS.get(_sim_key(self.config, self.seed, self.device))
        if self.sim is None:
            raise ValueError("run the simulation for these parameters first (or use Run all)")
        return self.sim

    def current_model(self) -> tuple[Any, str | None]:
        if self.model is not None and int(self.model.n) != self.config.n:
            raise ValueError(
                f"the score model is for a {self.model.n}×{self.model.n} grid, the simulation "
                f"is {self.config.n}×{self.config.n}; train or load a matching model"
            )
        return self.model, self.model_key


def _sim_key(config: SystemConfig, seed: int, device: str) -> tuple:
    return ("simulate", config.to_json(), int(seed), device)


def _rule() -> pn.pane.HTML:
    # Not pn.layout.Divider: its stylesheet is always fetched from the CDN (offline machines).
    return pn.pane.HTML("<hr style='margin:4px 0'>", sizing_mode="stretch_width")


def _markdown_table(title: str, values: dict[str, Any]) -> str:
    if not values:
        return f"**{title}:** none yet"
    rows = []
    for k, v in values.items():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        rows.append(f"| {k} | {text} |")
    return f"**{title}**\n\n| | |\n|---|---|\n" + "\n".join(rows)
