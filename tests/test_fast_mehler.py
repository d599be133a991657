"""The fast Mehler route (issue 13, items 3–4): per-row Hermite coefficients and the series on Gram blocks.

Independent references: mpmath quadrature of a_k(q) = E[φ(√qZ)h_k(Z)] with mpmath's own Hermite
polynomials (tanh-sinh, split at the activation's transition); closed-form dual kernels (erf, GELU,
cos, ReLU) evaluated in mpmath and used as if the activation had none (the route is called directly);
the full kernel through the closed form; and the previous numeric route on small n.  Asserted: the
actual error ≤ the stated bound (series: TOL·√(m₁m₂); repeated rows: TOL·m; fallback: its estimate)
at every grid point, and entries beyond the bound really go to the fallback.
"""
from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import ntksym
from ntksym.activation import make_activation
from ntksym.fastdual import TOL, FastDualKernels
from ntksym.gaussian.rowhermite import direct, row_hermite
from ntksym.kernels import ClosedFormKernels, NumericDualKernels, kernel_functions
from ntksym.network import Network, evaluate

QS = (1e-4, 0.1, 1.0, 10.0, 100.0)
RHOS = (-0.999, -0.9, -0.5, 0.0, 0.3, 0.9, 0.999, 1.0)


def _fast(name):
    act = make_activation(name)
    return FastDualKernels(act, NumericDualKernels(act))


def _mp_coefficient(f, q, k):
    """E[f(√q Z) h_k(Z)] by mpmath tanh-sinh, split at 0 and at the transition |z| = 1/√q."""
    with mp.workdps(22):
        s = mp.sqrt(mp.mpf(q))
        cuts = sorted({mp.mpf(0), 1 / s, -1 / s, 4 / s, -4 / s})
        cuts = [c for c in cuts if abs(c) < 20]
        he = lambda z: mp.hermite(k, z / mp.sqrt(2)) / mp.sqrt(2) ** k / mp.sqrt(mp.factorial(k))  # noqa: E731
        return mp.quad(lambda z: f(s * z) * he(z) * mp.npdf(z), [-mp.inf, *cuts, mp.inf])


@pytest.mark.parametrize("q", [1e-4, 1.0, 100.0, 1e4])
def test_row_coefficients_against_mpmath(q):
    act = make_activation("tanh")
    rh = direct(act.numpy_fn(), act.numpy_fn(derivative=True), np.array([q]))
    sech2 = lambda x: 1 / mp.cosh(x) ** 2  # noqa: E731
    for k in (0, 1, 2, 7, 20):
        for coef, f, err in ((rh.a, mp.tanh, rh.err_a), (rh.b, sech2, rh.err_b)):
            ref = float(_mp_coefficient(f, q, k))
            m = rh.m0[0] if f is mp.tanh else rh.m1[0]
            assert abs(coef[0, k] - ref) <= err[0, k] + 8 * np.finfo(float).eps * math.sqrt(m), (q, k)
    with mp.workdps(30):   # the mass E[tanh²(√q Z)]
        s = mp.sqrt(mp.mpf(q))
        m0 = mp.quad(lambda z: mp.tanh(s * z) ** 2 * mp.npdf(z), [-mp.inf, -1 / s, 0, 1 / s, mp.inf])
    assert abs(rh.m0[0] - float(m0)) <= rh.err_m0[0] + 8 * np.finfo(float).eps * float(m0)
    assert rh.m0e[0] < 1e-30    # tanh is odd: no even part


def test_interpolated_rows_match_direct_quadrature():
    """Many distinct variances go through Chebyshev interpolation in √q; its stated error holds."""
    act = make_activation("silu")
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
    q = np.random.default_rng(3).uniform(1.5, 3.5, 400)
    rh = row_hermite(phi, dphi, q)
    d = direct(phi, dphi, q[:25])
    for got, want, err in ((rh.a[:25], d.a, rh.err_a[:25]), (rh.b[:25], d.b, rh.err_b[:25])):
        actual = np.sqrt(np.cumsum((got - want) ** 2, axis=1))
        assert np.all(actual <= err + (err * 0 + d.err_a[:, :1].max()) + 1e-15)
    assert np.all(np.abs(rh.m0[:25] - d.m0) <= rh.err_m0[:25] + d.err_m0 + 1e-15 * d.m0)


def test_zero_variance_rows_are_exact():
    act = make_activation("softplus")
    rh = direct(act.numpy_fn(), act.numpy_fn(derivative=True), np.array([0.0]))
    assert rh.a[0, 0] == pytest.approx(math.log(2), abs=1e-16) and not rh.a[0, 1:].any()
    assert rh.b[0, 0] == 0.5 and rh.err_a[0, -1] == 0


def _closed_reference(name):
    d = ntksym.dual_kernels(name)
    return ClosedFormKernels(d.khat, d.kdot)


@pytest.mark.parametrize("name", ["erf", "gelu", "cos", "relu"])
def test_grid_against_closed_forms_used_as_numeric(name):
    """q₁, q₂ ∈ {1e-4, …, 100} × ρ ∈ {−0.999, …, 1}: every entry within its stated bound."""
    fns, ref = _fast(name), _closed_reference(name)
    qs = QS if name != "cos" else QS[:-1]   # cos(10 z) at q = 100: the accurate route refuses (est. 4e-3)
    q1, q2, rho = (a.ravel() for a in np.meshgrid(qs, qs, RHOS, indexing="ij"))
    c = rho * np.sqrt(q1) * np.sqrt(q2)
    hat, dot, route = fns.routes(q1, q2, c)
    rh = direct(fns.phi, fns.dphi, np.array(qs))
    m0 = dict(zip(qs, rh.m0))
    m1 = dict(zip(qs, rh.m1))
    for i in range(q1.size):
        want = [float(v) for v in ref.mp(mp.mpf(q1[i]), mp.mpf(q2[i]), mp.mpf(c[i]))]
        for got, w, m in ((hat[i], want[0], m0), (dot[i], want[1], m1)):
            scale = math.sqrt(m[q1[i]] * m[q2[i]])
            if route[i] == "series":
                bound = TOL * scale
            elif route[i] == "tie":
                bound = TOL * scale
            else:
                bound = max(fns.fallback.max_error, 1e-15) * max(1.0, abs(hat[i]), abs(dot[i]))
            assert abs(got - w) <= bound + 4e-16 * max(scale, abs(w)), (name, q1[i], q2[i], rho[i], route[i], got, w)
    assert np.mean(route == "series") >= 0.25   # the rest: large q or |ρ| near 1 (slow tails)


def test_entries_beyond_the_bound_go_to_the_fallback():
    """ELU's coefficients decay like k^(-5/4): near-parallel rows with different norms need the accurate route."""
    fns = _fast("elu")
    q1 = np.array([1.0, 1.0, 2.0, 2.0])
    q2 = np.array([1.0001, 1.0, 2.0, 0.5])
    c = np.array([0.99999, 0.2, -0.3, 0.999]) * np.sqrt(q1 * q2)
    hat, dot, route = fns.routes(q1, q2, c)
    assert list(route) == ["fallback", "series", "series", "fallback"]
    want, _ = NumericDualKernels(make_activation("elu"))(q1, q2, c)
    assert np.allclose(hat, want, rtol=1e-8, atol=1e-10)


def test_label_states_routes_and_counts():
    fns = _fast("tanh")
    x = np.random.default_rng(0).standard_normal((20, 4))
    x[1] = x[0] * (1 + 1e-9)          # near-duplicate: ρ ≈ 1 with different variances
    evaluate(fns, Network(2, 1.5, 0.1), x)
    text = fns.label()
    assert text.startswith("fast: Hermite (Mehler) series") and f"bound ≤ {TOL:.0e}" in text
    st = fns.stats
    assert st["series"] + st["ties"] + st["fallback"] == st["entries"] == 2 * 400 + 2 * 20
    assert st["fallback"] > 0 and f"{st['fallback']:,} by the accurate route" in text


def test_kernel_functions_picks_the_fast_route():
    act = make_activation("tanh")
    fns, label = kernel_functions(act, ntksym.dual_kernels(act))
    assert isinstance(fns, FastDualKernels) and label.startswith("fast: Hermite (Mehler) series")
    assert "est. error ≤" in label   # the accurate route's unit-variance check is stated too
    fns, label = kernel_functions(make_activation("erf"), ntksym.dual_kernels("erf"))
    assert label == "closed form"


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_full_kernel_of_erf_through_the_series_matches_the_closed_form(depth):
    """Per layer, the series entries are within 1e-13·√(m₁m₂) and the fallback entries (here: x₅ and −x₅
    at σ_b > 0, ρ ≈ −0.99) within its estimate; over depth the errors add up (the maps are contractions
    at σ_w = 1.5 for erf only in part, hence the factor 10 per layer)."""
    x = np.random.default_rng(1).standard_normal((30, 6))
    x[4] = x[3]
    x[6] = -x[5]
    net = Network(depth, 1.5, 0.1)
    fns = _fast("erf")
    s1, t1 = evaluate(fns, net, x)
    s2, t2 = evaluate(_closed_reference("erf"), net, x)
    tol = 10 * depth * max(TOL, fns.fallback.max_error)
    for a, b in ((s1, s2), (t1, t2)):
        scale = np.sqrt(np.outer(np.diag(b), np.diag(b)))
        assert np.max(np.abs(a - b) / scale) <= tol
    assert fns.stats["series"] + fns.stats["ties"] >= 0.9 * fns.stats["entries"]
    if fns.stats["fallback"] == 0:
        for a, b in ((s1, s2), (t1, t2)):
            assert np.max(np.abs(a - b) / np.sqrt(np.outer(np.diag(b), np.diag(b)))) <= 10 * depth * TOL


@pytest.mark.parametrize("name,depth", [("tanh", 1), ("tanh", 3), ("silu", 3), ("mish", 1), ("softplus", 10)])
def test_full_kernel_against_the_numeric_route(name, depth):
    x = np.random.default_rng(2).standard_normal((16 if depth < 10 else 6, 5))
    x[2] = x[1]
    net = Network(depth, 1.5, 0.1)
    act = make_activation(name)
    old = NumericDualKernels(act)
    fns = FastDualKernels(act, NumericDualKernels(act))
    s1, t1 = evaluate(fns, net, x)
    s2, t2 = evaluate(old, net, x)
    tol = 50 * max(old.max_error, 1e-12) * depth
    for a, b in ((s1, s2), (t1, t2)):
        scale = np.sqrt(np.outer(np.diag(b), np.diag(b)))
        assert np.max(np.abs(a - b) / scale) <= tol
    assert np.array_equal(s1[1], s1[2]) and np.array_equal(t1[1], t1[2])   # repeated rows stay exact


def test_hostile_rows_tiny_huge_zero_repeated_antipodal():
    """Norms 1e-6 and 1e3, a zero row (q = 0 at σ_b = 0), repeated and antipodal rows."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 3))
    x[1] *= 1e-6
    x[2] *= 1e3
    x[3] = 0.0
    x[4] = x[0]
    x[5] = -x[0]
    net = Network(3, 1.2, 0.0)
    act = make_activation("tanh")
    fns = FastDualKernels(act, NumericDualKernels(act))
    s1, t1 = evaluate(fns, net, x)
    s2, t2 = evaluate(NumericDualKernels(act), net, x)
    assert np.all(np.isfinite(s1)) and np.all(np.isfinite(t1))
    for a, b in ((s1, s2), (t1, t2)):
        scale = np.sqrt(np.outer(np.diag(b), np.diag(b))) + 1e-300
        assert np.max(np.abs(a - b) / np.maximum(scale, 1e-12 * np.max(scale))) <= 1e-6
    assert s1[3, 3] == 0 and np.all(s1[3] == 0)            # φ(0) = 0: a zero row stays zero
    assert s1[0, 4] == s1[0, 0] and s1[0, 5] == -s1[0, 0]    # exact ties (tanh is odd, σ_b = 0)


def test_symmetric_and_general_grids_agree():
    fns = _fast("silu")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 8))
    s1, t1 = evaluate(fns, Network(4, 1.5, 0.1), x)
    s2, t2 = evaluate(fns, Network(4, 1.5, 0.1), x, x.copy())
    assert np.allclose(s1, s2, rtol=1e-13, atol=0) and np.allclose(t1, t2, rtol=1e-13, atol=0)
    q = np.array([1.0, 2.0, 3.0])
    c = np.array([[1.0, 0.5, 0.2], [0.5, 2.0, 0.1], [0.2, 0.1, 3.0]])
    grid = fns(q[:, None], q[None, :], c)
    flat = fns(np.repeat(q, 3), np.tile(q, 3), c.ravel())
    for g, f in zip(grid, flat):
        assert np.allclose(g.ravel(), f, rtol=1e-14, atol=1e-15)
