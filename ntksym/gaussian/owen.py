"""The bivariate normal CDF Φ₂(h, k; r) = P(X < h, Y < k), (X, Y) standard normal with correlation r,
through Owen's T function (Owen 1956, "Tables for computing bivariate normal probabilities",
Ann. Math. Stat. 27, 1075–1090):

    Φ₂(h, k; r) = ½Φ(h) + ½Φ(k) − T(h, a_h) − T(k, a_k) − β,
    a_h = (k − r h)/(h s), a_k = (h − r k)/(k s), s = √(1 − r²), β = ½ if hk < 0 else 0,
    T(h, a) = (1/2π) ∫₀^a e^{−h²(1+x²)/2}/(1 + x²) dx.

Evaluated without cancellation where Φ₂ is small (the lower-left quadrant h, k ≤ 0, deep tails
included): with the complementary function

    T̄(h, a) = ½Φ(−|h|) − T(h, a) = (1/2π) ∫_a^∞ e^{−h²(1+x²)/2}/(1 + x²) dx = ∫_{|h|}^∞ φ(u) Φ(−a u) du,

Φ₂(h, k; r) = T̄(h, a_h) + T̄(k, a_k) for h, k ≤ 0 — a sum of two positive terms.  The other
quadrants reduce to it: Φ₂(h, k; r) = Φ(k) − Φ₂(−h, k; −r), etc.

The arguments ``kr`` = (k − r h)/s and ``hr`` = (h − r k)/s are passed explicitly (the Gaussian rule
of :mod:`ntksym.gaussian.halfline` has them in closed form, √(q₁q₂ − c²) times a constant), so that
the result is exact at r = ±1 (s = 0) and has no √ε loss next to it: a_h = kr/h, a_k = hr/k.

* :class:`BivariateNormalCDF` — the SymPy function Φ₂(h, k; r) (extra arguments kr, hr), with LaTeX,
  derivatives, and evalf through :func:`mp_bvn`.
* :func:`bvn` — NumPy, vectorised; :func:`owens_tbar` — T̄ in NumPy.  Accuracy (tests/test_owen.py,
  against mpmath at 40 digits): T̄ relative error ≤ 1e-12 for |h| ≤ 40 and any a (≤ 2e-15 where
  h²(1 + a²) ≤ 50; the relative condition number of T̄ in h is h²(1 + a²), so float inputs carry
  that much anyway); Φ₂ to the same relative accuracy in the lower-left quadrant, to 1e-15 absolute
  elsewhere.  SciPy is not needed (erfc falls back to :func:`math.erfc`).
* :func:`mp_bvn`, :func:`mp_owens_tbar` — mpmath at the working precision, any magnitude (Gauss–Legendre
  panels placed where the integrand falls by fixed factors, the last one where it is below the
  working precision).
"""
from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import sympy as sp

# ------------------------------------------------------------------------------------ NumPy

# T̄ by Gauss–Legendre in τ (x = sinh τ): panels between the points where the integrand has fallen by
# e^{−w}, w in W_LEVELS (edges sinh τ_j = √(sinh²τ₀ + 2 w_j/h²)): each panel is a smooth, bounded drop
W_LEVELS = (0.0, 0.5, 1.5, 3.0, 5.5, 9.0, 14.0, 21.0, 30.0, 41.0)
TAU_NODES = 8
U_NODES = 10       # the small-h form: ∫₀^{|h|} φ(u) Φ(−a u) du on one panel
_UNDERFLOW = 746.0  # h²(1 + a²)/2 beyond this: T̄ < e^{−745}, i.e. 0 in float64


def _np_erfc():
    try:
        from scipy.special import erfc
        return erfc
    except ImportError:  # pragma: no cover - exercised only without SciPy
        return np.vectorize(math.erfc, otypes=[float])


_ERFC = _np_erfc()
ERFC = _ERFC   # vectorised erfc (SciPy's when installed)


@functools.lru_cache(maxsize=4)
def _gl(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    x.flags.writeable = False
    w.flags.writeable = False
    return x, w


def _tbar_tau(h, a):
    """T̄(h, a) for a ≥ 0 by τ-panels (used where |h| ≥ 1 or a|h| ≥ 1: the panels span a short τ range)."""
    h2 = h * h
    s0 = a   # sinh τ₀
    levels = np.asarray(W_LEVELS)
    edges = np.arcsinh(np.sqrt(s0[:, None] ** 2 + 2 * levels / h2[:, None]))         # (m, P+1)
    x, w = _gl(TAU_NODES)
    lo, hi = edges[:, :-1, None], edges[:, 1:, None]
    t = (lo + (hi - lo) * (x + 1) / 2).reshape(len(h), -1)
    wt = ((hi - lo) / 2 * w).reshape(len(h), -1)
    ch = np.cosh(t)
    # e^{−h² cosh²τ/2}/cosh τ, relative to its value at τ₀ (cosh²τ − cosh²τ₀ = sinh²τ − s0²)
    sh = np.sinh(t)
    rel = np.exp(-h2[:, None] * ((sh - s0[:, None]) * (sh + s0[:, None])) / 2) / ch
    return np.sum(rel * wt, axis=1) * np.exp(-h2 * (1 + s0 * s0) / 2) / (2 * np.pi)


def _tbar_u(h, a):
    """T̄(h, a) for a ≥ 0, |h| < 1, a|h| < 1: atan2(1, a)/2π − ∫₀^{|h|} φ(u) Φ(−a u) du (no cancellation
    there: the integral is at most ≈ 2.5× smaller than the first term)."""
    x, w = _gl(U_NODES)
    u = h[:, None] * (x + 1) / 2
    g = np.exp(-u * u / 2) * _ERFC(a[:, None] * u / math.sqrt(2)) / (2 * math.sqrt(2 * math.pi))
    return np.arctan2(1.0, a) / (2 * np.pi) - np.sum(g * w, axis=1) * h / 2


def _tbar_pos(h, a):
    """T̄(|h|, a) for a ≥ 0 (a may be +inf), 1-D float arrays."""
    out = np.zeros(h.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        tail = h * h * (1 + a * a) / 2
    small = (h < 1) & (a * np.where(h > 0, h, 0.0) < 1) & np.isfinite(a)
    small |= (h == 0)
    tau = ~small & np.isfinite(a) & (tail < _UNDERFLOW)
    zero_h = small & (h == 0)
    out[zero_h] = np.arctan2(1.0, a[zero_h]) / (2 * np.pi)
    s = small & ~zero_h
    if s.any():
        out[s] = _tbar_u(h[s], a[s])
    if tau.any():
        out[tau] = _tbar_tau(h[tau], a[tau])
    return out


def owens_tbar(h, a):
    """T̄(h, a) = (1/2π) ∫_a^∞ e^{−h²(1+x²)/2}/(1+x²) dx = ½Φ(−|h|) − T(h, a), vectorised, relative
    accuracy (module docstring); a = ±inf allowed."""
    h, a = np.broadcast_arrays(np.abs(np.asarray(h, dtype=float)), np.asarray(a, dtype=float))
    shape = h.shape
    h, a = h.ravel(), a.ravel()
    out = np.full(h.shape, np.nan)
    ok = np.isfinite(h) & ~np.isnan(a)
    pos = ok & (a >= 0)
    neg = ok & (a < 0)
    with np.errstate(all="ignore"):
        if pos.any():
            out[pos] = _tbar_pos(h[pos], a[pos])
        if neg.any():   # T̄(h, a) = Φ(−|h|) − T̄(h, −a), and T̄(h, −a) ≤ ½Φ(−|h|): no cancellation
            hn = h[neg]
            out[neg] = _ERFC(hn / math.sqrt(2)) / 2 - _tbar_pos(hn, -a[neg])
    return out.reshape(shape)


def owens_t(h, a):
    """Owen's T(h, a) (absolute accuracy ≈ 1e-16; odd in a)."""
    h, a = np.broadcast_arrays(np.abs(np.asarray(h, dtype=float)), np.asarray(a, dtype=float))
    with np.errstate(all="ignore"):
        t = _ERFC(h / math.sqrt(2)) / 4 - owens_tbar(h, np.abs(a))
    return np.sign(a) * t


def _lower_left(h, k, kr, hr):
    """Φ₂ for h, k ≤ 0: T̄(h, kr/h) + T̄(k, hr/k), with the h = 0 (k = 0) limits: T̄(0, a) for
    a = kr/h → −sign(kr)·∞ (0/0 → 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ah = np.where(h < 0, kr / h, -np.sign(kr) * np.inf)
        ak = np.where(k < 0, hr / k, -np.sign(hr) * np.inf)
    ah = np.where(np.isnan(ah), 0.0, ah)
    ak = np.where(np.isnan(ak), 0.0, ak)
    return owens_tbar(h, ah) + owens_tbar(k, ak)


def _ncdf(t):
    return _ERFC(-t / math.sqrt(2)) / 2


def bvn(h, k, r, s, kr, hr):
    """Φ₂(h, k; r) = P(X < h, Y < k), corr(X, Y) = r, given s = √(1 − r²), kr = (k − r h)/s and
    hr = (h − r k)/s (finite also at r = ±1: the limits).  Vectorised; relative accuracy
    in the lower-left quadrant (module docstring)."""
    h, k, r, s, kr, hr = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (h, k, r, s, kr, hr)))
    shape = h.shape
    h, k, r, s, kr, hr = (v.ravel() for v in (h, k, r, s, kr, hr))
    out = np.full(h.shape, np.nan)
    with np.errstate(all="ignore"):
        both0 = (h == 0) & (k == 0)
        # Φ₂(0, 0; r) = ¼ + asin(r)/2π, asin r = atan2(r, s): exact at s = 0
        out[both0] = 0.25 + np.arctan2(r[both0], np.maximum(s[both0], 0.0)) / (2 * np.pi)
        rest = ~both0
        hh, kk, rk, hk = h[rest], k[rest], kr[rest], hr[rest]
        val = np.empty(hh.shape)
        ll = (hh <= 0) & (kk <= 0)
        hp = (hh > 0) & (kk <= 0)      # Φ(k) − Φ₂(−h, k; −r)
        kp = (hh <= 0) & (kk > 0)      # Φ(h) − Φ₂(h, −k; −r)
        pp = (hh > 0) & (kk > 0)       # Φ(h) + Φ(k) − 1 + Φ₂(−h, −k; r)
        val[ll] = _lower_left(hh[ll], kk[ll], rk[ll], hk[ll])
        val[hp] = _ncdf(kk[hp]) - _lower_left(-hh[hp], kk[hp], rk[hp], -hk[hp])
        val[kp] = _ncdf(hh[kp]) - _lower_left(hh[kp], -kk[kp], -rk[kp], hk[kp])
        val[pp] = (_ncdf(hh[pp]) - _ERFC(kk[pp] / math.sqrt(2)) / 2) + _lower_left(-hh[pp], -kk[pp], -rk[pp], -hk[pp])
        bad = ~(np.isfinite(hh) & np.isfinite(kk) & np.isfinite(rk) & np.isfinite(hk))
        val[bad] = np.nan
        out[rest] = np.clip(val, 0.0, 1.0)
    return out.reshape(shape)


# ----------------------------------------------------------------------------------- mpmath

MP_SERIES_MAX_BITS = 1500   # beyond: the quadrature form (the series would need too many guard bits)


def _mp_t_series(h, a):
    """Owen's T(h, a) for 0 ≤ a ≤ 1 by Owen's series (1956, eq. 2.3):
    T = (1/2π)[atan a − Σ_j c_j a^{2j+1}], c_j = (−1)^j (1 − e^{−h²/2} Σ_{i≤j} (h²/2)^i/i!)/(2j+1)."""
    x = h * h / 2
    ex = mpmath.exp(-x)
    total, term_sum, p = mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(1)
    a2, ap = a * a, a
    eps = mpmath.mpf(2) ** (-mpmath.mp.prec - 4)
    j = 0
    while True:
        term_sum += p
        tail = 1 - ex * term_sum          # P(Poisson(x) > j)
        c = tail / (2 * j + 1)
        t = c * ap
        total += t if j % 2 == 0 else -t
        if j > x and abs(t) <= eps * (abs(total) + eps):
            break
        j += 1
        p = p * x / j
        ap *= a2
    return (mpmath.atan(a) - total) / (2 * mpmath.pi)


def _mp_t(h, a):
    """Owen's T(h, a), h ≥ 0, a ≥ 0 (a > 1 by T(h, a) = ½Φ(h) + ½Φ(ah) − Φ(h)Φ(ah) − T(ah, 1/a))."""
    if a <= 1:
        return _mp_t_series(h, a)
    ph, pah = _mp_ncdf(h), _mp_ncdf(a * h)
    return (ph + pah) / 2 - ph * pah - _mp_t_series(a * h, 1 / a)


def mp_owens_tbar(h, a):
    """T̄(h, a) in mpmath at the working precision (any h, a; a = ±inf allowed): Owen's series with
    guard bits for the cancellation (T̄ ≈ e^{−h²(1+a²)/2}), quadrature beyond
    :data:`MP_SERIES_MAX_BITS` guard bits."""
    h, a = abs(mpmath.mpf(h)), mpmath.mpf(a)
    if mpmath.isnan(a) or mpmath.isnan(h):
        return mpmath.nan
    if a < 0:
        return mpmath.erfc(h / mpmath.sqrt(2)) / 2 - mp_owens_tbar(h, -a)
    if mpmath.isinf(a):
        return mpmath.mpf(0)
    if h == 0:
        return mpmath.atan2(1, a) / (2 * mpmath.pi)
    guard = h * h * (1 + a * a) / 2 / mpmath.log(2) + 2 * mpmath.log(1 + h * h, 2) + 40
    if guard < MP_SERIES_MAX_BITS:
        prec = mpmath.mp.prec
        with mpmath.workprec(prec + int(guard)):
            val = mpmath.erfc(h / mpmath.sqrt(2)) / 4 - _mp_t(h, a)
        return +val
    # precision-scaled last level: the integrand relative to its start is below 2^-prec there
    top = mpmath.mpf(mpmath.mp.prec) * mpmath.log(2) + 20
    levels = [mpmath.mpf(w) for w in W_LEVELS[1:-1]] + [top]
    levels = [w for w in levels if w < top] + [top]
    h2 = h * h
    if h < 1 and a * h < 1:
        f = lambda u: mpmath.exp(-u * u / 2) * mpmath.erfc(a * u / mpmath.sqrt(2))  # noqa: E731
        part = mpmath.quad(f, mpmath.linspace(0, h, 3), method="gauss-legendre") / (2 * mpmath.sqrt(2 * mpmath.pi))
        return mpmath.atan2(1, a) / (2 * mpmath.pi) - part
    edges = [mpmath.asinh(a)] + [mpmath.asinh(mpmath.sqrt(a * a + 2 * w / h2)) for w in levels]

    def f(t):
        sh = mpmath.sinh(t)
        return mpmath.exp(-h2 * (sh - a) * (sh + a) / 2) / mpmath.cosh(t)
    total = mpmath.quad(f, edges, method="gauss-legendre")
    return total * mpmath.exp(-h2 * (1 + a * a) / 2) / (2 * mpmath.pi)


def _mp_lower_left(h, k, kr, hr):
    def angle(x, num):
        if x < 0:
            return num / x
        if num == 0:
            return mpmath.mpf(0)
        return -mpmath.sign(num) * mpmath.inf
    return mp_owens_tbar(h, angle(h, kr)) + mp_owens_tbar(k, angle(k, hr))


def _mp_ncdf(t):
    return mpmath.erfc(-t / mpmath.sqrt(2)) / 2


def mp_bvn(h, k, r, s, kr, hr):
    """:func:`bvn` in mpmath at the working precision."""
    h, k, r, s, kr, hr = (mpmath.mpf(v) for v in (h, k, r, s, kr, hr))
    if any(mpmath.isnan(v) for v in (h, k, r, s, kr, hr)):
        return mpmath.nan
    if h == 0 and k == 0:
        return mpmath.mpf(1) / 4 + mpmath.atan2(r, max(s, 0)) / (2 * mpmath.pi)
    if h <= 0 and k <= 0:
        return _mp_lower_left(h, k, kr, hr)
    if h > 0 and k <= 0:
        return _mp_ncdf(k) - _mp_lower_left(-h, k, kr, -hr)
    if h <= 0 and k > 0:
        return _mp_ncdf(h) - _mp_lower_left(h, -k, -kr, hr)
    return _mp_ncdf(h) - _mp_ncdf(-k) + _mp_lower_left(-h, -k, -kr, -hr)


# ------------------------------------------------------------------------------------ SymPy

class BivariateNormalCDF(sp.Function):
    """Φ₂(h, k; r) = P(X < h, Y < k) for standard normals with correlation r; written
    ``BivariateNormalCDF(h, k, r, s, kr, hr)`` with s = √(1 − r²), kr = (k − r h)/s, hr = (h − r k)/s
    (module docstring: they keep r → ±1 exact).  Φ₂(0, 0; r) = ¼ + asin(r)/2π."""
    nargs = 6

    @classmethod
    def eval(cls, h, k, r, s, kr, hr):
        if h.is_zero and k.is_zero:
            return sp.Rational(1, 4) + sp.asin(r) / (2 * sp.pi)
        return None

    def _eval_is_real(self):
        return True if all(a.is_real for a in self.args) else None

    # lambdify's implementation hook: every printer ("numpy", "mpmath", dict modules) finds Φ₂
    _imp_ = staticmethod(lambda *args: _dispatch(*args))

    def fdiff(self, argindex=1):
        h, k, r, s, kr, hr = self.args
        if argindex == 1:   # ∂/∂h = φ(h) Φ((k − r h)/s)
            return sp.exp(-h**2 / 2) / sp.sqrt(2 * sp.pi) * (1 + sp.erf(kr / sp.sqrt(2))) / 2
        if argindex == 2:
            return sp.exp(-k**2 / 2) / sp.sqrt(2 * sp.pi) * (1 + sp.erf(hr / sp.sqrt(2))) / 2
        if argindex == 3:   # the bivariate density
            return sp.exp(-(h**2 - 2 * r * h * k + k**2) / (2 * s**2)) / (2 * sp.pi * s)
        return sp.Integer(0)   # s, kr, hr are functions of (h, k, r): not independent directions

    def _eval_evalf(self, prec):
        if not all(a.is_number for a in self.args):
            return None
        with mpmath.workprec(prec + 20):
            try:
                vals = [mpmath.mpf(sp.Float(a.evalf(prec + 30), prec + 30)) for a in self.args]
            except (TypeError, ValueError):
                return None
            return sp.Float(mp_bvn(*vals), prec)

    def _latex(self, printer, exp=None):
        h, k, r = (printer._print(a) for a in self.args[:3])
        base = rf"\Phi_2\left({h}, {k}; {r}\right)"
        return rf"{base}^{{{printer._print(exp)}}}" if exp is not None else base

    def _sympystr(self, printer):
        return "Phi2(%s)" % ", ".join(printer._print(a) for a in self.args[:3])


def _dispatch(*args):
    """mpmath numbers: :func:`mp_bvn`; anything else (floats, arrays): :func:`bvn`."""
    if any(isinstance(a, mpmath.mpc) and a.imag != 0 or np.iscomplexobj(a) and np.any(np.imag(a) != 0)
           for a in args):   # no analytic continuation here: refuse rather than return a real part
        raise ValueError("the bivariate normal CDF is evaluated at real arguments only")
    if any(isinstance(a, (mpmath.mpf, mpmath.mpc)) for a in args):
        return mp_bvn(*(mpmath.re(a) if isinstance(a, mpmath.mpc) else a for a in args))
    return bvn(*(np.real(a) for a in args))


def numpy_modules() -> dict:
    """lambdify module entries (NumPy) for the functions of this module."""
    return {"BivariateNormalCDF": bvn}


def mpmath_modules() -> dict:
    """lambdify module entries (mpmath) for the functions of this module."""
    return {"BivariateNormalCDF": mp_bvn}
