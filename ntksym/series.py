"""Power series of the NNGP and NTK in the input correlation ρ (Murray, Jin,
Bowman, Montúfar, ICLR 2023, Thm 3.1), for inputs with |x|²/d = 1.

Network (dot-product form of the default convention, DESIGN.md §2): the first
layer gives S₀(ρ) = γ_w² ρ + γ_b² (γ = σ by default; Murray's preset has its
own γ_w, γ_b), then for l = 1..L with q = S_{l−1}(1)

    S_l(ρ) = σ_w² Σ̂(q, q, S_{l−1}(ρ)) + σ_b²,   Ṡ_l(ρ) = Σ̇(q, q, S_{l−1}(ρ)),
    T_l(ρ) = S_l(ρ) + σ_w² Ṡ_l(ρ) T_{l−1}(ρ),

and NNGP = S_L, NTK = T_L.  Σ̂(q, q, c) = Σ_k μ_k(φ_q)² (c/q)^k (Mehler, with
φ_q = φ(√q ·)), so each layer composes a series with non-negative coefficients
— the paper's A∘α_{l−1}; when S_{l−1}(0) ≠ 0 every Hermite coefficient
contributes to every κ_p, and the sums are done in closed form below.

Routes:

* ``exact`` — SymPy: the layer maps' Taylor coefficients at the constant term,
  Σ̂^{(j)}(q, q, s₀) = E[φ⁽ʲ⁾(u)φ⁽ʲ⁾(v)] (Price), from the closed-form dual
  kernels, composed layer by layer (σ_w, σ_b may be symbols).  When s₀ = 0
  these are j!·μ_j(φ_q)²/q^j: the paper's finite sums of Hermite coefficients.
* ``fft`` — float64: the recursion evaluated at N = 8P points on the circle
  |ρ| = r, r = 1 − 3/P, and one FFT (Cauchy's formula).  O(L·N + N log N), so
  depth 50 and order 10⁴ take well under a second with closed forms.
  Round-off is amplified by r^{−P} ≈ e³ and aliasing is below e^{−24}·κ_{p+N}.
* ``mpmath`` — the same Cauchy formula at arbitrary precision with r = 1/2,
  working precision raised by P·log₁₀2 and N large enough that aliasing is
  below the requested digits.

Layer maps come from the closed forms when they exist, else from the
Hermite series Σ_k μ_k(φ_q)² t^k truncated at K terms, whose neglected mass
(Parseval: E[φ_q²] − Σ_{k<K} μ_k²) bounds the error of every coefficient.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from .activation import Activation
from .errors import AccuracyError, NetworkError, NtksymError
from .gaussian.dual import C, Q1, Q2, DualKernels
from .gaussian.hermite import tidy

RHO = sp.Symbol("rho", real=True)
MP_FFT_SHIFT = 40   # r = 1 − SHIFT/P on the high-precision FFT route
MP_FFT_GUARD = 20   # guard digits absorbing the amplification r^{−P} ≈ e^{SHIFT}
PILOT = 512         # pilot order for layer maps given by Hermite series
MP_WORK = 60000     # most (layers × circle points) for the mpmath routes (≈ 4000 complex evaluations a second)


def mpmath_affordable(depth: int, points: int) -> bool:
    """Whether an mpmath recursion on ``points`` circle points through ``depth`` layers is quick
    (≈ 15 s at most); deeper networks take the float64 route."""
    return depth * points <= MP_WORK


@dataclass(frozen=True)
class DotProductNetwork:
    """Depth L, hidden σ_w, σ_b, and first-layer γ_w, γ_b (default: σ_w, σ_b)."""
    depth: int
    sigma_w: object = 1.0
    sigma_b: object = 0.0
    gamma_w: object = None
    gamma_b: object = None
    name: str = "default (neural-tangents stax, 'ntk')"

    def __post_init__(self):
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 1:
            raise NetworkError(f"depth must be an integer >= 1, got {self.depth!r}")
        for n in ("sigma_w", "sigma_b", "gamma_w", "gamma_b"):
            v = getattr(self, n)
            if v is None or isinstance(v, sp.Basic) and not v.is_number:
                continue
            if not math.isfinite(float(v)) or float(v) < 0:
                raise NetworkError(f"{n.replace('_', '-')} must be a finite number >= 0, got {v!r}")

    @property
    def first(self):
        gw = self.sigma_w if self.gamma_w is None else self.gamma_w
        gb = self.sigma_b if self.gamma_b is None else self.gamma_b
        return gw, gb


def murray_preset(act: Activation, layers: int, sigma_w2=None, gamma_b2=0) -> DotProductNetwork:
    """Murray et al.'s parameterization (Assumption 2): γ_w² + γ_b² = 1 on the first
    layer, σ_b² = 1 − σ_w² E[φ(Z)²] on the hidden ones (unit variance at every
    layer), ``layers`` = their l (number of weight layers, so depth L = l − 1).
    σ_w² defaults to 1 (so σ_b² = 1 − E[φ²]), the setting of their Table 1.

    Note (FORMULAS.md §4): their Thm 3.1 feeds the raw Gram matrix into layer 2,
    which is exact for the network only when γ_b = 0; this preset follows the
    network, i.e. the corrected coefficients.
    """
    from .gaussian.dual import derive_dual
    dual = derive_dual(act.concrete, act.x)
    m2 = _second_moment(act, dual, 1)
    s2 = sp.Integer(1) if sigma_w2 is None else sp.nsimplify(sigma_w2)
    sb2 = 1 - s2 * m2
    if float(sb2) < -1e-12:
        raise NetworkError("Murray's preset needs σ_w² E[φ²] ≤ 1")
    gb2 = sp.nsimplify(gamma_b2)
    return DotProductNetwork(layers - 1, sp.sqrt(s2), sp.sqrt(sp.Max(sb2, 0)), sp.sqrt(1 - gb2), sp.sqrt(gb2),
                             name=f"Murray et al. (l = {layers}, σ_w² = {sp.sstr(s2)}, γ_b² = {sp.sstr(gb2)})")


def _second_moment(act, dual: DualKernels, q):
    """E[φ(√q Z)²] exactly from the closed form, else numerically."""
    if dual.khat is not None:
        qs = sp.Symbol("q", positive=True)
        value = dual.diagonal("khat").subs(qs, q if isinstance(q, sp.Basic) else sp.Float(q, 30))
        return value if isinstance(q, sp.Basic) else sp.Float(sp.re(sp.N(value, 30)), 30)
    fn = act.mpmath_fn()
    with mpmath.workdps(30):
        sq = mpmath.sqrt(mpmath.mpf(sp.N(q, 30)))
        pts = sorted({0.0, *act.breakpoints})
        v = mpmath.quad(lambda t: fn(sq * t) ** 2 * mpmath.npdf(t), [-mpmath.inf, *pts, mpmath.inf])
    return sp.Float(str(v), 30)


def _is_zero(v) -> bool:
    try:
        return v is not None and sp.sympify(v).is_zero is True     # 0, 0.0, -0.0, sympy zeros
    except (sp.SympifyError, TypeError):
        return False


def vanishing_parity(act: Activation, net: DotProductNetwork) -> int | None:
    """p mod 2 of the coefficients κ_p that are exactly 0 by symmetry, or None.

    With γ_b = 0 the first layer S₀ = γ_w² ρ is odd in ρ.  φ odd ⇒ Σ̂(c) odd and Σ̇(c) even in c,
    so with σ_b = 0 every S_l is odd and T_l = S_l + σ_w² Σ̇(S_{l−1}) T_{l−1} is odd: κ_p = 0 for
    even p.  φ even ⇒ Σ̂ even and Σ̇ odd in c, so S₁ = σ_w² Σ̂(S₀) + σ_b² and T₁ = S₁ + σ_w² Σ̇(S₀) S₀
    are even, and every later layer is a function of even ones (σ_b arbitrary): κ_p = 0 for odd p.
    The zeros are known from the activation's parity (:attr:`Activation.parity`), not from the
    size of the computed numbers, and are returned as exact zeros by every route.
    """
    gw, gb = net.first
    if not _is_zero(gb):
        return None
    parity = act.parity
    if parity == "odd" and _is_zero(net.sigma_b):
        return 0
    if parity == "even":
        return 1
    return None


def _parity_note(act: Activation, parity: int | None) -> str:
    if parity is None:
        return ""
    which = "even" if parity == 0 else "odd"
    return f"; κ_p for {which} p are exactly 0 by symmetry (φ {act.parity}" + \
        (", σ_b = γ_b = 0)" if parity == 0 else ", γ_b = 0)")


def _zero_parity(coeffs, parity: int | None, zero):
    return tuple(zero if parity is not None and p % 2 == parity else c for p, c in enumerate(coeffs))


@dataclass(frozen=True)
class PowerSeries:
    """κ_p of the NNGP and the NTK, p = 0..P−1, with the route and an accuracy note."""
    nngp: tuple
    ntk: tuple
    route: str
    accuracy: str
    ntk_at_one: object = None       # Θ(1) (trace identity: Σ κ_p = Θ(1))
    nngp_at_one: object = None
    variances: tuple = field(default=())
    abs_error: object = None        # estimated absolute error of each κ_p (float64 route), None if not given

    def captured(self, which: str = "ntk") -> list[float]:
        """Cumulative share Σ_{p≤P} κ_p / Θ(1) (Murray et al., Table 1)."""
        coeffs = self.ntk if which == "ntk" else self.nngp
        total = float(self.ntk_at_one if which == "ntk" else self.nngp_at_one)
        return list(np.cumsum([float(c) for c in coeffs]) / total)

    def _repr_latex_(self) -> str:
        from .report.notebook import power_series
        return power_series(self)


# ------------------------------------------------------------------ layer maps


def dirac_refusal(name: str) -> str:
    """Why an NTK with a distributional (Dirac) Σ̇ has no power series or sphere spectrum."""
    return (f"activation {name[:80]!r} has jumps and the distributional derivative (smoothed limit) was asked for: "
            "E[φ'(u)φ'(v)] is a Dirac-type kernel and the NTK is infinite at ρ = ±1, so it has no convergent power "
            "series on [−1, 1]; the default almost-everywhere derivative (--derivative ae) has one")


class LayerMaps:
    """Σ̂(q, q, c) and Σ̇(q, q, c) for one activation, as callables in c (complex ok)."""

    def __init__(self, act: Activation, dual: DualKernels, hermite_terms: int = 512):
        if dual.kdot_distributional:
            raise NtksymError(dirac_refusal(act.name))
        self.act, self.dual, self.hermite_terms = act, dual, hermite_terms
        self.closed = dual.khat is not None and dual.kdot is not None and not dual.kdot_distributional
        if self.closed:
            mods = ["numpy"]
            self._np = [sp.lambdify((Q1, Q2, C), e, mods) for e in (dual.khat, dual.kdot)]
            self._mp = [sp.lambdify((Q1, Q2, C), e, "mpmath") for e in (dual.khat, dual.kdot)]
            # both kernels in one call, sharing subexpressions such as asin(c/q): half the cost
            self.mp_pair = sp.lambdify((Q1, Q2, C), [dual.khat, dual.kdot], "mpmath", cse=True)
            # diagonal maps simplified symbolically: exact at c = q, where the general forms lose √ε
            qs = sp.Symbol("q", positive=True)
            diag = [dual.diagonal("khat"), dual.diagonal("kdot")]
            self.diag_np = [sp.lambdify(qs, e, "numpy") for e in diag]
            self.diag_mp = [sp.lambdify(qs, e, "mpmath") for e in diag]

    def route(self) -> str:
        return "closed-form dual kernels" if self.closed else \
            f"Hermite series of the dual kernels ({self.hermite_terms} terms)"

    def variance_next(self, q: float, sw2: float, sb2: float) -> float:
        if self.closed:
            return float(sw2 * self.diag_np[0](q) + sb2)
        _, m2 = hermite_f64(self.act, q, self.hermite_terms, second_moment=True)
        return float(sw2 * m2 + sb2)

    def numpy_maps(self, q: float):
        """(Σ̂(q,q,·), Σ̇(q,q,·), neglected mass) as NumPy callables of complex c."""
        if self.closed:
            khat, kdot = self._np
            # a kernel constant in c (constant φ) lambdifies to a scalar: broadcast it to the grid
            return (lambda c: _grid(khat(q, q, c + 0j), c)), (lambda c: _grid(kdot(q, q, c + 0j), c)), 0.0
        mus, m2 = hermite_f64(self.act, q, self.hermite_terms, second_moment=True)
        alpha = mus**2
        tail = max(m2 - float(np.sum(alpha)), 0.0)
        resolved = np.nonzero(alpha > 1e-18 * m2)[0]          # drop terms below round-off (adaptive K)
        keep = int(resolved[-1]) + 2 if len(resolved) else 2
        alpha = alpha[:keep]
        beta = np.arange(1, len(alpha)) * alpha[1:] / q      # k μ_k²/q: Σ̇ = ∂Σ̂/∂c (Price), distributional
        if self.dual.jumps and self.dual.derivative == "ae":
            # φ jumps, so k μ_k(φ_q)²/q would carry the Dirac parts of the jumps (a series diverging at c = q);
            # the almost-everywhere Σ̇(q, q, c) = Σ_k μ_k(φ'_ae(√q ·))² (c/q)^k (Mehler for φ'_ae itself)
            dmus, dm2 = hermite_f64(self.act, q, self.hermite_terms, second_moment=True, derivative=True)
            beta = dmus**2
            tail = max(tail, dm2 - float(np.sum(beta)), 0.0)
            dres = np.nonzero(beta > 1e-18 * max(dm2, 1e-300))[0]
            beta = beta[:int(dres[-1]) + 2] if len(dres) else beta[:1]

        def horner(coeffs, t):
            out = np.zeros_like(t, dtype=complex)
            for a in coeffs[::-1]:
                out = out * t + a
            return out
        return (lambda c: horner(alpha, c / q)), (lambda c: horner(beta, c / q)), tail

    def wide_maps(self, q: float):
        """(Σ̂(q,q,·), Σ̇(q,q,·), E[φ(√q Z)²] = Σ̂(q,q,q)) evaluated in extended precision
        (np.clongdouble), or None where that type has no wider range than float64 or the maps are
        not closed forms.

        The closed forms have intermediate products such as q₁q₂ − c² that overflow float64 once
        q > 1.3e154 although the kernel itself (≈ q) is far inside the range (ReLU with σ_w = 10 at
        depth 100: q ≈ 4e170); x87/quad long double reaches 1e4932, so the same formula evaluated
        there and rounded back to float64 gives every value that is in the float64 range.
        """
        if not self.closed or np.finfo(np.longdouble).maxexp <= 2 * np.finfo(np.float64).maxexp:
            return None
        khat, kdot = self._np
        ql = np.longdouble(q)

        def wide(fn):
            return lambda c: np.broadcast_to(np.asarray(fn(ql, ql, np.asarray(c, dtype=np.clongdouble)),
                                                        dtype=np.clongdouble), np.shape(c))
        return wide(khat), wide(kdot), np.longdouble(np.real(self.diag_np[0](ql)))


def _grid(value, c):
    """``value`` as a complex array of the shape of ``c``."""
    return np.broadcast_to(np.asarray(value, dtype=complex), np.shape(c)).copy()


@functools.lru_cache(maxsize=64)
def _leggauss(n: int):
    return np.polynomial.legendre.leggauss(n)


def hermite_f64(act: Activation, q: float, terms: int, second_moment: bool = False, derivative: bool = False):
    """μ_k(φ(√q ·)) for k < terms in float64, by Gauss–Legendre quadrature split
    at the breakpoints against the orthonormal Hermite functions
    ψ_k = h_k e^{−z²/4} (stable three-term recurrence), so no He_k overflow.
    ``derivative``: the same for φ' almost everywhere (jumps contribute nothing)."""
    fn = act.numpy_fn(derivative=derivative)
    half = 2 * math.sqrt(terms + 1) + 12
    cuts = sorted({-half, half, *[b / math.sqrt(q) for b in act.breakpoints if abs(b) < half]})
    zs, ws = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        n = max(64, int(2.5 * terms * (b - a) / (2 * half)) + 64)
        x, w = _leggauss(n)
        zs.append((b - a) / 2 * x + (a + b) / 2)
        ws.append((b - a) / 2 * w)
    z, w = np.concatenate(zs), np.concatenate(ws)
    with np.errstate(all="ignore"):       # non-finite values are refused below, with the reason
        phi = fn(math.sqrt(q) * z) + np.zeros_like(z)
        f = phi * np.exp(-z * z / 4) * w / math.sqrt(2 * math.pi)
        out = np.empty(terms)
        psi_prev, psi = np.zeros_like(z), np.exp(-z * z / 4)
        for k in range(terms):
            out[k] = f @ psi
            psi_prev, psi = psi, (z * psi - math.sqrt(k) * psi_prev) / math.sqrt(k + 1)
        m2 = float(np.sum(w * phi * phi * np.exp(-z * z / 2)) / math.sqrt(2 * math.pi))
    if not (np.all(np.isfinite(out)) and math.isfinite(m2)):
        raise NtksymError(f"{act.name}: φ(√q z) or E[φ(√q Z)²] exceeds the float64 range (q = {q:.3g}, "
                          f"|z| ≤ {half:.0f}), so its Hermite coefficients cannot be computed in float64")
    if second_moment:  # E[φ(√q Z)²] on the same nodes
        return out, m2
    return out


# ------------------------------------------------------------------ fft route


def series_fft(act: Activation, dual: DualKernels, net: DotProductNetwork, order: int,
               hermite_terms: int = 512, max_node_error: float | None = None) -> PowerSeries:
    """κ_p for p < order by Cauchy's formula on |ρ| = r with one FFT (float64).

    With closed forms the circle values at ρ = ±r are checked against mpmath (:func:`_node_check`);
    their relative error enters the stated ``abs_error``, and beyond ``max_node_error`` (default
    FLOAT64_NODE_LIMIT) the route refuses (:class:`Float64Loss`)."""
    if order < 1:
        raise NtksymError("order must be >= 1")
    maps = LayerMaps(act, dual, hermite_terms)
    if not maps.closed and order > 2 * PILOT:
        # Hermite-series maps are costly at N ≈ 13P points: run a pilot; if its upper half is already at
        # the round-off level, the higher coefficients are too (non-negative, decaying), and are reported
        # as 0, within the route's stated absolute accuracy.
        pilot = series_fft(act, dual, net, PILOT, hermite_terms)
        level = 50 * 2.2e-16 * abs(pilot.ntk_at_one)   # the route's stated absolute accuracy, with margin
        if max(abs(c) for c in pilot.ntk[PILOT // 2:] + pilot.nngp[PILOT // 2:]) < level:
            pad = (0.0,) * (order - PILOT)
            return dataclasses.replace(pilot, nngp=pilot.nngp + pad, ntk=pilot.ntk + pad,
                                       accuracy=pilot.accuracy + f"; κ_p for p ≥ {PILOT} are below the "
                                       "round-off level 1e-14·Θ(1) (pilot) and reported as 0")
    sw2, sb2 = float(net.sigma_w) ** 2, float(net.sigma_b) ** 2
    gw, gb = net.first
    r = 1 - 3 / max(order, 12)
    n = max(8 * order, int(math.ceil(40 / -math.log(r))))   # aliasing r^N < e^-40
    rho = r * np.exp(2j * np.pi * np.arange(n) / n)
    s = float(gw) ** 2 * rho + float(gb) ** 2
    t = s.copy()
    q = float(gw) ** 2 + float(gb) ** 2
    variances, tails = [q], []
    for _ in range(net.depth):
        q, s = _floored(q, s)
        khat, kdot, tail = maps.numpy_maps(q)
        with np.errstate(all="ignore"):   # a true overflow (inf, or inf·0) is refused just below
            sdot = kdot(s)
            s_new = sw2 * khat(s) + sb2
            t_new = s_new + sw2 * sdot * t
            q_new = maps.variance_next(q, sw2, sb2)
            if not (np.all(np.isfinite(s_new)) and np.all(np.isfinite(t_new)) and math.isfinite(q_new)):
                # intermediate products of the closed form (q₁q₂ − c², ...) may overflow while the
                # kernel is in range: redo the layer in extended precision, round back (inf = true overflow)
                wide = maps.wide_maps(q)
                if wide is not None:
                    wk, wd, m2 = wide
                    sl = np.longdouble(sw2) * wk(s) + np.longdouble(sb2)
                    tl = sl + np.longdouble(sw2) * wd(s) * t
                    s_new, t_new = sl.astype(complex), tl.astype(complex)
                    q_new = float(np.longdouble(sw2) * m2 + np.longdouble(sb2))
            s, t, q = s_new, t_new, q_new
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(t)) and math.isfinite(q)):
            raise NtksymError(f"the kernel exceeds the float64 range (1.8e308) at layer {len(variances)} "
                              f"(E[φ²] = {q:.3g}): no float64 power series")
        variances.append(q)
        tails.append(tail)
    scale = r ** -np.arange(order)
    nngp = np.real(np.fft.fft(s)[:order]) / n * scale
    ntk = np.real(np.fft.fft(t)[:order]) / n * scale
    parity = vanishing_parity(act, net)
    nngp, ntk = (np.asarray(_zero_parity(v, parity, 0.0), dtype=float) for v in (nngp, ntk))
    with np.errstate(all="ignore"):
        ntk_one, nngp_one = _values_at_one(maps, net, variances)
    if not math.isfinite(ntk_one):
        raise NtksymError(f"Θ(1) exceeds the float64 range (E[φ²] = {nngp_one:.3g}): no float64 power series")
    # the circle values at ρ = ±r against the same recursion in mpmath: closed forms can lose digits in
    # float64 by cancellation (GELU's at large q), which the round-off estimate alone would not show
    rel = _node_check(maps, net, r, s, t, n, ntk_one, nngp_one, variances)
    if rel is not None and rel > (FLOAT64_NODE_LIMIT if max_node_error is None else max_node_error):
        raise Float64Loss("the float64 evaluation of the closed-form kernel loses accuracy at this depth and σ " +
                          (f"(relative error {rel:.1e} at ρ = ±{r:.4g} against mpmath)" if math.isfinite(rel) else
                           "(Θ(1) < 0, or its check against mpmath failed)") + ": use the mpmath route (--digits)")
    node = max(2.2e-16, rel or 0.0)
    abs_error = 20 * node * abs(ntk_one)
    acc = (f"float64 Cauchy/FFT, N = {n}, r = {r:.6g}: absolute error ≈ {abs_error:.1e} "
           f"(round-off × r^-P" + (f"; circle values checked against mpmath at ρ = ±r: relative error ≤ "
                                    f"1e{math.ceil(math.log10(max(rel, 1e-300)))})" if rel is not None else ")")
           + (f"; Hermite truncation mass ≤ {max(tails):.1e} per layer" if tails and max(tails) else "")
           + _parity_note(act, parity))
    return PowerSeries(tuple(nngp), tuple(ntk), f"fft ({maps.route()})", acc, ntk_one, nngp_one, tuple(variances),
                       abs_error=abs_error)


class Float64Loss(AccuracyError):
    """The float64 route's circle values disagree with mpmath beyond FLOAT64_NODE_LIMIT."""


FLOAT64_NODE_LIMIT = 1e-8    # relative error of the float64 circle values beyond which the route refuses
NODE_CHECK_WORK = 4000       # most layers for the mpmath check of the circle values (≈ 0.5 s)


def _node_check(maps: LayerMaps, net: DotProductNetwork, r: float, s, t, n: int, ntk_one, nngp_one, variances=()):
    """max relative error (to Θ(1), Σ(1)) of the float64 S_L, T_L at ρ = r (node 0) and ρ = −r (node n/2),
    against :func:`kernel_on_interval` at 30 digits plus the decades of the largest variance (closed forms
    that cancel lose about that many); None where not checked (no closed forms, deep nets, zero kernel);
    inf where the float64 values are impossible (Θ(1) = Σ_p κ_p < 0) or the check cannot be evaluated."""
    if not maps.closed or net.depth > NODE_CHECK_WORK or not (ntk_one and nngp_one):
        return None
    if not (ntk_one > 0 and nngp_one > 0):
        return math.inf
    nodes = [0] + ([n // 2] if n % 2 == 0 else [])
    big = max([abs(v) for v in variances if math.isfinite(v)] + [1.0])
    try:
        with mpmath.workdps(30 + min(int(math.log10(big)), 400)):
            rhos = [mpmath.mpf(r) * (1 if j == 0 else -1) for j in nodes]
            ref_s, ref_t = kernel_on_interval(maps, net, rhos, "both")
            errs = [max(float(abs(mpmath.mpf(float(np.real(t[j]))) - rt) / abs(mpmath.mpf(ntk_one))),
                        float(abs(mpmath.mpf(float(np.real(s[j]))) - rs) / abs(mpmath.mpf(nngp_one))))
                    for j, rs, rt in zip(nodes, ref_s, ref_t)]
    except (ArithmeticError, ValueError, TypeError):
        return math.inf
    return max(errs)


Q_FLOOR = 1e-280   # below it a variance is raised to it (with S scaled alike): no 0/0 or subnormal c/q


def _floored(q: float, s):
    """(q, s) with q ≥ Q_FLOOR, s scaled by the same factor so the correlation s/q is kept (s = 0 when
    q = 0, since |S(ρ)| ≤ S(1) = q): changes the layer's output by O(Q_FLOOR) absolutely — σ_w = 0
    (q = 0) or variances decaying below the float64 range (e.g. ReLU with σ_w = 1 at depth 10⁴)."""
    if q >= Q_FLOOR:
        return q, s
    return Q_FLOOR, (s * (Q_FLOOR / q) if q > 0 else s * 0)


def _values_at_one(maps: LayerMaps, net: DotProductNetwork, variances):
    """Θ(1) and Σ(1) on the diagonal, by the recursion at c = q (real)."""
    sw2 = float(net.sigma_w) ** 2
    theta = variances[0]
    for q, qn in zip(variances[:-1], variances[1:]):
        q = max(q, Q_FLOOR)
        if maps.closed:
            kdot_diag = float(maps.diag_np[1](q))
            if not math.isfinite(kdot_diag) and maps.wide_maps(q) is not None:   # see LayerMaps.wide_maps
                kdot_diag = float(np.real(maps.diag_np[1](np.longdouble(q))))
        else:
            _, kdot, _ = maps.numpy_maps(q)
            kdot_diag = float(np.real(kdot(np.array([q], dtype=complex))[0]))
        theta = qn + sw2 * kdot_diag * theta
    return theta, variances[-1]


# ------------------------------------------------------------------ mpmath route


def series_mpmath(act: Activation, dual: DualKernels, net: DotProductNetwork, order: int, digits: int = 30
                  ) -> PowerSeries:
    """κ_p to ``digits`` digits by Cauchy's formula at radius 1/2 (closed forms required)."""
    maps = LayerMaps(act, dual)
    if not maps.closed:
        raise NtksymError("mpmath-precision series need closed-form dual kernels; use the fft route")
    r = mpmath.mpf(1) / 2
    extra = int(order * math.log10(2)) + 10
    n = order + int((digits + 10) / math.log10(2)) + 8
    with mpmath.workdps(digits + extra):
        s, t, theta1, q = _recursion_on_circle(maps, net, r, n, digits + extra)
        roots = [mpmath.expjpi(-2 * mpmath.mpf(j) / n) for j in range(n)]   # computed once
        out = []
        for vals in (s, t):
            coeffs = []
            for p in range(order):
                acc = mpmath.fsum(v * roots[j * p % n] for j, v in enumerate(vals))
                coeffs.append(+mpmath.re(acc / n / r**p))
            out.append(tuple(coeffs))
    parity = vanishing_parity(act, net)
    with mpmath.workdps(digits):
        out = [_zero_parity(v, parity, mpmath.mpf(0)) for v in out]
        return PowerSeries(tuple(+c for c in out[0]), tuple(+c for c in out[1]), "mpmath (closed-form dual kernels)",
                           f"Cauchy formula at r = 1/2 with {n} points, {digits + extra} working digits: "
                           f"aliasing < 2^-{n - order}·Θ(1/2)" + _parity_note(act, parity), +theta1, +q)


def _recursion_on_circle(maps: LayerMaps, net: DotProductNetwork, r, n: int, dps: int):
    """S_L and T_L at ρ_j = r e^{2πij/n} in mpmath (closed-form maps), plus Θ(1) and q_L."""
    pair = maps.mp_pair
    gw, gb = (mpmath.mpf(sp.N(v, dps)) for v in net.first)
    sw2 = mpmath.mpf(sp.N(net.sigma_w, dps)) ** 2
    sb2 = mpmath.mpf(sp.N(net.sigma_b, dps)) ** 2
    s = [gw**2 * r * mpmath.expjpi(2 * mpmath.mpf(j) / n) + gb**2 for j in range(n)]
    t = list(s)
    q = gw**2 + gb**2
    theta1 = q
    floor = mpmath.mpf(2) ** (-4 * mpmath.mp.prec)   # σ_w = 0 gives q = 0: evaluate at a negligible q
    for _ in range(net.depth):
        if q < floor:
            s = [v * (floor / q) for v in s] if q > 0 else [v * 0 for v in s]
            q = floor
        both = [pair(q, q, v) for v in s]
        s = [sw2 * kh + sb2 for kh, _ in both]
        t = [a + sw2 * kd * c for a, (_, kd), c in zip(s, both, t)]
        qn = sw2 * maps.diag_mp[0](q) + sb2
        theta1 = qn + sw2 * maps.diag_mp[1](q) * theta1
        q = qn
    return s, t, theta1, q


def kernel_on_interval(maps: LayerMaps, net: DotProductNetwork, rhos, which: str = "ntk"):
    """Θ(ρ) (``which="ntk"``) or Σ(ρ) (``"nngp"``) at real ρ ∈ [−1, 1], in mpmath at the current
    precision, by the layer recursion of the module docstring with the closed-form maps.

    The correlation argument of each layer is clipped to [−q, q] (|S(ρ)| ≤ S(1) = q exactly;
    rounding next to ρ = ±1 must not push asin/√ past their branch points).  Used by the
    Funk–Hecke route of the sphere spectrum.

    The recursion runs at twice the current precision (+10): closed forms such as √(q² − c²) lose
    half their digits where c → q (next to ρ = 1, and everywhere in deep ordered-phase networks,
    whose correlations all approach 1), so the values keep the current precision."""
    if not maps.closed:
        raise NtksymError("the kernel at arbitrary precision needs closed-form dual kernels")
    outer = mpmath.mp.dps
    with mpmath.workdps(2 * outer + 10):
        s, t = _kernel_on_interval(maps, net, rhos)
    with mpmath.workdps(outer):
        s, t = [+v for v in s], [+v for v in t]
    return (s, t) if which == "both" else t if which == "ntk" else s


def _kernel_on_interval(maps: LayerMaps, net: DotProductNetwork, rhos):
    dps = mpmath.mp.dps
    pair = maps.mp_pair
    gw, gb = (mpmath.mpf(sp.N(v, dps + 5)) for v in net.first)
    sw2 = mpmath.mpf(sp.N(net.sigma_w, dps + 5)) ** 2
    sb2 = mpmath.mpf(sp.N(net.sigma_b, dps + 5)) ** 2
    s = [gw**2 * mpmath.mpf(r) + gb**2 for r in rhos]
    t = list(s)
    q = gw**2 + gb**2
    floor = mpmath.mpf(2) ** (-4 * mpmath.mp.prec)
    for _ in range(net.depth):
        if q < floor:
            s = [v * (floor / q) for v in s] if q > 0 else [v * 0 for v in s]
            q = floor
        both = [pair(q, q, min(max(v, -q), q)) for v in s]
        s = [sw2 * mpmath.re(kh) + sb2 for kh, _ in both]
        t = [a + sw2 * mpmath.re(kd) * c for a, (_, kd), c in zip(s, both, t)]
        q = sw2 * mpmath.re(maps.diag_mp[0](q)) + sb2
    return s, t


# ------------------------------------------------------------------ exact route


def series_exact(dual: DualKernels, net: DotProductNetwork, order: int, seconds: float = 60.0) -> PowerSeries:
    """Exact κ_p (SymPy) for p < order from the closed-form dual kernels."""
    from .bounded import time_limit
    if dual.khat is None or dual.kdot is None:
        raise NtksymError("exact series need closed-form dual kernels")
    sw2, sb2 = sp.sympify(net.sigma_w) ** 2, sp.sympify(net.sigma_b) ** 2
    gw, gb = (sp.sympify(v) for v in net.first)
    with time_limit(seconds, "exact power series"):
        s = [gb**2, gw**2] + [sp.Integer(0)] * max(order - 2, 0)
        s = s[:order] if order >= 2 else [gb**2]
        t = list(s)
        q = gw**2 + gb**2
        theta1 = q
        for _ in range(net.depth):
            khat_q = dual.khat.subs({Q1: q, Q2: q})
            kdot_q = dual.kdot.subs({Q1: q, Q2: q})
            a = _taylor_at(khat_q, s[0], order)
            b = _taylor_at(kdot_q, s[0], order)
            u = [sp.Integer(0)] + s[1:]
            sd = _compose(b, u, order)
            s_new = [sw2 * v for v in _compose(a, u, order)]
            s_new[0] += sb2
            t = [x + sw2 * y for x, y in zip(s_new, _mul(sd, t, order))]
            qn = sw2 * khat_q.subs(C, q) + sb2
            theta1 = qn + sw2 * kdot_q.subs(C, q) * theta1
            s, q = s_new, qn
        nngp = tuple(tidy(sp.expand(v), 2) for v in s)
        ntk = tuple(tidy(sp.expand(v), 2) for v in t)
    return PowerSeries(nngp, ntk, "exact (Taylor coefficients of the closed-form dual kernels, composed)",
                       "exact", tidy(theta1, 2), tidy(q, 2))


def _taylor_at(expr: sp.Expr, c0: sp.Expr, order: int) -> list:
    """Coefficients f^{(j)}(c0)/j!, j < order, of f(c) = expr."""
    out, d = [], expr
    for j in range(order):
        out.append(sp.expand(d.subs(C, c0)) / sp.factorial(j))
        d = sp.diff(d, C)
    return out


def _mul(a, b, order):
    return [sp.expand(sum(a[i] * b[p - i] for i in range(p + 1))) for p in range(order)]


def _compose(f, u, order):
    """Σ_j f_j u^j truncated, u without constant term."""
    out = [sp.Integer(0)] * order
    power = [sp.Integer(1)] + [sp.Integer(0)] * (order - 1)
    for j in range(order):
        for p in range(order):
            out[p] += f[j] * power[p]
        power = _mul(power, u, order)
    return out


# ------------------------------------------------------------------ baseline


def series_direct(act: Activation, dual: DualKernels, net: DotProductNetwork, order: int) -> PowerSeries:
    """The straightforward route (for benchmarks): truncated power-series
    arithmetic with direct convolutions, the layer maps applied by Horner's rule
    to their Hermite series with K = order terms (O(L·K·P²))."""
    sw2, sb2 = float(net.sigma_w) ** 2, float(net.sigma_b) ** 2
    gw, gb = (float(v) for v in net.first)
    s = np.zeros(order)
    s[0] = gb**2
    if order > 1:
        s[1] = gw**2
    t, q = s.copy(), gw**2 + gb**2
    maps = LayerMaps(act, dual, order)

    def mul(x, y):
        return np.convolve(x, y)[:order]
    for _ in range(net.depth):
        mus = hermite_f64(act, q, order + 1)
        alpha, beta = mus[:order] ** 2, np.arange(1, order + 1) * mus[1:] ** 2 / q
        if dual.jumps and dual.derivative == "ae":   # Σ̇ from φ' almost everywhere (see LayerMaps.numpy_maps)
            beta = hermite_f64(act, q, order, derivative=True) ** 2
        arg = s / q
        a_val, b_val = np.zeros(order), np.zeros(order)
        for k in range(order - 1, -1, -1):
            a_val = mul(a_val, arg)
            a_val[0] += alpha[k]
            b_val = mul(b_val, arg)
            b_val[0] += beta[k]
        s = sw2 * a_val
        s[0] += sb2
        t = s + sw2 * mul(b_val, t)
        q = maps.variance_next(q, sw2, sb2)
    return PowerSeries(tuple(s), tuple(t), "direct (Hermite series, Horner with convolutions)", "float64")


# ------------------------------------------------------------------ decay


@dataclass(frozen=True)
class Decay:
    """Asymptotic decay of coefficients: fitted power law p^{−s}, fitted geometric
    rate R (κ_p ~ R^{−p}), which model fits better, and the prediction where the
    theory gives one."""
    power_exponent: float
    geometric_rate: float
    better: str
    predicted_power: float | None = None
    note: str = ""


def fit_decay(coeffs, start: int | None = None) -> Decay:
    """Least-squares fits of log|c_p| against log p and against p over the upper
    part of the non-zero coefficients (exact zeros, e.g. odd p of an even map, skipped)."""
    c = np.abs(np.asarray([float(v) for v in coeffs]))
    p = np.arange(len(c))
    floor = 1e-13 * c.max()
    above = p[(c > floor) & (p >= 1)]
    if start is None:
        start = int(above[len(above) // 2]) if len(above) else 1   # upper half of the resolved coefficients
    mask = (c > floor) & (p >= start)
    if mask.sum() < 3:
        return Decay(float("nan"), float("nan"), "undetermined", note="too few non-zero coefficients above round-off")
    lp, lc, pp = np.log(p[mask]), np.log(c[mask]), p[mask].astype(float)
    fits = {"power law p^-s": (lp, np.polyfit(lp, lc, 1)), "geometric R^-p": (pp, np.polyfit(pp, lc, 1)),
            "stretched exp(-a sqrt p)": (np.sqrt(pp), np.polyfit(np.sqrt(pp), lc, 1))}
    resid = {k: float(np.sum((np.polyval(f, x) - lc) ** 2)) for k, (x, f) in fits.items()}
    best = min(resid, key=resid.get)
    return Decay(float(-fits["power law p^-s"][1][0]), float(np.exp(-fits["geometric R^-p"][1][0])), best,
                 note=f"sqrt-exp rate a = {-fits['stretched exp(-a sqrt p)'][1][0]:.4g}; fitted on p in "
                      f"[{int(pp[0])}, {int(pp[-1])}]")


def predicted_ntk_decay(act: Activation, derivative: str = "ae") -> tuple[float | None, float | None, str]:
    """(NNGP exponent, NTK exponent, reason) for activations with a kink or jump at 0.

    If φ⁽ᵐ⁾ has a jump at 0 (m = 0 jump, m = 1 kink, ...), integration by parts
    gives μ_k ~ k^{−(2m+1)/4}·(oscillating sign), μ_k² ~ k^{−m−1/2}, hence for one
    hidden layer κ_p(NNGP) ~ p^{−m−1/2−... } — precisely Σ̂'s singularity at ρ = 1
    is (1 − ρ)^{m+1/2}, giving NNGP coefficients ~ p^{−m−3/2} and NTK coefficients
    ~ p^{−m−1/2} (Murray et al. Lemma 3.2 for ReLU, m = 1: p^{−3/2}).  Depth keeps
    the exponent (the leading singularity at ρ = 1 propagates through smooth
    outer maps); smooth activations decay geometrically or faster.

    A jump (m = 0) with the almost-everywhere derivative (``derivative="ae"``, the default) gives Σ̇
    no Dirac part: Σ̇ is the dual kernel of φ'_ae, singular at most like (1 − ρ)^{1/2}, so the NTK
    decays like the NNGP, p^{−3/2} (sign, step: NTK = NNGP).  With "distributional" it has no
    power series at all (Σ̇ is infinite at ρ = 1).
    """
    from .gaussian.pieces import NotPiecewiseSmooth, split
    try:
        pieces = split(act.concrete, act.x)
    except NotPiecewiseSmooth:
        return None, None, "piecewise structure not recognised"
    if len(pieces) == 1:
        return None, None, "smooth activation: geometric or faster decay expected"
    if len(pieces) != 2 or pieces[1].lo != 0:
        return None, None, "kinks away from 0: no prediction"
    left, right = pieces[0].expr, pieces[1].expr
    for m in range(6):
        jump = sp.simplify(sp.diff(right, act.x, m).subs(act.x, 0) - sp.diff(left, act.x, m).subs(act.x, 0))
        if jump != 0 and m == 0 and derivative == "ae":
            return 1.5, 1.5, ("φ jumps at 0: Σ̂ ~ (1−ρ)^0.5 at ρ = 1; Σ̇ (almost-everywhere derivative) has no "
                              "Dirac part, so the NTK decays like the NNGP")
        if jump != 0:
            return m + 1.5, m + 0.5, f"φ^({m}) jumps at 0: Σ̂ ~ (1−ρ)^{m + 0.5} at ρ = 1"
    return None, None, "no jump found in the first derivatives"


def _fft_mp(values: list) -> list:
    """Iterative radix-2 DFT X_p = Σ_j x_j e^{−2πi jp/N} on mpmath numbers (N a power of 2)."""
    n = len(values)
    bits = n.bit_length() - 1
    out = [values[int(format(i, f"0{bits}b")[::-1], 2)] for i in range(n)] if bits else list(values)
    size = 2
    while size <= n:
        step = mpmath.expjpi(-2 * mpmath.mpf(1) / size)
        half = size // 2
        twiddles = [mpmath.mpf(1)]
        for _ in range(half - 1):
            twiddles.append(twiddles[-1] * step)
        for start in range(0, n, size):
            for k in range(half):
                a, b = out[start + k], out[start + k + half] * twiddles[k]
                out[start + k], out[start + k + half] = a + b, a - b
        size *= 2
    return out


def series_mpmath_fft(act: Activation, dual: DualKernels, net: DotProductNetwork, order: int, digits: int = 30
                      ) -> PowerSeries:
    """κ_p for p < order to ``digits`` digits, for large orders: Cauchy's formula on
    |ρ| = r = 1 − 40/P with N ≥ 2P points (aliasing ≤ r^N ≈ e^{−80}), round-off
    amplification r^{−P} ≈ e^{40} absorbed by 20 guard digits, and an mpmath FFT.
    The absolute error of each κ_p is about Θ(1)·10^{−digits−GUARD}·e^{SHIFT}."""
    maps = LayerMaps(act, dual)
    if not maps.closed:
        raise NtksymError("high-precision series need closed-form dual kernels; use the fft route")
    n = 1 << max(6, (2 * order - 1).bit_length())            # N ≥ 2P
    with mpmath.workdps(digits + MP_FFT_GUARD):
        r = 1 - mpmath.mpf(MP_FFT_SHIFT) / max(order, MP_FFT_SHIFT)   # r^N ≤ e^{−2·SHIFT}
        s, t, theta1, q = _recursion_on_circle(maps, net, r, n, digits + MP_FFT_GUARD)
        out = []
        for vals in (s, t):
            spectrum = _fft_mp(vals)
            scale = mpmath.mpf(1)
            coeffs = []
            for p in range(order):
                coeffs.append(mpmath.re(spectrum[p]) / n * scale)
                scale /= r
            out.append(coeffs)
    parity = vanishing_parity(act, net)
    with mpmath.workdps(digits):
        out = [_zero_parity(v, parity, mpmath.mpf(0)) for v in out]
        return PowerSeries(tuple(+c for c in out[0]), tuple(+c for c in out[1]),
                           "mpmath FFT (closed-form dual kernels)",
                           f"Cauchy formula at r = 1 − {MP_FFT_SHIFT}/P with {n} points, "
                           f"{digits + MP_FFT_GUARD} working digits: aliasing ≤ e^-{2 * MP_FFT_SHIFT}·Θ(1)"
                           + _parity_note(act, parity), +theta1, +q)
