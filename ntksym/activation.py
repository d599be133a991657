"""Activations: a small immutable record built from a catalogue name, a safe
string, or a SymPy expression.

The variable is always the real symbol ``x``; parameters are real symbols with
exact values (decimal strings and floats become exact rationals: ``0.3`` is
3/10).  ``Activation.expr`` keeps the parameters symbolic, ``Activation.concrete``
substitutes their values.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

import mpmath
import numpy as np
import sympy as sp

from .bounded import time_limit
from .errors import ActivationError, DerivationTimeout, ParseError
from .gaussian.integrability import Integrability, Refused, ae_derivative, analyse
from .gaussian.pieces import NotPiecewiseSmooth, split
from .parsing import parse_expression
from .stable import mpmath_functions, numpy_functions, stable_form

X = sp.Symbol("x", real=True)


def _p(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def _catalogue() -> dict[str, tuple[str, Any, dict[str, str]]]:
    """name -> (description, builder(params) -> expr, default parameter values)."""
    a, b, alpha, lam = _p("a"), _p("b"), _p("alpha"), _p("lambda_")
    relu = sp.Max(X, 0)
    return {
        "relu": ("ReLU max(x, 0)", lambda: relu, {}),
        "leaky_relu": ("leaky ReLU, slope alpha for x < 0", lambda: relu + alpha * sp.Min(X, 0), {"alpha": "0.01"}),
        "abrelu": ("a·x + b·|x| (ReLU at a = b = 1/2)", lambda: a * X + b * sp.Abs(X), {"a": "0.5", "b": "0.5"}),
        "abs": ("|x|", lambda: sp.Abs(X), {}),
        "sign": ("sign(x)", lambda: sp.sign(X), {}),
        "step": ("Heaviside step 1{x > 0}", lambda: sp.Heaviside(X, sp.S.Half), {}),
        "identity": ("x", lambda: X, {}),
        "erf": ("erf(a·x)", lambda: sp.erf(a * X), {"a": "1"}),
        "tanh": ("tanh(x)", lambda: sp.tanh(X), {}),
        "sigmoid": ("logistic 1/(1 + e^{-x})", lambda: 1 / (1 + sp.exp(-X)), {}),
        "softplus": ("log(1 + e^x)", lambda: sp.log(1 + sp.exp(X)), {}),
        "gelu": ("exact GELU x·Φ(x)", lambda: X * (1 + sp.erf(X / sp.sqrt(2))) / 2, {}),
        "silu": ("SiLU / swish x·sigmoid(x)", lambda: X / (1 + sp.exp(-X)), {}),
        "elu": ("ELU: x for x > 0, alpha(e^x − 1) otherwise", lambda: relu + alpha * (sp.exp(sp.Min(X, 0)) - 1),
                {"alpha": "1"}),
        "selu": ("SELU lambda·ELU_alpha", lambda: lam * (relu + alpha * (sp.exp(sp.Min(X, 0)) - 1)),
                 {"alpha": "1.6732632423543772848170429916717", "lambda_": "1.0507009873554804934193349852946"}),
        "mish": ("x·tanh(softplus(x))", lambda: X * sp.tanh(sp.log(1 + sp.exp(X))), {}),
        "sin": ("sin(a·x)", lambda: sp.sin(a * X), {"a": "1"}),
        "cos": ("cos(a·x)", lambda: sp.cos(a * X), {"a": "1"}),
        "exp": ("exp(a·x)", lambda: sp.exp(a * X), {"a": "1"}),
        "gaussian": ("Gaussian e^{-x²/2}", lambda: sp.exp(-X**2 / 2), {}),
    }


CATALOGUE = _catalogue()
_INDEXED = re.compile(r"^(hermite|monomial)(\d{1,2})$")
MAX_INDEX = 30  # largest N of hermiteN / monomialN


def catalogue_names() -> list[str]:
    return sorted(CATALOGUE) + ["hermiteN", "monomialN"]


def exact_number(value: Any, name: str) -> sp.Expr:
    """An exact SymPy number from a user-supplied parameter value."""
    if isinstance(value, bool):
        raise ActivationError(f"parameter {name}: expected a number, got {value!r}")
    if isinstance(value, sp.Basic):
        num = value
    elif isinstance(value, int):
        num = sp.Integer(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ActivationError(f"parameter {name} must be finite, got {value!r}")
        num = sp.Rational(repr(value))
    elif isinstance(value, str):
        try:
            num = parse_expression(value, variable="x")
        except ParseError as exc:
            raise ActivationError(f"parameter {name}: {exc}") from None
    else:
        raise ActivationError(f"parameter {name}: expected a number, got {type(value).__name__}")
    if num.free_symbols or not num.is_real or not num.is_finite:
        raise ActivationError(f"parameter {name} must be a finite real number, got {value!r}")
    return num


@dataclass(frozen=True)
class Activation:
    """An activation φ(x) with exact parameter values.

    ``expr`` is in the real symbol :data:`X` with parameters as real symbols;
    ``params`` maps each parameter name to its exact value.
    """
    name: str
    expr: sp.Expr
    params: tuple[tuple[str, sp.Expr], ...] = ()
    description: str = ""
    source: str = field(default="expression", compare=False)

    @property
    def x(self) -> sp.Symbol:
        return X

    @property
    def param_values(self) -> dict[sp.Symbol, sp.Expr]:
        return {_p(n): v for n, v in self.params}

    @cached_property
    def concrete(self) -> sp.Expr:
        """φ with the parameter values substituted."""
        return self.expr.xreplace(self.param_values)

    @cached_property
    def derivative(self) -> sp.Expr:
        """φ' (a.e.; Dirac parts of jumps dropped, they are handled by the Gaussian rules)."""
        return ae_derivative(self.concrete, X)

    @cached_property
    def pieces(self):
        return split(self.concrete, X)

    @cached_property
    def breakpoints(self) -> tuple[float, ...]:
        try:
            with time_limit(5.0, "splitting into pieces"):
                return tuple(float(p.lo) for p in self.pieces[1:])
        except (NotPiecewiseSmooth, DerivationTimeout):
            return ()

    @cached_property
    def parity(self) -> str | None:
        e = self.concrete
        try:
            with time_limit(2.0, "parity"):
                if sp.expand(e.subs(X, -X) + e) == 0:
                    return "odd"
                if sp.expand(e.subs(X, -X) - e) == 0:
                    return "even"
        except DerivationTimeout:
            pass
        return None

    @cached_property
    def singular_points(self) -> tuple[float, ...]:
        """Finite points where φ may be unbounded (integrable singularities, e.g. log|x| at 0)."""
        return check_square_integrable(self).singular_points

    @cached_property
    def _numeric_expr(self) -> sp.Expr:
        return numeric_form(self.concrete, X)

    def mpmath_fn(self):
        """φ as an mpmath function; huge arguments of elementary functions go to their limits
        instead of being evaluated (mpmath would abort the process on exp(exp(1e13))), and the
        stable form of :mod:`ntksym.stable` (softplus, sigmoid, expm1, erfc) keeps the relative
        accuracy where the expression as written cancels (1 − tanh²x at x = 40)."""
        expr = stable_form(self._numeric_expr, X)
        return sp.lambdify(X, expr, modules=[{**_MP_GUARDED, **mpmath_functions(), "Erfc": _MP_GUARDED["erfc"]},
                                             "mpmath"])

    def numpy_fn(self, derivative: bool = False):
        return numpy_callable(numeric_form(self.derivative, X) if derivative else self._numeric_expr, X)

    def latex(self) -> str:
        return sp.latex(self.expr)

    def _repr_latex_(self) -> str:
        return f"$\\phi(x) = {self.latex()}$"

    def __str__(self) -> str:
        ps = ", ".join(f"{n}={v}" for n, v in self.params)
        return f"{self.name}: φ(x) = {sp.sstr(self.expr)}" + (f" with {ps}" if ps else "")


def numpy_callable(expr: sp.Expr, var: sp.Symbol):
    """A vectorised NumPy function of ``expr`` (erf, erfc from SciPy when present), evaluated in
    the stable form of :mod:`ntksym.stable`: softplus(800) = 800 and SiLU'(−800) = 0 (true value
    −800·e^−800, below float64's range) instead of inf and inf/inf = NaN; for every catalogue
    activation and its derivative the value is right to 1e-13 on the grid |x| ∈ {0, 1e-300, 1e-8,
    …, 800, 1e4, 1e150, 1e300} of tests/test_stable_activation.py, and a true overflow (exp(800))
    gives inf, never NaN."""
    expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
    expr = stable_form(expr, var, horner=True)
    expr = expr.xreplace({n: sp.Float(n, 17) for n in expr.atoms(sp.Integer) if abs(n) > 2**53})
    erfc = numpy_functions()["Erfc"]
    fn = sp.lambdify(var, expr, modules=[{"erf": _erf_np(), "erfc": erfc, **numpy_functions()}, "numpy"])

    def call(t):
        t = np.asarray(t, dtype=float)
        with np.errstate(all="ignore"):  # branches of a Piecewise outside their piece may overflow or be NaN
            return np.broadcast_to(np.asarray(fn(t), dtype=float), t.shape)
    return call


_DOMAIN_RESTRICTED = (sp.log,)


def numeric_form(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``expr`` ready for numeric evaluation: b**v with symbolic v as exp(v·log b), and, when a
    piece uses log or a fractional power, a Piecewise over the smooth pieces, so that no branch is
    evaluated outside its piece (step(x)·log(x) must not take log of x < 0)."""
    expr = expr.replace(lambda e: e.is_Pow and not e.exp.is_number, lambda e: sp.exp(e.exp * sp.log(e.base)))
    if not (expr.has(*_DOMAIN_RESTRICTED) or any(p.exp.is_number and not p.exp.is_Integer
                                                  for p in expr.atoms(sp.Pow))):
        return expr
    try:
        with time_limit(2.0, "splitting into pieces"):
            pieces = split(expr, var)
    except (NotPiecewiseSmooth, DerivationTimeout, ValueError, TypeError):
        return expr
    if len(pieces) == 1:
        return expr
    return sp.Piecewise(*[(p.expr, var < p.hi) for p in pieces[:-1]], (pieces[-1].expr, True))


_BIG_MAG = 4096  # |t| > 2**4096: use the function's limit (or NaN) instead of evaluating


def _guard(name: str, limit):
    fn = getattr(mpmath, name)

    def guarded(t):
        if mpmath.isfinite(t) and mpmath.mag(t) <= _BIG_MAG:
            return fn(t)
        return limit(t)
    return guarded


def _sgn(t):
    return mpmath.sign(mpmath.re(t))


_MP_GUARDED = {
    "exp": _guard("exp", lambda t: mpmath.inf if _sgn(t) > 0 else mpmath.mpf(0)),
    "sinh": _guard("sinh", lambda t: _sgn(t) * mpmath.inf),
    "cosh": _guard("cosh", lambda t: mpmath.inf),
    "tanh": _guard("tanh", _sgn),
    "erf": _guard("erf", _sgn),
    "erfc": _guard("erfc", lambda t: mpmath.mpf(1) - _sgn(t)),
    "atan": _guard("atan", lambda t: _sgn(t) * mpmath.pi / 2),
    "sin": _guard("sin", lambda t: mpmath.nan),
    "cos": _guard("cos", lambda t: mpmath.nan),
    "tan": _guard("tan", lambda t: mpmath.nan),
}


def _erf_np():
    try:
        from scipy.special import erf
        return erf
    except ImportError:  # pragma: no cover - exercised only without SciPy
        return np.vectorize(math.erf, otypes=[float])


# ---------------------------------------------------------------- construction


def make_activation(spec: Any, params: Mapping[str, Any] | None = None) -> Activation:
    """Build an Activation from a catalogue name, an expression string, or a SymPy expression."""
    params = dict(params or {})
    if isinstance(spec, sp.Basic):
        act = _from_sympy(spec, params)
    elif not isinstance(spec, str):
        raise ActivationError(f"activation must be a name, an expression string or a SymPy expression, "
                              f"got {type(spec).__name__}")
    elif spec.strip() in CATALOGUE:
        act = _from_catalogue(spec.strip(), params)
    elif _INDEXED.match(spec.strip()):
        act = _from_indexed(spec.strip(), params)
    else:
        expr = parse_expression(spec, variable="x", parameters=list(params))
        act = _assemble(spec.strip(), expr, params, "", "expression")
    act.singular_points  # noqa: B018 - runs (and caches) check_square_integrable
    return act


def _from_catalogue(name: str, params: dict) -> Activation:
    description, build, defaults = CATALOGUE[name]
    unknown = set(params) - set(defaults)
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ActivationError(f"activation {name!r} has no parameter {sorted(unknown)[0]!r} (parameters: {allowed})")
    merged = {**defaults, **params}
    return _assemble(name, build(), merged, description, "catalogue")


def _from_indexed(name: str, params: dict) -> Activation:
    if params:
        raise ActivationError(f"activation {name!r} takes no parameters")
    kind, n = _INDEXED.match(name).groups()
    n = int(n)
    if n > MAX_INDEX:
        raise ActivationError(f"{kind}N takes 0 <= N <= {MAX_INDEX}, got {name!r} (the exact dual kernels of "
                              "higher degrees take minutes, and their float64 values lose all digits)")
    if kind == "hermite":
        expr = sp.hermite_prob(n, X) / sp.sqrt(sp.factorial(n))
        return _assemble(name, sp.expand(expr), {}, f"normalised Hermite polynomial He_{n}/√({n}!)", "catalogue")
    return _assemble(name, X**n, {}, f"monomial x^{n}", "catalogue")


def _from_sympy(expr: sp.Basic, params: dict) -> Activation:
    if not isinstance(expr, sp.Expr):
        raise ActivationError("a SymPy activation must be an expression")
    names = set(params)
    free = [s for s in expr.free_symbols if s.name not in names]
    if len(free) > 1:
        raise ActivationError(f"activation has several free symbols {sorted(s.name for s in free)}; "
                              "give values for the parameters")
    subs = {s: _p(s.name) for s in expr.free_symbols if s.name in names}
    if free:
        subs[free[0]] = X
    return _assemble(sp.sstr(expr), expr.xreplace(subs), params, "", "sympy")


def _assemble(name, expr, params, description, source) -> Activation:
    values = tuple((n, exact_number(v, n)) for n, v in sorted(params.items()))
    extra = {s.name for s in expr.free_symbols} - {"x"} - {n for n, _ in values}
    if extra:
        raise ActivationError(f"activation uses parameter {sorted(extra)[0]!r} without a value")
    return Activation(name=name, expr=expr, params=values, description=description, source=source)


# ---------------------------------------------------------------- validation


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."


def check_square_integrable(act: Activation) -> Integrability:
    """Show φ ∈ L²(N(0,1)) (real, finite a.e., E φ(Z)² < ∞) or raise ActivationError with the reason.

    A sound structural analysis (:mod:`ntksym.gaussian.integrability`), bounded in time and
    size: φ is never evaluated, so no probe can overflow or abort.
    """
    try:
        return analyse(act.concrete, X)
    except Refused as exc:
        raise ActivationError(f"activation {_short(act.name)!r} is not shown to be square-integrable "
                              f"under N(0,1): {exc}") from None

