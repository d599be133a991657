"""Dual kernels Σ̂(q₁,q₂,c) = E[φ(u)φ(v)] and Σ̇(q₁,q₂,c) = E[φ'(u)φ'(v)],
(u, v) ~ N(0, [[q₁, c], [c, q₂]]).

Rules, tried in order (each result records its route):

1. ``exp-poly``: φ is exp-polynomial on the whole line (polynomials, exp, sin,
   cos, Gaussian, ...): the bivariate tilted-Gaussian formula of
   :mod:`ntksym.gaussian.moments`, no integration at all.
2. ``price``: Price's theorem, ∂ⁿ/∂cⁿ E[φ(u)φ(v)] = E[φ⁽ⁿ⁾(u)φ⁽ⁿ⁾(v)]
   (distributional derivatives).  Find the least n at which the right side
   is elementary — φ⁽ⁿ⁾ = J·δ(x) (ReLU family: n = 2; step, sign: n = 1) gives
   J²/(2π√(q₁q₂ − c²)); φ⁽ⁿ⁾ a single Gaussian tilt p(x)e^{bx²} (erf: n = 1,
   GELU: n = 2) gives the tilted formula — then integrate n times in c
   (:mod:`ntksym.gaussian.cform`) from K_j(0) = E[φ⁽ʲ⁾(u)]·E[φ⁽ʲ⁾(v)], which are
   Hermite coefficients of φ(√q ·) (:mod:`ntksym.gaussian.hermite`).
3. otherwise no closed form: numeric evaluation by 2-D Gauss–Hermite
   quadrature (:func:`gauss_hermite_dual`), labelled as such, and, at unit
   variances, the Hermite series Σ μ_k² ρ^k with a rigorous tail bound.

The derivative in Σ̇ (``derivative``): for φ with jumps (sign, step, x + sign(x), ...)
the two readings differ.

* ``"ae"`` (default): φ' is the almost-everywhere derivative, the jumps contribute
  nothing — what the gradient of a finite network computes (∂ sign(x)/∂x = 0 for
  x ≠ 0) and what neural-tangents' ``stax.Sign`` uses (it sets the layer's NTK
  contribution to zero).  Σ̇ is then the dual kernel of the function φ'_ae itself
  (sign, step: Σ̇ = 0, so the NTK is the sum of the layers' NNGP terms).
* ``"distributional"``: φ' includes J·δ at each jump (the limit of smoothed
  activations), so Σ̇ = E[φ'φ'] has the Dirac part J²/(2π√(q₁q₂ − c²)), infinite
  at c = ±√(q₁q₂); available only where Price's rule gives it in closed form.

For continuous φ the two coincide and nothing changes.  :attr:`DualKernels.kdot`
is always Σ̇ in the chosen convention, so consumers need not know which it is.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import sympy as sp

from ..bounded import time_limit
from ..errors import ActivationError, DerivationTimeout, NtksymError
from .cform import CForm
from .expclass import as_exp_poly
from .hermite import NoClosedForm, exact_coefficients, tidy
from .integrability import Refused, ae_derivative, analyse
from .moments import bivariate_expectation
from .pieces import NotPiecewiseSmooth, split

Q1, Q2 = sp.symbols("q1 q2", positive=True)
C = sp.Symbol("c", real=True)
MAX_PRICE_ORDER = 4
SECONDS = 20.0
DERIVATIVES = ("ae", "distributional")   # conventions for φ' in Σ̇ (see the module docstring)
DERIVATIVE_LABELS = {"ae": "almost-everywhere derivative, in which the jumps of φ contribute nothing",
                     "distributional": "distributional derivative (smoothed limit), in which the jumps of φ contribute "
                                       "Dirac parts"}


@dataclass(frozen=True)
class DualKernels:
    """Closed forms (or None) of Σ̂ and Σ̇ in the symbols q1, q2, c, with routes."""
    khat: sp.Expr | None
    kdot: sp.Expr | None
    route_hat: str
    route_dot: str
    kdot_distributional: bool = False   # Σ̇ has a Dirac part: infinite at c = ±√(q₁q₂)
    derivative: str = "ae"              # the convention of φ' in Σ̇: "ae" or "distributional" (DERIVATIVES)
    jumps: tuple = ()                   # points where φ jumps (the conventions differ iff non-empty)

    def diagonal(self, which: str = "khat") -> sp.Expr | None:
        """The kernel at u = v (q1 = q2 = c = q), simplified."""
        e = getattr(self, which)
        if e is None:
            return None
        q = sp.Symbol("q", positive=True)
        e = e.subs({Q1: q, Q2: q}).subs(C, q)
        e = e.replace(lambda t: t.is_Pow and t.exp.is_Rational and t.exp.q == 2,
                      lambda t: sp.factor(t.base) ** t.exp)
        return tidy(e)

    def _repr_latex_(self) -> str:
        from ..report.notebook import dual_kernels
        return dual_kernels(self)


@functools.lru_cache(maxsize=128)
def derive_dual(expr: sp.Expr, x: sp.Symbol, seconds: float = SECONDS, derivative: str = "ae") -> DualKernels:
    """Derive Σ̂ and Σ̇ for φ = ``expr`` (parameters already substituted).

    ``derivative`` is the convention of φ' in Σ̇ = E[φ'(u)φ'(v)] (module docstring): ``"ae"``
    (default) or ``"distributional"``; they differ only for φ with jumps.
    Results are cached per expression: the derivation is pure, and the series,
    spectrum and kernel routes all start from it.  φ' must be square-integrable
    (else Σ̇ and the NTK are infinite): ActivationError otherwise.  The distributional Σ̇ of
    φ with jumps exists here only in closed form (a Dirac part has no quadrature):
    ActivationError where none is found."""
    if derivative not in DERIVATIVES:
        raise NtksymError(f"derivative must be one of {', '.join(DERIVATIVES)}, got {derivative!r}")
    try:
        analyse(ae_derivative(expr, x), x)
    except Refused as exc:
        text = sp.sstr(expr)
        raise ActivationError(f"the derivative of phi = {text if len(text) <= 80 else text[:77] + '...'} is not "
                              "shown to be square-integrable under N(0,1), so Sigma-dot and the NTK are not finite: "
                              f"{exc}") from None
    try:
        with time_limit(seconds, "dual-kernel derivation"):
            jumps = jump_points(expr, x)
            dual = _derive(expr, x)
            if jumps:
                dual = _with_convention(dual, expr, x, jumps, derivative)
    except DerivationTimeout as exc:
        why = f"numeric: 2-D Gauss–Hermite quadrature (symbolic step timed out: {exc})"
        dual, jumps = DualKernels(None, None, why, why), None
    if jumps is None and _may_jump(expr):     # could not place the jumps (or timed out)
        if derivative == "distributional":
            raise ActivationError(f"the distributional (smoothed-limit) Sigma-dot of phi = {_short(expr)} needs the "
                                  "positions and sizes of its jumps, which could not be determined; the default "
                                  "almost-everywhere derivative (--derivative ae) works")
        dual = replace(dual, route_dot=f"{dual.route_dot}; φ' is the {DERIVATIVE_LABELS['ae']}")
    return replace(dual, derivative=derivative)


def _short(expr) -> str:
    text = sp.sstr(expr)
    return text if len(text) <= 80 else text[:77] + "..."


def _may_jump(expr) -> bool:
    return expr.has(sp.sign, sp.Heaviside, sp.Piecewise)


def jump_points(expr: sp.Expr, x: sp.Symbol) -> tuple | None:
    """The points where φ = ``expr`` jumps (right limit ≠ left limit), as SymPy numbers; () when φ is
    continuous (no sign, Heaviside or Piecewise in it, or none of their breakpoints is a jump);
    None when the pieces cannot be found."""
    if not _may_jump(expr):
        return ()
    try:
        pieces = split(expr, x)
    except (NotPiecewiseSmooth, ValueError, TypeError):
        return None
    out = []
    for left, right in zip(pieces[:-1], pieces[1:]):
        b = right.lo
        jump = sp.simplify(_one_sided(right.expr, x, b, "+") - _one_sided(left.expr, x, b, "-"))
        if jump.is_zero is not True:
            out.append(b)
    return tuple(out)


def _one_sided(e, x, b, side):
    v = e.subs(x, b)
    if v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        v = sp.limit(e, x, b, side)
    return v


def _with_convention(dual: DualKernels, expr, x, jumps: tuple, derivative: str) -> DualKernels:
    """``dual`` (from the distributional rules) for φ with jumps at ``jumps``, in the chosen convention."""
    where = ", ".join(sp.sstr(b) for b in jumps)
    if derivative == "distributional":
        if dual.kdot is None:
            raise ActivationError(f"phi = {_short(expr)} jumps at x = {where}: its distributional (smoothed-limit) "
                                  "Sigma-dot has a Dirac part, which needs a closed form (Price's rule), and none was "
                                  "found; the default almost-everywhere derivative (--derivative ae) has a numeric "
                                  "route")
        note = (f"; {DERIVATIVE_LABELS['distributional']}, φ jumps at x = {where}: Σ̇ is infinite at "
                "c = ±√(q₁q₂)" if dual.kdot_distributional else f"; {DERIVATIVE_LABELS['distributional']}")
        return replace(dual, route_dot=dual.route_dot + note, jumps=jumps)
    g = ae_derivative(expr, x)
    label = f"{DERIVATIVE_LABELS['ae']}: φ jumps at x = {where}, φ' = {_short(g)} almost everywhere"
    if dual.khat is None:          # numeric routes evaluate φ' pointwise, i.e. almost everywhere
        return replace(dual, route_dot=f"{dual.route_dot}; {label}", jumps=jumps)
    kdot, how = _ae_kernel(g, x)
    if kdot is None:
        why = f"numeric: 2-D Gauss–Hermite quadrature (no closed form of Σ̇ for φ' = {_short(g)}: {how})"
        return DualKernels(None, None, why, f"{why}; {label}", jumps=jumps)
    how = ", so Σ̇ = 0" if kdot == 0 else f"; Σ̇ = E[φ'(u)φ'(v)] by {how}"
    return DualKernels(dual.khat, kdot, dual.route_hat, f"exact: {label}{how}", jumps=jumps)


def _ae_kernel(g, x) -> tuple[sp.Expr | None, str]:
    """E[g(u)g(v)] for the almost-everywhere derivative g = φ'_ae: (closed form, route) or (None, why)."""
    if sp.simplify(g) == 0:
        return sp.Integer(0), "φ' = 0"
    dual = _derive(g, x)
    if dual.khat is None:
        return None, dual.route_hat
    return dual.khat, dual.route_hat[len("exact: "):] if dual.route_hat.startswith("exact: ") else dual.route_hat


def _derive(expr, x) -> DualKernels:
    whole = as_exp_poly(expr, x)
    if whole is not None:
        dwhole = as_exp_poly(sp.diff(expr, x), x)
        route = "exact: exp-poly (bivariate tilted Gaussian integral)"
        khat = tidy(bivariate_expectation(whole, whole, Q1, Q2, C), 3)
        kdot = tidy(bivariate_expectation(dwhole, dwhole, Q1, Q2, C), 3)
        return DualKernels(_real_form(khat), _real_form(kdot), route, route)
    try:
        return _price(expr, x)
    except (NoClosedForm, NotPiecewiseSmooth, ValueError) as exc:
        why = f"numeric: 2-D Gauss–Hermite quadrature (no closed form: {exc})"
        return DualKernels(None, None, why, why)


def _real_form(e: sp.Expr) -> sp.Expr:
    """Prefer sinh/cosh over differences of exponentials when that is shorter."""
    alt = tidy(e.rewrite(sp.cosh), 2)
    alt = tidy(sp.simplify(alt.rewrite(sp.sinh)), 2) if alt.has(sp.exp) else alt
    return alt if sp.count_ops(alt) < sp.count_ops(e) else e


# ----------------------------------------------------------------- Price's rule


def _price(expr, x) -> DualKernels:
    pieces = split(expr, x)
    bps = [p.lo for p in pieces[1:]]
    if any(b != 0 for b in bps):
        raise NoClosedForm("breakpoints away from 0")
    for n in range(1, MAX_PRICE_ORDER + 1):
        base = _base_rule(expr, x, pieces, n)
        if base is not None:
            form, rule = base
            break
    else:
        raise NoClosedForm(f"no elementary E[φ⁽ⁿ⁾φ⁽ⁿ⁾] for n ≤ {MAX_PRICE_ORDER}")
    forms = {n: form}
    for j in range(n - 1, -1, -1):
        forms[j] = forms[j + 1].integrate().plus_constant(_product_of_means(expr, x, j))
    route = f"exact: Price's theorem, n = {n} ({rule}), integrated {n}× in c from c = 0"
    khat = tidy(forms[0].to_expr(), 3)
    kdot = tidy(forms[1].to_expr(), 3)
    return DualKernels(khat, kdot, route, route, kdot_distributional=(n == 1 and "δ" in rule))


def _jumps(pieces, x, order: int) -> list[sp.Expr]:
    """Jumps at 0 of φ, φ', ..., φ^{(order−1)} (right limit − left limit)."""
    if len(pieces) == 1:
        return [sp.Integer(0)] * order
    left, right = pieces[0].expr, pieces[1].expr
    return [sp.simplify(sp.diff(right, x, j).subs(x, 0) - sp.diff(left, x, j).subs(x, 0)) for j in range(order)]


def _base_rule(expr, x, pieces, n):
    regular = [sp.diff(p.expr, x, n) for p in pieces]
    jumps = _jumps(pieces, x, n)
    if len(pieces) == 2:
        if all(sp.simplify(r) == 0 for r in regular) and all(j == 0 for j in jumps[:-1]) and jumps[-1] != 0:
            form = CForm(C, Q1 * Q2, sp.Integer(1))
            form.add_alg(0, jumps[-1]**2 / (2 * sp.pi))
            return form, f"φ⁽{n}⁾ = {sp.sstr(jumps[-1])}·δ(x)"
        return None
    terms = as_exp_poly(regular[0], x)
    if terms is None or len({(t.a, t.b) for t in terms}) != 1 or terms[0].a != 0 or terms[0].b == 0:
        return None
    b = terms[0].b
    value = bivariate_expectation(terms, terms, Q1, Q2, C)
    A = sp.expand((1 - 2 * b * Q1) * (1 - 2 * b * Q2))
    B = 4 * b**2
    form = CForm(C, A, B)
    scaled = sp.cancel(sp.together(value * sp.sqrt(A - B * C**2)))
    num, den = sp.fraction(scaled)
    power, den_poly, d_poly = 0, sp.Poly(den, C), sp.Poly(A - B * C**2, C)
    while den_poly.degree() > 0:
        den_poly, rem = sp.div(den_poly, d_poly)
        if not rem.is_zero:
            return None
        power += 1
    form.add_alg(power, sp.expand(num / den_poly.as_expr()))
    return form, f"φ⁽{n}⁾ = Gaussian-tilted polynomial"


def _product_of_means(expr, x, j) -> sp.Expr:
    """K_j(0) = E[φ⁽ʲ⁾(u)]·E[φ⁽ʲ⁾(v)] = j!·(q₁q₂)^{−j/2} μ_j(φ(√q₁·)) μ_j(φ(√q₂·))."""
    z = sp.Symbol("z", real=True)
    means = []
    for q in (Q1, Q2):
        coeffs = exact_coefficients(expr.subs(x, sp.sqrt(q) * z), z, j + 1, {q: 1})
        mu, route = coeffs[j]
        if mu is None:
            raise NoClosedForm(f"E[φ^({j})] not exact ({route})")
        means.append(sp.sqrt(sp.factorial(j)) * mu * q**(-sp.Rational(j, 2)))
    return sp.expand(means[0] * means[1])


# --------------------------------------------------------------------- numeric


def gauss_hermite_dual(phi, dphi, q1, q2, c, order: int = 48, chunk: int = 4096):
    """E[φ(u)φ(v)] and E[φ'(u)φ'(v)] by 2-D Gauss–Hermite quadrature, vectorised.

    u = √q₁ z₁, v = (c/√q₁) z₁ + √(q₂ − c²/q₁) z₂ with z₁, z₂ iid N(0, 1) on an
    ``order``×``order`` probabilists' Gauss–Hermite grid.  Exact for polynomial
    φ of degree < order; for smooth φ the error falls geometrically with order;
    for kinked φ it is O(order^{-3/2}) — which is why closed forms are used
    first.  Arrays broadcast; evaluation is chunked to bound memory.
    """
    q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
    z, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    z1, z2 = z[:, None].ravel(), z
    out_hat = np.empty(q1.shape)
    out_dot = np.empty(q1.shape)
    flat = [a.reshape(-1) for a in (q1, q2, c, out_hat, out_dot)]
    for start in range(0, flat[0].size, chunk):
        sl = slice(start, start + chunk)
        a, b, cc = flat[0][sl], flat[1][sl], flat[2][sl]
        sa = np.sqrt(a)
        lim = np.sqrt(a * b)
        cc = np.clip(cc, -lim, lim)
        slope = np.where(sa > 0, cc / np.where(sa > 0, sa, 1), 0.0)
        resid = np.sqrt(np.maximum(b - slope**2, 0.0))
        u = sa[:, None] * z1[None, :]
        v = slope[:, None, None] * z1[None, :, None] + resid[:, None, None] * z2[None, None, :]
        ww = w[:, None] * w[None, :]
        flat[3][sl] = np.einsum("ni,nij,ij->n", phi(u), phi(v), ww)
        flat[4][sl] = np.einsum("ni,nij,ij->n", dphi(u), dphi(v), ww)
    return out_hat, out_dot


@functools.lru_cache(maxsize=16)
def _leggauss(n: int):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


def polar_dual(phi, dphi, q1, q2, c, n_angle: int = 24, n_radius: int = 48, r_max: float = 12.0,
               chunk: int = 1024):
    """E[φ(u)φ(v)], E[φ'(u)φ'(v)] for φ with kinks only at 0, by polar quadrature.

    With u = √q₁ r cos t and v = r(a cos t + b sin t) (a = c/√q₁, b = √(q₂ − a²)),
    u and v change sign only on four rays, so the angular integral is split
    there and every panel has a smooth (analytic) integrand: Gauss–Legendre with
    ``n_angle`` nodes per arc and ``n_radius`` nodes on r ∈ [0, r_max] converges
    geometrically, unlike Gauss–Hermite across a kink.
    """
    q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
    xt, wt = _leggauss(n_angle)
    xr, wr = _leggauss(n_radius)
    r = (xr + 1) * r_max / 2
    wr = wr * r_max / 2 * r * np.exp(-r * r / 2) / (2 * np.pi)
    out_hat, out_dot = np.empty(q1.shape), np.empty(q1.shape)
    flat = [arr.reshape(-1) for arr in (q1, q2, c, out_hat, out_dot)]
    for start in range(0, flat[0].size, chunk):
        sl = slice(start, start + chunk)
        a1, a2, cc = flat[0][sl], flat[1][sl], flat[2][sl]
        sa = np.sqrt(a1)
        slope = cc / np.where(sa > 0, sa, 1)
        b = np.sqrt(np.maximum(a2 - slope**2, 0.0))
        t_v = np.arctan2(-slope, b)
        cuts = np.sort(np.stack([np.full_like(a1, -np.pi / 2), np.full_like(a1, np.pi / 2),
                                 np.mod(t_v + np.pi / 2, 2 * np.pi) - np.pi / 2,
                                 np.mod(t_v + 3 * np.pi / 2, 2 * np.pi) - np.pi / 2], axis=1), axis=1)
        edges = np.concatenate([cuts, cuts[:, :1] + 2 * np.pi], axis=1)        # (m, 5)
        lo, hi = edges[:, :-1, None], edges[:, 1:, None]                        # (m, 4, 1)
        t = ((hi - lo) * (xt + 1) / 2 + lo).reshape(len(a1), -1)               # (m, 4·n)
        w_t = ((hi - lo) / 2 * wt).reshape(len(a1), -1)
        ct, st = np.cos(t), np.sin(t)
        u = sa[:, None, None] * ct[:, :, None] * r[None, None, :]
        v = (slope[:, None] * ct + b[:, None] * st)[:, :, None] * r[None, None, :]
        weights = w_t[:, :, None] * wr[None, None, :]
        flat[3][sl] = np.sum(phi(u) * phi(v) * weights, axis=(1, 2))
        flat[4][sl] = np.sum(dphi(u) * dphi(v) * weights, axis=(1, 2))
    return out_hat, out_dot


# ------------------------------------------------------- graded polar quadrature (adapts to q)

GRADED_NODES = 7          # Gauss–Legendre nodes per panel and direction (the estimate uses one fewer)
GRADED_R_MAX = 9.5        # r e^{−r²/2} < 3e-19 beyond: below rounding for φ of polynomial growth
GRADED_MAX_LEVEL = 40     # √q up to ≈ 2^38: beyond, the estimate decides
GRADED_LEVEL_OFFSET = 2   # level at q = 1
GRADED_RADIAL_LAG = 2     # radial panels below r = 1: level − 2 (the angular grading matters more)


def graded_levels(q1, q2) -> np.ndarray:
    """Refinement level of :func:`graded_polar_dual` per entry: ⌈log₂ √max(q₁, q₂)⌉ + 2, at least 1.

    At variance q the activation's features (kinks, the transition of tanh) sit at r ≈ 1/√q
    from the origin and at angles ≈ 1/(√q r) from the rays u = 0, v = 0; one level halves the
    smallest panel in both directions."""
    s2 = np.maximum(np.asarray(q1, dtype=float), np.asarray(q2, dtype=float))
    with np.errstate(all="ignore"):
        lev = np.ceil(0.5 * np.log2(np.where(s2 > 0, s2, 1.0))) + GRADED_LEVEL_OFFSET
    return np.clip(np.where(np.isfinite(lev), lev, GRADED_MAX_LEVEL), 1, GRADED_MAX_LEVEL).astype(int)


@functools.lru_cache(maxsize=128)
def _graded_mesh(level: int, n: int):
    """(angular fractions of an arc, radial nodes, radial weights·r e^{−r²/2}/2π) for one level."""
    g = 0.5 ** np.arange(level, 0, -1) / 2                       # 2^{−L−1}, ..., 1/4 of the arc
    frac = np.concatenate([[0.0], g, [0.5], 1 - g[::-1], [1.0]])
    edges = np.concatenate([[0.0], 0.5 ** np.arange(level - GRADED_RADIAL_LAG, 0, -1),
                            [1.0, 2.0, 3.25, 4.75, 6.5, GRADED_R_MAX]])
    x, w = _leggauss(n)
    lo, hi = edges[:-1, None], edges[1:, None]
    r = (lo + (hi - lo) * (x + 1) / 2).ravel()
    wr = ((hi - lo) / 2 * w).ravel()
    for a in (frac, r, wr, edges):
        a.flags.writeable = False
    return frac, r, wr, edges


def graded_polar_dual(phi, dphi, q1, q2, c, breakpoints=(), symmetric: bool = False, n: int = GRADED_NODES,
                      with_error: bool = False, budget: int = 1 << 18):
    """E[φ(u)φ(v)], E[φ'(u)φ'(v)] by polar quadrature graded to the variance (any q, any kinks).

    With u = √q₁ r cos t and v = √q₂ r cos(t − θ), cos θ = c/√(q₁q₂), the circle is cut at the rays
    u = 0 and v = 0 into arcs, each split into panels graded geometrically toward its ends, and
    r ∈ [0, 9.5] into panels graded toward 0, both down to the scale 1/√max(q₁, q₂)
    (:func:`graded_levels`).  Breakpoints b ≠ 0 of φ are crossed by the radial integral at
    r = b/(√q₁ cos t) and b/(√q₂ cos(t − θ)); the radial panels are split there per angle, and the
    circle is also cut at the directions of the corners u = b₁, v = b₂ (where two kink lines cross;
    one level more in this case), so every panel integrand is analytic and Gauss–Legendre with ``n``
    nodes per panel and direction converges geometrically at every q.  ``symmetric``: φ is even or
    odd (then so is φ', and both products are invariant under (u, v) → (−u, −v)): half the circle,
    weights doubled.

    ``with_error``: also return, per entry, the largest difference (over the two kernels) between the
    returned rule and two coarser ones: the same panels with n − 1 nodes, and the mesh one level
    coarser (one level finer at level 1) — estimates of the errors of the coarser rules, hence
    conservative ones of the returned value; the second catches features the mesh does not resolve
    (n-refinement alone can converge slowly but consistently there).  Arrays broadcast; non-finite
    inputs give NaN.
    """
    q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
    shape = q1.shape
    q1, q2, c = (a.reshape(-1) for a in (q1, q2, c))
    bps = tuple(sorted({float(b) for b in breakpoints if b != 0 and np.isfinite(b)}))
    out = np.full((3, q1.size), np.nan)
    ok = np.isfinite(q1) & np.isfinite(q2) & np.isfinite(c) & (q1 >= 0) & (q2 >= 0)
    levels = graded_levels(q1, q2) + (1 if bps else 0)   # kink lines off the origin: one level more
    for lev in np.unique(levels[ok]):
        idx = np.flatnonzero(ok & (levels == lev))
        per = _graded_points(lev, n, len(bps), symmetric)
        step = max(1, budget // per)
        for start in range(0, idx.size, step):
            sl = idx[start:start + step]
            fine = _graded_chunk(phi, dphi, q1[sl], q2[sl], c[sl], lev, n, bps, symmetric)
            out[0, sl], out[1, sl] = fine
            if with_error:   # two other rules: one node fewer per panel, and the mesh one level coarser
                out[2, sl] = 0.0
                for other in ((lev, n - 1), (lev - 1 if lev > 1 else lev + 1, n)):
                    rough = _graded_chunk(phi, dphi, q1[sl], q2[sl], c[sl], *other, bps, symmetric)
                    diff = np.maximum(np.abs(fine[0] - rough[0]), np.abs(fine[1] - rough[1]))
                    out[2, sl] = np.maximum(out[2, sl], diff)
    res = tuple(a.reshape(shape) for a in out)
    return res if with_error else res[:2]


def _graded_points(level: int, n: int, n_bps: int, symmetric: bool) -> int:
    frac, r, _, _ = _graded_mesh(level, n)
    arcs = (2 if symmetric else 4) + n_bps ** 2
    return arcs * (len(frac) - 1) * n * (len(r) + 2 * n_bps * n)


def _graded_chunk(phi, dphi, q1, q2, c, level, n, bps, symmetric):
    m = q1.size
    s1, s2 = np.sqrt(q1), np.sqrt(q2)
    lim = s1 * s2
    with np.errstate(all="ignore"):
        rho = np.where(lim > 0, np.clip(c / np.where(lim > 0, lim, 1.0), -1.0, 1.0), 0.0)
    # |ρ| within rounding of 1 is ±1 (a Gram diagonal whose c and q differ by an ulp): for kinked φ,
    # Σ̇ moves like √(1 − ρ), so an ulp in c would cost ≈ 1e-8 relative
    rho = np.where(np.abs(rho) >= 1 - 16 * np.finfo(float).eps, np.sign(rho), rho)
    theta = np.arccos(rho)                              # v = √q₂ r cos(t − θ)
    h = np.pi / 2
    if symmetric:                                       # rays in [−π/2, π/2): −π/2, θ − π/2
        cuts = np.stack([np.full(m, -h), theta - h, np.full(m, h)], axis=1)
    else:                                               # −π/2 ≤ θ − π/2 ≤ π/2 ≤ θ + π/2 ≤ 3π/2
        cuts = np.stack([np.full(m, -h), theta - h, np.full(m, h), theta + h, np.full(m, 3 * h)], axis=1)
    if bps:   # directions of the corners u = b₁, v = b₂ (b₁, b₂ ≠ 0), where two kink lines cross
        period = np.pi if symmetric else 2 * np.pi
        st = np.sin(theta)
        extra = []
        with np.errstate(all="ignore"):
            for b1 in bps:
                for b2 in bps:
                    y = (b2 / s2 - b1 / s1 * rho) / np.where(st > 0, st, 1.0)
                    ang = np.mod(np.arctan2(y, b1 / s1) + h, period) - h
                    extra.append(np.where((st > 1e-300) & np.isfinite(ang), ang, -h))
        cuts = np.sort(np.concatenate([cuts, np.stack(extra, axis=1)], axis=1), axis=1)
    frac, r, wr, edges = _graded_mesh(level, n)
    x, w = _leggauss(n)
    lo, hi = cuts[:, :-1, None], cuts[:, 1:, None]
    tl, th = lo + (hi - lo) * frac[:-1], lo + (hi - lo) * frac[1:]           # (m, arcs, panels)
    t = (tl[..., None] + (th - tl)[..., None] * (x + 1) / 2).reshape(m, -1)
    wt = ((th - tl)[..., None] / 2 * w).reshape(m, -1) * (2.0 if symmetric else 1.0)
    cu, cv = s1[:, None] * np.cos(t), s2[:, None] * np.cos(t - theta[:, None])   # (m, T)
    if not bps:
        rw = wr * r * np.exp(-r * r / 2) / (2 * np.pi)
        u, v = cu[:, :, None] * r, cv[:, :, None] * r
        hat = np.einsum("mtr,mtr,r,mt->m", phi(u), phi(v), rw, wt, optimize=True)
        dot = np.einsum("mtr,mtr,r,mt->m", dphi(u), dphi(v), rw, wt, optimize=True)
        return hat, dot
    # radial edges per angle: the graded ones and the crossings r = b/cu, b/cv inside (0, r_max)
    with np.errstate(all="ignore"):
        cross = np.concatenate([b / np.stack([cu, cv], axis=-1) for b in bps], axis=-1)       # (m, T, 2k)
    cross = np.where((cross > 0) & (cross < GRADED_R_MAX), cross, GRADED_R_MAX)
    e = np.sort(np.concatenate([np.broadcast_to(edges, cu.shape + edges.shape), cross], axis=-1), axis=-1)
    rl, rh = e[..., :-1, None], e[..., 1:, None]
    rr = (rl + (rh - rl) * (x + 1) / 2).reshape(m, t.shape[1], -1)
    rw = ((rh - rl) / 2 * w).reshape(rr.shape) * rr * np.exp(-rr * rr / 2) / (2 * np.pi)
    u, v = cu[:, :, None] * rr, cv[:, :, None] * rr
    hat = np.einsum("mtr,mtr,mtr,mt->m", phi(u), phi(v), rw, wt, optimize=True)
    dot = np.einsum("mtr,mtr,mtr,mt->m", dphi(u), dphi(v), rw, wt, optimize=True)
    return hat, dot
