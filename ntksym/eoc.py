"""Signal propagation and the edge of chaos (Poole et al. 2016; Schoenholz et al. 2017).

For a network with weight/bias standard deviations σ_w, σ_b (the same maps in
the 'ntk' and 'standard' parameterizations):

* variance map      V(q) = σ_w² E[φ(√q Z)²] + σ_b²,  fixed point q*;
* correlation map   C(c) = (σ_w² E[φ(u)φ(v)] + σ_b²)/q*, u, v ~ N(0, q*[[1, c], [c, 1]]);
* χ₁ = σ_w² E[φ'(√q* Z)²] (slope of C at c = 1): ordered χ₁ < 1, EOC χ₁ = 1, chaotic χ₁ > 1;
* depth scales ξ_q = −1/log V'(q*), ξ_c = −1/log(σ_w² E[φ'(u)φ'(v)] at the stable c*)
  (= −1/log χ₁ when c* = 1; ∞ at the EOC).

E[φ²] and E[φ'²] come from the closed-form dual kernels on the diagonal when
they exist (exact), else from mpmath quadrature.  Positively homogeneous
activations of degree 1 (the a·s + b·|s| family) have q-free conditions and an
exact EOC: σ_w² = 1/E[φ'(Z)²], σ_b = 0.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass

import mpmath
import sympy as sp

from .activation import Activation
from .errors import NetworkError, NtksymError
from .gaussian.dual import C, Q1, Q2, DualKernels

DPS = 30


def _mp(x):
    """An mpmath number from a Python, NumPy, mpmath or SymPy number."""
    return mpmath.mpf(sp.N(x, DPS + 5)) if isinstance(x, sp.Basic) else mpmath.mpf(x)


class _Moments:
    """q ↦ E[φ(√q Z)²], E[φ'(√q Z)²] and E[φ(u)φ(v)] at correlation c (mpmath)."""

    def __init__(self, act: Activation, dual: DualKernels):
        self.act, self.dual = act, dual
        q = sp.Symbol("q", positive=True)
        self.exact = dual.khat is not None and dual.kdot is not None and not dual.kdot_distributional
        if self.exact:
            self.m2_expr, self.kd_expr = dual.diagonal("khat"), dual.diagonal("kdot")
            self._m2 = sp.lambdify(q, self.m2_expr, "mpmath")
            self._kd = sp.lambdify(q, self.kd_expr, "mpmath")
            self._khat = sp.lambdify((Q1, Q2, C), dual.khat, "mpmath")
            self._kdot = sp.lambdify((Q1, Q2, C), dual.kdot, "mpmath")
        self._phi = act.mpmath_fn()
        self._dphi = sp.lambdify(act.x, act.derivative, "mpmath")
        self._pts = [-mpmath.inf, *sorted({0.0, *act.breakpoints}), mpmath.inf]

    def _quad(self, f, q):
        sq = mpmath.sqrt(q)
        return mpmath.quad(lambda t: f(sq * t) * mpmath.npdf(t), self._pts)

    def m2(self, q):
        return mpmath.re(self._m2(q)) if self.exact else self._quad(lambda u: self._phi(u) ** 2, q)

    def kd(self, q):
        return mpmath.re(self._kd(q)) if self.exact else self._quad(lambda u: self._dphi(u) ** 2, q)

    def khat(self, q, c):
        if self.exact:
            return mpmath.re(self._khat(q, q, c * q))
        return _bivariate(self.act, q, c, 0)

    def kdot(self, q, c):
        if self.exact:
            return mpmath.re(self._kdot(q, q, c * q))
        return _bivariate(self.act, q, c, 1)


@functools.lru_cache(maxsize=32)
def _numpy_fns(act: Activation):
    return act.numpy_fn(), act.numpy_fn(derivative=True)


def _bivariate(act, q, c, which: int):
    """E[φ(u)φ(v)] (which = 0) or E[φ'(u)φ'(v)] (which = 1), (u, v) ~ N(0, q[[1, c], [c, 1]]),
    by the float64 polar quadrature of :func:`ntksym.gaussian.dual.polar_dual` (≈1e-12 here)."""
    from .gaussian.dual import polar_dual
    qf, cf = float(q), float(c)
    out = polar_dual(*_numpy_fns(act), qf, qf, cf * qf, n_angle=32, n_radius=64)
    return mpmath.mpf(float(out[which]))


@dataclass(frozen=True)
class Phase:
    """Signal-propagation summary of one initialization."""
    sigma_w: mpmath.mpf
    sigma_b: mpmath.mpf
    q_star: mpmath.mpf
    chi1: mpmath.mpf
    phase: str
    xi_q: mpmath.mpf
    xi_c: mpmath.mpf
    c_star: mpmath.mpf
    route: str


@dataclass(frozen=True)
class EdgeOfChaos:
    """The EOC point for a given σ_b: σ_w with χ₁ = 1 at the fixed point q*."""
    sigma_w: mpmath.mpf
    sigma_b: mpmath.mpf
    q_star: mpmath.mpf | None
    chi1: mpmath.mpf
    exact: sp.Expr | None
    route: str


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


def fixed_point(m: _Moments, sw2, sb2, q0=None):
    """q* = V(q*) by iteration from q0 (the stable fixed point reached from the data variance)."""
    q = mpmath.mpf(1) if q0 is None else mpmath.mpf(q0)
    tol = mpmath.mpf(10) ** (-DPS + 3)
    for i in range(10000):
        qn = sw2 * m.m2(q) + sb2
        if abs(qn - q) <= tol * max(1, abs(q)):
            return qn
        if qn > mpmath.mpf(10) ** 30:
            raise NtksymError("the variance map diverges (no finite fixed point q*) for this initialization")
        if i == 20:   # slow (slope near 1) iteration: finish with a secant root in the direction it moves
            root = _secant_fixed_point(m, sw2, sb2, q, qn)
            if root is not None:
                return root
        q = qn
    return mpmath.findroot(lambda v: sw2 * m.m2(v) + sb2 - v, q)


def _secant_fixed_point(m: _Moments, sw2, sb2, q, qn):
    """The root of V(v) − v from the last two iterates, if it is positive, on the side the
    iteration moves to, and V(r) = r to working precision; else None (keep iterating)."""
    try:
        r = mpmath.findroot(lambda v: sw2 * m.m2(v) + sb2 - v, (q, qn), solver="secant")
    except (ValueError, ZeroDivisionError):
        return None
    if not r > 0 or (qn - q) * (r - q) < 0:
        return None
    vr = sw2 * m.m2(r) + sb2
    return vr if abs(vr - r) <= mpmath.mpf(10) ** (-DPS + 6) * max(1, abs(r)) else None


def _require_signal(act: Activation) -> None:
    """φ ≡ 0 propagates no signal: every layer outputs σ_b·(noise), χ₁ = 0 and there is no EOC."""
    if sp.simplify(act.concrete) == 0:
        raise NtksymError("φ ≡ 0 propagates no signal (every layer's output is the bias alone, χ₁ = 0): "
                          "there is no edge of chaos or signal-propagation phase to report")


def phase(act: Activation, dual: DualKernels, sigma_w, sigma_b, tol: float = 1e-12) -> Phase:
    """q*, χ₁, the phase and the depth scales ξ_q, ξ_c of (σ_w, σ_b)."""
    if sigma_w < 0 or sigma_b < 0:
        raise NetworkError("sigma-w and sigma-b must be >= 0")
    _require_signal(act)
    m = _Moments(act, dual)
    with mpmath.workdps(DPS):
        sw2, sb2 = _mp(sigma_w) ** 2, _mp(sigma_b) ** 2
        q_report = None
        if homogeneous_degree_one(act):
            # E[φ(√q Z)²] = q E[φ²], E[φ'²] constant: conditions are q-free.  q* = σ_b²/(1 − σ_w²E[φ²])
            # when that is finite; otherwise q grows without bound and the bias becomes negligible.
            grow = sw2 * m.m2(1)
            if sb2 != 0:
                q_report = sb2 / (1 - grow) if grow < 1 else mpmath.inf
            if sb2 != 0 and grow >= 1:
                sb2 = mpmath.mpf(0)
            q = mpmath.mpf(1) if q_report in (None, mpmath.inf) else q_report
        else:
            try:
                q = fixed_point(m, sw2, sb2)
            except (ValueError, ZeroDivisionError):
                raise NtksymError("no finite fixed point q* of the variance map for this initialization") from None
        chi1 = sw2 * m.kd(q)
        # σ_w = 0: V is constant; at q* = 0 a central difference would step to q < 0 (one-sided there)
        dv = mpmath.mpf(0) if sw2 == 0 else mpmath.re(mpmath.diff(lambda v: sw2 * m.m2(v) + sb2, q,
                                                                  direction=1 if q <= 0 else 0))
        xi_q = mpmath.inf if dv >= 1 - tol or dv <= 0 else -1 / mpmath.log(dv)   # no attracting q*: ∞
        if dv == 0:   # σ_w = 0: q reaches q* = σ_b² in one layer
            xi_q = mpmath.mpf(0)
        name = "edge of chaos" if abs(chi1 - 1) < tol else ("ordered" if chi1 < 1 else "chaotic")
        c_star = mpmath.mpf(1)
        if homogeneous_degree_one(act) and (q_report is None or q_report == mpmath.inf):
            slope = m.kd(1) / m.m2(1)   # the normalised correlation map ϱ(c) = k̂(c)/k̂(1): c* = 1
        else:
            if chi1 > 1 + tol:  # c = 1 unstable: iterate the correlation map to its stable fixed point
                c = mpmath.mpf(0)
                for _ in range(2000):
                    c_new = (sw2 * m.khat(q, c) + sb2) / q
                    if abs(c_new - c) < mpmath.mpf(10) ** (-14):
                        break
                    c = c_new
                c_star = c_new
            slope = sw2 * m.kdot(q, c_star) if c_star != 1 else chi1
        xi_c = mpmath.inf if abs(slope - 1) < tol else -1 / mpmath.log(slope)
        route = "closed-form Gaussian moments" if m.exact else "mpmath quadrature"
        q_star = q if q_report is None else q_report
        return Phase(sw2 ** 0.5, _mp(sigma_b), q_star, chi1, name, xi_q, xi_c, c_star, route)


def edge_of_chaos(act: Activation, dual: DualKernels, sigma_b=0) -> EdgeOfChaos:
    """σ_w on the EOC for the given σ_b (χ₁ = 1 at q*), exact where possible."""
    _require_signal(act)
    m = _Moments(act, dual)
    if homogeneous_degree_one(act):
        kd1 = m.kd_expr.subs(sp.Symbol("q", positive=True), 1) if m.exact else None
        if kd1 is not None and sp.nsimplify(kd1) != 0:   # (nsimplify flushes tiny floats such as 1e-800 to 0)
            kd1 = sp.nsimplify(kd1)
        if sigma_b != 0:
            raise NtksymError("for a positively homogeneous activation the EOC needs σ_b = 0 "
                              "(with σ_b > 0 the variance map has no finite fixed point on the EOC)")
        if kd1 is not None:
            sw = sp.sqrt(1 / kd1)
            with mpmath.workdps(DPS):
                return EdgeOfChaos(mpmath.mpf(sp.N(sw, DPS)), mpmath.mpf(0), None, mpmath.mpf(1),
                                   sp.simplify(sw), "exact: σ_w² = 1/E[φ'(Z)²], σ_b = 0 (any q is a fixed point)")
    with mpmath.workdps(DPS):
        sb2 = _mp(sigma_b) ** 2
        if sb2 == 0:
            if act.breakpoints:
                raise NtksymError("with σ_b = 0 the EOC is at q* = 0, which needs φ smooth at 0")
            d0 = mpmath.mpf(sp.N(act.derivative.subs(act.x, 0), DPS))
            f0 = mpmath.mpf(sp.N(act.concrete.subs(act.x, 0), DPS))
            if f0 != 0 or d0 == 0:
                raise NtksymError("with σ_b = 0 the EOC at q* = 0 needs φ(0) = 0 and φ'(0) ≠ 0")
            sw = 1 / abs(d0)
            return EdgeOfChaos(sw, mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(1), None,
                               "limit q* → 0: σ_w = 1/|φ'(0)|")
        # q* solves q = E[φ²](q)/E[φ'²](q) + σ_b² (then σ_w² = 1/E[φ'²](q*))
        g = lambda q: mpmath.re(m.m2(q) / m.kd(q)) + sb2 - q  # noqa: E731
        q = mpmath.findroot(g, _bracket(g), solver="anderson")
        sw = 1 / mpmath.sqrt(m.kd(q))
        return EdgeOfChaos(sw, mpmath.sqrt(sb2), q, sw**2 * m.kd(q), None,
                           "numeric: mpmath root of q = E[φ²]/E[φ'²] + σ_b² (" +
                           ("closed-form moments)" if m.exact else "quadrature moments)"))


def _bracket(g):
    lo, hi = mpmath.mpf("1e-8"), mpmath.mpf("0.5")
    while g(hi) > 0 and hi < 1e6:
        lo, hi = hi, hi * 2
    return (lo, hi)


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


def phase_diagram(act: Activation, dual: DualKernels, sigma_ws, sigma_bs):
    """χ₁ and the phase on a (σ_w, σ_b) grid: rows follow ``sigma_bs``, columns ``sigma_ws``."""
    chi = [[phase(act, dual, sw, sb).chi1 for sw in sigma_ws] for sb in sigma_bs]
    names = [["edge of chaos" if abs(c - 1) < 1e-12 else ("ordered" if c < 1 else "chaotic") for c in row]
             for row in chi]
    return chi, names


def eoc_curve(act: Activation, dual: DualKernels, sigma_bs):
    """The EOC curve σ_w(σ_b) (with q*) at the given σ_b values."""
    return [edge_of_chaos(act, dual, sb) for sb in sigma_bs]
