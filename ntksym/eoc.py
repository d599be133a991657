"""Signal propagation and the edge of chaos (Poole et al. 2016; Schoenholz et al. 2017).

Definitions used here (weights W ~ N(0, σ_w²/n), biases b ~ N(0, σ_b²); the maps are
the same in the 'ntk' and 'standard' parameterizations):

* **Variance map** V(q) = σ_w² E[φ(√q Z)²] + σ_b², Z ~ N(0, 1), on q ≥ 0 (V(0) is the limit
  q → 0⁺).  Every fixed point q = V(q) on [0, 10¹²] is found — sign changes of V(q) − q on a
  logarithmic grid of 20 points per decade plus q = 0, each refined by a safeguarded
  regula falsi — and classified by its slope V′(q): *stable* (attracting) if |V′| < 1,
  *unstable* if |V′| > 1, and for |V′| = 1 (e.g. q = 0 for tanh at σ_w = 1, σ_b = 0)
  *marginally stable* / *marginally unstable* by the sign of V(q) − q beside it (the
  layer variances then approach algebraically, not geometrically).
* **q*** is the stable fixed point that the layer variances q^{l+1} = V(q^l) reach from
  the first layer's pre-activation variance q¹ = ``q0`` (q¹ = σ_w²‖x‖²/d + σ_b²); the other
  fixed points are listed in :attr:`Phase.fixed_points`.  Without an explicit ``q0`` the
  orbit starts at q¹ = 1, and when that orbit grows without bound or starts on an unstable
  fixed point, q* is the stable fixed point nearest to 1 and :attr:`Phase.note` says so; with
  an explicit ``q0`` that is an error (NetworkError) in words.
* **χ₁** = σ_w² E[φ′(√q* Z)²], the slope of the correlation map at c = 1: ordered χ₁ < 1,
  edge of chaos χ₁ = 1, chaotic χ₁ > 1 (Poole et al. 2016; Schoenholz et al. 2017 §3).
  φ′ is the convention of the dual kernels (:attr:`DualKernels.kdot`): with the
  distributional derivative of a jump, χ₁ = ∞.
* **ξ_q** = −1/log|V′(q*)|: q^l − q* decays like e^{−l/ξ_q} (Schoenholz et al. 2017 §3 write
  V′(q*) = χ₁ + σ_w² E[φ″φ] for smooth φ); ξ_q = 0 if V′(q*) = 0 and ∞ if |V′(q*)| = 1.
* **ξ_c** = −1/log χ_c with χ_c = σ_w² E[φ′(u₁)φ′(u₂)] at the stable fixed point c* of the
  correlation map C(c) = (σ_w² E[φ(u₁)φ(u₂)] + σ_b²)/q*, (u₁, u₂) ~ N(0, q*[[1, c], [c, 1]])
  (Schoenholz et al. 2017 §3).  C is increasing and convex on [0, 1] (its Hermite series has
  non-negative coefficients) with C(1) = 1, so c* = 1 and χ_c = χ₁ when χ₁ ≤ 1, and c* is the
  unique root of C(c) = c in [0, 1) when χ₁ > 1.
* **q* = 0** (σ_b = 0, φ(0) = 0): V′(0) and χ₁ are the limits σ_w²(φ′(0⁺)² + φ′(0⁻)²)/2;
  ξ_c = ∞, because as q^l → 0 the layer acts through the linearisation of φ at 0 (a·s + b·|s|),
  whose normalised correlation map has slope 1 at c = 1; c* is then 1 for a kink at 0 and
  undefined (input-dependent: correlations are preserved) for φ differentiable at 0.

Numbers.  E[φ²], E[φ′²] and dE[φ(√qZ)²]/dq come from the closed-form dual kernels on the
diagonal when the engine has them (mpmath at 30 digits; the error estimate is the change
from 30 to 40 digits), else from a composite Gauss–Legendre rule in t = x/√q whose panels
follow both the Gaussian weight and φ's own scales (geometric in x, ratio 4, from 4⁻⁴ to 4⁵, plus
φ's breakpoints), in float64; the difference between 16- and 24-point panels plus a
round-off term is the error estimate.  dE[φ(√qZ)²]/dq = E[φφ′(√qZ)·Z]/√q (φ continuous
away from 0) or E[φ(√qZ)²(Z² − 1)]/(2q) (the heat equation; any φ).  Estimates are
propagated to every reported number, which is rounded to the digits it has; q*, χ₁ or σ_w
with an estimated relative error above :data:`REL_TOL` are refused (AccuracyError).

Positively homogeneous activations of degree 1 (the a·s + b·|s| family) are handled
exactly: V(q) = σ_w²(a² + b²)q + σ_b², χ₁ = σ_w²E[φ′(Z)²], EOC σ_w² = 1/E[φ′(Z)²], σ_b = 0.

Every call of :func:`phase` or :func:`edge_of_chaos` takes well under 5 s for every catalogue
activation (a few hundred 1-D quadratures).  Failures are NtksymError sentences.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from .activation import Activation
from .errors import AccuracyError, NetworkError, NtksymError
from .gaussian.dual import C, Q1, Q2, DualKernels

DPS = 30
Q_MAX = 1e12
GRID = tuple(10.0 ** (k / 20) for k in range(-240, 241))   # 1e-12 … 1e12, 20 points per decade
REL_TOL = 1e-8          # q*, χ₁, σ_w with a larger estimated relative error are refused
_ORBIT_STEPS = 600
_SLOPE_TOL = 1e-12      # |V′| this close to 1 (beyond its error estimate) is marginal

_T_EDGES = np.array([0.5, 1, 1.5, 2, 3, 4, 5, 6, 7, 8.5, 10, 12, 15, 19, 24, 30])
_T_MAX = 38.5           # the standard normal density is below 1e-320 beyond
_X_SCALES = 4.0 ** np.arange(-4, 6)
_ORDERS = (16, 24)


def _mp(x):
    """An mpmath number from a Python, NumPy, mpmath or SymPy number."""
    return mpmath.mpf(sp.N(x, DPS + 5)) if isinstance(x, sp.Basic) else mpmath.mpf(x)


@functools.lru_cache(maxsize=4)
def _gl(n: int):
    return np.polynomial.legendre.leggauss(n)


class _PanelQuad:
    """E[f(√q Z)] for f = φ², φ′² and the q-derivative of E[φ(√qZ)²], float64 (module docstring)."""

    def __init__(self, act: Activation, heat: bool):
        self.phi, self.dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
        bps = [float(b) for b in act.breakpoints]
        self.right = np.array(sorted(b for b in bps if b > 0))
        self.left = np.array(sorted(-b for b in bps if b < 0))
        self.heat = heat
        self._cache: dict[float, dict] = {}

    @staticmethod
    def _edges(sq: float, bps: np.ndarray) -> np.ndarray:
        e = np.sort(np.concatenate([_X_SCALES / sq, bps / sq, _T_EDGES]))
        e = e[(e > 0) & (e < _T_MAX)]
        if len(e) > 1:
            e = e[np.concatenate([[True], np.diff(e) > 1e-12 * e[1:]])]
        return np.concatenate([[0.0], e, [_T_MAX]])

    def _nodes(self, q: float):
        """Nodes t and weights of the 16-point rule, then of the 24-point rule, on the same panels;
        the count of 16-point nodes; the index of the outermost 24-point node."""
        sq = math.sqrt(q)
        sides = [(1.0, self._edges(sq, self.right)), (-1.0, self._edges(sq, self.left))]
        ts, ws = [], []
        for n in _ORDERS:
            xg, wg = _gl(n)
            for sign, e in sides:
                a, h = e[:-1, None], (e[1:] - e[:-1])[:, None] / 2
                t = (a + h * (xg + 1)).ravel()
                ts.append(sign * t)
                ws.append((h * wg).ravel() * np.exp(-t * t / 2) * (1 / math.sqrt(2 * math.pi)))
        n_lo = len(ts[0]) + len(ts[1])
        return np.concatenate(ts), np.concatenate(ws), n_lo, n_lo + len(ts[2]) - 1

    def many(self, qs) -> list[dict]:
        """:meth:`__call__` at many q > 0 with one vectorised evaluation of φ and φ′."""
        todo = [q for q in dict.fromkeys(float(q) for q in qs) if q not in self._cache]
        if todo:
            parts = [self._nodes(q) for q in todo]
            sizes = np.array([len(p[0]) for p in parts])
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            cuts = np.stack([starts, starts + np.array([p[2] for p in parts])], axis=1).ravel()
            far = starts + np.array([p[3] for p in parts])
            t, w = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            sq = np.repeat(np.sqrt(np.array(todo)), sizes)
            with np.errstate(all="ignore"):
                f, g = self.phi(sq * t), self.dphi(sq * t)
                dm = f * f * (t * t - 1) / (2 * sq * sq) if self.heat else f * g * t / sq
                res = {}
                for name, v in (("m2", f * f), ("kd", g * g), ("dm2", dm)):
                    wv = w * v
                    sums = np.add.reduceat(wv, cuts).reshape(-1, 2)          # (16-point, 24-point)
                    absum = np.add.reduceat(np.abs(wv), cuts).reshape(-1, 2)[:, 1]
                    err = np.abs(sums[:, 1] - sums[:, 0]) + 1e-15 * absum + 40 * np.abs(wv[far])
                    err = np.where(np.isfinite(sums).all(axis=1), err, np.inf)   # overflow or NaN: unresolved
                    res[name] = (sums[:, 1], err)
            for i, q in enumerate(todo):
                if len(self._cache) < 50000:
                    self._cache[q] = {k: (float(v[i]), float(e[i])) for k, (v, e) in res.items()}
            if len(self._cache) >= 50000:
                return [{k: (float(v[todo.index(float(q))]), float(e[todo.index(float(q))]))
                         for k, (v, e) in res.items()} if float(q) in todo else self._cache[float(q)] for q in qs]
        return [self._cache[float(q)] for q in qs]

    def __call__(self, q: float) -> dict:
        """{'m2' | 'kd' | 'dm2': (value, abs error)} at q > 0."""
        q = float(q)
        return self._cache[q] if q in self._cache else self.many([q])[0]


class _Moments:
    """E[φ(√qZ)²] ('m2'), E[φ′(√qZ)²] ('kd') and d/dq E[φ(√qZ)²] ('dm2') as (mpf value, mpf error)."""

    def __init__(self, act: Activation, dual: DualKernels):
        self.act, self.dual = act, dual
        self.distributional = bool(dual.kdot_distributional)
        q = sp.Symbol("q", positive=True)
        self.q = q
        self.exprs: dict[str, sp.Expr] = {}
        m2 = self._diagonal("khat")
        if m2 is not None:
            self.exprs["m2"] = m2
        if not self.distributional:
            kd = self._diagonal("kdot")
            if kd is not None:
                self.exprs["kd"] = kd
        self.plain = plain = sp.Symbol("q_plain")     # no assumptions: SymPy's sign queries on big polynomials are slow
        self.exprs = {k: e.xreplace({q: plain}) for k, e in self.exprs.items()}
        if "m2" in self.exprs:
            self.exprs["dm2"] = sp.diff(self.exprs["m2"], plain)
        self._fns = {k: sp.lambdify(plain, e, "mpmath") for k, e in self.exprs.items()}
        off_zero = [b for b in (*act.breakpoints, *(float(j) for j in getattr(dual, "jumps", ()) or ())) if b != 0]
        unplaced = not act.breakpoints and act.concrete.has(sp.sign, sp.Heaviside, sp.Piecewise)
        self.quad = _PanelQuad(act, heat=bool(off_zero) or unplaced)

    def _diagonal(self, which: str):
        """The closed form at q₁ = q₂ = c = q (plain substitution; the engine's simplifying
        :meth:`DualKernels.diagonal` only when that leaves 0/0), or None."""
        e = getattr(self.dual, which)
        if e is None:
            return None
        bad = (sp.zoo, sp.nan, sp.oo, -sp.oo)
        d = e.subs({Q1: self.q, Q2: self.q}).subs(C, self.q)
        if d.has(*bad):
            from .bounded import time_limit
            from .errors import DerivationTimeout
            try:
                with time_limit(2.0, "diagonal of the dual kernel"):
                    d = self.dual.diagonal(which)
            except DerivationTimeout:
                return None
        return None if d is None or d.has(*bad) else d

    @property
    def route(self) -> str:
        if self.distributional:
            how = "closed-form E[φ²]" if "m2" in self.exprs else "E[φ²] by Gauss–Legendre panel quadrature (float64)"
            return f"{how}; Σ̇ with the distributional derivative (Dirac part at the jumps): χ₁ = ∞"
        closed = [k for k in ("m2", "kd") if k in self.exprs]
        if len(closed) == 2:
            return "closed-form Gaussian moments (mpmath, 30 digits)"
        quad = "Gauss–Legendre panel quadrature in float64 (16/24-point error estimate)"
        return quad if not closed else f"closed-form E[φ²], {quad} for E[φ′²]"

    def _closed(self, name: str, q):
        fn = self._fns.get(name)
        if fn is None:
            return None
        for lo, hi in ((DPS, DPS + 10), (2 * DPS, 3 * DPS), (4 * DPS, 6 * DPS)):   # more digits on cancellation
            vals = []
            for dps in (lo, hi):
                try:
                    with mpmath.workdps(dps):
                        v = fn(mpmath.mpf(q))
                except (ArithmeticError, ValueError, TypeError):
                    return None
                if isinstance(v, mpmath.mpc):
                    if abs(v.imag) > mpmath.mpf(10) ** (5 - DPS) * abs(v.real):
                        return None
                    v = v.real
                v = mpmath.mpf(v)
                if not mpmath.isfinite(v):
                    return None
                vals.append(v)
            with mpmath.workdps(DPS):
                val, err = +vals[1], abs(vals[1] - vals[0]) + abs(vals[1]) * mpmath.mpf(10) ** (2 - DPS)
            if err <= abs(val) * mpmath.mpf(10) ** (5 - DPS):
                break
        if name == "dm2" and self.exprs["dm2"] != 0:
            # a derivative formula can cancel to exactly 0 at every precision (d/dq of 1 − e^{−2a²q}, large a):
            # its error is at least the round-off on the scale E[φ²]/q of its terms
            m2 = self._closed("m2", q)
            if m2 is not None:
                with mpmath.workdps(DPS):
                    err = max(err, m2[0] / mpmath.mpf(q) * mpmath.mpf(10) ** (5 - DPS))
        return val, err

    def get(self, name: str, q):
        """(value, abs error) at q > 0."""
        if name == "kd" and self.distributional:
            return mpmath.inf, mpmath.mpf(0)
        r = self._closed(name, q)
        if r is not None:
            return r
        v, e = self.quad(float(q))[name]
        return mpmath.mpf(v), mpmath.mpf(e)

    @functools.cached_property
    def at_zero(self):
        """(φ(0+), φ(0−), φ′(0+), φ′(0−)) by one-sided differences at 80 digits, or None.  Values and slopes
        at ε = 1e-40 (error O(ε)); a slope that changes between ε = 1e-40 and 1e-32 is not a finite
        nonzero slope: 0 where it shrinks towards 0 (φ = x³), ∞ where it grows (φ = √|x|)."""
        f = self.act.mpmath_fn()
        try:
            with mpmath.workdps(80):
                out = []
                for sign in (1, -1):
                    vals, slopes = [], []
                    for eps in (mpmath.mpf("1e-40"), mpmath.mpf("1e-32")):
                        a, b = mpmath.re(f(sign * eps)), mpmath.re(f(2 * sign * eps))
                        vals.append(2 * a - b)
                        slopes.append((b - a) / (sign * eps))
                    d, d_big = slopes
                    if not abs(d - d_big) <= mpmath.mpf("1e-6") * abs(d_big):
                        d = mpmath.mpf(0) if abs(d) < abs(d_big) else mpmath.inf
                    out.append((vals[0], d))
                res = (out[0][0], out[1][0], out[0][1], out[1][1])
        except (ArithmeticError, ValueError, TypeError):
            return None
        if not all(mpmath.isfinite(v) for v in res[:2]):
            return None
        with mpmath.workdps(DPS):
            return tuple(+v for v in res)

    def phi_zero_is_zero(self) -> bool:
        z = self.at_zero
        return z is not None and abs(z[0]) < 1e-25 and abs(z[1]) < 1e-25

    def m2_zero(self):
        """lim_{q→0} E[φ(√qZ)²] = (φ(0⁺)² + φ(0⁻)²)/2."""
        z = self.at_zero
        if z is None:
            v, _ = self.get("m2", GRID[0])
            return v
        return mpmath.mpf(0) if self.phi_zero_is_zero() else (z[0] ** 2 + z[1] ** 2) / 2

    def kd_zero(self):
        """lim_{q→0} E[φ′(√qZ)²] = (φ′(0⁺)² + φ′(0⁻)²)/2 (∞ for a distributional Σ̇ with a jump at 0)."""
        if self.distributional:
            return mpmath.inf
        z = self.at_zero
        if z is None:
            return None
        return (z[2] ** 2 + z[3] ** 2) / 2


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point q = V(q) of the variance map, its slope V′(q) and its kind."""
    q: mpmath.mpf
    slope: mpmath.mpf
    kind: str            # stable | unstable | marginally stable | marginally unstable | marginal
    error: mpmath.mpf = mpmath.mpf(0)   # estimated absolute error of q

    @property
    def stable(self) -> bool:
        return self.kind in ("stable", "marginally stable")

    def describe(self) -> str:
        return f"q = {mpmath.nstr(self.q, 8)} ({self.kind}, V′ = {mpmath.nstr(self.slope, 6)})"


@dataclass(frozen=True)
class Phase:
    """Signal-propagation summary of one initialization (definitions in the module docstring)."""
    sigma_w: mpmath.mpf
    sigma_b: mpmath.mpf
    q_star: mpmath.mpf
    chi1: mpmath.mpf
    phase: str
    xi_q: mpmath.mpf | None                    # None: not resolved (see note)
    xi_c: mpmath.mpf | None                    # None: not resolved (see note)
    c_star: mpmath.mpf | None                  # None: undefined or not resolved (see note)
    route: str
    fixed_points: tuple[FixedPoint, ...] = ()
    v_slope: mpmath.mpf | None = None          # V′(q*) (None: not resolved, see note)
    note: str = ""
    rel_error: float = 0.0                     # estimated relative error of q*, χ₁ (values are rounded to it)


@dataclass(frozen=True)
class EdgeOfChaos:
    """The EOC point for a given σ_b: σ_w with χ₁ = 1 at the stable fixed point q*."""
    sigma_w: mpmath.mpf
    sigma_b: mpmath.mpf
    q_star: mpmath.mpf | None
    chi1: mpmath.mpf
    exact: sp.Expr | None
    route: str
    others: tuple[tuple[mpmath.mpf, mpmath.mpf, str], ...] = ()   # (σ_w, q, kind) of the other χ₁ = 1 points
    rel_error: float = 0.0


# ------------------------------------------------------------------ helpers


def homogeneous_degree_one(act: Activation) -> bool:
    """φ(t x) = t φ(x) for t > 0, i.e. φ = a·x on x > 0 and b·x on x < 0 (the a·s + b·|s| family)."""
    from .gaussian.pieces import NotPiecewiseSmooth, split
    try:
        pieces = split(act.concrete, act.x)
    except NotPiecewiseSmooth:
        return False
    if len(pieces) > 2 or (len(pieces) == 2 and pieces[1].lo != 0):
        return False
    x = act.x
    return all(p.expr.is_polynomial(x) and sp.expand(p.expr - sp.diff(p.expr, x) * x) == 0
               and sp.diff(p.expr, x, 2) == 0 for p in pieces)


def _no_signal() -> NtksymError:
    return NtksymError("φ ≡ 0 propagates no signal (every layer's output is the bias alone, χ₁ = 0): "
                       "there is no edge of chaos or signal-propagation phase to report")


def _require_signal(act: Activation) -> None:
    """φ ≡ 0 propagates no signal: every layer outputs σ_b·(noise), χ₁ = 0 and there is no EOC."""
    e = act.concrete
    if e == 0 or e.is_zero is True or (not e.free_symbols and sp.N(e, 20) == 0):
        raise _no_signal()


def _sign(v, err) -> int:
    """+1 / −1 where |v| exceeds its error estimate, 0 where the sign is not resolved."""
    if v is None or not (v == v) or not mpmath.isfinite(err):
        return 1 if v == mpmath.inf and mpmath.isfinite(err) else 0
    return 1 if v > err else (-1 if v < -err else 0)


def _refine(fun, a, fa, b, fb, rtol):
    """A root of ``fun`` (returning (value, error)) in [a, b] with fa·fb < 0: Illinois regula falsi
    with geometric bisection while the bracket spans more than a factor 4.  Returns (root, half-width
    of the final bracket, value, error at the root)."""
    side = 0
    c, fc, ec = (a + b) / 2, None, None
    for _ in range(300):
        if a > 0 and b > 4 * a:
            c = mpmath.sqrt(a * b)
        elif a == 0 and b > 0 and fa > 1e3 * abs(fb):
            c = b / 4
        else:
            c = (a * fb - b * fa) / (fb - fa)
            if not a < c < b:
                c = (a + b) / 2
        fc, ec = fun(c)
        if _sign(fc, ec) == 0 or b - a <= rtol * abs(c):
            break
        if (fc > 0) == (fa > 0):
            a, fa = c, fc
            if side == -1:
                fb = fb / 2
            side = -1
        else:
            b, fb = c, fc
            if side == 1:
                fa = fa / 2
            side = 1
    return c, (b - a) / 2, fc, ec


def _round(x, rel):
    """``x`` rounded to the significant digits its relative error ``rel`` leaves (at most 25)."""
    if x is None or not mpmath.isfinite(x) or x == 0:
        return x
    digits = 25 if rel <= 1e-25 else max(2, int(math.floor(-math.log10(rel))))
    return mpmath.mpf(mpmath.nstr(x, digits))


def _xi(s, err_s=0):
    """−1/log|s| and its error (0 for s = 0, ∞ for |s| ≥ 1)."""
    s = abs(s)
    if s == 0:      # ξ = 0, or up to −1/log(error of s) when s is 0 only within its error
        return mpmath.mpf(0), (float(-1 / mpmath.log(err_s)) if 0 < err_s < 1 else 0.0)
    if s >= 1:
        return mpmath.inf, 0.0
    xi = -1 / mpmath.log(s)
    return xi, float(xi * xi * err_s / s) if err_s else 0.0


def _classify(slope, err, side_signs=()) -> str:
    """Kind of a fixed point from V′ (and, when |V′| = 1, the signs of V(q) − q below/above it)."""
    tol = max(_SLOPE_TOL, 4 * float(err))
    if abs(slope) < 1 - tol:
        return "stable"
    if abs(slope) > 1 + tol:
        return "unstable"
    below, above = side_signs if side_signs else (0, 0)
    if slope > 0 and above < 0 and below >= 0:
        return "marginally stable"
    if slope > 0 and (above > 0 or below < 0):
        return "marginally unstable"
    return "marginal"


def _fmt(v, digits=8) -> str:
    return "∞" if v == mpmath.inf else mpmath.nstr(v, digits)


# ------------------------------------------------------------------ fixed points of V


class _VarianceMap:
    """V(q) = σ_w² E[φ(√qZ)²] + σ_b² with its fixed points (module docstring)."""

    def __init__(self, m: _Moments, sw2, sb2):
        self.m, self.sw2, self.sb2 = m, sw2, sb2
        self.rtol = mpmath.mpf(10) ** (4 - DPS) if "m2" in m.exprs else mpmath.mpf("2e-15")
        self.v0 = sw2 * m.m2_zero() + sb2             # V(0⁺)

    def V(self, q):
        if q == 0:
            return self.v0, mpmath.mpf(0)
        v, e = self.m.get("m2", q)
        return self.sw2 * v + self.sb2, self.sw2 * e

    def F(self, q):
        v, e = self.V(q)
        return v - q, e + abs(q) * mpmath.mpf("1e-16") * (0 if "m2" in self.m.exprs else 1)

    def slope(self, q):
        """V′(q) and its error (q = 0: the one-sided limit σ_w²·(φ′(0⁺)² + φ′(0⁻)²)/2 when φ(0) = 0)."""
        if q == 0:
            if self.sw2 == 0:
                return mpmath.mpf(0), mpmath.mpf(0)
            kd0 = self.m.kd_zero() if self.m.phi_zero_is_zero() else None
            if kd0 is None or self.m.distributional:
                return mpmath.inf, mpmath.mpf(0)
            return self.sw2 * kd0, self.sw2 * kd0 * mpmath.mpf("1e-25")
        d, e = self.m.get("dm2", q)
        return self.sw2 * d, self.sw2 * e

    @functools.cached_property
    def scan(self):
        """[(q, F(q), error)] on {0} ∪ GRID."""
        rows = [(mpmath.mpf(0), self.v0, mpmath.mpf(0))]
        if self.sw2 != 0 and all(self.m.get("m2", q)[0] == 0 for q in (1e-6, 1e-2, 1.0, 1e2)):
            raise _no_signal()
        if "m2" not in self.m.exprs:
            self.m.quad.many(GRID)
        for q in GRID:
            f, e = self.F(q)
            rows.append((mpmath.mpf(q), f, e))
        return rows

    def side_signs(self, q):
        """Signs of V − q at the grid points just below and just above q (0 = unresolved)."""
        below = [_sign(f, e) for g, f, e in self.scan if 0 < g < q * (1 - 1e-9) and _sign(f, e)]
        above = [_sign(f, e) for g, f, e in self.scan if g > q * (1 + 1e-9) + 1e-300 and _sign(f, e)]
        return (below[-1] if below else 0), (above[0] if above else 0)

    @functools.cached_property
    def fixed_points(self) -> tuple[FixedPoint, ...]:
        out = []
        if self.v0 == 0:   # σ_b = 0 and φ(0) = 0 (or σ_w = 0): q = 0 is a fixed point
            s, e = self.slope(0)
            out.append(FixedPoint(mpmath.mpf(0), s, _classify(s, e, (0, self.side_signs(0)[1]))))
        known = [(q, f) for q, f, e in self.scan if _sign(f, e) != 0 and not (q == 0 and self.v0 == 0)]
        for (qa, fa), (qb, fb) in zip(known, known[1:]):
            if (fa > 0) == (fb > 0):
                continue
            with mpmath.workdps(DPS):
                r, half, fr, er = _refine(self.F, qa, fa, qb, fb, self.rtol)
                s, es = self.slope(r)
                err = min(half, (er + abs(fr)) / max(abs(1 - s), mpmath.mpf("1e-30")))
            signs = (1 if fa > 0 else -1, 1 if fb > 0 else -1)
            out.append(FixedPoint(r, s, _classify(s, es, signs), err))
        return tuple(out)

    # -------------------------------------------------------- where the orbit from q0 goes

    @functools.cached_property
    def _grid_v(self):
        return [(g, f + g) for g, f, _ in self.scan if g > 0]

    def _monotone(self, q):
        """The fixed point (or "inf") that the orbit from q reaches when V maps the interval between q
        and the nearest fixed point in the direction of motion into itself; None otherwise."""
        f, e = self.F(q)
        s = _sign(f, e)
        fps = self.fixed_points
        if s == 0:
            near = [p for p in fps if abs(p.q - q) <= max(p.error, abs(q) * 1e-9)]
            return near[0] if near else None
        v_q = f + q
        if s < 0:
            below = [p for p in fps if p.q < q]
            if not below:
                return None
            r = below[-1]
            inside = [v for g, v in self._grid_v if r.q < g < q] + [v_q]
            return r if all(v >= r.q - r.error for v in inside) else None
        above = [p for p in fps if p.q > q]
        if not above:          # V(g) > g for every g above q: the orbit increases without bound
            return "inf"
        r = above[0]
        inside = [v for g, v in self._grid_v if q < g < r.q] + [v_q]
        return r if all(v <= r.q + r.error for v in inside) else None

    def reach(self, q0):
        """('point', FixedPoint) | ('inf', None) | ('none', None): where q^{l+1} = V(q^l) goes from q0."""
        q = mpmath.mpf(q0)
        for p in self.fixed_points:
            if abs(p.q - q) <= max(p.error, abs(q) * mpmath.mpf("1e-12")):
                return "point", p
        for step in range(_ORBIT_STEPS):
            if step < 5 or step % 20 == 0:
                dest = self._monotone(q)
                if dest == "inf":
                    return "inf", None
                if isinstance(dest, FixedPoint):
                    return "point", dest
            q = self.V(q)[0]
            if q > 10 * Q_MAX:
                return "inf", None
            for p in self.fixed_points:
                if p.stable and abs(q - p.q) <= max(p.error, abs(p.q) * mpmath.mpf("1e-9")):
                    return "point", p
        return "none", None


# ------------------------------------------------------------------ phase


def phase(act: Activation, dual: DualKernels, sigma_w, sigma_b, tol: float = 1e-12, q0=None) -> Phase:
    """q*, χ₁, the phase and the depth scales ξ_q, ξ_c of (σ_w, σ_b) (definitions in the module
    docstring); ``q0`` is the first layer's pre-activation variance (default 1, see there)."""
    with mpmath.workdps(DPS):
        sw, sb = _mp(sigma_w), _mp(sigma_b)
        start = None if q0 is None else _mp(q0)
    if not (sw >= 0 and sb >= 0) or not (mpmath.isfinite(sw) and mpmath.isfinite(sb)):
        raise NetworkError("sigma-w and sigma-b must be finite and >= 0")
    if start is not None and not (start >= 0 and mpmath.isfinite(start)):
        raise NetworkError("the input variance q0 must be finite and >= 0")
    _require_signal(act)
    try:
        with mpmath.workdps(DPS):
            m = _Moments(act, dual)
            if homogeneous_degree_one(act):
                return _homogeneous_phase(m, sw, sb, start, tol)
            return _general_phase(m, sw, sb, start, tol)
    except NtksymError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise NtksymError("the signal-propagation quantities of this activation could not be evaluated "
                          "numerically at this (σ_w, σ_b)") from exc


def _phase_name(chi1, err, tol) -> str:
    if abs(chi1 - 1) <= max(tol, 2 * err):
        return "edge of chaos"
    return "ordered" if chi1 < 1 else "chaotic"


def _homogeneous_phase(m: _Moments, sw, sb, q0, tol) -> Phase:
    """φ = a·s + b·|s|: V(q) = g·q + σ_b² with g = σ_w²E[φ(Z)²], χ₁ = σ_w²E[φ′(Z)²] (= g), exact."""
    sw2, sb2 = sw ** 2, sb ** 2
    kappa, _ = m.get("m2", 1)
    kd1, _ = m.get("kd", 1)
    rho0 = m.dual.khat.subs({Q1: 1, Q2: 1, C: 0}) if m.dual.khat is not None else None
    kinked = rho0 is None or _mp(rho0) != 0          # ϱ(0) > 0 ⇔ b ≠ 0: c = 1 attracts
    g, chi1 = sw2 * kappa, sw2 * kd1
    start = mpmath.mpf(1) if q0 is None else q0
    note = ""
    if abs(g - 1) <= tol and sb2 == 0:
        q_star, kind, slope = start, "marginal", g
        fps = ()
        note = "every q is a fixed point (V(q) = q): the layer variance stays at its input value q¹"
    elif g < 1:
        q_star, slope = sb2 / (1 - g), g
        kind = "stable"
        fps = (FixedPoint(q_star, g, "stable"),)
    else:
        q_star, slope, kind = mpmath.inf, g, "none"
        fps = (FixedPoint(mpmath.mpf(0), g, "unstable"),) if sb2 == 0 else ()
        note = ((f"q = 0 is an unstable fixed point (V′ = σ_w²E[φ²] = {_fmt(g, 6)} > 1)" if sb2 == 0 else
                 "no finite fixed point (V(q) − q = (σ_w²E[φ²] − 1)q + σ_b² > 0)") +
                f": the layer variance grows like ({_fmt(g, 6)})^l" + ("" if sb2 == 0 else ", σ_b becomes negligible") +
                "; χ₁ and ξ_c do not depend on q")
    xi_q = _xi(slope)[0] if kind == "stable" else mpmath.inf
    if q_star != mpmath.inf and q_star > 0 and sb2 != 0:
        c_star, xi_c = mpmath.mpf(1), _xi(chi1)[0]          # c-map slope at c = 1 is χ₁
    else:   # σ_b = 0 or q → ∞: the normalised map ϱ(c) = k̂(1,1,c)/k̂(1,1,1) has ϱ′(1) = E[φ′²]/E[φ²] = 1
        c_star = mpmath.mpf(1) if kinked else None
        xi_c = mpmath.inf
        if not kinked:
            note = (note + "; " if note else "") + "φ is linear: correlations are preserved (no c*)"
    return Phase(sw, sb, q_star, chi1, _phase_name(chi1, 0, tol), xi_q, xi_c, c_star,
                 "exact: positively homogeneous φ (V linear in q)" if "m2" in m.exprs else m.route,
                 fps, slope, note, 0.0)


def _general_phase(m: _Moments, sw, sb, q0, tol) -> Phase:
    sw2, sb2 = sw ** 2, sb ** 2
    if sw2 == 0:    # V ≡ σ_b²: reached in one layer, the output is the bias alone
        fp = FixedPoint(sb2, mpmath.mpf(0), "stable")
        note = "σ_w = 0: every layer outputs its bias alone"
        return Phase(sw, sb, sb2, mpmath.mpf(0), "ordered", mpmath.mpf(0), mpmath.mpf(0),
                     mpmath.mpf(1) if sb2 > 0 else None, "exact: V(q) = σ_b² for σ_w = 0", (fp,),
                     mpmath.mpf(0), note, 0.0)
    vm = _VarianceMap(m, sw2, sb2)
    fps = vm.fixed_points
    start = mpmath.mpf(1) if q0 is None else q0
    how, dest = vm.reach(start)
    listed = "; ".join(p.describe() for p in fps) or "none"
    note = ""
    if how == "point" and not dest.stable:            # q¹ sits on an unstable fixed point
        sides = [vm.reach(dest.q * (1 - 1e-6)), vm.reach(dest.q * (1 + 1e-6))] if dest.q > 0 else \
            [vm.reach(mpmath.mpf(GRID[0]))]
        ok = [p for h, p in sides if h == "point" and p.stable]
        if not ok:
            raise NetworkError(f"the input variance q¹ = {_fmt(start)} is an unstable fixed point of the variance "
                               f"map and no stable one is reached from beside it (fixed points: {listed})")
        note = (f"q¹ = {_fmt(start)} is itself an unstable fixed point of V; any perturbation below it "
                f"reaches the stable q* = {_fmt(ok[0].q)}" if ok[0].q < dest.q else
                f"q¹ = {_fmt(start)} is itself an unstable fixed point of V; any perturbation above it reaches "
                f"the stable q* = {_fmt(ok[0].q)}")
        dest = ok[0]
    elif how != "point":
        stable = [p for p in fps if p.stable]
        what = ("grows past 1e12, the largest variance searched" if how == "inf" else
                f"does not settle within {_ORBIT_STEPS} layers (it oscillates)")
        if q0 is not None or not stable:
            raise NetworkError(f"from q¹ = {_fmt(start)} the layer variance {what}: no stable fixed point of V on "
                               f"[0, 1e12] is reached (fixed points there: {listed})")
        dest = min(stable, key=lambda p: abs(mpmath.log(p.q)) if p.q > 0 else mpmath.inf)
        note = (f"from q¹ = 1 the layer variance {what}; q* = {_fmt(dest.q)} is the stable fixed point "
                "nearest to 1 (reached from input variances near it)")
    q_star, v_slope = dest.q, dest.slope
    rel_q = float(dest.error / q_star) if q_star > 0 else 0.0
    if q_star == 0:
        kd, kd_err = m.kd_zero(), mpmath.mpf(0)
        if kd is None:
            raise NtksymError("χ₁ at q* = 0 needs the one-sided derivatives φ′(0±), which could not be evaluated")
    else:
        kd, kd_err = m.get("kd", q_star)
        if dest.error and mpmath.isfinite(kd):
            kd_err += abs(m.get("kd", q_star + dest.error)[0] - kd)
    chi1 = sw2 * kd
    rel_chi = float(kd_err / kd) if kd and mpmath.isfinite(kd) else 0.0
    v_err = mpmath.mpf(0) if q_star == 0 else vm.slope(q_star)[1]
    xi_q, xi_q_err = _xi(v_slope, v_err) if dest.kind == "stable" else (mpmath.inf, 0.0)
    c_err = mpmath.mpf(0)
    if q_star == 0:
        z = m.at_zero
        kinked = z is not None and not abs(z[2] - z[3]) <= 1e-20 * (abs(z[2]) + abs(z[3]))
        c_star, xi_c, xi_c_err = (mpmath.mpf(1) if kinked else None), mpmath.inf, 0.0
        note = (note + "; " if note else "") + (
            "q* = 0: the layers act through the linearisation of φ at 0, whose correlation map has slope 1 at "
            "c = 1, so ξ_c = ∞" + ("" if kinked else " and correlations are preserved (no c*)"))
    elif chi1 <= 1 + max(tol, 2 * chi1 * rel_chi) and not _jumps(m.dual):
        c_star = mpmath.mpf(1)
        xi_c, xi_c_err = _xi(chi1, chi1 * rel_chi)
    else:
        c_star, c_err, chi_c, chi_c_err = _correlation_fixed_point(m, sw2, sb2, q_star)
        xi_c, xi_c_err = _xi(chi_c, chi_c_err)
    if _jumps(m.dual) and q_star > 0:
        note = (note + "; " if note else "") + (
            "φ jumps, so the correlation map has infinite slope at c = 1: c = 1 is unstable and the phase is "
            "chaotic whatever χ₁ = σ_w²E[φ′²] (the gradient factor, with the almost-everywhere derivative)")
    rel = max(rel_q, rel_chi)
    if rel > REL_TOL:
        raise AccuracyError(f"q* and χ₁ could not be resolved for this activation at this (σ_w, σ_b): estimated "
                            f"relative error {rel:.1e} exceeds the tolerance {REL_TOL:g}")
    name = _phase_name(chi1, float(chi1) * rel_chi if mpmath.isfinite(chi1) else 0, tol)
    if _jumps(m.dual) and q_star > 0:
        name = "chaotic"

    def rel_of(x, e):
        if e and x == 0:
            return math.inf
        return float(e / abs(x)) if e and x and mpmath.isfinite(x) else rel
    xi_q_rel, v_rel = rel_of(xi_q, xi_q_err), rel_of(v_slope, v_err)
    if xi_q_rel > 1e-3 or v_rel > 1e-3:     # V′(q*) drowned in the round-off of its formula: not printed
        note = (note + "; " if note else "") + (f"V′(q*) = {_fmt(v_slope, 3)} ± {_fmt(v_err, 2)} is not resolved, so "
                                                "neither is ξ_q (q* is stable: |V′(q*)| < 1 by that bound)")
        xi_q, v_slope = None, None
    xi_c_rel = rel_of(xi_c, xi_c_err)
    if xi_c_rel > 1e-3:     # refused: not printed as digits
        note = (note + "; " if note else "") + (f"ξ_c and c* are not resolved (estimated relative error {xi_c_rel:.0e} "
                                                "of the 2-D quadrature of the correlation map, e.g. kinks away from 0)")
        xi_c, c_star = None, None
    elif xi_c_rel > 1e-6:
        note = (note + "; " if note else "") + (f"ξ_c and c* are resolved only to about {xi_c_rel:.0e} (relative) by "
                                                "the 2-D quadrature of the correlation map; they are rounded to that")
    if c_star is not None and c_star not in (0, 1):
        c_star = _round(c_star, max(rel, rel_of(c_star, c_err), xi_c_rel))
    return Phase(sw, sb, _round(q_star, rel_q), _round(chi1, rel_chi), name, _round(xi_q, xi_q_rel),
                 _round(xi_c, xi_c_rel), c_star, m.route, fps, _round(v_slope, max(rel, v_rel)), note, rel)


def _jumps(dual: DualKernels) -> bool:
    """φ jumps: Σ̇ (almost-everywhere derivative) is then not the slope ∂Σ̂/∂c of the correlation map."""
    return bool(getattr(dual, "jumps", ()))


def _correlation_fixed_point(m: _Moments, sw2, sb2, q):
    """(c*, its error, χ_c, error of χ_c): the stable root of C(c) = c in [0, 1) (module docstring).

    χ_c = C′(c*) = σ_w² ∂Σ̂/∂c, which is σ_w²Σ̇ with the distributional derivative of φ (Price's
    theorem): for φ with jumps that is not the almost-everywhere Σ̇ of the NTK."""
    dual = m.dual
    closed = dual.khat is not None and dual.kdot is not None
    if closed:
        khat = sp.lambdify((Q1, Q2, C), dual.khat, "mpmath")
        slope = dual.kdot if not _jumps(dual) else sp.diff(dual.khat, C)
        kdot = sp.lambdify((Q1, Q2, C), slope, "mpmath")

        def pair(c):
            with mpmath.workdps(DPS):
                k, kd = mpmath.re(khat(q, q, c * q)), mpmath.re(kdot(q, q, c * q))
                tiny = mpmath.mpf(10) ** (5 - DPS)
                return (k, kd), (tiny * (abs(k) + abs(q)), tiny * abs(kd))
    else:
        from .gaussian.dual import polar_dual
        phi, dphi = m.quad.phi, m.quad.dphi

        def pair(c):
            lo = polar_dual(phi, dphi, float(q), float(q), float(c) * float(q), n_angle=32, n_radius=64)
            hi = polar_dual(phi, dphi, float(q), float(q), float(c) * float(q), n_angle=48, n_radius=96)
            k, kd = float(hi[0]), float(hi[1])
            return (mpmath.mpf(k), mpmath.mpf(kd)), (mpmath.mpf(abs(k - float(lo[0])) + 1e-14 * (abs(k) + q)),
                                                     mpmath.mpf(abs(kd - float(lo[1])) + 1e-14 * abs(kd)))

    def h(c):
        (k, _), (err, _) = pair(c)
        return (sw2 * k + sb2) / q - c, sw2 * err / q

    h0, e0 = h(mpmath.mpf(0))
    if _sign(h0, e0) <= 0:
        c = mpmath.mpf(0)
    else:
        lo, flo, hi, fhi = mpmath.mpf(0), h0, None, None
        for k in range(1, 52):
            c = 1 - mpmath.mpf(2) ** -k
            fc, ec = h(c)
            s = _sign(fc, ec)
            if s < 0:
                hi, fhi = c, fc
                break
            if s > 0:
                lo, flo = c, fc
        if hi is None:          # C(c) − c > 0 wherever resolved: c* is 1 to working precision
            (_, kd1), (_, err) = pair(mpmath.mpf(1))
            return mpmath.mpf(1), mpmath.mpf(2) ** -51, sw2 * kd1, sw2 * err
        rtol = mpmath.mpf(10) ** (6 - DPS) if closed else mpmath.mpf("1e-14")
        c, _, _, _ = _refine(h, lo, flo, hi, fhi, rtol)
    (_, kd), (_, err) = pair(c)
    chi_c, hc, eh = sw2 * kd, *h(c)
    # c* is known to δc = (|h(c*)| + its error)/(1 − χ_c); χ_c inherits σ_w²|k̇(c* + δc) − k̇(c*)|
    dc = (abs(hc) + eh) / max(abs(1 - chi_c), mpmath.mpf("1e-30"))
    (_, kd2), _ = pair(min(c + dc, mpmath.mpf(1) - dc))
    return c, dc, chi_c, sw2 * err + abs(sw2 * kd2 - chi_c)


# ------------------------------------------------------------------ the edge of chaos


def edge_of_chaos(act: Activation, dual: DualKernels, sigma_b=0) -> EdgeOfChaos:
    """σ_w on the EOC for the given σ_b: χ₁ = σ_w²E[φ′(√q Z)²] = 1 at a stable fixed point q of V.

    Eliminating σ_w² = 1/E[φ′(√qZ)²] from q = V(q) leaves g(q) = E[φ²]/E[φ′²] + σ_b² − q = 0; every
    root on (0, 1e12] is found (grid scan + regula falsi) together with the limit q → 0 (σ_b = 0,
    φ(0) = 0: σ_w² = 2/(φ′(0⁺)² + φ′(0⁻)²)); the stable one with the smallest q is returned, the others
    are listed in :attr:`EdgeOfChaos.others`.  Exact for the a·s + b·|s| family."""
    _require_signal(act)
    with mpmath.workdps(DPS):
        sb = _mp(sigma_b)
    if not (sb >= 0 and mpmath.isfinite(sb)):
        raise NetworkError("sigma-b must be finite and >= 0")
    try:
        with mpmath.workdps(DPS):
            m = _Moments(act, dual)
            if homogeneous_degree_one(act):
                return _homogeneous_edge(m, sb)
            return _general_edge(m, sb)
    except NtksymError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise NtksymError("the edge of chaos of this activation could not be evaluated numerically "
                          "at this σ_b") from exc


def _homogeneous_edge(m: _Moments, sb) -> EdgeOfChaos:
    kd1 = m.exprs["kd"].subs(m.plain, 1) if "kd" in m.exprs else None
    if kd1 is not None and sp.nsimplify(kd1) != 0:   # (nsimplify flushes tiny floats such as 1e-800 to 0)
        kd1 = sp.nsimplify(kd1)
    if sb != 0:
        raise NtksymError("for a positively homogeneous activation the EOC needs σ_b = 0 "
                          "(with σ_b > 0 the variance map has no finite fixed point on the EOC)")
    if kd1 is None or kd1 == 0:
        raise NtksymError("E[φ′(Z)²] = 0: χ₁ = 0 for every σ_w, so there is no edge of chaos")
    sw = sp.sqrt(1 / kd1)
    return EdgeOfChaos(mpmath.mpf(sp.N(sw, DPS)), mpmath.mpf(0), None, mpmath.mpf(1), sp.simplify(sw),
                       "exact: σ_w² = 1/E[φ'(Z)²], σ_b = 0 (any q is a fixed point)")


def _general_edge(m: _Moments, sb) -> EdgeOfChaos:
    if m.distributional:
        raise NtksymError("Σ̇ has a Dirac part here (the distributional derivative of φ's jumps): χ₁ = ∞ for "
                          "every σ_w > 0, so there is no edge of chaos (the almost-everywhere derivative gives a "
                          "finite χ₁)")
    sb2 = sb ** 2
    cands = []     # (q, σ_w², kind, relative error)
    if sb2 == 0 and m.phi_zero_is_zero():
        kd0 = m.kd_zero()
        if kd0 is not None and 0 < kd0 < mpmath.inf:
            vm = _VarianceMap(m, 1 / kd0, sb2)
            signs = [_sign(*vm.F(q)) for q in GRID[:160:8]]
            above = next((s for s in signs if s), 0)
            cands.append((mpmath.mpf(0), 1 / kd0, _classify(mpmath.mpf(1), 0, (0, above)), 1e-25))

    rounding = 0 if {"m2", "kd"} <= set(m.exprs) else mpmath.mpf("1e-16")

    def g(q):
        m2, e2 = m.get("m2", q)
        kd, ek = m.get("kd", q)
        if not (kd > 0 and mpmath.isfinite(kd) and mpmath.isfinite(m2)):
            return mpmath.nan, mpmath.inf
        return m2 / kd + sb2 - q, (e2 + m2 * ek / kd) / kd + abs(q) * rounding

    rows, kd_all_zero = [], True
    if not {"m2", "kd"} <= set(m.exprs):
        m.quad.many(GRID)
    for q in GRID:
        v, e = g(mpmath.mpf(q))
        kd_all_zero = kd_all_zero and m.get("kd", q)[0] == 0
        rows.append((mpmath.mpf(q), v, e))
    if kd_all_zero:
        raise NtksymError("E[φ′²] = 0 (φ is piecewise constant): χ₁ = 0 for every σ_w, so there is no edge of chaos")
    known = [(q, v) for q, v, e in rows if _sign(v, e) != 0]
    rtol = mpmath.mpf(10) ** (4 - DPS) if {"m2", "kd"} <= set(m.exprs) else mpmath.mpf("2e-15")
    for (qa, fa), (qb, fb) in zip(known, known[1:]):
        if (fa > 0) == (fb > 0):
            continue
        r, half, fr, er = _refine(g, qa, fa, qb, fb, rtol)
        kd, ek = m.get("kd", r)
        sw2 = 1 / kd
        slope, es = m.get("dm2", r)
        # the root's error: |g| noise over |g′|, g′ from a difference quotient
        d = r * mpmath.mpf("1e-6")
        gp = (g(r + d)[0] - g(r - d)[0]) / (2 * d)
        dq = min(half, (er + abs(fr)) / max(abs(gp), mpmath.mpf("1e-30")))
        dkd = abs(m.get("kd", r + d)[0] - m.get("kd", r - d)[0]) / (2 * d) * dq + ek
        rel = float(max(dq / r, dkd / kd))
        cands.append((r, sw2, _classify(sw2 * slope, sw2 * es), rel))
    stable = [c for c in cands if c[2] in ("stable", "marginally stable")]
    listed = "; ".join(f"σ_w = {_fmt(mpmath.sqrt(s2))} at q = {_fmt(q)} ({k})" for q, s2, k, _ in cands)
    if not stable:
        if not cands:
            raise NtksymError(f"no σ_w gives χ₁ = 1 at a fixed point of the variance map for σ_b = {_fmt(sb)} "
                              "(E[φ²]/E[φ′²] + σ_b² − q has no root on [0, 1e12])")
        raise NtksymError(f"χ₁ = 1 only at unstable fixed points of the variance map for σ_b = {_fmt(sb)} "
                          f"({listed}): no edge of chaos is reached")
    q, sw2, kind, rel = stable[0]
    if rel > REL_TOL:
        raise AccuracyError(f"the EOC point could not be resolved: estimated relative error {rel:.1e} exceeds "
                            f"the tolerance {REL_TOL:g}")
    others = tuple((_round(mpmath.sqrt(s2), r), _round(qq, r), k) for qq, s2, k, r in cands if qq is not q)
    if q == 0:
        z = m.at_zero
        smooth = abs(z[2] - z[3]) <= 1e-20 * (abs(z[2]) + abs(z[3]))
        route = ("limit q* → 0: σ_w = 1/|φ′(0)|" if smooth else
                 "limit q* → 0: σ_w² = 2/(φ′(0+)² + φ′(0−)²), the one-sided slopes at the kink")
        kd = 1 / sw2
    else:
        route = f"numeric: root of q = E[φ²]/E[φ′²] + σ_b² ({m.route})"
        kd = m.get("kd", q)[0]
    return EdgeOfChaos(_round(mpmath.sqrt(sw2), rel), sb, _round(q, rel), _round(sw2 * kd, rel), None, route,
                       others, rel)


def phase_diagram(act: Activation, dual: DualKernels, sigma_ws, sigma_bs):
    """χ₁ and the phase on a (σ_w, σ_b) grid: rows follow ``sigma_bs``, columns ``sigma_ws``."""
    cells = [[phase(act, dual, sw, sb) for sw in sigma_ws] for sb in sigma_bs]
    return [[p.chi1 for p in row] for row in cells], [[p.phase for p in row] for row in cells]


def eoc_curve(act: Activation, dual: DualKernels, sigma_bs):
    """The EOC curve σ_w(σ_b) (with q*) at the given σ_b values."""
    return [edge_of_chaos(act, dual, sb) for sb in sigma_bs]


# ------------------------------------------------------------------ Δφ form (Terjék & González-Sánchez 2025)

DELTA = sp.Symbol("Delta_phi", nonnegative=True)
RHO = sp.Symbol("rho", real=True)


@dataclass(frozen=True)
class CosineMap:
    """The EOC correlation map of φ = a·s + b·|s| written in Δφ = b²/(a²+b²) alone
    (Terjék & González-Sánchez 2025, Prop. 9)."""
    delta: sp.Expr                 # the value of Δφ for this activation
    rho_map: sp.Expr               # ϱ(ρ) in the symbols Delta_phi, rho
    rho_map_derivative: sp.Expr    # ϱ'(ρ)
    sigma_w2: sp.Expr              # EOC σ_w² = 1/(a² + b²)


def cosine_map(act: Activation, dual: DualKernels) -> CosineMap:
    """Derive ϱ(ρ) = σ_w² E[φ(u)φ(v)] at unit variance on the EOC and rewrite it in Δφ.

    The engine's closed form is divided by E[φ(Z)²] = a² + b² (the EOC σ_w² is
    its inverse), then checked symbolically to equal
    (1 − Δ)ρ + Δ·(2/π)(√(1 − ρ²) + ρ·asin ρ) with Δ = b²/(a² + b²).
    """
    if not homogeneous_degree_one(act) or dual.khat is None:
        raise NtksymError("the Δφ form applies to φ(s) = a·s + b·|s| (positively homogeneous, degree 1)")
    from .gaussian.pieces import split
    pieces = split(act.concrete, act.x)
    slopes = [sp.diff(p.expr, act.x) for p in pieces]
    a_minus, a_plus = (slopes[0], slopes[-1])
    a, b = (a_plus + a_minus) / 2, (a_plus - a_minus) / 2
    delta = sp.simplify(b**2 / (a**2 + b**2))
    rho_map = sp.simplify(dual.khat.subs({Q1: 1, Q2: 1}).subs(C, RHO) / (a**2 + b**2))
    g = 2 / sp.pi * (sp.sqrt(1 - RHO**2) + RHO * sp.asin(RHO))
    template = (1 - DELTA) * RHO + DELTA * g
    if sp.simplify(rho_map - template.subs(DELTA, delta)) != 0:
        raise NtksymError("could not rewrite the correlation map in Δφ")  # pragma: no cover - a derivation bug
    return CosineMap(delta, template, sp.simplify(sp.diff(template, RHO)), sp.simplify(1 / (a**2 + b**2)))


# --------------------------------------------------------- Terjék & González-Sánchez (2025)


def eoc_ntk_dot(delta: float, layers: int, rho):
    """u_l(ρ) of Prop. 10: the EOC NTK of φ = a·s + b·|s| (σ² = 1/(a²+b²), no biases, l weight
    layers, first layer ⟨x₁, x₂⟩) is K(x₁, x₂) = ‖x₁‖‖x₂‖ u_l(ρ).  Recursion u₁ = ρ,
    u_{k+1} = ϱ'(ρ_k) u_k + ρ_{k+1}, ρ_{k+1} = ϱ(ρ_k), with the Δφ cosine map (vectorised, float64).
    Float64 limits it: 1 − ρ_l ~ l⁻², so beyond l ~ 10³ off-diagonal values carry relative errors
    ~ ε·l² in the distance to the diagonal."""
    import numpy as np
    rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    u = rho.copy()
    r = rho
    for _ in range(layers - 1):
        r = np.where(r > 1 - 4e-16, 1.0, r)   # parallel within rounding: keep the diagonal exact
        s = np.sqrt(np.maximum(1 - r * r, 0.0))
        asin = np.arctan2(r, s)
        dr = (1 - delta) + delta * 2 / np.pi * asin
        r_next = np.minimum((1 - delta) * r + delta * 2 / np.pi * (s + r * asin), 1.0)
        u = dr * u + r_next
        r = r_next
    return u


def inverse_cosine_approximation(delta: float, layers: int, rho):
    """Prop. 14's approximation Δ⁻¹(3π/16)·w_l − 1/8, w_l = ((1 − ρ_l)/2)^{−1/2}, an upper bound on u_l
    that is tight up to O(Δ⁻² l⁻¹) (ρ_l is the correlation after l − 1 applications of ϱ)."""
    import numpy as np
    r = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    for _ in range(layers - 1):
        s = np.sqrt(np.maximum(1 - r * r, 0.0))
        r = np.minimum((1 - delta) * r + delta * 2 / np.pi * (s + r * np.arctan2(r, s)), 1.0)
    with np.errstate(divide="ignore"):
        w = ((1 - r) / 2) ** -0.5
    return 3 * np.pi / (16 * delta) * w - 0.125


def eoc_gram_condition(x, delta: float, layers: int) -> float:
    """Condition number of the EOC NTK Gram matrix [K(x_i, x_j)/n] of a data set (Thm 18: it tends
    to (τ̄²/τ̲²)(1 + n/3) as l → ∞, the excess decaying like Δ⁻¹ n / l)."""
    import numpy as np
    x = np.asarray(x, dtype=float)
    norms = np.linalg.norm(x, axis=1)
    rho = (x @ x.T) / np.outer(norms, norms)
    k = np.outer(norms, norms) * eoc_ntk_dot(delta, layers, rho) / len(x)
    w = np.linalg.eigvalsh((k + k.T) / 2)
    return float(w[-1] / w[0])


def eoc_nngp_dot(delta: float, layers: int, rho):
    """ρ_l = ϱ^{∘(l−1)}(ρ): the EOC NNGP of the a·s + b·|s| family is ‖x₁‖‖x₂‖ ρ_l (Prop. 8–9)."""
    import numpy as np
    r = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    for _ in range(layers - 1):
        r = np.where(r > 1 - 4e-16, 1.0, r)
        s = np.sqrt(np.maximum(1 - r * r, 0.0))
        r = np.minimum((1 - delta) * r + delta * 2 / np.pi * (s + r * np.arctan2(r, s)), 1.0)
    return r


def thm18_condition_prediction(x, delta: float, layers: int) -> float:
    """Leading term of Thm 18: κ(K) ≈ (τ̄²/τ̲²)(1 + n/3 + (16/9) n ξ/(l − 4ξ/3)) with
    ξ = (3/8)(Δ⁻¹(π/2)W + log(Δ⁻¹(3π/4)W + l − 1) − 1), W taken as the mean inverse cosine
    distance ((1 − ρ_ij)/2)^{−1/2} over pairs i ≠ j (the paper's W is a data-dependent Θ(1) constant)."""
    import numpy as np
    x = np.asarray(x, dtype=float)
    norms = np.linalg.norm(x, axis=1)
    rho = (x @ x.T) / np.outer(norms, norms)
    off = ~np.eye(len(x), dtype=bool)
    w = float(np.mean(((1 - np.clip(rho[off], -1, 1 - 1e-15)) / 2) ** -0.5))
    xi = 3 / 8 * (np.pi / (2 * delta) * w + np.log(3 * np.pi / (4 * delta) * w + layers - 1) - 1)
    n = len(x)
    return float((norms.max() / norms.min()) ** 2 * (1 + n / 3 + 16 / 9 * n * xi / (layers - 4 * xi / 3)))

