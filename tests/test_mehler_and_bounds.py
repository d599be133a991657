"""The Hermite-series representation, and the bounded-symbolic-work fallbacks."""
import mpmath
import pytest
import sympy as sp

import ntksym
import ntksym.gaussian.hermite as hermite_mod
from ntksym import C, Q1, Q2
from ntksym.gaussian.mehler import mehler_series
from reference import dual_ref


@pytest.mark.parametrize("name,rho", [("relu", 0.6), ("erf", -0.7), ("tanh", 0.9)])
def test_mehler_series_within_its_bound(name, rho):
    act = ntksym.activation(name)
    ms = mehler_series(act, 30)
    d = ntksym.dual_kernels(act)
    if d.khat is not None:
        exact = mpmath.mpf(sp.N(d.khat.subs({Q1: 1, Q2: 1, C: sp.nsimplify(rho)}), 25))
    else:
        f = act.mpmath_fn()
        exact = dual_ref(f, f, 1, 1, rho, dps=12)
    err = abs(ms.value(rho) - exact)
    assert err <= ms.tail_bound(rho) + 1e-11
    assert ms.tail_bound(rho) < 0.05  # a useful representation at this order


def test_parseval_mass_is_nonnegative():
    ms = mehler_series(ntksym.activation("relu"), 10)
    assert ms.second_moment == pytest.approx(0.5, abs=1e-15)  # E[relu(Z)²] = 1/2
    assert ms.tail_mass >= 0


def test_symbolic_timeout_falls_back_to_numeric(monkeypatch):
    """A symbolic step that runs out of time yields the numeric route, labelled."""
    import time
    real = hermite_mod.integrate_poly_times

    def slow(*a, **k):
        time.sleep(0.3)
        return real(*a, **k)
    monkeypatch.setattr(hermite_mod, "integrate_poly_times", slow)
    monkeypatch.setattr(hermite_mod, "STEP_SECONDS", 0.1)
    s = ntksym.hermite("erf", 4, digits=15)
    routes = [c.route for c in s.coefficients]
    assert any("timed out" in r or "exceeded" in r for r in routes), routes
    odd = s.coefficients[1]
    assert odd.exact is None and abs(odd.value - 2 / mpmath.sqrt(3 * mpmath.pi)) < 1e-14
