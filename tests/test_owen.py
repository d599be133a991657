"""Issue 13, item 1: Owen's T / the bivariate normal CDF, and the closed forms of the half-line
exp-poly rule (ELU, SELU, CELU, custom exp-poly pieces), each against an independent reference."""
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from ntksym.activation import X
from ntksym.gaussian import halfline, owen
from ntksym.gaussian.dual import C, Q1, Q2, derive_dual
from ntksym.kernels import ClosedFormKernels
from reference import gl_expect2

H = [0.0, 1e-12, 1e-8, 1e-3, 0.01, 0.1, 0.3, 0.7, 0.99, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 35.0]
A = [-1e6, -30.0, -2.0, -1.0, -0.1, 0.0, 1e-3, 0.5, 0.99, 1.0, 1.01, 3.0, 30.0, 1e3, 1e8]


def _tbar_quad(h, a):
    """T̄(h, a) = ∫_{|h|}^∞ φ(u) Φ(−a u) du by composite Gauss–Legendre in mpmath (independent of the
    series used by owen.mp_owens_tbar): geometric panels from |h| on the integrand's own scale."""
    h, a = abs(mpmath.mpf(h)), mpmath.mpf(a)
    r2 = mpmath.sqrt(2)
    if a < 0:
        return mpmath.erfc(h / r2) / 2 - _tbar_quad(h, -a)
    f = lambda u: mpmath.npdf(u) * mpmath.erfc(a * u / r2) / 2  # noqa: E731
    slope = h + a * mpmath.npdf(a * h) / (mpmath.erfc(a * h / r2) / 2)
    s = 1 / max(slope, 1)
    end = h + s * 400 + 30
    pts, w = [h], s / 256
    while pts[-1] + w < end:
        pts.append(pts[-1] + w)
        w *= mpmath.mpf(1.25)
    pts.append(end)
    return mpmath.fsum(mpmath.quad(f, [x0, x1], method="gauss-legendre") for x0, x1 in zip(pts[:-1], pts[1:]))


def test_mp_tbar_series_matches_quadrature():
    with mpmath.workdps(40):
        for h, a in [(0.3, 0.5), (1.5, 0.3), (3.0, 2.0), (14.0, 0.1), (1.2, 10.0), (0.01, 100.0),
                     (5.0, -2.0), (0.7, -30.0), (20.0, 1.0)]:
            got = owen.mp_owens_tbar(h, a)
            with mpmath.workdps(60):   # the composite rule needs the extra digits for its own sums
                ref = _tbar_quad(h, a)
            # the composite u-rule loses ~1e-15 on the steep starts at h ≥ 20; the τ-panel quadrature
            # of owen (a different algorithm from the series) is checked to 1e-25
            assert abs(got - ref) <= mpmath.mpf(10) ** (-22 if h < 20 else -13) * ref, (h, a)
            saved, owen.MP_SERIES_MAX_BITS = owen.MP_SERIES_MAX_BITS, 0
            try:
                quad = owen.mp_owens_tbar(h, a)
            finally:
                owen.MP_SERIES_MAX_BITS = saved
            assert abs(got - quad) <= mpmath.mpf(10) ** -25 * quad, (h, a)


def _numpy_tbar_relative_accuracy(hs, as_):
    hh, aa = np.meshgrid(hs, as_, indexing="ij")
    got = owen.owens_tbar(hh, aa)
    with mpmath.workdps(30):
        for (i, j), g in np.ndenumerate(got):
            h, a = hh[i, j], aa[i, j]
            ref = owen.mp_owens_tbar(h, a)
            if ref < mpmath.mpf(1e-300):     # below float64's normal range: 0 or subnormal
                assert g < 1e-290
                continue
            err = float(abs(mpmath.mpf(g) - ref) / ref)
            cond = h * h * (1 + min(a * a, 1e30))
            assert err <= 1.2e-14 + 4e-16 * cond, (h, a, err)


def test_numpy_tbar_relative_accuracy_sample():
    """The NumPy T̄ to ~1e-15 relative, up to the function's own condition number h²(1 + a²) times ε
    (every 4th h and 3rd a of the full grid; the mpmath reference is ~1 ms per point)."""
    _numpy_tbar_relative_accuracy(H[::4], A[::3])


@pytest.mark.slow
def test_numpy_tbar_relative_accuracy():
    """The same on the full (h, a) grid."""
    _numpy_tbar_relative_accuracy(H, A)


def test_owens_t_against_scipy():
    scipy = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(1)
    h, a = rng.normal(0, 3, 20000), rng.normal(0, 3, 20000)
    a[::7] *= 100
    assert np.max(np.abs(owen.owens_t(h, a) - scipy.owens_t(h, a))) < 2e-16 * 4


def _bvn_args(h, k, r):
    s = math.sqrt(max(0.0, (1 - r) * (1 + r)))
    return h, k, r, s, (k - r * h) / s if s else 0.0, (h - r * k) / s if s else 0.0


def _bvn_quad(h, k, r):
    """Φ₂ by mpmath: ∫_{−∞}^h φ(x) Φ((k − r x)/s) dx (r = ±1: the limits)."""
    h, k, r = mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(r)
    if r == 1:
        return mpmath.ncdf(min(h, k))
    if r == -1:
        return max(mpmath.mpf(0), mpmath.ncdf(h) - mpmath.ncdf(-k))
    s = mpmath.sqrt(1 - r * r)
    f = lambda x: mpmath.npdf(x) * mpmath.erfc(-(k - r * x) / (s * mpmath.sqrt(2))) / 2  # noqa: E731
    x0 = (k / r) if r != 0 else h
    pts = sorted({-mpmath.inf, h, *[p for p in (x0, h - 1, h - 1 / (1 + abs(h)), x0 - s, x0 + s) if p < h]})
    return mpmath.quad(f, pts)


@pytest.mark.parametrize("r", [-1.0, -0.999999, -0.9, -0.5, 0.0, 0.3, 0.9, 0.999999, 1.0])
def test_bvn_against_quadrature(r):
    pts = [-20.0, -8.0, -3.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 2.0, 6.0]
    with mpmath.workdps(35):
        for h in pts:
            for k in pts:
                got = owen.bvn(*_bvn_args(h, k, r))
                ref = _bvn_quad(h, k, r)
                mine = owen.mp_bvn(*_bvn_args(h, k, r))
                tol = 1e-13 * ref if h <= 0 and k <= 0 else 1e-15 + 1e-13 * ref
                assert abs(mpmath.mpf(float(got)) - ref) <= tol + mpmath.mpf(1e-300), (h, k, r, got, ref)
                assert abs(mine - ref) <= mpmath.mpf(10) ** -25 * (ref + mpmath.mpf(10) ** -250), (h, k, r)


def test_bvn_exact_ties():
    """s = 0 exactly (c = ±√(q₁q₂)): Φ₂(0, 0; ±1) = ½ and 0, whatever rounding did to r."""
    assert owen.bvn(0.0, 0.0, 1 - 2e-16, 0.0, 0.0, 0.0) == 0.5
    assert owen.bvn(0.0, 0.0, -1 + 2e-16, 0.0, 0.0, 0.0) == 0.0


def test_sympy_function():
    h, k = sp.symbols("h k", real=True)
    f = owen.BivariateNormalCDF(h, k, sp.Rational(1, 3), sp.sqrt(8) / 3, 0, 0)
    assert sp.latex(f).startswith(r"\Phi_2\left(h, k; \frac{1}{3}\right)")
    assert owen.BivariateNormalCDF(0, 0, sp.Symbol("r"), 1, 0, 0) == sp.Rational(1, 4) + sp.asin(sp.Symbol("r")) / (2 * sp.pi)
    val = owen.BivariateNormalCDF(*[sp.Float(v) for v in _bvn_args(-1.0, 0.5, 0.3)]).evalf(30)
    with mpmath.workdps(30):
        assert abs(mpmath.mpf(val) - _bvn_quad(-1.0, 0.5, 0.3)) < mpmath.mpf(10) ** -26
    lam = sp.lambdify((h, k), f, "mpmath")      # plain "mpmath" lambdify finds it (the _imp_ hook)
    assert abs(lam(mpmath.mpf(-1), mpmath.mpf(0.5)) - owen.mp_bvn(-1, 0.5, 1 / mpmath.mpf(3), mpmath.sqrt(8) / 3,
                                                                  0, 0)) < 1e-14


# ------------------------------------------------------------------------ the half-line rule

def _elu(alpha, lam=1.0):
    def f(v):
        return lam * np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0.0)))

    def df(v):
        return lam * np.where(v > 0, 1.0, alpha * np.exp(np.minimum(v, 0.0)))
    return f, df


def _xexp():
    # φ = x·e^x for x < 0, x for x > 0 (continuous, φ' = (1 + x)e^x | 1)
    def f(v):
        return np.where(v > 0, v, v * np.exp(np.minimum(v, 0.0)))

    def df(v):
        return np.where(v > 0, 1.0, (1 + v) * np.exp(np.minimum(v, 0.0)))
    return f, df


SELU_A, SELU_L = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
CASES = {
    "elu": (sp.Max(X, 0) + (sp.exp(sp.Min(X, 0)) - 1), _elu(1.0)),
    "selu": (sp.Float(SELU_L, 30) * (sp.Max(X, 0) + sp.Float(SELU_A, 30) * (sp.exp(sp.Min(X, 0)) - 1)),
             _elu(SELU_A, SELU_L)),
    "celu0.5": (sp.Max(X, 0) + sp.Min(0, sp.Rational(1, 2) * (sp.exp(2 * X) - 1)), None),
    "xexp": (sp.Piecewise((X, X > 0), (X * sp.exp(X), True)), _xexp()),
}


def _celu(alpha):
    def f(v):
        return np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0.0) / alpha))

    def df(v):
        return np.where(v > 0, 1.0, np.exp(np.minimum(v, 0.0) / alpha))
    return f, df


CASES["celu0.5"] = (CASES["celu0.5"][0], _celu(0.5))


@pytest.fixture(scope="module")
def kernels():
    out = {}
    for name, (expr, fns) in CASES.items():
        dual = derive_dual(expr, X, exact_pieces=True)
        assert dual.route_hat == dual.route_dot == halfline.ROUTE, (name, dual.route_hat)
        out[name] = (ClosedFormKernels(dual.khat, dual.kdot), fns)
    return out


def _grid(qs, rhos):
    for q1 in qs:
        for q2 in qs:
            for rho in rhos:
                yield q1, q2, rho


def _check(kernels, name, qs, rhos, tol):
    f, (phi, dphi) = kernels[name]
    for q1, q2, rho in _grid(qs, rhos):
        c = rho * math.sqrt(q1) * math.sqrt(q2)
        hat, dot = f(np.array([q1]), np.array([q2]), np.array([c]))
        ref_hat, ref_dot = gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c)
        # relative to the Cauchy–Schwarz scale of each kernel
        s_hat = math.sqrt(gl_expect2([(phi, phi)], q1, q1, q1)[0] * gl_expect2([(phi, phi)], q2, q2, q2)[0])
        s_dot = math.sqrt(gl_expect2([(dphi, dphi)], q1, q1, q1)[0] * gl_expect2([(dphi, dphi)], q2, q2, q2)[0])
        assert abs(hat[0] - ref_hat) <= tol * s_hat, (name, q1, q2, rho, hat[0], ref_hat)
        assert abs(dot[0] - ref_dot) <= tol * s_dot, (name, q1, q2, rho, dot[0], ref_dot)


RHOS = (-1.0, -0.9, 0.0, 0.5, 0.99, 1.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_closed_forms_against_quadrature(kernels, name):
    """The float64 closed forms against graded Gauss–Legendre quadrature (tests/reference.py)."""
    _check(kernels, name, (1e-3, 1.0, 10.0), RHOS, 1e-11)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_closed_forms_against_quadrature_full_grid(kernels, name):
    _check(kernels, name, (1e-3, 0.3, 1.0, 10.0, 100.0), RHOS, 1e-11)


@pytest.mark.parametrize("name", ["elu", "xexp"])
def test_mp_closed_forms(kernels, name):
    """The mpmath evaluation (used outside the float64 trusted range) at large variance and at ties."""
    f, (phi, dphi) = kernels[name]
    for q1, q2, rho in [(100.0, 100.0, 1.0), (100.0, 30.0, -0.5), (1e-3, 1e-3, -1.0), (300.0, 300.0, 0.2)]:
        c = rho * math.sqrt(q1) * math.sqrt(q2)
        hat, dot = f.mp(mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c))
        ref_hat, ref_dot = gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c)
        assert abs(float(hat) - ref_hat) <= 1e-11 * max(1.0, abs(ref_hat)) * max(q1, q2), (q1, q2, rho)
        assert abs(float(dot) - ref_dot) <= 1e-11 * max(1.0, abs(ref_dot)), (q1, q2, rho)


def test_relu_family_keeps_price_route():
    dual = derive_dual(sp.Max(X, 0), X, exact_pieces=True)
    assert "Price" in dual.route_hat


def test_jump_gets_ae_convention():
    """φ = e^x for x < 0, 2 + x for x > 0 jumps at 0: Σ̂ by the rule, Σ̇ the a.e. derivative's kernel."""
    expr = sp.Piecewise((2 + X, X > 0), (sp.exp(X), True))
    dual = derive_dual(expr, X, exact_pieces=True)
    assert dual.khat is not None and dual.kdot is not None and "almost-everywhere" in dual.route_dot
    f = ClosedFormKernels(dual.khat, dual.kdot)

    def phi(v):
        return np.where(v > 0, 2 + v, np.exp(np.minimum(v, 0.0)))

    def dphi(v):
        return np.where(v > 0, 1.0, np.exp(np.minimum(v, 0.0)))
    for q1, q2, rho in [(1.0, 2.0, 0.3), (0.5, 0.5, -0.9)]:
        c = rho * math.sqrt(q1 * q2)
        hat, dot = f(q1, q2, c)
        rh, rd = gl_expect2([(phi, phi), (dphi, dphi)], q1, q2, c)
        assert abs(hat - rh) < 1e-12 * max(1, abs(rh)) and abs(dot - rd) < 1e-12


def test_elu_kernel_depth10_against_numeric_route():
    """ntksym.kernel('elu', ...) (closed form now) at depth 10 against the numeric route it replaces
    (its stated per-call error estimate ≤ 1e-6 relative per layer)."""
    import ntksym
    from ntksym.derivation import as_activation
    from ntksym.kernels import NumericDualKernels
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 7))
    sw, sb, depth = 1.5, 0.1, 10
    nngp, ntk = ntksym.kernel("elu", x, depth=depth, sigma_w=sw, sigma_b=sb)
    num = NumericDualKernels(as_activation("elu"))
    g = sw**2 * x @ x.T / x.shape[1] + sb**2
    sig, theta = g, g.copy()
    for _ in range(depth):
        q = np.diag(sig)
        hat, dot = num(q[:, None], q[None, :], sig)
        sig = sw**2 * hat + sb**2
        theta = sig + sw**2 * dot * theta
    assert np.max(np.abs(nngp - sig)) <= 1e-6 * depth * np.max(np.abs(sig))
    assert np.max(np.abs(ntk - theta)) <= 1e-6 * depth * np.max(np.abs(theta))
