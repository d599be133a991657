"""Dual kernels Σ̂(q₁,q₂,c) = E[φ(u)φ(v)] and Σ̇(q₁,q₂,c) = E[φ'(u)φ'(v)],
(u, v) ~ N(0, [[q₁, c], [c, q₂]]).

Rules, tried in order (each result records its route):

1. ``exp-poly``: φ is exp-polynomial on the whole line (polynomials, exp, sin,
   cos, Gaussian, ...): the bivariate tilted-Gaussian formula of
   :mod:`ntksym.gaussian.moments`, no integration at all.
2. ``price``: Price's theorem, ∂ⁿ/∂cⁿ E[φ(u)φ(v)] = E[φ⁽ⁿ⁾(u)φ⁽ⁿ⁾(v)]
   (distributional derivatives).  Find the least n at which the right side
   is elementary — φ⁽ⁿ⁾ = J·δ(x) (ReLU family: n = 2; step, sign: n = 1) gives
   J²/(2π√(q₁q₂ − c²)); φ⁽ⁿ⁾ a single Gaussian tilt p(x)e^{bx²} (erf: n = 1,
   GELU: n = 2) gives the tilted formula — then integrate n times in c
   (:mod:`ntksym.gaussian.cform`) from K_j(0) = E[φ⁽ʲ⁾(u)]·E[φ⁽ʲ⁾(v)], which are
   Hermite coefficients of φ(√q ·) (:mod:`ntksym.gaussian.hermite`).
3. otherwise no closed form: numeric evaluation by 2-D Gauss–Hermite
   quadrature (:func:`gauss_hermite_dual`), labelled as such, and, at unit
   variances, the Hermite series Σ μ_k² ρ^k with a rigorous tail bound.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..bounded import time_limit
from ..errors import ActivationError, DerivationTimeout
from .cform import CForm
from .expclass import as_exp_poly
from .hermite import NoClosedForm, exact_coefficients, tidy
from .integrability import Refused, ae_derivative, analyse
from .moments import bivariate_expectation
from .pieces import NotPiecewiseSmooth, split

Q1, Q2 = sp.symbols("q1 q2", positive=True)
C = sp.Symbol("c", real=True)
MAX_PRICE_ORDER = 4
SECONDS = 20.0


@dataclass(frozen=True)
class DualKernels:
    """Closed forms (or None) of Σ̂ and Σ̇ in the symbols q1, q2, c, with routes."""
    khat: sp.Expr | None
    kdot: sp.Expr | None
    route_hat: str
    route_dot: str
    kdot_distributional: bool = False

    def diagonal(self, which: str = "khat") -> sp.Expr | None:
        """The kernel at u = v (q1 = q2 = c = q), simplified."""
        e = getattr(self, which)
        if e is None:
            return None
        q = sp.Symbol("q", positive=True)
        e = e.subs({Q1: q, Q2: q}).subs(C, q)
        e = e.replace(lambda t: t.is_Pow and t.exp.is_Rational and t.exp.q == 2,
                      lambda t: sp.factor(t.base) ** t.exp)
        return tidy(e)

    def _repr_latex_(self) -> str:
        from ..report.notebook import dual_kernels
        return dual_kernels(self)


@functools.lru_cache(maxsize=128)
def derive_dual(expr: sp.Expr, x: sp.Symbol, seconds: float = SECONDS) -> DualKernels:
    """Derive Σ̂ and Σ̇ for φ = ``expr`` (parameters already substituted).

    Results are cached per expression: the derivation is pure, and the series,
    spectrum and kernel routes all start from it.  φ' must be square-integrable
    (else Σ̇ and the NTK are infinite): ActivationError otherwise."""
    try:
        analyse(ae_derivative(expr, x), x)
    except Refused as exc:
        text = sp.sstr(expr)
        raise ActivationError(f"the derivative of phi = {text if len(text) <= 80 else text[:77] + '...'} is not "
                              "shown to be square-integrable under N(0,1), so Sigma-dot and the NTK are not finite: "
                              f"{exc}") from None
    try:
        with time_limit(seconds, "dual-kernel derivation"):
            return _derive(expr, x)
    except DerivationTimeout as exc:
        why = f"numeric: 2-D Gauss–Hermite quadrature (symbolic step timed out: {exc})"
        return DualKernels(None, None, why, why)


def _derive(expr, x) -> DualKernels:
    whole = as_exp_poly(expr, x)
    if whole is not None:
        dwhole = as_exp_poly(sp.diff(expr, x), x)
        route = "exact: exp-poly (bivariate tilted Gaussian integral)"
        khat = tidy(bivariate_expectation(whole, whole, Q1, Q2, C), 3)
        kdot = tidy(bivariate_expectation(dwhole, dwhole, Q1, Q2, C), 3)
        return DualKernels(_real_form(khat), _real_form(kdot), route, route)
    try:
        return _price(expr, x)
    except (NoClosedForm, NotPiecewiseSmooth, ValueError) as exc:
        why = f"numeric: 2-D Gauss–Hermite quadrature (no closed form: {exc})"
        return DualKernels(None, None, why, why)


def _real_form(e: sp.Expr) -> sp.Expr:
    """Prefer sinh/cosh over differences of exponentials when that is shorter."""
    alt = tidy(e.rewrite(sp.cosh), 2)
    alt = tidy(sp.simplify(alt.rewrite(sp.sinh)), 2) if alt.has(sp.exp) else alt
    return alt if sp.count_ops(alt) < sp.count_ops(e) else e


# ----------------------------------------------------------------- Price's rule


def _price(expr, x) -> DualKernels:
    pieces = split(expr, x)
    bps = [p.lo for p in pieces[1:]]
    if any(b != 0 for b in bps):
        raise NoClosedForm("breakpoints away from 0")
    for n in range(1, MAX_PRICE_ORDER + 1):
        base = _base_rule(expr, x, pieces, n)
        if base is not None:
            form, rule = base
            break
    else:
        raise NoClosedForm(f"no elementary E[φ⁽ⁿ⁾φ⁽ⁿ⁾] for n ≤ {MAX_PRICE_ORDER}")
    forms = {n: form}
    for j in range(n - 1, -1, -1):
        forms[j] = forms[j + 1].integrate().plus_constant(_product_of_means(expr, x, j))
    route = f"exact: Price's theorem, n = {n} ({rule}), integrated {n}× in c from c = 0"
    khat = tidy(forms[0].to_expr(), 3)
    kdot = tidy(forms[1].to_expr(), 3)
    return DualKernels(khat, kdot, route, route, kdot_distributional=(n == 1 and "δ" in rule))


def _jumps(pieces, x, order: int) -> list[sp.Expr]:
    """Jumps at 0 of φ, φ', ..., φ^{(order−1)} (right limit − left limit)."""
    if len(pieces) == 1:
        return [sp.Integer(0)] * order
    left, right = pieces[0].expr, pieces[1].expr
    return [sp.simplify(sp.diff(right, x, j).subs(x, 0) - sp.diff(left, x, j).subs(x, 0)) for j in range(order)]


def _base_rule(expr, x, pieces, n):
    regular = [sp.diff(p.expr, x, n) for p in pieces]
    jumps = _jumps(pieces, x, n)
    if len(pieces) == 2:
        if all(sp.simplify(r) == 0 for r in regular) and all(j == 0 for j in jumps[:-1]) and jumps[-1] != 0:
            form = CForm(C, Q1 * Q2, sp.Integer(1))
            form.add_alg(0, jumps[-1]**2 / (2 * sp.pi))
            return form, f"φ⁽{n}⁾ = {sp.sstr(jumps[-1])}·δ(x)"
        return None
    terms = as_exp_poly(regular[0], x)
    if terms is None or len({(t.a, t.b) for t in terms}) != 1 or terms[0].a != 0 or terms[0].b == 0:
        return None
    b = terms[0].b
    value = bivariate_expectation(terms, terms, Q1, Q2, C)
    A = sp.expand((1 - 2 * b * Q1) * (1 - 2 * b * Q2))
    B = 4 * b**2
    form = CForm(C, A, B)
    scaled = sp.cancel(sp.together(value * sp.sqrt(A - B * C**2)))
    num, den = sp.fraction(scaled)
    power, den_poly, d_poly = 0, sp.Poly(den, C), sp.Poly(A - B * C**2, C)
    while den_poly.degree() > 0:
        den_poly, rem = sp.div(den_poly, d_poly)
        if not rem.is_zero:
            return None
        power += 1
    form.add_alg(power, sp.expand(num / den_poly.as_expr()))
    return form, f"φ⁽{n}⁾ = Gaussian-tilted polynomial"


def _product_of_means(expr, x, j) -> sp.Expr:
    """K_j(0) = E[φ⁽ʲ⁾(u)]·E[φ⁽ʲ⁾(v)] = j!·(q₁q₂)^{−j/2} μ_j(φ(√q₁·)) μ_j(φ(√q₂·))."""
    z = sp.Symbol("z", real=True)
    means = []
    for q in (Q1, Q2):
        coeffs = exact_coefficients(expr.subs(x, sp.sqrt(q) * z), z, j + 1, {q: 1})
        mu, route = coeffs[j]
        if mu is None:
            raise NoClosedForm(f"E[φ^({j})] not exact ({route})")
        means.append(sp.sqrt(sp.factorial(j)) * mu * q**(-sp.Rational(j, 2)))
    return sp.expand(means[0] * means[1])


# --------------------------------------------------------------------- numeric


def gauss_hermite_dual(phi, dphi, q1, q2, c, order: int = 48, chunk: int = 4096):
    """E[φ(u)φ(v)] and E[φ'(u)φ'(v)] by 2-D Gauss–Hermite quadrature, vectorised.

    u = √q₁ z₁, v = (c/√q₁) z₁ + √(q₂ − c²/q₁) z₂ with z₁, z₂ iid N(0, 1) on an
    ``order``×``order`` probabilists' Gauss–Hermite grid.  Exact for polynomial
    φ of degree < order; for smooth φ the error falls geometrically with order;
    for kinked φ it is O(order^{-3/2}) — which is why closed forms are used
    first.  Arrays broadcast; evaluation is chunked to bound memory.
    """
    q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
    z, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    z1, z2 = z[:, None].ravel(), z
    out_hat = np.empty(q1.shape)
    out_dot = np.empty(q1.shape)
    flat = [a.reshape(-1) for a in (q1, q2, c, out_hat, out_dot)]
    for start in range(0, flat[0].size, chunk):
        sl = slice(start, start + chunk)
        a, b, cc = flat[0][sl], flat[1][sl], flat[2][sl]
        sa = np.sqrt(a)
        lim = np.sqrt(a * b)
        cc = np.clip(cc, -lim, lim)
        slope = np.where(sa > 0, cc / np.where(sa > 0, sa, 1), 0.0)
        resid = np.sqrt(np.maximum(b - slope**2, 0.0))
        u = sa[:, None] * z1[None, :]
        v = slope[:, None, None] * z1[None, :, None] + resid[:, None, None] * z2[None, None, :]
        ww = w[:, None] * w[None, :]
        flat[3][sl] = np.einsum("ni,nij,ij->n", phi(u), phi(v), ww)
        flat[4][sl] = np.einsum("ni,nij,ij->n", dphi(u), dphi(v), ww)
    return out_hat, out_dot


@functools.lru_cache(maxsize=16)
def _leggauss(n: int):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


def polar_dual(phi, dphi, q1, q2, c, n_angle: int = 24, n_radius: int = 48, r_max: float = 12.0,
               chunk: int = 1024):
    """E[φ(u)φ(v)], E[φ'(u)φ'(v)] for φ with kinks only at 0, by polar quadrature.

    With u = √q₁ r cos t and v = r(a cos t + b sin t) (a = c/√q₁, b = √(q₂ − a²)),
    u and v change sign only on four rays, so the angular integral is split
    there and every panel has a smooth (analytic) integrand: Gauss–Legendre with
    ``n_angle`` nodes per arc and ``n_radius`` nodes on r ∈ [0, r_max] converges
    geometrically, unlike Gauss–Hermite across a kink.
    """
    q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
    xt, wt = _leggauss(n_angle)
    xr, wr = _leggauss(n_radius)
    r = (xr + 1) * r_max / 2
    wr = wr * r_max / 2 * r * np.exp(-r * r / 2) / (2 * np.pi)
    out_hat, out_dot = np.empty(q1.shape), np.empty(q1.shape)
    flat = [arr.reshape(-1) for arr in (q1, q2, c, out_hat, out_dot)]
    for start in range(0, flat[0].size, chunk):
        sl = slice(start, start + chunk)
        a1, a2, cc = flat[0][sl], flat[1][sl], flat[2][sl]
        sa = np.sqrt(a1)
        slope = cc / np.where(sa > 0, sa, 1)
        b = np.sqrt(np.maximum(a2 - slope**2, 0.0))
        t_v = np.arctan2(-slope, b)
        cuts = np.sort(np.stack([np.full_like(a1, -np.pi / 2), np.full_like(a1, np.pi / 2),
                                 np.mod(t_v + np.pi / 2, 2 * np.pi) - np.pi / 2,
                                 np.mod(t_v + 3 * np.pi / 2, 2 * np.pi) - np.pi / 2], axis=1), axis=1)
        edges = np.concatenate([cuts, cuts[:, :1] + 2 * np.pi], axis=1)        # (m, 5)
        lo, hi = edges[:, :-1, None], edges[:, 1:, None]                        # (m, 4, 1)
        t = ((hi - lo) * (xt + 1) / 2 + lo).reshape(len(a1), -1)               # (m, 4·n)
        w_t = ((hi - lo) / 2 * wt).reshape(len(a1), -1)
        ct, st = np.cos(t), np.sin(t)
        u = sa[:, None, None] * ct[:, :, None] * r[None, None, :]
        v = (slope[:, None] * ct + b[:, None] * st)[:, :, None] * r[None, None, :]
        weights = w_t[:, :, None] * wr[None, None, :]
        flat[3][sl] = np.sum(phi(u) * phi(v) * weights, axis=(1, 2))
        flat[4][sl] = np.sum(dphi(u) * dphi(v) * weights, axis=(1, 2))
    return out_hat, out_dot
