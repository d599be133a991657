"""Depth-independent kernels on data of one norm: the whole depth-L map tabulated in the angle.

When every row of the data has the same |x|²/d = r, every layer has one variance q_l for all rows, so
Σ⁽ᴸ⁾ and Θ⁽ᴸ⁾ are functions of the input correlation ρ₀ = x·y/|x||y| alone.  They are tabulated as
piecewise polynomials in θ = arccos ρ₀ (:class:`ntksym.codegen.interpolant.AngleTable`), for every
activation:

* closed forms: the named recursion in 60-digit mpmath (as the generated modules);
* no closed form: the float64 recursion below, whose dual kernels at equal variance,
  Σ̂(q, q, ρq) and Σ̇(q, q, ρq), come from :class:`EqualVarianceDual`.

:class:`EqualVarianceDual` (one per layer variance q).  With orthonormal Hermite polynomials h_k and
a_k = E[φ(√q Z) h_k(Z)], b_k = E[φ'(√q Z) h_k(Z)] (Mehler's formula; O'Donnell, *Analysis of Boolean
Functions*, §11.2; Daniely et al. 2016),

    Σ̂ = Σ_k a_k² ρ^k,   Σ̇ = Σ_k b_k² ρ^k,

and, the a_k² being non-negative with sum E[φ²] = Σ̂(q, q, q) (Parseval), the tail after K terms is
at most |ρ|^{K+1}·T, T = E[φ²] − Σ_{k≤K} a_k².  The coefficients, E[φ²], E[φ'²] and the antipodal
values E[φ(u)φ(−u)], E[φ'(u)φ'(−u)] are 1-D integrals: Gauss–Legendre panels (:data:`N_GL` nodes) on
z ∈ [−16, 16], split at the kinks of φ (z = b/√q) and graded toward them and toward 0 down to the
scale 1/√q; the Hermite functions ψ_k = h_k·√pdf come from their stable three-term recurrence.  Each
coefficient's error is estimated by a second rule (:data:`N_GL_CHECK` nodes per panel).  The series
serves |ρ| ≤ ρ_c, where the tail bound is below :data:`LAYER_TOL` of the kernel's scale; beyond
(kinked φ, or large q) the kernels on θ ∈ [0, arccos ρ_c] and [π − arccos ρ_c, π] are Chebyshev
interpolants in θ of the graded polar quadrature (:func:`ntksym.gaussian.dual.graded_polar_dual` with
:data:`POLAR_NODES` nodes per panel; in θ these kernels are analytic), with exactly the 1-D values at
ρ = ±1.  Every evaluation returns an error estimate: tail bound + coefficient errors + rounding, or
10× the interpolant's tail + 2× the quadrature's own estimate (an estimate of a coarser rule's error);
tests/test_unit_tables.py checks both against independent references (mpmath closed forms of erf,
gelu, cos used as if numeric; a refined Cartesian Gauss–Legendre rule for tanh, ELU, ...).

The table recursion carries a first-order error estimate along (δΣ_l = σ_w²(e_l + Σ̇·δΣ_{l−1}),
similarly for Θ), and its maximum enters the table's ``max_error``.

API path (:func:`table_kernels`, called by ``ntksym.kernel`` and ``Derivation.kernel``): data whose
rows all have |x|²/d within :data:`SAME_NORM_EPS` ε of each other (r > 0) gets the table for
(activation, φ' convention, depth, σ_w, σ_b, parameterization, width, r[, d for 'standard']), built on
first use and kept in a small LRU cache; repeated and antipodal rows (θ² < 64ε from 0 or π, or equal
rows up to sign) take exactly the end values of the table's recursion (its nodes at ρ₀ = ±1).  When
no accurate table can be built the usual fold runs.

Limits (no table, the fold runs): φ' with a jump (SELU, leaky kinks without a closed form: Σ̇ moves like
θ near ρ = 1, which a recursion in ρ cannot resolve in float64; the check near θ = 0 refuses it), the
chaotic phase at depth (a boundary layer at θ → 0), end intervals needed at a variance above
:data:`Q_END_MAX`, or an estimate above :data:`TABLE_TOL`.
"""
from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .gaussian.dual import graded_polar_dual

EPS = float(np.finfo(float).eps)
Z_MAX = 16.0            # z-range of the 1-D rules: √pdf(16)·16 < 1e-26
N_GL = 20               # Gauss–Legendre nodes per panel of the coefficient rule
N_GL_CHECK = 15         # ... of the second rule that estimates the coefficients' error
PANEL = 0.25            # widest panel (the Hermite functions up to K_MAX oscillate with period ≥ 0.19)
K_STEP = 256            # Hermite coefficients are added in blocks until the tail is negligible ...
K_MAX = 1024            # ... or K_MAX is reached
LAYER_TOL = 4e-15       # per-layer error allowed to the series (relative to max(Σ̂(1), Σ̇(1)))
POLAR_NODES = 14        # graded polar quadrature near ρ = ±1: nodes per panel
END_POINTS = (8, 16, 32)   # Chebyshev sizes tried for the end intervals in θ
TABLE_TOL = 1e-12       # a numeric table must be within this of max |f| (estimate + measured) or is refused (issue 13 goal)
Q_END_MAX = 64.0        # end intervals (quadrature) only up to this variance: beyond, no table (cost, accuracy)
SAME_NORM_EPS = 64      # rows count as one norm when |x|²/d agree within 64 ulps (as generated modules)
CACHE_SIZE = 16


def _leggauss(n: int):
    return np.polynomial.legendre.leggauss(n)


def _edges(q: float, kinks) -> np.ndarray:
    """Panel edges on [−Z_MAX, Z_MAX]: uniform of width ≤ PANEL, the kinks ±b/√q, and edges graded
    geometrically toward 0 and the kinks down to 0.05/√q (symmetric under z → −z)."""
    s = math.sqrt(q)
    edges = [np.linspace(-Z_MAX, Z_MAX, int(2 * Z_MAX / PANEL) + 1)]
    feats = [0.0] + [b / s for b in kinks if s > 0 and abs(b / s) < Z_MAX]
    h = 0.05 / max(s, 1.0)
    if h < PANEL:
        steps = h * 2.0 ** np.arange(0, math.ceil(math.log2(PANEL / h)) + 1)
        for f in feats:
            edges.append(f + steps)
            edges.append(f - steps)
    e = np.concatenate(edges + [np.array(feats)])
    e = np.concatenate([e, -e])
    e = np.unique(np.clip(e, -Z_MAX, Z_MAX))
    return e


def _rule(q: float, kinks, n: int):
    edges = _edges(q, kinks)
    x, w = _leggauss(n)
    lo, hi = edges[:-1, None], edges[1:, None]
    z = (lo + (hi - lo) * (x + 1) / 2).ravel()
    wz = ((hi - lo) / 2 * w).ravel()
    return z, wz


class EqualVarianceDual:
    """Σ̂(q, q, ρq), Σ̇(q, q, ρq) and an error estimate for |ρ| ≤ 1 at one variance q (see the module
    docstring).  ``ok`` is False when the 1-D integrals are not finite (then no table)."""

    def __init__(self, phi, dphi, q: float, kinks=(), parity: str | None = None):
        self.phi, self.dphi, self.q = phi, dphi, float(q)
        self.kinks = tuple(float(b) for b in kinks if b != 0 and np.isfinite(b))
        self.parity, self.symmetric = parity, parity is not None
        fine = self._coefficients(N_GL)
        rough = self._coefficients(N_GL_CHECK, len(fine[0]) - 1)
        (a, b, ends), (a2, b2, ends2) = fine, rough
        self.ok = bool(np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(np.isfinite(ends)))
        self.a2, self.b2 = a * a, b * b
        da, db = np.abs(a - a2), np.abs(b - b2)
        self.m0, self.m1, self.n0, self.n1 = ends          # ρ = 1: E φ², E φ'²; ρ = −1: E φ(u)φ(−u), ...
        dends = np.abs(ends - ends2)
        self.K = len(a) - 1
        k = np.arange(self.K + 1)
        # tail masses (≥ 0), with the errors of m and of Σ a_k² added: an upper bound of the true tail
        coef0 = float(np.sum(2 * np.abs(a) * da + da * da))
        coef1 = float(np.sum(2 * np.abs(b) * db + db * db))
        self.T0 = max(self.m0 - float(np.sum(self.a2)), 0.0) + dends[0] + coef0 + 8 * EPS * abs(self.m0)
        self.T1 = max(self.m1 - float(np.sum(self.b2)), 0.0) + dends[1] + coef1 + 8 * EPS * abs(self.m1)
        # ρ-independent part of the series error: coefficient errors and Horner rounding
        self.E0 = coef0 + 2 * EPS * float(np.sum((k + 1) * self.a2))
        self.E1 = coef1 + 2 * EPS * float(np.sum((k + 1) * self.b2))
        self.end_err = (float(dends[0] + dends[2]), float(dends[1] + dends[3]))
        self.scale = max(abs(self.m0), abs(self.m1), 1e-300)
        budget = LAYER_TOL * self.scale
        self.cut = 1.0
        for t in (self.T0, self.T1):
            if t > budget:
                self.cut = min(self.cut, (budget / t) ** (1.0 / (self.K + 1)))
        # trailing coefficients below 1e-40 of the scale are dropped from the Horner loop (kept in T)
        big = np.nonzero((self.a2 > 1e-40 * self.scale) | (self.b2 > 1e-40 * self.scale))[0]
        top = int(big[-1]) + 1 if big.size else 1
        self.a2h, self.b2h = self.a2[:top][::-1].copy(), self.b2[:top][::-1].copy()
        self._ends = {}

    def _coefficients(self, n: int, k_fixed: int | None = None):
        z, wz = _rule(self.q, self.kinks, n)
        s = math.sqrt(self.q)
        with np.errstate(all="ignore"):
            f, g = self.phi(s * z), self.dphi(s * z)
            fr, gr = f[::-1], g[::-1]               # φ(−√q z): the nodes are symmetric
            pdf = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
            ends = np.array([np.dot(wz * pdf, f * f), np.dot(wz * pdf, g * g),
                             np.dot(wz * pdf, f * fr), np.dot(wz * pdf, g * gr)])
            half = np.exp(-z * z / 4) / (2 * math.pi) ** 0.25   # √pdf
            wf, wg = wz * half * f, wz * half * g
            psi_prev, psi = np.zeros_like(z), half.copy()    # ψ_0 = √pdf (h_0 = 1)
            a, b = [], []
            kmax = K_MAX if k_fixed is None else k_fixed
            k = 0
            while True:
                a.append(float(np.dot(wf, psi)))
                b.append(float(np.dot(wg, psi)))
                if k >= kmax:
                    break
                if k_fixed is None and (k + 1) % K_STEP == 0:   # stop once the tail is negligible
                    ta = ends[0] - math.fsum(v * v for v in a)
                    tb = ends[1] - math.fsum(v * v for v in b)
                    if max(ta, tb) <= 16 * EPS * max(abs(ends[0]), abs(ends[1])):
                        break
                psi_prev, psi = psi, (z * psi - math.sqrt(k) * psi_prev) / math.sqrt(k + 1)
                k += 1
        return np.array(a), np.array(b), ends

    # ------------------------------------------------------------------ evaluation
    def __call__(self, rho, theta=None):
        """(Σ̂, Σ̇, error) at correlations ``rho`` (1-D array; ``theta`` = arccos ρ if known exactly)."""
        rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
        hat, dot = np.empty_like(rho), np.empty_like(rho)
        err = np.empty_like(rho)
        ar = np.abs(rho)
        mid = ar <= self.cut
        if mid.any():
            r = rho[mid]
            h, d = np.zeros_like(r), np.zeros_like(r)
            for c in self.a2h:
                h = h * r + c
            for c in self.b2h:
                d = d * r + c
            p = np.abs(r) ** (self.K + 1)
            hat[mid], dot[mid] = h, d
            err[mid] = np.maximum(p * self.T0 + self.E0, p * self.T1 + self.E1)
        for sign, side in ((1.0, rho > self.cut), (-1.0, rho < -self.cut)):
            if not side.any():
                continue
            th = np.arccos(rho[side]) if theta is None else np.asarray(theta, dtype=float)[side]
            if sign < 0 and self.parity is not None:   # odd φ: Σ̂(−ρ) = −Σ̂(ρ), Σ̇(−ρ) = Σ̇(ρ); even: reversed
                th = np.arccos(-rho[side]) if theta is None else np.pi - th
                h, d, e = self._end(1.0)(th)
                h, d = (-h, d) if self.parity == "odd" else (h, -d)
            else:
                h, d, e = self._end(sign)(th)
            hat[side], dot[side], err[side] = h, d, e
        one, minus = rho == 1.0, rho == -1.0      # exactly the 1-D values (ties)
        hat[one], dot[one], err[one] = self.m0, self.m1, self.end_err[0]
        hat[minus], dot[minus], err[minus] = self.n0, self.n1, self.end_err[1]
        return hat, dot, err

    def _end(self, sign: float):
        """Chebyshev interpolant in θ of (Σ̂, Σ̇) on the end interval at ρ = sign·1 (built on first use)."""
        if sign in self._ends:
            return self._ends[sign]
        width = math.acos(self.cut)
        lo, hi = (0.0, width) if sign > 0 else (math.pi - width, math.pi)
        vals, qerr, result = None, 0.0, None
        for m in END_POINTS:
            x = np.cos(np.pi * np.arange(m + 1) / m)            # x = 1 is θ = hi
            th = lo + (hi - lo) * (x + 1) / 2
            need = np.arange(m + 1) if vals is None else np.arange(1, m + 1, 2)
            new = self._polar(th[need], sign, with_error=vals is None)   # estimate on the first 9 angles
            qerr = max(qerr, float(np.max(new[2])))
            if vals is None:
                vals = new[:2].T
            else:
                merged = np.empty((m + 1, 2))
                merged[0::2], merged[1::2] = vals, new[:2].T
                vals = merged
            coeffs = cheb_coefficients(vals)
            tail = float(np.max(np.abs(coeffs[-max(3, m // 4):])))
            if tail <= 0.3 * LAYER_TOL * self.scale:
                result = (coeffs, tail)
                break
        if result is None:   # not converged: the estimate says so (the table is then refused)
            result = (coeffs, tail)
        coeffs, tail = result
        e = 2 * qerr + 10 * tail

        def evaluate(theta):
            x = 2 * (np.asarray(theta, dtype=float) - lo) / (hi - lo) - 1
            v = np.polynomial.chebyshev.chebval(x, coeffs)
            return v[0], v[1], np.full(x.shape, e)
        self._ends[sign] = evaluate
        return evaluate

    def _polar(self, theta, sign, with_error=True):
        """Graded polar quadrature at ρ = cos θ (the 1-D values where θ is 0 or π)."""
        rho = np.cos(theta)
        exact = (theta == 0) | (theta == math.pi)
        q = np.full(theta.shape, self.q)
        out = graded_polar_dual(self.phi, self.dphi, q, q, rho * self.q, self.kinks, self.symmetric,
                                n=POLAR_NODES, with_error=with_error)
        h, d = out[0].copy(), out[1].copy()
        e = out[2].copy() if with_error else np.zeros_like(h)
        if exact.any():
            end = (self.m0, self.m1, self.end_err[0]) if sign > 0 else (self.n0, self.n1, self.end_err[1])
            h[exact], d[exact], e[exact] = end
        return np.array([h, d, e])


def cheb_coefficients(values: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients from values at x_j = cos(πj/m), j = 0..m (type-I DCT; columns: functions).
    Shared with the generated modules' tables (:mod:`ntksym.codegen.interpolant`)."""
    m = len(values) - 1
    ext = np.concatenate([values, values[-2:0:-1]], axis=0)
    c = np.real(np.fft.fft(ext, axis=0))[: m + 1] / m
    c[0] /= 2
    c[m] /= 2
    return c


# ---------------------------------------------------------------------- the float64 recursion

@dataclass
class NumericRecursion:
    """(Σ⁽ᴸ⁾, Θ⁽ᴸ⁾)(θ₀) and a first-order error estimate, for rows with |x|²/d = r (float64)."""
    phi: object
    dphi: object
    kinks: tuple
    parity: str | None
    depth: int
    sw2: float
    sb2: float
    parameterization: str
    width: int | None
    r: float
    dim: int

    def __post_init__(self):
        q = self.sw2 * self.r + self.sb2
        self.layers = []
        for _ in range(self.depth):
            if not (math.isfinite(q) and q >= 0):
                raise ArithmeticError("variance not finite")
            ev = _equal_variance(self.phi, self.dphi, q, self.kinks, self.parity)
            if not ev.ok:
                raise ArithmeticError("1-D integrals not finite")
            if ev.cut < 1 and q > Q_END_MAX:
                raise ArithmeticError("variance too large for the end-interval quadrature")
            self.layers.append(ev)
            q = self.sw2 * ev.m0 + self.sb2
        self.max_error = 0.0

    def __call__(self, t):
        """(n, 2) array of (Σ, Θ) at θ₀ = (t + 1)π/2; updates ``max_error`` (relative, both kernels)."""
        theta = (np.asarray(t, dtype=float) + 1) * (np.pi / 2)
        rho = np.cos(theta)
        rho = np.where(theta == 0, 1.0, np.where(theta == np.pi, -1.0, rho))
        sw2, sb2, std = self.sw2, self.sb2, self.parameterization != "ntk"
        q = sw2 * self.r + sb2
        sig = q * rho if sb2 == 0 else sw2 * self.r * rho + sb2
        sig = np.where(rho == 1.0, q, sig)
        th = sig.copy() if not std else self.dim * self.r * rho + 1.0
        dsig, dth = np.zeros_like(sig), np.zeros_like(sig)
        first = True
        for ev in self.layers:
            qv = ev.q
            rl = np.clip(np.divide(sig, qv, out=np.zeros_like(sig), where=qv > 0), -1.0, 1.0)
            rl = np.where(sig == qv, 1.0, np.where(sig == -qv, -1.0, rl))
            hat, dot, e = ev(rl, theta if first and sb2 == 0 else None)
            first = False
            new_sig = sw2 * hat + sb2
            new_th = (new_sig if not std else self.width * hat + 1.0) + np.where(dot == 0, 0.0, sw2 * dot * th)
            ndsig = sw2 * (e + np.abs(dot) * dsig)
            head = ndsig if not std else self.width * (e + np.abs(dot) * dsig)
            ndth = head + sw2 * (e * np.abs(th) + np.abs(dot) * dth)
            sig, th, dsig, dth = new_sig, new_th, ndsig, ndth
        out = np.stack([sig, th], axis=1)
        if not np.all(np.isfinite(out)):
            return None
        scale = np.maximum(np.max(np.abs(out), axis=0), 1e-300)
        self.max_error = max(self.max_error, float(np.max(np.stack([dsig, dth], axis=1) / scale)))
        return out


@functools.lru_cache(maxsize=256)
def _equal_variance_cached(key, q):
    phi, dphi, kinks, parity = key
    return EqualVarianceDual(phi, dphi, q, kinks, parity)


def _equal_variance(phi, dphi, q, kinks, parity):
    return _equal_variance_cached((phi, dphi, kinks, parity), float(q))


def numeric_angle_table(act, dual, net, r: float, dim: int):
    """AngleTable of an activation without closed-form dual kernels at |x|²/d = r, or None."""
    from .codegen.interpolant import chebyshev_table
    if dual.kdot_distributional or not (math.isfinite(r) and r > 0):
        return None
    phi, dphi = _numpy_fns(act)
    kinks = tuple(b for b in act.breakpoints if b != 0 and np.isfinite(b))
    try:
        rec = NumericRecursion(phi, dphi, kinks, act.parity, net.depth, float(net.sigma_w) ** 2,
                               float(net.sigma_b) ** 2, net.parameterization, net.width, float(r), int(dim))
        table = chebyshev_table(rec, global_tol=TABLE_TOL, tail_tol=1e-15, source=NUMERIC_SOURCE)
    except (ArithmeticError, FloatingPointError, ValueError):
        return None
    if table is None:
        return None
    import dataclasses
    # + 8 ulps: the float64 rounding of the values themselves (a kernel that is nearly constant in θ)
    table = dataclasses.replace(table, max_error=float(table.max_error + rec.max_error + 8 * EPS))
    return table if table.max_error <= TABLE_TOL else None


NUMERIC_SOURCE = ("the recursion in float64 with equal-variance dual kernels from the Hermite (Mehler) series "
                  "with its tail bound, and graded polar quadrature near rho = +-1")


@functools.lru_cache(maxsize=64)
def _numpy_fns(act):
    return act.numpy_fn(), act.numpy_fn(derivative=True)


# ---------------------------------------------------------------------- API: tables on data of one norm

@dataclass(frozen=True)
class UnitTable:
    """An AngleTable ready for NumPy evaluation, with the exact end values and a route label."""
    panels: int
    degree: int
    columns: tuple          # 2(degree+1) contiguous arrays of length panels (Σ coefficients, then Θ)
    at_one: tuple           # (Σ, Θ) at ρ₀ = 1: the diagonal and repeated rows
    at_minus_one: tuple     # (Σ, Θ) at ρ₀ = −1: antipodal rows
    label: str

    def evaluate(self, rho: np.ndarray):
        """(Σ, Θ) at correlations ``rho`` (any shape); ties (θ² < 64ε from 0 or π) take the end values."""
        theta = np.arccos(np.clip(rho, -1.0, 1.0))
        u = theta * (self.panels / np.pi)
        idx = np.minimum(u.astype(np.intp), self.panels - 1)
        s = u - idx
        s *= 2.0
        s -= 1.0
        co = np.take(self.rows, idx, axis=0)        # (..., 2(degree+1)): one gather of whole rows
        m = self.degree + 1
        out = []
        for k in (0, m):
            p = co[..., k] * s
            for j in range(1, m - 1):
                p += co[..., k + j]
                p *= s
            p += co[..., k + m - 1]
            out.append(p)
        lim = math.sqrt(64 * EPS)
        one = theta < lim
        anti = theta > np.pi - lim
        for v, a, b in ((out[0], self.at_one[0], self.at_minus_one[0]), (out[1], self.at_one[1], self.at_minus_one[1])):
            np.putmask(v, one, a)
            np.putmask(v, anti, b)
        return out[0], out[1]

    @functools.cached_property
    def rows(self) -> np.ndarray:
        return np.ascontiguousarray(np.stack(self.columns, axis=1))


_CACHE: "OrderedDict[tuple, UnitTable | None]" = OrderedDict()


def unit_table(act, dual, net, r: float, dim: int) -> UnitTable | None:
    """The table for rows with |x|²/d = r (built on first use, LRU-cached), or None."""
    std = net.parameterization != "ntk"
    key = (act, dual, net.depth, float(net.sigma_w), float(net.sigma_b), net.parameterization,
           net.width, float(r), int(dim) if std else 0)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    table = _build(act, dual, net, r, dim)
    _CACHE[key] = table
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return table


def _build(act, dual, net, r, dim) -> UnitTable | None:
    from types import SimpleNamespace

    from .codegen.interpolant import MP_DEPTH, mp_angle_table, mp_recursion
    from .network import recursion
    if dual.kdot_distributional:
        return None
    if dual.khat is not None and dual.kdot is not None:
        if net.depth > MP_DEPTH:
            return None
        try:
            table = mp_angle_table(mp_recursion(SimpleNamespace(recursion=recursion(dual, net))), r, dim)
        except (ArithmeticError, ValueError, TypeError, NameError):   # no mpmath form, a pole, ...: no table
            return None
    else:
        table = numeric_angle_table(act, dual, net, r, dim)
    if table is None or not table.ends:
        return None
    rows = np.array(table.coefficients, dtype=float)
    columns = tuple(np.ascontiguousarray(rows[:, j]) for j in range(rows.shape[1]))
    label = (f"depth-independent table in theta = arccos(rho) ({table.panels} panels of degree {table.degree}, "
             f"{table.chebyshev_points}-point Chebyshev interpolant of {table.source}; est. error <= "
             f"{max(table.max_error, 1e-16):.0e} of max|K|) for rows with |x|^2/d = {r:.17g}")
    return UnitTable(table.panels, table.degree, columns, table.ends[0], table.ends[1], label)


def common_norm(x1: np.ndarray, x2: np.ndarray, same: bool):
    """(r, n1, n2): the common |x|²/d of all rows (within SAME_NORM_EPS ulps) and the rows' |x|², or None."""
    d = x1.shape[1]
    n1 = np.einsum("ij,ij->i", x1, x1)
    n2 = n1 if same else np.einsum("ij,ij->i", x2, x2)
    if n1.size == 0 or n2.size == 0:
        return None
    r = float(n1[0]) / d
    if abs(r - 1.0) <= SAME_NORM_EPS * EPS:
        r = 1.0
    if not (1e-100 < r < 1e100):
        return None
    for nn in (n1, n2):
        if not np.all(np.abs(nn / d - r) <= SAME_NORM_EPS * EPS * r):
            return None
    return r, n1, n2


def table_kernels(act, dual, net, x1, x2=None):
    """(NNGP, NTK) from the depth-independent table when every row has one |x|²/d, else None."""
    same = x2 is None
    try:
        from .network import validate_inputs
        a, b = validate_inputs(x1, x2)
    except Exception:   # the fold reports bad inputs
        return None
    if a.shape[1] == 0:
        return None
    got = common_norm(a, b, same)
    if got is None:
        return None
    r, n1, n2 = got
    table = unit_table(act, dual, net, r, a.shape[1])
    if table is None:
        return None
    global last_label
    last_label = table.label
    return _gram(table, a, b, same, n1, n2)


last_label = None    # the route of the last table evaluation (for callers that report it)
TILE = 256           # tiles of the table evaluation (cache-sized)


def _gram(table: UnitTable, a, b, same, n1, n2):
    """Square tiles of the upper triangle (all tiles when x2 is given), each mirrored when symmetric."""
    g = a @ (a if same else b).T
    if same:
        n1 = n2 = g.diagonal().copy()
    inv1 = 1.0 / np.sqrt(n1)
    inv2 = inv1 if same else 1.0 / np.sqrt(n2)
    rows, cols = g.shape
    sig = np.empty_like(g)
    with np.errstate(all="ignore"):
        for i0 in range(0, rows, TILE):
            i1 = min(rows, i0 + TILE)
            for j0 in range(i0 if same else 0, cols, TILE):
                j1 = min(cols, j0 + TILE)
                rho = g[i0:i1, j0:j1] * inv1[i0:i1, None]
                rho *= inv2[None, j0:j1]
                s, t = table.evaluate(rho)
                if same and j0 == i0:
                    s, t = np.triu(s) + np.triu(s, 1).T, np.triu(t) + np.triu(t, 1).T
                sig[i0:i1, j0:j1] = s
                g[i0:i1, j0:j1] = t
                if same and j0 != i0:
                    sig[j0:j1, i0:i1] = s.T
                    g[j0:j1, i0:i1] = t.T
    _exact_ties(table, a, b, same, sig, g)
    return sig, g


def _exact_ties(table, a, b, same, sig, theta):
    """Rows equal up to sign (x and ±x) take exactly the end values (whatever the Gram's rounding)."""
    rows = a if same else np.vstack([a, b])
    if rows.shape[0] < 2:
        return
    first = (rows != 0).argmax(axis=1)
    sgn = np.sign(rows[np.arange(rows.shape[0]), first])
    sgn[sgn == 0] = 1.0
    _, inv, counts = np.unique(rows * sgn[:, None], axis=0, return_inverse=True, return_counts=True)
    inv = np.asarray(inv).ravel()
    n1 = a.shape[0]
    for grp in np.nonzero(counts > 1)[0]:
        members = np.nonzero(inv == grp)[0]
        left = members[members < n1]
        right = left if same else members[members >= n1] - n1
        if left.size == 0 or right.size == 0:
            continue
        sl = sgn[left]
        sr = sgn[right] if same else sgn[right + n1]
        prod = sl[:, None] * sr[None, :]
        ii, jj = np.ix_(left, right)
        sig[ii, jj] = np.where(prod > 0, table.at_one[0], table.at_minus_one[0])
        theta[ii, jj] = np.where(prod > 0, table.at_one[1], table.at_minus_one[1])
