"""Depth-independent evaluation of the dot-product kernels: a piecewise-polynomial table in θ = arccos ρ.

For inputs with |x|²/d = 1 the NNGP and NTK are functions Σ(ρ), Θ(ρ) of
ρ = x·y/d ∈ [−1, 1] (DESIGN.md §2).  They are singular at ρ = ±1 for the
ReLU family (terms in √(1 − ρ²) and arccos ρ), but as functions of the angle
θ = arccos ρ ∈ [0, π] they are analytic (each layer map of an arc-cosine
kernel is analytic in θ, Cho & Saul 2009, and 1 − Σ⁽ˡ⁾ vanishes to second order
in θ, so the next angle is again analytic).  This module

1. evaluates the same named recursion (:attr:`Derivation.recursion`) in mpmath at
   ``DPS`` digits on Chebyshev points of the second kind in t = 2θ/π − 1, doubling
   the number of points until the Chebyshev coefficients have decayed below
   rounding level (Trefethen, *Approximation Theory and Approximation Practice*,
   ch. 3 and 8: geometric decay for analytic functions);
2. checks the global interpolant against fresh mpmath values off the nodes;
3. cuts [0, π] into K equal panels, each with a degree-``DEGREE`` polynomial in the
   local variable s ∈ [−1, 1] (interpolating at Chebyshev nodes), doubling K until
   the table agrees with the global interpolant to 1e-15 relative to max |f|.

Nothing is tabulated (``None``) when the coefficients do not decay (e.g. the
step function, whose NTK is infinite at ρ = 1, or a kernel that is not analytic
in θ): the generated code then always runs the recursion.

Activations without closed-form dual kernels get the same table from the float64 recursion of
:mod:`ntksym.tables` (Hermite/Mehler series with its tail bound, graded polar quadrature near
ρ = ±1, every layer's error estimate carried along): :func:`chebyshev_table` with the looser
tolerances of float64 values (:data:`ntksym.tables.TABLE_TOL`), the values' estimated error added to
``max_error``.  φ whose derivative jumps (Σ̇ moves like θ near ρ = 1, which a recursion in ρ cannot
resolve in float64) fail the check near θ = 0 and get no table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from ..derivation import Derivation
from ..tables import cheb_coefficients

DPS = 60
DEGREE = 5
MAX_POINTS = 1024
MAX_PANELS = 8192
TABLE_TOL = 3e-15     # table vs global interpolant, relative to max |f|
GLOBAL_TOL = 2e-15    # global interpolant vs fresh mpmath values, relative to max |f|


@dataclass(frozen=True)
class AngleTable:
    """Monomial coefficients (highest first) of Σ and Θ on K panels of θ ∈ [0, π]."""
    panels: int
    degree: int
    coefficients: tuple   # K rows of 2(degree+1) floats: Σ coefficients then Θ coefficients
    chebyshev_points: int
    max_error: float      # measured (plus the values' estimated error), relative to max |f|, both kernels
    source: str = "the recursion evaluated in 60-digit mpmath"   # how the values at the nodes were computed
    ends: tuple = ()      # ((Σ, Θ) at ρ = 1, (Σ, Θ) at ρ = −1): the recursion's values at the end nodes


def _mp_modules():
    def sqrt(t):
        return mpmath.sqrt(t) if t > 0 else mpmath.mpf(0)

    def asin(t):
        return mpmath.asin(max(-1, min(1, t)))
    return [{"sqrt": sqrt, "asin": asin, "acos": lambda t: mpmath.acos(max(-1, min(1, t)))}, "mpmath"]


MP_SOURCE = "the recursion evaluated in 60-digit mpmath"
MP_DEPTH = 64    # deeper networks get no table (60-digit values cost ~0.3 ms a layer a point): the module runs the recursion


def compile_layer(layer, prev) -> list:
    """One named layer lambdified in mpmath: [(key, fn, [(where, name)])], where ∈ {'in', 'prev', 'this'}
    and name a key of that layer or an input name (xx, yy, xy, d)."""
    where = {}
    if prev is not None:
        where.update({sym: ("prev", k) for k, sym in prev.symbols.items()})
    where.update({sym: ("this", k) for k, sym in layer.symbols.items()})
    out = []
    for key, eq in layer.equations.items():
        free = sorted(eq.free_symbols, key=str)
        out.append((key, sp.lambdify(free, eq, modules=_mp_modules()),
                    [where.get(sym, ("in", str(sym))) for sym in free]))
    return out


def mp_recursion(d: Derivation):
    """f(xx, yy, xy, dim) -> (Σ⁽ᴸ⁾, Θ⁽ᴸ⁾) in mpmath, walking the named layers of ``d.recursion``.

    The hidden layers are one map applied L times (checked on the second and the last layer), so it
    is lambdified once and folded, not printed per layer."""
    layers = d.recursion.layers
    first = compile_layer(layers[0], None)
    hidden = compile_layer(layers[1], layers[0]) if len(layers) > 1 else []
    for i in {2, len(layers) - 1} - {0, 1}:
        if i < len(layers) and not _same_map(layers[1], layers[0], layers[i], layers[i - 1]):
            return per_layer(layers)

    def evaluate(xx, yy, xy, dim):
        given = {"xx": xx, "yy": yy, "xy": xy, "d": dim}
        prev = _run(first, {}, given)
        for _ in range(len(layers) - 1):
            prev = _run(hidden, prev, given)
        return prev["Sigma_xy"], prev["Theta_xy"]
    return evaluate


def _run(compiled, prev: dict, given: dict) -> dict:
    this = {}
    for key, fn, args in compiled:
        this[key] = fn(*[given[n] if w == "in" else (prev if w == "prev" else this)[n] for w, n in args])
    return this


def _same_map(layer, prev, other, other_prev) -> bool:
    ren = {other_prev.symbols[k]: prev.symbols[k] for k in other_prev.symbols}
    ren.update({other.symbols[k]: layer.symbols[k] for k in other.symbols})
    return other.equations.keys() == layer.equations.keys() and all(
        other.equations[k].xreplace(ren) == layer.equations[k] for k in layer.equations)


def per_layer(layers):
    """The recursion with every layer compiled on its own (no folding)."""
    compiled = [compile_layer(layer, prev) for layer, prev in zip(layers, [None, *layers[:-1]])]

    def evaluate(xx, yy, xy, dim):
        given = {"xx": xx, "yy": yy, "xy": xy, "d": dim}
        prev = {}
        for c in compiled:
            prev = _run(c, prev, given)
        return prev["Sigma_xy"], prev["Theta_xy"]
    return evaluate


def _values(f, t_points, r: float = 1.0, dim: int = 1):
    """(Σ, Θ) at θ = (t + 1)π/2 for inputs with |x|²/d = r in dimension ``dim`` (x·x = dim·r)."""
    with mpmath.workdps(DPS):
        out = []
        xx = mpmath.mpf(dim) * mpmath.mpf(r)
        for t in t_points:
            rho = mpmath.cos((mpmath.mpf(t) + 1) * mpmath.pi / 2)
            s, th = f(xx, xx, xx * rho, mpmath.mpf(dim))
            out.append((float(s), float(th)))
    return np.array(out)


def angle_table(d: Derivation) -> AngleTable | None:
    """The panel table of (Σ(ρ), Θ(ρ)) at |x|²/d = 1, or None when it cannot be made accurate.

    Closed forms: the named recursion in 60-digit mpmath (:func:`mp_recursion`).  Activations without
    a closed form: the float64 recursion of :mod:`ntksym.tables` (equal-variance dual kernels by the
    Hermite/Mehler series with its tail bound, quadrature near ρ = ±1), whose estimated error enters
    the table's ``max_error``."""
    if d.network.parameterization != "ntk" or d.dual.kdot_distributional:
        return None    # Σ̇ infinite at ρ = ±1 (step, sign): no bounded table
    if d.dual.khat is None or d.dual.kdot is None:
        from ..tables import numeric_angle_table
        return numeric_angle_table(d.activation, d.dual, d.network, 1.0, 1)
    if d.network.depth > MP_DEPTH:
        return None
    try:
        return mp_angle_table(mp_recursion(d), 1.0, 1)
    except (ArithmeticError, ValueError, TypeError, NameError):   # a pole or overflow of the recursion on
        return None                                                # [-1, 1], or no mpmath form: no table


def mp_angle_table(f, r: float, dim: int) -> AngleTable | None:
    """:func:`chebyshev_table` of the mpmath recursion ``f`` at |x|²/d = r in dimension ``dim``."""
    return chebyshev_table(lambda t: _values(f, t, r, dim))


def chebyshev_table(values, global_tol: float = GLOBAL_TOL, tail_tol: float = 1e-16, error: float = 0.0,
                    source: str = MP_SOURCE) -> AngleTable | None:
    """The panel table from ``values(t) -> (len(t), 2)`` array of (Σ, Θ) at θ = (t + 1)π/2.

    Chebyshev points are doubled from 33 until the last eighth of the coefficients is below
    ``tail_tol`` relative to max |f|; the interpolant is then checked against fresh values at 58 angles
    (random, and near 0 and π) to ``global_tol``; ``error`` (an estimate of the values' own error,
    relative to max |f|) is added to the table's ``max_error``.  ``values`` may return None: no table."""
    n, vals = 32, None
    while n <= MAX_POINTS:
        t = np.cos(np.pi * np.arange(n + 1) / n)
        if vals is None:
            vals = values(t)
        else:  # nested points: the old ones are the even-indexed new ones
            new = values(t[1::2])
            if new is None:
                return None
            merged = np.empty((n + 1, 2))
            merged[0::2], merged[1::2] = vals, new
            vals = merged
        if vals is None or not np.all(np.isfinite(vals)):
            return None
        coeffs = cheb_coefficients(vals)
        scale = np.max(np.abs(vals), axis=0)
        scale[scale == 0] = 1.0   # a kernel ≡ 0 in float64 (φ ≡ 0, or a tiny one): absolute errors
        tail = np.max(np.abs(coeffs[-max(4, n // 8):]), axis=0)
        if np.all(tail <= tail_tol * scale):
            break
        n *= 2
    else:
        return None
    rng = np.random.default_rng(0)
    # random angles, plus angles near 0 and π: in the chaotic phase the kernel at depth has a boundary
    # layer at θ → 0 (repeated points keep Σ(1) = q* while ρ = 1 − 1e-20 already decorrelates) that
    # no node of the interpolant sees; then no table (the recursion, with exact ties, runs instead)
    near = np.array([0.0, 1e-9, 1e-6, 1e-4, 1e-2])
    t_check = np.concatenate([rng.uniform(-1, 1, 48), 2 * near / np.pi - 1, 1 - 2 * near / np.pi])
    exact = values(t_check)
    if exact is None:
        return None
    approx = np.polynomial.chebyshev.chebval(t_check, coeffs)
    measured = float(np.max(np.abs(approx.T - exact) / scale))
    if not measured <= global_tol:
        return None
    table = _panels(coeffs, scale, n)
    if table is None:
        return None
    return dataclasses.replace(table, max_error=float(table.max_error + measured + error), source=source,
                               ends=(tuple(float(v) for v in vals[-1]), tuple(float(v) for v in vals[0])))


def _panels(coeffs, scale, n_points) -> AngleTable | None:
    m = DEGREE
    nodes = np.cos(np.pi * (np.arange(m + 1) + 0.5) / (m + 1))          # local s nodes
    # values at the nodes -> local Chebyshev coefficients (discrete orthogonality, well conditioned)
    # -> monomial coefficients, highest first (cheb2poly: exact small-integer combinations)
    tk = np.cos(np.outer(np.arange(m + 1), np.pi * (np.arange(m + 1) + 0.5) / (m + 1)))   # T_k(s_j)
    to_cheb = 2.0 / (m + 1) * tk
    to_cheb[0] /= 2
    to_monomial = np.zeros((m + 1, m + 1))
    for k in range(m + 1):
        poly = np.polynomial.chebyshev.cheb2poly(np.eye(m + 1)[k])
        to_monomial[:len(poly), k] = poly
    to_monomial = to_monomial[::-1]
    to_monomial = to_monomial @ to_cheb
    rng = np.random.default_rng(1)
    theta_check = np.concatenate([rng.uniform(0, np.pi, 20000), [0.0, np.pi]])
    t_check = 2 * theta_check / np.pi - 1
    ref = np.polynomial.chebyshev.chebval(t_check, coeffs)               # (2, N)
    k = 64
    while k <= MAX_PANELS:
        theta = (np.arange(k)[:, None] + (nodes[None, :] + 1) / 2) * (np.pi / k)
        vals = np.polynomial.chebyshev.chebval(2 * theta / np.pi - 1, coeffs)   # (2, K, m+1)
        table = np.concatenate([vals[0] @ to_monomial.T, vals[1] @ to_monomial.T], axis=1)
        u = theta_check * (k / np.pi)
        idx = np.minimum(np.floor(u).astype(int), k - 1)
        s = 2 * (u - idx) - 1
        got = [_horner(table[idx, j * (m + 1):(j + 1) * (m + 1)], s) for j in range(2)]
        err = max(np.max(np.abs(got[j] - ref[j])) / scale[j] for j in range(2))
        if err <= TABLE_TOL:
            return AngleTable(k, m, tuple(tuple(float(v) for v in row) for row in table), n_points + 1, float(err))
        k *= 2
    return None


def _horner(rows, s):
    p = rows[:, 0].copy()
    for j in range(1, rows.shape[1]):
        p = p * s + rows[:, j]
    return p
