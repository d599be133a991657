"""Dual kernels of activations whose pieces on the half-lines x < 0, x > 0 are exp-polynomials
Σ p(x)·e^{a x} (ELU, SELU, CELU, x·e^x on a half-line, ReLU + exponential mixes, ...), in closed form
with the bivariate normal CDF Φ₂ (:class:`ntksym.gaussian.owen.BivariateNormalCDF`, Owen's T).

For (u, v) ~ N(0, Σ), Σ = [[q₁, c], [c, q₂]], pieces I, J ∈ {(−∞, 0), (0, ∞)} and α = (a₁, a₂):

    E[p(u) e^{a₁u} 1{u ∈ I} · r(v) e^{a₂v} 1{v ∈ J}] = e^{½αᵀΣα} E_{N(m, Σ)}[p(u) r(v) 1{u ∈ I, v ∈ J}],
    m = Σα   (exponential tilt),

and the truncated moments M(i, j) = E_{N(m,Σ)}[u^i v^j 1_{I×J}] follow from Stein's identity with
boundary terms (integration by parts on the quadrant):

    M(i+1, j) = m₁M(i, j) + q₁(i M(i−1, j) − B_u(i, j)) + c (j M(i, j−1) − B_v(i, j)),
    B_u(i, j) = −s_I [i = 0] f_u(0) E[v^j 1_J(v) | u = 0]   (s_I = ±1 for I = (0, ∞) / (−∞, 0)),

and symmetrically in v.  M(0, 0) = Φ₂(s_I m₁/√q₁, s_J m₂/√q₂; s_I s_J ρ); given u = 0, v is normal with
mean a₂σ² and σ² = (q₁q₂ − c²)/q₁, so the conditional moments are truncated-normal moments in
Φ(±a₂σ) and the density, and the exponents combine to e^{a₂²σ²/2} (no huge factors cancel).
Owen's arguments of Φ₂ are (k − rh)/√(1−r²) = s_J a₂√(q₁q₂ − c²)/√q₁ and symmetrically: exact at c = ±√(q₁q₂).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .expclass import as_exp_poly
from .owen import BivariateNormalCDF
from .pieces import NotPiecewiseSmooth, split

ROUTE = "exact: exp-poly pieces on half-lines (bivariate normal CDF / Owen's T)"


class NotHalfLine(Exception):
    """φ is not exp-polynomial on the half-lines x < 0, x > 0."""


def halfline_pieces(expr, x):
    """[(sign, terms)] for φ = ``expr``: sign = −1 for x < 0, +1 for x > 0; terms from
    :func:`ntksym.gaussian.expclass.as_exp_poly` with no Gaussian factor (b = 0)."""
    try:
        pieces = split(expr, x)
    except (NotPiecewiseSmooth, ValueError, TypeError) as exc:
        raise NotHalfLine(str(exc)) from None
    if len(pieces) != 2 or pieces[1].lo != 0:
        raise NotHalfLine("not two pieces split at 0")
    out = []
    for sign, p in zip((-1, 1), pieces):
        terms = as_exp_poly(p.expr, x)
        if terms is None or any(t.b != 0 for t in terms) or any(t.a.free_symbols for t in terms):
            raise NotHalfLine(f"piece {p.expr} is not a sum of p(x)·e^(a x)")
        out.append((sign, terms))
    return out, pieces


def dual_closed_form(expr, x, q1, q2, c):
    """E[φ(u)φ(v)] in closed form, or NotHalfLine."""
    parts, _ = halfline_pieces(expr, x)
    return _expectation(parts, q1, q2, c)


def _expectation(parts, q1, q2, c):
    total = sp.Integer(0)
    for s1, terms1 in parts:
        for s2, terms2 in parts:
            for t1 in terms1:
                for t2 in terms2:
                    total += _term(t1, t2, s1, s2, q1, q2, c)
    return total


def _phi(t):
    """Φ(t) = erfc(−t/√2)/2 (no 1 + erf cancellation in the tails).  SymPy's erfc(−a) → 2 − erfc(a) is
    harmless here: every t is ±a·σ with a a number and σ ≥ 0, so the rewrite only happens where the
    value is in [1, 2]."""
    return sp.erfc(-t / sp.sqrt(2)) / 2


def _std_moments(alpha, beta, n):
    """∫_α^β y^j γ(y) dy for j ≤ n, one of α, β infinite; the density terms WITHOUT the factor
    e^{−t²/2}/√(2π) of the finite end t (returned separately as (cdf part, poly part)):
    I_j = P_j + G_j·γ(t)."""
    finite = alpha if beta == sp.oo else beta
    sign = 1 if beta == sp.oo else -1     # γ-terms enter with + at a lower end, − at an upper end
    cdf = _phi(-finite) if beta == sp.oo else _phi(finite)
    P, G = [cdf, sp.Integer(0)], [sp.Integer(0), sp.Integer(sign)]
    for j in range(2, n + 1):
        P.append((j - 1) * P[j - 2])
        G.append((j - 1) * G[j - 2] + sign * finite**(j - 1))
    return P[:n + 1], G[:n + 1]


def _conditional(a_other, sigma, s_other, n, q_self):
    """f(0)·E[w^j 1{s_other·w > 0} | z = 0]·e^{a_other²σ²/2}·(the tilt prefactor's share), j ≤ n, where the
    conditional mean is a_other σ² and sd σ, the marginal of z at 0 has density
    e^{−m_z²/(2q)}/√(2πq); the exponents combine (module docstring) to e^{a²σ²/2}, so the returned
    values are e^{½αᵀΣα}·f_z(0)·E[...] without any exponential of q."""
    mu = a_other * sigma**2
    t = -a_other * sigma             # the truncation point −μ/σ in standard units
    if s_other > 0:
        P, G = _std_moments(t, sp.oo, n)
    else:
        P, G = _std_moments(-sp.oo, t, n)
    # e^{a²σ²/2}·γ(t) = 1/√(2π): the density terms lose their exponential
    scale = 1 / sp.sqrt(2 * sp.pi * q_self)
    tilt = sp.exp(a_other**2 * sigma**2 / 2)
    out = []
    for j in range(n + 1):
        val = sp.Integer(0)
        for i in range(j + 1):
            coef = sp.binomial(j, i) * mu**(j - i) * sigma**i
            val += coef * (tilt * P[i] + G[i] / sp.sqrt(2 * sp.pi))
        out.append(scale * val)
    return out


def _term(t1, t2, s1, s2, q1, q2, c):
    """E[p(u)e^{a₁u}1{s₁u > 0} · r(v)e^{a₂v}1{s₂v > 0}] for exp-poly terms t1, t2."""
    a1, a2 = t1.a, t2.a
    m1, m2 = q1 * a1 + c * a2, c * a1 + q2 * a2
    d = q1 * q2 - c**2
    rd = sp.sqrt(d)
    h, k = s1 * m1 / sp.sqrt(q1), s2 * m2 / sp.sqrt(q2)
    r = s1 * s2 * c / sp.sqrt(q1 * q2)
    kr, hr = s2 * a2 * rd / sp.sqrt(q1), s1 * a1 * rd / sp.sqrt(q2)
    tilt = sp.exp((a1**2 * q1 + 2 * a1 * a2 * c + a2**2 * q2) / 2)
    base = tilt * BivariateNormalCDF(h, k, r, rd / sp.sqrt(q1 * q2), kr, hr)
    n1, n2 = len(t1.coeffs) - 1, len(t2.coeffs) - 1
    # boundary terms, already multiplied by the tilt prefactor: at u = 0 (conditional of v), at v = 0
    sig_v, sig_u = rd / sp.sqrt(q1), rd / sp.sqrt(q2)
    bu = [-s1 * e for e in _conditional(a2, sig_v, s2, n2 + 1, q1)]    # B_u(0, j), j ≤ n2 + 1
    bv = [-s2 * e for e in _conditional(a1, sig_u, s1, n1 + 1, q2)]    # B_v(i, 0), i ≤ n1 + 1
    mom = _moments(base, bu, bv, m1, m2, q1, q2, c)
    total = sp.Integer(0)
    for i, ci in enumerate(t1.coeffs):
        for j, cj in enumerate(t2.coeffs):
            if ci != 0 and cj != 0:
                total += ci * cj * mom(i, j)
    return total


def _moments(base, bu, bv, m1, m2, q1, q2, c):
    """M(i, j)·e^{½αᵀΣα} by the truncated Stein recursion (module docstring)."""
    def bdu(i, j):
        return bu[j] if i == 0 else sp.Integer(0)

    def bdv(i, j):
        return bv[i] if j == 0 else sp.Integer(0)

    @lru_cache(maxsize=None)
    def mom(i, j):
        if i < 0 or j < 0:
            return sp.Integer(0)
        if i == 0 and j == 0:
            return base
        if i > 0:
            p = i - 1
            return (m1 * mom(p, j) + q1 * (p * mom(p - 1, j) - bdu(p, j))
                    + c * (j * mom(p, j - 1) - bdv(p, j)))
        p = j - 1
        return (m2 * mom(0, p) + c * (0 - bdu(0, p)) + q2 * (p * mom(0, p - 1) - bdv(0, p)))
    return mom


def derive(expr, x, q1, q2, c):
    """(Σ̂, Σ̇) for φ = ``expr`` with exp-polynomial pieces on the half-lines, or NotHalfLine.  Σ̇ uses
    φ' piece by piece (the a.e. derivative); it is None when φ jumps at 0 (the caller applies the
    convention for the jump: :func:`ntksym.gaussian.dual._with_convention`)."""
    parts, pieces = halfline_pieces(expr, x)
    khat = _expectation(parts, q1, q2, c)
    left, right = pieces[0].expr, pieces[1].expr
    if sp.simplify(left.subs(x, 0) - right.subs(x, 0)) != 0:
        return khat, None
    dparts = []
    for (sign, _), p in zip(parts, pieces):
        terms = as_exp_poly(sp.diff(p.expr, x), x)
        if terms is None:
            raise NotHalfLine(f"derivative of piece {p.expr}")
        dparts.append((sign, terms))
    return khat, _expectation(dparts, q1, q2, c)
