"""The analyses a report shows, computed once into a frozen :class:`ReportData`.

This is the last computing stage of the pipeline; the LaTeX, JSON and figure
writers only read what it returns.  Each analysis runs under a time bound and
records how it was obtained; one that fails or runs out of time is reported as
skipped with the reason, never silently dropped.

Checks in the verification table (each an independent route, with the tolerance
it must meet):

* Hermite coefficients: exact values against mpmath Gauss–Legendre quadrature at
  30 digits (tolerance 1e-20: the quadrature's own error is below 1e-25);
* dual kernels: the closed form (or the numeric route) against a second
  quadrature — polar Gauss–Legendre for kinks at 0, 2-D Gauss–Hermite of high
  order otherwise — at points including c = ±√(q₁q₂) (tolerance 1e-8 relative,
  the quadrature's accuracy for kinked activations);
* power series: Σ_p κ_p ρ^p against the recursion evaluated in closed form at
  ρ = −0.5, 0, 0.5 (tolerance: the Cauchy tail bound, 1e-9 relative);
* Monte Carlo: the NNGP/NTK recursion against the mean over finite networks
  (width 512): |Δ| ≤ 5·SEM + 2L/width·|K|, the finite-width bias allowance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from ..bounded import time_limit
from ..errors import DerivationTimeout, NtksymError


@dataclass(frozen=True)
class ReportOptions:
    """What the report computes beyond the derivation (sizes chosen to run in seconds)."""
    series_order: int = 256
    sphere_dim: int = 3
    sphere_kmax: int = 20
    sphere_digits: int = 20
    mc_width: int = 512
    mc_samples: int = 48
    mc_seed: int = 0
    hermite_check_digits: int = 30
    seconds: float = 60.0           # bound per analysis
    figures: bool = True
    analyses: tuple[str, ...] = ("series", "eoc", "spectrum", "checks")   # which sections to compute


@dataclass(frozen=True)
class Outcome:
    """One analysis: its value (or None), how it was obtained, and the time it took."""
    value: Any
    route: str
    seconds: float
    skipped: str | None = None


@dataclass(frozen=True)
class Check:
    """One row of the verification table."""
    what: str
    reference: str
    error: float
    tolerance: float
    unit: str = "abs"

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)


@dataclass(frozen=True)
class ReportData:
    derivation: Any
    options: ReportOptions
    series: Outcome
    decay: Outcome
    eoc: Outcome
    spectrum: Outcome
    checks: tuple[Check, ...]
    skipped_checks: tuple[tuple[str, str], ...]
    timings: tuple[tuple[str, float], ...] = field(default=())


def _run(name: str, seconds: float, fn, *args) -> Outcome:
    t0 = time.perf_counter()
    try:
        with time_limit(seconds, name):
            value, route = fn(*args)
        return Outcome(value, route, time.perf_counter() - t0)
    except DerivationTimeout as exc:
        return Outcome(None, "", time.perf_counter() - t0, f"exceeded the time bound ({exc})")
    except NtksymError as exc:
        return Outcome(None, "", time.perf_counter() - t0, str(exc).splitlines()[0])
    except (ArithmeticError, ValueError, TypeError) as exc:  # e.g. E[φ'²] = 0 for a step function: no EOC
        first = str(exc).splitlines()[0] if str(exc) else ""
        return Outcome(None, "", time.perf_counter() - t0, f"numerical failure ({type(exc).__name__}: {first})")


# ------------------------------------------------------------------ individual analyses

def _series(d, opts: ReportOptions):
    from ..series import DotProductNetwork, series_fft
    if d.dual.kdot_distributional:
        raise NtksymError("the NTK is infinite at ρ = 1 (Σ̇ has a Dirac part), so it has no convergent power series")
    net = d.network
    with np.errstate(all="ignore"):
        s = series_fft(d.activation, d.dual, DotProductNetwork(net.depth, net.sigma_w, net.sigma_b),
                       opts.series_order)
    if not np.all(np.isfinite(np.asarray(s.ntk, dtype=float))) or not np.isfinite(float(s.ntk_at_one)):
        raise NtksymError("the series overflowed: the kernel exceeds the float64 range at this depth and σ")
    return s, s.route


def _decay(d, series: Outcome):
    from ..series import fit_decay, predicted_ntk_decay
    if series.value is None:
        raise NtksymError("no power series")
    nngp_pred, ntk_pred, why = predicted_ntk_decay(d.activation)
    fits = {"nngp": fit_decay(series.value.nngp), "ntk": fit_decay(series.value.ntk)}
    return {"fits": fits, "predicted": {"nngp": nngp_pred, "ntk": ntk_pred}, "reason": why}, \
        "least-squares fits of log|κ_p| on the upper half of the resolved coefficients"


def _eoc(d):
    """Phase at the network's (σ_w, σ_b) and the EOC point (ntksym.eoc); every failure is a sentence."""
    from .. import eoc
    act, dual, net = d.activation, d.dual, d.network
    try:
        ph = eoc.phase(act, dual, net.sigma_w, net.sigma_b)
    except (ArithmeticError, TypeError) as exc:   # (NtksymError, a ValueError, passes through to _run)
        raise NtksymError("the signal-propagation quantities could not be evaluated numerically") from exc
    notes = [ph.note] if ph.note else []
    if len(ph.fixed_points) > 1:
        notes.append("fixed points of the variance map: " + "; ".join(p.describe() for p in ph.fixed_points))
    out = {"phase": ph, "edge": None, "edge_note": "", "cosine": None}

    def edge(sb):
        try:
            return eoc.edge_of_chaos(act, dual, sb), None
        except NtksymError as exc:
            return None, str(exc).splitlines()[0]
        except (ArithmeticError, TypeError):
            return None, "the edge of chaos could not be evaluated numerically"
    out["edge"], why = edge(net.sigma_b)
    if why:
        notes.append(why)
        if net.sigma_b != 0:
            out["edge"], why0 = edge(0)
            notes[-1] += "; shown for σ_b = 0 instead" if out["edge"] is not None else f"; at σ_b = 0: {why0}"
    out["edge_note"] = "; ".join(notes)
    if eoc.homogeneous_degree_one(act) and dual.khat is not None:
        out["cosine"] = eoc.cosine_map(act, dual)
    return out, ph.route


def _spectrum(d, opts: ReportOptions):
    from ..derivation import sphere_spectrum
    if d.dual.kdot_distributional:
        raise NtksymError("the NTK is infinite at ρ = 1, so Θ(⟨x, y⟩) is not a bounded kernel on the sphere")
    net = d.network
    s = sphere_spectrum(d.activation, net.depth, opts.sphere_dim, opts.sphere_kmax, net.sigma_w, net.sigma_b,
                        opts.sphere_digits)
    fh = sum(r == "Funk–Hecke quadrature" for r in s.routes)
    return s, (f"Gegenbauer projection of {s.n_terms} power-series coefficients at {opts.sphere_digits} digits "
               "(bound = series tail + round-off)"
               + (f", Funk–Hecke quadrature of the kernel for {fh} of the {len(s.routes)} eigenvalues "
                  "(bound = quadrature level difference + round-off)" if fh else "")
               + "; only digits certified by the bound are shown")


# ------------------------------------------------------------------ verification

def _check_hermite(d, opts):
    from ..gaussian.hermite import numeric_coefficients
    exact = [c for c in d.hermite.coefficients if c.exact is not None]
    if not exact:
        return None, "no exact Hermite coefficients to check"
    ref = numeric_coefficients(d.activation.mpmath_fn(), list(d.activation.breakpoints),
                               len(d.hermite.coefficients), opts.hermite_check_digits)
    with mpmath.workdps(opts.hermite_check_digits + 5):
        err = max(abs(c.value - ref[c.k][0]) for c in exact)
    return Check(f"Hermite μ_k, k < {len(d.hermite.coefficients)} (exact)",
                 f"mpmath Gauss–Legendre quadrature, {opts.hermite_check_digits} digits", float(err), 1e-20), None


def _dual_points():
    q1 = np.array([1.0, 1.0, 2.0, 0.5, 1.3, 1.3])
    q2 = np.array([1.0, 1.0, 0.7, 0.5, 0.4, 0.4])
    frac = np.array([0.3, -0.8, 0.6, 1.0, -1.0, 0.0])
    return q1, q2, frac * np.sqrt(q1 * q2)


def _check_dual(d):
    from ..gaussian.dual import polar_dual
    from ..kernels import kernel_functions
    act = d.activation
    if d.dual.kdot_distributional:
        return None, "Σ̇ is distributional (a Dirac part): no pointwise check"
    fns, route = kernel_functions(act, d.dual)
    q1, q2, c = _dual_points()
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
    if all(b == 0 for b in act.breakpoints):
        ref, how = polar_dual(phi, dphi, q1, q2, c, n_angle=40, n_radius=80), "polar Gauss–Legendre (40×80 per panel)"
    else:   # kinks away from 0: Gauss–Hermite across a kink converges like n^(-3/2), too slowly for a
        # reference; the graded rule split at the kinks with 12 nodes per panel instead of 7
        from ..gaussian.dual import graded_polar_dual
        ref = graded_polar_dual(phi, dphi, q1, q2, c, act.breakpoints, act.parity is not None, n=12)
        how = "graded polar Gauss–Legendre split at the kinks, 12 nodes per panel"
    got = fns(q1, q2, c)
    scale = 1.0 + np.abs(ref[0]) + np.abs(ref[1])
    err = float(np.max(np.abs(np.asarray(got) - np.asarray(ref)) / scale))
    tol = 1e-8
    return Check(f"Σ̂, Σ̇ by the engine's route ({route.split('(')[0].strip()})", how, err, tol, "rel"), None


def unit_pairs(rho):
    """x (1×2) and y (n×2) with |x|²/d = |y|²/d = 1 and x·y/d = ρ: the dot-product form on data."""
    rho = np.asarray(rho, dtype=float)
    x = np.array([[np.sqrt(2.0), 0.0]])
    y = np.stack([np.sqrt(2.0) * rho, np.sqrt(2.0) * np.sqrt(np.clip(1 - rho**2, 0, None))], axis=1)
    return x, y


def _check_series(d, series: Outcome):
    from ..derivation import kernel
    if series.value is None:
        return None, f"no power series ({series.skipped})"
    net = d.network
    rho = np.array([-0.5, 0.0, 0.5])
    nngp, ntk = kernel(d.activation, *unit_pairs(rho), net.depth, net.sigma_w, net.sigma_b)
    p = np.arange(len(series.value.ntk))
    powers = rho[:, None] ** p[None, :]
    sums = [powers @ np.asarray(series.value.nngp, dtype=float), powers @ np.asarray(series.value.ntk, dtype=float)]
    err = max(float(np.max(np.abs(s - k[0]) / np.abs(k[0]).max())) for s, k in zip(sums, (nngp, ntk)))
    return Check(f"Σ_p κ_p ρ^p, P = {len(p)}, at ρ = −0.5, 0, 0.5",
                 "the recursion on two unit vectors (x·y/d = ρ)", err, 1e-9, "rel"), None


def _check_monte_carlo(d, opts):
    from ..finite.empirical import monte_carlo_kernels
    if d.dual.kdot_distributional:
        return None, "φ' has Dirac parts, which a sampled network's gradient does not see"
    act, net = d.activation, d.network
    x = np.random.default_rng(opts.mc_seed).normal(size=(3, 6))
    x[2] = x[1]                                   # a repeated point: the diagonal and an exact duplicate
    nngp, ntk = d.kernel(x)
    mc = monte_carlo_kernels(act.numpy_fn(), act.numpy_fn(derivative=True), x, None, net.depth, opts.mc_width,
                             net.sigma_w, net.sigma_b, opts.mc_samples, opts.mc_seed,
                             parameterization=net.parameterization)
    rows = []
    for name, ref, mean, sem in (("NNGP", nngp, mc["nngp_mean"], mc["nngp_sem"]),
                                 ("NTK", ntk, mc["ntk_mean"], mc["ntk_sem"])):
        allowance = 2.0 * net.depth / opts.mc_width * np.abs(ref)
        excess = np.abs(mean - ref) / (5.0 * sem + allowance)
        rows.append(Check(f"{name} recursion, 3 points in R^6 (one repeated)",
                          f"mean of {opts.mc_samples} networks of width {opts.mc_width}",
                          float(np.max(excess)), 1.0, "|Δ|/(5 SEM + 2L/n |K|)"))
    return rows, None


def build(d, opts: ReportOptions | None = None) -> ReportData:
    """Run every analysis for the report of Derivation ``d``."""
    opts = opts or ReportOptions()
    t0 = time.perf_counter()
    wanted = set(opts.analyses)
    unknown = wanted - {"series", "eoc", "spectrum", "checks"}
    if unknown:
        raise NtksymError(f"unknown analysis {sorted(unknown)[0]!r} (series, eoc, spectrum, checks)")

    def run(key, name, fn, *args):
        if key not in wanted:
            return Outcome(None, "", 0.0, "not requested")
        return _run(name, opts.seconds, fn, *args)
    series = run("series", "power series", _series, d, opts)
    decay = run("series", "decay fit", _decay, d, series)
    eoc_out = run("eoc", "edge of chaos", _eoc, d)
    spectrum = run("spectrum", "sphere spectrum", _spectrum, d, opts)
    checks, skipped = [], []
    for name, fn, args in (("Hermite coefficients", _check_hermite, (d, opts)), ("dual kernels", _check_dual, (d,)),
                           ("power series", _check_series, (d, series)),
                           ("Monte Carlo", _check_monte_carlo, (d, opts))):
        if "checks" not in wanted:
            skipped.append((name, "not requested"))
            continue
        out = _run(f"check: {name}", opts.seconds, lambda f=fn, a=args: f(*a))
        value, why = out.value, out.skipped or out.route
        if value is None:
            skipped.append((name, why))
        else:
            checks.extend(value if isinstance(value, list) else [value])
    timings = (("power series", series.seconds), ("edge of chaos", eoc_out.seconds),
               ("sphere spectrum", spectrum.seconds), ("analyses in all", time.perf_counter() - t0))
    return ReportData(d, opts, series, decay, eoc_out, spectrum, tuple(checks), tuple(skipped), timings)
