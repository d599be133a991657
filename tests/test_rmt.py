"""Linear-width CK/NTK spectra (Fan & Wang 2020, arXiv 2005.11879): limit laws vs independent routes and samples.

Tolerances and why:
* fixed-point residuals ≤ 1e-10 (the solver's stopping rule is 1e-11 relative);
* exact special cases (closed-form MP, single layer through a scalar MP-map solve, product-MP polynomial from
  S-transforms) agree to 1e-8 relative: both sides are solved to ~1e-12, the margin covers conditioning;
* total mass (grid trapezoid + Cauchy tails + atoms) = 1 within 2e-4: trapezoid error of an η-smoothed
  density with grid spacing ≈ η/2 is ~1e-4 at square-root edges (measured 1e-6 … 8e-5);
* KS (both CDFs Cauchy(η)-smoothed) against one sampled network at n = 500: the measured values are
  0.002–0.007 (CK), 0.002–0.005 (Lemma 3.5 matrix), 0.02–0.04 (tanh NTK: slow finite-n convergence, see
  FORMULAS §8); thresholds are ~3× the measured values, far below the 0.1–0.8 a wrong law gives.
"""
import math

import numpy as np
import pytest

from ntksym.errors import ActivationError, InputError
from ntksym.finite.rmt import limit_spectrum, mp_density, mp_stieltjes, normalize_activation, stieltjes
from ntksym.finite.rmt_sample import ks_distance, sample_spectra, stieltjes_error, training_simulation

G3 = (0.6667, 1.25, 0.6667, 0.8333)   # FORMULAS §8: d = (1.5, 0.8, 1.5, 1.2)·n


@pytest.fixture(scope="module")
def tanh():
    return normalize_activation("tanh")


def test_normalization_constants():
    # sin(x): Eσ = 0, Eσ² = (1 − e^{−2})/2, Eσ′ = e^{−1/2}, Eσ′² = (1 + e^{−2})/2, all exact
    act = normalize_activation("sin")
    sd = math.sqrt((1 - math.exp(-2)) / 2)
    assert act.mean == 0 and abs(act.sd - sd) < 1e-14
    assert abs(act.b - math.exp(-0.5) / sd) < 1e-14
    assert abs(act.a_sigma - (1 + math.exp(-2)) / 2 / sd ** 2) < 1e-13
    assert all("exact" in r for _, r in act.routes)
    # sin(1.5x) of FORMULAS §8: b = 0.6925, a_σ = 2.3006; tanh: b = 0.9646, a_σ = 1.1778 (numeric route)
    s15 = normalize_activation("sin", {"a": "1.5"})
    assert abs(s15.b - 0.6925) < 5e-5 and abs(s15.a_sigma - 2.3006) < 5e-5
    t = normalize_activation("tanh")
    assert abs(t.b - 0.9646) < 5e-5 and abs(t.a_sigma - 1.1778) < 5e-5
    # centered/normalized by sampling, an independent route
    z = np.random.default_rng(0).standard_normal(400_000)
    relu = normalize_activation("relu")
    assert abs(relu.fn(z).mean()) < 5e-3 and abs(relu.fn(z).var() - 1) < 1e-2
    with pytest.raises(ActivationError):
        normalize_activation("3")


def test_mp_closed_form_and_l0():
    x = np.linspace(0.2, 2.8, 7)
    m = mp_stieltjes(x + 1e-9j, 0.5)
    assert np.allclose(m.imag / math.pi, mp_density(x, 0.5), rtol=1e-6, atol=1e-8)
    res = limit_spectrum("x", [0.5], grid=800, eta=1e-3, xmin=0.0, xmax=3.1)
    assert np.max(np.abs(res.density - mp_density(res.x, 0.5))[np.abs(res.x - 1.5) < 1.2]) < 3e-3
    # γ > 1: atom 1 − 1/γ at 0 listed, the rest integrates to 1/γ
    r2 = limit_spectrum("tanh", [2.0], grid=600)
    assert r2.atoms == ((0.0, 0.5),) and abs(r2.total_mass - 1) < 2e-4


def _one_layer_reference(act, g0, g1, z, iters=20000):
    """m of MP_{γ₁} ⊠ ((1−b²) + b² MP_{γ₀}) by the scalar MP-map equation m = (1/c) m_ν(z/c), c = 1 − γ₁ − γ₁zm."""
    b2 = act.b ** 2
    m = -1 / z
    for _ in range(iters):
        c = 1 - g1 - g1 * z * m
        w = z / c
        new = mp_stieltjes((w - (1 - b2)) / b2, g0) / b2 / c
        if np.max(np.abs(new - m)) < 1e-14:
            break
        m = 0.5 * m + 0.5 * new
    return m


@pytest.mark.parametrize("name", ["tanh", "x"])
def test_single_layer_exact(name):
    act = normalize_activation(name)
    x = np.linspace(-0.2, 5.0, 60)
    m, res, _ = stieltjes(act, (0.5, 0.7), x, 0.05, "ck")
    ref = _one_layer_reference(act, 0.5, 0.7, x + 0.05j)
    assert res < 1e-10
    assert np.max(np.abs(m - ref) / np.abs(ref)) < 1e-8


def test_linear_is_product_mp():
    """b = 1: μ_L = MP_{γ_L} ⊠ … ⊠ MP_{γ₀}; with u = −1 − zm the S-transform Π 1/(1+γ_ℓu) gives
    (1+u) Π_ℓ (1+γ_ℓu) − zu = 0 (independent of the fixed-point equations)."""
    g = (0.5, 0.7, 1.3)
    x = np.linspace(0.0, 8.0, 50)
    z = x + 0.02j
    m, res, _ = stieltjes(normalize_activation("x"), g, x, 0.02, "ck")
    u = -1 - z * m
    poly = (1 + u) * np.prod([1 + gg * u for gg in g], axis=0) - z * u
    assert res < 1e-10 and np.max(np.abs(poly) / (1 + np.abs(z * u))) < 1e-9
    assert np.all(m.imag > 0)
    # and it is the physical branch: a sampled product matrix matches (atom 1 − 1/1.3 at 0)
    law = limit_spectrum("x", g, grid=1500)
    assert law.atoms == ((0.0, pytest.approx(1 - 1 / 1.3)),)
    assert abs(law.total_mass - 1) < 2e-4
    s = sample_spectra("x", g, 500, seed=3, ntk=False)
    assert ks_distance(s.ck, law) < 0.01


def test_order_matters(tanh):
    """The affine map comes first (Thm 3.4): the wrong order misfits samples (FORMULAS §8: KS 0.084 vs 0.002)."""
    g = (0.5, 0.5)
    law = limit_spectrum(tanh, g, grid=500)
    s = sample_spectra(tanh, g, 500, seed=2, ntk=False)
    ks = ks_distance(s.ck, law)
    # wrong order: (1 − b²) + b²·(MP_{γ₁} ⊠ MP_{γ₀}) — the linear law, shifted and scaled
    lin = limit_spectrum("x", g, grid=500)
    b2 = tanh.b ** 2
    wrong_cdf = lin.cdf((law.x - (1 - b2)) / b2)
    lam = np.sort(s.ck)
    emp = np.searchsorted(lam, law.x, side="right") / lam.size
    assert ks < 0.01 and np.max(np.abs(emp - wrong_cdf)) > 0.05


@pytest.mark.parametrize("kernel", ["ck", "ntk"])
def test_mass_one(tanh, kernel):
    law = limit_spectrum(tanh, G3, kernel=kernel, grid=1200)
    assert law.residual < 1e-10
    assert abs(law.total_mass - 1) < 2e-4
    assert law.mass_on_grid > 0.98 and np.min(law.density) > -1e-10
    # the NTK mean eigenvalue 1 + Σ a_σ^ℓ (trace identity) from the Stieltjes transform at large |z|
    if kernel == "ntk":
        z = 1e4j
        m, _, _ = stieltjes(tanh, G3, np.array([0.0]), 1e4, "ntk")
        mean = (z + 1 / m[0]).real   # −1/m(z) = z − mean + O(1/z)
        assert abs(mean - (1 + sum(tanh.a_sigma ** k for k in range(1, 4)))) < 1e-3


def test_sampled_spectra_match(tanh):
    law_ck = limit_spectrum(tanh, G3, "ck", grid=1000)
    law_ntk = limit_spectrum(tanh, G3, "ntk", grid=1000)
    s = sample_spectra(tanh, G3, 500, seed=0)
    assert ks_distance(s.ck, law_ck) < 0.02
    assert ks_distance(s.lemma35, law_ntk) < 0.015
    assert ks_distance(s.ntk, law_ntk) < 0.1
    # Stieltjes distance at η = 0.5 (FORMULAS: 2e-2 / 3.7e-2 at n = 1000)
    x = np.linspace(0, 10, 80)
    m, _, _ = stieltjes(tanh, G3, x, 0.5, "ck")
    assert stieltjes_error(s.ck, m, x + 0.5j) < 0.05
    # a wrong law is detected: the CK law does not fit the NTK matrix
    assert ks_distance(s.ntk, law_ck) > 0.5


def test_b_zero_cos():
    """cos is even: b = 0, so μ_L = MP_{γ_L} and the NTK law is r₊ + MP_{γ_L}, with r₊ = Σ a_σ^{L−ℓ}."""
    act = normalize_activation("cos")
    assert abs(act.b) < 1e-15
    g = (0.8, 0.6, 0.5)
    ck = limit_spectrum(act, g, "ck", grid=800, eta=1e-3)
    inside = (ck.x > 0.2) & (ck.x < 2.8)
    assert np.max(np.abs(ck.density - mp_density(ck.x, 0.5))[inside]) < 0.02
    ntk = limit_spectrum(act, g, "ntk", grid=800)
    rp = act.a_sigma + act.a_sigma ** 2
    assert abs(ntk.constants.r_plus - rp) < 1e-12
    s = sample_spectra(act, g, 600, seed=1)
    assert ks_distance(s.ck, ck) < 0.02
    assert ks_distance(s.lemma35, ntk) < 0.025   # measured 0.0077 (n = 600)
    # the sampled NTK itself converges slowly (r₊ = 6.8 amplifies O(d^{-1/2}) diagonal fluctuations; measured
    # KS 0.285, 0.225, 0.183 at n = 300, 600, 1200), but its mean is the trace identity 1 + a_σ + a_σ²
    assert ks_distance(s.ntk, ntk) < 0.4
    assert abs(s.ntk.mean() / (1 + rp) - 1) < 0.01


@pytest.mark.parametrize("g, mass", [((4.0, 4.0), 0.5), ((3.0, 5.0, 6.0), 0.3)])
def test_ntk_atom_at_r_plus(g, mass):
    """Σ 1/γ_ℓ < 1: the Lemma 3.5 matrix r₊I + Σ c_ℓX_ℓᵀX_ℓ has a kernel of dimension n(1 − Σ 1/γ_ℓ).
    Three routes: the listed atom, η·Im m(r₊ + iη) → mass (solver at η = 1e-6), and a sampled matrix."""
    act = normalize_activation("sin")
    law = limit_spectrum(act, g, "ntk", grid=600)
    rp = law.constants.r_plus
    assert law.atoms == ((rp, pytest.approx(mass)),) and abs(law.total_mass - 1) < 2e-4
    m, _, _ = stieltjes(act, g, np.array([rp]), 1e-6, "ntk")
    assert abs(1e-6 * m.imag[0] - mass) < 1e-6
    s = sample_spectra(act, g, 200, seed=0)
    assert np.mean(np.abs(s.lemma35 - rp) < 1e-8) == pytest.approx(mass)


def test_small_b_continuity():
    """b → 0 is continuous: the Thm 3.7 solver at b² = 5e-4 and the closed form used below b² = 1e-4 agree
    with the b = 0 law (CK density within 1e-3; measured 6e-7)."""
    g = (0.8, 0.6, 0.5)
    ref = limit_spectrum("cos", g, "ck", grid=300)
    for a, route in (("1e-2", "Thm 3.7"), ("1e-3", "treated as 0")):
        law = limit_spectrum(f"cos(x) + {a}*x", g, "ck", grid=300, xmin=ref.x[0], xmax=ref.x[-1], eta=ref.eta)
        assert route in law.route and law.residual < 1e-8
        assert np.max(np.abs(law.density - ref.density)) < 1e-3


def test_empirical_mu0(tanh):
    s = sample_spectra(tanh, (0.5, 0.7), 400, seed=4, ntk=False)
    law = limit_spectrum(tanh, (0.5, 0.7), grid=600, mu0_eigenvalues=s.mu0)
    law_mp = limit_spectrum(tanh, (0.5, 0.7), grid=600, xmin=law.x[0], xmax=law.x[-1], eta=law.eta)
    assert law.residual < 1e-10 and "empirical" in law.mu0
    assert np.max(np.abs(law.density - law_mp.density)) < 0.05   # O(1/n) differences only
    assert ks_distance(s.ck, law) < 0.02


def test_bad_inputs(tanh):
    for g in ([], [0.5, -1], [0.5, float("inf")], ["a"]):
        with pytest.raises(InputError):
            limit_spectrum(tanh, g)
    with pytest.raises(InputError):
        limit_spectrum(tanh, [0.5, 0.5], kernel="nngp")
    with pytest.raises(InputError):
        limit_spectrum(tanh, [0.5, 0.5], grid=3)
    with pytest.raises(InputError):
        limit_spectrum(tanh, [0.5, 0.5], eta=0)


def test_training_bulk_invariance_and_outlier(tanh):
    """Wang et al. 2022 phenomenon, measured (n = 300, one step): lr = 1 → bulk KS 0.003, top unchanged;
    lr = 400 ≈ 1.3n → top 7.25 → 14.3, alignment with y 0.20 → 0.53, bulk KS 0.010."""
    tr = training_simulation(tanh, n=300, learning_rates=(1.0, 400.0), steps=1, seed=0)
    assert tr.bulk_ks[0] < 0.02 and abs(tr.top[0] / tr.initial_top - 1) < 0.01
    assert tr.bulk_ks[1] < 0.04                       # the bulk stays even after the large step
    assert tr.top[1] > 1.5 * tr.initial_top           # an outlier …
    assert tr.alignment[1] > 2 * tr.initial_alignment  # … aligned with the labels
