"""Independent reference values by arbitrary-precision quadrature (mpmath).

These routes share no code with the engine: Hermite polynomials come from
mpmath's physicists' H_n (He_k(x) = 2^{−k/2} H_k(x/√2)), integrals from
mpmath's tanh-sinh ``quad``.  Bivariate expectations use polar coordinates
of the whitened pair, split on the rays where u = 0 or v = 0 so that kinks at 0
lie on panel edges.
"""
from __future__ import annotations

import mpmath

DPS = 20


def hermite_ref(fn, k: int, breakpoints=(), dps: int = DPS):
    with mpmath.workdps(dps + 10):
        pts = sorted({mpmath.mpf(0), *(mpmath.mpf(b) for b in breakpoints)})

        def integrand(t):
            he = mpmath.hermite(k, t / mpmath.sqrt(2)) / mpmath.sqrt(2) ** k
            return fn(t) * he * mpmath.npdf(t)
        val = mpmath.quad(integrand, [-mpmath.inf, *pts, mpmath.inf])
        return +(val / mpmath.sqrt(mpmath.factorial(k)))


def dual_ref_smooth(f, g, q1, q2, c, n: int = 80, dps: int = 25):
    """E[f(u) g(v)] for smooth (entire) f, g by an n×n Gauss–Hermite product
    rule with nodes computed by mpmath at ``dps`` digits (checked against n/2)."""
    with mpmath.workdps(dps):
        x, w = mpmath.gauss_quadrature(n, "hermite")
        q1, q2, c = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
        z = [mpmath.sqrt(2) * t for t in x]
        w = [t / mpmath.sqrt(mpmath.pi) for t in w]
        a = c / mpmath.sqrt(q1)
        b = mpmath.sqrt(max(q2 - a * a, 0))
        total = mpmath.mpf(0)
        for zi, wi in zip(z, w):
            fu = f(mpmath.sqrt(q1) * zi)
            total += wi * fu * mpmath.fsum(wj * g(a * zi + b * zj) for zj, wj in zip(z, w))
        return +total


def dual_ref(f, g, q1, q2, c, dps: int = DPS):
    """E[f(u) g(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]), kinks of f, g at 0."""
    with mpmath.workdps(dps + 5):
        q1, q2, c = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
        rho = c / mpmath.sqrt(q1 * q2)
        if abs(abs(rho) - 1) < mpmath.mpf(10) ** (-dps):
            s = mpmath.sign(rho) * mpmath.sqrt(q2 / q1)
            val = mpmath.quad(lambda z: f(mpmath.sqrt(q1) * z) * g(s * mpmath.sqrt(q1) * z) * mpmath.npdf(z),
                              [-mpmath.inf, 0, mpmath.inf])
            return +val
        a = rho * mpmath.sqrt(q2)
        b = mpmath.sqrt(q2 * (1 - rho**2))
        # u = √q1 r cos t; v = r (a cos t + b sin t): u = 0 at t = ±π/2, v = 0 at tan t = −a/b
        t0 = mpmath.atan2(-a, b)
        cuts = sorted({mpmath.mpf(-mpmath.pi / 2), mpmath.mpf(mpmath.pi / 2),
                       _wrap(t0), _wrap(t0 + mpmath.pi)})
        grid = [-mpmath.pi / 2] + [t for t in cuts if -mpmath.pi / 2 < t < 3 * mpmath.pi / 2] + [3 * mpmath.pi / 2]
        grid = sorted(set(grid + [mpmath.pi / 2]))

        def integrand(t, r):
            ct, st = mpmath.cos(t), mpmath.sin(t)
            return f(mpmath.sqrt(q1) * r * ct) * g(r * (a * ct + b * st)) * r * mpmath.exp(-r * r / 2)
        val = mpmath.quad(integrand, grid, [0, mpmath.inf]) / (2 * mpmath.pi)
        return +val


def _wrap(t):
    while t < -mpmath.pi / 2:
        t += 2 * mpmath.pi
    while t >= 3 * mpmath.pi / 2:
        t -= 2 * mpmath.pi
    return t


# =====================================================================================================
# Trust-grid references (issue 12).  Written from the formulas, not from the engine: the only thing
# taken from ntksym is the activation expression (``ntksym.as_activation(name).concrete``), and only
# to check (in tests/test_trust_grid.py) that the functions below are the same activations.
#
# * Closed forms: the dual kernels of the catalogue's closed-form activations written out in mpmath
#   (Cho & Saul's arc-cosine kernels for a·x + b·|x|, Williams' arcsin kernel for erf, Gaussian
#   integrals for sin/cos/exp/e^{-x²/2}, the a.e. derivative 0 for sign/step; GELU by a 1-D
#   quadrature whose inner Gaussian integral is done by hand (Stein's lemma), in one-signed parts;
#   polynomials by an exact Gauss–Hermite product rule) and the NNGP/NTK recursion (DESIGN.md §2)
#   run in mpmath at GRID_DPS digits, over the distinct entries only.
# * Conditioning: grid_conditioning measures how far the exact result moves under a 4-ulp
#   perturbation of the data's Gram, the accuracy no float64 evaluation can beat.
# * Numeric routes: E[f(u)g(v)] by nested 1-D composite Gauss–Legendre in float64 on panels split at
#   the kinks u = 0, v = 0 and graded geometrically towards them down to the activation's own scale
#   (1/√q), so that the near-kinks of softplus/SiLU/... at large variance are resolved.
# =====================================================================================================

import math  # noqa: E402

import numpy as np  # noqa: E402

GRID_DPS = 30
FLOAT_MAX = np.finfo(float).max
_BEYOND = mpmath.mpf(10) ** 4000   # a value beyond this is not tracked further (reported as OVER)


class Over:
    """Marker: the exact value is astronomically beyond float64 (a chain of exp or polynomial
    layers); the engine must say inf (either sign) or refuse."""

    def __repr__(self):
        return "OVER"


OVER = Over()


class Unknown:
    """Marker: an input of this entry was beyond what the reference tracks (an OVER entry upstream);
    the exact value may be huge or tiny (a tiny-variance row against an astronomically large one).
    Only a NaN is then certainly wrong."""

    def __repr__(self):
        return "UNKNOWN"


UNKNOWN = Unknown()

# ------------------------------------------------------------------ activations (float64 and mpmath)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


def _sigmoid(v):
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_prime(v):
    e = np.exp(-np.abs(v))
    return e / (1.0 + e) ** 2


def _softplus(v):
    return np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v)))


def _tanh_softplus(v):
    """tanh(log(1 + e^v)) = (w² + 2w)/(w² + 2w + 2), w = e^v (divided through by w² for v > 0)."""
    w = np.exp(np.minimum(v, 0.0))
    r = np.exp(-np.maximum(v, 0.0))
    pos = (1.0 + 2.0 * r) / (1.0 + 2.0 * r + 2.0 * r * r)
    neg = (w * w + 2.0 * w) / (w * w + 2.0 * w + 2.0)
    return np.where(v > 0, pos, neg)


def _sech2_softplus(v):
    """1 − tanh²(log(1 + e^v)) = 4p/(p + 1)², p = (1 + e^v)²."""
    w = np.exp(np.minimum(v, 0.0))
    r = np.exp(-np.maximum(v, 0.0))
    # v > 0: p = e^{2v}(1 + r)², so 4p/(p+1)² = 4 r²(1+r)² / ((1+r)² + r²)²
    pos = 4.0 * r * r * (1.0 + r) ** 2 / ((1.0 + r) ** 2 + r * r) ** 2
    p = (1.0 + w) ** 2
    neg = 4.0 * p / (p + 1.0) ** 2
    return np.where(v > 0, pos, neg)


def _tanh_prime(v):
    e = np.exp(-2.0 * np.abs(v))
    return 4.0 * e / (1.0 + e) ** 2


def _elu(v, alpha=1.0):
    return np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0.0)))


def _elu_prime(v, alpha=1.0):
    return np.where(v > 0, 1.0, alpha * np.exp(np.minimum(v, 0.0)))


# name -> (φ, φ') on float64 arrays, for the activations the engine integrates numerically
NUMERIC_ACTIVATIONS = {
    "tanh": (np.tanh, _tanh_prime),
    "sigmoid": (_sigmoid, _sigmoid_prime),
    "softplus": (_softplus, _sigmoid),
    "silu": (lambda v: v * _sigmoid(v), lambda v: _sigmoid(v) * (1.0 + v * _sigmoid(-v))),
    "mish": (lambda v: v * _tanh_softplus(v),
             lambda v: _tanh_softplus(v) + v * _sech2_softplus(v) * _sigmoid(v)),
    "elu": (_elu, _elu_prime),
    "selu": (lambda v: SELU_LAMBDA * _elu(v, SELU_ALPHA), lambda v: SELU_LAMBDA * _elu_prime(v, SELU_ALPHA)),
}

# ------------------------------------------------------------------ float64 nested Gauss–Legendre

_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
_WINDOW = 9.0                                    # |z| ≤ 9: the normal tail beyond is < 1e-18
_BASE = np.linspace(-_WINDOW, _WINDOW, 15)       # panels of width 9/7 everywhere
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Grading may stop at 1e-9 for activations whose φ' tends to nonzero constants (ReLU-like: softplus,
# SiLU, mish, ELU, SELU): an unresolved smoothed kink of width w then costs ≲ w relative.  Not for
# tanh/sigmoid, whose φ' lives entirely inside that width at large variance.
RELU_LIKE_FLOOR = 1e-9


def _offsets(h_min: float, floor: float = 0.0) -> np.ndarray:
    """0 and ±h_min·2^k up to the window's width: panels graded geometrically towards 0 (each panel
    [h, 2h] is 3 half-widths from the kink, so 8 Gauss–Legendre nodes give ≈ 1e-13)."""
    h_min = max(h_min, floor, 1e-300)
    k = int(math.ceil(math.log2(2.0 * _WINDOW / h_min))) + 1
    g = h_min * 2.0 ** np.arange(k)
    return np.concatenate([-g[::-1], [0.0], g])


def _nodes(ends: np.ndarray):
    """Gauss–Legendre nodes and weights on the panels between consecutive ``ends``."""
    lo, hi = ends[:-1], ends[1:]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return (mid[:, None] + half[:, None] * _GL_X).ravel(), (half[:, None] * _GL_W).ravel()


def _scale(s: float) -> float:
    """Smallest panel: a quarter of the smaller of 1 and the feature width 1/s."""
    return 0.25 * min(1.0, 1.0 / s) if s > 0 else 0.25


def _outer(h_min: float, floor: float):
    ends = np.unique(np.concatenate([_BASE, np.clip(_offsets(h_min, floor), -_WINDOW, _WINDOW)]))
    z, w = _nodes(ends)
    return z, w * np.exp(-z * z / 2) * _INV_SQRT_2PI


def gl_expect1(fns, q, floor: float = 0.0):
    """[E f(u)²  for f in fns], u ~ N(0, q), by graded Gauss–Legendre (float64)."""
    s = math.sqrt(float(q))
    z, w = _outer(_scale(s), floor)
    with np.errstate(over="ignore", invalid="ignore"):
        return [float(np.dot(w, f(s * z) ** 2)) for f in fns]


def gl_expect2(pairs, q1, q2, c, floor: float = 0.0):
    """[E f(u) g(v)  for (f, g) in pairs], (u, v) ~ N(0, [[q1, c], [c, q2]]), float64.

    For activations whose features have width ≳ 1 in their argument (not for sin/cos at large
    variance).  u = √q1 z₁, v = a z₁ + b z₂ with a = c/√q1, b = √(q2 − c²/q1).  The outer integral
    over z₁ is split at 0 (u = 0); for each outer node the inner one runs in the offset
    t = z₂ − z₂* from the point z₂* = −a z₁/b where v = 0, so that v = b·t has no cancellation
    however large a z₁ is.  Both are graded towards their kink (see :func:`_offsets`)."""
    with mpmath.workdps(GRID_DPS):   # q1 q2 − c² from the given numbers without cancellation
        q1m, q2m, cm = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
        s1, a = float(mpmath.sqrt(q1m)), float(cm / mpmath.sqrt(q1m))
        b = float(mpmath.sqrt(max(q1m * q2m - cm * cm, 0) / q1m))
    # the outer integrand has features of width 1/√q1 (φ(u)) and b/|a| (the inner integral of a kink
    # of φ at v = 0 is a step of that width in z₁)
    z1, w1 = _outer(_scale(max(s1, abs(a) / b if b > 0 else 0.0)), floor)
    u = s1 * z1
    with np.errstate(over="ignore", invalid="ignore"):
        if b == 0.0:
            v = a * z1
            return [float(np.dot(w1, f(u) * g(v))) for f, g in pairs]
        zstar = -(a / b) * z1
        off = _offsets(_scale(b), floor)
        ends = np.concatenate([_BASE[None, :] - zstar[:, None],
                               np.clip(off[None, :], (-_WINDOW - zstar)[:, None], (_WINDOW - zstar)[:, None])],
                              axis=1)
        ends.sort(axis=1)
        row, col = np.nonzero(np.diff(ends, axis=1) > 0)   # panels clipped to nothing cost nothing
        lo, hi = ends[row, col], ends[row, col + 1]
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        t = (mid[:, None] + half[:, None] * _GL_X).ravel()
        z2 = np.repeat(zstar[row], _GL_X.size) + t
        w2 = (half[:, None] * _GL_W).ravel() * np.exp(-z2 * z2 / 2) * _INV_SQRT_2PI
        rows = np.repeat(row, _GL_X.size)
        v = b * t
        out = []
        for f, g in pairs:
            inner = np.bincount(rows, weights=w2 * g(v), minlength=z1.size)
            out.append(float(np.dot(w1, f(u) * inner)))
        return out


def numeric_pair(name: str):
    """(q1, q2, c) -> (Σ̂, Σ̇) and q -> (Σ̂(q,q,q), Σ̇(q,q,q)) for a numeric-route activation."""
    phi, dphi = NUMERIC_ACTIVATIONS[name]
    floor = 0.0 if name in ("tanh", "sigmoid") else RELU_LIKE_FLOOR

    def pair(q1, q2, c):
        return tuple(gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c, floor))

    def diag(q):
        return tuple(gl_expect1([phi, dphi], q, floor))
    return pair, diag


# ------------------------------------------------------------------ closed forms in mpmath

def _abs_family(a, b):
    """φ = a·x + b·|x|: Σ̂ = a²c + b²(2/π)(√(q1q2 − c²) + c·asin ρ), Σ̇ = a² + b²(2/π) asin ρ
    (Cho & Saul's arc-cosine kernel of degree 1 and 0; the cross terms vanish by symmetry)."""
    a, b = mpmath.mpf(a), mpmath.mpf(b)

    def pair(q1, q2, c):
        r = mpmath.sqrt(q1 * q2)
        rho = max(min(c / r, 1), -1)
        asr = mpmath.asin(rho)
        khat = a * a * c + b * b * (2 / mpmath.pi) * (mpmath.sqrt(max(q1 * q2 - c * c, 0)) + c * asr)
        return khat, a * a + b * b * (2 / mpmath.pi) * asr
    return pair


def _erf(a):
    """erf(a x): Σ̂ = (2/π) asin(2a²c/√((1+2a²q1)(1+2a²q2))), Σ̇ = (4a²/π)/√((1+2a²q1)(1+2a²q2) − 4a⁴c²)
    (Williams 1997)."""
    a2 = mpmath.mpf(a) ** 2

    def pair(q1, q2, c):
        d1, d2 = 1 + 2 * a2 * q1, 1 + 2 * a2 * q2
        khat = (2 / mpmath.pi) * mpmath.asin(max(min(2 * a2 * c / mpmath.sqrt(d1 * d2), 1), -1))
        # d1 d2 − 4a⁴c² = 1 + 2a²(q1 + q2) + 4a⁴(q1 q2 − c²): no cancellation
        det = 1 + 2 * a2 * (q1 + q2) + 4 * a2 * a2 * max(q1 * q2 - c * c, 0)
        return khat, (4 * a2 / mpmath.pi) / mpmath.sqrt(det)
    return pair


def _sign(scale, shift):
    """scale·sign(x) + shift: Σ̂ = shift² + scale²(2/π) asin ρ; Σ̇ = 0 (a.e. derivative)."""
    scale, shift = mpmath.mpf(scale), mpmath.mpf(shift)

    def pair(q1, q2, c):
        rho = max(min(c / mpmath.sqrt(q1 * q2), 1), -1)
        return shift * shift + scale * scale * (2 / mpmath.pi) * mpmath.asin(rho), mpmath.mpf(0)
    return pair


def _sin(a, cosine=False):
    """sin(a x): Σ̂ = e^{−a²(q1+q2)/2} sinh(a²c), Σ̇ = a² e^{−a²(q1+q2)/2} cosh(a²c); cos swaps sinh
    and cosh.  Written with exponents −a²(q1 + q2 ∓ 2c)/2 ≤ 0 so that no factor overflows."""
    a2 = mpmath.mpf(a) ** 2

    def pair(q1, q2, c):
        e_minus = mpmath.exp(-a2 * (q1 + q2 - 2 * c) / 2)   # e^{−a²(q1+q2)/2} e^{a²c}
        e_plus = mpmath.exp(-a2 * (q1 + q2 + 2 * c) / 2)    # e^{−a²(q1+q2)/2} e^{−a²c}
        sh, ch = (e_minus - e_plus) / 2, (e_minus + e_plus) / 2
        return (ch, a2 * sh) if cosine else (sh, a2 * ch)
    return pair


def _exp(a):
    """exp(a x): Σ̂ = e^{a²(q1+q2+2c)/2}, Σ̇ = a² Σ̂."""
    a2 = mpmath.mpf(a) ** 2

    def pair(q1, q2, c):
        x = a2 * (q1 + q2 + 2 * c) / 2
        if x > 9000:  # e^{9000} ≈ 10^{3909}: beyond anything float64 can hold, and beyond _BEYOND soon
            return OVER, OVER
        v = mpmath.exp(x)
        return v, a2 * v
    return pair


def _gaussian(q1, q2, c):
    """e^{−x²/2}: Σ̂ = 1/√D, Σ̇ = E[u v e^{−(u²+v²)/2}] = c/D^{3/2}, D = (1+q1)(1+q2) − c²
    = 1 + q1 + q2 + (q1 q2 − c²)."""
    det = 1 + q1 + q2 + max(q1 * q2 - c * c, 0)
    return 1 / mpmath.sqrt(det), c / det ** mpmath.mpf(1.5)


def _gelu():
    """x·Φ(x): E[φ(u)φ(v)] = E_z[φ(√q1 z) H(a z)] with the inner Gaussian integral in closed form:
    for v ~ N(m, b²), s = √(1 + b²): E[vΦ(v)] = mΦ(m/s) + (b²/s)N(m/s) (Stein's lemma) and
    E[φ'(v)] = d/dm of that = Φ(m/s) + m N(m/s)/s³; the outer integral by mpmath.quad split at the
    kink scales 1/√q1 and s/|a|."""
    def pair(q1, q2, c):
        s1 = mpmath.sqrt(q1)
        a = c / s1
        b2 = max(q1 * q2 - c * c, 0) / q1
        s = mpmath.sqrt(1 + b2)

        def H(m):
            t = m / s
            return m * mpmath.ncdf(t) + b2 / s * mpmath.npdf(t)

        def dH(m):
            t = m / s
            return mpmath.ncdf(t) + m * mpmath.npdf(t) / s ** 3

        h = min(mpmath.mpf(1), 1 / s1, s / abs(a)) if a != 0 else min(mpmath.mpf(1), 1 / s1)
        cuts = [-mpmath.inf, -10, -h, 0, h, 10, mpmath.inf]
        khat = mpmath.quad(lambda z: s1 * z * mpmath.ncdf(s1 * z) * H(a * z) * mpmath.npdf(z), cuts)
        kdot = mpmath.quad(lambda z: (mpmath.ncdf(s1 * z) + s1 * z * mpmath.npdf(s1 * z)) * dH(a * z)
                           * mpmath.npdf(z), cuts)
        return khat, kdot
    return pair


_GL16_X, _GL16_W = np.polynomial.legendre.leggauss(16)


def _gelu_fast():
    """The same GELU formula as :func:`_gelu`, split into parts with no cancellation, the outer 1-D
    integral by 16-node Gauss–Legendre on [0, 9] graded towards 0 down to the kink widths 1/√q1 and
    s/|a| (float64; checked against :func:`_gelu` in the tests).

    φ(x) = x/2 + φₑ(x), φₑ(x) = x(Φ(x) − ½) ≥ 0 even; H(m) = m/2 + Hₑ(m), Hₑ ≥ 0 even, so
    Σ̂ = c/4 + E[φₑ(u) Hₑ(a z)] (odd × even terms vanish).  φ'(x) = ½ + φ'ₒ(x), φ'ₒ = Φ(x) − ½ + xN(x)
    odd; E[φ'(v)] = ½ + (Φ(t) − ½) + tN(t)/s², so Σ̇ = ¼ + E[φ'ₒ(u) (that odd part)(a z)], an
    integrand of one sign.  (Without the split, a tiny-variance row against a 1e285 one cancels
    eight digits away.)"""
    from scipy.special import erf

    def npdf(t):
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(-t * t / 2) * _INV_SQRT_2PI

    def half_erf(x):           # Φ(x) − ½, accurate near 0
        return erf(x / math.sqrt(2.0)) / 2

    def pair(q1, q2, c):
        with mpmath.workdps(GRID_DPS):   # scalars in mpmath: q may be beyond float64 (its root is not)
            q1m, q2m, cm = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
            s1m = mpmath.sqrt(q1m)
            am = cm / s1m
            b2m = max(q1m * q2m - cm * cm, 0) / q1m
            sm = mpmath.sqrt(1 + b2m)
            bigm = max(mpmath.mpf(1), abs(am), sm)
            s1, a, s, big = float(s1m), float(am), float(sm), float(bigm)
            coef, inv = float(b2m / sm / bigm), float(1 / (1 + b2m))
        h = _scale(max(s1, abs(a) / s))
        ends = np.unique(np.concatenate([np.linspace(0.0, _WINDOW, 19), np.clip(_offsets(h), 0.0, _WINDOW)]))
        lo, hi = ends[:-1], ends[1:]
        z = ((lo + hi)[:, None] / 2 + (hi - lo)[:, None] / 2 * _GL16_X).ravel()
        w = 2 * ((hi - lo)[:, None] / 2 * _GL16_W).ravel() * npdf(z)       # 2 ∫_0^∞ of an even integrand
        u = s1 * z
        t = a * z / s
        with np.errstate(over="ignore", under="ignore"):
            phi_e = z * half_erf(u)                                  # φₑ(u)/s1
            h_e = (a / big) * z * half_erf(t) + coef * npdf(t)        # Hₑ(a z)/big
            khat = math.fsum(w * phi_e * h_e)
            dphi_o = half_erf(u) + u * npdf(u)
            dh_o = half_erf(t) + t * npdf(t) * inv
            kdot = math.fsum(w * dphi_o * dh_o)
        with mpmath.workdps(GRID_DPS):
            return cm / 4 + s1m * bigm * mpmath.mpf(khat), mpmath.mpf(1) / 4 + mpmath.mpf(kdot)
    return pair


def _polynomial(coeffs):
    """A polynomial φ (coefficients, lowest first): an (n+1)-node Gauss–Hermite product rule in mpmath
    is exact for E[φ(u)φ(v)] and E[φ'(u)φ'(v)] (degree ≤ 2n in each variable)."""
    coeffs = [mpmath.mpf(k) for k in coeffs]
    dcoeffs = [i * k for i, k in enumerate(coeffs)][1:] or [mpmath.mpf(0)]
    n = len(coeffs) + 1

    def ev(cs, x):
        return mpmath.polyval(cs[::-1], x)

    def pair(q1, q2, c):
        x, w = mpmath.gauss_quadrature(n, "hermite")
        z = [mpmath.sqrt(2) * t for t in x]
        w = [t / mpmath.sqrt(mpmath.pi) for t in w]
        s1 = mpmath.sqrt(q1)
        a = c / s1
        b = mpmath.sqrt(max(q2 - a * a, 0))
        out = []
        for cs in (coeffs, dcoeffs):
            out.append(mpmath.fsum(wi * ev(cs, s1 * zi) * mpmath.fsum(wj * ev(cs, a * zi + b * zj)
                                                                       for zj, wj in zip(z, w))
                                   for zi, wi in zip(z, w)))
        return tuple(out)
    return pair


def polynomial_coefficients(expr, x):
    import sympy
    poly = sympy.Poly(sympy.expand(expr), x)
    return [sympy.Rational(k) if k.is_Rational else k for k in reversed(poly.all_coeffs())]


def closed_pair(name: str):
    """(q1, q2, c) -> (Σ̂, Σ̇) in mpmath for a closed-form catalogue activation (default parameters),
    or for hermiteN / monomialN (constants rounded at GRID_DPS digits)."""
    with mpmath.workdps(GRID_DPS):
        return _closed_pair(name)


def _closed_pair(name: str):
    table = {
        "relu": lambda: _abs_family(mpmath.mpf(1) / 2, mpmath.mpf(1) / 2),
        "abrelu": lambda: _abs_family(mpmath.mpf(1) / 2, mpmath.mpf(1) / 2),
        "leaky_relu": lambda: _abs_family((1 + mpmath.mpf(1) / 100) / 2, (1 - mpmath.mpf(1) / 100) / 2),
        "abs": lambda: _abs_family(0, 1),
        "identity": lambda: _abs_family(1, 0),
        "sign": lambda: _sign(1, 0),
        "step": lambda: _sign(mpmath.mpf(1) / 2, mpmath.mpf(1) / 2),   # 1{x>0} = (1 + sign x)/2
        "erf": lambda: _erf(1),
        "sin": lambda: _sin(1),
        "cos": lambda: _sin(1, cosine=True),
        "exp": lambda: _exp(1),
        "gaussian": lambda: _gaussian,
        "gelu": _gelu_fast,
        "gelu-mpmath": _gelu,
    }
    if name in table:
        return table[name]()
    import sympy
    m = __import__("re").match(r"^(hermite|monomial)(\d+)$", name)
    if not m:
        raise KeyError(name)
    x = sympy.Symbol("x")
    n = int(m.group(2))
    expr = sympy.hermite_prob(n, x) / sympy.sqrt(sympy.factorial(n)) if m.group(1) == "hermite" else x**n
    coeffs = [mpmath.mpf(sympy.N(k, GRID_DPS + 10)) for k in reversed(sympy.Poly(expr, x).all_coeffs())]
    return _polynomial(coeffs)


CLOSED_FORM_NAMES = ("relu", "abrelu", "leaky_relu", "abs", "identity", "sign", "step", "erf", "sin", "cos",
                     "exp", "gaussian", "gelu")


def closed_phi(name: str):
    """φ in mpmath for the closed-form names (to check against the catalogue's expression)."""
    with mpmath.workdps(GRID_DPS):
        half, lk = mpmath.mpf(1) / 2, mpmath.mpf(1) / 100
    return {
        "relu": lambda x: max(x, 0), "abrelu": lambda x: half * x + half * abs(x),
        "leaky_relu": lambda x: max(x, 0) + lk * min(x, 0), "abs": abs, "identity": lambda x: x,
        "sign": mpmath.sign, "step": lambda x: (1 + mpmath.sign(x)) / 2, "erf": mpmath.erf,
        "sin": mpmath.sin, "cos": mpmath.cos, "exp": mpmath.exp, "gaussian": lambda x: mpmath.exp(-x * x / 2),
        "gelu": lambda x: x * mpmath.ncdf(x),
    }[name]


# ------------------------------------------------------------------ the recursion over distinct entries

def grid_reference(name: str, rows, depth: int, sigma_w: float, sigma_b: float, dual=None, perturb=None):
    """Exact-recursion NNGP and NTK of ``rows`` (n×d floats) at every depth 1..``depth``.

    ``dual``, if given, is an mpmath (q1, q2, c) -> (Σ̂, Σ̇) used instead of the one ``name`` selects.
    ``perturb`` = (rel, seed): each first-layer entry σ_w² x·y/d + σ_b² is moved by ±rel·(σ_w² Σ|x_k y_k|/d
    + its size) with random signs, i.e. by what rounding the data's Gram can cost (see
    :func:`grid_conditioning`).

    Returns a list (index l − 1) of (nngp, ntk) n×n object arrays holding mpmath numbers (or the
    :data:`OVER` marker).  Only the distinct entries are computed: repeated rows share one chain;
    a pair of identical rows is the diagonal (c = q exactly)."""
    rows = np.asarray(rows, dtype=float)
    n, d = rows.shape
    keys = [tuple(r) for r in rows]
    distinct = list(dict.fromkeys(keys))
    idx = [distinct.index(k) for k in keys]
    numeric = dual is None and name in NUMERIC_ACTIVATIONS
    if numeric:
        pair_fn, diag_fn = numeric_pair(name)
    else:
        cpair = dual if dual is not None else closed_pair(name)

        def pair_fn(q1, q2, c):
            return cpair(q1, q2, c)

        def diag_fn(q):
            return cpair(q, q, q)
    with mpmath.workdps(GRID_DPS):
        sw2, sb2 = mpmath.mpf(sigma_w) ** 2, mpmath.mpf(sigma_b) ** 2
        with mpmath.workprec(400):   # the Gram of float rows, exactly
            gram = [[mpmath.fsum(mpmath.mpf(float(x)) * mpmath.mpf(float(y)) for x, y in zip(distinct[i], distinct[j]))
                     for j in range(len(distinct))] for i in range(len(distinct))]
            absgram = [[mpmath.fsum(abs(mpmath.mpf(float(x)) * mpmath.mpf(float(y)))
                                    for x, y in zip(distinct[i], distinct[j]))
                        for j in range(len(distinct))] for i in range(len(distinct))]
        m = len(distinct)
        sig = [[+(sw2 * gram[i][j] / d + sb2) for j in range(m)] for i in range(m)]
        if perturb is not None:
            rel, seed = perturb
            signs = np.random.default_rng(seed).choice([-1, 1], size=(m, m))
            for i in range(m):
                for j in range(i, m):
                    bump = mpmath.mpf(rel) * (sw2 * absgram[i][j] / d + abs(sig[i][j]))
                    sig[i][j] = sig[i][j] + int(signs[i, j]) * bump
                    sig[j][i] = sig[i][j]
        theta = [row[:] for row in sig]
        out = []
        cache = {}
        for _ in range(depth):
            new_sig = [[None] * m for _ in range(m)]
            new_theta = [[None] * m for _ in range(m)]
            for i in range(m):
                for j in range(i, m):
                    q1, q2, c = sig[i][i], sig[j][j], sig[i][j]
                    if any(v is OVER or v is UNKNOWN for v in (q1, q2, c, theta[i][j])):
                        new_sig[i][j] = new_theta[i][j] = UNKNOWN
                        continue
                    if i == j:
                        kh, kd = _cached(cache, ("d", q1), lambda: diag_fn(q1), numeric)
                    else:
                        kh, kd = _cached(cache, ("p", q1, q2, c), lambda: pair_fn(q1, q2, c), numeric)
                    if kh is OVER or kd is OVER:
                        new_sig[i][j] = new_theta[i][j] = OVER
                        continue
                    s = sw2 * mpmath.mpf(kh) + sb2
                    t = s + sw2 * mpmath.mpf(kd) * theta[i][j]
                    new_sig[i][j] = s if abs(s) < _BEYOND else OVER
                    new_theta[i][j] = t if abs(t) < _BEYOND else OVER
            for i in range(m):
                for j in range(i):
                    new_sig[i][j], new_theta[i][j] = new_sig[j][i], new_theta[j][i]
            sig, theta = new_sig, new_theta
            nngp = np.empty((n, n), dtype=object)
            ntk = np.empty((n, n), dtype=object)
            for a in range(n):
                for b in range(n):
                    nngp[a, b], ntk[a, b] = sig[idx[a]][idx[b]], theta[idx[a]][idx[b]]
            out.append((nngp, ntk))
        return out


def grid_conditioning(name: str, rows, depth: int, sigma_w: float, sigma_b: float, dual=None):
    """Per depth, n×n floats: how far the exact result moves when the first-layer Gram is perturbed by
    4 rounding units (two random sign patterns, the larger move).  A float64 evaluation that rounds
    its Gram and every layer cannot be held closer than about this to the exact result; an entry where
    the recursion amplifies rounding (e.g. a pair of rows 10¹⁵⁶ apart in norm, at depth 50) gets a
    correspondingly wider allowance in the trust grid.  OVER entries get 0."""
    base = grid_reference(name, rows, depth, sigma_w, sigma_b, dual)
    moved = [grid_reference(name, rows, depth, sigma_w, sigma_b, dual, perturb=(4 * 2.0**-52, seed))
             for seed in (1, 2)]
    out = []
    for layer in range(depth):
        floors = []
        for k in (0, 1):
            b = base[layer][k]
            f = np.zeros(b.shape)
            for idx in np.ndindex(b.shape):
                for mv in moved:
                    p = mv[layer][k][idx]
                    if any(v is OVER or v is UNKNOWN for v in (b[idx], p)):
                        continue
                    f[idx] = max(f[idx], float(min(abs(p - b[idx]), mpmath.mpf(FLOAT_MAX))))
            floors.append(f)
        out.append(tuple(floors))
    return out


def _cached(cache, key, compute, numeric: bool):
    """Memoised dual kernels; for the float64 quadrature, inputs within 1e-14 (relative) of an earlier
    call reuse it (a chain at its fixed point stops costing quadratures)."""
    if not numeric:
        if key not in cache:
            cache[key] = compute()
        return cache[key]
    fkey = (key[0],) + tuple(float(v) for v in key[1:])
    if fkey in cache:
        return cache[fkey]
    for k, val in cache.items():
        if k[0] == fkey[0] and all(abs(x - y) <= 1e-14 * max(abs(x), abs(y)) for x, y in zip(k[1:], fkey[1:])):
            return val
    cache[fkey] = compute()
    return cache[fkey]
