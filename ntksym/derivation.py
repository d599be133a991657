"""The driver: activation → Gaussian expectations → recursion, as one frozen record.

:func:`derive` is the whole pipeline as a list of stages; each stage's result
and wall time is kept in the :class:`Derivation`, which printers, the CLI and
(later) reports and generated code only read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import mpmath
import sympy as sp

from .activation import X, Activation, make_activation
from .gaussian.dual import DualKernels, derive_dual
from .gaussian.hermite import HermiteCoefficient, HermiteSeries, exact_coefficients, numeric_coefficients
from .gaussian.kform import closed_form_in_k
from .kernels import kernel_functions
from .network import Network, Recursion, evaluate, recursion


def as_activation(spec: Any, params: Mapping[str, Any] | None = None) -> Activation:
    return spec if isinstance(spec, Activation) else make_activation(spec, params)


def hermite(spec: Any, order: int, digits: int = 20, params: Mapping[str, Any] | None = None,
            exact: bool = True) -> HermiteSeries:
    """μ_0..μ_{order−1} of an activation: exact where a rule applies, else mpmath quadrature."""
    act = as_activation(spec, params)
    if order < 1 or digits < 1:
        from .errors import NtksymError
        raise NtksymError("order and digits must be >= 1")
    exacts = exact_coefficients(act.concrete, X, order) if exact else [(None, "numeric")] * order
    missing = [k for k, (e, _) in enumerate(exacts) if e is None]
    numeric = numeric_coefficients(act.mpmath_fn(), list(act.breakpoints), order, digits) if missing else None
    coeffs = []
    with mpmath.workdps(digits + 5):
        for k, (e, route) in enumerate(exacts):
            if e is not None:
                coeffs.append(HermiteCoefficient(k, e, mpmath.mpf(sp.N(e, digits + 5)), route))
            else:
                value, err = numeric[k]
                why = route[len("numeric ("):-1] if route.startswith("numeric (") else "exact route not requested"
                coeffs.append(HermiteCoefficient(k, None, value, f"numeric: Gauss–Legendre quadrature "
                                                 f"(est. error {err:.1e}; {why})", err))
    form, start = closed_form_in_k(act)
    return HermiteSeries(tuple(coeffs), digits, form, start)


def dual_kernels(spec: Any, params: Mapping[str, Any] | None = None) -> DualKernels:
    return derive_dual(as_activation(spec, params).concrete, X)


def kernel(spec: Any, x1, x2=None, depth: int = 1, sigma_w: float = 1.0, sigma_b: float = 0.0,
           params: Mapping[str, Any] | None = None, parameterization: str = "ntk", width: int | None = None):
    """(NNGP, NTK) Gram matrices of the infinite-width network on data arrays."""
    act = as_activation(spec, params)
    net = Network(depth, sigma_w, sigma_b, parameterization, width)
    fns, _ = kernel_functions(act, dual_kernels(act))
    return evaluate(fns, net, x1, x2)


@dataclass(frozen=True)
class Derivation:
    """Everything derived for one activation and network; outputs are views of it."""
    activation: Activation
    network: Network
    hermite: HermiteSeries
    dual: DualKernels
    recursion: Recursion
    kernel_route: str
    timings: tuple[tuple[str, float], ...] = field(default=())

    def kernel(self, x1, x2=None):
        fns, _ = kernel_functions(self.activation, self.dual)
        return evaluate(fns, self.network, x1, x2)


def derive(spec: Any, depth: int, sigma_w: float = 1.0, sigma_b: float = 0.0,
           params: Mapping[str, Any] | None = None, parameterization: str = "ntk",
           width: int | None = None, order: int = 8, digits: int = 15) -> Derivation:
    """Run the pipeline: activation, Hermite coefficients, dual kernels, recursion."""
    timings = []

    def stage(name, fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        timings.append((name, time.perf_counter() - t0))
        return out

    net = Network(depth, sigma_w, sigma_b, parameterization, width)
    act = stage("activation", as_activation, spec, params)
    herm = stage("hermite", hermite, act, order, digits)
    dual = stage("dual kernels", dual_kernels, act)
    rec = stage("recursion", recursion, dual, net)
    _, route = kernel_functions(act, dual)
    return Derivation(act, net, herm, dual, rec, route, tuple(timings))
