"""The NNGP/NTK recursion: against Monte-Carlo finite-width networks, exact
special cases, the symbolic per-layer form, and input validation."""
import numpy as np
import pytest
import sympy as sp

import ntksym
from ntksym.errors import InputError, NetworkError
from ntksym.finite.empirical import monte_carlo_kernels
from ntksym.network import Network, recursion


def _data(seed=0, n=4, d=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[1] *= 1.7
    x[3] = 0.8 * x[2] + 0.05 * rng.normal(size=d)  # a near-parallel pair
    return x


@pytest.mark.parametrize("name,sw,sb", [("relu", 1.4, 0.3), ("erf", 1.2, 0.2), ("tanh", 1.5, 0.1)])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_monte_carlo_agrees(name, sw, sb, parameterization):
    """Mean of S sampled width-n networks vs the infinite-width kernels.

    Tolerance: 5 standard errors of the Monte-Carlo mean (S = 120 samples, so a
    false alarm has probability < 1e-5 per entry) plus a finite-width bias
    allowance 2·L/n·max|K|, the order of the O(L/n) correction to the mean
    kernel at width n (Hanin & Nica 2019).  tanh has no closed form and runs
    on the Gauss–Hermite route.
    """
    x = _data()
    depth, width, samples = 2, 512, 120
    act = ntksym.activation(name)
    kw = dict(parameterization=parameterization, width=width if parameterization == "standard" else None)
    nngp, ntk = ntksym.kernel(act, x, depth=depth, sigma_w=sw, sigma_b=sb, **kw)
    mc = monte_carlo_kernels(act.numpy_fn(), act.numpy_fn(derivative=True), x, None, depth, width, sw, sb,
                             samples, seed=7, n_out=16, parameterization=parameterization)
    for theory, mean, sem in [(nngp, mc["nngp_mean"], mc["nngp_sem"]), (ntk, mc["ntk_mean"], mc["ntk_sem"])]:
        tol = 5 * sem + 2 * depth / width * np.abs(theory).max()
        assert np.all(np.abs(mean - theory) <= tol), (name, np.abs(mean - theory) / tol)
        assert sem.max() < 0.05 * np.abs(theory).max()  # the test has power


def test_linear_activation_exact():
    x = _data(1)
    sw, sb, depth = 1.3, 0.4, 3
    nngp, ntk = ntksym.kernel("identity", x, depth=depth, sigma_w=sw, sigma_b=sb)
    sig = sw**2 * x @ x.T / x.shape[1] + sb**2
    theta = sig.copy()
    for _ in range(depth):
        sig = sw**2 * sig + sb**2
        theta = sig + sw**2 * theta
    np.testing.assert_allclose(nngp, sig, rtol=1e-14)
    np.testing.assert_allclose(ntk, theta, rtol=1e-14)


def test_relu_edge_of_chaos_diagonal():
    """σ_w² = 2: Σ̇ = 1 and Σ⁽ˡ⁾(x,x) = Σ⁽ˡ⁻¹⁾(x,x) + σ_b² (FORMULAS.md §3)."""
    x = _data(2)
    sb, depth = 0.3, 5
    nngp, ntk = ntksym.kernel("relu", x, depth=depth, sigma_w=np.sqrt(2), sigma_b=sb)
    q0 = 2 * np.sum(x * x, 1) / x.shape[1] + sb**2
    np.testing.assert_allclose(np.diag(nngp), q0 + depth * sb**2, rtol=1e-13)
    theta = q0.copy()
    for l in range(1, depth + 1):
        theta = (q0 + l * sb**2) + theta
    np.testing.assert_allclose(np.diag(ntk), theta, rtol=1e-13)


def test_symbolic_recursion_matches_numeric_and_is_linear_in_depth():
    d = ntksym.derive("erf", depth=2, sigma_w=1.2, sigma_b=0.5)
    x = _data(3, n=4, d=3)[:2]
    full = d.recursion.expand("ntk")
    xx, yy, xy, dd = sp.symbols("xx yy xy d", real=True)
    dsym = sp.Symbol("d", positive=True)
    subs = {sp.Symbol("xx", real=True): float(x[0] @ x[0]), sp.Symbol("yy", real=True): float(x[1] @ x[1]),
            sp.Symbol("xy", real=True): float(x[0] @ x[1]), dsym: 3}
    val = float(full.xreplace(subs).evalf(30))
    _, ntk = d.kernel(x)
    assert val == pytest.approx(ntk[0, 1], rel=1e-12)
    dual = ntksym.dual_kernels("relu")
    sizes = [recursion(dual, Network(L, 1.5, 0.1)).size() for L in (5, 10, 20)]
    assert sizes[2] - sizes[1] == 2 * (sizes[1] - sizes[0])  # exactly linear growth


def test_unit_sphere_dot_product_form():
    """With |x|²/d = 1 the kernels depend on ρ = x·y/d only."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 5))
    x *= np.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
    y = x @ np.linalg.qr(rng.normal(size=(5, 5)))[0]  # rotate: same ρ matrix
    a = ntksym.kernel("gelu", x, depth=3, sigma_w=1.1, sigma_b=0.2)
    b = ntksym.kernel("gelu", y, depth=3, sigma_w=1.1, sigma_b=0.2)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12)


def test_gram_is_symmetric_and_cross_shapes():
    x = _data(5)
    nngp, ntk = ntksym.kernel("relu", x, depth=2)
    np.testing.assert_allclose(ntk, ntk.T, rtol=1e-14)
    n2, t2 = ntksym.kernel("relu", x, x[:2], depth=2)
    assert t2.shape == (4, 2)
    np.testing.assert_allclose(t2, ntk[:, :2], rtol=1e-14)


@pytest.mark.parametrize("bad", [np.array([1.0, 2.0]), np.array([[np.nan, 1.0]]), np.zeros((0, 3)),
                                 [["a", "b"]]])
def test_bad_inputs(bad):
    with pytest.raises(InputError):
        ntksym.kernel("relu", bad, depth=1)


def test_dimension_mismatch():
    with pytest.raises(InputError):
        ntksym.kernel("relu", np.ones((2, 3)), np.ones((2, 4)), depth=1)


@pytest.mark.parametrize("kw", [dict(depth=0), dict(depth=2, sigma_w=-1.0), dict(depth=2, sigma_b=float("nan")),
                                dict(depth=1.5), dict(depth=2, parameterization="foo"),
                                dict(depth=2, parameterization="standard")])
def test_bad_networks(kw):
    with pytest.raises(NetworkError):
        Network(**kw)


def test_neural_tangents_cross_check():
    pytest.importorskip("neural_tangents")
    import jax
    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax
    x = _data(6)
    for name, layer in [("relu", stax.Relu()), ("erf", stax.Erf()), ("gelu", stax.Gelu())]:
        _, _, kfn = stax.serial(*([stax.Dense(1, W_std=1.3, b_std=0.2), layer] * 3), stax.Dense(1, 1.3, 0.2))
        ref = kfn(x, x, ("nngp", "ntk"))
        nngp, ntk = ntksym.kernel(name, x, depth=3, sigma_w=1.3, sigma_b=0.2)
        np.testing.assert_allclose(nngp, np.asarray(ref.nngp), rtol=1e-6)
        np.testing.assert_allclose(ntk, np.asarray(ref.ntk), rtol=1e-6)  # NT's diagonal carries ~√eps error
