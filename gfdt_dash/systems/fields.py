"""The OU field and the modified stochastic Allen–Cahn equation (SPEC §2.1–2.2).

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

Time stepping is classical RK4 on the drift plus the additive noise increment of the step,
carried out on the ``rfft2`` coefficients of θ.
"""

from __future__ import annotations

import math

import torch

from gfdt_dash.systems.base import State, System, rk4_increment
from gfdt_dash.systems.config import RK4_IMAG_LIMIT, RK4_REAL_LIMIT, AllenCahnConfig, OUConfig

__all__ = ["FieldSystem", "rk4_amplification"]


def rk4_amplification(z: torch.Tensor) -> torch.Tensor:
    """Stability polynomial of classical RK4: one step multiplies ``e^{z}`` by this."""
    return 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24


class FieldSystem(System):
    """Batched simulator of the OU / Allen–Cahn family.

    Precomputed multipliers (shape ``(n, n//2+1)``): ``sigma_hat`` = Σ̂(k); ``linear_hat`` =
    ``−κ|k|² − iUk_x − γδ_k0 + λΣ̂`` (the linear part of the drift, including the linear part of
    the reaction); ``noise_amp_hat`` = ``√dt · N · √Σ̂`` maps the rfft2 of white noise to the
    step's noise, whose ortho-normalised spectrum is then ``dt·N²·Σ̂(k)``.
    """

    config: OUConfig | AllenCahnConfig

    def __init__(self, config, device="auto", dtype="float32") -> None:
        if not isinstance(config, OUConfig | AllenCahnConfig):
            raise TypeError(f"config: expected OUConfig or AllenCahnConfig, got {type(config)}")
        super().__init__(config, device, dtype)
        c, g = config, self.grid
        self.lam = float(c.lam)
        self.sigma_hat = c.eps2 / (1.0 + g.k2)
        mean_damping = torch.where(g.is_mean, c.gamma, 0.0).to(self.dtype)
        self.dissipation_hat = c.kappa * g.k2 + mean_damping  # −(κΔ − γP₀)
        self.linear_hat = (-self.dissipation_hat - c.U * g.ikx + self.lam * self.sigma_hat).to(
            g.cdtype
        )
        self.noise_amp_hat = (math.sqrt(c.dt) * c.n * torch.sqrt(self.sigma_hat)).to(g.cdtype)
        self.reaction_hat = (self.lam * self.sigma_hat).to(g.cdtype)
        self.rk4_factor = rk4_amplification(c.dt * self.linear_hat)

    # -- dynamics ------------------------------------------------------------------------------
    def drift_hat(self, field_hat: torch.Tensor, stage: int = 0) -> torch.Tensor:
        """rfft2 of the drift ``Σ[λ(θ − θ³)] + (κΔ − U∂ₓ − γP₀)θ``."""
        out = self.linear_hat * field_hat
        if self.lam:
            theta = self.grid.to_physical(field_hat)
            out = out - self.reaction_hat * self.grid.to_spectral(theta**3)
        return out

    def draw_noise(self, batch: int, generator: torch.Generator) -> State:
        n = self.grid.n
        w = torch.randn(batch, n, n, generator=generator, device=self.device, dtype=self.dtype)
        return {"white": w}

    def noise_hat(self, noise: State) -> torch.Tensor:
        """rfft2 of one step's noise increment from the white draw (Hermitian-projected)."""
        return self.grid.hermitian(self.noise_amp_hat * self.grid.to_spectral(noise["white"]))

    def step(self, state: State, noise: State) -> State:
        theta_hat = state["field_hat"]
        if self.lam:
            theta_hat = theta_hat + rk4_increment(self.drift_hat, theta_hat, self.dt)
        else:  # linear drift: RK4 is exactly multiplication by its stability polynomial
            theta_hat = self.rk4_factor * theta_hat
        # The projection keeps the state the rfft2 of a real field (see Grid.hermitian): without
        # it, round-off in the kx = 0 column grows at the reaction's rate λΣ̂ and overflows.
        return {"field_hat": self.grid.hermitian(theta_hat + self.noise_hat(noise))}

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
        """Ortho-normalised per-mode stationary variance of the RK4 + noise scheme (λ = 0).

        One step maps ``θ̂ → P θ̂ + η̂`` with ``P`` the RK4 polynomial of ``dt·linear_hat`` and
        ``E|η̂|²/N² = dt N² Σ̂``, so the variance is ``dt N² Σ̂ / (1 − |P|²)``. It tends to the
        continuous ``N² Σ̂ / (2(κ|k|² + γδ_k0))`` as dt → 0.
        """
        if self.lam:
            raise ValueError("lam: the closed-form stationary spectrum exists only for lam = 0")
        amp = rk4_amplification(self.dt * self.linear_hat).abs() ** 2
        return self.dt * self.grid.n**2 * self.sigma_hat / (1.0 - amp)

    def initial_state(self, batch: int, generator: torch.Generator) -> State:
        """OU: an exact draw from the scheme's stationary law (no spin-up needed).

        Allen–Cahn: a small smooth random field (the spin-up takes it to the stationary state).
        """
        n = self.grid.n
        w = torch.randn(batch, n, n, generator=generator, device=self.device, dtype=self.dtype)
        w_hat = self.grid.to_spectral(w)  # E|ŵ|² = N²
        if self.lam:
            start = 0.1 * self.noise_amp_hat / math.sqrt(self.dt) * w_hat
        else:
            start = torch.sqrt(self.ou_stationary_spectrum()).to(w_hat.dtype) * w_hat
        return {"field_hat": self.grid.hermitian(start)}

    def stability_ratio(self, state: State) -> float | None:
        """Stiffest linearised rate × dt at ``state`` over the integrator's stability limit.

        The drift's Jacobian at θ is ``Σ λ(1 − 3θ²) + κΔ − γP₀ − U∂ₓ``; its most negative real
        rate is at most ``max_k(κ|k|² + γδ_k0) + λε² max(3 max θ² − 1, 0)`` and its largest
        imaginary rate is ``|U| (n/2 − 1)``. Each is compared with the integrator's limit on the
        negative real / imaginary axis.
        """
        c = self.config
        theta2 = float(self.observe(state).abs().amax()) ** 2
        real = float(self.dissipation_hat.amax()) + self.lam * c.eps2 * max(3 * theta2 - 1, 0.0)
        imag = abs(c.U) * (self.grid.n // 2 - 1)
        return max(real * self.dt / RK4_REAL_LIMIT, imag * self.dt / RK4_IMAG_LIMIT)
