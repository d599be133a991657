"""The module builder: a Derivation -> the strings a template needs (no computing in the printer).

Stages (each a small function, each result a field of :class:`ModuleParts`):

1. ``dual_code``: Σ̂ and Σ̇ together, after :func:`ntksym.kernels.stable_form`
   (asin → atan2), in *scaled form* (:func:`scaled_form`): q₁q₂ − c² inside every
   radicand is the module's ``det`` = (√q₁√q₂ − |c|)(√q₁√q₂ + |c|) (no cancellation, exactly 0
   at |c| = √q₁√q₂), exponentials are combined (e^{2c}·e^{−c−q} → e^{c−q}), and q₁, q₂, c are
   divided by a scale s (s = √q₁√q₂ for positively homogeneous forms, max(1, √q₁√q₂) otherwise)
   with the powers of s pulled out, so no intermediate overflows unless the value does; common
   subexpressions shared by :func:`sympy.cse`.  Or, without a closed form, a polar product
   quadrature split on the rays u = 0, v = 0 and graded toward them and toward r = 0 at the
   scale 1/√q of the largest variance the network reaches (:func:`numeric_rule`), nodes
   embedded as literals, its error estimated over that whole variance range.
2. ``layer_code``: the input layer and one hidden layer of the *same* named
   recursion as :func:`ntksym.network.recursion` (built with Σ̂, Σ̇ left as
   named functions, then printed), plus the variance map q ↦ σ_w² Σ̂(q,q,q) + σ_b².
3. ``table``: the depth-independent panel table of the dot-product kernels
   (:mod:`ntksym.codegen.interpolant`), or None.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..derivation import Derivation
from ..errors import NtksymError
from ..gaussian.dual import C, Q1, Q2, DualKernels
from ..kernels import stable_form
from ..network import recursion
from .interpolant import AngleTable, angle_table
from .mehler_rule import SeriesRule, series_rule
from .printer import ArrayCodePrinter, print_activation, print_assignments

PRINTED_SPECIALLY = {"SafeSqrt", "Heaviside", "Max", "Min", "Piecewise"}   # see ArrayCodePrinter
DET = sp.Symbol("det", nonnegative=True)    # q1 q2 - c^2, formed in the module without cancellation
S = sp.Symbol("s", positive=True)           # the scale of (q1, q2, c)
W = sp.Symbol("w", positive=True)           # 1/s
QD = sp.Symbol("q", positive=True)          # the variance of the diagonal map

# the numeric route (see numeric_rule): Gauss-Legendre points per panel, geometric grading ratio,
# radial cut-off and step, the data range |x|^2/d it is verified for, and the error it must meet
N_PANEL, GRADING, R_MAX, R_STEP = 10, 0.25, 9.0, 1.5
DATA_RANGE = (1e-2, 1e2)
QUAD_RTOL = 1e-6      # as the Python API's KERNEL_RTOL: a larger estimate is refused


@dataclass(frozen=True)
class ModuleParts:
    dual_code: str
    route: str
    accuracy: str
    phi_code: str | None
    dphi_code: str | None
    diag_code: str
    input_code: str
    hidden_code: str
    variance_code: str
    table: AngleTable | None
    quadrature: "NumericRule | None"
    homogeneous: bool = False     # the dual code is scaled by s = sqrt(q1) sqrt(q2) (else max(1, that))
    diag_homogeneous: bool = False


def _printer(names=None):
    return ArrayCodePrinter(names or {Q1: "q1", Q2: "q2", C: "c", DET: "det", S: "s", W: "w"})


def _cse_block(exprs: list, outputs: list[str], names=None) -> str:
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), optimizations="basic")
    pr = _printer(names)
    return print_assignments(list(repl) + list(zip(outputs, reduced)), pr)


# ------------------------------------------------------------------ closed forms, scaled

def _det_radicands(expr: sp.Expr) -> sp.Expr:
    """q₁q₂ − c² inside every radicand that has c replaced by :data:`DET` (formed as
    (√q₁√q₂ − |c|)(√q₁√q₂ + |c|) in the module: no cancellation, exactly 0 on the diagonal)."""
    def rewrite(p):
        return sp.Pow(sp.expand(sp.expand(p.base).subs(Q1 * Q2, DET + C**2)), p.exp)
    return expr.replace(lambda e: e.is_Pow and e.exp.is_Rational and e.exp.q == 2 and e.base.has(C), rewrite)


def _combine_exp(expr: sp.Expr) -> sp.Expr:
    """e^{a}·e^{b} → e^{a+b} (sin: (e^{2c} − 1)e^{−c−q} overflows at c = q = 800 as written)."""
    return sp.powsimp(sp.expand(expr), combine="exp") if expr.has(sp.exp) else expr


def lead(e: sp.Expr, degrees: dict) -> tuple:
    """(k, e') with e = s^k·e', where e' is ``e`` in the scaled symbols (each symbol x of ``degrees``
    stands for x/s^degree) and every lower power of s that a sum needs is written with w = 1/s, so e'
    is bounded for s ≥ 1 whenever its terms are; arguments of functions other than atan2 keep their
    true size (s^k·e'), atan2 drops the common power of s of its two arguments."""
    if e.is_Symbol:
        return degrees.get(e, 0), e
    if not e.free_symbols:
        return 0, e
    if e.is_Add:
        parts = [lead(a, degrees) for a in e.args]
        k = max(p[0] for p in parts)
        return k, sp.Add(*[t * W**(k - j) for j, t in parts])
    if e.is_Mul:
        parts = [lead(a, degrees) for a in e.args]
        return sum(p[0] for p in parts), sp.Mul(*[t for _, t in parts])
    if e.is_Pow and e.exp.is_Number:
        k, b = lead(e.base, degrees)
        return k * e.exp, b**e.exp
    if isinstance(e, sp.atan2):
        (ky, y), (kx, x) = lead(e.args[0], degrees), lead(e.args[1], degrees)
        k = max(ky, kx)
        return 0, sp.atan2(y * W**(k - ky), x * W**(k - kx))
    args = []
    for a in e.args:
        k, t = lead(a, degrees)
        args.append(t * S**k if k else t)
    return 0, e.func(*args)


def scaled_form(expr: sp.Expr, degrees: dict) -> tuple[sp.Expr, bool]:
    """(s^k·e', homogeneous): ``expr`` in the scaled symbols; homogeneous when no w appears (then
    s may be any positive number, the module uses √q₁√q₂; else it uses max(1, √q₁√q₂))."""
    k, body = lead(_combine_exp(expr), degrees)
    return S**k * body, not body.has(W)


def dual_parts(d: Derivation):
    """(code, route, accuracy, rule, homogeneous) of ``dual(xp, q1, q2, c) -> (Σ̂, Σ̇)``."""
    dual = d.dual
    if dual.khat is not None and dual.kdot is not None:
        degrees = {Q1: 1, Q2: 1, C: 1, DET: 2}
        forms = [scaled_form(_det_radicands(stable_form(e)), degrees) for e in (dual.khat, dual.kdot)]
        exprs = [f for f, _ in forms]
        _check_printable(exprs, d.activation.name)
        code = _cse_block(exprs, ["khat", "kdot"])
        acc = ("closed form in scaled form (atan2 angle, q1 q2 - c^2 formed without cancellation, no "
               "intermediate overflow): a few ulps per layer, repeated and antipodal points exact")
        return code, f"closed form ({dual.route_hat})", acc, None, all(h for _, h in forms)
    rule = numeric_rule(d)
    if rule.series is None:
        return "    khat, kdot = _polar(xp, q1, q2, c, lim)", rule.route, rule.accuracy, rule, False
    return "    khat, kdot = _numeric_dual(xp, q1, q2, c, lim, rows, raw)", rule.route, rule.accuracy, rule, False


# ------------------------------------------------------------------ the numeric route

@dataclass(frozen=True)
class NumericRule:
    """A polar product rule for E[g(u, v)], (u, v) ~ N(0, [[q₁, c], [c, q₂]]), q₁, q₂ ≤ ``q_max``.

    u = √q₁ r cos t, v = r(a cos t + b sin t) with a = c/√q₁, b = √(q₁q₂ − c²)/√q₁; u and v change
    sign on four rays (t = ±π/2 and t_v = atan2(−a, b), t_v + π), so the angle is split there (a kink
    of φ at 0 lies on a ray, never inside a panel) and the arcs t ∈ [t_v + π, 3π/2], [π/2, t_v + π]
    are the point reflections (u, v) → (−u, −v) of the first two.  On each arc the fractions
    ``angle`` (with weights ``angle_w``, fractions of the arc length) are graded geometrically
    (ratio :data:`GRADING`) toward both rays; the radius has Gauss–Legendre panels graded toward 0
    below 1 and of width :data:`R_STEP` up to :data:`R_MAX` (weights include r e^{−r²/2}/(2π)).
    φ(√q r cos t) changes on the scale 1/√q near the rays and near r = 0: the grading reaches
    ~0.25/√q_max."""
    angle: tuple
    angle_w: tuple
    radius: tuple
    radius_w: tuple
    levels: int
    q_max: float
    error: float            # estimated error, relative to max(1, |Σ̂|, |Σ̇|), for q1, q2 in [0, q_max]
    route: str
    accuracy: str
    series: SeriesRule | None = None   # the per-row Hermite (Mehler) route, the polar rule as its fallback


def _leggauss(n):
    return np.polynomial.legendre.leggauss(n)


def _panels(points, n):
    x, w = _leggauss(n)
    lo, hi = np.array(points[:-1]), np.array(points[1:])
    return ((lo[:, None] + (hi - lo)[:, None] * (x + 1) / 2).ravel(), ((hi - lo)[:, None] / 2 * w).ravel())


def rule_nodes(levels: int, n: int = N_PANEL):
    """(angle fractions, their weights, radii, radial weights) of the graded polar rule."""
    half = [0.0] + [0.5 * GRADING**k for k in range(levels + 1, 0, -1)] + [0.5]
    f, g = _panels(half, n)
    f, g = np.concatenate([f, 1 - f[::-1]]), np.concatenate([g, g[::-1]])
    radial = [0.0] + [GRADING**k for k in range(levels, 0, -1)] + list(np.arange(1.0, R_MAX + 1e-9, R_STEP))
    r, wr = _panels(radial, n)
    return f, g, r, wr * r * np.exp(-r * r / 2) / (2 * np.pi)


def polar_rule(phi, dphi, q1, q2, c, nodes, chunk: int = 16):
    """NumPy twin of the generated ``_polar`` (used to estimate its error at build time)."""
    f, g, r, wr = nodes
    q1, q2, c = (np.ravel(v).astype(float) for v in np.broadcast_arrays(q1, q2, c))
    out = np.empty((2, q1.size))
    for i in range(0, q1.size, chunk):
        a1, a2, cc = q1[i:i + chunk], q2[i:i + chunk], c[i:i + chunk]
        lim = np.sqrt(a1) * np.sqrt(a2)
        cc = np.clip(cc, -lim, lim)
        det = (lim - abs(cc)) * (lim + abs(cc))
        sa = np.sqrt(a1)
        pos = sa > 0
        a = np.where(pos, cc / np.where(pos, sa, 1), 0.0)
        b = np.where(pos, np.sqrt(det) / np.where(pos, sa, 1), np.sqrt(a2))
        tv = np.arctan2(-a, b)
        lo = np.stack([np.full_like(tv, -np.pi / 2), tv], -1)
        length = np.stack([tv + np.pi / 2, np.pi / 2 - tv], -1)
        t = lo[..., None] + length[..., None] * f
        wt = length[..., None] * g
        ct, st = np.cos(t), np.sin(t)
        u = (sa[:, None, None] * ct)[..., None] * r
        v = (a[:, None, None] * ct + b[:, None, None] * st)[..., None] * r
        w = wt[..., None] * wr
        with np.errstate(all="ignore"):
            out[0, i:i + chunk] = (w * (phi(u) * phi(v) + phi(-u) * phi(-v))).sum((-1, -2, -3))
            out[1, i:i + chunk] = (w * (dphi(u) * dphi(v) + dphi(-u) * dphi(-v))).sum((-1, -2, -3))
    return out


def variance_range(d: Derivation, levels: int) -> float:
    """The largest Σ⁽ˡ⁾(x, x), l = 0..L−1, that inputs with |x|²/d in :data:`DATA_RANGE` reach
    (the diagonal recursion run on 9 values of |x|²/d spread over that range; E[φ(√q z)²] by the
    radial panels of the rule on z ≥ 0 and z ≤ 0; stops at a fixed point)."""
    phi = d.activation.numpy_fn()
    radial = [0.0] + [GRADING**k for k in range(levels, 0, -1)] + list(np.arange(1.0, R_MAX + 1e-9, R_STEP))
    z, wz = _panels(radial, N_PANEL)
    wz = wz * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    net = d.network
    sw2, sb2 = float(net.sigma_w) ** 2, float(net.sigma_b) ** 2
    q = sw2 * np.geomspace(*DATA_RANGE, 9) + sb2
    top = float(q.max())
    with np.errstate(all="ignore"):
        for _ in range(net.depth - 1):
            u = np.sqrt(q)[:, None] * z
            new = sw2 * ((phi(u) ** 2 + phi(-u) ** 2) * wz).sum(-1) + sb2
            if not np.all(np.isfinite(new)) or new.max() > 1e300:
                return math.inf
            top = max(top, float(new.max()))
            if np.all(abs(new - q) <= 1e-13 * abs(new)):
                break
            q = new
    return top


def _levels(q_max: float) -> int:
    """Geometric levels so that the smallest panel is about 0.25/√q_max (at least 2)."""
    return max(2, math.ceil(math.log(4.0 * math.sqrt(max(q_max, 1.0)) * R_MAX) / math.log(1 / GRADING)))


def _sample_points(q_max: float):
    qs = np.concatenate([[0.0], np.geomspace(1e-2, q_max, 6)])
    pts = [(q1, q2, rho) for q1 in qs for q2 in (q1, q1 / 7, min(3 * q1, q_max))
           for rho in (1.0, 0.9999, 0.3, -0.95)]
    q1, q2, rho = (np.array(v) for v in zip(*pts))
    return q1, q2, rho * np.sqrt(q1) * np.sqrt(q2)


def numeric_rule(d: Derivation) -> NumericRule:
    """The graded polar rule for ``d`` with its error estimated over q ∈ [0, q_max] (q_max: the
    largest variance the network reaches, :func:`variance_range`): the rule against the same rule
    with one more level and 1.4× the points per panel, on 84 (q₁, q₂, ρ) triples (q up to q_max); the stated error is
    10× the largest difference (relative to max(1, |Σ̂|, |Σ̇|)).  NtksymError when φ has a kink away
    from 0 (no ray to split it on), when the variances overflow, or when the estimate exceeds
    :data:`QUAD_RTOL`."""
    act = d.activation
    if any(b != 0 for b in act.breakpoints):
        raise NtksymError(f"no closed-form dual kernel for {act.name[:80]} and it has kinks at "
                          f"{', '.join(f'{b:g}' for b in act.breakpoints)}; the module's quadrature splits only "
                          "at 0, so no module is generated (ntksym.kernel evaluates it)")
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
    q_max = variance_range(d, _levels(1e8))
    if not math.isfinite(q_max):
        raise NtksymError(f"the variances of this {act.name[:80]} network overflow float64 for |x|^2/d up to "
                          f"{DATA_RANGE[1]:g}: no module is generated")
    q_max *= 1.01
    levels = _levels(q_max)
    nodes = rule_nodes(levels)
    q1, q2, c = _sample_points(q_max)
    lo = polar_rule(phi, dphi, q1, q2, c, nodes)
    hi = polar_rule(phi, dphi, q1, q2, c, rule_nodes(levels + 1, N_PANEL + 4))
    scale = np.maximum(1.0, np.maximum(abs(hi[0]), abs(hi[1])))
    diff = np.max(abs(lo - hi) / scale)
    err = float(10 * diff) if np.isfinite(diff) else math.inf
    err = max(err, 1e-15)
    if err > QUAD_RTOL:
        raise NtksymError(f"the module's quadrature for {act.name[:80]} has an estimated error {err:.0e} > "
                          f"{QUAD_RTOL:g} at the variances this network reaches (q up to {q_max:.3g}): "
                          "no module is generated (ntksym.kernel evaluates it)")
    f, g, r, wr = nodes
    polar = (f"polar quadrature split on the rays u = 0, v = 0 (Gauss-Legendre, {N_PANEL} points per panel, "
             f"{len(f)} angles per arc x {len(r)} radii, graded {levels} levels toward the rays and r = 0; "
             f"{d.dual.route_hat})")
    acc = (f"quadrature: est. error <= {err:.0e} (relative to max(1, |Sigmahat|, |Sigmadot|), per layer) for "
           f"q1, q2 in [0, {q_max:.6g}], the variances this network reaches for |x|^2/d in "
           f"[{DATA_RANGE[0]:g}, {DATA_RANGE[1]:g}]; larger variances are refused (ValueError)")
    series = series_rule(phi, dphi, q_max, act.parity)
    if series is None:
        return NumericRule(tuple(f), tuple(g), tuple(r), tuple(wr), levels, float(q_max), err, polar, acc)
    route = (f"Hermite (Mehler) series with per-row coefficients (K <= {series.k_max}, chosen per layer from the "
             f"data; {len(series.z)}-node z-rule split at 0), entries beyond its bound by {polar}")
    acc = (f"Hermite series with per-entry bound <= {series.tol:.0e} relative to sqrt(E[phi(u)^2] E[phi(v)^2]) "
           f"(and the same for phi'): |rho|^(K+1) sqrt(T(q1) T(q2)) + 3 x {series.coef_err:.1e} (z-rule, "
           "estimated against a finer rule) + (2K+2) eps (rounding); repeated and antipodal rows and the "
           f"variance map by the z-rule (est. {series.coef_err:.1e} relative); entries beyond the bound by polar "
           + acc)
    return NumericRule(tuple(f), tuple(g), tuple(r), tuple(wr), levels, float(q_max), err, route, acc, series)


def _check_printable(exprs, name: str) -> None:
    """Refuse (NtksymError) a closed form with a function the array namespace does not provide."""
    from .printer import ARRAY_FUNCTIONS
    for e in exprs:
        for f in e.atoms(sp.Function):
            fname = type(f).__name__
            if fname not in ARRAY_FUNCTIONS and fname not in PRINTED_SPECIALLY:
                raise NtksymError(f"the dual kernel of {name} uses {fname}, which has no array-API form here")


def activation_code(d: Derivation) -> tuple[str | None, str | None]:
    """φ(x) and φ'(x) printed as array code (None where the printer has no array form)."""
    out = []
    x = d.activation.x
    for expr in (d.activation.concrete, d.activation.derivative):
        expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
        try:
            _check_printable([expr], d.activation.name)
            code = print_activation(expr, x)  # stable form: no overflow (ntksym.stable)
        except (NtksymError, NotImplementedError, TypeError):  # only the optional fn is lost
            code = None
        if code is not None and not expr.has(x):
            code = f"({code}) + 0.0*x"
        out.append(code)
    return out[0], out[1]


def layer_parts(d: Derivation):
    """(diagonal, input layer, hidden layer, variance map) code from the named recursion."""
    generic = recursion(DualKernels(None, None, "", ""), d.network)
    s0, s1 = generic.layers[0].symbols, generic.layers[1].symbols
    names = {s0["Sigma_xx"]: "q1", s0["Sigma_yy"]: "q2", s0["Sigma_xy"]: "sigma", s0["Theta_xy"]: "theta",
             s1["Sigma_xy"]: "sigma_next", s1["Sigmadot_xy"]: "sigmadot", s1["Theta_xy"]: "theta_next"}
    for n in ("xx", "yy", "xy", "d"):
        names[sp.Symbol(n, real=True)] = n
        names[sp.Symbol(n, positive=True)] = n
    khat_, kdot_, khat_q = sp.symbols("khat kdot khat_q")
    pr = ArrayCodePrinter(names)
    eq0 = generic.layers[0].equations
    input_code = "\n".join([f"    q1 = {pr.doprint(eq0['Sigma_xx'])}", f"    q2 = {pr.doprint(eq0['Sigma_yy'])}",
                            f"    sigma = {pr.doprint(eq0['Sigma_xy'])}", f"    theta = {pr.doprint(eq0['Theta_xy'])}"])
    eq1 = generic.layers[1].equations

    def sub(e):
        return e.replace(lambda t: isinstance(t, sp.Function) and type(t).__name__ == "Sigmahat",
                         lambda t: khat_q if len(set(t.args)) == 1 else khat_) \
                .replace(lambda t: isinstance(t, sp.Function) and type(t).__name__ == "Sigmadot", lambda t: kdot_)
    hidden = [f"    sigma_next = {pr.doprint(sub(eq1['Sigma_xy']))}", f"    sigmadot = {pr.doprint(sub(eq1['Sigmadot_xy']))}",
              f"    theta_next = {pr.doprint(sub(eq1['Theta_xy']))}"]
    variance = f"    return {pr.doprint(sub(eq1['Sigma_xx']))}"
    diag = d.dual.diagonal("khat")
    homogeneous = False
    if diag is not None:   # in scaled form too: q -> q/s, s = q (homogeneous) or max(1, q)
        diag, homogeneous = scaled_form(diag, {QD: 1})
        diag_code = _cse_block([diag], ["khat_q"], {QD: "q", S: "s", W: "w"})
    else:
        diag_code = "    khat_q, _ = dual(xp, q, q, q)"
    variance = variance.replace("khat_q", "khat_diag(xp, q)")
    return diag_code, input_code, "\n".join(hidden), variance, homogeneous


def build_parts(d: Derivation) -> ModuleParts:
    """Every string and table the template needs, from the Derivation alone."""
    phi_code, dphi_code = activation_code(d)
    if d.dual.khat is None or d.dual.kdot is None:
        if phi_code is None or dphi_code is None:
            raise NtksymError(f"the activation {d.activation.name[:80]} has no closed-form dual kernel and no "
                              "array-code form for quadrature: no module is generated")
    dual_code, route, acc, quad, homogeneous = dual_parts(d)
    diag_code, input_code, hidden_code, variance_code, diag_homogeneous = layer_parts(d)
    table = angle_table(d)   # closed forms and numeric routes alike (ntksym.tables)
    return ModuleParts(dual_code, route, acc, phi_code, dphi_code, diag_code, input_code, hidden_code,
                       variance_code, table, quad, homogeneous, diag_homogeneous)


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
