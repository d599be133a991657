"""Hermite coefficients μ_k(φ) = E[φ(Z) h_k(Z)], h_k = He_k/√(k!), Z ~ N(0, 1).

Routes, tried in this order for each k and recorded with the value:

* ``parity``: φ odd (even) on the whole line ⇒ μ_k = 0 for even (odd) k.
* ``exp-poly``: φ (or a piece of it) is Σ p(z)·exp(a z + b z²) ⇒ elementary
  truncated Gaussian moments (:mod:`ntksym.gaussian.moments`).
* ``ibp×n``: Gaussian integration by parts, ∫_l^r g He_k γ = −[g He_{k−1} γ]_l^r
  + ∫_l^r g' He_{k−1} γ, applied n times until the derivative is in the
  exp-poly class (erf, GELU, …).  The boundary terms at the breakpoints of a
  piecewise φ are exactly the distributional-derivative (jump) contributions,
  so kinks and jumps are handled without Dirac deltas.
* ``stein``: for k below the number of differentiations, E[z·u(z)] = E[u'(z)].
* ``numeric``: mpmath tanh-sinh quadrature split at the breakpoints, at the
  requested precision plus guard digits, with mpmath's error estimate.

Every symbolic step runs under :func:`ntksym.bounded.time_limit`; a timeout
sends that coefficient to the numeric route, and says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
from mpmath.calculus.quadrature import GaussLegendre, TanhSinh
import sympy as sp

from ..bounded import check_size, time_limit
from ..errors import AccuracyError, DerivationTimeout
from .expclass import as_exp_poly
from .moments import gauss_pdf, integrate_poly_times
from .pieces import NotPiecewiseSmooth, Piece, split

MAX_IBP = 6
STEP_SECONDS = 3.0
STEIN_MAX_OPS = 120


class NoClosedForm(Exception):
    """No exact rule applies to this coefficient."""


@dataclass(frozen=True)
class HermiteCoefficient:
    """μ_k with its exact value (or None), a numeric value and the route taken."""
    k: int
    exact: sp.Expr | None
    value: mpmath.mpf
    route: str
    error: float = 0.0

    def value_str(self, digits: int) -> str:
        return mpmath.nstr(self.value, digits)


@dataclass(frozen=True)
class HermiteSeries:
    """μ_0..μ_{K−1}, and μ_k as a formula in k where one was derived."""
    coefficients: tuple[HermiteCoefficient, ...]
    digits: int
    closed_form: sp.Expr | None = None
    closed_form_from: int | None = None
    k_symbol: sp.Symbol = field(default=sp.Symbol("k", integer=True, nonnegative=True))

    def values(self) -> list[mpmath.mpf]:
        return [c.value for c in self.coefficients]

    def _repr_latex_(self) -> str:
        from ..report.notebook import hermite_series
        return hermite_series(self)


@lru_cache(maxsize=None)
def he_coeffs(k: int) -> tuple[sp.Integer, ...]:
    """Coefficients of the probabilists' Hermite polynomial He_k, lowest degree first."""
    if k < 0:
        return ()
    z = sp.Symbol("z")
    return tuple(sp.Poly(sp.hermite_prob(k, z), z).all_coeffs()[::-1])


def he_value(k: int, t: sp.Expr) -> sp.Expr:
    return sum(c * t**j for j, c in enumerate(he_coeffs(k)))


# --------------------------------------------------------------------------- exact


class _Piece:
    """One smooth piece with its derivative chain, for integration by parts."""

    def __init__(self, piece: Piece, z: sp.Symbol):
        self.lo, self.hi, self.z = piece.lo, piece.hi, z
        self.full_line = piece.lo == -sp.oo and piece.hi == sp.oo
        self.derivs = [piece.expr]
        self.classes = [as_exp_poly(piece.expr, z)]
        self.parity = _parity(piece.expr, z) if self.full_line else None

    def deriv(self, j: int):
        while len(self.derivs) <= j:  # both lists grow together, even when a time limit interrupts
            d = check_size(sp.diff(self.derivs[-1], self.z), "derivative")
            cls = as_exp_poly(d, self.z)
            self.derivs.append(d)
            self.classes.append(cls)
        return self.derivs[j], self.classes[j]

    def boundary(self, j: int, k: int) -> sp.Expr:
        """−[g^{(j)} He_{k−1−j} γ]_lo^hi."""
        g, _ = self.deriv(j)
        total = sp.Integer(0)
        for t, sgn in ((self.hi, -1), (self.lo, 1)):
            if t in (sp.oo, -sp.oo):
                continue
            total += sgn * g.subs(self.z, t) * he_value(k - 1 - j, t) * gauss_pdf(t)
        return total

    def integral(self, k: int) -> tuple[sp.Expr, str]:
        """∫_lo^hi g He_k γ dz and the route."""
        if self.parity is not None and (k % 2 == 0) == (self.parity == "odd"):
            return sp.Integer(0), f"parity (φ {self.parity})"
        acc = sp.Integer(0)
        for j in range(min(k, MAX_IBP) + 1):
            _, cls = self.deriv(j)
            if cls is not None:
                val = integrate_poly_times(cls, list(he_coeffs(k - j)), self.lo, self.hi)
                return acc + val, ("exp-poly" if j == 0 else f"ibp×{j} + exp-poly")
            if j < k:
                acc += self.boundary(j, k)
        if k > MAX_IBP:
            raise NoClosedForm(f"no exact rule after {MAX_IBP} integrations by parts")
        g, _ = self.deriv(k)
        return acc + _expect0(g, self.z, self.lo, self.hi, 3), (f"ibp×{k} + stein" if k else "stein")


def _parity(g: sp.Expr, z: sp.Symbol) -> str | None:
    flipped = g.subs(z, -z)
    if sp.expand(flipped + g) == 0:
        return "odd"
    if sp.expand(flipped - g) == 0:
        return "even"
    return None


def _expect0(h: sp.Expr, z: sp.Symbol, lo, hi, depth: int) -> sp.Expr:
    """∫_lo^hi h γ dz by the exp-poly class, parity, or Stein's identity."""
    if sp.count_ops(h) > STEIN_MAX_OPS:  # large derivative chains never simplify to a rule; don't grind
        raise NoClosedForm("no exact rule for E[φ^{(k)}(Z)] (expression too large)")
    cls = as_exp_poly(h, z)
    if cls is not None:
        return integrate_poly_times(cls, [1], lo, hi)
    if lo == -sp.oo and hi == sp.oo:
        h = sp.expand((h + h.subs(z, -z)) / 2)
        if h != 0 and sp.count_ops(h) <= STEIN_MAX_OPS:
            h = tidy(h, 0.5)  # e.g. the even part of the logistic function is 1/2
        if h == 0:
            return sp.Integer(0)
        cls = as_exp_poly(h, z)
        if cls is not None:
            return integrate_poly_times(cls, [1], lo, hi)
    if depth > 0 and sp.count_ops(h) <= STEIN_MAX_OPS:
        u = sp.cancel(h / z)
        if not sp.denom(sp.together(u)).has(z):
            edge = sp.Integer(0)
            for t, sgn in ((hi, -1), (lo, 1)):
                if t not in (sp.oo, -sp.oo):
                    edge += sgn * u.subs(z, t) * gauss_pdf(t)
            # ∫ z u γ = −[u γ]_lo^hi + ∫ u' γ  (Stein's identity, as integration by parts)
            return edge + _expect0(sp.diff(u, z), z, lo, hi, depth - 1)
    raise NoClosedForm("no exact rule for E[φ^{(k)}(Z)]")


def tidy(expr: sp.Expr, seconds: float = 1.0) -> sp.Expr:
    """A bounded simplification: the simplified form if it is found in time and is not larger."""
    try:
        with time_limit(seconds, "simplify"):
            s = sp.simplify(expr)
        return s if sp.count_ops(s) <= sp.count_ops(expr) else expr
    except DerivationTimeout:
        return expr


def exact_coefficients(expr: sp.Expr, z: sp.Symbol, order: int, order_subs: dict | None = None,
                       step_seconds: float | None = None) -> list[tuple[sp.Expr | None, str]]:
    """Exact μ_k for k < order (None where no rule applied in time), with routes.

    Each coefficient gets ``step_seconds`` (default :data:`STEP_SECONDS`) of symbolic work.
    """
    step_seconds = STEP_SECONDS if step_seconds is None else step_seconds
    try:
        with time_limit(step_seconds, "splitting into pieces"):
            pieces = [_Piece(p, z) for p in split(expr, z, order_subs)]
    except (NotPiecewiseSmooth, DerivationTimeout) as exc:
        return [(None, f"numeric ({exc})")] * order
    out = []
    for k in range(order):
        try:
            with time_limit(step_seconds, f"exact μ_{k}"):
                parts = [p.integral(k) for p in pieces]
                value = sum(v for v, _ in parts) / sp.sqrt(sp.factorial(k))
                value = tidy(_real(check_size(value, f"μ_{k}")))
            routes = sorted({r for _, r in parts})
            out.append((value, "exact: " + " | ".join(routes)))
        except (NoClosedForm, DerivationTimeout) as exc:
            out.append((None, f"numeric ({exc})"))
    return out


def _real(value: sp.Expr) -> sp.Expr:
    """The real part of an exact μ_k whose imaginary part is zero exactly or numerically (routes through
    complex exponentials, e.g. φ = He(51, sin 60), leave I·e^{iθ} terms that cancel); else ``value``."""
    if not value.has(sp.I):
        return value
    re_, im_ = value.as_real_imag()
    if im_ == 0 or sp.N(im_, 30, chop=True) == 0:
        return re_
    return value


# ----------------------------------------------------------------------- numeric


def numeric_coefficients(fn, breakpoints: list[float], order: int, digits: int, singular=()
                         ) -> list[tuple[mpmath.mpf, float]]:
    """μ_k by Gauss–Legendre quadrature on [−T, T], split at the breakpoints.

    ``fn`` is an mpmath-callable φ.  All orders share one set of nodes (He_k by
    its three-term recurrence at each node), the cut-off T is chosen so that the
    integrand beyond it is below the target precision, and the error estimate
    is the difference between two rule sizes (48 and 96 nodes per panel of
    length ≤ 2), refined twice at most until within :func:`tolerance`.  Where φ
    has integrable singularities (``singular`` points, e.g. log|x| or |x|^(−0.4)
    at 0) the panels are split there too, and the panels that end at one use
    tanh-sinh (one degree above), which converges quickly at endpoint
    singularities.  Returns (value, error estimate) per k; a non-finite value
    has error estimate inf.
    """
    guard = 10 + order // 4
    with mpmath.workdps(digits + guard):
        eps = mpmath.mpf(10) ** (-(digits + guard - 2))
        cut = _cutoff(fn, order, eps, singular)
        pts = sorted({mpmath.mpf(b) for b in [*breakpoints, *singular] if -cut < b < cut}
                     | {mpmath.mpf(0), -cut, cut})
        ends = {mpmath.mpf(p) for p in singular}
        coarse = _sums(fn, pts, order, 5, ends)
        for degree in (6, 7, 8):  # refine (twice at most) until within the tolerance
            fine = _sums(fn, pts, order, degree, ends)
            out = []
            for k in range(order):
                scale = 1 / mpmath.sqrt(2 * mpmath.pi * mpmath.factorial(k))
                value, err = fine[k] * scale, abs(fine[k] - coarse[k]) * scale
                out.append((+value, float(err) if mpmath.isfinite(value) and mpmath.isfinite(err) else math.inf))
            if all(err <= tolerance(value, digits) for value, err in out):
                break
            coarse = fine
        return out


def tolerance(value, digits: int) -> float:
    """The error a numeric μ_k may carry when shown to ``digits`` digits: 10^(−digits)·max(1, |μ_k|)."""
    return 10.0 ** (-digits) * max(1.0, float(abs(value)) if mpmath.isfinite(value) else 1.0)


def _integrand_size(fn, t, order):
    return abs(fn(t)) * mpmath.exp(-t * t / 2) * abs(_he_mp(order, t)) + mpmath.exp(-t * t / 2)


def _cutoff(fn, order, eps, singular=()):
    t = mpmath.mpf(max([8, *(abs(p) + 2 for p in singular)]))
    while t < 80 and max(_integrand_size(fn, t, order), _integrand_size(fn, -t, order)) > eps:
        t += 2
    return t


def _sums(fn, pts, order, degree, singular=frozenset()):
    rules = GaussLegendre(mpmath.mp), TanhSinh(mpmath.mp)
    acc = [mpmath.mpf(0)] * order
    for a, b in zip(pts[:-1], pts[1:]):
        panels = max(1, int(mpmath.ceil((b - a) / 2)))
        edges = [a + (b - a) * i / panels for i in range(panels + 1)]
        for lo, hi in zip(edges[:-1], edges[1:]):
            ts = lo in singular or hi in singular
            for t, w in _nodes(rules[ts], lo, hi, degree + ts):
                base = w * fn(t) * mpmath.exp(-t * t / 2)
                h0, h1 = mpmath.mpf(1), t
                for k in range(order):
                    acc[k] += base * h0
                    h0, h1 = h1, t * h1 - (k + 1) * h0
    return acc


def _nodes(rule, lo, hi, degree):
    """The complete rule of the given degree (tanh-sinh keeps only each level's new nodes: join them)."""
    if not isinstance(rule, TanhSinh):
        return rule.get_nodes(lo, hi, degree, mpmath.mp.prec)
    h = mpmath.mpf(2) ** (-degree)
    return [(t, w * h) for j in range(1, degree + 1) for t, w in rule.get_nodes(lo, hi, j, mpmath.mp.prec)]


def _he_mp(k: int, t):
    a, b = mpmath.mpf(1), t
    if k == 0:
        return a
    for n in range(1, k):
        a, b = b, t * b - n * a
    return b


def numeric_coefficient(k: int, value, err: float, why: str, digits: int, allow_inaccurate: bool = False,
                        name: str = "the activation", rule: str = "Gauss–Legendre") -> HermiteCoefficient:
    """μ_k from the numeric route, refused (AccuracyError) when its error estimate exceeds
    :func:`tolerance` unless ``allow_inaccurate``; then the route says it is inaccurate."""
    tol = tolerance(value, digits)
    route = f"numeric: {rule} quadrature (est. error {err:.1e}; {why})"
    if not err <= tol:
        if not allow_inaccurate:
            raise AccuracyError(f"mu_{k} of {name}: the quadrature's error estimate {err:.1e} exceeds the "
                                f"tolerance {tol:.0e} for {digits} digits (allow_inaccurate=True or "
                                "--allow-inaccurate returns it anyway, marked INACCURATE)")
        route = f"numeric, INACCURATE: {rule} quadrature (est. error {err:.1e} > tolerance {tol:.0e}; {why})"
    return HermiteCoefficient(k, None, value, route, err)
