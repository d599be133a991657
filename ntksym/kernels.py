"""Numeric dual-kernel evaluators: closed forms compiled to NumPy, or quadrature.

:func:`kernel_functions` returns ``f(q1, q2, c) -> (Σ̂, Σ̇)`` on broadcastable
arrays, and a label saying which route it uses.  Closed forms are evaluated
with a clipped ``asin`` argument and non-negative ``sqrt`` radicand so that the
diagonal c = √(q₁q₂) is exact; activations without a closed form use 2-D
Gauss–Hermite quadrature (:func:`ntksym.gaussian.dual.gauss_hermite_dual`).
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .activation import Activation, _erf_np
from .errors import AccuracyError
from .gaussian.dual import C, Q1, Q2, DualKernels, gauss_hermite_dual, polar_dual

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

    A quadrature route needs its error estimate at unit variance within :data:`KERNEL_RTOL` (relative to max(1, |Σ̂|, |Σ̇|));
    otherwise AccuracyError, unless ``allow_inaccurate`` (then the label says INACCURATE).
    Cached: compiling closed forms and estimating quadrature errors is done once per activation."""
    if dual.khat is not None and dual.kdot is not None:
        khat, kdot = compile_closed_form(dual.khat), compile_closed_form(dual.kdot)

        def closed(q1, q2, c):
            return khat(q1, q2, c), kdot(q1, q2, c)
        return closed, "closed form"
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
    if all(b == 0 for b in act.breakpoints):
        def polar(q1, q2, c):
            return polar_dual(phi, dphi, q1, q2, c)
        err = _estimate(lambda *a: polar_dual(phi, dphi, *a), lambda *a: polar_dual(phi, dphi, *a, 16, 32), True)
        label = "polar Gauss–Legendre quadrature split on the rays u = 0, v = 0"
        return polar, _accuracy_label(act, label, "", err, allow_inaccurate)

    def quad(q1, q2, c):
        return gauss_hermite_dual(phi, dphi, q1, q2, c, order=gh_order)
    err = _estimate(lambda *a: gauss_hermite_dual(phi, dphi, *a, order=gh_order),
                    lambda *a: gauss_hermite_dual(phi, dphi, *a, order=3 * gh_order // 4), True)
    label = "2-D Gauss–Hermite quadrature"
    return quad, _accuracy_label(act, label, f"{gh_order}×{gh_order} nodes, ", err, allow_inaccurate)


KERNEL_RTOL = 1e-6  # relative error allowed to a quadrature route's estimate (tanh's is ≈ 1e-8)


def _accuracy_label(act, label: str, detail: str, err: tuple[float, float], allow_inaccurate: bool) -> str:
    err, scale = err
    tol = KERNEL_RTOL * max(1.0, scale)
    if err <= tol:
        return f"{label} ({detail}est. error {err:.0e} at unit variance)"
    if not allow_inaccurate:
        raise AccuracyError(f"the dual kernels of {act.name[:80]!r} by {label}: the error estimate {err:.0e} at "
                            f"unit variance exceeds the tolerance {tol:.0e} (allow_inaccurate=True or "
                            "--allow-inaccurate returns them anyway, marked INACCURATE)")
    return f"{label}, INACCURATE ({detail}est. error {err:.0e} > tolerance {tol:.0e} at unit variance)"


def _estimate(fine, coarse, with_scale: bool = False):
    """max |fine − coarse| over q₁ = q₂ = 1, c ∈ {−1, −0.5, 0, 0.5, 0.9, 1}, both kernels (inf when
    anything is not finite); with ``with_scale``, (that, max |fine|)."""
    c = np.array([-1.0, -0.5, 0.0, 0.5, 0.9, 1.0])
    one = np.ones_like(c)
    with np.errstate(all="ignore"):
        hi, lo = fine(one, one, c), coarse(one, one, c)
        diff = max(np.max(np.abs(hi[0] - lo[0])), np.max(np.abs(hi[1] - lo[1])))
        scale = max(np.max(np.abs(hi[0])), np.max(np.abs(hi[1])))
    if not (np.isfinite(diff) and np.isfinite(scale)):
        diff, scale = float("inf"), 0.0
    return (float(diff), float(scale)) if with_scale else float(diff)
