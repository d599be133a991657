"""Generated modules on other array libraries: torch (CPU), JAX (CPU, x64), Dask (lazy, chunked),
CuPy (GPU only), and the neural-tangents bridge (only when neural_tangents is installed).

Each backend result is compared with the NumPy result of the same module (itself checked against
a 50-digit recursion in test_codegen.py): float64 to 1e-14 relative to max|K| (same formulas,
different libm), float32 to 1e-5.
"""
import numpy as np
import pytest

import ntksym
from ntksym.codegen import load_module


@pytest.fixture(scope="module")
def mods():
    out = {}
    for name, depth, sw, sb in (("relu", 3, 1.4, 0.1), ("erf", 2, 1.5, 0.1)):
        out[name] = load_module(ntksym.derive(name, depth, sw, sb))
    return out


def points(n=40, d=6, seed=0, unit=False):
    x = np.random.default_rng(seed).normal(size=(n, d))
    x[3] = x[1]
    x[5] = -x[0]
    if unit:
        x = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(d)
    return x


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=float) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", ["relu", "erf"])
@pytest.mark.parametrize("unit", [False, True])
def test_torch(mods, name, unit):
    torch = pytest.importorskip("torch")
    mod = mods[name]
    x, y = points(unit=unit), points(9, seed=1, unit=unit)
    for args in ((x,), (x, y)):
        ref = mod.kernels(*args)
        got = mod.kernels(*(torch.from_numpy(a) for a in args))
        for g, r in zip(got, ref):
            assert isinstance(g, torch.Tensor) and g.dtype == torch.float64
            assert rel(g.numpy(), r) <= 1e-14
        got32 = mod.kernels(*(torch.from_numpy(a).float() for a in args))
        for g, r in zip(got32, ref):
            assert g.dtype == torch.float32 and rel(g.numpy(), r) <= 1e-5
    rho = torch.linspace(-1, 1, 11, dtype=torch.float64)
    assert rel(mod.ntk_rho(rho).numpy(), mod.ntk_rho(rho.numpy())) <= 1e-14
    assert rel(mod.nngp_fn(rho, torch.ones(11, dtype=torch.float64)).numpy(),
               mod.nngp_fn(rho.numpy(), np.ones(11))) <= 1e-14


@pytest.fixture(scope="module")
def jax_x64():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_jax(mods, name, jax_x64):
    jnp = jax_x64.numpy
    mod = mods[name]
    for unit in (False, True):
        x = points(unit=unit)
        ref = mod.kernels(x)
        got = mod.kernels(jnp.asarray(x))
        for g, r in zip(got, ref):
            assert g.dtype == jnp.float64 and rel(np.asarray(g), r) <= 1e-14
            assert np.array_equal(np.asarray(g), np.asarray(g).T)
    rho = jnp.linspace(-1, 1, 11)
    assert rel(np.asarray(mod.kernels_rho(rho)[1]), mod.ntk_rho(np.linspace(-1, 1, 11))) <= 1e-14
    # the bridge functions are traceable (no Python control flow on values)
    f = jax_x64.jit(mod.nngp_fn)
    assert rel(np.asarray(f(rho, jnp.ones(11), jnp.ones(11))), mod.nngp_fn(np.linspace(-1, 1, 11), np.ones(11))) <= 1e-14


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_dask_lazy_chunked(mods, name):
    da = pytest.importorskip("dask.array")
    mod = mods[name]
    x, y = points(130, 6, seed=2), points(70, 6, seed=3)
    for args in ((x,), (x, y)):
        ref = mod.kernels(*args)
        lazy = mod.kernels(*(da.from_array(a, chunks=(50, 3)) for a in args))
        for g, r in zip(lazy, ref):
            assert isinstance(g, da.Array) and g.chunks[0] == (50, 50, 30)   # nothing computed yet, chunked
            assert rel(g.compute(), r) <= 1e-14


def test_cupy_gpu(mods):
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no GPU")
    except Exception:  # noqa: BLE001 - CUDA runtime missing
        pytest.skip("no CUDA runtime")
    for name, mod in mods.items():
        for unit in (False, True):
            x = points(300, 8, unit=unit)
            ref = mod.kernels(x)
            got = mod.kernels(cp.asarray(x))
            for g, r in zip(got, ref):
                assert isinstance(g, cp.ndarray) and rel(cp.asnumpy(g), r) <= 1e-13


def test_torch_cuda(mods):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    for name, mod in mods.items():
        for unit in (False, True):
            x = points(300, 8, unit=unit)
            ref = mod.kernels(x)
            got = mod.kernels(torch.from_numpy(x).cuda())
            for g, r in zip(got, ref):
                assert g.is_cuda and rel(g.cpu().numpy(), r) <= 1e-13


def test_neural_tangents_bridge(mods, jax_x64):
    nt = pytest.importorskip("neural_tangents")
    stax = nt.stax
    jnp = jax_x64.numpy
    mod = load_module(ntksym.derive("erf", 2, 1.5, 0.1))
    x = jnp.asarray(points(12, 5, seed=4))
    layers = []
    for _ in range(2):
        layers += [stax.Dense(512, W_std=1.5, b_std=0.1), stax.Elementwise(mod.fn, mod.nngp_fn, mod.d_nngp_fn)]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.5, b_std=0.1))
    k = kernel_fn(x, None, ("nngp", "ntk"))
    ref = mod.kernels(np.asarray(x))
    assert rel(np.asarray(k.nngp), ref[0]) <= 1e-12 and rel(np.asarray(k.ntk), ref[1]) <= 1e-12
    builtin = []
    for _ in range(2):
        builtin += [stax.Dense(512, W_std=1.5, b_std=0.1), stax.Erf()]
    _, _, kernel_ref = stax.serial(*builtin, stax.Dense(1, W_std=1.5, b_std=0.1))
    kr = kernel_ref(x, None, ("nngp", "ntk"))
    assert rel(np.asarray(kr.ntk), ref[1]) <= 1e-10
