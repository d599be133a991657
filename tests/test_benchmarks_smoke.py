"""The reference and the naive baseline of benchmarks/numeric_speed.py checked on their own (issue 13, item 5).

The benchmark's accuracy columns are only as good as its reference: a 30-digit mpmath recursion whose dual
kernels are, for activations without a closed form, a float64 2-D Gauss–Legendre rule.  Here that rule is
run on activations that do have closed forms (erf: smooth; ReLU: kinked at u = 0 and v = 0) and compared
with ntksym's closed forms, and with Monte Carlo for SELU; the float64 activations it integrates are
compared with ntksym's catalogue expressions; the naive Gauss–Hermite baseline converges to the closed form.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

import ntksym

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "numeric_speed.py"
_spec = importlib.util.spec_from_file_location("numeric_speed", _PATH)
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

SW, SB = 1.5, 0.1


def _rows():
    x = np.random.default_rng(3).normal(size=(5, 20))
    x[1] = x[0]                                   # a repeated row: c = q exactly at every depth
    x[4] = -x[0]                                  # an antipodal row: ρ = −1 at the input layer
    return x


PAIRS = [(0, 1), (0, 2), (2, 3), (0, 4)]


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_reference_quadrature_against_closed_forms(name):
    """The quadrature route of the reference at depth 2 against ntksym's closed forms (erf: Williams; ReLU:
    arc-cosine), to 1e-13 relative: an error here would show up in every accuracy column."""
    x = _rows()
    nngp, ntk, est = B.reference(name, x, PAIRS, depth=2, route="quadrature")
    k = ntksym.kernel(name, x, depth=2, sigma_w=SW, sigma_b=SB)
    i, j = np.array(PAIRS).T
    for got, want in ((nngp, k[0][i, j]), (ntk, k[1][i, j])):
        assert np.all(np.abs(got - want) <= 1e-13 * np.abs(want)), (name, got, want)
    assert 0 <= est <= 1e-13                      # the reported self-check is small, and reported
    if name == "erf":                             # the closed-form route of the reference agrees as well
        c_nngp, c_ntk, c_est = B.reference(name, x, PAIRS, depth=2, route="closed")
        assert c_est == 0
        assert np.all(np.abs(c_nngp - nngp) <= 1e-14 * np.abs(c_nngp))
        assert np.all(np.abs(c_ntk - ntk) <= 1e-14 * np.abs(c_ntk))


def test_reference_refuses_a_closed_form_it_does_not_have():
    with pytest.raises(ValueError):
        B.reference("tanh", _rows(), PAIRS, depth=1, route="closed")


def test_reference_wrong_activation_is_caught():
    """The comparison above can fail: the erf quadrature is far from the ReLU closed form."""
    x = _rows()
    nngp, _, _ = B.reference("erf", x, PAIRS, depth=2, route="quadrature")
    k = ntksym.kernel("relu", x, depth=2, sigma_w=SW, sigma_b=SB)
    i, j = np.array(PAIRS).T
    assert np.max(np.abs(nngp - k[0][i, j]) / np.abs(k[0][i, j])) > 1e-3


@pytest.mark.parametrize("name", ["tanh", "silu", "mish", "softplus", "elu", "selu"])
def test_float64_activations_match_the_catalogue(name):
    """φ and the a.e. φ' the benchmark integrates are ntksym's catalogue activations (40-digit SymPy values),
    to 1e-15 relative, on both sides of the kink and far out (φ' of SiLU and mish crosses 0 near −1.28:
    there 1e-16 absolute, the cancellation in φ' = σ(v)(1 + v·σ(−v)) that no float64 formula avoids)."""
    x = sp.Symbol("x", real=True)
    expr = ntksym.activation(name).concrete.subs({s: x for s in ntksym.activation(name).concrete.free_symbols})
    phi, dphi = B.PHI[name]
    pts = [-30.0, -5.0, -1.3, -0.2, -1e-3, 1e-3, 0.2, 1.3, 5.0, 30.0]
    for v in pts:
        want = float(sp.N(expr.subs(x, sp.Float(v, 50)), 40))
        dwant = float(sp.N(sp.diff(expr, x).subs(x, sp.Float(v, 50)), 40))
        got, dgot = float(phi(np.array(v))), float(dphi(np.array(v)))
        assert abs(got - want) <= 1e-15 * abs(want) + 1e-300, (name, v, got, want)
        assert abs(dgot - dwant) <= 2e-15 * abs(dwant) + 1e-16, (name, v, dgot, dwant)


def test_selu_quadrature_against_monte_carlo():
    """SELU (a jump of φ' at 0, where the split of the panels matters) against 2·10⁶ Gaussian samples."""
    q1, q2, c = 2.0, 0.7, -0.6
    z1, z2 = np.random.default_rng(7).standard_normal((2, 2_000_000))
    u = math.sqrt(q1) * z1
    v = c / math.sqrt(q1) * z1 + math.sqrt(q2 - c * c / q1) * z2
    phi, dphi = B.PHI["selu"]
    with mpmath.workdps(30):
        got = B.QuadratureDual("selu")(mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c))
    for g, samples in zip(got, (phi(u) * phi(v), dphi(u) * dphi(v))):
        assert abs(float(g) - samples.mean()) <= 5 * samples.std() / math.sqrt(samples.size)


def test_naive_gauss_hermite_baseline_converges_to_the_closed_form():
    """The naive baseline is a correct (if slowly converging) recursion: at degree 150 it matches erf's
    closed form to 1e-8, at its default degree 20 it is visibly off (which the benchmark reports)."""
    x = np.random.default_rng(1).normal(size=(4, 10))
    k = ntksym.kernel("erf", x, depth=2, sigma_w=SW, sigma_b=SB)
    s, t = B.gh_naive("erf", x, 2, 150)
    assert np.max(np.abs(s - k[0])) <= 1e-8 * np.max(np.abs(k[0]))
    assert np.max(np.abs(t - k[1])) <= 1e-8 * np.max(np.abs(k[1]))
    s20, t20 = B.gh_naive("erf", x, 2, 20)
    assert np.max(np.abs(t20 - k[1])) > 1e-6 * np.max(np.abs(k[1]))


@pytest.mark.slow
@pytest.mark.parametrize("unit", [False, True])
def test_reference_at_the_benchmark_depth(unit):
    """At depth 10 (the benchmark's), on general and unit-norm rows: the quadrature reference for erf against
    the reference's closed form, to 5e-15 relative (measured 1.4e-15), and for ReLU against ntksym's closed
    form, to 1e-14 (measured 1.3e-15).  ~1 min."""
    x = np.random.default_rng(0).normal(size=(12, 100))
    x[1], x[2] = x[0], -x[0]
    if unit:
        x = x / np.linalg.norm(x, axis=1, keepdims=True) * 10
    pairs = [(0, 1), (0, 2), (3, 4), (5, 6), (7, 8)]
    i, j = np.array(pairs).T
    n, t, _ = B.reference("erf", x, pairs, 10, route="quadrature")
    n2, t2, _ = B.reference("erf", x, pairs, 10, route="closed")
    assert np.max(np.abs(n / n2 - 1)) <= 5e-15 and np.max(np.abs(t / t2 - 1)) <= 5e-15
    n, t, _ = B.reference("relu", x, pairs, 10, route="quadrature")
    k = ntksym.kernel("relu", x, depth=10, sigma_w=SW, sigma_b=SB)
    assert np.max(np.abs(n / k[0][i, j] - 1)) <= 1e-14 and np.max(np.abs(t / k[1][i, j] - 1)) <= 1e-14
