"""The Hermite-series (Mehler) representation of the dual kernels at unit variance.

For standard Gaussians with correlation ρ, E[φ(U)φ(V)] = Σ_k μ_k² ρ^k and
E[φ'(U)φ'(V)] = Σ_k (k+1) μ_{k+1}² ρ^k.  Truncating after K terms leaves a
tail bounded, for |ρ| ≤ 1, by

    |Σ_{k≥K} μ_k² ρ^k| ≤ |ρ|^K · (E[φ(Z)²] − Σ_{k<K} μ_k²),

because the μ_k² are non-negative and sum to E[φ²] (Parseval).  This is the
representation used where no closed form exists and the inputs are on the
sphere (q₁ = q₂ = 1); E[φ²] comes from mpmath quadrature.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

RHO = sp.Symbol("rho", real=True)


@dataclass(frozen=True)
class MehlerSeries:
    """Σ̂(ρ) ≈ Σ_{k<K} μ_k² ρ^k with its rigorous tail bound."""
    coefficients: tuple[mpmath.mpf, ...]   # μ_k², k < K
    second_moment: mpmath.mpf              # E[φ(Z)²]

    @property
    def tail_mass(self) -> mpmath.mpf:
        return max(self.second_moment - mpmath.fsum(self.coefficients), mpmath.mpf(0))

    def value(self, rho) -> mpmath.mpf:
        return mpmath.polyval(list(reversed(self.coefficients)), rho)

    def tail_bound(self, rho) -> mpmath.mpf:
        return abs(mpmath.mpf(rho)) ** len(self.coefficients) * self.tail_mass

    def expr(self) -> sp.Expr:
        return sum(sp.Float(str(c), 20) * RHO**k for k, c in enumerate(self.coefficients))


def mehler_series(act, order: int, digits: int = 20) -> MehlerSeries:
    """The truncated Mehler series of E[φ(U)φ(V)] from the first ``order`` μ_k."""
    from ..derivation import hermite
    mus = hermite(act, order, digits).values()
    fn = act.mpmath_fn()
    with mpmath.workdps(digits + 10):
        pts = sorted({0.0, *act.breakpoints})
        m2 = mpmath.quad(lambda t: fn(t) ** 2 * mpmath.npdf(t), [-mpmath.inf, *pts, mpmath.inf])
    return MehlerSeries(tuple(m * m for m in mus), m2)
