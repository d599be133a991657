"""Dual kernels: closed forms derived by the engine against 2-D mpmath
quadrature (tests/reference.py) at interior points and at c = ±√(q₁q₂).

Tolerance 1e-9 (relative to max(1, |value|)): for kinked activations the
reference runs at 12 digits in polar coordinates with the kinks on panel
edges (error ~1e-11); for smooth ones it is an 80×80 Gauss–Hermite rule at
25 digits (error ~1e-16 here).  Any wrong closed form is off by far more.
"""
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import ntksym
from ntksym import C, Q1, Q2
from ntksym.gaussian.dual import gauss_hermite_dual
from ntksym.kernels import compile_closed_form
from reference import dual_ref, dual_ref_smooth

POINTS = [(1.0, 1.0, 0.35), (0.7, 1.9, -0.8)]
EDGES = [(2.5, 0.4, 1.0), (0.6, 1.5, -math.sqrt(0.9))]
CLOSED = ["relu", "leaky_relu", "abrelu", "abs", "erf", "gelu", "sin", "cos", "exp", "gaussian",
          "hermite3", "monomial3", "identity"]
JUMPS = ["step", "sign"]


def _num(expr, q1, q2, c):
    with mpmath.workdps(30):
        return mpmath.mpf(sp.N(expr.subs({Q1: sp.nsimplify(q1), Q2: sp.nsimplify(q2), C: sp.nsimplify(c)}), 25))


def _reference(act, f, point):
    if act.breakpoints:
        return dual_ref(f, f, *point, dps=12)
    return dual_ref_smooth(f, f, *point)


def _derivative_fn(act):
    d = act.derivative
    return sp.lambdify(act.x, d, "mpmath")


@pytest.fixture(scope="module")
def duals():
    return {name: ntksym.dual_kernels(name) for name in CLOSED + JUMPS + ["tanh"]}


@pytest.fixture(scope="module")
def distributional():
    return {name: ntksym.dual_kernels(name, derivative="distributional") for name in JUMPS}


@pytest.mark.parametrize("name", CLOSED)
def test_closed_forms_exist(duals, name):
    d = duals[name]
    assert d.khat is not None and d.kdot is not None, d.route_hat
    assert d.route_hat.startswith("exact")


@pytest.mark.parametrize("name", CLOSED + JUMPS)
@pytest.mark.parametrize("point", POINTS + EDGES)
def test_khat_against_quadrature(duals, name, point):
    act = ntksym.activation(name)
    ref = _reference(act, act.mpmath_fn(), point)
    got = _num(duals[name].khat, *point)
    assert abs(got - ref) <= 1e-9 * max(1, abs(ref)), (name, point, got, ref)


@pytest.mark.parametrize("name", CLOSED)
@pytest.mark.parametrize("point", POINTS + EDGES[:1])
def test_kdot_against_quadrature(duals, name, point):
    act = ntksym.activation(name)
    ref = _reference(act, _derivative_fn(act), point)
    got = _num(duals[name].kdot, *point)
    assert abs(got - ref) <= 1e-9 * max(1, abs(ref)), (name, point, got, ref)


@pytest.mark.parametrize("name", JUMPS)
def test_distributional_kdot_is_price_derivative(distributional, duals, name):
    """With derivative="distributional" (no longer the default, issue 12) Σ̇ = E[δδ] for jumps; check it is
    ∂Σ̂/∂c (Price's theorem).  The default (almost-everywhere) Σ̇ of sign and step is 0."""
    assert duals[name].kdot == 0 and not duals[name].kdot_distributional
    d = distributional[name]
    assert d.kdot_distributional
    for q1, q2, c in POINTS:
        deriv = sp.diff(d.khat, C)
        assert abs(_num(deriv, q1, q2, c) - _num(d.kdot, q1, q2, c)) < 1e-20


def test_literature_forms(duals):
    """FORMULAS.md §2: arc-cosine and arcsine kernels."""
    q1, q2, c = 0.7, 1.9, 0.5
    rho = c / math.sqrt(q1 * q2)
    th = math.acos(rho)
    relu = math.sqrt(q1 * q2) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * math.cos(th))
    assert float(_num(duals["relu"].khat, q1, q2, c)) == pytest.approx(relu, rel=1e-14)
    assert float(_num(duals["relu"].kdot, q1, q2, c)) == pytest.approx((math.pi - th) / (2 * math.pi), rel=1e-14)
    erf = 2 / math.pi * math.asin(2 * c / math.sqrt((1 + 2 * q1) * (1 + 2 * q2)))
    assert float(_num(duals["erf"].khat, q1, q2, c)) == pytest.approx(erf, rel=1e-14)
    sin = math.exp(-(q1 + q2) / 2) * math.sinh(c)
    assert float(_num(duals["sin"].khat, q1, q2, c)) == pytest.approx(sin, rel=1e-14)


def test_tanh_falls_back_to_quadrature(duals):
    d = duals["tanh"]
    assert d.khat is None and "numeric" in d.route_hat
    act = ntksym.activation("tanh")
    khat, kdot = gauss_hermite_dual(act.numpy_fn(), act.numpy_fn(derivative=True), 0.7, 1.9, -0.8, order=64)
    ref = dual_ref(mpmath.tanh, mpmath.tanh, 0.7, 1.9, -0.8, dps=10)
    assert abs(float(khat) - float(ref)) < 1e-7  # GH(64) on an analytic integrand


def test_gauss_hermite_is_exact_for_polynomials():
    act = ntksym.activation("monomial3")
    d = ntksym.dual_kernels(act)
    q1, q2, c = np.array([0.5, 2.0]), np.array([1.5, 0.3]), np.array([0.2, -0.7])
    khat, kdot = gauss_hermite_dual(act.numpy_fn(), act.numpy_fn(derivative=True), q1, q2, c, order=8)
    np.testing.assert_allclose(khat, compile_closed_form(d.khat)(q1, q2, c), rtol=1e-12)
    np.testing.assert_allclose(kdot, compile_closed_form(d.kdot)(q1, q2, c), rtol=1e-12)


def test_compiled_closed_form_exact_on_diagonal():
    d = ntksym.dual_kernels("relu")
    f = compile_closed_form(d.khat)
    q = np.array([0.3, 1.0, 7.0])
    np.testing.assert_allclose(f(q, q, q), q / 2, rtol=1e-15)
