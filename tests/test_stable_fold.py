"""Stable numeric fold of the NNGP/NTK recursion (issue 12, items 1, 2 and the He(4,x) part of 5).

The reference is independent of the engine's float and mpmath paths: the same recursion evaluated
in mpmath at 40 digits (plus two digits per decade of the largest variance, so that the closed forms'
cancellations at huge q cost nothing), with the closed forms as SymPy expressions lambdified to mpmath
(the raw forms of :func:`ntksym.dual_kernels`, not the engine's rewritten ones), exact Gram entries
(``mpmath.fdot``) and exact ties for repeated rows (they take the row's diagonal value).
"""
from __future__ import annotations

import functools
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import ntksym
from ntksym.gaussian.dual import C, Q1, Q2
from ntksym.network import KernelOverflowWarning

FMAX = float(np.finfo(float).max)
SIGMAS = [(1.0, 0.0), (1.5, 0.1), (2.0, 0.5), (3.0, 1.0)]
DEPTHS = (1, 3, 10, 50)
ACTS = ["relu", "leaky_relu", "erf", "gelu", "gaussian", "sqrt(2)*sin(sqrt(2)*x + pi/4)", "sin(2*x)+0.3*x",
        "He(4,x)"]


@functools.lru_cache(maxsize=None)
def _mp_forms(act: str):
    d = ntksym.dual_kernels(act)
    return [sp.lambdify((Q1, Q2, C), e, modules="mpmath") for e in (d.khat, d.kdot)]


def _data(huge: bool = True, tiny: bool = True) -> np.ndarray:
    rng = np.random.default_rng(12)
    u = rng.standard_normal((3, 4))
    u *= 2.0 / np.linalg.norm(u, axis=1, keepdims=True)        # |x|²/d = 1
    rows = [u[0], u[1], u[2], u[0], -u[1]]                     # a repeated and an antipodal row
    if tiny:
        rows.append(1e-150 * u[2])
    if huge:
        rows.append(1e150 * u[1] + 0.5e150 * u[2])   # not nearly parallel to a row: ρ ≈ 1 − 1e-5 in a critical
        # ReLU net (σ = (1, 0)) amplifies the rounding of ρ by 1/√(1 − ρ) per layer (NTK 1.5e-12 at depth 50)
    return np.array(rows)


def _reference(act: str, x: np.ndarray, depths, sw: float, sb: float):
    """{depth: (NNGP, NTK)} as mpmath matrices, by the plain recursion in mpmath."""
    fk, fd = _mp_forms(act)
    n, d = x.shape
    canon = [tuple(r) for r in x]
    sw2, sb2 = mpmath.mpf(sw) ** 2, mpmath.mpf(sb) ** 2
    big = max(1.0, max(abs(math.log10(abs(v))) for v in x.ravel() if v != 0))
    out = {}
    with mpmath.workdps(int(40 + 4 * big)):
        xm = [[mpmath.mpf(float(t)) for t in r] for r in x]
        g = [[mpmath.fdot(xm[i], xm[j]) for j in range(n)] for i in range(n)]
        sig = [[sw2 * g[i][j] / d + sb2 for j in range(n)] for i in range(n)]
        th = [row[:] for row in sig]

        def ev(f, a, b, c):
            return mpmath.re(f(a, b, c))

        for layer in range(1, max(depths) + 1):
            q = [sig[i][i] for i in range(n)]
            diag = [(ev(fk, q[i], q[i], q[i]), ev(fd, q[i], q[i], q[i])) for i in range(n)]
            new_sig = [[None] * n for _ in range(n)]
            new_th = [[None] * n for _ in range(n)]
            for i in range(n):
                for j in range(i, n):
                    if canon[i] == canon[j]:
                        kh, kd = diag[i]
                    else:
                        b = mpmath.sqrt(q[i] * q[j])
                        c = max(-b, min(b, sig[i][j]))
                        kh, kd = ev(fk, q[i], q[j], c), ev(fd, q[i], q[j], c)
                    s = sw2 * kh + sb2
                    t = s + (0 if kd == 0 else sw2 * kd * th[i][j])
                    new_sig[i][j] = new_sig[j][i] = s
                    new_th[i][j] = new_th[j][i] = t
            sig, th = new_sig, new_th
            if layer in depths:
                out[layer] = (sig, th)
    return out


def _check(got: np.ndarray, ref, what: str, rtol: float = 1e-12, atol_scale: float = 1e-13):
    n = got.shape[0]
    assert not np.isnan(got).any(), f"{what}: NaN"
    for i in range(n):
        for j in range(n):
            r = ref[i][j]
            if abs(r) > FMAX:
                assert got[i, j] == (math.inf if r > 0 else -math.inf), f"{what}[{i},{j}]: {got[i, j]} vs {r}"
                continue
            assert np.isfinite(got[i, j]), f"{what}[{i},{j}]: {got[i, j]} where the truth is {mpmath.nstr(r, 8)}"
            scale = min(mpmath.sqrt(abs(ref[i][i] * ref[j][j])), FMAX)
            err = abs(mpmath.mpf(float(got[i, j])) - r)
            tol = rtol * abs(r) + atol_scale * scale + mpmath.mpf(2) ** -1074
            assert err <= tol, f"{what}[{i},{j}]: {got[i, j]!r} vs {mpmath.nstr(r, 17)} (error {mpmath.nstr(err, 3)})"


def _run_grid(act, sigma, depths, huge=True, tiny=True):
    x = _data(huge, tiny)
    ref = _reference(act, x, depths, *sigma)
    for depth in depths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KernelOverflowWarning)
            with np.errstate(all="raise"):       # no NumPy warnings either
                nngp, ntk = ntksym.kernel(act, x, depth=depth, sigma_w=sigma[0], sigma_b=sigma[1])
        _check(nngp, ref[depth][0], f"{act} σ={sigma} depth {depth} NNGP")
        _check(ntk, ref[depth][1], f"{act} σ={sigma} depth {depth} NTK")
        n = x.shape[0]
        assert np.array_equal(nngp[0], nngp[3]) and nngp[0, 3] == nngp[0, 0], "repeated rows must stay tied"
        if sigma[1] == 0 and act in ("erf", "sin(2*x)+0.3*x"):
            assert nngp[1, 4] == -nngp[1, 1], "antipodal rows of an odd activation stay antipodal at σ_b = 0"
        assert nngp.shape == (n, n)


FAST = [("relu", (2.0, 0.5), (1, 3, 10)), ("erf", (3.0, 1.0), (1, 3, 10)), ("gelu", (1.5, 0.1), (1, 3)),
        ("gaussian", (1.0, 0.0), (1, 3, 10)), ("sqrt(2)*sin(sqrt(2)*x + pi/4)", (2.0, 0.5), (1, 3)),
        ("sin(2*x)+0.3*x", (1.5, 0.1), (1, 3)), ("He(4,x)", (1.5, 0.1), (1, 3))]


@pytest.mark.parametrize("act,sigma,depths", FAST)
def test_grid_fast(act, sigma, depths):
    """A default subset of the grid; the whole grid is ``python -m pytest -m trust tests/test_stable_fold.py``."""
    _run_grid(act, sigma, depths)


@pytest.mark.trust
@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("act", ACTS)
def test_grid_full(act, sigma):
    _run_grid(act, sigma, DEPTHS)


# ------------------------------------------------------------------ reproductions of issue 12


def test_diagonal_drift_sin_type():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    nngp, _ = ntksym.kernel("sqrt(2)*sin(sqrt(2)*x + pi/4)", x, depth=10, sigma_w=2.0, sigma_b=0.5)
    assert np.all(np.diag(nngp) == 4.25)
    cross, _ = ntksym.kernel("sqrt(2)*sin(sqrt(2)*x + pi/4)", x, x[[3, 1]], depth=10, sigma_w=2.0, sigma_b=0.5)
    assert cross[3, 0] == 4.25 and cross[1, 1] == 4.25


def test_repeated_rows_chaotic_erf():
    x = np.ones((2, 3))
    nngp, ntk = ntksym.kernel("erf", x, depth=200, sigma_w=1.4142135623730951)
    assert np.all(nngp == nngp[0, 0]) and abs(nngp[0, 0] - 0.8807506) < 1e-6
    assert np.all(np.isfinite(ntk))
    with pytest.warns(KernelOverflowWarning, match="NTK"):   # Θ grows like χ₁^L ≈ 2.15^L: beyond float64
        nngp, ntk = ntksym.kernel("erf", x, depth=1000, sigma_w=3.0)
    assert np.all(nngp == nngp[0, 0]) and abs(nngp[0, 0] - 6.87862) < 1e-5
    assert np.all(ntk == math.inf)


def test_relu_large_sigma_no_nan():
    x = np.eye(3) * np.sqrt(3)                                  # |x|²/d = 1, so Σ⁽⁰⁾ = σ_w² = 100
    nngp, ntk = ntksym.kernel("relu", x, depth=100, sigma_w=10.0)
    q = 100 * mpmath.mpf(50) ** 100                             # Σ⁽ˡ⁾ = 50 Σ⁽ˡ⁻¹⁾ on the diagonal
    assert abs(nngp[0, 0] / float(q) - 1) < 1e-13
    assert abs(ntk[0, 0] / float(101 * q) - 1) < 1e-13           # Θ⁽ᴸ⁾ = (L + 1) Σ⁽ᴸ⁾ on the diagonal
    assert np.all(np.isfinite(ntk))


def test_zero_variance_rows():
    x = np.array([[0.0, 0.0], [1.0, 0.5], [0.0, 0.0]])
    for act in ("relu", "erf", "gelu", "gaussian"):
        nngp, ntk = ntksym.kernel(act, x, depth=3, sigma_w=1.5, sigma_b=0.0)
        assert not np.isnan(nngp).any() and not np.isnan(ntk).any(), act
        assert nngp[0, 2] == nngp[0, 0]
    nngp, ntk = ntksym.kernel("relu", x, depth=3, sigma_w=1.5, sigma_b=0.0)
    assert nngp[0, 0] == 0 and nngp[0, 1] == 0 and ntk[0, 1] == 0


def test_polynomial_true_overflow_warns_once():
    x = np.random.default_rng(1).standard_normal((3, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nngp, ntk = ntksym.kernel("He(4,x)", x, depth=5)
    ref = _reference("He(4,x)", x, (5,), 1.0, 0.0)[5]
    assert all(abs(v) > FMAX for row in ref[0] for v in row)  # every true value is beyond float64
    _check(nngp, ref[0], "He4 NNGP")
    _check(ntk, ref[1], "He4 NTK")
    assert [w.category for w in caught] == [KernelOverflowWarning]
    assert "layer" in str(caught[0].message)
