"""Regressions from the fuzz harness (issue 11): series, spectrum, eoc, codegen tables, hermite."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from ntksym import derivation as api
from ntksym.cli import main
from ntksym.errors import NtksymError
from ntksym.gaussian.dual import DualKernels
from ntksym.series import DotProductNetwork, series_fft


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# 1. constant activations: the kernel is the constant φ², every other κ_p is 0


@pytest.mark.parametrize("spec, value", [("0", 0.0), ("0*x", 0.0), ("1", 1.0), ("pi", math.pi ** 2),
                                         ("monomial0", 1.0)])
def test_constant_activation_series(spec, value):
    s = api.power_series(spec, 1, order=4)
    assert np.allclose(s.nngp, [value, 0, 0, 0], atol=1e-12) and np.allclose(s.ntk, [value, 0, 0, 0], atol=1e-12)
    assert float(s.ntk_at_one) == pytest.approx(value)


def test_constant_activation_other_routes():
    s = api.power_series("1", 2, order=3, digits=20)
    assert float(s.ntk[0]) == pytest.approx(1.0) and abs(float(s.ntk[1])) < 1e-25
    e = api.power_series("pi", 2, order=3, exact=True)
    assert [float(v) for v in e.nngp] == pytest.approx([math.pi ** 2, 0, 0])
    spec = api.sphere_spectrum("1", 2, 3, 2)
    assert [float(v) for v in spec.eigenvalues] == pytest.approx([1.0, 0, 0])


# 2. eoc of φ ≡ 0: a clean refusal


@pytest.mark.parametrize("extra", [[], ["--sigma-w", "1"]])
@pytest.mark.parametrize("spec", ["0", "0*x"])
def test_eoc_of_zero_refused(capsys, spec, extra):
    status, out, err = _run(capsys, "eoc", spec, *extra)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ntksym: error: φ ≡ 0")


def test_eoc_of_tiny_homogeneous_activation():
    from ntksym import eoc
    act = api.as_activation("a*x", {"a": "1e-400"})
    e = eoc.edge_of_chaos(act, api.dual_kernels(act))
    assert float(mpmath_log10(e.sigma_w)) == pytest.approx(400)


def mpmath_log10(v):
    import mpmath
    return mpmath.log10(v)


# 3. the codegen table of a kernel ≡ 0 (no 0/0 in the relative error)


@pytest.mark.parametrize("spec, params", [("0", None), ("a*x", {"a": "1e-400"})])
def test_angle_table_of_zero_kernel(spec, params):
    from ntksym.codegen.interpolant import angle_table
    d = api.derive(spec, depth=1, params=params)
    table = angle_table(d)
    assert table is not None and all(v == 0 for row in table.coefficients for v in row)


# 4. kernels beyond the float64 range: one clean refusal, no NaN, no warnings


def test_overflowing_hermite_route_refused():
    act = api.as_activation("x**200")
    with pytest.raises(NtksymError, match="float64 range"):
        series_fft(act, DualKernels(None, None, "", ""), DotProductNetwork(1), 4)


def test_overflow_across_layers_refused():
    act = api.as_activation("exp(x)")   # E[φ(√q Z)²] = e^{2q}: 1, e², e^{2e²}, ... overflows at layer 4
    with pytest.raises(NtksymError, match="float64 range"):
        series_fft(act, api.dual_kernels(act), DotProductNetwork(6), 4)


# 5. an exact coefficient with an imaginary part that cancels


def test_hermite_exact_complex_with_zero_imaginary_part():
    s = api.hermite("He(51, sin(60))", 2)
    c0 = s.coefficients[0]
    assert float(c0.value) == pytest.approx(3.468223946603344e32, rel=1e-12)
    assert not c0.exact.has(__import__("sympy").I)


# 6. depth 10^4


def test_series_depth_10000_underflows_to_zero():
    s = api.power_series("relu", 10000, order=3)
    values = [float(v) for v in (*s.nngp, *s.ntk, s.ntk_at_one, s.nngp_at_one)]
    assert all(math.isfinite(v) and abs(v) < 1e-250 for v in values)
    s2 = api.power_series("relu", 10000, math.sqrt(2), order=3)
    assert all(math.isfinite(float(v)) for v in s2.ntk) and float(s2.ntk_at_one) == pytest.approx(20002)   # q = 2: Θ(1) = 2(L + 1)


def test_spectrum_depth_10000_is_quick():
    import time
    t = time.perf_counter()
    spec = api.sphere_spectrum("relu", 10000, 3, 5, sigma_w=math.sqrt(2))
    assert time.perf_counter() - t < 30
    lam = [float(v) for v in spec.eigenvalues]
    assert all(math.isfinite(v) and v > 0 for v in lam) and lam == sorted(lam, reverse=True)


def test_codegen_fold_matches_per_layer_mpmath():
    from ntksym.codegen.interpolant import _values, mp_recursion, per_layer
    d = api.derive("erf", depth=40, sigma_w=1.5, sigma_b=0.1)
    t = np.cos(np.pi * np.arange(9) / 8)
    folded, exact = _values(mp_recursion(d), t), _values(per_layer(d.recursion.layers), t)
    assert np.max(np.abs(folded - exact) / np.max(np.abs(exact), axis=0)) < 1e-15


def test_codegen_depth_10000_is_quick_and_has_no_table():
    import time
    from ntksym.codegen import module_source
    from ntksym.codegen.interpolant import MP_DEPTH, angle_table
    d = api.derive("relu", depth=10000, sigma_w=math.sqrt(2))
    t0 = time.perf_counter()
    assert angle_table(d) is None and d.network.depth > MP_DEPTH   # beyond MP_DEPTH the module runs the recursion
    module_source(d)
    assert time.perf_counter() - t0 < 30


# 7. σ_w = 0: the kernel is the constant σ_b²


@pytest.mark.parametrize("sw", [0.0, -0.0, 1e-300])
def test_sigma_w_zero_series_and_spectrum(sw):
    s = api.power_series("relu", 2, sw, 0.5, order=3)
    assert np.allclose(s.nngp, [0.25, 0, 0], atol=1e-14) and np.allclose(s.ntk, [0.25, 0, 0], atol=1e-14)
    spec = api.sphere_spectrum("relu", 2, 3, 2, sigma_w=sw, sigma_b=0.5)
    assert [float(v) for v in spec.eigenvalues] == pytest.approx([0.25, 0, 0], abs=1e-14)


def test_sigma_w_zero_codegen_table():
    from ntksym.codegen.interpolant import angle_table
    table = angle_table(api.derive("relu", depth=2, sigma_w=1e-300))
    assert table is None or all(math.isfinite(v) for row in table.coefficients for v in row)


@pytest.mark.parametrize("sb", [0.0, 1.0])
def test_sigma_w_zero_phase(sb):
    from ntksym import eoc
    act = api.as_activation("erf")
    ph = eoc.phase(act, api.dual_kernels(act), 0.0, sb)
    assert float(ph.q_star) == pytest.approx(sb ** 2) and float(ph.chi1) == 0 and ph.phase == "ordered"
    assert float(ph.xi_q) == 0
