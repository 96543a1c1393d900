"""Frozen, validated configuration dataclasses of the built-in systems (and their base class).

A config holds everything that defines a run: the physics, the grid and time step, and the run
protocol (ensemble size, spin-up, record length, frame intervals, the direct-perturbation
experiment). It is validated once, at construction; an error names the field and its allowed
range. Bounds protect a shared server from absurd sizes.

Every field carries metadata (bounds, unit, one-line doc) that the dashboard's parameter mirrors
read, so the widgets and the configs cannot drift apart.

The presets are a reconstruction of the original study's settings from its public code (Giorgini,
Deck, Bischoff, Souza, PRL 133, 267302, 2024; arXiv:2402.01029), not values read from the paper.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from gfdt_dash.validation import check_field, spec

__all__ = [
    "NS_TIME_STEPPERS",
    "SYSTEMS",
    "AllenCahnConfig",
    "NavierStokesConfig",
    "OUConfig",
    "SystemConfig",
    "config_from_dict",
    "config_from_json",
    "get_config",
]

# Largest |z| on the negative real axis / imaginary axis for which classical RK4 is stable.
RK4_REAL_LIMIT = 2.785
RK4_IMAG_LIMIT = 2.828
# The same for every three-stage, third-order Runge–Kutta scheme (stability polynomial
# 1 + z + z²/2 + z³/6): the real root of P(z) = −1, and √3 on the imaginary axis.
RK3_REAL_LIMIT = 2.512
RK3_IMAG_LIMIT = math.sqrt(3)

# Time integrators of the OU / Allen–Cahn family (gfdt_dash.systems.steppers) and their stability
# limits on |dt·rate| (negative real axis, imaginary axis). "lm": the explicit Euler-type drift
# step is stable for dt·rate < 2 and the advection is an exact rotation (no limit).
INTEGRATORS: dict[str, tuple[float, float]] = {
    "lm": (2.0, math.inf),
    "rk4": (RK4_REAL_LIMIT, RK4_IMAG_LIMIT),
}
# New configs use the scheme whose stationary law is accurate (measured, see README); a saved
# config without the field was written when RK4 was the only scheme, so it reads as "rk4".
DEFAULT_INTEGRATOR = "lm"
# Time steps of one member's spin-up and record at most: a run that long takes hours per member
# on any device, and a step size that small (dt = 1e-300 is a valid float) would never finish.
MAX_RUN_STEPS = 10**9
LEGACY_INTEGRATOR = "rk4"

# Time steppers of Navier–Stokes (``NavierStokesConfig.time_stepper``) and their stability limits
# on |dt·rate| (negative real axis, imaginary axis): classical RK4 (the original study's) and
# Kutta's third-order scheme, three tendency evaluations per step instead of four.
NS_TIME_STEPPERS: dict[str, tuple[float, float]] = {
    "rk4": (RK4_REAL_LIMIT, RK4_IMAG_LIMIT),
    "rk3": (RK3_REAL_LIMIT, RK3_IMAG_LIMIT),
}


@dataclass(frozen=True)
class SystemConfig:
    """Base class: validation, (de)serialisation, presets, overrides."""

    system: ClassVar[str] = ""
    title: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # The parts of a run; every field belongs to one (``group`` in its metadata). physics: the
    # equation's parameters; grid: points per side and time step; integrator: the discrete
    # scheme; ensemble: members, spin-up, recorded duration and the frame and snapshot
    # intervals; experiment: the direct perturbation (kick δ, experiments, restart interval)
    # and the largest response lag. A product of a run depends on some parts only: the
    # simulation on physics, grid, integrator and ensemble (``key`` of those).
    GROUPS: ClassVar[tuple[str, ...]] = ("physics", "grid", "integrator", "ensemble", "experiment")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            meta = f.metadata
            if not meta:
                continue
            # a plain Python value (numpy scalars converted; 2 and 2.0 are one config)
            object.__setattr__(self, f.name, check_field(f.name, getattr(self, f.name), meta))
        self._validate()

    # -- hooks -------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Cross-field checks of a subclass (stability, commensurate intervals)."""
        steps = (self.spinup + self.record) / self.dt
        if not steps <= MAX_RUN_STEPS:
            raise ValueError(
                f"dt: {self.dt:g} makes {steps:.3g} time steps of spin-up and record; at most "
                f"{MAX_RUN_STEPS:,} — raise dt or shorten spinup and record"
            )
        self._check_multiple("frame_every", self.frame_every)
        self._check_multiple("snapshot_every", self.snapshot_every)
        self._check_multiple("restart_every", self.restart_every)
        if self.frame_members > self.members:
            raise ValueError(
                f"frame_members: {self.frame_members} exceeds members={self.members}; "
                f"allowed range 1..members"
            )
        if self.frame_every > self.record:
            raise ValueError(f"frame_every: {self.frame_every} exceeds record={self.record}")
        if self.max_lag > self.restart_every:
            raise ValueError(
                f"max_lag: {self.max_lag} exceeds restart_every={self.restart_every}; the direct "
                "perturbation experiment cannot measure lags beyond its restart interval"
            )
        self._check_multiple("max_lag", self.max_lag, of="frame_every")

    def _check_multiple(self, name: str, value: float, of: str = "dt") -> None:
        base = getattr(self, of)
        ratio = value / base
        if (
            not math.isfinite(ratio)
            or abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio)
            or round(ratio) < 1
        ):
            raise ValueError(f"{name}: {value} must be a positive whole multiple of {of}={base}")

    # -- derived -----------------------------------------------------------------------------
    def steps(self, duration: float) -> int:
        """Number of time steps in ``duration`` time units (rounded to the nearest step)."""
        return round(duration / self.dt)

    @property
    def n_frames(self) -> int:
        return self.steps(self.record) // self.steps(self.frame_every)

    @property
    def n_snapshots(self) -> int:
        return self.steps(self.record) // self.steps(self.snapshot_every)

    @property
    def n_lags(self) -> int:
        """Number of response lags 0..max_lag at the frame interval."""
        return self.steps(self.max_lag) // self.steps(self.frame_every) + 1

    # -- groups ------------------------------------------------------------------------------
    def group(self, *groups: str) -> dict[str, Any]:
        """The fields of ``groups`` (all fields without), by name; e.g. ``group("experiment")``."""
        unknown = sorted(set(groups) - set(self.GROUPS))
        if unknown:
            raise ValueError(f"groups: unknown group {unknown[0]!r}; allowed: {self.GROUPS}")
        wanted = set(groups or self.GROUPS)
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("group") in wanted
        }

    def key(self, *groups: str) -> str:
        """A short hash of the system and the fields of ``groups`` (all without): two configs
        have the same key exactly when those fields are equal."""
        raw = json.dumps({"system": self.system, **self.group(*groups)}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **overrides: Any) -> SystemConfig:
        """A validated copy with some fields changed; unknown names are an error."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"{unknown[0]}: not a parameter of {self.system}; "
                f"allowed: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **overrides)

    @classmethod
    def preset(cls, name: str = "classroom", **overrides: Any) -> SystemConfig:
        """A named preset (``classroom`` or ``paper``), optionally with overrides."""
        if not isinstance(name, str) or name not in cls.presets:
            raise ValueError(
                f"preset: unknown preset {name!r} for {cls.system}; "
                f"allowed: {', '.join(cls.presets)}"
            )
        return cls().replace(**{**cls.presets[name], **overrides})

    @classmethod
    def field_specs(cls) -> dict[str, dict[str, Any]]:
        """Per-field metadata (bounds, unit, doc) for UIs and docs."""
        return {f.name: dict(f.metadata) for f in dataclasses.fields(cls) if f.metadata}


# Fields every system has (grid, time step, ensemble, experiment): bounds, doc, unit, group.
_SHARED: dict[str, dict[str, Any]] = {
    "n": dict(lo=4, hi=256, doc="grid points per side (even)", integer=True, group="grid"),
    "dt": dict(lo=0.0, hi=1.0, doc="time step", unit="time", lo_open=True, group="grid"),
    "members": dict(lo=1, doc="ensemble members", integer=True, group="ensemble"),
    "frame_members": dict(
        lo=1, doc="members whose frames are recorded", integer=True, group="ensemble"
    ),
    "spinup": dict(lo=0.0, hi=1e5, doc="spin-up (discarded)", unit="time", group="ensemble"),
    "record": dict(
        lo=0.0, hi=1e5, doc="recorded duration", unit="time", lo_open=True, group="ensemble"
    ),
    "frame_every": dict(
        lo=0.0,
        hi=1e3,
        doc="interval of frames for response statistics",
        unit="time",
        lo_open=True,
        group="ensemble",
    ),
    "snapshot_every": dict(
        lo=0.0,
        hi=1e4,
        doc="interval of score-training snapshots",
        unit="time",
        lo_open=True,
        group="ensemble",
    ),
    "max_lag": dict(
        lo=0.0, hi=1e4, doc="largest response lag", unit="time", lo_open=True, group="experiment"
    ),
    "delta": dict(
        lo=0.0,
        hi=10.0,
        doc="direct-perturbation kick δ at one pixel",
        lo_open=True,
        group="experiment",
    ),
    "n_experiments": dict(
        lo=1, hi=1_000_000, doc="direct-perturbation experiments", integer=True, group="experiment"
    ),
    "restart_every": dict(
        lo=0.0,
        hi=1e4,
        doc="restart interval of the paired runs",
        unit="time",
        lo_open=True,
        group="experiment",
    ),
}


def _shared(name: str, default: Any, **overrides: Any) -> Any:
    """The shared field ``name`` with a system's ``default`` (and e.g. its own ``hi``)."""
    return spec(default, **{**_SHARED[name], **overrides})


@dataclass(frozen=True)
class _FieldFamilyConfig(SystemConfig):
    """∂ₜθ = Σ[λ(θ − θ³)] + κΔθ − U∂ₓθ − γP₀θ + ξ on [0, 2π)², ξ with covariance N²Σ."""

    n: int = _shared("n", 32)
    eps2: float = spec(
        0.004, 0.0, 10.0, "noise amplitude ε² in Σ̂(k) = ε²/(1+|k|²)", lo_open=True, group="physics"
    )
    kappa: float = spec(2.5e-4, 0.0, 1.0, "diffusivity κ", "length²/time", group="physics")
    U: float = spec(0.02, -10.0, 10.0, "advection speed U along x", "length/time", group="physics")
    lam: float = spec(0.0, 0.0, 1e5, "double-well strength λ (0: OU)", group="physics")
    gamma: float = spec(
        1e-3, 0.0, 10.0, "damping γ of the spatial-mean mode", "1/time", group="physics"
    )
    dt: float = _shared("dt", 1 / 32)
    members: int = _shared("members", 128, hi=4096)
    frame_members: int = _shared("frame_members", 128, hi=4096)
    spinup: float = _shared("spinup", 1000.0)
    record: float = _shared("record", 2000.0)
    frame_every: float = _shared("frame_every", 1.0)
    snapshot_every: float = _shared("snapshot_every", 10.0)
    max_lag: float = _shared("max_lag", 50.0)
    delta: float = _shared("delta", 0.0625)
    n_experiments: int = _shared("n_experiments", 1280)
    restart_every: float = _shared("restart_every", 100.0)
    integrator: str = spec(
        DEFAULT_INTEGRATOR,
        doc="time integrator: lm (Leimkuhler–Matthews, accurate stationary law) or rk4 (RK4 + "
        "additive noise, the original study's scheme)",
        choices=tuple(INTEGRATORS),
        group="integrator",
    )

    def stiff_rates(self) -> tuple[float, float]:
        """Stiffest linear rates ``(real, imaginary)`` of the drift, in 1/time.

        Real: diffusion at the largest |k|, the mean damping γ, and the reaction linearised in a
        well (θ = ±1) at k = 0, ``2λε²``. Imaginary: advection at the largest k_x below Nyquist.
        """
        kmax2 = 2 * (self.n // 2) ** 2
        return max(self.kappa * kmax2, 2 * self.lam * self.eps2, self.gamma), abs(self.U) * (
            self.n // 2 - 1
        )

    def _validate(self) -> None:
        if self.n % 2:
            raise ValueError(f"n: {self.n} must be even; allowed: even integers in [4, 256]")
        if self.lam == 0 and self.gamma == 0:
            raise ValueError(
                "gamma: must be > 0 when lam = 0, otherwise the spatial mean is an undamped "
                "random walk with no stationary density; allowed range (0, 10]"
            )
        # Stability of the integrator at the stiffest linear rates, with a 10 % margin.
        real_rate, imag_rate = self.stiff_rates()
        real_limit, imag_limit = INTEGRATORS[self.integrator]
        limit = min(
            real_limit / real_rate if real_rate else math.inf,
            imag_limit / imag_rate if imag_rate else math.inf,
        )
        if self.dt > 0.9 * limit:
            raise ValueError(
                f"dt: {self.dt} is too large for {self.integrator.upper()} stability with these "
                f"rates; allowed range (0, {0.9 * limit:.4g}]"
            )
        super()._validate()


_FIELD_PAPER = dict(
    n=32,
    eps2=0.004,
    kappa=2.5e-4,
    U=0.02,
    dt=1 / 32,
    members=128,
    frame_members=128,
    spinup=1000.0,
    record=2000.0,
    frame_every=1.0,
    snapshot_every=10.0,
    max_lag=50.0,
    delta=0.0625,
    restart_every=100.0,
)


@dataclass(frozen=True)
class OUConfig(_FieldFamilyConfig):
    """Ornstein–Uhlenbeck field with spatially correlated noise (the family with λ = 0)."""

    system: ClassVar[str] = "ou"
    title: ClassVar[str] = "Ornstein–Uhlenbeck"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "classroom": dict(
            n=16,
            eps2=0.004,
            kappa=2.5e-3,
            U=0.1,
            gamma=0.05,
            dt=1 / 8,
            members=32,
            frame_members=32,
            spinup=100.0,
            record=400.0,
            frame_every=1.0,
            snapshot_every=4.0,
            max_lag=20.0,
            delta=0.0625,
            n_experiments=64,
            restart_every=20.0,
        ),
        "paper": dict(_FIELD_PAPER, lam=0.0, gamma=1e-3, n_experiments=1280),
    }

    def _validate(self) -> None:
        if self.lam != 0:
            raise ValueError(f"lam: the OU system has lam = 0, got {self.lam}; use AllenCahnConfig")
        super()._validate()


@dataclass(frozen=True)
class AllenCahnConfig(_FieldFamilyConfig):
    """Modified stochastic Allen–Cahn equation (the family with λ > 0)."""

    system: ClassVar[str] = "allen_cahn"
    title: ClassVar[str] = "Allen–Cahn"
    lam: float = spec(4000.0, 0.0, 1e5, "double-well strength λ", lo_open=True, group="physics")
    gamma: float = spec(
        0.0, 0.0, 10.0, "extra damping γ of the spatial-mean mode", "1/time", group="physics"
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "classroom": dict(
            n=16,
            eps2=0.004,
            kappa=2.5e-3,
            U=0.1,
            lam=1000.0,
            gamma=0.0,
            dt=1 / 16,
            members=32,
            frame_members=32,
            spinup=100.0,
            record=400.0,
            frame_every=1.0,
            snapshot_every=4.0,
            max_lag=20.0,
            delta=0.0625,
            n_experiments=256,
            restart_every=20.0,
        ),
        "paper": dict(_FIELD_PAPER, lam=4000.0, gamma=0.0, n_experiments=12800),
    }


@dataclass(frozen=True)
class NavierStokesConfig(SystemConfig):
    """2-D Navier–Stokes with stochastically phased forcing, vorticity form.

    ∂ₜζ = −(u·∇)ζ + 𝒟ζ + S_φ − c_S⟨S_φ⟩ − ⟨ζ⟩,  u = (∂_yψ + U₀, −∂ₓψ), Δψ = ζ,
    𝒟̂(k) = −ν_h²/|k|⁴ − ν²|k|⁴, Ŝ(k) = A_f 1[|k| ≤ k_f] e^{iφ_k(t)}, dφ = √(2D) dW.

    The advection term's discrete form is ``advection`` and the Runge–Kutta scheme
    ``time_stepper`` (see ``NavierStokesSystem``, whose docstring has the measurements). The
    defaults, ``skew`` and ``rk4``, are the original study's, chosen again from accuracy and speed
    measured together: skew is the most accurate form against a resolved reference, and RK3
    (three tendency evaluations per step instead of four) lowers the stationary enstrophy by a
    few % at the classroom dt. A config saved before either field existed was made with them
    and loads with them (:attr:`legacy_defaults`).
    """

    system: ClassVar[str] = "navier_stokes"
    title: ClassVar[str] = "Navier–Stokes"
    # Forms of the advection term (NavierStokesSystem); the first is the original study's and the
    # default, so configs saved before the field existed load as they were made.
    advection_forms: ClassVar[tuple[str, ...]] = (
        "skew",
        "advective",
        "conservative",
        "momentum_flux",
    )
    # The value a saved config that lacks a field was made with (the field did not exist then).
    legacy_defaults: ClassVar[dict[str, Any]] = {"advection": "skew", "time_stepper": "rk4"}
    n: int = _shared("n", 32)
    U0: float = spec(
        math.pi, -20.0, 20.0, "uniform background flow U₀ along x", "length/time", group="physics"
    )
    nu2: float = spec(1e-5, 0.0, 1.0, "hyperviscosity ν² (of |k|⁴)", group="physics")
    nuh2: float = spec(1e-2, 0.0, 10.0, "hypoviscosity ν_h² (of 1/|k|⁴)", group="physics")
    kf: float = spec(
        10.6, 0.0, 200.0, "forcing cut-off wavenumber k_f", lo_open=True, group="physics"
    )
    forcing_amp: float = spec(18.75, 0.0, 1e4, "forcing amplitude A_f", group="physics")
    mean_forcing_removed: float = spec(
        0.9, 0.0, 1.0, "fraction c_S of the mean forcing removed", group="physics"
    )
    phase_diffusion: float = spec(
        1.0, 0.0, 100.0, "phase diffusivity D (dφ = √(2D) dW)", "1/time", group="physics"
    )
    dealias: bool = spec(
        False, doc="2/3-rule dealiasing of the advection", choices=(False, True), group="integrator"
    )
    advection: str = spec(
        "skew",
        doc="form of the advection (u·∇)ζ: skew (the original study's), advective, conservative, "
        "momentum_flux; see NavierStokesSystem",
        choices=advection_forms,
        group="integrator",
    )
    time_stepper: str = spec(
        "rk4",
        doc="Runge–Kutta scheme: rk4 (classical, four stages, the original study's) or rk3 "
        "(Kutta's third order, three stages: 1.2–1.3× faster per step, but it damps advected "
        "modes, stationary enstrophy 1–5 % low at the classroom dt); see NavierStokesSystem",
        choices=tuple(NS_TIME_STEPPERS),
        group="integrator",
    )
    dt: float = _shared("dt", 1 / 128)
    members: int = _shared("members", 2048, hi=8192)
    frame_members: int = _shared("frame_members", 128, hi=8192)
    spinup: float = _shared("spinup", 1024.0)
    record: float = _shared("record", 8.0)
    frame_every: float = _shared("frame_every", 1 / 128)
    snapshot_every: float = _shared("snapshot_every", 2.0)
    max_lag: float = _shared("max_lag", 4.0)
    delta: float = _shared("delta", 1 / 64)
    n_experiments: int = _shared("n_experiments", 128)
    restart_every: float = _shared("restart_every", 8.0)

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "classroom": dict(
            n=16,
            U0=math.pi,
            nu2=1e-4,
            nuh2=2e-2,
            kf=5.0,
            forcing_amp=8.0,
            dt=1 / 32,
            members=64,
            frame_members=32,
            spinup=50.0,
            record=32.0,
            frame_every=1 / 16,
            snapshot_every=1.0,
            max_lag=2.0,
            delta=1 / 16,
            n_experiments=64,
            restart_every=2.0,
        ),
        "paper": dict(
            n=32,
            U0=math.pi,
            nu2=1e-5,
            nuh2=1e-2,
            kf=math.sqrt(2) * 7.5,
            forcing_amp=18.75,
            dt=1 / 128,
            members=2048,
            frame_members=128,
            spinup=1024.0,
            record=8.0,
            frame_every=1 / 128,
            snapshot_every=2.0,
            max_lag=4.0,
            delta=1 / 64,
            n_experiments=128,
            restart_every=8.0,
        ),
    }

    def _validate(self) -> None:
        super()._validate()
        if self.n % 2:
            raise ValueError(f"n: {self.n} must be even; allowed: even integers in [4, 256]")
        # The forced modes are the wavenumbers with |k| ≤ k_f; the smallest non-zero |k| is 1, so
        # below it only k = 0 is forced: the spatial mean, which induces no velocity and is
        # damped by −⟨ζ⟩. Such a forcing drives no flow (unforced decay is forcing_amp = 0).
        if self.forcing_amp > 0 and self.kf < 1:
            raise ValueError(
                f"kf: {self.kf} forces no wavenumber but k = 0 (|k| ≥ 1 for every other mode), "
                f"so forcing_amp={self.forcing_amp} would drive no flow; allowed: kf >= 1 "
                "(or forcing_amp = 0 for no forcing)"
            )
        # Stability of the time stepper at the linear rates: hyperviscosity at the largest |k|,
        # hypoviscosity at |k| = 1, the mean's damping; the background flow at the largest k_x
        # below Nyquist. The advection by the flow itself is not bounded here (it depends on the
        # state).
        kmax2 = 2 * (self.n // 2) ** 2
        real_rate = max(self.nu2 * kmax2**2, self.nuh2, 1.0)
        imag_rate = abs(self.U0) * (self.n // 2 - 1)
        real_limit, imag_limit = NS_TIME_STEPPERS[self.time_stepper]
        limit = min(
            real_limit / real_rate,
            imag_limit / imag_rate if imag_rate else math.inf,
        )
        if self.dt > 0.9 * limit:
            raise ValueError(
                f"dt: {self.dt} is too large for {self.time_stepper.upper()} stability with these "
                f"rates; allowed range (0, {0.9 * limit:.4g}]"
            )


class _ConfigClasses(Mapping):
    """A live, read-only view ``name → config class`` of the system registry
    (:mod:`gfdt_dash.systems.registry`): plug-in systems appear as they register."""

    def __getitem__(self, name: str) -> type[SystemConfig]:
        from gfdt_dash.systems.registry import system_names, system_spec

        if name not in system_names():
            raise KeyError(name)
        return system_spec(name).config_class

    def __iter__(self) -> Iterator[str]:
        from gfdt_dash.systems.registry import system_names

        return iter(system_names())

    def __len__(self) -> int:
        from gfdt_dash.systems.registry import system_names

        return len(system_names())

    def __repr__(self) -> str:
        return f"SYSTEMS({dict(self)!r})"


SYSTEMS: Mapping[str, type[SystemConfig]] = _ConfigClasses()


def get_config(system: str, preset: str = "classroom", /, **overrides: Any) -> SystemConfig:
    """Config of a registered ``system`` (e.g. ``ou``) from a preset, with overrides (an
    override named ``system`` or ``preset`` is refused as not a parameter)."""
    from gfdt_dash.systems.registry import system_spec

    return system_spec(system).config_class.preset(preset, **overrides)


def config_from_dict(d: dict[str, Any]) -> SystemConfig:
    """Inverse of :meth:`SystemConfig.to_dict` (validates).

    A config with an ``integrator`` field whose dict lacks it was written before that field
    existed, when RK4 was the only scheme, so it reads as ``"rk4"`` (new configs default to
    ``"lm"``). Likewise a field in a class's ``legacy_defaults`` that the dict lacks takes the
    value recorded there (Navier–Stokes: the original study's advection form and RK4).
    """
    from gfdt_dash.systems.registry import system_spec

    if not isinstance(d, Mapping):
        raise TypeError(f"config: must be a mapping of field names to values, got {d!r:.60}")
    d = dict(d)
    system = d.pop("system", None)
    cls = system_spec(system).config_class
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names, key=str)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a parameter of {system}")
    if "integrator" in names:
        d.setdefault("integrator", LEGACY_INTEGRATOR)  # written before the field existed
    for name, value in getattr(cls, "legacy_defaults", {}).items():
        d.setdefault(name, value)
    return cls(**d)


def config_from_json(text: str) -> SystemConfig:
    """Inverse of :meth:`SystemConfig.to_json` (validates)."""
    try:
        raw = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"config: not a JSON text of a system config ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config: must be a JSON object, got {type(raw).__name__}")
    return config_from_dict(raw)
