"""Monte-Carlo driver: backends, seeds, statistics, progress bar, convergence to infinite width."""
import io
import math

import numpy as np
import pytest

import ntksym
from ntksym.errors import InputError, NtksymError
from ntksym.finite.empirical import empirical_kernels, monte_carlo_kernels, sample_network
from ntksym.finite.montecarlo import MCStats, Progress, monte_carlo, ratio_estimate, torch_kernels
from test_network import _data  # the inputs of the existing MC-vs-recursion test (near-parallel pair, norms)


def test_numpy_backend_equals_reference_driver():
    """Same seed ⇒ the very same networks as empirical.monte_carlo_kernels: identical statistics."""
    x = _data()
    act = ntksym.activation("relu")
    s = monte_carlo(act, x, 2, 32, 1.4, 0.3, 12, seed=5, n_out=2)
    r = monte_carlo_kernels(act.numpy_fn(), act.numpy_fn(derivative=True), x, None, 2, 32, 1.4, 0.3, 12, 5,
                            n_out=2)
    assert isinstance(s, MCStats) and s.samples == 12 and s.backend == "numpy"
    for name in ("ntk_mean", "ntk_var", "nngp_mean", "ntk_sem", "nngp_sem"):
        np.testing.assert_array_equal(getattr(s, name), r[name])


@pytest.mark.parametrize("name,sw,sb", [("relu", 1.4, 0.3), ("erf", 1.2, 0.2)])
def test_mean_converges_to_infinite_width(name, sw, sb):
    """MC mean of width-512 networks vs ntksym.kernel: within 5 SEM + 2·L/width·max|K| (the O(L/n) bias),
    as tests/test_network.py.  Power: SEM < 3% (NTK) and < 8% (NNGP, a product of Gaussians with O(1)
    relative spread) of max|K|, and a 10% error in σ_w is rejected."""
    x = _data()
    depth, width, samples = 2, 512, 60
    act = ntksym.activation(name)
    nngp, ntk = ntksym.kernel(act, x, depth=depth, sigma_w=sw, sigma_b=sb)
    mc = monte_carlo(act, x, depth, width, sw, sb, samples, seed=3, n_out=16)
    for theory, mean, sem, power in [(nngp, mc.nngp_mean, mc.nngp_sem, 0.08), (ntk, mc.ntk_mean, mc.ntk_sem, 0.03)]:
        tol = 5 * sem + 2 * depth / width * np.abs(theory).max()
        assert np.all(np.abs(mean - theory) <= tol), np.abs(mean - theory) / tol
        assert sem.max() < power * np.abs(theory).max()
    # and the check has teeth: the wrong σ_w is rejected
    _, wrong = ntksym.kernel(act, x, depth=depth, sigma_w=1.1 * sw, sigma_b=sb)
    assert np.any(np.abs(mc.ntk_mean - wrong) > 5 * mc.ntk_sem + 2 * depth / width * np.abs(wrong).max())


def test_seeds_reproducible_and_distinct():
    x = _data()
    a = monte_carlo("tanh", x, 1, 8, 1.0, 0.1, 3, seed=1)
    b = monte_carlo("tanh", x, 1, 8, 1.0, 0.1, 3, seed=1)
    c = monte_carlo("tanh", x, 1, 8, 1.0, 0.1, 3, seed=2)
    np.testing.assert_array_equal(a.ntk_mean, b.ntk_mean)
    assert not np.array_equal(a.ntk_mean, c.ntk_mean)


def test_ratio_estimate_against_known_law():
    """v ~ Gamma(k): E[v²]/E[v]² = 1 + 1/k.  The estimate lies within 4 SE, and the delta-method SE
    agrees with the spread over 300 replicates to 20% (the replicate SD has ~4% sampling error)."""
    rng = np.random.default_rng(0)
    k = 2.0
    v = rng.gamma(k, size=40000)
    r, se = ratio_estimate(v ** 2, v)
    assert abs(r - 1.5) < 4 * se and se < 0.01
    reps = [ratio_estimate(w ** 2, w) for w in rng.gamma(k, size=(300, 400))]
    spread = np.std([q[0] for q in reps], ddof=1)
    assert np.mean([q[1] for q in reps]) == pytest.approx(spread, rel=0.2)


def test_statistics_fields():
    """Pooled diagonal dispersion with one input equals the entrywise plug-in; off-diagonal is nan."""
    x = _data()[:1]
    s = monte_carlo("relu", x, 2, 16, 1.2, 0.1, 30, seed=0)
    assert s.ntk_dispersion[0, 0] == pytest.approx(s.dispersion_diag, rel=1e-12)
    assert math.isnan(s.dispersion_offdiag)
    assert s.dispersion_diag_se > 0 and s.samples_per_second > 0
    full = monte_carlo("relu", _data(), 2, 16, 1.2, 0.1, 30, seed=0)
    arr = full.arrays()
    for name in ("ntk_mean", "ntk_var", "nngp_mean"):
        assert arr[name].shape == (4, 4) and arr[name].dtype == np.float64
    assert np.all(full.ntk_var >= 0) and np.allclose(full.ntk_mean, full.ntk_mean.T)
    assert math.isfinite(full.dispersion_offdiag) and full.dispersion_offdiag >= 1


def test_progress_bar_off_by_default_and_on_request():
    x = _data()
    buf = io.StringIO()
    monte_carlo("relu", x, 1, 8, 1.0, 0.0, 4, seed=0, progress_stream=buf)
    assert buf.getvalue() == ""
    monte_carlo("relu", x, 1, 8, 1.0, 0.0, 4, seed=0, progress=True, progress_stream=buf)
    text = buf.getvalue()
    assert "4/4" in text and text.endswith("\n")
    p = Progress(3, enabled=False, stream=buf)
    p.update()
    p.close()


@pytest.mark.parametrize("kw", [dict(samples=1), dict(samples=2.5), dict(backend="jax"), dict(seed="abc"),
                                dict(width=0), dict(depth=0), dict(sigma_w=-1.0)])
def test_bad_arguments(kw):
    args = dict(depth=1, width=4, sigma_w=1.0, sigma_b=0.0, samples=3, seed=0)
    args.update(kw)
    with pytest.raises(NtksymError):
        monte_carlo("relu", _data(), **args)


def test_bad_inputs():
    with pytest.raises(InputError):
        monte_carlo("relu", np.array([[1.0, np.inf]]), 1, 4, samples=3)
    with pytest.raises(InputError):
        monte_carlo("relu", np.ones(3), 1, 4, samples=3)
    with pytest.raises(NtksymError):
        monte_carlo("nosuchactivation", _data(), 1, 4, samples=3)


# ---------------------------------------------------------------------------
# torch backend (optional)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "erf", "tanh", "gelu", "x**2 + sin(x)", "abs(x)"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_torch_kernels_equal_numpy_on_same_network(name, parameterization):
    """Same network, both backends: equal to 1e-12 relative (float64 rounding only)."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = _data()
    net = sample_network(3, 24, x.shape[1], 1.3, 0.2, rng, n_out=3, parameterization=parameterization)
    act = ntksym.activation(name)
    g, k = empirical_kernels(net, x, None, act.numpy_fn(), act.numpy_fn(derivative=True))
    g2, k2 = torch_kernels(net, x, act, device="cpu")
    np.testing.assert_allclose(g2, g, rtol=1e-12, atol=1e-12 * np.abs(g).max())
    np.testing.assert_allclose(k2, k, rtol=1e-12, atol=1e-12 * np.abs(k).max())


def test_torch_host_fallback_for_callables():
    """A (phi, dphi) pair of NumPy callables runs on the torch backend through the host."""
    pytest.importorskip("torch")
    x = _data()
    pair = (np.tanh, lambda z: 1 - np.tanh(z) ** 2)
    net = sample_network(2, 16, x.shape[1], 1.1, 0.1, np.random.default_rng(0))
    k = empirical_kernels(net, x, None, *pair)[1]
    np.testing.assert_allclose(torch_kernels(net, x, pair, device="cpu")[1], k, rtol=1e-12)


def test_torch_backend_statistics_match_numpy():
    """Independent draws (torch generator vs numpy): means agree within 5 combined SEs; seeded runs repeat."""
    pytest.importorskip("torch")
    x = _data()
    kw = dict(depth=2, width=64, sigma_w=1.4, sigma_b=0.3, samples=80, n_out=4)
    a = monte_carlo("relu", x, seed=1, backend="numpy", **kw)
    b = monte_carlo("relu", x, seed=1, backend="torch", device="cpu", **kw)
    assert b.backend == "torch" and b.device == "cpu"
    se = np.sqrt(a.ntk_sem ** 2 + b.ntk_sem ** 2)
    assert np.all(np.abs(a.ntk_mean - b.ntk_mean) < 5 * se)
    assert se.max() < 0.05 * np.abs(a.ntk_mean).max()
    c = monte_carlo("relu", x, seed=1, backend="torch", device="cpu", **kw)
    np.testing.assert_array_equal(b.ntk_mean, c.ntk_mean)


def test_torch_bad_device():
    pytest.importorskip("torch")
    with pytest.raises(NtksymError):
        monte_carlo("relu", _data(), 1, 4, samples=3, backend="torch", device="nosuchdevice")


def test_torch_cuda_backend():
    """On a GPU (when lent): the CUDA backend reproduces the NumPy kernels of a given network."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = _data()
    net = sample_network(3, 128, x.shape[1], 1.4, 0.1, np.random.default_rng(0), n_out=2)
    act = ntksym.activation("erf")
    k = empirical_kernels(net, x, None, act.numpy_fn(), act.numpy_fn(derivative=True))[1]
    np.testing.assert_allclose(torch_kernels(net, x, act, device="cuda")[1], k, rtol=1e-10)
    s = monte_carlo(act, x, 2, 256, 1.2, 0.1, 20, seed=0, backend="torch")
    assert s.device.startswith("cuda")
