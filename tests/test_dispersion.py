"""NTK dispersion theory (Seleznova & Kutyniok ICML 2022; Hanin & Nica ICLR 2020) and its checks.

Every theoretical number is checked independently: the transfer matrix against
the closed-form E[Θ], a SymPy expansion of the scalar representation, a Monte
Carlo of that representation and a direct Monte Carlo of the network; the
continuum limits against the exact finite-(M, L) values at large M.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from ntksym.errors import NetworkError
from ntksym.finite import dispersion as th
from ntksym.finite import empirical as emp


# ---------------------------------------------------------------------------
# exact finite-(M, L) moments
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("M,L,sw2", [(3, 1, 2), (50, 10, 2), (7, 4, 1.5), (20, 30, 2.5), (100, 1, 0.7)])
def test_mean_matches_closed_form(M, L, sw2):
    """E[Θ] = (L+1)a^L + Σ_k a^k; weights and biases separately (float path, rel. 1e-12: rounding only)."""
    a = sw2 / 2
    assert th.exact_moments(M, L, sw2).mean == pytest.approx(th.mean_ntk(L, sw2), rel=1e-12)
    assert th.exact_moments(M, L, sw2, "weights").mean == pytest.approx((L + 1) * a ** L, rel=1e-12)
    assert th.exact_moments(M, L, sw2, "biases").mean == pytest.approx(sum(a ** k for k in range(L + 1)), rel=1e-12)


def test_exact_rational_route():
    """Rational arithmetic: E[Θ] = 2(L+1) exactly at the EOC; float and exact routes agree to 1e-13."""
    for M, L in [(5, 1), (12, 6), (50, 10)]:
        t = th.exact_moments(M, L, 2, exact=True)
        assert isinstance(t.exact_ratio, Fraction)
        assert t.mean == 2 * (L + 1)
        assert t.ratio == pytest.approx(th.dispersion(M, L, 2), rel=1e-13)
    t = th.exact_moments(9, 5, 2.5, exact=True)
    assert t.ratio == pytest.approx(th.dispersion(9, 5, 2.5), rel=1e-13)


def _symbolic_second_moment(M, L, a):
    """E[Θ²] by expanding Θ = Σ_l (‖h^{l−1}‖² + 1)‖δ^l‖² as a polynomial (module docstring formula)
    and taking expectations monomial by monomial with the per-layer moments (independent of the
    automaton used by the transfer matrices)."""
    M = sp.Integer(M)
    xs, ys, xi2 = sp.symbols(f"x1:{L + 1}"), sp.symbols(f"y1:{L + 1}"), sp.Symbol("xi2")

    def prod(seq):
        return sp.Mul(*seq)

    def delta(l):  # 1-based l = 1..L+1
        if l == L + 1:
            return sp.Integer(1)
        body = prod(ys[l - 1:L]) + 2 / M * xi2 * sum(prod(ys[l - 1:m - 1]) * prod(xs[m:L]) for m in range(l, L + 1))
        return a ** (L - l + 1) * body

    theta = sum((a ** (l - 1) * prod(xs[:l - 1]) + 1) * delta(l) for l in range(1, L + 2))
    poly = sp.Poly(sp.expand(theta ** 2), *xs, *ys, xi2)
    mom = {(0, 0): 1, (1, 0): 1, (0, 1): 1 - 2 / M, (2, 0): 1 + 5 / M, (0, 2): 1 + 1 / M - 4 / M ** 2,
           (1, 1): 1 - 1 / M}
    total = 0
    for powers, coeff in poly.terms():
        term = coeff * {0: 1, 1: 1, 2: 3}[powers[-1]]
        for j in range(L):
            term *= mom[(powers[j], powers[L + j])]
        total += term
    return sp.nsimplify(total)


@pytest.mark.parametrize("M,L,sw2", [(10, 1, 2), (10, 3, 2), (6, 3, Fraction(5, 2)), (8, 2, Fraction(3, 2))])
def test_second_moment_matches_symbolic_expansion(M, L, sw2):
    """Transfer matrix == brute-force polynomial expansion, exactly (rational arithmetic)."""
    t = th.exact_moments(M, L, sw2, exact=True)
    second = _symbolic_second_moment(M, L, sp.Rational(sw2.numerator, sw2.denominator) / 2
                                     if isinstance(sw2, Fraction) else sp.Rational(sw2, 2))
    assert sp.Rational(t.exact_ratio.numerator, t.exact_ratio.denominator) * sp.Rational(t.mean) ** 2 == second


def test_scalar_representation_monte_carlo():
    """The scalar representation sampled directly (K, χ², ξ) vs the exact R: within 4 SE.
    4·10⁵ draws give SE ≈ 0.007 on R ≈ 1.97; changing E[x²] by 1/M moves R by 0.08 (11 SE), so a
    wrong per-layer moment would fail."""
    rng = np.random.default_rng(5)
    M, L, S, a = 20, 6, 400_000, 1.0
    K = rng.binomial(M, 0.5, size=(S, L))
    K = np.maximum(K, 1)  # a dead layer has probability 2^-20; the theory ignores it
    x = 2 * rng.chisquare(K) / M
    y = 2 * rng.chisquare(np.maximum(K - 1, 1e-300)) / M * (K > 1)
    xi2 = rng.standard_normal(S) ** 2
    delta = np.ones(S)
    theta = a ** L * np.prod(x, axis=1) + 1.0          # l = L+1
    hsq = a ** np.arange(L) * np.concatenate([np.ones((S, 1)), np.cumprod(x, axis=1)[:, :-1]], axis=1)
    for l in range(L, 0, -1):                          # ‖δ^l‖² = a y_l ‖δ^{l+1}‖² + (2/M) a ξ² ‖h^L‖²/‖h^l‖²
        ratio = np.prod(x[:, l:], axis=1) * a ** (L - l)
        delta = a * y[:, l - 1] * delta + 2 / M * a * xi2 * ratio
        theta += (hsq[:, l - 1] + 1) * delta
    u, v = theta ** 2, theta
    from ntksym.finite.montecarlo import ratio_estimate
    r, se = ratio_estimate(u, v)
    exact = th.dispersion(M, L, 2)
    assert se < 0.01
    assert abs(r - exact) < 4 * se, (r, se, exact)
    assert abs(v.mean() - 2 * (L + 1)) < 4 * v.std() / math.sqrt(S)


def test_formulas_table():
    """The exact values of FORMULAS.md §7 (computed there independently), to their 4-5 digits."""
    table = [((50, 5, 2), "all", 1.2398), ((50, 10, 2), "all", 1.5941), ((50, 20, 2), "all", 2.833),
             ((100, 20, 2), "all", 1.6215), ((50, 10, 1.5), "all", 1.1722), ((50, 10, 2.5), "all", 1.8577),
             ((50, 10, 2), "weights", 2.0502)]
    for (M, L, sw2), terms, r in table:
        assert th.dispersion(M, L, sw2, terms) == pytest.approx(r, abs=6e-4), (M, L, sw2)
    assert th.exact_moments(50, 10, 1.5).mean == pytest.approx(4.4505, abs=1e-4)
    assert th.exact_moments(50, 10, 2.5).mean == pytest.approx(145.01, abs=5e-3)


# ---------------------------------------------------------------------------
# direct network Monte Carlo
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sw2", [1.5, 2.0, 2.5])
def test_network_monte_carlo_matches_exact(sw2):
    """Standard parameterization, zero trainable biases, n_0 = M (the theory's setup): MC E[Θ] and
    R within 4 SE of the exact values (R ≈ 1.3-1.55, SE ≈ 0.02).  Power: SE(R) < (R − 1)/4 here, so a network without dispersion
    (R = 1) or one following exp(5λ) exactly would be rejected (checked below)."""
    M, L, S = 16, 3, 2500
    c = th.compare([(M, L, sw2)], samples=S, seed=11)[0]
    assert abs(c.z_mean) < 4 and abs(c.z_ratio) < 4 and abs(c.z_ratio_theory) < 4, c
    assert c.mc_ratio_se < (c.theory_ratio - 1) / 4
    assert c.mc_ratio_se == pytest.approx(c.theory_ratio_se, rel=0.3)  # light tails at λ = 3/16
    assert abs(c.theory_ratio - c.hanin_nica) > 4 * c.mc_ratio_se


def test_bias_gradients_count_with_zero_sigma_b():
    """In the standard parameterization σ_b = 0 leaves the biases at 0 but trainable: the readout bias
    alone contributes 1 to Θ(x, x), so a depth-1 network's Θ equals ‖h¹‖² + 1 + ‖δ¹‖²(‖x‖² + 1)."""
    rng = np.random.default_rng(0)
    M = 6
    net = emp.sample_network(1, M, M, math.sqrt(2), 0.0, rng, parameterization="standard")
    x = th.seleznova_inputs(M, 1)
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    drelu = lambda z: (z > 0).astype(float)  # noqa: E731
    theta = emp.empirical_kernels(net, x, None, relu, drelu)[1][0, 0]
    z = net.weights[0] @ x[0]
    h = np.maximum(z, 0)
    d1 = net.weights[1][0] * (z > 0)
    assert theta == pytest.approx(h @ h + 1 + (d1 @ d1) * 2, rel=1e-13)


# ---------------------------------------------------------------------------
# continuum limits and phases
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_continuum_limits_from_exact(lam):
    """Richardson 2R(2M) − R(M) (cancels the O(1/M) term) at M = 800, 1600 matches R_EOC and R_W to
    3e-3 relative, while R(1600) alone is ~0.7% off: the test resolves the 1/M correction."""
    for f, sw2, terms in [(th.r_eoc, 2.0, "all"), (th.r_weights, 2.0, "weights"), (th.r_weights, 3.0, "all")]:
        r1, r2 = (th.dispersion(M, int(lam * M), sw2, terms) for M in (800, 1600))
        assert 2 * r2 - r1 == pytest.approx(f(lam), rel=3e-3), (f.__name__, sw2, terms)
    assert abs(th.dispersion(1600, 1600, 2.0) / th.r_eoc(1.0) - 1) > 3e-3
    assert th.dispersion(1600, 1600, 2.0) == pytest.approx(30.30, abs=0.01)   # FORMULAS §7
    assert th.dispersion(1600, 1600, 3.0) == pytest.approx(76.34, abs=0.01)


def test_limit_shapes():
    """λ → 0: R → 1 (the numerators cancel to O(λ²)); λ → ∞: e^{5λ}/12 and e^{5λ}/3;
    Hanin–Nica's exp(5λ) is within constant factors of R_W."""
    for f in (th.r_eoc, th.r_weights):
        assert f(0) == 1.0
        assert f(1e-6) == pytest.approx(1.0, abs=1e-4)
        assert f(1e-3) > 1.0
    # leading corrections 1 + 48/(45λ) and 1 + 2/(3λ): 1.1% and 0.7% at λ = 100
    assert th.r_eoc(100) * 12 / math.exp(500) == pytest.approx(1 + 48 / 4500, rel=1e-3)
    assert th.r_weights(100) * 3 / math.exp(500) == pytest.approx(1 + 2 / 300, rel=1e-3)
    for lam in (0.25, 1, 2, 4):
        assert 0.3 < th.r_weights(lam) / th.hanin_nica(lam) <= 1.0
    assert th.r_eoc(0.3) < th.r_weights(0.3) < th.hanin_nica(0.3)


def test_ordered_phase():
    """σ_w² = 1.5: R is depth-independent for L ≫ 1 and (R − 1)M = 6.87, 6.53, 6.46 at M = 100, 400, 1600
    (FORMULAS §7, to its 2 decimals)."""
    for M, c in [(100, 6.87), (400, 6.53), (1600, 6.46)]:
        t = th.ordered_limit(M, 1.5)
        assert (t.ratio - 1) * M == pytest.approx(c, abs=0.006)
    assert th.dispersion(100, 200, 1.5) == pytest.approx(th.dispersion(100, 400, 1.5), rel=1e-12)
    assert th.continuum_limit(1.0, 1.5, M=100) == th.ordered_limit(100, 1.5).ratio
    with pytest.raises(NetworkError):
        th.continuum_limit(1.0, 1.5)
    with pytest.raises(NetworkError):
        th.ordered_limit(100, 2.0)


def test_phases_and_deep_chaotic_finite():
    assert [th.relu_phase(s) for s in (1.0, 2.0, 2.5)] == ["ordered", "eoc", "chaotic"]
    t = th.exact_moments(50, 3000, 3.0)      # a^{2L} overflows float64; R stays finite
    assert math.isinf(t.second) and math.isfinite(t.ratio) and t.ratio > 1e10


@pytest.mark.parametrize("bad", [dict(M=0, L=1), dict(M=3, L=0), dict(M=3, L=1, sigma_w2=-1),
                                 dict(M=3, L=1, terms="x"), dict(M=2.5, L=1)])
def test_bad_arguments(bad):
    kw = dict(sigma_w2=2.0)
    kw.update(bad)
    with pytest.raises(NetworkError):
        th.exact_moments(**kw)
    with pytest.raises(NetworkError):
        th.r_eoc(-1)


# ---------------------------------------------------------------------------
# training run
# ---------------------------------------------------------------------------

def test_loss_gradients_match_finite_differences():
    """The GD gradients (per layer, weights and biases) against central differences, rel. 1e-6."""
    rng = np.random.default_rng(3)
    M, L, n = 5, 2, 4
    net = emp.sample_network(L, M, M, 1.3, 0.2, rng, parameterization="standard")
    X, y = rng.standard_normal((n, M)), rng.standard_normal((n, 1))
    phi, dphi = np.tanh, lambda z: 1 - np.tanh(z) ** 2

    def loss(n2):
        return 0.5 * np.mean((emp.forward(n2, X, phi)[2] - y) ** 2)

    pre, ins, out = emp._features(net, X, phi)
    gw, gb = th._loss_gradients(net, pre, ins, out, y, dphi)
    grad = np.concatenate([np.concatenate([w.ravel(), b.ravel()]) for w, b in zip(gw, gb)])
    p = emp.parameter_vector(net)
    fd = np.empty_like(p)
    for i in range(p.size):
        e = np.zeros_like(p)
        e[i] = 1e-6
        fd[i] = (loss(emp.with_parameters(net, p + e)) - loss(emp.with_parameters(net, p - e))) / 2e-6
    assert np.max(np.abs(fd - grad)) < 1e-6 * np.max(np.abs(grad))


def test_training_run_lazy_at_large_width():
    """GD lowers the loss, and the relative NTK change shrinks as the width grows (lazy regime):
    M = 256 moves the NTK at least 3x less than M = 16 at depth 2 (~1/√M scaling predicts 4x)."""
    small = th.training_run(16, 2, 2.0, steps=30, n=8, seed=1)
    large = th.training_run(256, 2, 2.0, steps=30, n=8, seed=1)
    for r in (small, large):
        assert r.loss_final < r.loss_initial and r.phase == "eoc" and r.lr > 0
    assert large.ntk_change * 3 < small.ntk_change
    with pytest.raises(NetworkError):
        th.training_run(8, 2, 2.0, steps=0)


# ---------------------------------------------------------------------------
# higher moments and the exact standard error of R̂
# ---------------------------------------------------------------------------

def test_layer_moments_match_quoted_ones():
    """The generic chi-square/binomial layer moments reproduce FORMULAS' second moments (rel. 1e-12)."""
    M = 37
    quoted = {(1, 0): 1, (0, 1): 1 - 2 / M, (2, 0): 1 + 5 / M, (0, 2): 1 + 1 / M - 4 / M ** 2, (1, 1): 1 - 1 / M}
    for (p, q), v in quoted.items():
        assert th._layer_moment(M, p, q) == pytest.approx(v, rel=1e-12)


@pytest.mark.parametrize("M,L,sw2", [(50, 10, 2.0), (16, 3, 1.5), (40, 16, 2.5)])
def test_generic_tuple_transfer_reproduces_pair_automaton(M, L, sw2):
    """k = 1, 2 of the generic k-tuple transfer equal the specialised code (rel. 1e-10, rounding)."""
    lm = th.log_moments(M, L, sw2, k_max=2)
    t = th.exact_moments(M, L, sw2)
    assert math.exp(lm[0]) == pytest.approx(t.mean, rel=1e-10)
    assert math.exp(lm[1] - 2 * lm[0]) == pytest.approx(t.ratio, rel=1e-10)


def test_exact_standard_error_matches_replicates():
    """The exact SE of R̂ (from E[Θ³], E[Θ⁴]) against the spread of R̂ over 400 replicate Monte Carlos of
    the scalar representation with S = 200 each, M = 20, L = 3 (λ small: light tails, so the delta
    method applies); agreement to 15% (the replicate SD has ~3.5% sampling error).  Also E[Θ³]/E[Θ]³
    against a 4·10⁵-draw scalar MC within 4 SE."""
    rng = np.random.default_rng(9)
    M, L, a = 20, 3, 1.0
    S = 400 * 200
    K = np.maximum(rng.binomial(M, 0.5, size=(S, L)), 1)
    x = 2 * rng.chisquare(K) / M
    y = 2 * rng.chisquare(np.maximum(K - 1, 1e-300)) / M * (K > 1)
    xi2 = rng.standard_normal(S) ** 2
    delta, theta = np.ones(S), a ** L * np.prod(x, axis=1) + 1.0
    hsq = np.concatenate([np.ones((S, 1)), np.cumprod(x, axis=1)[:, :-1]], axis=1)
    for l in range(L, 0, -1):
        delta = a * y[:, l - 1] * delta + 2 / M * a * xi2 * np.prod(x[:, l:], axis=1)
        theta += (hsq[:, l - 1] + 1) * delta
    reps = theta.reshape(400, 200)
    rhat = np.mean(reps ** 2, axis=1) / np.mean(reps, axis=1) ** 2
    se = th.ratio_standard_error(M, L, 2.0, 200)
    assert np.std(rhat, ddof=1) == pytest.approx(se, rel=0.15)
    lm = th.log_moments(M, L, 2.0, k_max=4)
    m3 = math.exp(lm[2] - 3 * lm[0])
    t3 = theta / theta.mean()
    assert abs(np.mean(t3 ** 3) - m3) < 4 * np.std(t3 ** 3) / math.sqrt(S)
    assert np.std(t3 ** 3) / math.sqrt(S) < 0.02 * (m3 - 1)


# ---------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------

def test_plot_dispersion_writes_pdf_and_png(tmp_path):
    pytest.importorskip("matplotlib")
    from ntksym.finite.plots import plot_dispersion
    comps = th.compare([(8, 2, 1.5), (8, 2, 2.0), (8, 2, 2.5)], samples=50, seed=0)
    for name in ("d.pdf", "d.png"):
        path = plot_dispersion(tmp_path / name, comps, lam_max=0.5, widths=(8,), sigma_w2s=(1.5, 2.0, 2.5))
        assert (tmp_path / name).stat().st_size > 1000 and path.endswith(name)


def test_plot_dispersion_errors(tmp_path, monkeypatch):
    from ntksym.errors import NtksymError
    from ntksym.finite.plots import plot_dispersion
    with pytest.raises(NtksymError, match="pdf or .png"):
        plot_dispersion(tmp_path / "d.svg")
    with pytest.raises(NtksymError, match="directory"):
        plot_dispersion(tmp_path / "no" / "d.png")
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(NtksymError, match="matplotlib"):
        plot_dispersion(tmp_path / "d.png")
