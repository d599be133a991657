"""Property tests (hypothesis) over random parameters and polynomial activations.

Independent routes: a polynomial's Hermite coefficients by solving the
triangular change of basis to He_k (linear algebra, no integrals); Mehler's
formula Σ_k μ_k² ρ^k for the dual kernel at unit variances; the a·x + b·|x|
closed form of FORMULAS.md §2.  All comparisons are exact (SymPy zero tests).
"""
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ntksym
from ntksym import C, Q1, Q2

x = sp.Symbol("x", real=True)
small = st.integers(min_value=-5, max_value=5)
rational = st.fractions(min_value=-3, max_value=3, max_denominator=8)
SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def he_basis_coefficients(poly: sp.Expr, degree: int):
    """μ_k of a polynomial by the change of basis x^n → He_k (triangular solve)."""
    cs = sp.symbols(f"c0:{degree + 1}")
    combo = sum(c * sp.hermite_prob(k, x) / sp.sqrt(sp.factorial(k)) for k, c in enumerate(cs))
    eqs = sp.Poly(sp.expand(combo - poly), x).all_coeffs()
    sol = sp.solve(eqs, cs, dict=True)[0]
    return [sol.get(c, 0) for c in cs]


@settings(**SETTINGS)
@given(st.lists(small, min_size=1, max_size=5))
def test_polynomial_hermite_equals_change_of_basis(coeffs):
    poly = sum(c * x**i for i, c in enumerate(coeffs))
    if poly == 0:
        return
    text = " + ".join(f"({c})*x**{i}" for i, c in enumerate(coeffs))
    degree = len(coeffs) - 1
    series = ntksym.hermite(text, degree + 3)
    expected = he_basis_coefficients(sp.expand(poly), degree) + [0, 0, 0]
    for c, e in zip(series.coefficients, expected):
        assert sp.simplify(c.exact - e) == 0


@settings(**SETTINGS)
@given(st.lists(small, min_size=1, max_size=4))
def test_polynomial_dual_kernel_is_mehler(coeffs):
    text = " + ".join(f"({c})*x**{i}" for i, c in enumerate(coeffs))
    if all(c == 0 for c in coeffs):
        return
    degree = len(coeffs) - 1
    mus = [c.exact for c in ntksym.hermite(text, degree + 1).coefficients]
    rho = sp.Symbol("rho")
    mehler = sum(m**2 * rho**k for k, m in enumerate(mus))
    dual = ntksym.dual_kernels(text)
    assert sp.simplify(dual.khat.subs({Q1: 1, Q2: 1, C: rho}) - mehler) == 0
    # Σ̇ at unit variance: Σ k μ_k² ρ^{k−1} (Mehler for φ', via μ_k(φ') = √(k+1) μ_{k+1})
    dmehler = sum(k * m**2 * rho**(k - 1) for k, m in enumerate(mus) if k > 0)
    assert sp.simplify(dual.kdot.subs({Q1: 1, Q2: 1, C: rho}) - dmehler) == 0


@settings(**SETTINGS)
@given(rational, rational)
def test_abrelu_family_closed_form(a, b):
    a, b = sp.Rational(a.numerator, a.denominator), sp.Rational(b.numerator, b.denominator)
    dual = ntksym.dual_kernels("a*x + b*Abs(x)", {"a": str(a), "b": str(b)})
    s = sp.sqrt(Q1 * Q2)
    rho = C / s
    khat = a**2 * C + b**2 * 2 / sp.pi * s * (sp.sqrt(1 - rho**2) + rho * sp.asin(rho))
    kdot = a**2 + b**2 * 2 / sp.pi * sp.asin(rho)
    for q1, q2, c in [(1, 1, sp.Rational(1, 3)), (2, sp.Rational(1, 2), -sp.Rational(1, 2))]:
        at = {Q1: q1, Q2: q2, C: c}
        assert abs(sp.N((dual.khat - khat).subs(at), 30)) < 1e-25
        assert abs(sp.N((dual.kdot - kdot).subs(at), 30)) < 1e-25
    mus = ntksym.hermite("a*x + b*Abs(x)", 4, params={"a": str(a), "b": str(b)}).coefficients
    assert sp.simplify(mus[0].exact - b * sp.sqrt(2 / sp.pi)) == 0 and mus[1].exact == a
