"""Numeric dual-kernel evaluators: closed forms compiled to NumPy, or quadrature.

:func:`kernel_functions` returns ``f(q1, q2, c) -> (Σ̂, Σ̇)`` on broadcastable
arrays, and a label saying which route it uses.  Closed forms are evaluated
with a clipped ``asin`` argument and non-negative ``sqrt`` radicand so that the
diagonal c = √(q₁q₂) is exact; activations without a closed form use a polar
quadrature graded to the variance (:func:`ntksym.gaussian.dual.graded_polar_dual`),
error-checked at the variances each call reaches (:class:`NumericDualKernels`).
"""
from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import sympy as sp

from .activation import Activation, _erf_np
from .errors import AccuracyError
from .gaussian.dual import C, Q1, Q2, DualKernels, graded_polar_dual

GH_ORDER = 64


def _safe_modules():
    return [{
        "asin": lambda t: np.arcsin(np.clip(t, -1.0, 1.0)),
        "sqrt": lambda t: np.sqrt(np.maximum(t, 0.0)),
        "erf": _erf_np(),
    }, "numpy"]


def stable_form(expr: sp.Expr) -> sp.Expr:
    """Rewrite asin(N/√M) as atan2(N, √(M − N²)).

    asin is ill-conditioned at ±1: a rounding error ε in its argument costs
    √(2ε) ≈ 1e-8 on the diagonal c = √(q₁q₂).  The atan2 form has the radicand
    q₁q₂ − c², which is exactly 0 there.
    """
    def rewrite(a):
        num, den = sp.fraction(sp.together(a.args[0]))
        if not den.has(Q1, Q2):
            return a
        radicand = sp.expand(sp.powsimp(den**2, force=True))
        return sp.atan2(num, sp.sqrt(sp.expand(radicand - num**2)))
    return expr.replace(lambda e: isinstance(e, sp.asin), rewrite)


_SCALE = sp.Symbol("_scale", positive=True)


class SafeSqrt(sp.Function):
    """√t with t snapped to 0 when it is below rounding level relative to ``scale``."""
    nargs = 2


def _snap_radicands(expr: sp.Expr) -> sp.Expr:
    def rewrite(p):
        k2 = 2 * p.exp
        return SafeSqrt(p.base, _SCALE) ** int(k2)
    return expr.replace(lambda e: e.is_Pow and e.base.has(C) and e.exp.is_Rational and e.exp.q == 2, rewrite)


def _safe_sqrt(t, scale):
    t = np.asarray(t, dtype=float)
    return np.sqrt(np.where(t <= 32 * np.finfo(float).eps * scale, 0.0, t))


def compile_closed_form(expr: sp.Expr):
    """A NumPy function f(q1, q2, c) of a dual-kernel closed form, exact on the diagonal.

    Radicands that contain c (q₁q₂ − c² and its relatives) are snapped to 0
    when they are below rounding level (32 ε·(1 + q₁)(1 + q₂)), so duplicated
    points give exactly the diagonal value whatever the summation order that
    produced c.
    """
    mods = _safe_modules()
    mods[0]["SafeSqrt"] = _safe_sqrt
    fn = sp.lambdify((Q1, Q2, C, _SCALE), _snap_radicands(stable_form(expr)), modules=mods)

    def call(q1, q2, c):
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
        scale = (1 + np.abs(q1)) * (1 + np.abs(q2))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = fn(q1, q2, c, scale)
        return np.broadcast_to(np.asarray(out, dtype=float), q1.shape)
    return call


@functools.lru_cache(maxsize=64)
def kernel_functions(act: Activation, dual: DualKernels, gh_order: int = GH_ORDER, allow_inaccurate: bool = False):
    """(callable, label): the dual kernels on arrays, and the route used.

    A quadrature route (:class:`NumericDualKernels`) needs its error estimate within :data:`KERNEL_RTOL`
    (relative to max(1, |Σ̂|, |Σ̇|)) at unit variance here, and again at the variances of every call;
    otherwise AccuracyError, unless ``allow_inaccurate`` (then the label says INACCURATE).  The label
    states the unit-variance check; ``callable.label()`` the variances evaluated since.
    Cached: compiling closed forms and probing quadrature errors is done once per activation."""
    if dual.khat is not None and dual.kdot is not None:
        return ClosedFormKernels(dual.khat, dual.kdot), "closed form"
    fns = NumericDualKernels(act, allow_inaccurate)   # ``gh_order`` is no longer used (kept for callers)
    if not fns.inaccurate:   # issue 13: the Mehler series on Gram blocks, this route for what it cannot certify
        from .fastdual import FastDualKernels
        fns = FastDualKernels(act, fns)
    return fns, fns.initial_label


KERNEL_RTOL = 1e-6  # relative error allowed to a quadrature route's estimate (max(1, |value|))


CHECK_RHOS = (-1.0, -0.5, 0.0, 0.5, 0.9, 0.99, 1.0)   # correlations at which each variance is checked
NUMERIC_LABEL = "adaptive polar Gauss–Legendre quadrature graded to the variance, split at the kinks"


class NumericDualKernels:
    """``f(q1, q2, c) -> (Σ̂, Σ̇)`` for φ without closed-form dual kernels, error-checked at the
    variances each call reaches.

    Values come from :func:`ntksym.gaussian.dual.graded_polar_dual` (its mesh refines with
    √max(q₁, q₂) and is split at every breakpoint of φ).  Every call also evaluates its error estimate
    (the largest difference to two coarser rules, n − 1 nodes per panel and the mesh one level coarser:
    estimates of their errors, so conservative ones for the returned value; tests/test_numeric_dual.py
    checks it against independent references) either on the same arguments, or — when that is
    cheaper — on a covering set: every distinct variance q of the call at q₁ = q₂ = q and
    ρ ∈ :data:`CHECK_RHOS`, and the pair (min q, max q) at the same ρ.  An estimate above
    :data:`KERNEL_RTOL`·max(1, |Σ̂|, |Σ̇|), or a non-finite value at finite input, raises
    AccuracyError unless ``allow_inaccurate`` (then :meth:`label` says INACCURATE).

    ``max_error`` is the largest relative estimate seen so far, ``q_range`` the variances checked,
    :meth:`label` states both; :meth:`fresh` gives a tracker with empty statistics."""

    def __init__(self, act: Activation, allow_inaccurate: bool = False, _probe: bool = True):
        self.act, self.allow_inaccurate = act, allow_inaccurate
        self.phi, self.dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
        self.breakpoints = tuple(b for b in act.breakpoints if np.isfinite(b))
        self.symmetric = act.parity is not None
        self.max_error, self.q_range, self.inaccurate = 0.0, (math.inf, -math.inf), False
        if _probe:   # unit variance first: an activation this route cannot resolve is refused at once
            self.unit_error = self._check(np.ones(len(CHECK_RHOS)), np.ones(len(CHECK_RHOS)), np.array(CHECK_RHOS))
            self.initial_label = self._label(self.unit_error, "at unit variance (q = 1, ρ ∈ {−1, …, 1}); every "
                                             "evaluation is checked again at the variances it reaches")

    def fresh(self) -> "NumericDualKernels":
        new = NumericDualKernels(self.act, self.allow_inaccurate, _probe=False)
        new.unit_error, new.initial_label = self.unit_error, self.initial_label
        return new

    def __call__(self, q1, q2, c):
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
        qs = np.unique(np.concatenate([q1.ravel(), q2.ravel()]))
        qs = qs[np.isfinite(qs) & (qs >= 0)]
        n_check = (len(qs) + 1) * len(CHECK_RHOS)
        if n_check >= q1.size:
            return self._check(q1, q2, c, values=True)
        with np.errstate(all="ignore"):
            hat, dot = graded_polar_dual(self.phi, self.dphi, q1, q2, c, self.breakpoints, self.symmetric)
        bad = ~(np.isfinite(hat) & np.isfinite(dot)) & np.isfinite(q1) & np.isfinite(q2) & np.isfinite(c)
        if bad.any():
            i = np.flatnonzero(bad.ravel())[0]
            self._refuse(math.inf, q1.ravel()[i], q2.ravel()[i], c.ravel()[i])
        if len(qs):
            rho = np.tile(np.array(CHECK_RHOS), len(qs) + 1)
            cq1 = np.concatenate([np.repeat(qs, len(CHECK_RHOS)), np.full(len(CHECK_RHOS), qs[0])])
            cq2 = np.concatenate([np.repeat(qs, len(CHECK_RHOS)), np.full(len(CHECK_RHOS), qs[-1])])
            self._check(cq1, cq2, rho * np.sqrt(cq1) * np.sqrt(cq2))
        return hat, dot

    def _check(self, q1, q2, c, values: bool = False):
        """Evaluate with the embedded estimate, account for it, refuse beyond tolerance; the values
        (``values``) or the largest relative estimate."""
        with np.errstate(all="ignore"):
            hat, dot, err = graded_polar_dual(self.phi, self.dphi, q1, q2, c, self.breakpoints, self.symmetric,
                                              with_error=True)
            rel = err / np.maximum(1.0, np.maximum(np.abs(hat), np.abs(dot)))
        finite_in = np.isfinite(q1) & np.isfinite(q2) & np.isfinite(c)
        rel = np.where(np.isfinite(rel), rel, math.inf)[finite_in]
        worst = float(rel.max()) if rel.size else 0.0
        if rel.size:
            qf = np.concatenate([np.ravel(q1[finite_in]), np.ravel(q2[finite_in])])
            self.q_range = (min(self.q_range[0], float(qf.min())), max(self.q_range[1], float(qf.max())))
            if worst > KERNEL_RTOL:
                i = int(np.argmax(rel))
                self._refuse(worst, q1[finite_in][i], q2[finite_in][i], c[finite_in][i])
            self.max_error = max(self.max_error, worst)
        return (hat, dot) if values else worst

    def _refuse(self, err, q1, q2, c):
        self.max_error, self.inaccurate = max(self.max_error, err), True
        if self.allow_inaccurate:
            return
        rho = c / math.sqrt(q1 * q2) if q1 * q2 > 0 else 0.0
        what = ("is not finite, which exceeds" if not math.isfinite(err)
                else f"has the error estimate {err:.0e}, which exceeds")
        raise AccuracyError(f"the dual kernels of {self.act.name[:80]!r} by {NUMERIC_LABEL} at q1 = {q1:.3g}, "
                            f"q2 = {q2:.3g}, rho = {rho:.3g}: the result {what} the tolerance "
                            f"{KERNEL_RTOL:.0e} relative to max(1, |value|) (allow_inaccurate=True or "
                            "--allow-inaccurate returns it anyway, marked INACCURATE)")

    def _label(self, err: float, where: str) -> str:
        if err <= KERNEL_RTOL:
            return f"{NUMERIC_LABEL} (est. error ≤ {err:.0e} relative {where})"
        return f"{NUMERIC_LABEL}, INACCURATE (est. error {err:.0e} > tolerance {KERNEL_RTOL:.0e} {where})"

    def label(self) -> str:
        """The route and the largest error estimate over the variances evaluated so far."""
        if self.q_range[0] > self.q_range[1]:
            return self.initial_label
        lo, hi = self.q_range
        return self._label(self.max_error, f"at the variances evaluated, q ∈ [{lo:.3g}, {hi:.3g}]")


# ----------------------------------------------------------- stable closed-form evaluation
#
# Used by ntksym.network.evaluate (the semantics are described in that module's docstring).

D_SYM = sp.Symbol("D", nonnegative=True)   # q₁q₂ − c², computed by the caller as (b − |c|)(b + |c|), b = √q₁·√q₂
RHO_SYM = sp.Symbol("rho", real=True)
MP_START_PREC = 96          # bits of the first mpmath evaluation of an entry; doubled until two agree
MP_MAX_PREC = 1 << 15       # give up doubling there (the last value is kept: its noise is ≈ 2^-32768 of the terms)
FLOAT_TRUST_ULPS = 64       # a float evaluation is trusted where its error is ≤ max(64 ulps, 4× its error at q = 1)


def _radicand_in_d(r: sp.Expr) -> sp.Expr:
    """A polynomial in c² written in D = q₁q₂ − c² (4q₁q₂ + 2q₁ + 2q₂ + 1 − 4c² → 4D + 2q₁ + 2q₂ + 1):
    no cancellation near |c| = √(q₁q₂), and exactly D = 0 at a tie."""
    try:
        poly = sp.Poly(sp.expand(r), C)
    except sp.PolynomialError:
        return r
    if any(m[0] % 2 for m in poly.monoms()):
        return r
    return sp.expand(sum(coef * (Q1 * Q2 - D_SYM) ** (m[0] // 2) for m, coef in zip(poly.monoms(), poly.coeffs())))


def d_form(expr: sp.Expr) -> sp.Expr:
    """:func:`stable_form` (asin → atan2), then every radicand that contains c and is a polynomial in c²
    rewritten in D = q₁q₂ − c² (a function of Q1, Q2, C and :data:`D_SYM`)."""
    e = stable_form(expr)
    return e.replace(lambda t: t.is_Pow and t.base.has(C) and t.exp.is_Rational and t.exp.q == 2,
                     lambda t: _radicand_in_d(t.base) ** t.exp)


def _mp_sqrt(t):
    return mpmath.sqrt(t) if t > 0 else mpmath.mpf(0)


def _mp_modules():
    from .activation import _MP_GUARDED
    return [{**_MP_GUARDED, "sqrt": _mp_sqrt, "Erfc": _MP_GUARDED["erfc"]}, "mpmath"]


def _to_float(v) -> float:
    """An mpmath real rounded to float64 (±inf beyond its range; NaN for a non-real)."""
    if isinstance(v, mpmath.mpc):
        v = v.real if abs(v.imag) <= mpmath.mpf(2) ** (-mpmath.mp.prec + 8) * abs(v.real) else mpmath.nan
    return float(v)


class ClosedFormKernels:
    """The dual kernels of a closed form as ``f(q1, q2, c) -> (Σ̂, Σ̇)`` on arrays, plus what
    :func:`ntksym.network.evaluate` needs for a stable fold.

    * ``pair(q1, q2, c, b)``: float64 values at c already clipped to |c| ≤ b = √q₁·√q₂.  Radicands in
      D = q₁q₂ − c² = (b − |c|)(b + |c|) (:func:`d_form`).  Positively homogeneous kernels
      (Σ̂(λq₁, λq₂, λc) = λ^h Σ̂, Σ̇ scaling as λ^(h−1): the ReLU family, |x|, sign, step, xⁿ) are
      evaluated in normalized form, Σ̂ = b^h·k̂(ρ), Σ̇ = b^(h−1)·k̇(ρ), ρ = c/b (ρ = 0 where b = 0):
      no overflow unless the value itself overflows, and no 0/0 at q = 0.
    * ``mp(q1, q2, c)``: the same closed forms in mpmath (unbounded exponent), at a precision doubled
      from :data:`MP_START_PREC` bits plus the largest binary magnitude |log₂| of q₁, q₂, c (at most
      4096) until two evaluations agree to 2⁻⁶⁴.
    * ``trusted``: (lo, hi), the variances where the float evaluation is trusted: probed once against
      ``mp`` on q ∈ {0, 2^k}, pairs (q, q), (q, 1.5q), (q, 1), ρ from −1 to 1; the error, relative to the
      Cauchy–Schwarz scale √(Σ̂(q₁,q₁,q₁)Σ̂(q₂,q₂,q₂)), must stay within
      max(:data:`FLOAT_TRUST_ULPS` ulps, 4× the error at q = 1).  Homogeneous kernels: [2⁻¹⁰⁰⁰, max] (a
      subnormal variance has too few bits).  q = 0 is trusted where the float form handles it
      (homogeneous kernels always: ρ = 0 there).
    * ``parity``: "odd" (Σ̂(q,q,−c) = −Σ̂, Σ̇(q,q,−c) = Σ̇), "even" (the reverse) or None, checked in mpmath.
    """

    def __init__(self, khat: sp.Expr, kdot: sp.Expr):
        self.khat_expr, self.kdot_expr = khat, kdot
        forms = [d_form(e) for e in (khat, kdot)]
        mods = _safe_modules()
        args = (Q1, Q2, C, D_SYM)
        self._f = sp.lambdify(args, forms, modules=mods, cse=True)   # both kernels, common subexpressions once
        self._m = [sp.lambdify(args, f, modules=_mp_modules()) for f in forms]
        self.degree = self._homogeneous_degree()
        if self.degree is not None:
            self._g = sp.lambdify((RHO_SYM, D_SYM), [f.xreplace({Q1: 1, Q2: 1, C: RHO_SYM}) for f in forms],
                                  modules=mods, cse=True)
        self.parity = self._parity()
        self._trusted = None

    # ---- float64
    def __call__(self, q1, q2, c):
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
        with np.errstate(all="ignore"):
            b = np.where(q1 == q2, q1, np.sqrt(q1) * np.sqrt(q2))
            out = self.pair(q1, q2, c if self.degree is not None else snap(c, b), b)
        return tuple(np.broadcast_to(np.asarray(o, dtype=float), q1.shape) for o in out)

    def pair(self, q1, q2, c, b):
        """(Σ̂, Σ̇) in float64 at |c| ≤ b (call under np.errstate(all='ignore')).  Homogeneous kernels
        take c unclipped: they clip and snap ρ = c/b themselves."""
        if self.degree is not None:
            if np.ndim(b) and not np.all(b > 0) or not np.ndim(b) and not b > 0:
                rho = np.divide(c, b, out=np.zeros(np.broadcast(c, b).shape), where=b > 0)
            else:
                rho = np.divide(c, b)
            ar = np.abs(rho)
            if not ar.max(initial=0.0) < 1 - SNAP_ULPS * _EPS:
                near = ar >= 1 - SNAP_ULPS * _EPS
                rho = np.where(near, np.sign(rho), rho)
                ar = np.where(near, 1.0, ar)
            dn = (1.0 - ar) * (1.0 + ar)
            k, kd = (np.asarray(v, dtype=float) for v in self._g(rho, dn))
            h = self.degree
            if h == 1:
                return b * k, kd
            bh = b ** h if h != 0 else 1.0
            kd = np.where(kd == 0, 0.0, kd * b ** (h - 1))
            return np.where(k == 0, 0.0, bh * k), kd
        ac = np.abs(c)
        dd = (b - ac) * (b + ac)
        return tuple(np.asarray(v, dtype=float) for v in self._f(q1, q2, c, dd))

    # ---- mpmath
    def _mp_once(self, q1, q2, c):
        b = mpmath.sqrt(q1 * q2)
        if abs(c) >= b * (1 - SNAP_ULPS * _EPS):    # the float fold's snap, also here (q may be rounded)
            c = b if c > 0 else -b
        dd = (b - abs(c)) * (b + abs(c))
        return tuple(f(q1, q2, c, dd) for f in self._m)

    def mp(self, q1, q2, c):
        """(Σ̂, Σ̇) as mpmath reals at exact inputs (mpf), to a relative 2⁻⁶⁴ (see the class docstring)."""
        mags = [abs(mpmath.mag(v)) for v in (q1, q2, c) if v and mpmath.isfinite(v)]
        prec, prev = MP_START_PREC + min(max(mags, default=0), 4096), None   # cancellations cost up to the
        # inputs' binary magnitude (e^{4c} − e^{−4c} at c = 1e-150 loses 500 bits): start above it
        while True:
            with mpmath.workprec(prec):
                try:
                    val = tuple(mpmath.mpf(_real(v)) for v in self._mp_once(q1, q2, c))
                except (ZeroDivisionError, ValueError):
                    val = (mpmath.nan, mpmath.nan)
            if prev is not None and all(_agree(a, p) for a, p in zip(val, prev)) or prec >= MP_MAX_PREC:
                return val
            prev, prec = val, 2 * prec

    # ---- properties checked once
    def _homogeneous_degree(self):
        pts = [(mpmath.mpf("0.7"), mpmath.mpf("1.3"), mpmath.mpf("0.4")),
               (mpmath.mpf("2.1"), mpmath.mpf("0.5"), mpmath.mpf("-0.8")),
               (mpmath.mpf("1.1"), mpmath.mpf("1.1"), mpmath.mpf("0.3"))]
        with mpmath.workdps(40):
            try:
                base = [self._mp_once(*p) for p in pts]
                h = None
                for lam in (mpmath.mpf(3), mpmath.mpf("0.25")):
                    for p, (k0, d0) in zip(pts, base):
                        k1, d1 = self._mp_once(*(lam * t for t in p))
                        if k0 == 0:
                            return None
                        if h is None:
                            h = mpmath.nint(2 * mpmath.log(abs(mpmath.re(k1) / mpmath.re(k0))) / mpmath.log(lam)) / 2
                        for v0, v1, e in ((k0, k1, h), (d0, d1, h - 1)):
                            if abs(v1 - lam ** e * v0) > mpmath.mpf(10) ** -30 * (abs(v1) + abs(v0)):
                                return None
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                return None
        return float(h) if h >= 0 else None

    def _parity(self):
        pts = [(mpmath.mpf("0.7"), mpmath.mpf("1.3"), mpmath.mpf("0.4")),
               (mpmath.mpf("2.1"), mpmath.mpf("0.5"), mpmath.mpf("0.8"))]
        with mpmath.workdps(40):
            try:
                vals = [(self._mp_once(q1, q2, c), self._mp_once(q1, q2, -c)) for q1, q2, c in pts]
            except (ZeroDivisionError, ValueError, TypeError):
                return None
            tol = mpmath.mpf(10) ** -30
            for name, sk, sd in (("odd", -1, 1), ("even", 1, -1)):
                if all(abs(m[0] - sk * p[0]) <= tol * (1 + abs(p[0])) and abs(m[1] - sd * p[1]) <= tol * (1 + abs(p[1]))
                       for p, m in vals):
                    return name
        return None

    @property
    def zero_ok(self) -> bool:
        """Whether the float evaluation is right at q = 0."""
        return self.degree is not None or self.trusted[0] == 0.0

    @property
    def trusted(self) -> tuple[float, float]:
        if self._trusted is None:
            # homogeneous: every normal variance (subnormal ones have too few bits: mpmath), and q = 0
            self._trusted = (2.0 ** -1000, float(np.finfo(float).max)) if self.degree is not None else self._probe()
        return self._trusted

    def _probe(self) -> tuple[float, float]:
        eps = np.finfo(float).eps
        rhos = np.array([-1.0, -0.999999, -0.7, -0.1, 0.0, 0.4, 0.9, 0.999, 0.99999999, 1.0])

        def err(q):
            worst = 0.0
            for q2 in (q, 1.5 * q, 1.0):
                q1a, q2a = np.full_like(rhos, q), np.full_like(rhos, q2)
                with np.errstate(all="ignore"):
                    c = rhos * (np.sqrt(q1a) * np.sqrt(q2a))
                    got = self(q1a, q2a, c)
                    b = np.where(q1a == q2a, q1a, np.sqrt(q1a) * np.sqrt(q2a))
                    c = snap(c, b)
                mq1, mq2 = mpmath.mpf(float(q)), mpmath.mpf(float(q2))
                d1, d2 = self.mp(mq1, mq1, mq1), self.mp(mq2, mq2, mq2)
                for i, ci in enumerate(c):
                    ref = self.mp(mq1, mq2, mpmath.mpf(float(ci)))
                    for w in (0, 1):
                        scale = max(abs(ref[w]), mpmath.sqrt(abs(d1[w] * d2[w])))
                        r, g = ref[w], got[w][i]
                        if not mpmath.isfinite(r) or not mpmath.isfinite(scale):
                            return math.inf
                        if not np.isfinite(g):
                            return math.inf
                        if scale == 0:
                            e = 0.0 if g == 0 else math.inf
                        else:
                            e = float(abs(mpmath.mpf(float(g)) - r) / scale)
                        worst = max(worst, e)
            return worst

        base = err(1.0)
        tol = max(FLOAT_TRUST_ULPS * eps, 4 * base)
        ks = [1, 2, 4, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512, 640,
              800, 1000, 1023]
        hi = 1.0
        for k in ks:
            if err(2.0 ** k) > tol:
                break
            hi = 2.0 ** k
        lo = 1.0
        for k in ks + [1050, 1074]:
            if err(2.0 ** -k) > tol:
                break
            lo = 2.0 ** -k
        if lo == 2.0 ** -1074 and err(0.0) <= tol:
            lo = 0.0
        return lo, hi


def _real(v):
    if isinstance(v, mpmath.mpc):
        return v.real if abs(v.imag) <= mpmath.mpf(2) ** (-mpmath.mp.prec + 8) * (1 + abs(v.real)) else mpmath.nan
    return v


def _agree(a, b) -> bool:
    if mpmath.isnan(a) or mpmath.isnan(b):
        return False
    if mpmath.isinf(a) or mpmath.isinf(b):
        return a == b
    return abs(a - b) <= mpmath.mpf(2) ** -64 * abs(b)


SNAP_ULPS = 8   # |c| within 8 ulps of its bound √q₁·√q₂ is snapped to ±bound
_EPS = float(np.finfo(float).eps)


def snap(c, b):
    """c clipped to [−b, b], and |c| ≥ b·(1 − 8ε) set to ±b exactly (float64 arrays; under errstate)."""
    lim = b * (1.0 - SNAP_ULPS * np.finfo(float).eps)
    return np.where(c >= lim, b, np.where(c <= -lim, -b, c))
