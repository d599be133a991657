"""Per-row Hermite coefficients of φ(√q ·): the row data of the fast Mehler route.

For a row (an input point at one layer) with variance q ≥ 0, with h_k = He_k/√k! (orthonormal
under Z ~ N(0, 1)),

    a_k(q) = E[φ(√q Z) h_k(Z)],   b_k(q) = E[φ'(√q Z) h_k(Z)],   k ≤ K_MAX,

and the masses of the even and odd parts, m0e = E[φ_e(√qZ)²] = Σ_{k even} a_k², m0o = Σ_{k odd} a_k²
(φ_e(x) = (φ(x) + φ(−x))/2, φ_o likewise; m1e, m1o for φ').  Mehler's formula then gives the dual
kernels of two rows as Σ_k a_k(q₁) a_k(q₂) ρ^k (:mod:`ntksym.fastdual`), and the tail masses
T = m − Σ_{k≤K} a_k² bound its truncation (Cauchy–Schwarz + Parseval).

Quadrature (:func:`direct`): Gauss–Legendre panels (:data:`PANEL_NODES` nodes each) on the
symmetric range |z| ≤ :data:`Z_MAX` = 13, graded toward 0 down to width 2^−L where √q ≤ 2^L (the
transition of φ(√q z) at x = O(1) sits at z = O(1/√q)), unit width beyond |z| = 1, and split at
±t/√q for every kink t ≠ 0 of φ (0 is always an edge).  Per row it returns, besides the values,

* ``err_a``, ``err_b`` (rows × K_MAX + 1): estimates of the ℓ²-norm over k' ≤ k of the coefficient errors:
  the difference to the rule with :data:`COARSE_NODES` nodes on the same panels (an estimate of the
  coarser rule's error, so a conservative one of the returned values) plus the truncation of the
  z-range, bounded by Bessel's inequality: ‖δa‖₂ ≤ √E[φ(√qZ)²; |Z| > Z_MAX], evaluated assuming
  |φ(x)| ≤ |φ(±√q Z_MAX)|·(x/(√q Z_MAX))² beyond (polynomial growth of degree ≤ 2);
* ``err_m0``, ``err_m1``: the same for the masses.

Because evaluating φ at every row is the expensive part (the stable activation code costs up to a
microsecond per point), :func:`row_hermite` evaluates the quadrature at Chebyshev points of
s = √q on each occupied interval [2^{j/2}, 2^{(j+1)/2}) and interpolates (every quantity is
analytic in s > 0).  The interpolation error is measured, not assumed: the quadrature is also
evaluated at two points between the Chebyshev nodes of each interval, and the difference there
(plus the last Chebyshev coefficients) is added to the error estimates of every row of the interval.
With at most :data:`DIRECT_MAX` distinct variances, every row is evaluated directly.

q = 0 rows are exact: a_0 = φ(0), b_0 = φ'(0), all other coefficients 0.  Rows whose variance is
not finite, or above 2^(2·MAX_LEVEL), are marked ``ok = False`` (their entries go to a fallback).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

Z_MAX = 13.0
PANEL_NODES = 16
COARSE_NODES = 12
OUTER_WIDTH = 1.0
K_MAX = 96
MAX_LEVEL = 40
CHEB_DEGREE = 20
DIRECT_MAX = 48
_GAUSS_TAIL = math.exp(-Z_MAX ** 2 / 2) / math.sqrt(2 * math.pi) * (1 / Z_MAX + 3 / Z_MAX ** 3 + 3 / Z_MAX ** 5)
# ∫_{Z}^∞ (z/Z)^4 γ(z) dz = γ(Z)(1/Z + 3/Z³ + 3/Z⁵ Mills-ratio bound): one side of the truncated tail


def levels(s: np.ndarray) -> np.ndarray:
    """Grading level ⌈log₂ s⌉ (at least 0) of s = √q."""
    with np.errstate(all="ignore"):
        lev = np.ceil(np.log2(np.where(s > 0, s, 1.0)))
    return np.clip(np.where(np.isfinite(lev), lev, MAX_LEVEL + 1), 0, MAX_LEVEL + 1).astype(int)


def _hermite_table(z: np.ndarray, kmax: int) -> np.ndarray:
    """h_k(z), k ≤ kmax (rows), by the stable recurrence h_{k+1} = (z h_k − √k h_{k−1})/√(k+1)."""
    h = np.empty((kmax + 1,) + z.shape)
    h[0] = 1.0
    if kmax >= 1:
        h[1] = z
    for k in range(1, kmax):
        h[k + 1] = (z * h[k] - math.sqrt(k) * h[k - 1]) / math.sqrt(k + 1)
    return h


@functools.lru_cache(maxsize=64)
def _base_edges(level: int) -> tuple:
    """Positive panel edges: 0, 2^−L, 2^{1−L}, …, 1, then unit steps to Z_MAX."""
    geo = [2.0 ** (j - level) for j in range(level + 1)]
    outer = list(np.arange(1.0 + OUTER_WIDTH, Z_MAX + 1e-9, OUTER_WIDTH))
    return tuple([0.0] + geo + outer)


def _rule(pos_edges: np.ndarray, n: int):
    """Symmetric nodes z (z[::-1] == −z exactly) and weights w·γ(z) of the panel rule."""
    x, w = np.polynomial.legendre.leggauss(n)
    lo, hi = pos_edges[:-1, None], pos_edges[1:, None]
    zp = (lo + (hi - lo) * (x + 1) / 2).ravel()
    wp = ((hi - lo) / 2 * w).ravel()
    z = np.concatenate([-zp[::-1], zp])
    wz = np.concatenate([wp[::-1], wp]) * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return z, wz


@functools.lru_cache(maxsize=64)
def _shared_rule(level: int, n: int, kmax: int):
    z, wz = _rule(np.array(_base_edges(level)), n)
    hw = (_hermite_table(z, kmax) * wz).T          # (N, kmax+1): weights·γ·h_k
    for a in (z, wz, hw):
        a.flags.writeable = False
    return z, wz, np.ascontiguousarray(hw)


def _project(phi, s: np.ndarray, z, wz, hw):
    """Coefficients, even/odd masses and the two values at the ends of the z-range, for rows s."""
    f = np.asarray(phi(s[:, None] * z[None, :]), dtype=float)
    f = np.where(np.isfinite(f), f, np.nan)
    coef = f @ hw
    fr = f[:, ::-1]
    even, odd = (f + fr) / 2, (f - fr) / 2
    me, mo = (even * even) @ wz, (odd * odd) @ wz
    ends = np.asarray(phi(np.stack([s * Z_MAX, -s * Z_MAX], axis=1)), dtype=float)
    return coef, me, mo, ends


@dataclass
class RowHermite:
    """Per-row data (module docstring).  Arrays over rows; ``a``, ``b`` are (rows, K_MAX + 1)."""
    q: np.ndarray
    a: np.ndarray
    b: np.ndarray
    m0e: np.ndarray
    m0o: np.ndarray
    m1e: np.ndarray
    m1o: np.ndarray
    err_a: np.ndarray
    err_b: np.ndarray
    err_m0: np.ndarray
    err_m1: np.ndarray
    ok: np.ndarray

    @property
    def m0(self):
        return self.m0e + self.m0o

    @property
    def m1(self):
        return self.m1e + self.m1o

    def take(self, idx) -> "RowHermite":
        return RowHermite(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _truncation(ends):
    """√E[φ²; |Z| > Z_MAX] and E[φ²; |Z| > Z_MAX] under the growth assumption (module docstring)."""
    sq = np.sum(np.where(np.isfinite(ends), ends, np.inf) ** 2, axis=1) * _GAUSS_TAIL
    return np.sqrt(sq), sq


def direct(phi, dphi, q, breakpoints=(), kmax: int = K_MAX) -> RowHermite:
    """The quadrature of the module docstring at every q (no interpolation)."""
    q = np.asarray(q, dtype=float).ravel()
    n = q.size
    out = {f: np.zeros(n) for f in ("m0e", "m0o", "m1e", "m1o", "err_m0", "err_m1")}
    out["err_a"], out["err_b"] = np.zeros((n, kmax + 1)), np.zeros((n, kmax + 1))
    a, b = np.zeros((n, kmax + 1)), np.zeros((n, kmax + 1))
    ok = np.isfinite(q) & (q >= 0)
    s = np.sqrt(np.where(ok, q, 0.0))
    lev = levels(s)
    ok &= lev <= MAX_LEVEL
    zero = ok & (q == 0)
    if zero.any():
        p0, d0 = float(phi(np.array([0.0]))[0]), float(dphi(np.array([0.0]))[0])
        a[zero, 0], b[zero, 0] = p0, d0
        out["m0e"][zero], out["m1e"][zero] = p0 * p0, d0 * d0
    bps = tuple(sorted({abs(float(t)) for t in breakpoints if t != 0 and np.isfinite(t)}))
    pos = ok & (q > 0)
    for L in np.unique(lev[pos]):
        rows = np.flatnonzero(pos & (lev == L))
        groups = [rows] if not bps else [rows[i:i + 1] for i in range(rows.size)]
        for g in groups:
            if bps:   # kinks away from 0: the panels split at ±t/√q, per row
                base = np.array(_base_edges(int(L)))
                extra = [t / s[g[0]] for t in bps if t / s[g[0]] < Z_MAX]
                edges = np.unique(np.concatenate([base, extra]))
                rules = []
                for nn in (PANEL_NODES, COARSE_NODES):
                    z, wz = _rule(edges, nn)
                    rules.append((z, wz, np.ascontiguousarray((_hermite_table(z, kmax) * wz).T)))
            else:
                rules = [_shared_rule(int(L), nn, kmax) for nn in (PANEL_NODES, COARSE_NODES)]
            res = {}
            for name, fn in (("0", phi), ("1", dphi)):
                fine, rough = (_project(fn, s[g], *r) for r in rules)
                coef, me, mo, ends = fine
                tr, tr2 = _truncation(ends)
                dc = np.sqrt(np.cumsum((coef - rough[0]) ** 2, axis=1))      # ℓ² over k' ≤ k
                dm = np.abs(me - rough[1]) + np.abs(mo - rough[2])
                res[name] = (coef, me, mo, dc + tr[:, None], dm + tr2)
            a[g], out["m0e"][g], out["m0o"][g], out["err_a"][g], out["err_m0"][g] = res["0"]
            b[g], out["m1e"][g], out["m1o"][g], out["err_b"][g], out["err_m1"][g] = res["1"]
    bad = ~(np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
            & np.isfinite(out["err_a"][:, -1]) & np.isfinite(out["err_b"][:, -1]))
    ok &= ~bad
    return RowHermite(q, a, b, ok=ok, **out)


def _cheb_points(lo: float, hi: float, deg: int) -> np.ndarray:
    k = np.arange(deg + 1)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (2 * k + 1) / (2 * deg + 2))


def _bary_matrix(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Rows: barycentric interpolation weights (Chebyshev points of the first kind) at x."""
    deg = nodes.size - 1
    k = np.arange(deg + 1)
    w = (-1.0) ** k * np.sin(np.pi * (2 * k + 1) / (2 * deg + 2))
    d = x[:, None] - nodes[None, :]
    hit = d == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = w / d
        m = t / t.sum(axis=1, keepdims=True)
    rows = hit.any(axis=1)
    m[rows] = hit[rows].astype(float)
    return m


_FIELDS = ("a", "b", "m0e", "m0o", "m1e", "m1o")


def row_hermite(phi, dphi, q, breakpoints=(), kmax: int = K_MAX) -> RowHermite:
    """:class:`RowHermite` of every entry of ``q``: directly for few distinct variances, otherwise by
    Chebyshev interpolation in s = √q on the occupied intervals [2^{j/2}, 2^{(j+1)/2}) (module docstring)."""
    q = np.asarray(q, dtype=float).ravel()
    uq, inv = np.unique(q, return_inverse=True)
    inv = inv.ravel()
    if uq.size <= DIRECT_MAX:
        return direct(phi, dphi, uq, breakpoints, kmax).take(inv)
    out = direct(phi, dphi, np.zeros(0), breakpoints, kmax)
    res = {f: np.zeros((uq.size,) + getattr(out, f).shape[1:]) for f in RowHermite.__dataclass_fields__}
    res["q"] = uq
    res["ok"] = np.zeros(uq.size, dtype=bool)
    s = np.sqrt(np.where(np.isfinite(uq) & (uq > 0), uq, 0.0))
    inner = s > 0
    with np.errstate(divide="ignore"):
        j = np.floor(2 * np.log2(np.where(inner, s, 1.0)))
    handled = np.zeros(uq.size, dtype=bool)
    for jj in np.unique(j[inner]):
        rows = np.flatnonzero(inner & (j == jj))
        if rows.size <= CHEB_DEGREE + 3:
            continue
        lo, hi = 2.0 ** (jj / 2), 2.0 ** ((jj + 1) / 2)
        nodes = _cheb_points(lo, hi, CHEB_DEGREE)
        checks = (nodes[1:3] + nodes[2:4]) / 2          # between nodes, where the error peaks
        d = direct(phi, dphi, np.concatenate([nodes, checks]) ** 2, breakpoints, kmax)
        if not d.ok.all():
            continue
        dn, dc = d.take(np.arange(CHEB_DEGREE + 1)), d.take(np.arange(CHEB_DEGREE + 1, CHEB_DEGREE + 3))
        mat, cmat = _bary_matrix(nodes, s[rows]), _bary_matrix(nodes, checks)
        # interpolation error: at the check points (measured), as an ℓ² norm over k, per kernel
        err = {}
        for kern, (coef, me, mo) in (("0", ("a", "m0e", "m0o")), ("1", ("b", "m1e", "m1o"))):
            ci = cmat @ getattr(dn, coef)
            ec = np.sqrt(np.cumsum((ci - getattr(dc, coef)) ** 2, axis=1)).max(axis=0)   # per k (cumulative)
            em = max(np.abs(cmat @ getattr(dn, me) - getattr(dc, me)).max(),
                     np.abs(cmat @ getattr(dn, mo) - getattr(dc, mo)).max())
            err[kern] = (4 * ec, 4 * em)
        for f in _FIELDS:
            res[f][rows] = mat @ getattr(dn, f)
        for f, kern, i in (("err_a", "0", 0), ("err_b", "1", 0), ("err_m0", "0", 1), ("err_m1", "1", 1)):
            # the quadrature estimate, largest relative to the scale over the interval's nodes
            scale = np.sqrt(np.concatenate([dn.m0, dc.m0]) if kern == "0" else np.concatenate([dn.m1, dc.m1]))
            vals = np.concatenate([getattr(dn, f), getattr(dc, f)])
            den = np.where(scale > 0, scale if i == 0 else scale ** 2, 1.0)
            rel = np.max(vals / (den[:, None] if vals.ndim == 2 else den), axis=0)
            sc = np.sqrt(res["m0e"][rows] + res["m0o"][rows]) if kern == "0" else \
                np.sqrt(res["m1e"][rows] + res["m1o"][rows])
            sc = sc if i == 0 else sc * sc
            res[f][rows] = (np.multiply.outer(sc, rel) if np.ndim(rel) else rel * sc) + err[kern][i]
        res["ok"][rows] = True
        handled[rows] = True
    rest = np.flatnonzero(~handled)
    if rest.size:
        d = direct(phi, dphi, uq[rest], breakpoints, kmax)
        for f in RowHermite.__dataclass_fields__:
            res[f][rest] = getattr(d, f)
    return RowHermite(**res).take(inv)
