"""Tests of the finite-width network and its empirical NNGP / NTK."""

import numpy as np
import pytest

from ntksym.errors import ActivationError, InputError, NetworkError, NtksymError
from ntksym.finite.empirical import (
    Network,
    empirical_kernels,
    forward,
    monte_carlo_kernels,
    parameter_vector,
    sample_network,
    with_parameters,
)


def relu(x):
    return np.maximum(x, 0.0)


def drelu(x):
    return (x > 0).astype(np.float64)


def dtanh(x):
    return 1.0 - np.tanh(x) ** 2


def identity(x):
    return x


def one(x):
    return np.ones_like(x)


ACTIVATIONS = {"tanh": (np.tanh, dtanh), "relu": (relu, drelu)}


# ---------------------------------------------------------------------------
# 1. batched NTK == J J^T from a finite-difference Jacobian
# ---------------------------------------------------------------------------

def fd_jacobian(net, X, phi, step=1e-6):
    """Central-difference Jacobian of the outputs, shape (n, n_out, n_params)."""
    theta = parameter_vector(net)
    n, n_out = X.shape[0], net.n_out
    jac = np.empty((n, n_out, theta.size))
    for p in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[p] += step
        tm[p] -= step
        fp = forward(with_parameters(net, tp), X, phi)[2]
        fm = forward(with_parameters(net, tm), X, phi)[2]
        jac[:, :, p] = (fp - fm) / (2 * step)
    return jac


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("n_out", [1, 3])
def test_batched_ntk_matches_finite_difference_jacobian(act, parameterization, n_out):
    phi, dphi = ACTIVATIONS[act]
    rng = np.random.default_rng(1234)
    d, width, depth, n = 3, 5, 2, 4
    net = sample_network(depth, width, d, 1.3, 0.4, rng, n_out=n_out,
                         parameterization=parameterization)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n + 1, d))

    # ReLU has a kink at 0: the finite difference is only valid if no hidden
    # pre-activation sits within a few steps of it.  Check the inputs are safe.
    for Z in (X, Y):
        pre, _, _ = forward(net, Z, phi)
        assert min(np.min(np.abs(z)) for z in pre) > 1e-3

    jx = fd_jacobian(net, X, phi)
    jy = fd_jacobian(net, Y, phi)
    # mean over output units of <df_k(x)/dtheta, df_k(y)/dtheta>
    ntk_fd = np.einsum("ikp,jkp->ij", jx, jy) / n_out
    nngp_ref = forward(net, X, phi)[2] @ forward(net, Y, phi)[2].T / n_out

    nngp, ntk = empirical_kernels(net, X, Y, phi, dphi)
    assert nngp.shape == ntk.shape == (n, n + 1)
    assert nngp.dtype == ntk.dtype == np.float64
    np.testing.assert_allclose(nngp, nngp_ref, rtol=1e-13, atol=1e-13)
    # A central difference with step h = 1e-6 in float64 has truncation error
    # O(h^2 f''') ~ 1e-12 and rounding error O(eps / h) ~ 1e-10 per Jacobian
    # entry (relative to |f| ~ 1), so J J^T is reproduced to ~1e-9..1e-7;
    # 1e-6 leaves a margin while still catching any missing factor or term.
    rel = np.max(np.abs(ntk - ntk_fd)) / np.max(np.abs(ntk_fd))
    assert rel < 1e-6


def test_same_inputs_gives_symmetric_psd_ntk():
    rng = np.random.default_rng(7)
    net = sample_network(3, 16, 4, 1.5, 0.2, rng, n_out=2)
    X = rng.standard_normal((6, 4))
    nngp, ntk = empirical_kernels(net, X, None, np.tanh, dtanh)
    nngp2, ntk2 = empirical_kernels(net, X, X.copy(), np.tanh, dtanh)
    np.testing.assert_allclose(ntk, ntk2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nngp, nngp2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ntk, ntk.T, rtol=1e-12, atol=1e-12)
    assert np.min(np.linalg.eigvalsh(ntk)) > -1e-10


def test_parameterizations_share_forward_pass():
    """With the same rng state both parameterizations realise the same function."""
    X = np.random.default_rng(0).standard_normal((5, 3))
    outs = []
    for par in ("ntk", "standard"):
        net = sample_network(2, 8, 3, 1.2, 0.3, np.random.default_rng(42), parameterization=par)
        outs.append(forward(net, X, np.tanh)[2])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)


def test_forward_shapes():
    rng = np.random.default_rng(3)
    net = sample_network(3, 7, 2, 1.0, 0.1, rng, n_out=4)
    assert (net.depth, net.width, net.d, net.n_out) == (3, 7, 2, 4)
    assert net.layer_sizes == (2, 7, 7, 7, 4)
    pre, act, out = forward(net, rng.standard_normal((5, 2)), relu)
    assert len(pre) == len(act) == 3
    assert all(z.shape == (5, 7) for z in pre + act)
    assert out.shape == (5, 4)
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 1.0  # parameters are read-only


# ---------------------------------------------------------------------------
# 2. Monte Carlo vs the closed-form kernel of a linear network
# ---------------------------------------------------------------------------

def linear_kernels(X1, X2, depth, sigma_w, sigma_b):
    """Infinite-width NNGP / NTK for phi(x) = x.

    For a linear network these are also the exact finite-width expectations
    (every layer's second moment propagates exactly, and the sensitivities are
    independent of the layer inputs), so the Monte-Carlo mean is unbiased.
    """
    d = X1.shape[1]
    sigma = sigma_w ** 2 * (X1 @ X2.T) / d + sigma_b ** 2
    theta = sigma.copy()
    for _ in range(depth):
        sigma = sigma_w ** 2 * sigma + sigma_b ** 2
        theta = sigma + sigma_w ** 2 * theta
    return sigma, theta


@pytest.mark.parametrize("n_out", [1, 2])
def test_monte_carlo_linear_network_matches_closed_form(n_out):
    rng = np.random.default_rng(11)
    X1 = rng.standard_normal((4, 5))
    X2 = rng.standard_normal((3, 5))
    depth, sigma_w, sigma_b = 2, 1.1, 0.5
    res = monte_carlo_kernels(identity, one, X1, X2, depth, 256, sigma_w, sigma_b,
                              samples=200, seed=2024, n_out=n_out)
    sigma, theta = linear_kernels(X1, X2, depth, sigma_w, sigma_b)
    assert res["samples"] == 200
    for key in ("nngp_mean", "nngp_sem", "ntk_mean", "ntk_sem", "ntk_var"):
        assert res[key].shape == (4, 3) and res[key].dtype == np.float64
    np.testing.assert_allclose(res["ntk_sem"], np.sqrt(res["ntk_var"] / 200))
    assert np.all(res["nngp_sem"] > 0) and np.all(res["ntk_sem"] > 0)
    # Mean of 200 iid draws: |mean - expectation| <= 5 sem unless a ~1e-6 event.
    assert np.all(np.abs(res["nngp_mean"] - sigma) <= 5 * res["nngp_sem"])
    assert np.all(np.abs(res["ntk_mean"] - theta) <= 5 * res["ntk_sem"])
    # Guard against a vacuous test: the NTK sem is small relative to the kernel.
    assert np.max(res["ntk_sem"]) < 0.05 * np.max(np.abs(theta))


def linear_standard_ntk(X1, X2, depth, width, sigma_w, sigma_b):
    """Exact expected NTK of a linear network in the 'standard' parameterization.

    The gradient w.r.t. the raw W^l is delta^l (x) h^{l-1}, and w.r.t. b^l it
    is delta^l.  For phi(x) = x, delta^l does not depend on the input and
    E|delta^l|^2 = sigma_w^{2(L+1-l)}; E<h^0, h'^0> = x.y and
    E<h^m, h'^m> = width * Sigma^(m-1) for m >= 1 (independent factors).
    """
    d = X1.shape[1]
    sig = [sigma_w ** 2 * (X1 @ X2.T) / d + sigma_b ** 2]
    for _ in range(depth):
        sig.append(sigma_w ** 2 * sig[-1] + sigma_b ** 2)
    hh = [X1 @ X2.T] + [width * s for s in sig[:depth]]
    return sum(sigma_w ** (2 * (depth + 1 - l)) * (hh[l - 1] + 1.0) for l in range(1, depth + 2))


def test_monte_carlo_standard_parameterization_linear():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 4))
    depth, width, sigma_w, sigma_b = 2, 128, 0.9, 0.7
    res = monte_carlo_kernels(identity, one, X, None, depth, width, sigma_w, sigma_b,
                              samples=200, seed=99, parameterization="standard")
    sigma, _ = linear_kernels(X, X, depth, sigma_w, sigma_b)
    theta_std = linear_standard_ntk(X, X, depth, width, sigma_w, sigma_b)
    # The forward pass, hence the NNGP, is the same as for 'ntk'.
    assert np.all(np.abs(res["nngp_mean"] - sigma) <= 5 * res["nngp_sem"])
    assert np.all(np.abs(res["ntk_mean"] - theta_std) <= 5 * res["ntk_sem"])
    assert np.max(res["ntk_sem"]) < 0.05 * np.max(np.abs(theta_std))
    np.testing.assert_allclose(res["ntk_mean"], res["ntk_mean"].T, rtol=1e-12)


# ---------------------------------------------------------------------------
# 3. reproducibility and validation
# ---------------------------------------------------------------------------

def test_seed_reproducibility():
    X = np.random.default_rng(0).standard_normal((3, 2))
    args = (np.tanh, dtanh, X, None, 2, 16, 1.2, 0.1)
    a = monte_carlo_kernels(*args, samples=5, seed=17)
    b = monte_carlo_kernels(*args, samples=5, seed=17)
    c = monte_carlo_kernels(*args, samples=5, seed=18)
    for key in ("nngp_mean", "nngp_sem", "ntk_mean", "ntk_sem", "ntk_var"):
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a[key], c[key])
    # Seed contract: sample s uses default_rng(child s) of the spawned seed
    # sequence of default_rng(seed), so the first networks do not depend on
    # `samples` and the average can be reproduced by hand.
    children = np.random.default_rng(17).bit_generator.seed_seq.spawn(3)
    ntks = [empirical_kernels(sample_network(2, 16, 2, 1.2, 0.1, np.random.default_rng(ch)),
                              X, None, np.tanh, dtanh)[1] for ch in children]
    a3 = monte_carlo_kernels(*args, samples=3, seed=17)
    np.testing.assert_allclose(a3["ntk_mean"], np.mean(ntks, axis=0), rtol=1e-12)
    np.testing.assert_allclose(a3["ntk_var"], np.var(ntks, axis=0, ddof=1), rtol=1e-10)

    n1 = sample_network(2, 4, 2, 1.0, 0.5, np.random.default_rng(3))
    n2 = sample_network(2, 4, 2, 1.0, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(parameter_vector(n1), parameter_vector(n2))


def test_parameter_vector_roundtrip():
    net = sample_network(2, 4, 3, 1.0, 0.5, np.random.default_rng(3), n_out=2)
    theta = parameter_vector(net)
    assert theta.size == net.n_params == (3 * 4 + 4) + (4 * 4 + 4) + (4 * 2 + 2)
    np.testing.assert_array_equal(parameter_vector(with_parameters(net, theta)), theta)
    with pytest.raises(InputError):
        with_parameters(net, theta[:-1])


GOOD = dict(depth=2, width=4, sigma_w=1.0, sigma_b=0.1, samples=2, seed=0)


@pytest.mark.parametrize(
    "override, error",
    [
        (dict(depth=0), NetworkError),
        (dict(depth=1.5), NetworkError),
        (dict(depth=True), NetworkError),
        (dict(width=0), NetworkError),
        (dict(sigma_w=-1.0), NetworkError),
        (dict(sigma_b=float("nan")), NetworkError),
        (dict(samples=1), InputError),
        (dict(n_out=0), NetworkError),
        (dict(parameterization="mup"), NetworkError),
    ],
)
def test_monte_carlo_rejects_bad_network(override, error):
    X = np.ones((2, 3))
    kwargs = {**GOOD, **override}
    with pytest.raises(error) as info:
        monte_carlo_kernels(np.tanh, dtanh, X, X, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "X1, X2",
    [
        (np.ones(3), np.ones((2, 3))),                      # 1-D
        (np.ones((2, 3, 1)), np.ones((2, 3))),              # 3-D
        (np.ones((2, 3)), np.ones((2, 4))),                 # dimension mismatch
        (np.array([[1.0, np.nan, 0.0]]), np.ones((2, 3))),  # NaN
        (np.ones((2, 3)), np.array([[np.inf, 0.0, 0.0]])),  # inf
        (np.array([["a", "b", "c"]]), np.ones((2, 3))),     # not numeric
        (np.ones((2, 3), dtype=complex), np.ones((2, 3))),  # complex
        (np.ones((0, 3)), np.ones((2, 3))),                 # empty
    ],
)
def test_rejects_bad_inputs(X1, X2):
    with pytest.raises(InputError) as info:
        monte_carlo_kernels(np.tanh, dtanh, X1, X2, **GOOD)
    assert "\n" not in str(info.value)
    net = sample_network(1, 3, 3, 1.0, 0.0, np.random.default_rng(0))
    with pytest.raises(InputError):
        empirical_kernels(net, X1, X2, np.tanh, dtanh)


def test_other_validation():
    rng = np.random.default_rng(0)
    net = sample_network(1, 3, 2, 1.0, 0.0, rng)
    X = np.ones((2, 2))
    with pytest.raises(InputError):
        forward(net, np.ones((2, 5)), np.tanh)
    with pytest.raises(NetworkError):
        sample_network(1, 3, 2, 1.0, 0.0, rng=42)
    with pytest.raises(NetworkError):
        forward("not a network", X, np.tanh)
    with pytest.raises(ActivationError):
        empirical_kernels(net, X, X, "tanh", dtanh)
    with pytest.raises(ActivationError):
        forward(net, X, lambda z: z[:, :1])
    with pytest.raises(ActivationError):
        forward(net, X, lambda z: np.full_like(z, np.nan))  # non-finite output
    with pytest.raises(NetworkError):
        Network((np.ones((3, 2)),), (np.ones(3),), 1.0, 0.0)  # no readout layer
    with pytest.raises(NetworkError):
        Network((np.ones((3, 2)), np.ones((1, 4))), (np.ones(3), np.ones(1)), 1.0, 0.0)
    assert issubclass(InputError, NtksymError) and issubclass(NetworkError, NtksymError)
