"""Time integrators, apart from the equations they advance (grid → equation → stepper → driver).

An *equation* on the ``rfft2`` coefficients of a real field splits its drift as

    dθ̂ = [L̂ θ̂ + N(θ̂)] dt + dξ̂,     L̂ = Ĝ + Â,

with ``L̂`` a diagonal linear multiplier (``linear_hat``), ``Â`` its skew, measure-preserving part
(``skew_hat``, purely imaginary: advection ``−iUk_x``), ``Ĝ = L̂ − Â`` the rest (relaxation and the
linear part of the reaction), ``N`` the explicit, nonlinear part (``explicit_hat``; not called
when ``is_linear``) and ``dξ̂`` the additive noise of one step,
``noise_hat(noise) = noise_amp_hat · noise["white_hat"]`` (covariance ``dt·N²Σ`` in physical
space). The equation also provides ``dt`` and ``grid``. A stepper is built for one equation
(operators precomputed once, the multipliers of each step folded into as few products as
possible) and maps ``(state, noise) → state``; ``state["field_hat"]`` is always the rfft2 of a
real field.

**Hermitian projection.** A nonlinear step is projected on real fields (``Grid.hermitian_``)
after every step: the FFT round trip of the explicit part leaves round-off in the k_x = 0 and
Nyquist columns that nothing else removes. A linear step is not: all its multipliers are real on
those two columns (the advection ``−iUk_x`` vanishes there, the Nyquist k_x being dropped) and
even in k_y, so products and sums of exactly Hermitian inputs (the state, the carried and the
new noise) are exactly Hermitian — IEEE arithmetic is symmetric under the sign flips that
conjugation makes. A state that enters with a non-Hermitian part (one not made by this package)
keeps it only as a component that every step multiplies by the stable linear factor, and that
``irfft2`` never sees.

Integrators (config field ``integrator``):

- ``"lm"`` — the Leimkuhler–Matthews non-Markovian scheme (Leimkuhler & Matthews, Appl. Math.
  Res. Express 2013; J. Chem. Phys. 138, 174102), preconditioned by the noise covariance, with
  the advection applied exactly as a phase rotation in a Strang splitting:

      θ̂* = e^{Âdt/2} θ̂ₙ,  ξ̂* = e^{Âdt/2} ξ̂ₙ,
      θ̂ₙ₊₁ = e^{Âdt/2} [θ̂* + dt(Ĝθ̂* + N(θ̂*)) + (ξ̂* + ξ̂ₙ₊₁)/2],   ξ̂ₙ₊₁ ← e^{Âdt/2} ξ̂ₙ₊₁,

  one explicit drift evaluation per step. For the overdamped Langevin equation
  ``dθ = M∇log p dt + √(2M) dW`` its invariant law of θ is accurate to O(dt²) and *exact* for a
  Gaussian p (linear drift) whenever ``dt·rate < 2``; the rotation, applied to θ and to the
  carried noise alike, keeps that exactness for advected OU fields. The state carries the last
  noise increment as ``state["noise_prev"]`` (shared by the two copies of a paired run). It is
  first order for the transient dynamics, and since θₙ holds half of the increment that drives
  the next step, GFDT with the marginal score of θ differs from the chain's own response by
  O(rate·dt/2) per mode at lags ≥ 1.
- ``"rk4"`` — classical RK4 on the whole drift plus the additive noise increment of the step:
  the original study's scheme. Fourth order for the deterministic dynamics, but its stationary
  law is biased at O(dt) (by dt·rate per mode for OU).

Stability limits on ``|dt·rate|`` (negative real axis, imaginary axis) live in
:data:`gfdt_dash.systems.config.INTEGRATORS`, where the configs' dt check reads them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from gfdt_dash.systems.base import State, rk4_step
from gfdt_dash.systems.config import INTEGRATORS

__all__ = ["RK4", "STEPPERS", "LeimkuhlerMatthews", "Stepper", "make_stepper", "rk4_amplification"]


def rk4_amplification(z: torch.Tensor) -> torch.Tensor:
    """Stability polynomial of classical RK4, ``1 + z + z²/2 + z³/6 + z⁴/24``: one step
    multiplies ``e^{z}`` by this. Evaluated by Horner's rule with products only (a complex
    power goes through exp/log and leaves round-off in the imaginary part of a real ``z``, which
    would break the exact Hermitian symmetry of the linear step)."""
    return 1 + z * (1 + z / 2 * (1 + z / 3 * (1 + z / 4)))


class Stepper(ABC):
    """Advances one equation by ``dt``; ``carries_noise``: the state holds ``"noise_prev"``."""

    name: ClassVar[str]
    carries_noise: ClassVar[bool] = False

    def __init__(self, equation: Any) -> None:
        self.eq = equation
        self.dt = float(equation.dt)
        self.real_limit, self.imag_limit = INTEGRATORS[self.name]

    @abstractmethod
    def step(self, state: State, noise: State) -> State:
        """The state one step ``dt`` later, driven by the noise draw ``noise``."""

    @abstractmethod
    def linear_factor(self) -> torch.Tensor:
        """Per-mode amplification of one noise-free step of the linear equation (``N = 0``)."""

    @abstractmethod
    def ou_stationary_variance(self) -> torch.Tensor:
        """Per-mode stationary variance ``E|θ̂|²/N²`` of θ for the linear equation (``N = 0``)."""


class RK4(Stepper):
    """Classical RK4 on ``L̂θ̂ + N(θ̂)`` plus the step's additive noise (the original scheme)."""

    name = "rk4"

    def __init__(self, equation: Any) -> None:
        super().__init__(equation)
        self.factor = rk4_amplification(self.dt * equation.linear_hat)
        self._noise_amp = equation.noise_amp_hat

    def step(self, state: State, noise: State) -> State:
        eq = self.eq
        theta_hat = state["field_hat"]
        if eq.is_linear:  # RK4 of a linear drift is multiplication by its stability polynomial
            out = torch.mul(theta_hat, self.factor)
            return {"field_hat": out.addcmul_(noise["white_hat"], self._noise_amp)}
        out = rk4_step(eq.drift_hat, theta_hat, self.dt)
        out.addcmul_(noise["white_hat"], self._noise_amp)
        return {"field_hat": eq.grid.hermitian_(out)}

    def linear_factor(self) -> torch.Tensor:
        return self.factor

    def ou_stationary_variance(self) -> torch.Tensor:
        """``θ̂ → Pθ̂ + ξ̂``: ``dt·N²Σ̂/(1 − |P|²)`` with ``P`` the RK4 polynomial of ``dt·L̂``."""
        return self.dt * self.eq.grid.n**2 * self.eq.sigma_hat / (1.0 - self.factor.abs() ** 2)


class LeimkuhlerMatthews(Stepper):
    """Preconditioned Leimkuhler–Matthews step with exact (Strang-split) advection."""

    name = "lm"
    carries_noise = True

    def __init__(self, equation: Any) -> None:
        super().__init__(equation)
        gradient_hat = equation.linear_hat - equation.skew_hat
        self.euler_factor = 1.0 + self.dt * gradient_hat
        self.half_rotation = rot = torch.exp(0.5 * self.dt * equation.skew_hat)
        # The step multiplied out: θ' = (h²E)θ + ½h²ξₙ + ½h ξₙ₊₁ + h·dt·N(hθ), h = e^{Âdt/2},
        # with ξₙ₊₁ = aŵ (a = noise_amp_hat) and the carried ξₙ₊₁ ← hξₙ₊₁ = (ha)ŵ.
        amp = equation.noise_amp_hat
        self._theta_factor = rot**2 * self.euler_factor
        self._prev_factor = 0.5 * rot**2
        self._white_factor = 0.5 * rot * amp
        self._carry_factor = rot * amp
        self._explicit_factor = self.dt * rot

    def step(self, state: State, noise: State) -> State:
        """One step; a state without ``"noise_prev"`` (a start field made elsewhere, e.g. by RK4)
        starts with no carried noise: its field is taken as the part independent of it.

        Five fused products for a linear equation (no projection needed, see the module
        docstring); a nonlinear one adds the explicit part and the projection."""
        eq, theta_hat, white = self.eq, state["field_hat"], noise["white_hat"]
        out = torch.mul(theta_hat, self._theta_factor).addcmul_(white, self._white_factor)
        prev = state.get("noise_prev")
        if prev is not None:
            out.addcmul_(prev, self._prev_factor)
        if not eq.is_linear:
            explicit = eq.explicit_hat(self.half_rotation * theta_hat)
            eq.grid.hermitian_(out.addcmul_(explicit, self._explicit_factor))
        return {"field_hat": out, "noise_prev": torch.mul(white, self._carry_factor)}

    def linear_factor(self) -> torch.Tensor:
        return self._theta_factor

    def ou_stationary_variance(self) -> torch.Tensor:
        """Exactly the SDE's ``N²Σ̂/(2r)``, ``r = −Ĝ = κ|k|² + γδ_k0`` (for ``r·dt < 2``).

        Per mode θₙ = Zₙ + ξₙ/2 with Zₙ independent of the carried increment ξₙ (variance
        ``q = dt N²Σ̂``) and ``Zₙ₊₁ = (1 − r dt)Zₙ + (1 − r dt/2)ξₙ``, so
        ``Var Z = q(2 − r dt)/(4 r dt)`` and ``Var θ = Var Z + q/4 = q/(2 r dt)``. The rotation
        acts on θ and on the carried ξ alike, so in the co-moving frame the chain is unchanged.
        """
        rate = -(self.eq.linear_hat - self.eq.skew_hat).real
        return self.eq.grid.n**2 * self.eq.sigma_hat / (2.0 * rate)


STEPPERS: dict[str, type[Stepper]] = {s.name: s for s in (LeimkuhlerMatthews, RK4)}


def make_stepper(name: str, equation: Any) -> Stepper:
    """The stepper ``name`` (a key of :data:`STEPPERS`) built for ``equation``."""
    try:
        cls = STEPPERS[name]
    except KeyError:
        raise ValueError(
            f"integrator: unknown integrator {name!r}; allowed: {', '.join(STEPPERS)}"
        ) from None
    return cls(equation)
