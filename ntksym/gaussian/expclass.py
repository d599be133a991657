"""The exp-polynomial class: finite sums of p(z)·exp(a z + b z²).

Every Gaussian integral of such a function, over the whole line or an
interval, is elementary (complete the square; truncated Gaussian moments), and
so are the bivariate ones.  Trigonometric and hyperbolic functions of linear
arguments enter through complex exponentials; ``exp(-z**2/2)`` is the
"Gaussian" activation; polynomials are the case a = b = 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

_TRIG = (sp.sin, sp.cos, sp.sinh, sp.cosh)


@dataclass(frozen=True)
class ExpPolyTerm:
    """coeffs[m] z^m · exp(a z + b z²)."""
    coeffs: tuple[sp.Expr, ...]
    a: sp.Expr
    b: sp.Expr


def _split_term(term: sp.Expr, z: sp.Symbol):
    exponent, rest = sp.Integer(0), sp.Integer(1)
    for f in sp.Mul.make_args(term):
        if isinstance(f, sp.exp):
            exponent += f.args[0]
        elif f.is_Pow and isinstance(f.base, sp.exp) and f.exp.is_number:
            exponent += f.base.args[0] * f.exp
        else:
            rest *= f
    return sp.expand(exponent), rest


def _foreign(node: sp.Basic, z: sp.Symbol) -> bool:
    """A node that cannot occur in an exp-polynomial: a non-exp function of z, or
    z inside a negative or fractional power (1/(1 + e^{−z}), √z, ...)."""
    if isinstance(node, sp.Function) and not isinstance(node, sp.exp):
        return node.has(z)
    if node.is_Pow and node.base.has(z) and not isinstance(node.base, sp.exp):
        return not (node.exp.is_Integer and node.exp >= 0)
    return False


def as_exp_poly(expr: sp.Expr, z: sp.Symbol, max_terms: int = 64) -> tuple[ExpPolyTerm, ...] | None:
    """Decompose ``expr`` into exp-polynomial terms, or None if it is not in the class."""
    e = expr
    if e.has(*_TRIG):
        e = e.rewrite(sp.exp)
    if any(_foreign(f, z) for f in sp.preorder_traversal(e)):
        return None
    e = sp.expand(e, deep=True, power_base=False, log=False, multinomial=True)
    terms = sp.Add.make_args(e)
    if len(terms) > max_terms:
        return None
    grouped: dict[tuple[sp.Expr, sp.Expr], dict[int, sp.Expr]] = {}
    for t in terms:
        exponent, rest = _split_term(t, z)
        if not exponent.is_polynomial(z) or not rest.is_polynomial(z):
            return None
        pe = sp.Poly(exponent, z)
        if pe.degree() > 2:
            return None
        c0, a, b = (pe.coeff_monomial(z**i) for i in range(3))
        pr = sp.Poly(rest * sp.exp(c0), z)
        slot = grouped.setdefault((a, b), {})
        for (m,), coeff in pr.terms():
            slot[m] = slot.get(m, 0) + coeff
    out = []
    for (a, b), slot in grouped.items():
        deg = max(slot) if slot else 0
        coeffs = tuple(sp.expand(slot.get(m, 0)) for m in range(deg + 1))
        if any(c != 0 for c in coeffs):
            out.append(ExpPolyTerm(coeffs, a, b))
    return tuple(out)


def is_polynomial(terms: tuple[ExpPolyTerm, ...]) -> bool:
    return all(t.a == 0 and t.b == 0 for t in terms)
