"""Deciding φ ∈ L²(N(0, 1)) soundly, without evaluating φ.

An abstract interpretation of the SymPy tree, one smooth piece at a time
(:mod:`ntksym.gaussian.pieces`), that computes for every subexpression e:

* a **range**: a closed interval (Python floats, overflow → ±inf) holding e on
  the piece's interval;
* its **singularities**: finitely many points p near which e may be unbounded,
  each with an order a, |e| ≤ C·|x − p|^(−a) (a logarithm counts as an
  arbitrarily small order, :data:`EPS`);
* its **growth** at each infinite end of the piece, as upper bounds of e and of
  log|e| on the scale c·|x|^s + o(|x|^s) (s > 0) or c·log|x| + O(1) (s = 0).

φ is accepted when every singular order is below 1/2 (|x − p|^(−2a) is
integrable iff a < 1/2) and log|φ| ≤ c·x² + o(x²) with c < 1/4 at both ends.
Every rule is an upper bound, so an accepted φ is square-integrable; whatever
the rules cannot bound (a possible zero of a denominator that is not a
polynomial, log of a possibly negative quantity, tan over a pole, exp of
something unbounded near a singular point, an unknown function, ...) is
refused with the reason.  Polynomial subexpressions are limited to degree
:data:`MAX_DEGREE` (counted structurally, before anything is expanded), and the
whole analysis runs under :func:`ntksym.bounded.time_limit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from ..bounded import time_limit
from ..errors import DerivationTimeout
from .pieces import NotPiecewiseSmooth, split

INF = math.inf
EPS = 1e-9            # order of a logarithmic singularity or growth: |log t| ≤ C_ε t^ε for every ε > 0
MAX_DEGREE = 200      # largest polynomial degree of any subexpression
SECONDS = 5.0         # budget of the whole analysis
SPLIT_SECONDS = 1.5   # of which splitting into smooth pieces
_BOUNDED_FUNCS = {sp.sin: (-1.0, 1.0), sp.cos: (-1.0, 1.0)}


class Refused(Exception):
    """φ is not shown to be in L²(N(0, 1)); the message says why."""


@dataclass(frozen=True)
class G:
    """An asymptotic upper bound c·x^s + o(x^s) (s > 0) or c·log x + O(1) (s = 0); s = inf: none."""
    s: float
    c: float

    def key(self):
        if self.s == INF:
            return (3, 0.0, 0.0)
        if self.s > 0 and self.c >= 0:
            return (2, self.s, self.c)
        if self.s == 0:
            return (1, 0.0, self.c)
        return (0, -self.s, self.c)


BOUNDED, HUGE = G(0.0, 0.0), G(INF, INF)


def _gsum(items) -> G:
    out = BOUNDED
    for g in items:
        if g.s == INF or out.s == INF:
            return HUGE
        if g.s > out.s:
            out = g
        elif g.s == out.s:
            out = G(g.s, g.c + out.c)
    return out


def _gmax(items) -> G:
    return max(items, key=G.key)


def _gmin(items) -> G:
    return min(items, key=G.key)


def _scale(g: G, k: float) -> G:
    """k·g for k ≥ 0."""
    if k == 0:
        return BOUNDED
    return g if g.s == INF else G(g.s, g.c * k)


def _upper_from_mag(m: G) -> G:
    """An upper bound of e from one of log|e|."""
    if m.key() <= BOUNDED.key():
        return BOUNDED
    return G(m.c, INF) if m.s == 0 else HUGE


def _f(v) -> float:
    try:
        return float(v)
    except OverflowError:
        return INF if v > 0 else -INF


def _safe(fn, t: float, default: float) -> float:
    try:
        return fn(t)
    except OverflowError:
        return default
    except ValueError:
        return default


def _mul(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b


@dataclass(frozen=True)
class Integrability:
    """What the analysis showed: φ ∈ L², with the points where φ may be unbounded."""
    singular_points: tuple[float, ...]


class _Analysis:
    """The analysis of one smooth piece on the interval (lo, hi)."""

    def __init__(self, x: sp.Symbol, lo: float, hi: float):
        self.x, self.lo, self.hi = x, lo, hi
        self._range, self._sing, self._mag, self._up, self._deg, self._poly = {}, {}, {}, {}, {}, {}

    # ------------------------------------------------------------ helpers

    def show(self, e) -> str:
        text = sp.sstr(e)
        return text if len(text) <= 60 else text[:57] + "..."

    def degree(self, e) -> float | None:
        """Structural polynomial degree in x (None: not a polynomial), never expanding."""
        if e in self._deg:
            return self._deg[e]
        if e == self.x:
            d = 1.0
        elif not e.has(self.x):
            d = 0.0
        elif e.is_Add:
            ds = [self.degree(a) for a in e.args]
            d = None if None in ds else max(ds)
        elif e.is_Mul:
            ds = [self.degree(a) for a in e.args]
            d = None if None in ds else sum(ds)
        elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
            b = self.degree(e.base)
            d = None if b is None else b * int(e.exp)
        else:
            d = None
        if d is not None and d > MAX_DEGREE:
            raise Refused(f"it contains a polynomial of degree {int(d)} (the bound is {MAX_DEGREE})")
        self._deg[e] = d
        return d

    def poly(self, e) -> sp.Poly | None:
        if e not in self._poly:
            self._poly[e] = sp.Poly(e, self.x) if self.degree(e) is not None and e.has(self.x) else None
        return self._poly[e]

    def roots(self, e) -> list[tuple[float, int]]:
        """Real roots of the polynomial e in the closed piece, with multiplicities."""
        p = self.poly(e)
        if p.free_symbols - {self.x}:
            raise Refused(f"the zeros of {self.show(e)} depend on symbols")
        if p.degree() == 1:
            a, b = p.all_coeffs()
            found = [(_f(-b / a), 1)]
        else:
            try:
                found = [(_f(r), m) for r, m in sp.real_roots(p, multiple=False)]
            except (sp.PolynomialError, NotImplementedError, ValueError, TypeError):
                raise Refused(f"cannot locate the real zeros of {self.show(e)}") from None
        return [(r, m) for r, m in found if self.lo - 1e-12 <= r <= self.hi + 1e-12]

    # ------------------------------------------------------------ range

    def range(self, e) -> tuple[float, float]:
        if e not in self._range:
            lo, hi = self._range_of(e)
            if math.isnan(lo) or math.isnan(hi):
                lo, hi = -INF, INF
            self._range[e] = (lo, hi)
        return self._range[e]

    def _range_of(self, e):
        x = self.x
        if e == x:
            return self.lo, self.hi
        if not e.has(x):
            if e.is_extended_real is False or e.has(sp.I):
                raise Refused(f"the constant {self.show(e)} is not real")
            try:
                v = _f(sp.N(e, 20))
            except (TypeError, ValueError):
                raise Refused(f"the constant {self.show(e)} is not a finite real number") from None
            if not math.isfinite(v):
                raise Refused(f"the constant {self.show(e)} is not a finite real number")
            return v, v
        if e.is_Add:
            rs = [self.range(a) for a in e.args]
            return sum(r[0] for r in rs), sum(r[1] for r in rs)
        if e.is_Mul:
            lo, hi = 1.0, 1.0
            for a in e.args:
                alo, ahi = self.range(a)
                ps = [_mul(u, v) for u in (lo, hi) for v in (alo, ahi)]
                lo, hi = min(ps), max(ps)
            return lo, hi
        if e.is_Pow:
            return self._pow_range(e)
        f, args = type(e), e.args
        ranges = [self.range(a) for a in args] if not isinstance(e, sp.Piecewise) else []
        if f in _BOUNDED_FUNCS:
            return _BOUNDED_FUNCS[f]
        if f in (sp.Max, sp.Min):
            rs = [self.range(a) for a in args]
            pick = max if f is sp.Max else min
            return pick(r[0] for r in rs), pick(r[1] for r in rs)
        if isinstance(e, sp.Piecewise):
            rs = [self.range(b) for b, _ in args]
            return min(r[0] for r in rs), max(r[1] for r in rs)
        lo, hi = ranges[0] if ranges else (-INF, INF)
        if f is sp.exp:
            return _safe(math.exp, lo, INF), _safe(math.exp, hi, INF)
        if f is sp.log:
            if lo < 0:
                raise Refused(f"{self.show(e)} is not real where {self.show(args[0])} < 0 "
                              "(cannot show it is >= 0)")
            return (_safe(math.log, lo, -INF) if lo > 0 else -INF), (_safe(math.log, hi, INF) if hi > 0 else -INF)
        if f is sp.tanh:
            return math.tanh(lo), math.tanh(hi)
        if f is sp.erf:
            return math.erf(lo), math.erf(hi)
        if f is sp.erfc:
            return math.erfc(hi), math.erfc(lo)
        if f is sp.atan:
            return math.atan(lo), math.atan(hi)
        if f is sp.asinh:
            return _safe(math.asinh, lo, -INF), _safe(math.asinh, hi, INF)
        if f is sp.sinh:
            return _safe(math.sinh, lo, -INF), _safe(math.sinh, hi, INF)
        if f is sp.cosh:
            m = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
            return _safe(math.cosh, m, INF), _safe(math.cosh, max(abs(lo), abs(hi)), INF)
        if f is sp.tan:
            k = self._tan_branch(e)
            return math.tan(lo - k * math.pi), math.tan(hi - k * math.pi)
        if f is sp.Abs:
            return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
        if f is sp.sign:
            return float(math.copysign(1, lo)) if lo != 0 else 0.0, float(math.copysign(1, hi)) if hi != 0 else 0.0
        if f is sp.Heaviside:
            return (1.0 if lo > 0 else 0.0), (0.0 if hi < 0 else 1.0)
        raise Refused(f"the function {f.__name__} is not covered by the analysis")

    def _pow_range(self, e):
        lo, hi = self.range(e.base)
        n = e.exp
        if not n.is_number:
            return self.range(sp.exp(n * sp.log(e.base)))
        v, odd = _f(n), n.is_Integer and int(n) % 2 == 1
        if not n.is_Integer and lo < 0:
            raise Refused(f"{self.show(e)} is not real where {self.show(e.base)} < 0 (cannot show it is >= 0)")
        if v == 0:
            return 1.0, 1.0

        def pw(t):
            if t == 0:
                return INF if v < 0 else 0.0
            r = _safe(lambda s: abs(s) ** v, t, INF)
            return math.copysign(r, t) if odd else r
        if lo < 0 < hi and not odd:      # even power (an integer: non-integers need lo >= 0)
            return (0.0, max(pw(lo), pw(hi))) if v > 0 else (0.0, INF)
        if v < 0 and lo <= 0 <= hi:
            return (pw(hi), INF) if lo == 0 else (-INF, INF)
        a, b = pw(lo), pw(hi)
        return min(a, b), max(a, b)

    def _tan_branch(self, e) -> int:
        lo, hi = self.range(e.args[0])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise Refused(f"{self.show(e)} has poles (its argument is unbounded)")
        k = math.floor((lo + math.pi / 2) / math.pi)
        if not (k * math.pi - math.pi / 2 < lo and hi < k * math.pi + math.pi / 2):
            raise Refused(f"{self.show(e)} may have a pole (its argument reaches an odd multiple of pi/2)")
        return k

    # ------------------------------------------------------------ singularities

    def sing(self, e) -> dict[float, float]:
        if e not in self._sing:
            self._sing[e] = self._sing_of(e)
        return self._sing[e]

    def _sing_of(self, e) -> dict[float, float]:
        x = self.x
        if not e.has(x) or e == x:
            return {}
        lo, hi = self.range(e)
        if math.isfinite(lo) and math.isfinite(hi):
            return {}
        if e.is_Add or isinstance(e, (sp.Max, sp.Min, sp.Piecewise)):
            parts = [self.sing(a) for a in (e.args if not isinstance(e, sp.Piecewise) else [b for b, _ in e.args])]
            return _merge(parts, max)
        if e.is_Mul:
            return _merge([self.sing(a) for a in e.args], lambda a, b: a + b)
        if e.is_Pow:
            return self._pow_sing(e)
        f, u = type(e), e.args[0]
        su = self.sing(u)
        if f is sp.Abs:
            return su
        if f in (sp.log, sp.asinh):
            zeros = self._zeros(u) if f is sp.log else []
            return _merge([{p: EPS for p in su}, {p: EPS for p, _ in zeros}], max)
        if f in (sp.exp, sp.sinh, sp.cosh):
            if su:
                p = min(su)
                raise Refused(f"{self.show(e)} may be unbounded near x = {p:g} (its argument is)")
            return {}
        raise Refused(f"cannot bound {self.show(e)} near its singular points")

    def _zeros(self, u) -> list[tuple[float, int]]:
        lo, hi = self.range(u)
        if lo > 0 or hi < 0:
            return []
        if self.degree(u) is not None:
            return self.roots(u)
        raise Refused(f"cannot show that {self.show(u)} has no zeros (it may vanish where it is divided by or "
                      "its logarithm is taken)")

    def _pow_sing(self, e) -> dict[float, float]:
        u, n = e.base, e.exp
        if not n.is_number:
            return self.sing(sp.exp(n * sp.log(u)))
        v = _f(n)
        self.range(e)  # realness
        su = self.sing(u)
        if v >= 0:
            return {p: a * v for p, a in su.items()}
        zeros = self._zeros(u)
        if zeros and su:
            raise Refused(f"cannot bound {self.show(e)} near the singular points of {self.show(u)}")
        return {p: -v * m for p, m in zeros}

    # ------------------------------------------------------------ growth at infinity

    def mag(self, e, d: int) -> G:
        """Bound of log|e| as x → d·∞."""
        k = (e, d)
        if k not in self._mag:
            self._mag[k] = self._mag_of(e, d)
        return self._mag[k]

    def _mag_of(self, e, d: int) -> G:
        x = self.x
        if not e.has(x):
            return BOUNDED
        if e == x:
            return G(0.0, 1.0)
        lo, hi = self.range(e)
        if math.isfinite(lo) and math.isfinite(hi):
            return BOUNDED
        if e.is_Add or isinstance(e, (sp.Max, sp.Min, sp.Abs, sp.Piecewise)):
            args = e.args if not isinstance(e, sp.Piecewise) else [b for b, _ in e.args]
            return _gmax([self.mag(a, d) for a in args])
        if e.is_Mul:
            return _gsum(self.mag(a, d) for a in e.args)
        if e.is_Pow:
            u, n = e.base, e.exp
            if not n.is_number:
                return self.mag(sp.exp(n * sp.log(u)), d)
            v = _f(n)
            if v >= 0:
                return _scale(self.mag(u, d), v)
            ulo, uhi = self.range(u)
            if ulo > 0 or uhi < 0:
                return BOUNDED
            if self.degree(u) is not None:
                return G(0.0, v * self.poly(u).degree())
            raise Refused(f"cannot bound {self.show(e)} at infinity")
        f, u = type(e), e.args[0]
        if f is sp.exp:
            return self.up(u, 1, d)
        if f in (sp.sinh, sp.cosh):
            return _gmax([self.up(u, 1, d), self.up(u, -1, d)])
        if f is sp.log and isinstance(u, sp.Pow) and u.exp.is_number and self.range(u.base)[0] >= 0:
            return self.mag(sp.log(u.base), d)
        if f in (sp.log, sp.asinh):
            if f is sp.log and self.range(u)[0] <= 0 and self.degree(u) is None:
                raise Refused(f"cannot bound {self.show(e)} at infinity ({self.show(u)} may tend to 0)")
            m = self.mag(u, d)
            if m.key() <= BOUNDED.key():
                return BOUNDED if f is sp.asinh or self.range(u)[0] > 0 else G(0.0, EPS)
            return HUGE if m.s == INF else G(0.0, EPS if m.s == 0 else m.s)
        raise Refused(f"cannot bound {self.show(e)} at infinity")

    def up(self, e, sgn: int, d: int) -> G:
        """Bound of sgn·e as x → d·∞."""
        k = (e, sgn, d)
        if k not in self._up:
            self._up[k] = self._up_of(e, sgn, d)
        return self._up[k]

    def _up_of(self, e, sgn: int, d: int) -> G:
        x = self.x
        if not e.has(x):
            return BOUNDED
        lo, hi = self.range(e)
        if math.isfinite(hi if sgn > 0 else lo):
            return BOUNDED
        if self.degree(e) is not None:
            p = self.poly(e)
            n = p.degree()
            return G(float(n), sgn * _f(p.LC()) * d ** n)
        if e.is_Add:
            return _gsum(self.up(a, sgn, d) for a in e.args)
        if e.is_Mul:
            coeff, rest = e.as_coeff_Mul()
            if coeff != 1 and coeff.is_number:
                c = _f(coeff)
                return _scale(self.up(rest, sgn if c > 0 else -sgn, d), abs(c))
        if isinstance(e, (sp.exp, sp.cosh, sp.Abs)) and sgn < 0:
            return BOUNDED
        if isinstance(e, sp.log) and sgn > 0:
            return self.mag(e.args[0], d)
        if isinstance(e, (sp.Max, sp.Min)):
            ups = [self.up(a, sgn, d) for a in e.args]
            return (_gmax if isinstance(e, sp.Max) == (sgn > 0) else _gmin)(ups)
        return _upper_from_mag(self.mag(e, d))


def _merge(parts, combine) -> dict[float, float]:
    out: dict[float, float] = {}
    for part in parts:
        for p, a in part.items():
            q = next((r for r in out if abs(r - p) <= 1e-12 * max(1.0, abs(p))), p)
            out[q] = combine(out[q], a) if q in out else a
    return out


def ae_derivative(expr: sp.Expr, x: sp.Symbol) -> sp.Expr:
    """φ' almost everywhere (the Dirac parts of jumps dropped; Gaussian rules handle them)."""
    d = sp.diff(expr, x)
    return d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


def analyse(expr: sp.Expr, x: sp.Symbol, seconds: float = SECONDS) -> Integrability:
    """Show that ``expr`` is in L²(N(0, 1)), or raise :class:`Refused` with the reason."""
    try:
        with time_limit(seconds, "square-integrability analysis"):
            return _analyse(expr, x)
    except DerivationTimeout:
        raise Refused(f"cannot decide square-integrability within {seconds:g} s") from None
    except RecursionError:
        raise Refused("the expression is too deeply nested to analyse") from None


def _analyse(expr, x) -> Integrability:
    if expr.has(sp.DiracDelta, sp.Derivative, sp.Subs):
        raise Refused("it is not piecewise smooth (it contains an unevaluated derivative or a delta)")
    sizes = _Analysis(x, -INF, INF)
    for node in set(sp.preorder_traversal(expr)):  # degree bound first, before anything is expanded
        sizes.degree(node)
    try:  # per piece when it splits quickly (step(x)*log(x) needs it), else on the whole line
        with time_limit(SPLIT_SECONDS, "splitting into pieces"):
            pieces = [(p.lo, p.hi, p.expr) for p in split(expr, x)]
    except (NotPiecewiseSmooth, DerivationTimeout, ValueError, TypeError):
        pieces = [(-sp.oo, sp.oo, expr)]
    points: set[float] = set()
    for lo, hi, e in pieces:
        an = _Analysis(x, _f(lo), _f(hi))
        an.range(e)
        for p, a in an.sing(e).items():
            if a >= 0.5:
                what = "a pole" if a >= 1 and a == int(a) else f"a singularity |x - {p:g}|^(-{a:g})"
                raise Refused(f"it has {what} at x = {p:g} (square-integrable only below order 1/2)")
            points.add(p)
        for d, end in ((1, hi), (-1, lo)):
            if end in (sp.oo, -sp.oo):
                m = an.mag(e, d)
                if m.s > 2 or m.s == 2 and m.c >= 0.25:
                    side = "+" if d > 0 else "-"
                    rate = "faster than any exp(c*x^2)" if m.s == INF or m.c == INF or m.s > 2 else \
                        f"like exp({m.c:g}*x^2) (the bound is exp(x^2/4))"
                    raise Refused(f"it grows {rate} as x -> {side}oo")
    return Integrability(tuple(sorted(points)))
