"""Regressions from the fuzz harness (issue 11) for the finite-width code: ``ntksym empirical``,
``ntksym rmt``, and the APIs of ntksym.finite (empirical, montecarlo, dispersion, rmt).

Every refusal is one line ``ntksym: error: ...`` with exit status 2 (an NtksymError in the API); no
numeric warning reaches stderr and no NaN is written silently."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy as sp

from ntksym.cli import main
from ntksym.errors import ActivationError, InputError, NetworkError, NtksymError
from ntksym.finite import dispersion, empirical, montecarlo, rmt


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_refusal(code, out, err):
    assert code == 2, err
    assert out == "" and err.count("\n") == 1 and err.startswith("ntksym: error: "), err


@pytest.fixture
def inputs(tmp_path):
    def save(arr):
        path = tmp_path / "X.npy"
        np.save(path, np.asarray(arr, dtype=np.float64))
        return str(path)
    return save


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# ------------------------------------------------------------------ 1. φ' of sign(sin(1/x))

def test_ae_derivative_of_sign_of_non_real_argument():
    """SymPy leaves d/dx sign(sin(1/x)) unevaluated (sin(1/x) is not known real), and NumPy's printer
    failed on it (exit 1).  sign(u) is locally constant a.e., so φ' = 0."""
    phi, dphi, (f, df, x) = montecarlo.resolve_activation("sign(sin(1/x))")
    assert df == 0 and not df.has(sp.Derivative)
    z = np.array([-2.0, -0.3, 0.7, 5.0])
    assert np.all(dphi(z) == 0)
    assert np.all(phi(z) == np.sign(np.sin(1 / z)))


def test_ae_derivative_of_abs_of_non_real_argument():
    _, dphi, (_, df, x) = montecarlo.resolve_activation("abs(sin(1/x))")
    assert not df.has(sp.Derivative)
    z = np.array([-2.0, -0.3, 0.7, 5.0])
    expected = np.sign(np.sin(1 / z)) * np.cos(1 / z) * (-1 / z ** 2)
    assert np.allclose(dphi(z), expected)


def test_empirical_cli_sign_sin_one_over_x(capsys, inputs, tmp_path):
    x = inputs(np.random.default_rng(0).standard_normal((3, 2)))
    out_path = tmp_path / "E.npz"
    code, out, err = run(capsys, "empirical", "sign(sin(1/x))", "--depth", "1", "--width", "8", "--samples", "2",
                         "--inputs", x, "--out", str(out_path))
    assert code == 0, err
    with np.load(out_path) as d:
        assert np.all(np.isfinite(d["ntk_mean"])) and np.all(np.isfinite(d["nngp_mean"]))


# ------------------------------------------------------------------ 2. high-degree polynomials

@pytest.mark.parametrize("act", ["x**200", "(x+1)**200*exp(-x**2)",
                                 "+".join(f"He({k},x)" for k in range(61))])
@pytest.mark.parametrize("depth", ["1", "2"])
def test_empirical_cli_high_degree_never_crashes(capsys, inputs, tmp_path, act, depth):
    x = inputs(3 * np.random.default_rng(1).standard_normal((4, 3)))
    out_path = tmp_path / "E.npz"
    code, out, err = run(capsys, "empirical", act, "--depth", depth, "--width", "8", "--samples", "3",
                         "--inputs", x, "--out", str(out_path))
    if code == 0:
        assert err == ""
        with np.load(out_path) as d:
            assert not any(np.isnan(v).any() for v in d.values())
    else:
        one_line_refusal(code, out, err)
        assert "overflow" in err
        assert not out_path.exists()


def test_ratio_estimate_of_huge_values_does_not_overflow():
    """R = mean(u)/mean(v)² was computed with Python floats: V**2 raised OverflowError for V ~ 1e200."""
    u = np.array([1.0e300, 1.2e300, 0.9e300])
    v = np.array([1.0e150, 1.1e150, 0.95e150])
    r, se = montecarlo.ratio_estimate(u, v)
    expected = np.mean(u / 1e300) / np.mean(v / 1e150) ** 2
    assert math.isclose(r, expected, rel_tol=1e-12) and math.isfinite(se)


def test_monte_carlo_dispersion_of_large_kernels_is_finite():
    """Θ entries ~ 1e200: Θ² overflows, the scale-free dispersion must not (it did: OverflowError)."""
    X = np.array([[1e100, 0.0], [0.0, 1e100]])
    st = montecarlo.monte_carlo("relu", X, 1, 16, samples=3, seed=0)
    assert 1.0 <= st.dispersion_diag < 10 and math.isfinite(st.dispersion_diag_se)
    assert np.all(np.isfinite(st.ntk_mean))


def test_rmt_cli_moments_beyond_float64(capsys):
    """E x²⁰⁰ = 199!! ≈ 7e186, its square overflows: was OverflowError (exit 1) after a 20 s dual-kernel attempt."""
    code, out, err = run(capsys, "rmt", "x**200", "--gammas", "1.25,0.667")
    one_line_refusal(code, out, err)
    assert "overflow float64" in err


def test_rmt_api_moments_beyond_float64():
    with pytest.raises(ActivationError, match="overflow float64"):
        rmt.normalize_activation("x**200")


# ------------------------------------------------------------------ 3. γ bounds and long chains

@pytest.mark.parametrize("gammas", ["1e308,1e308", "0.5,1e7", "2e6"])
def test_rmt_cli_gamma_bound(capsys, gammas):
    code, out, err = run(capsys, "rmt", "relu", "--gammas", gammas)
    one_line_refusal(code, out, err)
    assert "at most 1e+06" in err


def test_rmt_api_gamma_bound():
    with pytest.raises(InputError, match="at most"):
        rmt.limit_spectrum("relu", [0.5, 1e308])


def test_rmt_help_states_gamma_bound(capsys):
    try:
        code = main(["rmt", "--help"])
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    assert "(0, 1e+06]" in capsys.readouterr().out


def test_rmt_long_chain_grid_covers_the_support_only():
    """Eight layers: the grid started at x = −2.6 for a CK supported in [0, ~5.4] (the support was searched
    on the norm bound, ~10³ wide, with a 600-point coarse pass)."""
    law = rmt.limit_spectrum("relu", [0.5] * 8, grid=50)
    assert -0.3 < law.x[0] < 0 and 4 < law.x[-1] < 8
    assert abs(law.mass_on_grid - 1) < 0.02


def test_rmt_refuses_density_outside_the_support_bound():
    x = np.linspace(-3.0, 3.0, 7)
    eta = 0.01
    m = 1 / (0.5 - x - 1j * eta)  # a point mass at 0.5: Im m is far above the bound at x = -3
    rmt._check_outside(m, x, eta, 0.0, 1.0)  # consistent with the support [0, 1]
    with pytest.raises(NtksymError, match="invalid solution"):
        rmt._check_outside(m + 1j * 0.01, x, eta, 0.0, 1.0)


# ------------------------------------------------------------------ 4. huge input rows

def test_empirical_cli_rows_whose_squared_norm_overflows(capsys, inputs, tmp_path):
    x = inputs([[1e300, 1.0], [1.0, 2.0]])
    out_path = tmp_path / "E.npz"
    code, out, err = run(capsys, "empirical", "relu", "--depth", "1", "--width", "8", "--samples", "2",
                         "--inputs", x, "--out", str(out_path))
    one_line_refusal(code, out, err)
    assert "squared norm" in err and not out_path.exists()


@pytest.mark.parametrize("fn", ["monte_carlo", "monte_carlo_kernels"])
def test_api_kernel_overflow_is_refused_not_nan(fn):
    X = np.array([[1e153, 1e153], [1.0, 0.0]])  # ‖x‖² = 2e306 fits; σ_w² ‖x‖² does not
    with pytest.raises(ActivationError, match="overflow"):
        if fn == "monte_carlo":
            montecarlo.monte_carlo("relu", X, 1, 4, sigma_w=100.0, samples=2)
        else:
            empirical.monte_carlo_kernels(lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0, X, None, 1, 4,
                                          100.0, 0.0, 2, 0)


# ------------------------------------------------------------------ 5. API bounds and shared checks

def test_check_data_uses_the_shared_input_checks():
    with pytest.raises(InputError, match="non-empty 2-D array"):
        empirical._check_data("X", np.zeros((0, 3)))
    with pytest.raises(InputError, match="squared norm"):
        empirical._check_data("X", [[1e200, 0.0]])
    with pytest.raises(InputError, match="boolean"):
        empirical._check_data("X", np.ones((2, 2), dtype=bool))


@pytest.mark.parametrize("kwargs, exc", [
    ({"width": 10 ** 7}, NetworkError), ({"samples": 10 ** 7}, InputError), ({"n_out": 10 ** 6}, NetworkError),
    ({"depth": 10 ** 6}, NetworkError), ({"width": 200_000, "depth": 3}, InputError),
])
def test_monte_carlo_api_bounds(kwargs, exc):
    args = {"depth": 1, "width": 4, "samples": 2} | kwargs
    X = np.ones((2, 2))
    with pytest.raises(exc):
        montecarlo.monte_carlo("relu", X, args["depth"], args["width"], samples=args["samples"],
                               n_out=kwargs.get("n_out", 1))
    with pytest.raises(exc):
        empirical.monte_carlo_kernels(np.tanh, lambda z: 1 - np.tanh(z) ** 2, X, None, args["depth"], args["width"],
                                      1.0, 0.0, args["samples"], 0, n_out=kwargs.get("n_out", 1))


def test_sample_network_memory_bound():
    with pytest.raises(InputError, match="memory"):
        empirical.sample_network(3, 200_000, 1, 1.0, 0.0, np.random.default_rng(0))


def test_exact_moments_beyond_float64_is_inf_not_overflowerror():
    t = dispersion.exact_moments(100, 100_000, 2)
    assert t.ratio == math.inf and t.second == math.inf and math.isfinite(t.mean)
    assert dispersion.ratio_standard_error(1, 1000, 2, 10) == math.inf
    assert dispersion.hanin_nica(200) == math.inf
    assert math.isclose(dispersion.exact_moments(140, 140, 2).ratio,
                        float(dispersion.exact_moments(140, 140, 2, exact=True).exact_ratio), rel_tol=1e-10)


def test_exact_moments_bounds():
    with pytest.raises(NetworkError, match="exact=True"):
        dispersion.exact_moments(1, 5000, 2, exact=True)
    with pytest.raises(NetworkError):
        dispersion.exact_moments(1, 10 ** 9, 2)
    t = dispersion.exact_moments(1, 400, 2, exact=True)  # float(Fraction) overflowed
    assert t.second == math.inf and t.ratio == math.inf
