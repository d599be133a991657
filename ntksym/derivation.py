"""The driver: activation → Gaussian expectations → recursion, as one frozen record.

:func:`derive` is the whole pipeline as a list of stages; each stage's result
and wall time is kept in the :class:`Derivation`, which printers, the CLI and
(later) reports and generated code only read.
"""
from __future__ import annotations

import dataclasses
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import mpmath
import numpy as np
import sympy as sp

from .activation import X, Activation, make_activation
from .gaussian.dual import DualKernels, derive_dual
from .gaussian.hermite import (HermiteCoefficient, HermiteSeries, exact_coefficients, numeric_coefficient,
                               numeric_coefficients)
from .gaussian.kform import closed_form_in_k
from .kernels import kernel_functions
from .network import Network, Recursion, evaluate, recursion


def as_activation(spec: Any, params: Mapping[str, Any] | None = None) -> Activation:
    return spec if isinstance(spec, Activation) else make_activation(spec, params)


MAX_HERMITE_ORDER = 500     # Hermite coefficients per call (as `ntksym hermite --order`)
MAX_DIGITS = 1000           # decimal digits of a numeric route


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def hermite(spec: Any, order: int, digits: int = 20, params: Mapping[str, Any] | None = None,
            exact: bool = True, allow_inaccurate: bool = False) -> HermiteSeries:
    """μ_0..μ_{order−1} of an activation: exact where a rule applies, else mpmath quadrature.

    A numeric μ_k whose error estimate exceeds 10^(−digits)·max(1, |μ_k|) raises AccuracyError
    unless ``allow_inaccurate`` (then its route says INACCURATE)."""
    from .errors import NtksymError
    if not (_is_int(order) and 1 <= order <= MAX_HERMITE_ORDER):
        raise NtksymError(f"order must be an integer in [1, {MAX_HERMITE_ORDER}], got {order!r}")
    if not (_is_int(digits) and 1 <= digits <= MAX_DIGITS):
        raise NtksymError(f"digits must be an integer in [1, {MAX_DIGITS}], got {digits!r}")
    act = as_activation(spec, params)
    exacts = exact_coefficients(act.concrete, X, order) if exact else [(None, "numeric")] * order
    missing = [k for k, (e, _) in enumerate(exacts) if e is None]
    numeric = numeric_coefficients(act.mpmath_fn(), list(act.breakpoints), order, digits,
                                   act.singular_points) if missing else None
    rule = "Gauss–Legendre (tanh-sinh next to singular points)" if act.singular_points else "Gauss–Legendre"
    coeffs = []
    with mpmath.workdps(digits + 5):
        for k, (e, route) in enumerate(exacts):
            if e is not None:
                coeffs.append(HermiteCoefficient(k, e, mpmath.mpf(sp.N(e, digits + 5)), route))
            else:
                value, err = numeric[k]
                why = route[len("numeric ("):-1] if route.startswith("numeric (") else "exact route not requested"
                coeffs.append(numeric_coefficient(k, value, err, why, digits, allow_inaccurate, act.name, rule))
    form, start = closed_form_in_k(act)
    return HermiteSeries(tuple(coeffs), digits, form, start)


def dual_kernels(spec: Any, params: Mapping[str, Any] | None = None, derivative: str = "ae") -> DualKernels:
    """Σ̂ and Σ̇; ``derivative`` = "ae" (default: φ' almost everywhere, as finite networks and
    neural-tangents) or "distributional" (smoothed limit: jumps of φ give Dirac parts in Σ̇)."""
    return derive_dual(as_activation(spec, params).concrete, X, derivative=derivative)


def kernel(spec: Any, x1, x2=None, depth: int = 1, sigma_w: float = 1.0, sigma_b: float = 0.0,
           params: Mapping[str, Any] | None = None, parameterization: str = "ntk", width: int | None = None,
           allow_inaccurate: bool = False, derivative: str = "ae"):
    """(NNGP, NTK) Gram matrices of the infinite-width network on data arrays.

    A quadrature route whose error estimate exceeds its tolerance raises AccuracyError unless
    ``allow_inaccurate``.  ``derivative``: see :func:`dual_kernels`; with "distributional", an
    NTK that is infinite (the Dirac part of Σ̇ at parallel inputs, e.g. a Gram diagonal) raises
    ActivationError instead of returning inf."""
    act = as_activation(spec, params)
    net = Network(depth, sigma_w, sigma_b, parameterization, width)
    dual = dual_kernels(act, derivative=derivative)
    fns, _ = kernel_functions(act, dual, allow_inaccurate=allow_inaccurate)
    return _checked_evaluate(act, dual, fns, net, x1, x2)


def _checked_evaluate(act: Activation, dual: DualKernels, fns, net: Network, x1, x2):
    """(NNGP, NTK) by :func:`evaluate`, refused when a distributional Σ̇ makes NTK entries infinite.
    Data whose rows all have one |x|²/d take the depth-independent table (:func:`ntksym.tables.table_kernels`)."""
    if not dual.kdot_distributional:
        from .tables import table_kernels
        out = table_kernels(act, dual, net, x1, x2)
        return out if out is not None else evaluate(fns, net, x1, x2)
    from .errors import AccuracyError, ActivationError
    why = (f"the NTK of {act.name[:80]!r} with the distributional derivative (smoothed limit) is infinite where two "
           "inputs are parallel or antiparallel at a layer (c = ±sqrt(q1 q2), e.g. the diagonal of a Gram matrix): "
           "its Sigma-dot has a Dirac part; the default almost-everywhere derivative (--derivative ae, what finite "
           "networks compute) is finite")
    try:
        kernels = evaluate(fns, net, x1, x2)
    except AccuracyError as exc:   # inf·0 at such entries reads as NaN to the evaluator
        raise ActivationError(f"{why} ({exc})") from None
    bad = ~np.isfinite(np.asarray(kernels[1], dtype=float))
    if bad.any():
        raise ActivationError(f"{why} ({int(bad.sum())} of {bad.size} entries)")
    return kernels


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
    allow_inaccurate: bool = False      # derive(..., allow_inaccurate=True): kernel() keeps that choice

    def kernel(self, x1, x2=None):
        fns, _ = kernel_functions(self.activation, self.dual,
                                  allow_inaccurate=self.allow_inaccurate or "INACCURATE" in self.kernel_route)
        return _checked_evaluate(self.activation, self.dual, fns, self.network, x1, x2)

    @property
    def derivative(self) -> str:
        """The convention of φ' in Σ̇: "ae" (almost everywhere) or "distributional"."""
        return self.dual.derivative

    def _repr_latex_(self) -> str:
        from .report.notebook import derivation
        return derivation(self)


def derive(spec: Any, depth: int, sigma_w: float = 1.0, sigma_b: float = 0.0,
           params: Mapping[str, Any] | None = None, parameterization: str = "ntk",
           width: int | None = None, order: int = 8, digits: int = 15, allow_inaccurate: bool = False,
           derivative: str = "ae") -> Derivation:
    """Run the pipeline: activation, Hermite coefficients, dual kernels, recursion.

    Numeric results beyond their tolerance raise AccuracyError unless ``allow_inaccurate`` (then
    their routes say INACCURATE).  ``derivative``: the convention of φ' in Σ̇ (:func:`dual_kernels`)."""
    timings = []

    def stage(name, fn, *args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        timings.append((name, time.perf_counter() - t0))
        return out

    net = Network(depth, sigma_w, sigma_b, parameterization, width)
    act = stage("activation", as_activation, spec, params)
    herm = stage("hermite", hermite, act, order, digits, allow_inaccurate=allow_inaccurate)
    dual = stage("dual kernels", dual_kernels, act, derivative=derivative)
    rec = stage("recursion", recursion, dual, net)
    _, route = kernel_functions(act, dual, allow_inaccurate=allow_inaccurate)
    return Derivation(act, net, herm, dual, rec, route, tuple(timings), allow_inaccurate)


# ------------------------------------------------------------------ power series and spectra


def dot_network(act: Activation, depth: int, sigma_w=1.0, sigma_b=0.0, preset: str | None = None):
    """The dot-product network: default convention, or Murray et al.'s preset (depth = their l − 1)."""
    from .series import DotProductNetwork, murray_preset
    if preset is None:
        Network(depth, _float(sigma_w), _float(sigma_b))  # same validation (and bounds) as the data route
        return DotProductNetwork(depth, sigma_w, sigma_b)
    if preset == "murray":
        Network(depth)  # the same depth bound
        return murray_preset(act, depth + 1)
    from .errors import NtksymError
    raise NtksymError(f"unknown preset {preset!r} (available: murray)")


def _float(v) -> float:
    try:
        return float(v)
    except OverflowError:  # an exact number beyond the float range: Network reports it as out of bounds
        return float("inf")
    except TypeError:
        from .errors import NetworkError
        raise NetworkError(f"sigma must be a number, got {v!r}") from None


def power_series(spec: Any, depth: int, sigma_w=1.0, sigma_b=0.0, order: int = 20, digits: int | None = None,
                 params: Mapping[str, Any] | None = None, exact: bool = False, preset: str | None = None,
                 derivative: str = "ae"):
    """κ_p (p < order) of the NNGP and NTK in ρ for |x|²/d = 1 (see :mod:`ntksym.series`).

    ``exact`` → SymPy values; ``digits`` → mpmath Cauchy formula at that precision;
    otherwise float64 FFT (fast to order 10⁴ and beyond).
    """
    from .errors import NtksymError
    from .series import series_exact, series_fft, series_mpmath
    if order < 1:
        raise NtksymError("order must be >= 1")
    act = as_activation(spec, params)
    dual = dual_kernels(act, derivative=derivative)
    net = dot_network(act, depth, sigma_w, sigma_b, preset)
    if dual.kdot_distributional:
        from .series import dirac_refusal
        raise NtksymError(dirac_refusal(act.name))
    if exact:
        from .errors import DerivationTimeout
        try:
            return _labelled(series_exact(dual, net, order), dual)
        except DerivationTimeout as exc:
            raise NtksymError(f"exact series too large ({exc}); use --digits for high precision") from None
    if digits is not None:
        return _labelled(series_mpmath(act, dual, net, order, digits), dual)
    from .series import Float64Loss, mpmath_affordable
    try:
        return _labelled(series_fft(act, dual, net, order), dual)
    except Float64Loss as exc:   # float64 cancellation in the closed form: the mpmath route, when quick
        points = order + int((40 + 10) / 0.30103) + 8   # series_mpmath at 40 digits
        if not mpmath_affordable(net.depth, points):   # too slow: float64 with its measured error in the label
            return _labelled(series_fft(act, dual, net, order, max_node_error=FLOAT64_ACCEPT), dual)
        s = series_mpmath(act, dual, net, order, 40)   # (its closed forms may lose up to half the digits too)
        why = str(exc).split(": use the mpmath route")[0]
        return _labelled(dataclasses.replace(s, accuracy=s.accuracy + f"; mpmath route used because {why}"), dual)


def _labelled(series, dual: DualKernels):
    """``series`` with its route naming the convention of φ' in Σ̇ where it matters (φ with jumps)."""
    if not dual.jumps:
        return series
    from .gaussian.dual import DERIVATIVE_LABELS
    return dataclasses.replace(series, route=f"{series.route}; Σ̇ from the {DERIVATIVE_LABELS[dual.derivative]}")


def sphere_spectrum(spec: Any, depth: int, dim: int, kmax: int, sigma_w=1.0, sigma_b=0.0, digits: int = 30,
                    params: Mapping[str, Any] | None = None, order: int | None = None, preset: str | None = None,
                    which: str = "ntk", derivative: str = "ae"):
    """Eigenvalues λ_k (k ≤ kmax) and multiplicities of Θ(⟨x, y⟩) on S^{dim−1} (uniform probability).

    With closed-form dual kernels and order ≤ 8192 every κ_p comes from the
    mpmath FFT route at ``digits``; otherwise from the float64 FFT route (the
    first 256 refined by the mpmath route when closed forms exist).  The error
    bound reported per k (``truncation``) adds the series tail Θ(1) − Σ_p κ_p ≥ 0
    (all κ_p ≥ 0) and the absolute round-off of the computed κ_p propagated
    through the projection: eigenvalues far below it (e.g. very high k for
    smooth activations, whose κ_p are below the round-off) are not resolved.
    """
    from .errors import NtksymError
    from .spectrum.sphere import sphere_eigenvalues
    if dim < 2 or kmax < 0:
        raise NtksymError("dim must be >= 2 and kmax >= 0")
    act = as_activation(spec, params)
    dual = dual_kernels(act, derivative=derivative)
    net = dot_network(act, depth, sigma_w, sigma_b, preset)
    from .series import mpmath_affordable, series_fft, series_mpmath, series_mpmath_fft
    if order is None:
        order = max(256, 2 * kmax + 64, int(4 * kmax * kmax / max(dim - 1, 1)) + 64)
    order = min(order, 1 << 17)
    closed = dual.khat is not None and not dual.kdot_distributional
    all_mp = closed and order <= 8192 and mpmath_affordable(net.depth, 2 * order)   # (deep nets: float64)
    work = digits + 10            # guard digits: the printed digits are certified by the bounds below
    if all_mp:                    # every coefficient at the requested precision
        s = series_mpmath_fft(act, dual, net, order, work)
        coeffs, total = list(s.ntk if which == "ntk" else s.nngp), s.ntk_at_one if which == "ntk" else s.nngp_at_one
    else:                          # float64 coefficients, the first 256 refined with mpmath where possible
        fast = series_fft(act, dual, net, order, max_node_error=FLOAT64_ACCEPT)   # its error enters the bounds
        coeffs = list(fast.ntk if which == "ntk" else fast.nngp)
        total = fast.ntk_at_one if which == "ntk" else fast.nngp_at_one
        if closed and mpmath_affordable(net.depth, 512):
            head = min(order, 256)
            precise = series_mpmath(act, dual, net, head, work)
            coeffs[:head] = precise.ntk if which == "ntk" else precise.nngp
            total = precise.ntk_at_one if which == "ntk" else precise.nngp_at_one
    with mpmath.workdps(work + 10):
        tail = max(mpmath.mpf(total) - mpmath.fsum(mpmath.mpf(c) for c in coeffs), mpmath.mpf(0))
        # absolute error of each computed κ_p (Cauchy/FFT round-off × r^-P, with a factor 10 of margin)
        from .series import MP_FFT_GUARD, MP_FFT_SHIFT
        delta = (mpmath.mpf(total) * mpmath.mpf(10) ** (-(work + MP_FFT_GUARD - 1)) * mpmath.e ** MP_FFT_SHIFT
                 if all_mp else 10 * mpmath.mpf(fast.abs_error or 4.4e-15 * abs(float(total))))   # margin 10
    spec = sphere_eigenvalues(coeffs, dim, kmax, dps=work, tail=tail)
    noise = sphere_eigenvalues([delta] * len(coeffs), dim, kmax, dps=work)
    bound = [t + n for t, n in zip(spec.truncation, noise.eigenvalues)]
    lams, routes = list(spec.eigenvalues), ["series"] * (kmax + 1)
    from .series import LayerMaps, kernel_on_interval, vanishing_parity
    parity = vanishing_parity(act, net)
    for k in range(kmax + 1):   # λ_k sums κ_p with p ≡ k (mod 2) only: exact zeros by symmetry
        if parity is not None and k % 2 == parity:
            lams[k], bound[k], routes[k] = mpmath.mpf(0), mpmath.mpf(0), "parity"
    spec = dataclasses.replace(spec, eigenvalues=tuple(lams), truncation=tuple(bound), routes=tuple(routes),
                               notes=("",) * (kmax + 1), digits=digits)
    if closed and any(n < digits for _, n in spec.printed(digits)):
        # the series tail is too heavy (kinks: κ_p ~ p^(-3/2); low d): Funk–Hecke quadrature of the
        # kernel itself at the requested precision (spectrum.sphere.refine_funk_hecke)
        from .spectrum.sphere import refine_funk_hecke
        maps = LayerMaps(act, dual)

        def values(thetas):
            return kernel_on_interval(maps, net, [mpmath.cos(x) for x in thetas], which)
        try:
            spec = refine_funk_hecke(spec, values, digits, scale=abs(mpmath.mpf(total)) * (1 + mpmath.mpf(10) ** -5),
                                     cost_per_node=net.depth, work_budget=FUNK_HECKE_BUDGET)
        except (ArithmeticError, ValueError, TypeError) as exc:   # the kernel could not be evaluated on [-1, 1]
            why = f"Funk–Hecke quadrature failed ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
            spec = dataclasses.replace(spec, notes=tuple(why if n < digits else "" for _, n in spec.printed(digits)))
    return spec


FLOAT64_ACCEPT = 1e-3      # float64 series whose circle values are off by more are refused outright
FUNK_HECKE_BUDGET = 1.2e5   # kernel evaluations × layers of the Funk–Hecke route (≈ 30 s at most)


def data_spectrum_report(spec: Any, x, depth: int, sigma_w=1.0, sigma_b=0.0, params: Mapping[str, Any] | None = None,
                         order: int = 2000, preset: str | None = None, derivative: str = "ae") -> dict:
    """NTK and input Gram spectra of a data set (rows normalised to |x| = 1, i.e. ρ = cosines),
    with Murray et al.'s effective-rank bounds (Thm 4.1, 4.3) evaluated next to the measured values.

    The NTK Gram is Σ_p κ_p G^{⊙p} with G = X̂X̂ᵀ and κ_p from the FFT route; the truncation
    at ``order`` leaves at most Θ(1) − Σ κ_p per entry, reported as ``series_tail``.
    Works on NumPy arrays, and on torch/CuPy arrays through :mod:`ntksym.spectrum.data`.
    """
    from .spectrum.data import data_spectrum, gram_from_coefficients, murray_bounds, normalize_rows
    act = as_activation(spec, params)
    s = power_series(act, depth, sigma_w, sigma_b, order=order, preset=preset, derivative=derivative)
    xn = normalize_rows(x)
    g = xn @ xn.T
    coeffs = np.clip(np.asarray(s.ntk, dtype=float), 0, None)  # κ_p ≥ 0; clip round-off below zero
    k = gram_from_coefficients(g, coeffs)
    from .spectrum.data import generic_eigenvalue_bound
    spectrum = data_spectrum(k)
    generic = []
    for m in range(1, 7):  # Thm 4.8's key lemma: λ_k(K) ≤ ‖G^{⊙m}‖/n·Σ_{j≥m} κ_j for k > rank(H_m)
        rank, bound = generic_eigenvalue_bound(g, coeffs, m)
        if rank < len(spectrum.eigenvalues):
            generic.append({"m": m, "rank_Hm": rank, "bound": bound,
                            "measured_lambda_after_rank": float(spectrum.eigenvalues[rank]) / len(g)})
    return {"ntk": spectrum, "input_gram": data_spectrum(g), "bounds": murray_bounds(g, coeffs),
            "generic_bounds": generic, "series_tail": float(s.ntk_at_one - coeffs.sum()), "coefficients": s}
