"""Numeric dual-kernel evaluators: closed forms compiled to NumPy, or quadrature.

:func:`kernel_functions` returns ``f(q1, q2, c) -> (Σ̂, Σ̇)`` on broadcastable
arrays, and a label saying which route it uses.  Closed forms are evaluated
with a clipped ``asin`` argument and non-negative ``sqrt`` radicand so that the
diagonal c = √(q₁q₂) is exact; activations without a closed form use 2-D
Gauss–Hermite quadrature (:func:`ntksym.gaussian.dual.gauss_hermite_dual`).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from .activation import Activation, _erf_np
from .gaussian.dual import C, Q1, Q2, DualKernels, gauss_hermite_dual

GH_ORDER = 64


def _safe_modules():
    return [{
        "asin": lambda t: np.arcsin(np.clip(t, -1.0, 1.0)),
        "sqrt": lambda t: np.sqrt(np.maximum(t, 0.0)),
        "erf": _erf_np(),
    }, "numpy"]


def compile_closed_form(expr: sp.Expr):
    fn = sp.lambdify((Q1, Q2, C), expr, modules=_safe_modules())

    def call(q1, q2, c):
        q1, q2, c = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q1, q2, c)))
        lim = np.sqrt(q1 * q2)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = fn(q1, q2, np.clip(c, -lim, lim))
        return np.broadcast_to(np.asarray(out, dtype=float), q1.shape)
    return call


def kernel_functions(act: Activation, dual: DualKernels, gh_order: int = GH_ORDER):
    """(callable, label): the dual kernels on arrays, and the route used."""
    if dual.khat is not None and dual.kdot is not None:
        khat, kdot = compile_closed_form(dual.khat), compile_closed_form(dual.kdot)

        def closed(q1, q2, c):
            return khat(q1, q2, c), kdot(q1, q2, c)
        return closed, "closed form"
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)

    def quad(q1, q2, c):
        return gauss_hermite_dual(phi, dphi, q1, q2, c, order=gh_order)
    return quad, f"2-D Gauss–Hermite quadrature ({gh_order}×{gh_order} nodes)"
