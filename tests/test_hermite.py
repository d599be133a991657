"""Hermite coefficients: engine (exact rules and numeric route) against
independent mpmath quadrature and against literature closed forms.

Tolerances: exact values are exact, so the only error is the reference
quadrature's, which runs at 30 digits: |engine − reference| ≤ 1e-20 is two
orders of magnitude above that error and fifteen below any real mistake.
"""
import mpmath
import pytest
import sympy as sp

import ntksym
from ntksym.gaussian.kform import K
from reference import hermite_ref

ORDER = 10
CATALOGUE = sorted(ntksym.CATALOGUE) + ["hermite3", "monomial4"]
EXACT_EXPECTED = {"relu", "leaky_relu", "abrelu", "abs", "sign", "step", "identity", "erf", "gelu", "elu",
                  "selu", "sin", "cos", "exp", "gaussian", "hermite3", "monomial4"}


@pytest.fixture(scope="module")
def series():
    return {name: ntksym.hermite(name, ORDER, digits=25) for name in CATALOGUE}


@pytest.mark.parametrize("name", CATALOGUE)
def test_catalogue_against_quadrature(series, name):
    act = ntksym.activation(name)
    fn = act.mpmath_fn()
    for c in series[name].coefficients:
        ref = hermite_ref(fn, c.k, act.breakpoints, dps=30)
        assert abs(c.value - ref) <= mpmath.mpf("1e-20"), (name, c.k, c.value, ref, c.route)


@pytest.mark.parametrize("name", sorted(EXACT_EXPECTED))
def test_exact_where_rules_apply(series, name):
    for c in series[name].coefficients:
        assert c.exact is not None, (name, c.k, c.route)
        assert c.route.startswith("exact")


def test_tanh_is_numeric_with_parity_zeros(series):
    coeffs = series["tanh"].coefficients
    assert all(c.exact == 0 for c in coeffs[0::2])
    assert all(c.exact is None and c.route.startswith("numeric") for c in coeffs[1::2])
    # FORMULAS.md §1 (12 digits): μ1, μ3, μ5
    for k, lit in [(1, "0.605705509602"), (3, "-0.148437190787"), (5, "0.0625475237527")]:
        assert abs(coeffs[k].value - mpmath.mpf(lit)) < 1e-12


def _relu_literature(k):
    if k == 0:
        return 1 / sp.sqrt(2 * sp.pi)
    if k == 1:
        return sp.Rational(1, 2)
    if k % 2:
        return 0
    return (-1)**(k // 2 - 1) * sp.factorial2(k - 3) / sp.sqrt(2 * sp.pi * sp.factorial(k))


def test_relu_exact_matches_literature(series):
    for c in series["relu"].coefficients:
        assert sp.simplify(c.exact - _relu_literature(c.k)) == 0


def test_erf_a_matches_literature():
    a = sp.Rational(3, 2)
    s = ntksym.hermite("erf", 8, params={"a": "1.5"})
    for c in s.coefficients:
        if c.k % 2 == 0:
            assert c.exact == 0
            continue
        j = (c.k - 1) // 2
        lit = (2 * a / sp.sqrt(sp.pi * (1 + 2 * a**2)) * (-a**2 / (1 + 2 * a**2))**j
               * sp.factorial(2 * j) / (sp.factorial(j) * sp.sqrt(sp.factorial(2 * j + 1))))
        assert sp.simplify(c.exact - lit) == 0


def test_exp_sin_cos_literature():
    for name, f in [("exp", lambda k: sp.exp(sp.Rational(1, 2)) / sp.sqrt(sp.factorial(k))),
                    ("sin", lambda k: 0 if k % 2 == 0 else (-1)**((k - 1) // 2) * sp.exp(-sp.Rational(1, 2))
                     / sp.sqrt(sp.factorial(k))),
                    ("cos", lambda k: 0 if k % 2 else (-1)**(k // 2) * sp.exp(-sp.Rational(1, 2))
                     / sp.sqrt(sp.factorial(k)))]:
        for c in ntksym.hermite(name, 8).coefficients:
            assert sp.simplify(c.exact - f(c.k)) == 0, (name, c.k)


@pytest.mark.parametrize("name", ["relu", "abs", "step", "sign", "leaky_relu", "abrelu"])
def test_closed_form_in_k(series, name):
    s = series[name]
    assert s.closed_form is not None
    for c in s.coefficients[s.closed_form_from:]:
        val = s.closed_form.subs(K, c.k)
        assert sp.simplify(val - c.exact) == 0, (name, c.k)


def test_parameters_stay_exact():
    s = ntksym.hermite("a*x + b*Abs(x)", 6, params={"a": 0.3, "b": "0.7"})
    assert s.coefficients[1].exact == sp.Rational(3, 10)
    assert sp.simplify(s.coefficients[0].exact - sp.Rational(7, 10) * sp.sqrt(2 / sp.pi)) == 0


def test_digits_and_high_order_numeric():
    s = ntksym.hermite("tanh", 20, digits=30)
    ref = hermite_ref(ntksym.activation("tanh").mpmath_fn(), 19, dps=40)
    assert abs(s.coefficients[19].value - ref) < mpmath.mpf("1e-30")


def test_sympy_expression_input():
    x = sp.Symbol("t")
    s = ntksym.hermite(sp.Max(x, 0), 3)
    assert s.coefficients[1].exact == sp.Rational(1, 2)
