"""Spectra of NTK Gram matrices on data (ntksym.spectrum.data).

Checks against closed forms, numpy.linalg, and the inequalities of Murray,
Jin, Bowman, Montúfar (ICLR 2023), Thm 4.1, 4.3 and the key lemma of Thm 4.8.
Every numerical assertion states its tolerance.
"""
import math

import numpy as np
import pytest

from ntksym.errors import InputError
from ntksym.spectrum.data import (AsymptoticRate, DataSpectrum, asymptotic_bound,
                                  condition_number, data_spectrum, effective_rank,
                                  generic_eigenvalue_bound, gram_from_coefficients,
                                  murray_bounds, normalize_rows)


def sphere_points(n, d, seed):
    rng = np.random.default_rng(seed)
    return normalize_rows(rng.standard_normal((n, d)))


def near_low_rank_cloud(n, d, r, noise, seed):
    """n points near a random r-dim subspace of R^d, rows normalised."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d, r)))
    X = rng.standard_normal((n, r)) @ U.T + noise * rng.standard_normal((n, d))
    return normalize_rows(X)


def arccos1_coefficients(P):
    """Taylor coefficients of the degree-1 arc-cosine kernel
    k1(ρ) = (√(1−ρ²) + (π − arccos ρ) ρ)/π = ρ/2 + (√(1−ρ²) + ρ arcsin ρ)/π:
    c_0 = 1/π, c_1 = 1/2, c_{2k+2} = (2k)! / (π 4^k (k!)² (2k+1)(2k+2)), odd p ≥ 3 zero.
    (d/dρ of √(1−ρ²) + ρ arcsin ρ is arcsin ρ.)"""
    c = np.zeros(P)
    c[0] = 1 / math.pi
    c[1] = 0.5
    a = 1.0  # a_k = C(2k, k) / 4^k, by the recurrence a_{k+1} = a_k (2k+1)/(2k+2)
    for k in range(P):
        p = 2 * k + 2
        if p >= P:
            break
        c[p] = a / ((2 * k + 1) * (2 * k + 2) * math.pi)
        a *= (2 * k + 1) / (2 * k + 2)
    return c


def arccos1(rho):
    rho = np.clip(rho, -1.0, 1.0)
    return (np.sqrt(1 - rho ** 2) + (math.pi - np.arccos(rho)) * rho) / math.pi


# ---------------------------------------------------------------- (1) Horner
def test_gram_from_coefficients_exp_kernel():
    """c_p = 1/p!, P = 40 terms: Σ c_p G^{⊙p} = exp(G) entrywise, rel. error < 1e-13."""
    X = sphere_points(60, 5, seed=1)
    G = X @ X.T
    c = [1 / math.factorial(p) for p in range(40)]
    K = gram_from_coefficients(G, c)
    ref = np.exp(G)
    assert np.max(np.abs(K - ref) / ref) < 1e-13


def test_gram_from_coefficients_arccos_and_callable():
    """Arc-cosine series (P = 400) vs the closed form on |ρ| ≤ 0.9, where the
    truncation tail is ≤ 0.9^400·Σc < 1e-18: abs. error < 1e-14; a callable is
    applied entrywise unchanged."""
    X = sphere_points(40, 3, seed=2)
    G = np.clip(X @ X.T, -0.9, 0.9)  # off-diagonal cosines bounded away from ±1
    c = arccos1_coefficients(400)
    assert np.max(np.abs(gram_from_coefficients(G, c) - arccos1(G))) < 1e-14
    assert np.array_equal(gram_from_coefficients(G, arccos1), arccos1(G))
    # a single coefficient is a constant matrix
    assert np.array_equal(gram_from_coefficients(G, [2.5]), np.full_like(G, 2.5))


def test_coefficient_sum_at_rho_one():
    """arc-cos coefficients sum to k1(1) = 1: truncated sum within 0.03 (tail ~ P^{-3/2})."""
    c = arccos1_coefficients(2000)
    assert abs(c.sum() - 1.0) < 0.03 and c.sum() < 1.0


# ------------------------------------------------ (2) eigenvalues, eff, cond
def test_data_spectrum_matches_numpy():
    """eigenvalues vs numpy.linalg.eigvalsh: max abs diff < 1e-12·λ_max."""
    X = sphere_points(80, 6, seed=3)
    K = gram_from_coefficients(X @ X.T, arccos1_coefficients(100)) / 80
    s = data_spectrum(K)
    assert isinstance(s, DataSpectrum) and s.n == 80
    ref = np.sort(np.linalg.eigvalsh(K))[::-1]
    assert np.all(np.diff(s.eigenvalues) <= 0)
    assert np.max(np.abs(s.eigenvalues - ref)) < 1e-12 * ref[0]
    assert s.trace == pytest.approx(np.trace(K), rel=1e-14)
    assert s.effective_rank == pytest.approx(np.trace(K) / ref[0], rel=1e-12)
    assert s.eigenvalues.dtype == np.float64 and not s.eigenvalues.flags.writeable


def test_effective_rank_and_condition_by_hand():
    """Hand values, rel. tolerance 1e-13."""
    A = np.array([[2.0, 1.0], [1.0, 2.0]])  # eigenvalues 3, 1
    assert effective_rank(A) == pytest.approx(4 / 3, rel=1e-13)
    assert condition_number(A) == pytest.approx(3.0, rel=1e-13)
    # a rotated diag(3, 2, 1): eff = 6/3 = 2, cond = 3
    Q, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((3, 3)))
    B = Q @ np.diag([3.0, 2.0, 1.0]) @ Q.T
    B = (B + B.T) / 2
    s = data_spectrum(B)
    np.testing.assert_allclose(s.eigenvalues, [3.0, 2.0, 1.0], rtol=1e-13)
    assert s.effective_rank == pytest.approx(2.0, rel=1e-13)
    assert s.condition_number == pytest.approx(3.0, rel=1e-13)
    # identity: eff = n, cond = 1
    assert effective_rank(np.eye(7)) == pytest.approx(7.0, rel=1e-15)
    assert condition_number(np.eye(7)) == 1.0
    # rank one 11ᵀ: eff = 1, singular ⇒ cond = inf
    J = np.ones((5, 5))
    assert effective_rank(J) == pytest.approx(1.0, rel=1e-13)
    assert condition_number(J) == math.inf


def test_input_validation():
    with pytest.raises(InputError):
        data_spectrum(np.array([[1.0, 2.0], [0.0, 1.0]]))  # not symmetric
    with pytest.raises(InputError):
        data_spectrum(np.ones((2, 3)))
    with pytest.raises(InputError):
        data_spectrum(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(InputError):
        effective_rank(-np.eye(3))
    with pytest.raises(InputError):
        normalize_rows(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(InputError):
        murray_bounds(2 * np.eye(3), [1.0, 1.0])  # diagonal must be 1
    with pytest.raises(InputError):
        murray_bounds(np.eye(3), [1.0, -0.5])     # c_p ≥ 0
    with pytest.raises(InputError):
        generic_eigenvalue_bound(np.eye(3), [1.0, 1.0], m=-1)


def test_normalize_rows():
    X = np.random.default_rng(5).standard_normal((10, 4)) * 7.0
    Y = normalize_rows(X)
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, rtol=1e-15, atol=0)
    np.testing.assert_allclose(Y * np.linalg.norm(X, axis=1, keepdims=True), X, rtol=1e-14)


# ---------------------------------------------- (3) Thm 4.1 / 4.3 bounds
def power_coefficients(P, a):
    c = np.arange(1, P + 1, dtype=float) ** (-a)  # c_p = (p+1)^{-a}
    return c / c.sum()


@pytest.mark.parametrize("coeffs", [arccos1_coefficients(200), power_coefficients(200, 1.5)],
                         ids=["arccos1", "power-1.5"])
def test_murray_effective_rank_bounds(coeffs):
    """n = 400 points near a random 5-dim subspace of R^50 (noise 1e-2), rows normalised.
    eff(K) ≤ Σc/c₀ (Thm 4.1) and eff(K̃) ≤ eff(XXᵀ)·Σ_{p≥1}c_p/c₁ (Thm 4.3), both with
    rel. slack 1e-12 for rounding."""
    X = near_low_rank_cloud(400, 50, 5, 1e-2, seed=6)
    G = X @ X.T
    b = murray_bounds(G, coeffs)
    assert b["n"] == 400
    assert 1.0 <= b["eff_K"] <= b["thm41_bound"] * (1 + 1e-12)
    assert 1.0 <= b["eff_K_centered"] <= b["thm43_bound"] * (1 + 1e-12)
    assert b["thm41_bound"] == pytest.approx(coeffs.sum() / coeffs[0], rel=1e-14)
    assert b["thm43_bound"] == pytest.approx(b["eff_G"] * coeffs[1:].sum() / coeffs[1], rel=1e-14)
    # near rank 5: eff(XXᵀ) ≤ 5 (+ the noise share), rel. tol 1e-12
    assert b["eff_G"] == pytest.approx(400 / np.linalg.eigvalsh(G)[-1], rel=1e-12)
    assert 1.0 <= b["eff_G"] <= 5.1
    # normalisation: K̃ = K − (c₀/n)11ᵀ with K = (1/n)Σ c_p G^{⊙p} (abs. tol 1e-13·max K)
    n = 400
    K = gram_from_coefficients(G, coeffs) / n
    Kc = K - coeffs[0] / n * np.ones((n, n))
    assert b["eff_K_centered"] == pytest.approx(effective_rank(Kc), rel=1e-10)
    assert b["eff_K"] == pytest.approx(effective_rank(K), rel=1e-12)


def test_thm41_tight_for_constant_plus_small():
    """c = (1, 0, ..., 0): K = 11ᵀ/n so eff(K) = 1 = Σc/c₀ (rel. 1e-13); c₁ = 0 ⇒ thm43 inf."""
    G = (lambda X: X @ X.T)(sphere_points(30, 3, seed=7))
    b = murray_bounds(G, [1.0, 0.0, 0.3])
    assert b["thm43_bound"] == math.inf
    b0 = murray_bounds(G, [1.0])
    assert b0["eff_K"] == pytest.approx(1.0, rel=1e-13)
    assert b0["thm41_bound"] == 1.0 and math.isnan(b0["eff_K_centered"])


# ---------------------------------------------------- (4) Thm 4.8 key lemma
def test_generic_key_lemma():
    """n = 300 points on S^3 ⊂ R^4, c_p = (p+1)^{-2}, P = 60.  For m = 1..6:
    λ_k(K) ≤ ‖G^{⊙m}‖/n · Σ_{j≥m} c_j for every k > rank(H_m) (rel. slack 1e-12).
    With all c_j > 0, H_m spans the polynomials of degree < m on the sphere, whose
    dimension Σ_{k<m} N(4,k) = 1, 5, 14, 30, 55, 91 — the numerical rank must match."""
    n = 300
    X = sphere_points(n, 4, seed=8)
    G = X @ X.T
    c = power_coefficients(60, 2.0)
    lam = data_spectrum(gram_from_coefficients(G, c) / n).eigenvalues
    expected_ranks = [1, 5, 14, 30, 55, 91]
    for m, expected in zip(range(1, 7), expected_ranks):
        rank, bound = generic_eigenvalue_bound(G, c, m)
        assert rank == expected
        tail = lam[rank:]                      # λ_k for k = rank+1 .. n (1-based)
        assert tail.size > 0
        assert np.all(tail <= bound * (1 + 1e-12)), (m, tail.max(), bound)
        # the bound is not vacuous: below λ_1
        assert bound < lam[0]
    # m = 0: H_0 = 0, rank 0, bound = ‖11ᵀ‖/n Σ c = Σ c ≥ λ_1
    rank0, bound0 = generic_eigenvalue_bound(G, c, 0)
    assert rank0 == 0 and bound0 == pytest.approx(c.sum(), rel=1e-12)
    assert lam[0] <= bound0 * (1 + 1e-12)


def test_generic_key_lemma_truncated_series():
    """If the series stops below m the tail is empty: bound 0, and λ_k(K) = 0 (to 1e-12·λ_1)
    for k > rank(H_m)."""
    n = 200
    X = sphere_points(n, 3, seed=9)
    G = X @ X.T
    c = [0.5, 0.3, 0.2]
    rank, bound = generic_eigenvalue_bound(G, c, 3)
    assert bound == 0.0 and rank == 1 + 3 + 5   # degree ≤ 2 harmonics on S^2
    lam = data_spectrum(gram_from_coefficients(G, c) / n).eigenvalues
    assert np.all(np.abs(lam[rank:]) <= 1e-12 * lam[0])


# ------------------------------------------------------------ (5) torch input
def test_torch_input_matches_numpy():
    """Same eigenvalues as numpy (abs. tol 1e-12·λ_max, float64)."""
    torch = pytest.importorskip("torch")
    X = sphere_points(64, 5, seed=10)
    K = gram_from_coefficients(X @ X.T, arccos1_coefficients(100)) / 64
    Kt = torch.from_numpy(X) @ torch.from_numpy(X).T
    Kt = gram_from_coefficients(Kt, arccos1_coefficients(100)) / 64
    assert isinstance(Kt, torch.Tensor)
    s_np, s_t = data_spectrum(K), data_spectrum(Kt)
    assert isinstance(s_t.eigenvalues, np.ndarray)
    np.testing.assert_allclose(s_t.eigenvalues, s_np.eigenvalues, rtol=0,
                               atol=1e-12 * s_np.eigenvalues[0])
    assert s_t.effective_rank == pytest.approx(s_np.effective_rank, rel=1e-12)
    Xn = normalize_rows(torch.from_numpy(3 * X))
    assert isinstance(Xn, torch.Tensor)
    np.testing.assert_allclose(Xn.numpy(), X, rtol=1e-14)
    # float32 tensors: tolerances follow float32 eps; effective ranks agree to rel. 1e-4
    X32 = normalize_rows(torch.from_numpy(X).to(torch.float32))
    c = arccos1_coefficients(100)
    b32, b64 = murray_bounds(X32 @ X32.T, c), murray_bounds(X @ X.T, c)
    for key in ("eff_K", "eff_K_centered", "eff_G", "thm43_bound"):
        assert b32[key] == pytest.approx(b64[key], rel=1e-4)


def test_float32_numpy_kept_and_tolerated():
    """float32 numpy data (unit diagonal only to ~1e-7) is accepted; results agree with
    float64 to rel. 1e-4; the numerical rank of H_m needs an rtol above float32 noise."""
    X = sphere_points(150, 4, seed=11)
    X32 = normalize_rows(X.astype(np.float32))
    assert X32.dtype == np.float32
    G32 = X32 @ X32.T
    c = power_coefficients(40, 2.0)
    assert gram_from_coefficients(G32, c).dtype == np.float32
    b32, b64 = murray_bounds(G32, c), murray_bounds(X @ X.T, c)
    assert b32["eff_K"] == pytest.approx(b64["eff_K"], rel=1e-4)
    assert generic_eigenvalue_bound(G32, c, 3)[0] == 14
    # float32 values promoted to float64 carry ~1e-7 noise: the diagonal check rejects them
    with pytest.raises(InputError, match="unit diagonal"):
        murray_bounds(G32.astype(np.float64) * (1 + 1e-6), c)


# ------------------------------------------------------ (6) asymptotic rates
def test_asymptotic_bound_values():
    """Values to rel. 1e-14 against the formulas of Thm 4.8 (informal)."""
    r = asymptotic_bound({"kind": "power", "alpha": 8.0}, n=1000, r=5)
    assert isinstance(r, AsymptoticRate)
    assert float(r) == pytest.approx(1000 ** (-7 / 5), rel=1e-14)
    assert "n^(-(α-1)/r)" in str(r)
    a, rr, n = 2.0, 3, 5000
    ap = 0.5
    s = asymptotic_bound({"kind": "sqrt-exp", "alpha": a, "alpha_prime": ap}, n=n, r=rr)
    t = n ** (1 / (2 * rr))
    assert float(s) == pytest.approx(t * math.exp(-ap * t), rel=1e-14)
    e = asymptotic_bound({"kind": "exp", "alpha": a, "alpha_prime": ap}, n=n, r=rr)
    assert float(e) == pytest.approx(math.exp(-ap * n ** (1 / rr)), rel=1e-14)
    d = asymptotic_bound({"kind": "exp", "alpha": a}, n=n, r=rr)   # default α′
    assert d.alpha_prime == pytest.approx(0.99 * a * 2 ** (-1 / (2 * rr)), rel=1e-15)
    big = asymptotic_bound({"kind": "exp", "alpha": 50.0}, n=10 ** 9, r=1)
    assert float(big) == 0.0 and math.isfinite(big.log_value) and big.log_value < -1e9
    # the predicted order decreases in n
    vals = [float(asymptotic_bound({"kind": "power", "alpha": 6.0}, n=k, r=2)) for k in (10, 100, 1000)]
    assert vals[0] > vals[1] > vals[2]


@pytest.mark.parametrize("decay,n,r,match", [
    ({"kind": "power", "alpha": 6.0}, 100, 5, "α > r \\+ 1"),          # α = r + 1 not enough
    ({"kind": "power", "alpha": 3.0}, 100, 5, "α > r \\+ 1"),
    ({"kind": "gauss", "alpha": 3.0}, 100, 2, "kind"),
    ({"alpha": 3.0}, 100, 2, "kind"),
    ({"kind": "exp"}, 100, 2, "alpha"),
    ({"kind": "exp", "alpha": -1.0}, 100, 2, "alpha"),
    ({"kind": "exp", "alpha": float("inf")}, 100, 2, "alpha"),
    ({"kind": "exp", "alpha": 1.0, "alpha_prime": 2 ** (-1 / 4)}, 100, 2, "α′"),  # α′ = sup
    ({"kind": "sqrt-exp", "alpha": 1.0, "alpha_prime": 0.0}, 100, 2, "α′"),
    ({"kind": "power", "alpha": 9.0, "alpha_prime": 0.5}, 100, 2, "alpha_prime"),
    ({"kind": "power", "alpha": 9.0, "beta": 1}, 100, 2, "unknown"),
    ({"kind": "power", "alpha": 9.0}, 0, 2, "n must"),
    ({"kind": "power", "alpha": 9.0}, 100, 0, "r must"),
    ({"kind": "power", "alpha": 9.0}, 100.0, 2, "n must"),
    ("power", 100, 2, "dict"),
])
def test_asymptotic_bound_rejects(decay, n, r, match):
    with pytest.raises(ValueError, match=match):
        asymptotic_bound(decay, n=n, r=r)


def test_asymptotic_bound_formal_conditions():
    """formal=True: m(n) = ⌊(n/2)^{1/r}⌋ ≥ r ≥ 7."""
    with pytest.raises(ValueError, match="r ≥ 7"):
        asymptotic_bound({"kind": "exp", "alpha": 1.0}, n=10 ** 9, r=6, formal=True)
    with pytest.raises(ValueError, match="m\\(n\\)"):
        asymptotic_bound({"kind": "exp", "alpha": 1.0}, n=10 ** 6, r=7, formal=True)  # m = 5
    ok = asymptotic_bound({"kind": "power", "alpha": 9.0}, n=2 * 7 ** 7, r=7, formal=True)
    assert float(ok) == pytest.approx((2 * 7 ** 7) ** (-8 / 7), rel=1e-14)
