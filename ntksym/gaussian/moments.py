"""Closed-form Gaussian integrals of exp-polynomial functions.

One dimension, over an interval (lo, hi) (either end may be infinite):

    ∫_lo^hi z^m exp(a z + b z²) γ(z) dz,   γ = N(0, 1) density,

by completing the square: exp(a z + b z²) γ(z) = s·exp(a² s²/2)·N(z; a s², s²)
with s² = 1/(1 − 2b), then expanding (μ + sY)^m and using the truncated
standard-normal moments I_j(α, β) = ∫_α^β y^j γ(y) dy, which obey
I_j = (j−1) I_{j−2} + α^{j−1}γ(α) − β^{j−1}γ(β).

Two dimensions, over the whole plane, for (u, v) ~ N(0, Σ):

    E[p(u) r(v) exp(αᵀw + wᵀBw)] = det(I − 2ΣB)^{−1/2} exp(½ αᵀCα) · E_{N(Cα, C)}[p(u) r(v)],
    C = (Σ⁻¹ − 2B)⁻¹,

with the polynomial moments from Stein's identity
E[u^i v^j] = m₁E[u^{i−1}v^j] + (i−1)C₁₁E[u^{i−2}v^j] + j C₁₂ E[u^{i−1}v^{j−1}].
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .expclass import ExpPolyTerm

SQRT2PI = sp.sqrt(2 * sp.pi)


def gauss_pdf(t: sp.Expr) -> sp.Expr:
    if t in (sp.oo, -sp.oo):
        return sp.Integer(0)
    return sp.exp(-t**2 / 2) / SQRT2PI


def gauss_cdf(t: sp.Expr) -> sp.Expr:
    if t == sp.oo:
        return sp.Integer(1)
    if t == -sp.oo:
        return sp.Integer(0)
    return (1 + sp.erf(t / sp.sqrt(2))) / 2


def _edge_term(t, j):
    if t in (sp.oo, -sp.oo):
        return sp.Integer(0)
    return t**(j - 1) * gauss_pdf(t)


def truncated_std_moments(alpha, beta, m_max: int) -> list[sp.Expr]:
    """I_j(α, β) = ∫_α^β y^j γ(y) dy for j = 0..m_max."""
    full = alpha == -sp.oo and beta == sp.oo
    out: list[sp.Expr] = []
    for j in range(m_max + 1):
        if full:
            out.append(sp.factorial2(j - 1) if j % 2 == 0 else sp.Integer(0))
        elif j == 0:
            out.append(gauss_cdf(beta) - gauss_cdf(alpha))
        elif j == 1:
            out.append(gauss_pdf(alpha) - gauss_pdf(beta))
        else:
            out.append((j - 1) * out[j - 2] + _edge_term(alpha, j) - _edge_term(beta, j))
    return out


def term_moments(term: ExpPolyTerm, lo, hi, m_max: int) -> list[sp.Expr]:
    """∫_lo^hi z^m exp(a z + b z²) γ(z) dz for m = 0..m_max (the term's coefficients ignored)."""
    s2 = 1 / (1 - 2 * term.b)
    s = sp.sqrt(s2)
    mu = term.a * s2
    scale = s * sp.exp(term.a**2 * s2 / 2)
    alpha = lo if lo == -sp.oo else (lo - mu) / s
    beta = hi if hi == sp.oo else (hi - mu) / s
    std = truncated_std_moments(alpha, beta, m_max)
    out = []
    for m in range(m_max + 1):
        total = sum(sp.binomial(m, j) * mu**(m - j) * s**j * std[j] for j in range(m + 1))
        out.append(scale * total)
    return out


def integrate_poly_times(terms: tuple[ExpPolyTerm, ...], poly: list[sp.Expr], lo, hi) -> sp.Expr:
    """∫_lo^hi f(z)·P(z) γ(z) dz for f = Σ terms and P = Σ poly[j] z^j."""
    total = sp.Integer(0)
    for term in terms:
        deg = len(term.coeffs) - 1 + len(poly) - 1
        mom = term_moments(term, lo, hi, deg)
        for i, ci in enumerate(term.coeffs):
            if ci == 0:
                continue
            for j, pj in enumerate(poly):
                if pj != 0:
                    total += ci * pj * mom[i + j]
    return total


def bivariate_expectation(f: tuple[ExpPolyTerm, ...], g: tuple[ExpPolyTerm, ...],
                          q1, q2, c) -> sp.Expr:
    """E[f(u) g(v)] for (u, v) ~ N(0, [[q1, c], [c, q2]]), f and g exp-polynomial."""
    total = sp.Integer(0)
    for tf in f:
        for tg in g:
            total += _pair(tf, tg, q1, q2, c)
    return total


def _pair(tf: ExpPolyTerm, tg: ExpPolyTerm, q1, q2, c) -> sp.Expr:
    b1, b2 = tf.b, tg.b
    det_m = sp.expand((1 - 2 * b1 * q1) * (1 - 2 * b2 * q2) - 4 * b1 * b2 * c**2)
    # C = (I - 2ΣB)^{-1} Σ, written out for 2x2.
    c11 = sp.cancel((q1 * (1 - 2 * b2 * q2) + 2 * b2 * c**2) / det_m)
    c22 = sp.cancel((q2 * (1 - 2 * b1 * q1) + 2 * b1 * c**2) / det_m)
    c12 = sp.cancel(c / det_m)
    a1, a2 = tf.a, tg.a
    m1 = c11 * a1 + c12 * a2
    m2 = c12 * a1 + c22 * a2
    quad = a1 * m1 + a2 * m2
    prefactor = sp.exp(sp.cancel(quad) / 2) / sp.sqrt(det_m)
    mom = _bivariate_moments(m1, m2, c11, c22, c12)
    poly = sp.Integer(0)
    for i, ci in enumerate(tf.coeffs):
        for j, cj in enumerate(tg.coeffs):
            if ci != 0 and cj != 0:
                poly += ci * cj * mom(i, j)
    return prefactor * poly


def _bivariate_moments(m1, m2, c11, c22, c12):
    @lru_cache(maxsize=None)
    def mom(i: int, j: int) -> sp.Expr:
        if i < 0 or j < 0:
            return sp.Integer(0)
        if i == 0 and j == 0:
            return sp.Integer(1)
        if i == 0:
            return sp.expand(m2 * mom(0, j - 1) + (j - 1) * c22 * mom(0, j - 2))
        return sp.expand(m1 * mom(i - 1, j) + (i - 1) * c11 * mom(i - 2, j) + j * c12 * mom(i - 1, j - 1))
    return mom
