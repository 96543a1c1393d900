"""The OU field and the modified stochastic Allen–Cahn equation: one family, λ = 0 and λ > 0.

    ∂ₜθ = Σ[λ(θ − θ³)] + κΔθ − U∂ₓθ − γP₀θ + ξ,   Σ̂(k) = ε²/(1 + |k|²),

with ξ white in time and spatial covariance ``N²Σ`` on the ``N × N`` grid per unit time. Writing
``Φ(θ) = Σₓ λ(θ²/2 − θ⁴/4) + ½ θᵀΣ⁻¹(κΔ − γP₀)θ``, the drift is ``Σ∇Φ − U∂ₓθ``: a gradient
part with the noise's own covariance plus an advection that is divergence-free and, in the
continuum, orthogonal to ∇Φ. With diffusion matrix ``N²Σ/2`` the stationary density is therefore
``p ∝ exp((2/N²)Φ)`` and the exact score is

    s(θ) = (2/N²)[λ(θ − θ³) + Σ⁻¹(κΔ − γP₀)θ].

On the grid the spectral x-derivative is not exactly orthogonal to the quartic part of ∇Φ, so for
λ > 0 and U ≠ 0 the score is exact up to a small discretisation error (it is exact for OU).

``γ`` damps the spatial mean. With λ = 0 the mean mode is otherwise an undamped random walk (no
stationary density), so the OU config requires γ > 0; for Allen–Cahn the reaction already confines
the mean and γ = 0 by default.

The equation is split for the steppers (:mod:`gfdt_dash.systems.steppers`) into the linear
multiplier ``L̂ = λΣ̂ − κ|k|² − γδ_k0 − iUk_x``, its skew (advection) part ``−iUk_x``, the explicit
part ``−λΣ̂ (θ³)^`` and the additive noise; ``config.integrator`` picks the stepper. The state is
kept as the ``rfft2`` coefficients of θ, projected after every step onto those of real fields.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gfdt_dash.systems.base import State, System
from gfdt_dash.systems.config import AllenCahnConfig, OUConfig
from gfdt_dash.systems.steppers import make_stepper, rk4_amplification

__all__ = ["FieldSystem", "linear_stationary_state", "rk4_amplification"]


class FieldSystem(System):
    """Batched simulator of the OU / Allen–Cahn family.

    Precomputed multipliers (shape ``(n, n//2+1)``): ``sigma_hat`` = Σ̂(k); ``linear_hat`` =
    ``−κ|k|² − iUk_x − γδ_k0 + λΣ̂`` (the linear part of the drift, including the linear part of
    the reaction); ``skew_hat = −iUk_x`` (advection, Nyquist k_x dropped); ``noise_amp_hat`` =
    ``√dt · N · √Σ̂`` maps the rfft2 of white noise to the step's noise, whose ortho-normalised
    spectrum is then ``dt·N²·Σ̂(k)``. ``stepper`` advances the state (``config.integrator``).
    """

    config: OUConfig | AllenCahnConfig

    def __init__(self, config, device="auto", dtype="float32") -> None:
        if not isinstance(config, OUConfig | AllenCahnConfig):
            raise TypeError(f"config: expected OUConfig or AllenCahnConfig, got {type(config)}")
        super().__init__(config, device, dtype)
        c, g = config, self.grid
        self.lam = float(c.lam)
        self.is_linear = self.lam == 0
        self.sigma_hat = c.eps2 / (1.0 + g.k2)
        mean_damping = torch.where(g.is_mean, c.gamma, 0.0).to(self.dtype)
        self.dissipation_hat = c.kappa * g.k2 + mean_damping  # −(κΔ − γP₀)
        self.skew_hat = (-c.U * g.ikx).to(g.cdtype)
        self.linear_hat = (-self.dissipation_hat + self.lam * self.sigma_hat + self.skew_hat).to(
            g.cdtype
        )
        self.noise_amp_hat = (math.sqrt(c.dt) * c.n * torch.sqrt(self.sigma_hat)).to(g.cdtype)
        self.reaction_hat = (self.lam * self.sigma_hat).to(g.cdtype)
        self.stepper = make_stepper(c.integrator, self)

    # -- dynamics ------------------------------------------------------------------------------
    def explicit_hat(self, field_hat: torch.Tensor) -> torch.Tensor:
        """rfft2 of the nonlinear part of the drift, ``−Σ λθ³``."""
        theta = self.grid.to_physical(field_hat)
        return -self.reaction_hat * self.grid.to_spectral(theta**3)

    def drift_hat(self, field_hat: torch.Tensor, stage: int = 0) -> torch.Tensor:
        """rfft2 of the drift ``Σ[λ(θ − θ³)] + (κΔ − U∂ₓ − γP₀)θ``."""
        out = self.linear_hat * field_hat
        if not self.is_linear:
            out = out + self.explicit_hat(field_hat)
        return out

    def draw_noise(self, batch: int, generator: torch.Generator) -> State:
        """``{"white_hat": ŵ}``: spectral white noise (:meth:`Grid.white_hat`), no FFT needed."""
        return {"white_hat": self.grid.white_hat(batch, generator)}

    def noise_hat(self, noise: State) -> torch.Tensor:
        """rfft2 of one step's noise increment, ``√dt·N·√Σ̂ ŵ``: a real field's transform with
        ortho-normalised spectrum ``dt·N²·Σ̂(k)``."""
        return self.noise_amp_hat * noise["white_hat"]

    def step(self, state: State, noise: State) -> State:
        """One step of ``config.integrator``; the result is the rfft2 of a real field."""
        return self.stepper.step(state, noise)

    # -- stationary statistics -----------------------------------------------------------------
    def score(self, theta: torch.Tensor) -> torch.Tensor:
        """Exact score ``(2/N²)[λ(θ − θ³) + Σ⁻¹(κΔ − γP₀)θ]`` of fields ``(batch, y, x)``."""
        g = self.grid
        theta = theta.to(device=self.device, dtype=self.dtype)
        lin_hat = -(self.dissipation_hat / self.sigma_hat) * g.to_spectral(theta)
        out = g.to_physical(lin_hat)
        if self.lam:
            out = out + self.lam * (theta - theta**3)
        return (2.0 / g.n**2) * out

    def ou_stationary_spectrum(self) -> torch.Tensor:
        """Ortho-normalised per-mode stationary variance ``E|θ̂|²/N²`` of the scheme (λ = 0).

        RK4: ``dt N² Σ̂ / (1 − |P|²)`` with ``P`` the RK4 polynomial of ``dt·linear_hat``, O(dt)
        above the SDE's. LM: exactly the SDE's ``N² Σ̂ / (2(κ|k|² + γδ_k0))``.
        """
        if self.lam:
            raise ValueError("lam: the closed-form stationary spectrum exists only for lam = 0")
        return self.stepper.ou_stationary_variance()

    def initial_state(self, batch: int, generator: torch.Generator) -> State:
        """OU: an exact draw from the scheme's stationary law (no spin-up needed).

        Allen–Cahn: a small smooth random field (the spin-up takes it to the stationary state).
        A stepper that carries the last noise increment gets a fresh one; for OU under LM the
        field is then ``Z + ξ/2`` with ``Z`` independent of ``ξ`` (see
        :meth:`~gfdt_dash.systems.steppers.LeimkuhlerMatthews.ou_stationary_variance`).
        """
        if not self.lam:
            return linear_stationary_state(self, self.ou_stationary_spectrum(), batch, generator)
        w_hat = self.grid.white_hat(batch, generator)  # E|ŵ|² = N²
        carries = self.stepper.carries_noise
        prev_hat = self.noise_hat(self.draw_noise(batch, generator)) if carries else None
        start = 0.1 * self.noise_amp_hat / math.sqrt(self.dt) * w_hat
        state = {"field_hat": self.grid.hermitian_(start)}
        if carries:
            state["noise_prev"] = prev_hat
        return state

    def stability_ratio(self, state: State) -> float | None:
        """Stiffest linearised rate × dt at ``state`` over the integrator's stability limit.

        The drift's Jacobian at θ is ``J = Σλ(1 − 3θ²) + κΔ − γP₀`` (gradient part; Σ-symmetric,
        so its eigenvalues are real) plus the advection ``−U∂ₓ`` (imaginary rates up to
        ``|U|(n/2 − 1)``). The most negative eigenvalue of J, found per member by power
        iteration (50 steps, then 50 more shifted by the first result when that was the largest
        *growth* rate), and the advection rate are compared with the integrator's limits on the
        negative real and the imaginary axis. Positive rates are growth of the equation itself,
        which no time step cures.
        """
        g, c, st = self.grid, self.config, self.stepper
        theta2 = self.observe(state) ** 2  # (batch, y, x)
        gradient_hat = (self.linear_hat - self.skew_hat).real
        gen = torch.Generator(device=self.device).manual_seed(0)
        start = torch.randn(theta2.shape, generator=gen, device=self.device, dtype=self.dtype)

        def jac(v: torch.Tensor) -> torch.Tensor:
            out_hat = gradient_hat * g.to_spectral(v)
            if not self.is_linear:
                out_hat = out_hat - 3.0 * self.reaction_hat * g.to_spectral(theta2 * v)
            return g.to_physical(out_hat)

        def extreme(shift: torch.Tensor) -> torch.Tensor:  # eigenvalue farthest from shift
            v = start
            for _ in range(50):
                w = jac(v) - shift * v
                v = w / w.flatten(1).norm(dim=1).clamp_min(1e-30)[:, None, None]
            return shift.flatten() + ((jac(v) - shift * v) * v).sum((-2, -1)) / (v * v).sum(
                (-2, -1)
            )

        zero = torch.zeros(theta2.shape[0], 1, 1, device=self.device, dtype=self.dtype)
        top = extreme(zero)
        lowest = torch.where(top < 0, top, extreme(top.clamp_min(0)[:, None, None]))
        real = max(-float(lowest.min()), 0.0)
        imag = abs(c.U) * (g.n // 2 - 1)
        return max(real * self.dt / st.real_limit, imag * self.dt / st.imag_limit)


def linear_stationary_state(system: Any, var: torch.Tensor, batch: int, generator: Any) -> State:
    """An exact draw from the stationary law of a linear field under ``system``'s stepper.

    ``var`` is the scheme's stationary spectrum per mode (``E|θ̂|²``; for a stepper's own law
    :meth:`~gfdt_dash.systems.steppers.LeimkuhlerMatthews.ou_stationary_variance`). ``system``
    provides ``grid``, ``stepper``, ``dt``, ``sigma_hat``, ``draw_noise`` and ``noise_hat``. A
    stepper that carries the last noise increment ξ gets a fresh one, and the field is then
    ``Z + ξ/2`` with ``Z`` independent of ξ (the part of the variance ξ/2 does not carry).
    """
    grid = system.grid
    w_hat = grid.white_hat(batch, generator)  # E|ŵ|² = N²
    carries = system.stepper.carries_noise
    prev_hat = system.noise_hat(system.draw_noise(batch, generator)) if carries else None
    if carries:
        var = var - system.dt * grid.n**2 * system.sigma_hat / 4
    start = torch.sqrt(var).to(w_hat.dtype) * w_hat
    if carries:
        start = start + 0.5 * prev_hat
    state = {"field_hat": grid.hermitian_(start)}
    if carries:
        state["noise_prev"] = prev_hat
    return state
