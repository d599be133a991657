"""μ_k as a formula in k for piecewise-polynomial activations with a kink at 0.

Integration by parts k times gives, for φ polynomial of degree ≤ m on each side
of 0 and k > m,

    μ_k = γ(0)/√(k!) · Σ_{j=0}^{m} J_j He_{k−1−j}(0),

where J_j is the jump of φ⁽ʲ⁾ at 0 and He_n(0) = (−1)^{n/2}(n−1)!! for even n,
0 for odd n.  For ReLU (J₁ = 1) this is the classical
μ_k = (−1)^{k/2−1}(k−3)!!/√(2π k!) for even k ≥ 2.
"""
from __future__ import annotations

import sympy as sp

from ..bounded import time_limit
from ..errors import DerivationTimeout
from .pieces import NotPiecewiseSmooth, split

K = sp.Symbol("k", integer=True, nonnegative=True)


def he_at_zero(n: sp.Expr) -> sp.Expr:
    return sp.Piecewise(((-1)**(n / 2) * sp.factorial2(n - 1), sp.Eq(sp.Mod(n, 2), 0)), (0, True))


def closed_form_in_k(act, seconds: float = 3.0) -> tuple[sp.Expr | None, int | None]:
    """(formula in the symbol k, first k it holds for) or (None, None), within ``seconds``."""
    try:
        with time_limit(seconds, "closed form in k"):
            return _closed_form_in_k(act)
    except DerivationTimeout:
        return None, None


def _closed_form_in_k(act) -> tuple[sp.Expr | None, int | None]:
    x = act.x
    try:
        pieces = split(act.concrete, x)
    except NotPiecewiseSmooth:
        return None, None
    if len(pieces) != 2 or pieces[1].lo != 0:
        return None, None
    left, right = pieces[0].expr, pieces[1].expr
    if not (left.is_polynomial(x) and right.is_polynomial(x)):
        return None, None
    m = max(sp.degree(left, x) if left.has(x) else 0, sp.degree(right, x) if right.has(x) else 0)
    total = sp.Integer(0)
    for j in range(m + 1):
        jump = sp.simplify(sp.diff(right, x, j).subs(x, 0) - sp.diff(left, x, j).subs(x, 0))
        if jump != 0:
            total += jump * he_at_zero(K - 1 - j)
    if total == 0:
        return None, None
    return total / sp.sqrt(2 * sp.pi * sp.factorial(K)), m + 1
