"""Power series of the NNGP/NTK: three routes against each other and against
independent references (mpmath Taylor coefficients of the closed-form
recursion, the recursion itself on [−1, 1], FORMULAS.md / Murray et al.)."""
import json

import mpmath
import numpy as np
import pytest
import sympy as sp

import ntksym
from ntksym.cli import main
from ntksym.derivation import sphere_spectrum
from ntksym.kernels import kernel_functions
from ntksym.network import Network, evaluate
from ntksym.series import (DotProductNetwork, fit_decay, murray_preset, predicted_ntk_decay, series_exact,
                           series_fft, series_mpmath)


def theta_mp(name, net, rho, dps=None):
    """Θ(ρ) by the closed-form recursion in mpmath (independent of the series code),
    at the ambient precision unless ``dps`` is given."""
    d = ntksym.dual_kernels(name)
    khat = sp.lambdify((ntksym.Q1, ntksym.Q2, ntksym.C), d.khat, "mpmath")
    kdot = sp.lambdify((ntksym.Q1, ntksym.Q2, ntksym.C), d.kdot, "mpmath")
    with mpmath.workdps(dps or mpmath.mp.dps):
        n = mpmath.mp.dps + 10
        gw, gb = (mpmath.mpf(sp.N(v, n)) for v in net.first)
        sw2, sb2 = mpmath.mpf(sp.N(net.sigma_w, n)) ** 2, mpmath.mpf(sp.N(net.sigma_b, n)) ** 2
        s, q = gw**2 * rho + gb**2, gw**2 + gb**2
        t = s
        for _ in range(net.depth):
            sd = kdot(q, q, s)
            s = sw2 * khat(q, q, s) + sb2
            t = s + sw2 * sd * t
            q = sw2 * mpmath.re(khat(q, q, q * (1 - mpmath.eps * 2**20))) + sb2  # diagonal, inside the domain
        return t


NET = DotProductNetwork(2, sp.Rational(13, 10), sp.Rational(1, 5))


@pytest.mark.parametrize("name", ["relu", "erf", "gelu", "sin"])
def test_mpmath_route_equals_taylor_of_closed_form(name):
    """Tolerance 1e-18: both at ≥ 25 digits; mpmath.taylor differentiates Θ(ρ) at 0 by high-precision finite differences."""
    act = ntksym.activation(name)
    s = series_mpmath(act, ntksym.dual_kernels(act), NET, 6, 25)
    with mpmath.workdps(40):
        ref = mpmath.taylor(lambda r: theta_mp(name, NET, r), 0, 5)
    for a, b in zip(s.ntk, ref):
        assert abs(a - b) < 1e-18, (name, a, b)


@pytest.mark.parametrize("name", ["relu", "erf", "gelu", "abs", "tanh", "elu"])
def test_fft_route_against_mpmath_or_hermite(name):
    act = ntksym.activation(name)
    dual = ntksym.dual_kernels(act)
    f = series_fft(act, dual, NET, 400)
    if dual.khat is not None:
        m = series_mpmath(act, dual, NET, 10, 30)
        err = max(abs(float(a) - b) for a, b in zip(m.ntk, f.ntk[:10]))
        assert err < 1e-13 * float(m.ntk_at_one)  # float64 round-off × r^-P ≈ 20 ε
    # the trace identity Σ κ_p = Θ(1), up to the tail beyond P (κ_p ≥ 0)
    assert all(c > -1e-12 for c in f.ntk)
    assert sum(f.ntk) <= f.ntk_at_one * (1 + 1e-12)


def test_partial_sums_converge_to_the_kernel_on_the_interval():
    """Σ_{p<P} κ_p ρ^p → Θ(ρ): geometrically inside (−1, 1); at ρ = ±1 like P^{-1/2} for ReLU (κ_p ~ p^{-3/2})."""
    act = ntksym.activation("relu")
    f = series_fft(act, ntksym.dual_kernels(act), NET, 20000)
    net = Network(2, 1.3, 0.2)
    fns, _ = kernel_functions(act, ntksym.dual_kernels(act))
    for rho in (-0.9, -0.3, 0.0, 0.5, 0.95):
        x = np.array([[1.0, 0.0], [rho, np.sqrt(1 - rho**2)]]) * np.sqrt(2)
        _, ntk = evaluate(fns, net, x)
        partial = np.polyval(np.array(f.ntk)[::-1], rho)
        assert partial == pytest.approx(ntk[0, 1], abs=1e-10)
    gap = [f.ntk_at_one - sum(f.ntk[:p]) for p in (1000, 4000, 16000)]
    assert gap[0] / gap[1] == pytest.approx(2.0, rel=0.05) and gap[1] / gap[2] == pytest.approx(2.0, rel=0.05)


def test_exact_route_relu_formula_sheet():
    """FORMULAS.md §4: ReLU, σ_w² = 2, one hidden layer: κ_p = (1+p)((p−3)!!)²/(π p!) for even p ≥ 2."""
    act = ntksym.activation("relu")
    s = series_exact(ntksym.dual_kernels(act), DotProductNetwork(1, sp.sqrt(2), 0, 1, 0), 10)
    assert s.ntk[0] == 1 / sp.pi and s.ntk[1] == 1 and s.ntk_at_one == 2
    for p in range(2, 10):
        lit = 0 if p % 2 else (1 + p) * sp.factorial2(p - 3) ** 2 / (sp.pi * sp.factorial(p))
        assert sp.simplify(s.ntk[p] - lit) == 0


def test_exact_route_with_symbolic_sigmas():
    sw, sb = sp.symbols("sigma_w sigma_b", positive=True)
    act = ntksym.activation("relu")
    s = series_exact(ntksym.dual_kernels(act), DotProductNetwork(1, sw, sb), 4)
    val = s.ntk[1].subs({sw: sp.Rational(13, 10), sb: sp.Rational(1, 5)})
    m = series_mpmath(act, ntksym.dual_kernels(act), DotProductNetwork(1, sp.Rational(13, 10), sp.Rational(1, 5)), 4, 30)
    with mpmath.workdps(30):
        assert abs(mpmath.mpf(str(sp.N(val, 35))) - m.ntk[1]) < 1e-25


def test_murray_table_1():
    """Murray et al. (ICLR 2023) Table 1, l = 2, their unit-variance parameterization with σ_w² = 1."""
    table = {"relu": [43.944, 77.277, 93.192, 93.192, 95.403, 95.403],
             "tanh": [41.362, 91.468, 91.468, 97.487, 97.487, 99.090],
             "sigmoid": [91.557, 99.729, 99.729, 99.977, 99.977, 99.997],
             "exp(-x**2/2)/sqrt(2*pi)": [95.834, 95.834, 98.729, 98.729, 99.634, 99.634]}
    for name, row in table.items():
        act = ntksym.activation(name)
        s = series_fft(act, ntksym.dual_kernels(act), murray_preset(act, 2), 6)
        assert np.allclose(100 * np.array(s.captured()), row, atol=6e-4), (name, s.captured())


def test_decay_matches_theory_for_relu_family():
    for name in ("relu", "abs", "leaky_relu"):
        act = ntksym.activation(name)
        f = series_fft(act, ntksym.dual_kernels(act), DotProductNetwork(3, 1.2, 0.1), 4000)
        nngp_pred, ntk_pred, _ = predicted_ntk_decay(act)
        assert fit_decay(f.ntk).power_exponent == pytest.approx(ntk_pred, abs=0.02)
        assert fit_decay(f.nngp).power_exponent == pytest.approx(nngp_pred, abs=0.02)
    erf = ntksym.activation("erf")
    assert fit_decay(series_fft(erf, ntksym.dual_kernels(erf), NET, 400).ntk).better != "power law p^-s"


def test_sphere_spectrum_trace_and_funk_hecke():
    """λ_k from κ_p vs Funk–Hecke quadrature of Θ(t) itself (independent), d = 5."""
    from ntksym.spectrum.sphere import funk_hecke_eigenvalue
    net = DotProductNetwork(1, sp.Rational(13, 10), sp.Rational(1, 5))
    spec = sphere_spectrum("erf", 1, 5, 6, sp.Rational(13, 10), sp.Rational(1, 5), digits=25)
    for k in (0, 1, 3):
        fh = funk_hecke_eigenvalue(lambda t: theta_mp("erf", net, t, 25), 5, k, dps=18, singular_at_one=False)
        assert abs(spec.eigenvalues[k] - fh) < 1e-15 * abs(spec.eigenvalues[0]), k


def test_cli_series_and_spectrum_json(capsys):
    assert main(["series", "relu", "--depth", "2", "--sigma-w", "1.4", "--order", "7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["nngp"]) == 7 and len(data["ntk"]) == 7 and all(isinstance(v, str) for v in data["ntk"])
    assert main(["spectrum", "relu", "--depth", "2", "--sigma-w", "1.4", "--dim", "10", "--kmax", "5",
                 "--digits", "20", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["multiplicities"][:3] == [1, 10, 54] and len(data["eigenvalues"]) == 6
    assert main(["series", "relu", "--depth", "1", "--sigma-w", "sqrt(2)", "--order", "3", "--exact", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ntk_exact"] == ["2/pi", "2", "3/pi"]


# step: only the distributional Σ̇ (asked for) has no power series; the default (a.e.) one does (issue 12)
@pytest.mark.parametrize("argv", [["series", "step", "--depth", "1", "--order", "3", "--derivative", "distributional"],
                                  ["series", "relu", "--depth", "1", "--order", "0"],
                                  ["series", "relu", "--depth", "1", "--sigma-w", "-1", "--order", "3"],
                                  ["series", "relu", "--depth", "1", "--sigma-w", "os.system", "--order", "3"],
                                  ["spectrum", "relu", "--depth", "1", "--dim", "1", "--kmax", "3"]])
def test_cli_series_errors(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_data_spectrum_report_bounds_hold():
    """Murray et al. Thm 4.1 and 4.3 on a near-rank-5 cloud in R^50 (FORMULAS.md §4)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 50)) + 1e-2 * rng.normal(size=(300, 50))
    r = ntksym.data_spectrum_report("relu", x, 3, 2 ** 0.5, 0.0, order=1000)
    b = r["bounds"]
    assert b["eff_K"] <= b["thm41_bound"] and b["eff_K_centered"] <= b["thm43_bound"]
    assert r["generic_bounds"] and all(g["measured_lambda_after_rank"] <= g["bound"] * (1 + 1e-9)
                                       for g in r["generic_bounds"])
    # the series Gram agrees with the closed-form kernel on the normalised data up to the series tail
    xn = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(50)
    _, ntk = ntksym.kernel("relu", xn, depth=3, sigma_w=2 ** 0.5)
    lam = np.linalg.eigvalsh(ntk)[::-1]
    assert abs(lam[0] - r["ntk"].eigenvalues[0]) <= 300 * r["series_tail"] + 1e-9 * lam[0]


def test_mpmath_fft_route_matches_mpmath_route_to_30_digits():
    act = ntksym.activation("relu")
    dual = ntksym.dual_kernels(act)
    from ntksym.series import series_mpmath_fft
    a = series_mpmath(act, dual, NET, 12, 30)
    b = series_mpmath_fft(act, dual, NET, 64, 30)
    with mpmath.workdps(30):
        assert max(abs(x - y) for x, y in zip(a.ntk, b.ntk[:12])) < mpmath.mpf("1e-28")


def test_sphere_spectrum_relu_exact_values_within_truncation():
    """Murray's l = 2 ReLU NTK on S² (d = 3): λ = 1/2, 1/3, 5/64, 0, 1/192, 0, 23/16384 (exact rationals,
    FORMULAS.md §4); at d = 3 the series converges slowly, so each value must lie within the reported
    truncation bound (and the bound must be small)."""
    exact = [sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(5, 64), 0, sp.Rational(1, 192), 0,
             sp.Rational(23, 16384)]
    spec = sphere_spectrum("relu", 1, 3, 6, sp.sqrt(2), 0, digits=25, order=4096)
    # our first layer is σ_w² ρ = 2ρ: twice Murray's κ_p, hence twice λ_k
    # (issue 12: the Funk–Hecke route now gives these to ~1e-35, so the difference is taken at 40 digits,
    #  not at mpmath's default 15, whose own rounding of 2/3 is 4e-17)
    for k, lam in enumerate(exact):
        with mpmath.workdps(40):
            err = abs(spec.eigenvalues[k] - 2 * mpmath.mpf(sp.N(lam, 40)))
        assert err <= spec.truncation[k] + mpmath.mpf("1e-24"), (k, err, spec.truncation[k])
        assert spec.truncation[k] < 1e-4
