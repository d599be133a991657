"""The trust grid (issue 12): every catalogue activation × σ ∈ {(1, 0), (1.5, 0.1), (2, 0.5), (3, 1)}
× depth ∈ {1, 3, 10, 50} × data with a repeated row, an antipodal pair, a tiny-norm and a huge-norm
row, against the independent references of tests/reference.py.

At every grid point ``ntksym.kernel`` either refuses (AccuracyError) or returns NNGP and NTK whose
every entry is within the route's tolerance of the exact recursion on the same float data:
relative 1e-12 for closed forms, KERNEL_RTOL = 1e-6 for quadrature routes (absolute below the
smallest normal float); no NaN; inf only where the exact value is beyond float64.

The default run checks a fast subset (depth ≤ 10); the whole grid is marked ``trust``
(``python -m pytest -m trust``, run by .ci/run).
"""
from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import sympy

import ntksym
from ntksym.errors import AccuracyError
from reference import (CLOSED_FORM_NAMES, FLOAT_MAX, NUMERIC_ACTIVATIONS, OVER, RELU_LIKE_FLOOR, UNKNOWN, closed_pair,
                       closed_phi, gl_expect1, gl_expect2, grid_conditioning, grid_reference)

CLOSED_RTOL = 1e-12
NUMERIC_RTOL = 1e-6          # KERNEL_RTOL of ntksym/kernels.py: what a quadrature route promises
SMALLEST_NORMAL = np.finfo(float).tiny

SIGMAS = ((1.0, 0.0), (1.5, 0.1), (2.0, 0.5), (3.0, 1.0))
DEPTHS = (1, 3, 10, 50)
GRID_ACTIVATIONS = tuple(sorted(ntksym.CATALOGUE)) + ("hermite3", "monomial2")

D = 4
G1 = (0.3, -1.2, 0.7, 1.1)
G2 = (1.4, 0.2, -0.5, 0.9)
TINY = (0.9e-6, 1.1e-6, -1.0e-6, 1.0e-6)          # norm ≈ 1e-6·√d
HUGE_DIR = (1.3, -0.6, 0.8, 1.2)                  # times 1e150 (closed forms) or 1e3 (quadrature)
# (no two rows are nearly orthogonal: cosines 0.18–0.82 in absolute value, so that no entry of the
# first Gram is a cancellation the float data cannot resolve)
ROW_NAMES = ("g1", "g1(repeat)", "-g1(antipode)", "g2", "tiny", "huge")


def grid_rows(name: str) -> np.ndarray:
    huge = 1e3 if name in NUMERIC_ACTIVATIONS else 1e150
    return np.array([G1, G1, [-t for t in G1], G2, TINY, [huge * t for t in HUGE_DIR]], dtype=float)


@functools.lru_cache(maxsize=None)
def reference(name: str, sigma_w: float, sigma_b: float, depth: int):
    """The exact recursion at depths 1..depth (depth 50 holds 1, 3 and 10 as prefixes)."""
    return grid_reference(name, grid_rows(name), depth, sigma_w, sigma_b)


@functools.lru_cache(maxsize=None)
def conditioning(name: str, sigma_w: float, sigma_b: float, depth: int):
    """Conditioning floors (closed forms only: the quadrature routes' 1e-6 dwarfs them)."""
    return grid_conditioning(name, grid_rows(name), depth, sigma_w, sigma_b)


@functools.lru_cache(maxsize=None)
def route_tolerance(name: str) -> float:
    dual = ntksym.dual_kernels(name)
    return CLOSED_RTOL if dual.khat is not None and dual.kdot is not None else NUMERIC_RTOL


CONDITION_FACTOR = 4   # times the conditioning floor of tests/reference.py::grid_conditioning


def judge(got: float, want, rtol: float, floor: float = 0.0) -> str | None:
    """None when ``got`` is a faithful float64 for the exact ``want``, else what is wrong.

    Allowed: rtol·|want| plus CONDITION_FACTOR × ``floor`` (how far the exact result moves under a
    4-ulp perturbation of the data's Gram: what no float64 evaluation can beat), and never less than
    the smallest normal float (absolute, below the normal range)."""
    if want is OVER:
        return None if math.isinf(got) else f"got {got!r}, want ±inf (the exact value is astronomically large)"
    if want is UNKNOWN:   # downstream of an astronomically large entry: only NaN is certainly wrong
        return "NaN (the exact value is a real number)" if math.isnan(got) else None
    want = mpmath.mpf(want)
    if math.isnan(got):
        return f"NaN, want {mpmath.nstr(want, 8)}"
    if abs(want) > FLOAT_MAX:
        if math.isinf(got) and (got > 0) == (want > 0):
            return None
        return f"got {got!r}, want {'+' if want > 0 else '-'}inf (exact {mpmath.nstr(want, 5)})"
    if math.isinf(got):
        return f"inf, want {mpmath.nstr(want, 8)}"
    err = abs(mpmath.mpf(got) - want)
    if err <= max(rtol * abs(want) + CONDITION_FACTOR * floor, SMALLEST_NORMAL):
        return None
    cond = f", conditioning floor {floor / float(abs(want)):.1e}" if floor and want else ""
    return f"got {got!r}, want {mpmath.nstr(want, 17)} (rel err {float(err / abs(want)) if want else math.inf:.1e}{cond})"


def grid_problems(name: str, sigma_w: float, sigma_b: float, depths=DEPTHS):
    """(problems, refused depths) at one (activation, σ) over ``depths``."""
    ref_depth = max(DEPTHS) if max(depths) > 10 else 10
    ref = reference(name, sigma_w, sigma_b, ref_depth)
    rtol = route_tolerance(name)
    closed = name not in NUMERIC_ACTIVATIONS
    floors = conditioning(name, sigma_w, sigma_b, ref_depth) if closed else None
    x = grid_rows(name)
    problems, refused = [], []
    for depth in depths:
        try:
            nngp, ntk = ntksym.kernel(name, x, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b)
        except AccuracyError:
            refused.append(depth)
            continue
        for k, kind, got in ((0, "NNGP", nngp), (1, "NTK", ntk)):
            want = ref[depth - 1][k]
            assert got.shape == (6, 6) and got.dtype == np.float64
            for i in range(6):
                for j in range(i, 6):
                    floor = floors[depth - 1][k][i, j] if closed else 0.0
                    bad = judge(float(got[i, j]), want[i, j], rtol, floor)
                    if bad:
                        problems.append(f"{name} σ=({sigma_w:g},{sigma_b:g}) depth {depth} {kind}"
                                        f"[{ROW_NAMES[i]},{ROW_NAMES[j]}]: {bad}")
    return problems, refused


def _assert_grid(name, sigma_w, sigma_b, depths):
    problems, _ = grid_problems(name, sigma_w, sigma_b, depths)
    assert not problems, f"{len(problems)} wrong entries:\n" + "\n".join(problems[:40])


# ------------------------------------------------------------------ the grid

FAST = [(name, s) for name in ("relu", "leaky_relu", "erf", "sign", "gaussian", "sin", "exp") for s in SIGMAS] + \
       [("tanh", SIGMAS[1]), ("softplus", SIGMAS[2])]


@pytest.mark.parametrize("name,sigma", FAST, ids=[f"{n}-{s[0]:g},{s[1]:g}" for n, s in FAST])
def test_trust_grid_fast(name, sigma):
    _assert_grid(name, *sigma, depths=(1, 3, 10))


# Quadrature routes at σ_w ≥ 2 reach variances up to ~1e30 by depth 50, where today's numeric route
# takes minutes per configuration (issue 13 makes it fast): those depth-50 points are marked slow
# (run by hand: python -m pytest -m slow tests/test_trust_grid.py); everything else is in `trust`.
def _long(name, sigma) -> bool:
    return name in NUMERIC_ACTIVATIONS and sigma[0] >= 2


FULL = [(name, s) for name in GRID_ACTIVATIONS for s in SIGMAS]
LONG = [(name, s) for name, s in FULL if _long(name, s)]


@pytest.mark.trust
@pytest.mark.parametrize("name,sigma", FULL, ids=[f"{n}-{s[0]:g},{s[1]:g}" for n, s in FULL])
def test_trust_grid_full(name, sigma):
    _assert_grid(name, *sigma, depths=(1, 3, 10) if _long(name, sigma) else DEPTHS)


@pytest.mark.slow
@pytest.mark.parametrize("name,sigma", LONG, ids=[f"{n}-{s[0]:g},{s[1]:g}" for n, s in LONG])
def test_trust_grid_depth50_numeric_large_sigma(name, sigma):
    _assert_grid(name, *sigma, depths=(50,))


def test_grid_covers_the_catalogue():
    names = set(GRID_ACTIVATIONS)
    assert set(ntksym.CATALOGUE) <= names
    assert set(NUMERIC_ACTIVATIONS) | set(CLOSED_FORM_NAMES) == set(ntksym.CATALOGUE)


def test_judge_is_strict():
    """The comparison itself: NaN, a spurious inf, a finite value where the truth overflows and a
    relative error above the tolerance are all caught."""
    assert judge(1.0, mpmath.mpf(1) + mpmath.mpf("1e-14"), 1e-12) is None
    assert "rel err" in judge(1.0 + 1e-11, 1, 1e-12)
    assert "NaN" in judge(float("nan"), 2, 1e-6)
    assert "inf" in judge(float("inf"), 2, 1e-6)
    assert judge(float("inf"), mpmath.mpf("1e400"), 1e-6) is None
    assert judge(float("-inf"), mpmath.mpf("1e400"), 1e-6) is not None
    assert judge(1e308, mpmath.mpf("1e400"), 1e-6) is not None
    assert judge(float("-inf"), OVER, 1e-6) is None and judge(1.0, OVER, 1e-6) is not None
    assert judge(0.0, UNKNOWN, 1e-6) is None and judge(float("nan"), UNKNOWN, 1e-6) is not None
    assert judge(0.0, mpmath.mpf("1e-310"), 1e-12) is None      # below the normal range: absolute
    assert judge(1.0 + 1e-10, 1, 1e-12, floor=1e-10) is None       # an ill-conditioned entry
    assert judge(1.0 + 1e-9, 1, 1e-12, floor=1e-11) is not None


def test_conditioning_floor_finds_an_ill_conditioned_entry():
    """The floor is at rounding level for well-conditioned entries and large where the exact result is
    sensitive to rounding of the data: ReLU's Σ̇ = (π − θ)/(2π) has slope 1/(2π sin θ) in ρ, so two
    rows at angle θ ≈ 1e-7 move the NTK entry by ≈ 1e-10 (relative) under a 4-ulp Gram perturbation."""
    x = np.array([G1, [t + 1e-7 * s for t, s in zip(G1, (1.0, 0.5, -0.25, 0.1))], G2])
    base = grid_reference("relu", x, 1, 1.0, 0.0)[-1]
    floors = grid_conditioning("relu", x, 1, 1.0, 0.0)[-1]
    rel = [[floors[k][i, j] / float(abs(base[k][i, j])) for i in range(3) for j in range(3)] for k in (0, 1)]
    assert max(rel[0]) < 1e-14                       # NNGP: well conditioned everywhere
    assert rel[1][1] > 1e-12 and rel[1][2] < 1e-14   # NTK[0,1] (near-parallel) is not; NTK[0,2] is


# ------------------------------------------------------------------ the reference, checked

@pytest.mark.parametrize("name", sorted(NUMERIC_ACTIVATIONS))
def test_numeric_reference_activations_are_the_catalogue_ones(name):
    """φ and φ' of the float64 reference against the catalogue's expression in 30-digit mpmath
    (φ' by numerical differentiation of that expression, away from the kink at 0)."""
    act = ntksym.activation(name)
    f = sympy.lambdify(act.x, act.concrete, "mpmath")
    phi, dphi = NUMERIC_ACTIVATIONS[name]
    pts = [-700.0, -40.0, -5.0, -1.3, -0.2, -1e-7, 1e-7, 0.3, 1.0, 4.0, 30.0, 700.0]
    with mpmath.workdps(40):
        for t in pts:
            want = f(mpmath.mpf(t))
            got = float(phi(np.array([t]))[0])
            assert abs(got - want) <= 4e-16 * abs(want) + 1e-300, (name, t, got, want)
            dwant = mpmath.diff(f, mpmath.mpf(t))
            dgot = float(dphi(np.array([t]))[0])
            assert abs(dgot - dwant) <= 1e-14 * abs(dwant) + 1e-300, (name, t, dgot, dwant)


@pytest.mark.parametrize("name", CLOSED_FORM_NAMES)
def test_closed_reference_activations_are_the_catalogue_ones(name):
    act = ntksym.activation(name)
    f = sympy.lambdify(act.x, act.concrete, "mpmath")
    phi = closed_phi(name)
    with mpmath.workdps(30):
        for t in (-3.1, -0.7, -1e-9, 1e-9, 0.4, 2.2):
            t = mpmath.mpf(t)
            assert abs(phi(t) - f(t)) <= mpmath.mpf(10) ** -25 * (1 + abs(f(t))), (name, t)


def _scipy_fns(name):
    from scipy.special import erf, ndtr
    relu = (lambda v: np.maximum(v, 0.0), lambda v: (v > 0).astype(float))
    return {
        "relu": relu,
        "abs": (np.abs, np.sign),
        "erf": (erf, lambda v: 2 / math.sqrt(math.pi) * np.exp(-v * v)),
        "gelu": (lambda v: v * ndtr(v), lambda v: ndtr(v) + v * np.exp(-v * v / 2) / math.sqrt(2 * math.pi)),
        "sin": (np.sin, np.cos),
        "cos": (np.cos, lambda v: -np.sin(v)),
        "exp": (np.exp, np.exp),
        "gaussian": (lambda v: np.exp(-v * v / 2), lambda v: -v * np.exp(-v * v / 2)),
        "sign": (np.sign, lambda v: 0.0 * v),
        "step": (lambda v: (v > 0).astype(float), lambda v: 0.0 * v),
    }[name]


TRIPLES = [(1.0, 1.0, 0.3), (1.0, 1.0, -1.0), (1.0, 1.0, 1.0), (0.7, 1.9, -0.8), (2.5, 0.4, 0.95),
           (1e-12, 1e-12, 0.5e-12), (1e-6, 3.0, 1e-3)]
WIDE = [(1e6, 2e6, 1.3e6), (1e12, 1e12, (1 - 1e-9) * 1e12), (1e20, 3e20, -1e20), (100.0, 100.0, 100 * (1 - 1e-12))]


@pytest.mark.parametrize("name", ["relu", "abs", "erf", "gelu", "sin", "cos", "exp", "gaussian", "sign", "step"])
def test_closed_forms_and_quadrature_agree(name):
    """Two independent references checked against each other: the mpmath closed forms (GELU: 1-D
    mpmath quadrature) and the float64 nested Gauss–Legendre, to 1e-9 (the float64 rule is good to
    ≈ 1e-10, four orders below the 1e-6 it is used to check), also at variances 1e±12,
    1e20 and correlations 1 − 1e-12 (not for the oscillating sin/cos there)."""
    f, df = _scipy_fns(name)
    cases = TRIPLES + ([] if name in ("sin", "cos", "exp") else WIDE)
    pair = closed_pair(name)
    for q1, q2, c in cases:
        with mpmath.workdps(30):
            want = pair(*(mpmath.mpf(v) for v in (q1, q2, c)))
            # Cauchy–Schwarz scale of the integrand: a cancelling integral is held to 1e-13 of it
            scale = [mpmath.sqrt(abs(a * b)) for a, b in zip(pair(*[mpmath.mpf(q1)] * 3), pair(*[mpmath.mpf(q2)] * 3))]
        got = gl_expect2([(f, f), (df, df)], q1, q2, c)
        for g, w, sc in zip(got, want, scale):
            w = float(w)
            assert abs(g - w) <= 1e-9 * abs(w) + 1e-13 * float(sc) + 1e-300, (name, q1, q2, c, g, w)


def test_gelu_reference_against_mpmath():
    """The GELU reference (split into one-signed parts, float64 outer rule) against the plain 30-digit
    mpmath quadrature of the same Stein-reduced integral, to 1e-14, including a 1e-42-variance row
    against a 1e285 one (where an unsplit float64 sum loses eight digits)."""
    fast, slow = closed_pair("gelu"), closed_pair("gelu-mpmath")
    extreme = (3.1712e-42, 1.8341e285, 9.4128856e-9 * math.sqrt(3.1712e-42 * 1.8341e285))
    for q1, q2, c in ((0.7, 1.9, -0.8), (1e6, 2e6, 1.3e6), extreme):
        with mpmath.workdps(30):
            args = [mpmath.mpf(v) for v in (q1, q2, c)]
            for a, b in zip(fast(*args), slow(*args)):
                assert abs(a - b) <= 1e-14 * abs(b), (q1, q2, c, a, b)


def test_known_values_of_the_closed_forms():
    """Pinned values from the literature: ReLU at unit variance k(0) = 1/(2π), k̇(0) = 1/4; erf
    k(1,1,1) = (2/π) asin(2/3); sign k(ρ) = (2/π) asin ρ with Σ̇ = 0 (the a.e. derivative)."""
    with mpmath.workdps(30):
        kh, kd = closed_pair("relu")(mpmath.mpf(1), mpmath.mpf(1), mpmath.mpf(0))
        assert abs(kh - 1 / (2 * mpmath.pi)) < 1e-28 and abs(kd - mpmath.mpf(1) / 4) < 1e-28
        kh, _ = closed_pair("erf")(mpmath.mpf(1), mpmath.mpf(1), mpmath.mpf(1))
        assert abs(kh - 2 / mpmath.pi * mpmath.asin(mpmath.mpf(2) / 3)) < 1e-28
        kh, kd = closed_pair("sign")(mpmath.mpf(2), mpmath.mpf(2), mpmath.mpf(1))
        assert abs(kh - mpmath.mpf(1) / 3) < 1e-28 and kd == 0


def test_relu_like_grading_floor_is_harmless():
    """Stopping the grading at 1e-9 for ReLU-like activations changes E[φφ], E[φ'φ'] by < 1e-9 even at
    variance 1e20 (softplus, SELU)."""
    for name in ("softplus", "selu"):
        phi, dphi = NUMERIC_ACTIVATIONS[name]
        for q1, q2, c in ((1e20, 3e20, 1e20), (1e8, 1e8, 0.999 * 1e8)):
            fine = gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c, 0.0)
            floored = gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c, RELU_LIKE_FLOOR)
            for a, b in zip(fine, floored):
                assert abs(a - b) <= 1e-9 * abs(a), (name, q1, a, b)
        one = gl_expect1([phi, dphi], 1e20, 0.0)
        assert all(abs(a - b) <= 1e-9 * abs(a) for a, b in zip(one, gl_expect1([phi, dphi], 1e20, RELU_LIKE_FLOOR)))


def test_numeric_reference_against_monte_carlo():
    """A last, crude, wholly independent check of the float64 quadrature: 4·10⁶ Gaussian samples."""
    rng = np.random.default_rng(12)
    q1, q2, c = 2.0, 0.7, -0.6
    z1, z2 = rng.standard_normal((2, 4_000_000))
    u = math.sqrt(q1) * z1
    v = c / math.sqrt(q1) * z1 + math.sqrt(q2 - c * c / q1) * z2
    for name in ("tanh", "selu"):
        phi, dphi = NUMERIC_ACTIVATIONS[name]
        got = gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c)
        for g, samples in zip(got, (phi(u) * phi(v), dphi(u) * dphi(v))):
            assert abs(g - samples.mean()) <= 5 * samples.std() / math.sqrt(samples.size)


def test_reference_recursion_closed_form_identities():
    """The reference recursion on its own: identity activation, σ_b = 0 gives Σ⁽ᴸ⁾ = σ_w^{2(L+1)} x·y/d and
    Θ⁽ᴸ⁾ = (L+1)Σ⁽ᴸ⁾; ReLU at σ_w² = 2 keeps the diagonal Σ(x,x) = 2|x|²/d and Θ(x,x) = (L+1)·that."""
    x = grid_rows("identity")
    ref = grid_reference("identity", x, 3, 1.5, 0.0)
    with mpmath.workdps(30):
        for depth in (1, 3):
            nngp, ntk = ref[depth - 1]
            for i in range(6):
                for j in range(6):
                    with mpmath.workprec(400):
                        dot = mpmath.fsum(mpmath.mpf(a) * mpmath.mpf(b) for a, b in zip(x[i], x[j])) / D
                    want = mpmath.mpf(1.5) ** (2 * (depth + 1)) * dot
                    assert abs(nngp[i, j] - want) <= 1e-25 * abs(want)
                    assert abs(ntk[i, j] - (depth + 1) * want) <= 1e-25 * abs(want)
    sw = math.sqrt(2.0)
    ref = grid_reference("relu", grid_rows("relu"), 5, sw, 0.0)
    nngp, ntk = ref[-1]
    with mpmath.workdps(30):
        for i in (0, 3, 4):
            norm2 = mpmath.fsum(mpmath.mpf(a) ** 2 for a in grid_rows("relu")[i]) / D
            r = mpmath.mpf(sw) ** 2 / 2      # Σ̇(x, x) = σ_w²/2 = r (1 + 2e-16 in float σ_w)
            q = r ** 5 * 2 * r * norm2       # Σ⁽⁵⁾ = r⁵ Σ⁽⁰⁾, Σ⁽⁰⁾ = σ_w²|x|²/d
            assert abs(nngp[i, i] - q) <= 1e-25 * q
            assert abs(ntk[i, i] - 6 * q) <= 1e-25 * q
