"""2-D Navier–Stokes with stochastically phased forcing, vorticity form.

    ∂ₜζ = −N(ζ) + 𝒟ζ − U₀∂ₓζ + S_φ − c_S⟨S_φ⟩ − ⟨ζ⟩,   N(ζ) = (u·∇)ζ in one of four forms,
    u = (∂_yψ, −∂ₓψ),  Δψ = ζ,  𝒟̂(k) = −ν_h²/|k|⁴ − ν²|k|⁴ (𝒟̂(0) = 0),
    Ŝ(k) = A_f 1[|k| ≤ k_f] e^{iφ_k(t)},  dφ_k = √(2D) dW_k,

pseudo-spectral on the rfft2 coefficients of ζ (``(batch, n, n//2+1)``), classical RK4
(``base.rk4_step``, the original study's) or Kutta's third-order RK3 (``base.rk3_step``,
``NavierStokesConfig.time_stepper``), both with the phases advanced at the half-steps, so both
evaluate the forcing at t, t + dt/2 and t + dt. The uniform background flow
``U₀∂ₓζ`` is linear and treated exactly as such. Following the original study, dealiasing is off
by default (``dealias=False``). Every step starts with ``Grid.hermitian`` and ends with the
mirrored coefficients exact conjugates (see :meth:`NavierStokesSystem._step`), so the state is
always exactly the rfft2 of a real field (all linear rates are negative, so round-off there would
decay anyway).

**Advection forms** (``NavierStokesConfig.advection``). In exact arithmetic, with ∇·u = 0, all
four equal (u·∇)ζ; on an aliased grid they differ, and each conserves something else exactly
(products taken at the grid points, derivatives spectral with the Nyquist wavenumber dropped):

- ``skew``: ½[(u·∇)ζ + ∇·(uζ)], the original study's form. Conserves the mean and the enstrophy
  ½Σζ² on the grid.
- ``advective``: (u·∇)ζ. Conserves the mean only.
- ``conservative``: ∇·(uζ) (flux form). Conserves the mean and the energy ½Σ|u|² = −½Σψζ on the
  grid: the rate is −Σ(∇ψ·u)ζ, zero at every grid point because u ⊥ ∇ψ.
- ``momentum_flux``: −[(∂ₓ² − ∂_y²)(uv) + ∂ₓ∂_y(v² − u²)], the curl of the momentum-flux
  divergence ∇·(u⊗u) (Basdevant 1983), with ζ = −(∂ₓv − ∂_yu) in this sign convention. Needs
  only the velocity on the grid; conserves the mean only.

With the 2/3-rule dealiasing (``dealias=True``) the four coincide (the Galerkin truncation) and
conserve energy and enstrophy. Without it, a form that conserves a quadratic invariant keeps the
flow bounded whatever the viscosity; ``advective`` and ``momentum_flux`` do not (with ν² = 0 the
classroom preset diverges within 25 time units in those two forms, not in the other two).

**Defaults: ``skew`` with ``rk4``**, chosen from accuracy and speed measured together
(``benchmarks/ns_accuracy.py``, ``benchmarks/bench_systems.py``; ``benchmarks/RESULTS.md``):

- *Transient accuracy* (paper physics, n = 32, float64, frozen forcing phases, 8 members from a
  state spun up for 16 time units): after 2 time units the relative L2 distance on the n = 32
  modes to a dealiased n = 96 run of the same physics is 0.056 for ``skew``, 0.063 for
  ``advective``, 0.078 for ``momentum_flux`` and 0.084 for ``conservative`` (dealiasing at
  n = 32 gives 0.18): the skew form's aliasing errors partly cancel. The stepper hardly matters
  there: RK3's own time error at the paper dt is 4.6e-3 (RK4's 2.8e-4, both against dt/8), an
  order below the aliasing error, and each form's distance with RK3 is within 0.0012 of RK4's.
- *Stationary law* (classroom physics, float32, 32 members, 400 time units after 50): with RK4
  the four forms' mean energy and enstrophy agree with a dealiased n = 32 run within the
  sampling error (≤ 3 %, ≤ 1.5 standard errors). With RK3 the enstrophy is 1.4–4.6 % lower
  (0.954–0.986 of the reference; 1.3–2.6 standard errors below the same form with RK4, all
  four the same way). That is RK3's damping of advected modes: on the imaginary axis its
  amplification is |P(iy)|² = 1 − y⁴/12 + y⁶/36 < 1, which for the background flow alone acts
  like an extra hyperviscosity U₀⁴dt³/24 along x (1.2e-4 at the classroom dt, more than the
  preset's ν² = 1e-4; 1.9e-6 at the paper dt, ν² = 1e-5). RK4's counterpart is of order y⁶,
  U₀⁶dt⁵k_x⁶/144: at k_x = 7 on the classroom grid a damping rate of 0.023 per time unit
  against RK3's 0.30 and the hyperviscosity's 0.24.
- *Speed* (paper size, 128 members, one thread, member-steps per second against torch-cfd's
  spectral solver side by side in one run, the allocator keeping freed memory; medians of 5
  interleaved repeats, range and median over nine runs at load average 2.1–4.3 on 2 cores):
  ``skew`` 0.78–0.83× (0.81) with RK4, 1.01–1.10× (1.05) with RK3; ``advective`` 1.26–1.37×
  (1.32) / 1.56–1.69× (1.66); ``conservative`` 1.20–1.32× (1.26) / 1.57–1.66× (1.59);
  ``momentum_flux`` 1.61–1.67× (1.63) / 1.99–2.09× (2.06) (RK3 takes three tendency
  evaluations per step instead of four: 1.25–1.3× per step). torch-cfd steps the unforced
  equation; ours also draws the phases' noise and evaluates the forcing (8 % and 9 % of a
  ``momentum_flux`` RK3 step).

So ``skew`` stays the default for accuracy and ``rk4`` for the stationary law (the shipped
classroom model was trained on RK4 data of the skew form, and a config with RK3 does not fit
it); ``time_stepper = "rk3"`` and the cheaper forms are there for speed: ``momentum_flux`` with
``rk3`` is the one at 2× torch-cfd. Each step is 1.8–2.3× its FFT floor. What the step does
beyond the FFTs, side by side with the previous step in one process (three runs:
``momentum_flux`` with RK3 1.69–1.75× → 2.03–2.12× torch-cfd, ``skew`` with RK4 0.71–0.73× →
0.80–0.82×): the forcing
of a step's last stage is carried into the next step's first (``state["forcing"]``,
:meth:`NavierStokesSystem._carried_terms`), so the trigonometric functions are evaluated at two sets
of phases per step, and as cos σ (cos δ, sin δ), three per forced coefficient instead of four
(:meth:`NavierStokesSystem.forcing_terms`); the full spectrum, the fold and the projection on real
fields (``Grid.hermitian_``, shared by every system) go through ``torch.gather`` / ``index_select``
on the flat spectrum with precomputed index maps; the inverse FFTs run unnormalised (the multipliers
carry 1/n²); a state whose edge columns are already exact conjugates is not projected again
(``Grid.real_field``); the phases lose whole turns through a floor instead of ``torch.remainder``;
the step runs in ``torch.inference_mode`` (0.96–0.97 of the time) and returns ordinary copies.
Measured and not used (interleaved, paper size): buffers kept between steps and filled through
``out=`` (torch's CPU FFTs and ``flip`` compute into a new array and copy, so the step was
1.1–1.25× slower); the full spectrum through ``index_select`` or advanced indexing (3× slower
than the flips; ``torch.gather`` with the index expanded over the members is not slower than
them); the 2-D FFT as a 1-D FFT along x then one along y (bit for bit the same and 0.72–0.79 of
the time on its own, but the step was 1.13–1.15× slower with it); the FFTs in a batch-last
layout (1.4× slower); NumPy's FFT (16× slower); the two real parts of w² through one
``rfft2`` of both (1.46 times a complex FFT, more than the complex FFT, its multiplier and the
fold together) and u, v through ``irfft2`` (1.2 times ``ifft2`` with the full spectrum and
its multiplier); the fold's multiplier applied to the two gathered halves, the full spectrum
written column block by column block with the multiplier (no measurable change) or gathered
from the two halves already multiplied (``skew`` 1.05× slower); conjugation
as a product with (1, −1) on real views (the step 1.15× slower) and Re(w·g) formed from real
views (``skew`` 1.02× slower); blocks of 64 members for ``momentum_flux`` (1.03–1.07× slower)
and one block of 128 for ``skew`` (1.06× faster with the allocator keeping freed memory, 1.16×
slower with glibc's default, which real runs use); ``torch.compile`` of the tendency
(inductor generates no code for complex arithmetic: 2.6× slower, 4.7 s to compile; rewritten
in real arithmetic on ``view_as_real`` arrays, the compiled ``momentum_flux`` tendency was
still 1.24× slower than this one, 16 s to compile).

**Transforms.** Two real fields a, b travel as one complex field a + ib through one complex FFT:
the velocity as w = u + iv, whose fft2 is (k_x + ik_y)ψ̂; the vorticity gradient as
g = ∂ₓζ − i∂_yζ, whose fft2 is (ik_x + k_y)ζ̂. Products are complex too: w·g has real part
(u·∇)ζ, w·ζ = uζ + ivζ, w² = (u² − v²) + 2iuv. For a complex field q = a + ib with fft2 Q the
term α(k)â + β(k)b̂, with α, β the multipliers of real operators, is Y(k) + conj Y(−k) with
Y = ½(α − iβ)Q. That last step makes the result the rfft2 of a real field exactly (mirrored
coefficients of the k_x = 0 and Nyquist columns are conjugate by construction). A single real
field goes through a real transform, which costs about 0.6–0.7 of a complex one of the same
grid: ζ on the grid (``irfft2`` of the state) and (u·∇)ζ = Re(w·g) (``rfft2``; only its real
part is needed). The inverse complex transforms run unnormalised (``norm="forward"``), their
1/n² carried by the multipliers (exact for n a power of 2), which saves a scaling pass. FFTs per
stage (n × n each, batched over members;
:meth:`NavierStokesSystem.transforms_per_stage`), complex + real: inverse, then forward — skew
2 + 1, 1 + 1; advective 2 + 0, 0 + 1; conservative 1 + 1, 1 + 0; momentum_flux 1 + 0, 1 + 0.

The forcing is the real part of the normalised inverse FFT of Ŝ, so in rfft2 coefficients it is
``½(Ŝ(k) + conj Ŝ(−k))``; the Nyquist row and column are excluded, the mean mode included. Ŝ is
in unnormalised coefficients, so the forcing on the grid has amplitude ∝ A_f/n² (the same
physics on another grid needs A_f ∝ n²). The phases are hidden variables: ζ alone is
non-Markovian and has no closed-form score.

Reference: C. Basdevant, "Technical improvements for direct numerical simulation of homogeneous
three-dimensional turbulence", J. Comput. Phys. 50, 209–214 (1983).
"""

from __future__ import annotations

import math

import torch

from gfdt_dash.systems.base import State, System, rk3_step, rk4_step
from gfdt_dash.systems.config import NavierStokesConfig

__all__ = ["NavierStokesSystem"]


def _as_complex(pairs: torch.Tensor) -> torch.Tensor:
    """The complex view of ``(…, 2m)`` contiguous (re, im) pairs, ``(…, m)``."""
    return torch.view_as_complex(pairs.view(*pairs.shape[:-1], -1, 2))


class NavierStokesSystem(System):
    """Batched simulator of the stochastically forced 2-D Navier–Stokes system.

    State: ``field_hat`` (rfft2 of ζ, ``(batch, n, n//2+1)``), ``phase`` (``(batch,
    n_forced)``: the phases of the forced modes of the full fft2 layout, ``forcing_mask``) and,
    when forced, optionally ``forcing`` (``(batch, 2·n_target + n_forced)``, n_target the
    number of forced rfft2 coefficients: the forcing's phase factors at those phases with a copy
    of the phases, carried from one step to the next and recomputed when absent or stale,
    :meth:`_carried_terms`). Noise per step: ``dW`` of shape ``(batch, 2, n_forced)``, one
    standard normal per half-step.

    The equation supplies ``linear_hat`` (the multiplier of the linear part, ``(n, n//2+1)``) and
    the explicit terms (:meth:`advection_hat`, :meth:`forcing_values`), which
    :meth:`tendency_hat` combines; :meth:`step` advances them with ``base.rk4_step`` or
    ``base.rk3_step``.
    """

    config: NavierStokesConfig

    def __init__(self, config, device="auto", dtype="float32") -> None:
        if not isinstance(config, NavierStokesConfig):
            raise TypeError(f"config: expected NavierStokesConfig, got {type(config)}")
        super().__init__(config, device, dtype)
        c, g = config, self.grid
        n, half = c.n, c.n // 2 + 1
        k2 = g.k2
        k4 = torch.where(g.is_mean, 1.0, k2**2)
        dissipation = -(c.nuh2 / k4) - c.nu2 * k2**2
        dissipation = torch.where(g.is_mean, -1.0, dissipation)  # −⟨ζ⟩ damps the mean at rate 1
        self.linear_hat = (dissipation - c.U0 * g.ikx).to(g.cdtype)
        self.inv_lap = torch.where(g.is_mean, 0.0, -1.0 / torch.where(g.is_mean, 1.0, k2))
        self.mask = g.dealias.to(g.cdtype) if c.dealias else None
        self._init_transforms(c.advection)
        # Forcing: only the M forced modes of the full fft2 layout carry phases. For each rfft2
        # coefficient that is forced, the positions of k and of −k in that list of M.
        fky, fkx = g.full_wavenumbers()
        nyq = (fky.abs() == n / 2) | (fkx.abs() == n / 2)
        full_mask = (fky**2 + fkx**2 <= c.kf**2) & ~nyq
        self.forcing_mask = full_mask.to(self.dtype)
        index = torch.full((n, n), -1, dtype=torch.long, device=self.device)
        index[full_mask] = torch.arange(int(full_mask.sum()), device=self.device)
        in_half = full_mask[:, :half]
        ky_idx, kx_idx = torch.nonzero(in_half, as_tuple=True)
        self.n_forced = int(full_mask.sum())
        self._target = ky_idx * half + kx_idx  # flat rfft2 positions of the forced modes
        self._pos = index[ky_idx, kx_idx]
        self._neg = index[(-ky_idx) % n, (-kx_idx) % n]
        self._pair = torch.cat([self._pos, self._neg])
        scale = torch.full((len(self._target),), 0.5 * c.forcing_amp, dtype=self.dtype)
        if full_mask[0, 0]:
            scale[self._target == 0] *= 1.0 - c.mean_forcing_removed
        # (re, im) pairs, times 2 for the ½ in forcing_terms (exact)
        self._forcing_scale2 = 2 * scale.to(self.device).repeat_interleave(2)
        self.phase_step = math.sqrt(2.0 * c.phase_diffusion * 0.5 * c.dt)
        # Index maps of the full spectrum and of the fold (see full_spectrum, real_part_hat).
        r, col = torch.arange(n, device=self.device)[:, None], torch.arange(n, device=self.device)
        left = col >= half  # column −m holds the conjugate of row (−r) mod n of column m
        rows = torch.where(left, (-r) % n, r)
        self._full_index = (rows * half + torch.where(left, n - col, col)).flatten()
        self._mirror_index = (((-r) % n) * n + (-col[:half]) % n).flatten()

    def _init_transforms(self, form: str) -> None:
        """Multipliers of the packed transforms of ``form`` (see the module docstring).

        ``_to_phys_mult`` ``(F, n, n)``: full-layout multipliers of ζ̂ giving the F complex
        fields on the grid (w first), divided by n² (see :meth:`to_grid`); ``_zeta_on_grid``:
        ζ itself is needed on the grid (one ``irfft2``); ``_from_phys_mult`` ``(P, n, n)``: the
        ½(α − iβ) of the P complex products q = a + ib, for the sum −N̂ = Σ α â + β b̂
        (dealiasing mask, even in k, included);
        ``_advective_mult`` (``None`` or ``(n, n//2+1)``): the α of the real product
        (u·∇)ζ = Re(w·g), transformed with one ``rfft2``.
        """
        g, n = self.grid, self.grid.n
        fky, fkx = g.full_wavenumbers()
        kx = torch.where(fkx.abs() == n / 2, 0.0, fkx)  # derivatives drop the Nyquist mode
        ky = torch.where(fky.abs() == n / 2, 0.0, fky)
        k2 = fkx**2 + fky**2
        inv_lap = torch.where(k2 == 0, 0.0, -1.0 / torch.where(k2 == 0, 1.0, k2))
        velocity = torch.complex(kx, ky) * inv_lap  # w = u + iv
        gradient = torch.complex(ky, kx)  # g = ∂ₓζ − i∂_yζ
        # ½(α − iβ) of q = w·ζ = uζ + ivζ (α = −ik_x, β = −ik_y: minus the divergence); the
        # advective product (u·∇)ζ enters with α = −1.
        flux = -0.5 * torch.complex(ky, kx)
        advective = None
        if form == "skew":
            to_phys, zeta, from_phys, advective = [velocity, gradient], True, [0.5 * flux], -0.5
        elif form == "advective":
            to_phys, zeta, from_phys, advective = [velocity, gradient], False, [], -1.0
        elif form == "conservative":
            to_phys, zeta, from_phys = [velocity], True, [flux]
        elif form == "momentum_flux":
            # q = w² = (u² − v²) + i·2uv; −N = (∂ₓ² − ∂_y²)(uv) − ∂ₓ∂_y(u² − v²):
            # α = k_x k_y, β = ½(k_y² − k_x²).
            to_phys, zeta = [velocity], False
            from_phys = [0.5 * torch.complex(kx * ky, -0.5 * (ky**2 - kx**2))]
        else:
            raise ValueError(f"advection: unknown form {form!r}")
        from_phys = torch.stack(from_phys) if from_phys else velocity[None][:0]
        if self.config.dealias:
            from_phys = from_phys * ((fkx.abs() <= n / 3) & (fky.abs() <= n / 3))
        if advective is not None:
            advective = advective * (g.dealias if self.config.dealias else torch.ones_like(g.k2))
        self._form = form
        # divided by n² here, so the inverse transforms skip their scaling pass (to_grid)
        self._to_phys_mult = (torch.stack(to_phys) / n**2).to(g.cdtype)
        self._zeta_on_grid = zeta
        self._from_phys_mult = from_phys.to(g.cdtype)
        self._advective_mult = advective

    def transforms_per_stage(self) -> dict[str, int]:
        """The n × n FFTs one evaluation of the advection does, by kind."""
        return {
            "complex inverse": self._to_phys_mult.shape[0],
            "real inverse": int(self._zeta_on_grid),
            "complex forward": self._from_phys_mult.shape[0],
            "real forward": int(self._advective_mult is not None),
        }

    # -- spectral layout -----------------------------------------------------------------------
    def full_spectrum(self, field_hat: torch.Tensor) -> torch.Tensor:
        """fft2 layout ``(batch, n, n)`` of the real field whose rfft2 is ``field_hat``.

        Columns k_x < 0 hold ẑ(k) = conj ẑ(−k): row r of column −m is the conjugate of row
        (−r) mod n of column m. One gather through a precomputed index map, then the conjugation
        of those columns in place.
        """
        n, half = self.grid.n, self.grid.n // 2 + 1
        flat = field_hat.reshape(field_hat.shape[0], n * half)
        index = self._full_index.expand(flat.shape[0], -1)
        full = torch.gather(flat, 1, index).view(-1, n, n)
        full[..., half:].conj_physical_()
        return full

    def to_grid(self, field_hat: torch.Tensor, mult: torch.Tensor) -> torch.Tensor:
        """Complex grid fields ``n²·ifft2(mult · ẑ)`` ``(batch, F, n, n)`` (the unnormalised
        inverse transform) for full-layout multipliers ``mult`` ``(F, n, n)`` and the rfft2
        ``field_hat`` of a real field. ``_to_phys_mult`` holds the multipliers over n², so this
        gives the fields themselves without the inverse transform's scaling pass (0.9 of its
        time at n = 32; for n a power of 2 the division is exact and the result bit for bit that
        of ``ifft2``)."""
        full = self.full_spectrum(field_hat)
        if mult.shape[0] == 1:  # one field: multiplied in place
            return torch.fft.ifft2(full.mul_(mult[0])[:, None], norm="forward")
        return torch.fft.ifft2(mult * full[:, None], norm="forward")

    def real_part_hat(self, q_hat: torch.Tensor) -> torch.Tensor:
        """rfft2 of ``2 Re q`` ``(batch, n, n//2+1)`` from the fft2 ``q_hat`` ``(batch, n, n)``.

        ``Q(k) + conj Q(−k)`` on the rfft2 half, Q(−k) gathered through a precomputed index map
        (row (−r) mod n, column (−c) mod n). Mirrored coefficients of the k_x = 0 and Nyquist
        columns come out exactly conjugate (the same two numbers added in either order).
        """
        n, half = self.grid.n, self.grid.n // 2 + 1
        flat = q_hat.reshape(q_hat.shape[0], n * n)
        mirror = torch.gather(flat, 1, self._mirror_index.expand(flat.shape[0], -1))
        return mirror.view(-1, n, half).conj_physical_().add_(q_hat[..., :half])

    # -- forcing -------------------------------------------------------------------------------
    def forcing_terms(self, phase: torch.Tensor) -> torch.Tensor:
        """The forcing's phase factors at the forced rfft2 positions ``_target``, unscaled:
        ``(…, 2·n_target)`` real, ½(cos φ_k + cos φ_{−k}, sin φ_k − sin φ_{−k}) for each target
        k in turn, from ``phase`` ``(…, n_forced)``. They depend on the phases only (not on the
        amplitude or c_S), so a state can carry them (see :meth:`_step`).

        Evaluated as cos σ (cos δ, sin δ) with σ = (φ_k + φ_{−k})/2, δ = (φ_k − φ_{−k})/2: three
        trigonometric functions per target instead of four. The pairs of the k_x = 0 column
        stay exact conjugates (σ is the same number for k and −k, δ changes sign exactly)."""
        n_target = len(self._target)
        rows = phase.reshape(-1, phase.shape[-1])
        pair = torch.gather(rows, 1, self._pair.expand(rows.shape[0], -1)).mul_(0.5)  # exact
        first, second = pair[:, :n_target], pair[:, n_target:]  # φ_k/2, φ_{−k}/2
        cos_sum = torch.cos(torch.add(first, second))
        diff = torch.sub(first, second)
        out = phase.new_empty(rows.shape[0], n_target, 2)
        torch.mul(cos_sum, torch.cos(diff), out=out[..., 0])
        torch.mul(cos_sum, torch.sin(diff), out=out[..., 1])
        return out.view(*phase.shape[:-1], 2 * n_target)

    def forcing_values(self, phase: torch.Tensor) -> torch.Tensor:
        """``S_φ − c_S⟨S_φ⟩`` at the forced rfft2 positions ``_target``, ``(…, n_target)``
        complex. ``phase`` ``(…, n_forced)``; the value at k is ½A_f(e^{iφ_k} + e^{−iφ_{−k}})."""
        return _as_complex(self.forcing_terms(phase).mul_(self._forcing_scale2))

    def forcing_hat(self, phase: torch.Tensor) -> torch.Tensor:
        """rfft2 coefficients of ``S_φ − c_S⟨S_φ⟩`` for phases ``(…, n_forced)``."""
        g = self.grid
        lead = phase.shape[:-1]
        out = torch.zeros(*lead, g.n * (g.n // 2 + 1), dtype=g.cdtype, device=self.device)
        out[..., self._target] = self.forcing_values(phase)
        return out.view(*lead, g.n, g.n // 2 + 1)

    # -- dynamics ------------------------------------------------------------------------------
    def advection_hat(self, zeta_hat: torch.Tensor) -> torch.Tensor:
        """rfft2 of the advection N(ζ) ``(batch, n, n//2+1)`` in the configured form.

        The background flow U₀ is excluded (it is in ``linear_hat``).
        """
        return -self._minus_advection_hat(zeta_hat)

    def _minus_advection_hat(self, zeta_hat: torch.Tensor) -> torch.Tensor:
        fields = self.to_grid(zeta_hat, self._to_phys_mult)
        w = fields[:, 0]
        out = None
        mult = self._from_phys_mult
        if mult.shape[0]:  # one complex product: w·ζ or w²
            other = self.grid.to_physical(zeta_hat) if self._zeta_on_grid else w
            # in place unless the advective product or autograd still needs w
            keep = self._advective_mult is not None or w.requires_grad
            q = w * other if keep else w.mul_(other)
            out = self.real_part_hat(torch.fft.fft2(q).mul_(mult[0]))
        if self._advective_mult is not None:  # (u·∇)ζ = Re(w·g), one real transform
            product = (w * fields[:, 1]).real.contiguous()  # a contiguous rfft2 input is faster
            advective = self.grid.to_spectral(product).mul_(self._advective_mult)
            out = advective if out is None else out.add_(advective)
        return out

    def tendency_hat(self, zeta_hat: torch.Tensor, forcing: torch.Tensor | None) -> torch.Tensor:
        """∂ₜζ̂ = linear_hat·ζ̂ − N̂(ζ) + forcing; ``forcing`` from :meth:`forcing_values`."""
        out = self._minus_advection_hat(zeta_hat).addcmul_(self.linear_hat, zeta_hat)
        if forcing is not None:
            out.view(out.shape[0], -1).index_add_(1, self._target, forcing)
        return out

    def draw_noise(self, batch: int, generator: torch.Generator) -> State:
        dw = torch.randn(
            batch, 2, self.n_forced, generator=generator, device=self.device, dtype=self.dtype
        )
        return {"dW": dw}

    #: Members stepped together: the tendency's grid fields of a block of members should fit
    #: in a core's caches. Measured at n = 32 (skew form, one thread, 1 MiB L2): 83 µs per
    #: member-step in blocks of 64 members (2.6 MB of complex grid fields), 128 µs in one block
    #: of 128; the members are independent, so blocking changes nothing else.
    block_bytes: int = 2_600_000

    def step(self, state: State, noise: State) -> State:
        """One step (RK4 or RK3, ``time_stepper``) of every member, in blocks of members
        (:attr:`block_bytes`) of equal size.

        Unless an input requires gradients, the step runs in ``torch.inference_mode`` (no
        autograd bookkeeping on its hundred-odd operator calls: 0.96–0.97 of the time at the
        paper size) and returns copies made outside it, ordinary tensors that later code may update
        in place or use in autograd."""
        tensors = (*state.values(), *noise.values())
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return self._step_blocks(state, noise)
        with torch.inference_mode():
            new = self._step_blocks(state, noise)
        return {k: v.clone() for k, v in new.items()}

    def _step_blocks(self, state: State, noise: State) -> State:
        batch = state["field_hat"].shape[0]
        n_fields = sum(self.transforms_per_stage().values())
        per_member = n_fields * self.grid.n**2 * state["field_hat"].element_size()
        block = max(1, self.block_bytes // per_member)
        if batch <= block:
            return self._step(state, noise)
        block = -(-batch // -(-batch // block))  # blocks of equal size (the last one ≤)
        parts = [
            self._step(
                {k: v[i : i + block] for k, v in state.items()},
                {k: v[i : i + block] for k, v in noise.items()},
            )
            for i in range(0, batch, block)
        ]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def _carried_terms(self, state: State) -> torch.Tensor | None:
        """The phase factors (:meth:`forcing_terms`) at ``state["phase"]`` carried in
        ``state["forcing"]``, or ``None`` when it is absent or was evaluated at other phases.

        ``state["forcing"]`` ``(batch, 2·n_target + n_forced)``: the factors, then a copy of the
        phases they were evaluated at. A state whose phases were changed (in place or replaced)
        without that key being dropped or updated is caught by the exact comparison, and the
        factors are recomputed; they do not depend on the amplitude or c_S, so a state carried
        into a system with other forcing parameters (same grid, same forced modes) stays valid.
        """
        carried, phase = state.get("forcing"), state["phase"]
        width = 2 * len(self._target)
        if (
            carried is None
            or carried.shape != (phase.shape[0], width + phase.shape[-1])
            or carried.dtype != phase.dtype
            or carried.device != phase.device
            or not torch.equal(carried[:, width:], phase)
        ):
            return None
        return carried[:, :width]

    def _step(self, state: State, noise: State) -> State:
        """One RK4 or RK3 step; both evaluate the forcing at t, t + dt/2 and t + dt. The state
        is projected on real fields first (a state made elsewhere may carry a non-Hermitian
        part, which the step must not evolve). In the conservative and momentum-flux forms the
        result is then exactly the rfft2 of a real field with no second projection: every
        stage's tendency is (``real_part_hat``, the forcing's conjugate pairs, a linear
        multiplier that is real on the k_x = 0 and Nyquist columns and even in k_y), and so
        are the schemes' combinations of them with real weights. The skew and advective forms
        take (u·∇)ζ through an ``rfft2``, whose edge columns are Hermitian only to round-off,
        so their result is projected once more.

        The phases at t + dt are reduced by whole turns (to [0, 2π]) before the forcing is
        evaluated there, so the forcing of the last stage is that of the next step's first
        stage: the new state carries its phase factors (``"forcing"``, see
        :meth:`_carried_terms`) and the next step evaluates the trigonometric functions at two
        sets of phases instead of three. A state without them (made elsewhere, or with changed
        phases) gets them recomputed, with bit-identical results."""
        phase0 = state["phase"]
        forced = bool(self.config.forcing_amp)
        start = self._carried_terms(state) if forced else None
        # phases at t, t + dt/2, t + dt, stage-major so each stage's forcing is contiguous
        phases = phase0.new_empty(3, *phase0.shape)
        torch.add(phase0, noise["dW"][:, 0], alpha=self.phase_step, out=phases[1])
        torch.add(phases[1], noise["dW"][:, 1], alpha=self.phase_step, out=phases[2])
        # whole turns removed, φ − 2π⌊φ/2π⌋ (exact but for the last rounding when a turn is
        # added; cheaper than torch.remainder's fmod)
        turns = torch.div(phases[2], 2 * math.pi).floor_()
        phases[2].add_(turns, alpha=-2 * math.pi)
        end_phase = phases[2].clone()
        rk3 = self.config.time_stepper == "rk3"
        new = {"phase": end_phase}
        if forced:
            if start is None:
                phases[0] = phase0
            terms = self.forcing_terms(phases if start is None else phases[1:])
            new["forcing"] = torch.cat([terms[-1], end_phase], 1)
            f = _as_complex(terms.mul_(self._forcing_scale2))
            f0 = f[0] if start is None else _as_complex(start * self._forcing_scale2)
            forcing = (f0, f[-2], f[-1]) if rk3 else (f0, f[-2], f[-2], f[-1])
        else:
            forcing = (None,) * 4

        def tendency(z: torch.Tensor, stage: int) -> torch.Tensor:
            return self.tendency_hat(z, forcing[stage])

        scheme = rk3_step if rk3 else rk4_step
        zeta_hat = scheme(tendency, self.grid.real_field(state["field_hat"]), self.dt)
        if self._advective_mult is not None:
            self.grid.hermitian_(zeta_hat)
        return {"field_hat": zeta_hat, **new}

    def initial_state(self, batch: int, generator: torch.Generator) -> State:
        """ζ₀ = sin 3x sin 3y (as in the original study) and uniform random phases."""
        g = self.grid
        x = torch.as_tensor(g.coords, device=self.device, dtype=self.dtype)
        zeta0 = torch.sin(3 * x)[:, None] * torch.sin(3 * x)[None, :]
        zeta_hat = self.grid.hermitian(g.to_spectral(zeta0.expand(batch, g.n, g.n)))
        if self.mask is not None:
            zeta_hat = self.mask * zeta_hat
        phase = (
            2
            * math.pi
            * torch.rand(
                batch, self.n_forced, generator=generator, device=self.device, dtype=self.dtype
            )
        )
        state = {"field_hat": zeta_hat, "phase": phase}
        if self.config.forcing_amp:
            state["forcing"] = torch.cat([self.forcing_terms(phase), phase], 1)
        return state

    def kick(self, state: State, delta: float, pixel: tuple[int, int] = (0, 0)) -> State:
        """Pixel kick; with dealiasing on, projected on the resolved modes."""
        kicked = super().kick(state, delta, pixel)
        field_hat = self.grid.hermitian(kicked["field_hat"])
        kicked["field_hat"] = field_hat if self.mask is None else self.mask * field_hat
        return kicked
