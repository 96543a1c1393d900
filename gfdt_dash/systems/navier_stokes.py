"""2-D Navier–Stokes with stochastically phased forcing, vorticity form (SPEC §2.3).

    ∂ₜζ = −½[(u·∇)ζ + ∇·(uζ)] + 𝒟ζ + S_φ − c_S⟨S_φ⟩ − ⟨ζ⟩,
    u = (∂_yψ + U₀, −∂ₓψ),  Δψ = ζ,  𝒟̂(k) = −ν_h²/|k|⁴ − ν²|k|⁴ (𝒟̂(0) = 0),
    Ŝ(k) = A_f 1[|k| ≤ k_f] e^{iφ_k(t)},  dφ_k = √(2D) dW_k,

pseudo-spectral on the rfft2 coefficients of ζ, classical RK4 with the phases advanced at the
half-steps. The advection is evaluated in skew-symmetric form, which conserves enstrophy exactly
on the grid and, with the 2/3-rule dealiasing option, energy too. The uniform background flow
``U₀∂ₓζ`` is linear and treated exactly as such. Following the original study, dealiasing is off
by default (``dealias=False``).

The forcing is the real part of the normalised inverse FFT of Ŝ, so in rfft2 coefficients it is
``½(Ŝ(k) + conj Ŝ(−k))``; the Nyquist row and column are excluded, the mean mode included. The
phases are hidden variables: ζ alone is non-Markovian and has no closed-form score.
"""

from __future__ import annotations

import math

import torch

from gfdt_dash.systems.base import State, System, rk4_increment
from gfdt_dash.systems.config import NavierStokesConfig

__all__ = ["NavierStokesSystem"]


class NavierStokesSystem(System):
    """Batched simulator of the stochastically forced 2-D Navier–Stokes system.

    State: ``field_hat`` (rfft2 of ζ) and ``phase`` (``(batch, n_forced)``: the phases of the
    forced modes of the full fft2 layout, ``forcing_mask``). Noise per step: ``dW`` of shape
    ``(batch, 2, n_forced)``, one standard normal per half-step.
    """

    config: NavierStokesConfig

    def __init__(self, config, device="auto", dtype="float32") -> None:
        if not isinstance(config, NavierStokesConfig):
            raise TypeError(f"config: expected NavierStokesConfig, got {type(config)}")
        super().__init__(config, device, dtype)
        c, g = config, self.grid
        k2 = g.k2
        k4 = torch.where(g.is_mean, 1.0, k2**2)
        dissipation = -(c.nuh2 / k4) - c.nu2 * k2**2
        dissipation = torch.where(g.is_mean, -1.0, dissipation)  # −⟨ζ⟩ damps the mean at rate 1
        self.linear_hat = (dissipation - c.U0 * g.ikx).to(g.cdtype)
        self.inv_lap = torch.where(g.is_mean, 0.0, -1.0 / torch.where(g.is_mean, 1.0, k2))
        self.mask = g.dealias.to(g.cdtype) if c.dealias else None
        # ζ̂ → (û, v̂, ∂ₓζ̂, ∂_yζ̂, ζ̂) and (u·∇ζ, uζ, vζ)^ → ½[(u·∇)ζ + ∇·(uζ)]^ as one
        # broadcast multiplication each (no per-field copies).
        inv_lap = self.inv_lap.to(g.cdtype)
        self._to_phys_mult = torch.stack(
            [g.iky * inv_lap, -g.ikx * inv_lap, g.ikx, g.iky, torch.ones_like(g.ikx)]
        )
        self._from_phys_mult = 0.5 * torch.stack([torch.ones_like(g.ikx), g.ikx, g.iky])
        # Forcing: only the M forced modes of the full fft2 layout carry phases. For each rfft2
        # coefficient that is forced, the positions of k and of −k in that list of M.
        fky, fkx = g.full_wavenumbers()
        n = c.n
        nyq = (fky.abs() == n / 2) | (fkx.abs() == n / 2)
        full_mask = (fky**2 + fkx**2 <= c.kf**2) & ~nyq
        self.forcing_mask = full_mask.to(self.dtype)
        index = torch.full((n, n), -1, dtype=torch.long, device=self.device)
        index[full_mask] = torch.arange(int(full_mask.sum()), device=self.device)
        half = n // 2 + 1
        in_half = full_mask[:, :half]
        ky_idx, kx_idx = torch.nonzero(in_half, as_tuple=True)
        self.n_forced = int(full_mask.sum())
        self._target = ky_idx * half + kx_idx  # flat rfft2 positions of the forced modes
        self._pos = index[ky_idx, kx_idx]
        self._neg = index[(-ky_idx) % n, (-kx_idx) % n]
        self._mean_slot = int(torch.nonzero(self._target == 0)[0]) if full_mask[0, 0] else None
        self.phase_step = math.sqrt(2.0 * c.phase_diffusion * 0.5 * c.dt)

    # -- forcing -------------------------------------------------------------------------------
    def forcing_hat(self, phase: torch.Tensor) -> torch.Tensor:
        """rfft2 coefficients of ``S_φ − c_S⟨S_φ⟩`` for phases ``(batch, n_forced)``."""
        c, g = self.config, self.grid
        e = torch.polar(torch.ones_like(phase), phase)
        values = (0.5 * c.forcing_amp) * (e[:, self._pos] + e[:, self._neg].conj())
        if self._mean_slot is not None:
            values[:, self._mean_slot] *= 1.0 - c.mean_forcing_removed
        out = torch.zeros(phase.shape[0], g.n * (g.n // 2 + 1), dtype=g.cdtype, device=self.device)
        out[:, self._target] = values
        return out.view(phase.shape[0], g.n, g.n // 2 + 1)

    # -- dynamics ------------------------------------------------------------------------------
    def advection_hat(self, zeta_hat: torch.Tensor) -> torch.Tensor:
        """rfft2 of ``½[(u·∇)ζ + ∇·(uζ)]`` for the perturbation velocity (U₀ excluded).

        Five inverse transforms (u, v, ∂ₓζ, ∂_yζ, ζ) and three forward ones (u·∇ζ, uζ, vζ),
        each group in one batched call.
        """
        g = self.grid
        phys = g.to_physical(self._to_phys_mult * zeta_hat[:, None])
        prods = torch.empty(phys.shape[0], 3, g.n, g.n, dtype=phys.dtype, device=phys.device)
        torch.sum(phys[:, 0:2] * phys[:, 2:4], dim=1, out=prods[:, 0])
        torch.mul(phys[:, 0:2], phys[:, 4:5], out=prods[:, 1:3])
        adv_hat = (self._from_phys_mult * g.to_spectral(prods)).sum(dim=1)
        if self.mask is not None:
            adv_hat = self.mask * adv_hat
        return adv_hat

    def tendency_hat(self, zeta_hat: torch.Tensor, forcing_hat: torch.Tensor) -> torch.Tensor:
        return self.linear_hat * zeta_hat - self.advection_hat(zeta_hat) + forcing_hat

    def draw_noise(self, batch: int, generator: torch.Generator) -> State:
        dw = torch.randn(
            batch, 2, self.n_forced, generator=generator, device=self.device, dtype=self.dtype
        )
        return {"dW": dw}

    def step(self, state: State, noise: State) -> State:
        phase0 = state["phase"]
        phase_half = phase0 + self.phase_step * noise["dW"][:, 0]
        phase1 = phase_half + self.phase_step * noise["dW"][:, 1]
        if self.config.forcing_amp:
            f0, fh, f1 = (self.forcing_hat(p) for p in (phase0, phase_half, phase1))
        else:
            f0 = fh = f1 = torch.zeros_like(state["field_hat"])
        forcing = (f0, fh, fh, f1)

        def tendency(z: torch.Tensor, stage: int) -> torch.Tensor:
            return self.tendency_hat(z, forcing[stage])

        zeta_hat = state["field_hat"] + rk4_increment(tendency, state["field_hat"], self.dt)
        return {"field_hat": zeta_hat, "phase": torch.remainder(phase1, 2 * math.pi)}

    def initial_state(self, batch: int, generator: torch.Generator) -> State:
        """ζ₀ = sin 3x sin 3y (as in the original study) and uniform random phases."""
        g = self.grid
        x = torch.as_tensor(g.coords, device=self.device, dtype=self.dtype)
        zeta0 = torch.sin(3 * x)[:, None] * torch.sin(3 * x)[None, :]
        zeta_hat = g.to_spectral(zeta0.expand(batch, g.n, g.n).contiguous())
        if self.mask is not None:
            zeta_hat = self.mask * zeta_hat
        phase = (
            2
            * math.pi
            * torch.rand(
                batch, self.n_forced, generator=generator, device=self.device, dtype=self.dtype
            )
        )
        return {"field_hat": zeta_hat, "phase": phase}

    def kick(self, state: State, delta: float, pixel: tuple[int, int] = (0, 0)) -> State:
        """Pixel kick; with dealiasing on, projected on the resolved modes."""
        kicked = super().kick(state, delta, pixel)
        if self.mask is not None:
            kicked["field_hat"] = self.mask * kicked["field_hat"]
        return kicked
