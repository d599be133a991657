"""Integration in the covariance c of the functions that Price's theorem produces.

With D(c) = A − B c² (A, B > 0 independent of c) the dual kernels of the
ReLU family, of erf and of GELU lie in the class

    F(c) = P(c) + Σ_n P_n(c) D^{−n−1/2} + R(c)·U(c),   U(c) = asin(c √(B/A)),

with polynomials P, P_n, R in c.  The class is closed under c ↦ ∫_0^c, which
:meth:`CForm.integrate` computes exactly by an ansatz rather than by
``sympy.integrate`` (which needs ~14 s and returns a Piecewise of Max/Min for
∫(3c² + A)(A − c²)^{−5/2} dc):

    ∫ P D^{−n−1/2} dc = Q(c) D^{−n+1/2} + κ U(c),
    i.e.  P = Q' D − (1 − 2n) B c Q + κ √B Dⁿ   (a linear system for Q, κ),
    ∫ R U dc = R̃ U − √B ∫ R̃ D^{−1/2} dc,      R̃ = ∫_0^c R.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


@dataclass
class CForm:
    c: sp.Symbol
    A: sp.Expr
    B: sp.Expr
    poly: sp.Expr = sp.Integer(0)
    alg: dict[int, sp.Expr] = field(default_factory=dict)
    asin: sp.Expr = sp.Integer(0)

    @property
    def D(self) -> sp.Expr:
        return self.A - self.B * self.c**2

    @property
    def U(self) -> sp.Expr:
        return sp.asin(self.c * sp.sqrt(self.B) / sp.sqrt(self.A))

    def copy(self, **kw) -> "CForm":
        base = dict(c=self.c, A=self.A, B=self.B, poly=self.poly, alg=dict(self.alg), asin=self.asin)
        base.update(kw)
        return CForm(**base)

    def add_alg(self, n: int, p: sp.Expr) -> None:
        """Add p(c)·D^{−n−1/2}; non-negative half powers are folded into n = 0."""
        while n < 0:
            p, n = sp.expand(p * self.D), n + 1
        self.alg[n] = sp.expand(self.alg.get(n, 0) + p)

    def plus_constant(self, k: sp.Expr) -> "CForm":
        return self.copy(poly=sp.expand(self.poly + k))

    def integrate(self) -> "CForm":
        """∫_0^c F(c') dc' in the same class."""
        c = self.c
        out = self.copy(poly=sp.integrate(sp.expand(self.poly), (c, 0, c)), alg={}, asin=sp.Integer(0))
        kappa_total = sp.Integer(0)
        for n, p in self.alg.items():
            q, kappa = self._integrate_alg(n, p)
            out.add_alg(n - 1, q)
            kappa_total += kappa
        if self.asin != 0:
            r_int = sp.integrate(sp.expand(self.asin), (c, 0, c))
            out.asin = sp.expand(r_int)
            q, kappa = self._integrate_alg(0, sp.expand(-sp.sqrt(self.B) * r_int))
            out.add_alg(-1, q)
            kappa_total += kappa
        out.asin = sp.expand(out.asin + kappa_total)
        # the antiderivative must vanish at c = 0 (U(0) = 0, so only algebraic parts matter)
        at0 = out.value_at_zero()
        return out.copy(poly=sp.expand(out.poly - at0))

    def _integrate_alg(self, n: int, p: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        c = self.c
        deg = sp.Poly(p, c).degree() if p.has(c) else 0
        m = deg + 2 * n + 2
        qs = sp.symbols(f"_q0:{m}")
        kappa = sp.Symbol("_kappa")
        Q = sum(qi * c**i for i, qi in enumerate(qs))
        residual = sp.expand(p - (sp.diff(Q, c) * self.D - (1 - 2 * n) * self.B * c * Q
                                  + kappa * sp.sqrt(self.B) * self.D**n))
        eqs = sp.Poly(residual, c).all_coeffs()
        sol = sp.solve(eqs, [*qs, kappa], dict=True)
        if not sol:
            raise ValueError("ansatz integration failed")
        sol = sol[0]
        qsol = sp.expand(Q.xreplace({s: sol.get(s, 0) for s in qs}))
        return qsol, sol.get(kappa, sp.Integer(0))

    def value_at_zero(self) -> sp.Expr:
        c = self.c
        total = self.poly.subs(c, 0)
        for n, p in self.alg.items():
            total += p.subs(c, 0) * self.A**(-n - sp.Rational(1, 2))
        return sp.expand(total)

    def to_expr(self) -> sp.Expr:
        """The expression, with factors of D cancelled so that D = 0 (c = ±√(A/B)) stays finite."""
        e = self.poly + self.asin * self.U
        d_poly = sp.Poly(self.D, self.c)
        for n, p in self.alg.items():
            power = -n - sp.Rational(1, 2)
            if p != 0 and p.has(self.c):
                quotient = sp.Poly(p, self.c)
                while quotient.degree() >= d_poly.degree():
                    q, r = sp.div(quotient, d_poly)
                    if not r.is_zero:
                        break
                    quotient, power = q, power + 1
                p = quotient.as_expr()
            e += p * self.D**power
        return e
