"""A plug-in system: a stochastic advection–diffusion field in an oblique mean flow.

    ∂ₜθ = κΔθ − u·∇θ − γθ + ξ,   u = U (cos α, sin α),
    ⟨ξ̂(k,t) ξ̂(k,t')*⟩ ∝ Σ̂(k) δ(t − t'),   Σ̂(k) = ε² / (1 + ℓ²|k|²)²,

on the periodic box [0, 2π)², with ξ white in time and spatial covariance ``N²Σ`` on the
``N × N`` grid per unit time (the package's convention, :mod:`gfdt_dash.systems.fields`).

How it differs from the package's Ornstein–Uhlenbeck field (``ou``):

- the mean flow blows at an angle α to the x axis (``ou``: along x), so a kick is carried
  diagonally across the grid;
- the noise is smoother, with a squared (Matérn-like) spectrum of correlation length ℓ
  (``ou``: ε²/(1 + |k|²), ℓ = 1, not squared);
- γ damps every mode (``ou``: the spatial mean only), so the relaxation rate of mode k is
  ``r(k) = κ|k|² + γ``.

All operators are diagonal in Fourier space and the advection is skew, so the stationary law is
Gaussian with independent modes of variance (ortho-normalised, ``E|θ̂|²/N²``)

    C(k) = N² Σ̂(k) / (2 r(k)),

the exact score is ``s(θ) = −C⁻¹θ``, i.e. ``ŝ(k) = −(2 r(k) / (N² Σ̂(k))) θ̂(k)``, and the response
to a kick δ at one pixel is, per mode,

    R̂(k, t) = exp(−r(k) t − i (U cos α k_x + U sin α k_y) t).

The system reuses the package's building blocks: :class:`~gfdt_dash.systems.System` (grid, kick,
observation), the time integrators of :mod:`gfdt_dash.systems.steppers` (``lm``, whose stationary
law is exactly C for this linear equation, or ``rk4``) and the config machinery (validated
fields with bounds and units, presets). Load it with ``--plugin examples/advection_diffusion.py``
or ``GFDT_DASH_PLUGINS=examples/advection_diffusion.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from gfdt_dash.systems import (
    INTEGRATORS,
    Grid,
    State,
    System,
    SystemConfig,
    SystemSpec,
    config_field,
    linear_stationary_state,
    make_stepper,
    register_system,
)

NAME = "advection_diffusion"


@dataclass(frozen=True)
class AdvectionDiffusionConfig(SystemConfig):
    """∂ₜθ = κΔθ − U(cos α, sin α)·∇θ − γθ + ξ,  Σ̂(k) = ε²/(1 + ℓ²|k|²)²."""

    system: ClassVar[str] = NAME
    title: ClassVar[str] = "Advection–diffusion (oblique flow)"

    n: int = config_field(32, 4, 256, "grid points per side (even)", integer=True)
    eps2: float = config_field(
        0.004, 0.0, 10.0, "noise amplitude ε² in Σ̂(k) = ε²/(1+ℓ²|k|²)²", lo_open=True
    )
    ell: float = config_field(0.5, 0.0, 10.0, "noise correlation length ℓ", "length")
    kappa: float = config_field(2.5e-3, 0.0, 1.0, "diffusivity κ", "length²/time")
    U: float = config_field(0.1, -10.0, 10.0, "mean-flow speed U", "length/time")
    angle: float = config_field(
        30.0, -180.0, 180.0, "angle α of the mean flow to the x axis", "degrees"
    )
    gamma: float = config_field(0.05, 0.0, 10.0, "damping γ of every mode", "1/time", lo_open=True)
    dt: float = config_field(1 / 8, 0.0, 1.0, "time step", "time", lo_open=True)
    members: int = config_field(32, 1, 4096, "ensemble members", integer=True)
    frame_members: int = config_field(
        32, 1, 4096, "members whose frames are recorded", integer=True
    )
    spinup: float = config_field(20.0, 0.0, 1e5, "spin-up (discarded)", "time")
    record: float = config_field(400.0, 0.0, 1e5, "recorded duration", "time", lo_open=True)
    frame_every: float = config_field(
        1.0, 0.0, 1e3, "interval of frames for response statistics", "time", lo_open=True
    )
    snapshot_every: float = config_field(
        4.0, 0.0, 1e4, "interval of score-training snapshots", "time", lo_open=True
    )
    max_lag: float = config_field(20.0, 0.0, 1e4, "largest response lag", "time", lo_open=True)
    delta: float = config_field(
        0.0625, 0.0, 10.0, "direct-perturbation kick δ at one pixel", lo_open=True
    )
    n_experiments: int = config_field(
        64, 1, 1_000_000, "direct-perturbation experiments", integer=True
    )
    restart_every: float = config_field(
        20.0, 0.0, 1e4, "restart interval of the paired runs", "time", lo_open=True
    )
    integrator: str = config_field(
        "lm",
        doc="time integrator: lm (exact stationary law) or rk4 (fourth-order dynamics)",
        choices=tuple(INTEGRATORS),
    )

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "classroom": dict(
            n=16,
            eps2=0.004,
            ell=0.5,
            kappa=2.5e-3,
            U=0.1,
            angle=30.0,
            gamma=0.05,
            dt=1 / 8,
            members=32,
            frame_members=32,
            spinup=20.0,
            record=400.0,
            frame_every=1.0,
            snapshot_every=4.0,
            max_lag=20.0,
            delta=0.0625,
            n_experiments=64,
            restart_every=20.0,
        ),
        "paper": dict(
            n=32,
            eps2=0.004,
            ell=0.5,
            kappa=2.5e-4,
            U=0.02,
            angle=30.0,
            gamma=0.01,
            dt=1 / 32,
            members=128,
            frame_members=128,
            spinup=100.0,
            record=2000.0,
            frame_every=1.0,
            snapshot_every=10.0,
            max_lag=50.0,
            delta=0.0625,
            n_experiments=1280,
            restart_every=100.0,
        ),
    }

    def velocity(self) -> tuple[float, float]:
        """The mean flow ``(u_x, u_y)``."""
        a = math.radians(self.angle)
        return self.U * math.cos(a), self.U * math.sin(a)

    def _validate(self) -> None:
        if self.n % 2:
            raise ValueError(f"n: {self.n} must be even; allowed: even integers in [4, 256]")
        ux, uy = self.velocity()
        real_rate = self.kappa * 2 * (self.n // 2) ** 2 + self.gamma
        imag_rate = (abs(ux) + abs(uy)) * (self.n // 2 - 1)
        real_limit, imag_limit = INTEGRATORS[self.integrator]
        limit = min(real_limit / real_rate, imag_limit / imag_rate if imag_rate else math.inf)
        if self.dt > 0.9 * limit:
            raise ValueError(
                f"dt: {self.dt} is too large for {self.integrator.upper()} stability with these "
                f"rates; allowed range (0, {0.9 * limit:.4g}]"
            )
        super()._validate()


def _rates(config: AdvectionDiffusionConfig, g: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r(k), Â(k))``: the relaxation rate κ|k|² + γ and the advection −i(u·k) (Nyquist
    wavenumbers dropped, as in the package's first derivatives)."""
    ux, uy = config.velocity()
    return config.kappa * g.k2 + config.gamma, (-(ux * g.ikx + uy * g.iky)).to(g.cdtype)


class AdvectionDiffusionSystem(System):
    """The simulator: a linear equation for the package's steppers (``linear_hat``,
    ``skew_hat``, ``sigma_hat``, ``noise_hat``), started from its exact stationary law."""

    is_linear = True

    def __init__(self, config: AdvectionDiffusionConfig, device="auto", dtype="float32") -> None:
        super().__init__(config, device, dtype)
        c, g = config, self.grid
        self.sigma_hat = c.eps2 / (1.0 + c.ell**2 * g.k2) ** 2
        self.rate_hat, self.skew_hat = _rates(c, g)
        self.linear_hat = (-self.rate_hat + self.skew_hat).to(g.cdtype)
        self.noise_amp_hat = (math.sqrt(c.dt) * c.n * torch.sqrt(self.sigma_hat)).to(g.cdtype)
        self.stepper = make_stepper(c.integrator, self)

    def draw_noise(self, batch: int, generator: torch.Generator) -> State:
        return {"white_hat": self.grid.white_hat(batch, generator)}

    def noise_hat(self, noise: State) -> torch.Tensor:
        return self.noise_amp_hat * noise["white_hat"]

    def step(self, state: State, noise: State) -> State:
        return self.stepper.step(state, noise)

    def initial_state(self, batch: int, generator: torch.Generator) -> State:
        """An exact draw from the scheme's stationary law (as the package's OU field does)."""
        return linear_stationary_state(
            self, self.stepper.ou_stationary_variance(), batch, generator
        )

    def score(self, theta: torch.Tensor) -> torch.Tensor:
        """Exact score ``−C⁻¹θ``: ``(2/N²) F⁻¹[−(r/Σ̂) θ̂]`` of fields ``(batch, y, x)``."""
        g = self.grid
        theta = theta.to(device=self.device, dtype=self.dtype)
        precision_hat = self.rate_hat / self.sigma_hat  # (N²/2) C⁻¹ per mode
        return (2.0 / g.n**2) * g.to_physical(-precision_hat * g.to_spectral(theta))


def exact_score(config: AdvectionDiffusionConfig, device="auto", dtype="float32"):
    return AdvectionDiffusionSystem(config, device, dtype).score


def analytic_response(config: AdvectionDiffusionConfig, lags: np.ndarray) -> np.ndarray:
    """``R(t) = F⁻¹[exp((Â − r) t)]``, the response to a unit kick at pixel (0, 0), float64."""
    g = Grid(config.n, torch.device("cpu"), torch.float64)
    rate, skew = _rates(config, g)
    t = torch.tensor(np.asarray(lags, dtype=np.float64))[:, None, None]
    return g.to_physical(torch.exp((skew - rate) * t)).numpy()


SPEC = register_system(
    SystemSpec(
        name=NAME,
        config_class=AdvectionDiffusionConfig,
        make_system=AdvectionDiffusionSystem,
        field_name="θ",
        field_label="tracer θ",
        exact_score=exact_score,
        analytic_response=analytic_response,
        scan_parameter="angle",
        story=(
            "**What to look for.** A passive tracer with smooth noise, carried by a mean flow "
            "at an angle α to the x axis: the kick drifts diagonally while diffusion κ and "
            "damping γ spread and fade it. The field is Gaussian, so the exact score, the "
            "Gaussian estimate and the analytic response agree — a plug-in system registered "
            "from examples/advection_diffusion.py."
        ),
    )
)
