"""Numerically stable forms of activation expressions (issue 12: "softplus(800) = inf, inf/inf").

SymPy writes softplus as ``log(exp(x) + 1)`` and the derivative of SiLU as
``x*exp(-x)/(1 + exp(-x))**2``: evaluated as written in float64 these overflow (``exp(800) = inf``)
and give ``inf/inf = NaN`` or lose every digit (``1 - tanh(40)**2 = 0``, ``exp(-1e-8) - 1``).
:func:`stable_form` rewrites such sub-expressions, with the identities below (exact, so the value
is unchanged; only the evaluation order is), into two new functions with overflow-free numeric
definitions and into ``expm1``/``log1p``/``erfc``:

* ``softplus(a) = log(1 + e^a) = max(a, 0) + log1p(e^{-|a|})``,
* ``sigmoid(a) = 1/(1 + e^{-a}) = e^{min(a, 0)} / (1 + e^{-|a|})``.

Every evaluator of the stable form (:func:`numpy_functions` for ``numpy_callable``,
:func:`mpmath_functions` for ``mpmath_fn``, ``ArrayCodePrinter._print_softplus`` /
``_print_sigmoid`` for generated modules) uses these definitions, so no intermediate result
overflows unless the true value does; a true overflow (``exp(800)``) gives ``inf``, never NaN.

The rewrite rules are data (:data:`RULES`): a name, the identity, and the node type they act on.
They are applied bottom-up until nothing changes (at most :data:`MAX_PASSES` passes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

__all__ = ["softplus", "sigmoid", "Erfc", "expm1", "log1p", "stable_form", "RULES", "numpy_functions",
           "mpmath_functions"]


class softplus(sp.Function):  # noqa: N801 - printed and lambdified by this name
    """softplus(a) = log(1 + e^a), evaluated as max(a, 0) + log1p(e^{-|a|})."""
    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, a, **kwargs):
        return sp.log(1 + sp.exp(a))

    _eval_rewrite_as_exp = _eval_rewrite_as_log

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def _eval_evalf(self, prec):
        return self.rewrite(sp.log)._eval_evalf(prec)


class sigmoid(sp.Function):  # noqa: N801
    """The logistic function sigmoid(a) = 1/(1 + e^{-a}), evaluated as e^{min(a,0)}/(1 + e^{-|a|})."""
    nargs = 1

    def fdiff(self, argindex=1):
        a = self.args[0]
        return sigmoid(a) * sigmoid(-a)

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return 1 / (1 + sp.exp(-a))

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)


class Erfc(sp.Function):  # noqa: N801
    """erfc(a) = 1 − erf(a), kept as written: SymPy's ``erfc(-a)`` becomes ``2 - erfc(a)``, which
    cancels for a >> 0 (GELU's Φ(x) = erfc(−x/√2)/2 at x = −30 is 4.9e-198, not 0)."""
    nargs = 1

    def fdiff(self, argindex=1):
        a = self.args[0]
        return -2 * sp.exp(-a**2) / sp.sqrt(sp.pi)

    def _eval_rewrite_as_erf(self, a, **kwargs):
        return 1 - sp.erf(a)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        return sp.erfc(self.args[0])._eval_evalf(prec)


# ------------------------------------------------------------------------------------- the rules

@dataclass(frozen=True)
class Rule:
    name: str
    identity: str
    node: type                                    # the SymPy node class the rule looks at
    apply: Callable[[sp.Expr, sp.Symbol], sp.Expr | None]   # the new node, or None: no match


def _exp_arg(term: sp.Expr):
    """(c, a) when ``term`` is c·e^a with a number c (a = 0 for a bare number), else None."""
    coeff, rest = term.as_coeff_Mul()
    if rest == 1:
        return coeff, sp.Integer(0)
    if isinstance(rest, sp.exp):
        return coeff, rest.args[0]
    return None


def _one_plus_exp(base: sp.Expr):
    """a when ``base`` is 1 + e^a, else None."""
    if not isinstance(base, sp.Add) or len(base.args) != 2:
        return None
    first, second = base.args
    for one, other in ((first, second), (second, first)):
        if one == 1 and isinstance(other, sp.exp):
            return other.args[0]
    return None


def _softplus(node: sp.log, var):
    """log(1 + e^a) = softplus(a); log(e^a + e^b) = max(a, b) + softplus(-|a - b|)."""
    arg = node.args[0]
    a = _one_plus_exp(arg)
    if a is not None:
        return softplus(a)
    if isinstance(arg, sp.Add) and len(arg.args) == 2:
        parts = [_exp_arg(t) for t in arg.args]
        if all(p is not None and p[0].is_positive for p in parts) and any(p[1].has(var) for p in parts):
            (c1, a1), (c2, a2) = parts
            a1, a2 = a1 + sp.log(c1), a2 + sp.log(c2)
            return sp.Max(a1, a2) + softplus(-sp.Abs(a1 - a2))
    return None


def _one_over(node: sp.Pow, var):
    """(1 + e^a)^-n = sigmoid(-a)^n for an integer n >= 1."""
    if node.exp.is_Integer and node.exp < 0:
        a = _one_plus_exp(node.base)
        if a is not None:
            return sigmoid(-a) ** (-node.exp)
    return None


def _sigmoid_powers(factor: sp.Expr):
    """(s, m) when ``factor`` is sigmoid(s)^m with an integer m >= 1."""
    base, e = factor.as_base_exp()
    if isinstance(base, sigmoid) and e.is_Integer and e > 0:
        return base.args[0], int(e)
    return None


def _absorb_exp(node: sp.Mul, var):
    """e^{ka} sigmoid(-a)^n = e^{(k-j)a} sigmoid(a)^j sigmoid(-a)^(n-j), j = min(max(k, 0), n):
    e^a/(1 + e^a) = sigmoid(a), so the quotient of two overflowing terms becomes a product of
    bounded ones (k integer; e.g. the derivative e^{-x}/(1 + e^{-x})^2 of the logistic function)."""
    factors = list(node.args)
    exps = [i for i, f in enumerate(factors) if isinstance(f, sp.exp)]
    if len(exps) != 1:
        return None
    changed = False
    for i, f in enumerate(list(factors)):
        sp_pow = _sigmoid_powers(f)
        e_idx = exps[0]
        b = factors[e_idx].args[0] if isinstance(factors[e_idx], sp.exp) else sp.Integer(0)
        if sp_pow is None or b == 0:
            continue
        s, n = sp_pow
        a = -s
        k = b / a if b.has(var) else None   # SymPy cancels scalar multiples: (-2x)/x = -2
        if k is None or not k.is_Integer:
            continue
        j = min(max(int(k), 0), n)
        if j == 0:
            continue
        factors[i] = sigmoid(a) ** j * sigmoid(-a) ** (n - j)
        factors[e_idx] = sp.exp((k - j) * a)
        changed = True
    return sp.Mul(*factors) if changed else None


def _logistic_pairs(node: sp.Add, var):
    """t·sigmoid(a)^m − t·sigmoid(a)^(m+1) = t·sigmoid(a)^m·sigmoid(−a) (1 − sigmoid(a) cancels
    for a >> 0; SymPy's derivative of e^x/(1 + e^x) is sigmoid(x) − sigmoid(x)²)."""
    terms = list(node.args)
    if len(terms) > 12:
        return None
    for i, t1 in enumerate(terms):
        for j, t2 in enumerate(terms):
            if i == j:
                continue
            ratio = t2 / t1
            if isinstance(ratio, sp.Mul) and len(ratio.args) == 2 and ratio.args[0] == -1 \
                    and isinstance(ratio.args[1], sigmoid):
                new = t1 * sigmoid(-ratio.args[1].args[0])
                return sp.Add(new, *[u for k, u in enumerate(terms) if k not in (i, j)])
    return None


def _add_rules(node: sp.Add, var):
    """In a sum, c − c·tanh(a)² = 4c·sigmoid(2a)·sigmoid(−2a) (sech² without cancellation or
    cosh overflow), c + c·erf(a) = c·erfc(−a), c − c·erf(a) = c·erfc(a) (GELU's Φ(x) for x << 0),
    c·e^a − c = c·expm1(a) (ELU near 0)."""
    terms = list(node.args)
    consts = [i for i, t in enumerate(terms) if t.is_number]
    if len(consts) != 1:
        return None
    k0 = terms[consts[0]]
    for i, t in enumerate(terms):
        if i == consts[0] or not t.has(var):
            continue
        c, rest = t.as_coeff_Mul()
        new = None
        if rest.is_Pow and rest.exp == 2 and isinstance(rest.base, sp.tanh) and c == -k0:
            a = rest.base.args[0]
            new = 4 * k0 * sigmoid(2 * a) * sigmoid(-2 * a)
        elif isinstance(rest, sp.erf) and c == k0:
            new = k0 * Erfc(-rest.args[0])
        elif isinstance(rest, sp.erf) and c == -k0:
            new = k0 * Erfc(rest.args[0])
        elif isinstance(rest, sp.exp) and c == -k0:
            new = c * expm1(rest.args[0])
        if new is not None:
            rest_terms = [u for j, u in enumerate(terms) if j not in (i, consts[0])]
            return sp.Add(new, *rest_terms)
    return None


_OVERFLOWING = (sp.exp, sp.sinh, sp.cosh, expm1)


def _can_overflow(expr, var) -> bool:
    return any(f.has(var) for f in expr.atoms(*_OVERFLOWING))


def _clamp(expr, var, lo, hi):
    """``expr`` with ``var`` clamped to [lo, hi]: equal on [lo, hi], finite outside it."""
    v = var
    if lo.is_finite:
        v = sp.Max(v, lo)
    if hi.is_finite:
        v = sp.Min(v, hi)
    return expr.xreplace({var: v}) if v is not var else expr


def _piecewise_clamp(node: sp.Piecewise, var):
    """A branch valid only on an interval I is evaluated at clamp(x, I) (ELU as a Piecewise:
    e^x − 1 for x ≤ 0 becomes expm1(min(x, 0))), so the unused branch never overflows."""
    if not any(_can_overflow(e, var) for e, _ in node.args):
        return None
    try:
        pairs = node.as_expr_set_pairs()
    except (NotImplementedError, TypeError, ValueError):
        return None
    args, changed = [], False
    for (e, cond), (_, where) in zip(node.args, pairs):
        if _can_overflow(e, var) and isinstance(where, sp.Interval) and (where.inf.is_finite
                                                                         or where.sup.is_finite):
            new = _clamp(e, var, where.inf, where.sup)
            changed |= new != e
            e = new
        args.append((e, cond))
    return sp.Piecewise(*args) if changed else None


def _heaviside_clamp(node: sp.Mul, var):
    """H(s·(x − b))·f(x) = H(s·(x − b))·f(clamp(x)) (f only matters where H ≠ 0): the ELU
    derivative e^x·H(−x) never forms inf·0 = NaN."""
    hs = [f for f in node.args if isinstance(f, sp.Heaviside)]
    if len(hs) != 1:
        return None
    h = hs[0]
    arg = h.args[0]
    if not arg.is_polynomial(var) or sp.degree(arg, var) != 1:
        return None
    s = sp.expand(arg).coeff(var, 1)
    if not s.is_number or s == 0:
        return None
    b = -sp.expand(arg).coeff(var, 0) / s
    rest = node / h
    if not _can_overflow(rest, var):
        return None
    new = _clamp(rest, var, b, sp.oo) if s > 0 else _clamp(rest, var, -sp.oo, b)
    return None if new == rest else new * h


def _horner(expr, var):
    """A polynomial of degree >= 2 in Horner form: no inf − inf where the true value overflows
    (x⁴ − 6x² at x = 1e300), and no larger rounding error than the expanded form."""
    if not expr.has(var) or not expr.is_polynomial(var):
        return None
    poly = sp.Poly(expr, var)
    if poly.degree() < 2 or len(poly.terms()) < 2:
        return None
    out = sp.Integer(0)
    for c in poly.all_coeffs():
        out = out * var + c  # unevaluated order is kept by printing; SymPy keeps c + x*(...)
    return out


RULES: tuple[Rule, ...] = (
    Rule("clamp-piecewise", "branch valid on I evaluated at clamp(x, I)", sp.Piecewise, _piecewise_clamp),
    Rule("clamp-heaviside", "H(s(x − b))·f(x) = H(s(x − b))·f(clamp(x))", sp.Mul, _heaviside_clamp),
    Rule("softplus", "log(1 + e^a) = softplus(a) = max(a, 0) + log1p(e^{-|a|})", sp.log, _softplus),
    Rule("logistic", "(1 + e^a)^-n = sigmoid(-a)^n", sp.Pow, _one_over),
    Rule("logistic-quotient", "e^{ka} sigmoid(-a)^n = e^{(k-j)a} sigmoid(a)^j sigmoid(-a)^(n-j)", sp.Mul,
         _absorb_exp),
    Rule("logistic-difference", "t sigmoid(a)^m − t sigmoid(a)^(m+1) = t sigmoid(a)^m sigmoid(−a)", sp.Add,
         _logistic_pairs),
    Rule("sums", "c − c tanh²a = 4c sigmoid(2a) sigmoid(−2a); c ± c erf a = c erfc(∓a); c e^a − c = c expm1 a",
         sp.Add, _add_rules),
)
MAX_PASSES = 4


def _apply(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """One bottom-up pass of every rule."""
    if expr.is_Atom:
        return expr
    args = [_apply(a, var) if isinstance(a, sp.Basic) else a for a in expr.args]
    if any(n is not o for n, o in zip(args, expr.args)):
        try:
            expr = expr.func(*args)
        except (TypeError, ValueError):
            return expr
    for rule in RULES:
        if isinstance(expr, rule.node) and expr.has(var):
            new = rule.apply(expr, var)
            if new is not None and new != expr:
                return new
    return expr


def stable_form(expr: sp.Expr, var: sp.Symbol, horner: bool = False) -> sp.Expr:
    """``expr`` (a function of ``var``) rewritten with :data:`RULES` so that float evaluation
    does not overflow in intermediate results (value unchanged: every rule is an identity).
    ``horner``: also write polynomials in ``var`` in Horner form (float evaluators only: in
    mpmath the expanded form is as good)."""
    if not isinstance(expr, sp.Basic) or not expr.has(var):
        return expr
    for _ in range(MAX_PASSES):
        try:
            new = _apply(expr, var)
        except RecursionError:  # a pathologically deep expression: evaluated as written
            break
        if new == expr:
            break
        expr = new
    if horner:
        poly = _horner(expr, var)
        if poly is not None:
            expr = poly
    return expr


# ------------------------------------------------------------------------- numeric definitions

def _np_softplus(a):
    a = np.asarray(a, dtype=float)
    return np.maximum(a, 0.0) + np.log1p(np.exp(-np.abs(a)))


def _np_sigmoid(a):
    """1/(1 + e^{−a}) with one exponential, never of a positive argument: e = e^{−|a|} ∈ (0, 1]."""
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))
    r = 1.0 / (1.0 + e)
    return np.where(a >= 0, r, e * r)


def numpy_functions() -> dict:
    """lambdify module entries for the NumPy evaluation of a stable form."""
    return {"softplus": _np_softplus, "sigmoid": _np_sigmoid, "expm1": np.expm1, "log1p": np.log1p,
            "Erfc": _np_erfc()}


def _np_erfc():
    try:
        from scipy.special import erfc
        return erfc
    except ImportError:  # pragma: no cover - exercised only without SciPy
        import math
        return np.vectorize(math.erfc, otypes=[float])


_MP_BIG = 4096  # |a| > 2**4096: the limit (as activation._MP_GUARDED), never exp of it


def _mp_softplus(a):
    if isinstance(a, mpmath.mpc):  # complex arguments (analytic continuation): as written
        return mpmath.log(1 + mpmath.exp(a))
    if not mpmath.isfinite(a) or mpmath.mag(a) > _MP_BIG:
        return a if a > 0 else mpmath.mpf(0)
    return max(a, 0) + mpmath.log1p(mpmath.exp(-abs(a)))


def _mp_sigmoid(a):
    if isinstance(a, mpmath.mpc):
        return 1 / (1 + mpmath.exp(-a))
    if not mpmath.isfinite(a) or mpmath.mag(a) > _MP_BIG:
        return mpmath.mpf(1) if a > 0 else mpmath.mpf(0)
    e = mpmath.exp(-abs(a))
    return (1 if a >= 0 else e) / (1 + e)


def _mp_expm1(a):
    if isinstance(a, mpmath.mpc):
        return mpmath.expm1(a)
    if not mpmath.isfinite(a) or mpmath.mag(a) > _MP_BIG:
        return mpmath.inf if a > 0 else mpmath.mpf(-1)
    return mpmath.expm1(a)


def mpmath_functions() -> dict:
    """lambdify module entries for the mpmath evaluation of a stable form (exact in mpmath's
    unbounded exponent range; the forms only avoid the float64 overflow paths)."""
    return {"softplus": _mp_softplus, "sigmoid": _mp_sigmoid, "expm1": _mp_expm1, "log1p": mpmath.log1p}
