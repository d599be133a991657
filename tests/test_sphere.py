"""Eigenvalues of dot-product kernels on S^{d-1} (ntksym.spectrum.sphere).

Two independent routes are compared: the power series of Azevedo & Menegatto /
Murray et al. (ICLR 2023, Thm 4.6), summed with ratio recurrences, and Funk–Hecke
quadrature of K against the normalised Gegenbauer polynomial.  Each tolerance
below says where it comes from.
"""
import math
from fractions import Fraction

import mpmath
import pytest

from ntksym.errors import InputError
from ntksym.spectrum import (SphereSpectrum, funk_hecke_eigenvalue, monomial_eigenvalue,
                             multiplicity, predicted_decay_exponent, sphere_eigenvalues)


# ---------------------------------------------------------------------------
# kernels used below
# ---------------------------------------------------------------------------

def arccos1(t):
    """Arc-cosine kernel of degree 1 (ReLU NNGP, unit variance): (√(1−t²) + (π − arccos t) t)/π."""
    return (mpmath.sqrt(1 - t * t) + (mpmath.pi - mpmath.acos(t)) * t) / mpmath.pi


def relu_ntk(t):
    """Depth-2 ReLU NTK in Murray's convention: K1(t) + t·(π − arccos t)/π; Θ(1) = 2."""
    return arccos1(t) + t * (mpmath.pi - mpmath.acos(t)) / mpmath.pi


def arccos1_coefficients(P, dps=40):
    """Taylor coefficients of arccos1, derived by hand.

    π − arccos t = π/2 + arcsin t, so π·K(t) = πt/2 + G(t) with G = √(1−t²) + t·arcsin t.
    G' = arcsin t = Σ_n (2n−1)!!/((2n)!!(2n+1)) t^{2n+1} and G(0) = 1, hence for even
    p = 2n+2 ≥ 2:  c_p = (p−3)!!/((p−2)!!(p−1)p π) = ((p−3)!!)²/(π p!),
    c_0 = 1/π, c_1 = 1/2 and c_p = 0 for odd p ≥ 3.  Decay: c_p ~ √(2/π)/π · p^{-5/2}.
    """
    with mpmath.workdps(dps):
        c = [1 / mpmath.pi, mpmath.mpf(1) / 2]
        for p in range(2, P):
            c.append(mpmath.mpf(0) if p % 2 else mpmath.fac2(p - 3) ** 2 / (mpmath.pi * mpmath.factorial(p)))
    return c[:P]


def relu_ntk_coefficients(P, dps=40):
    """κ_0 = 1/π, κ_1 = 1, κ_p = (1+p)((p−3)!!)²/(π p!) for even p ≥ 2 (FORMULAS.md §4)."""
    c = arccos1_coefficients(P, dps)
    with mpmath.workdps(dps):
        out = [c[0], mpmath.mpf(1)] + [(1 + p) * c[p] for p in range(2, P)]
    return out[:P]


def rel(a, b):
    return abs(a - b) / abs(b)


# ---------------------------------------------------------------------------
# 1. closed forms, recurrences and identities
# ---------------------------------------------------------------------------

def test_multiplicity():
    # exact integer identities
    for k in range(30):
        assert multiplicity(3, k) == 2 * k + 1
        assert multiplicity(2, k) == (1 if k == 0 else 2)
    for d in (3, 4, 7, 50):
        assert multiplicity(d, 1) == d
        for k in range(1, 40):
            assert multiplicity(d, k) * k == (2 * k + d - 2) * math.comb(k + d - 3, k - 1)
        # harmonics of degree ≤ k = polynomials of degree ≤ k restricted to the sphere
        assert sum(multiplicity(d, j) for j in range(11)) == math.comb(10 + d - 1, d - 1) + math.comb(9 + d - 1, d - 1)


@pytest.mark.parametrize("d", [2, 3, 7, 100])
def test_monomial_basic_values(d):
    # λ_0(1) = 1 and λ_1(t) = 1/d: exact up to the final rounding to 30 digits
    assert monomial_eigenvalue(d, 0, 0) == 1
    with mpmath.workdps(30):
        assert rel(monomial_eigenvalue(d, 1, 1), mpmath.mpf(1) / d) < mpmath.mpf(10) ** -29
    assert monomial_eigenvalue(d, 3, 2) == 0 and monomial_eigenvalue(d, 2, 5) == 0


@pytest.mark.parametrize("d", [2, 3, 5, 10, 100])
def test_monomial_trace_identity(d):
    """t^p at t = 1 equals Σ_k N(d,k) λ_k(t^p): positive terms, each rounded to 30 digits,
    so the sum is exact to p/2+1 roundings (< 1e-28 relative)."""
    with mpmath.workdps(30):
        for p in range(0, 15):
            total = mpmath.fsum(multiplicity(d, k) * monomial_eigenvalue(d, k, p) for k in range(p + 1))
            assert abs(total - 1) < mpmath.mpf(10) ** -28, (d, p, total)


def test_murray_convention():
    """Murray's Thm 4.6 literally (S^{d_M} ⊂ R^{d_M+1}, surface measure), with d_M = d − 1,
    equals our λ times |S^{d−1}| = 2π^{d/2}/Γ(d/2) (FORMULAS.md §4); 30 digits."""
    with mpmath.workdps(40):
        for d in (3, 4, 11):
            dm = d - 1
            area = 2 * mpmath.pi ** (mpmath.mpf(d) / 2) / mpmath.gamma(mpmath.mpf(d) / 2)
            for k, p in ((0, 0), (1, 3), (2, 6), (5, 9), (8, 8)):
                murray = (mpmath.pi ** (mpmath.mpf(dm) / 2) / mpmath.mpf(2) ** (k - 1)
                          * mpmath.gamma(p + 1) * mpmath.gamma(mpmath.mpf(p - k + 1) / 2)
                          / (mpmath.gamma(p - k + 1) * mpmath.gamma(mpmath.mpf(p - k + 1) / 2 + k + mpmath.mpf(dm) / 2)))
                assert rel(murray, area * monomial_eigenvalue(d, k, p)) < 1e-29


def test_circle_is_fourier():
    # d = 2: λ_k(cos^p θ) = 2^{-p} C(p, (p−k)/2), an exact rational
    for p in range(12):
        for k in range(p + 1):
            v = monomial_eigenvalue(2, k, p, dps=30)
            exact = Fraction(math.comb(p, (p - k) // 2), 2 ** p) if (p - k) % 2 == 0 else 0
            assert abs(v - mpmath.mpf(exact.numerator if exact else 0) / (exact.denominator if exact else 1)) < 1e-30


@pytest.mark.parametrize("d", [2, 3, 10, 1000])
def test_recurrence_matches_gamma(d):
    """The fast series with a unit coefficient vector reproduces the Γ formula (30 digits;
    the recurrences run on dps + 32 guard bits, so 1e-29 relative is loose)."""
    P = 41
    coeffs = [1] * P
    spec = sphere_eigenvalues(coeffs, d, 40, dps=30)
    with mpmath.workdps(30):
        for k in (0, 1, 2, 5, 17, 40):
            ref = mpmath.fsum(monomial_eigenvalue(d, k, p, dps=40) for p in range(k, P, 2))
            assert rel(spec.eigenvalues[k], ref) < mpmath.mpf(10) ** -29


def test_monomial_factor_shape():
    """f(k,p+2)/f(k,p) = (p+1)(p+2)/((p−k+2)(p+k+d)) and it is ≥ 1 exactly when
    (p+2)(d−1) ≤ k(k+d−2): f rises up to p ≈ k²/(d−1) and falls after (not monotone from p = k)."""
    for d in (2, 3, 10):
        for k in (0, 1, 4, 9):
            for p in range(k, k + 60, 2):
                with mpmath.workdps(30):
                    r = monomial_eigenvalue(d, k, p + 2, 40) / monomial_eigenvalue(d, k, p, 40)
                    exact = mpmath.mpf((p + 1) * (p + 2)) / ((p - k + 2) * (p + k + d))
                    assert rel(r, exact) < 1e-28
                assert ((p + 1) * (p + 2) >= (p - k + 2) * (p + k + d)) == ((p + 2) * (d - 1) <= k * (k + d - 2))
    # an explicit rise: d = 3, k = 9: f(9, 11) > f(9, 9)
    assert monomial_eigenvalue(3, 9, 11) > monomial_eigenvalue(3, 9, 9)


def test_truncation_bound_holds():
    """The omitted part of the series (reference: 20000 terms, whose own remainder is far
    below the differences) stays below `truncation`, also where the peak of f(k,·) lies
    beyond P (d = 3, k ≥ 20 with P = 200)."""
    ref_P, P = 20000, 200
    c_ref = arccos1_coefficients(ref_P)
    with mpmath.workdps(40):
        tail = 1 - mpmath.fsum(c_ref[:P])  # K(1) = 1, c_p ≥ 0
    for d in (3, 10):
        ref = sphere_eigenvalues(c_ref, d, 30, dps=20)
        cut = sphere_eigenvalues(c_ref[:P], d, 30, dps=20, tail=tail)
        for k in range(31):
            diff = ref.eigenvalues[k] - cut.eigenvalues[k]
            assert -1e-25 <= diff <= cut.truncation[k], (d, k, diff, cut.truncation[k])


# ---------------------------------------------------------------------------
# 2. series vs Funk–Hecke quadrature
# ---------------------------------------------------------------------------

POLYS = {
    "mixed": [1, 2, 0, 3, 0, 0, mpmath.mpf(1) / 2],
    "signed": [0, 0, 1, 0, -1, "0.25"],
}


@pytest.mark.parametrize("d", [3, 10, 100])
def test_series_vs_funk_hecke_polynomials(d):
    """Polynomial kernels have a finite series, so only quadrature error enters; at 25
    digits the two routes agree to 1e-22 relative (Gauss–Legendre on a smooth integrand)."""
    for coeffs in POLYS.values():
        K = lambda t, c=coeffs: mpmath.polyval([mpmath.mpf(x) for x in reversed(c)], t)  # noqa: E731
        spec = sphere_eigenvalues(coeffs, d, 7, dps=25)
        zeros = [k for k in range(8) if spec.eigenvalues[k] == 0]
        assert zeros  # k = 7 > degree, and odd k for the even polynomial
        for k in range(8):
            if k not in zeros:
                fh = funk_hecke_eigenvalue(K, d, k, dps=25, singular_at_one=False)
                assert rel(fh, spec.eigenvalues[k]) < 1e-22, (d, k)
        # a zero of the series is quadrature noise on the other route (one suffices:
        # true zeros make funk_hecke_eigenvalue look ever deeper, up to 4·dps digits)
        assert abs(funk_hecke_eigenvalue(K, d, zeros[0], dps=15, singular_at_one=False)) < 1e-40


@pytest.mark.parametrize("d", [2, 3, 10, 100])
def test_series_vs_funk_hecke_exp(d):
    """K = exp: c_p = 1/p!, P = 80 leaves a remainder below 1/80! ≈ 1e-119, far below
    the 1e-22 relative tolerance (set by the 25-digit quadrature)."""
    with mpmath.workdps(40):
        coeffs = [1 / mpmath.factorial(p) for p in range(80)]
    spec = sphere_eigenvalues(coeffs, d, 20, dps=25)
    for k in (0, 1, 2, 5, 11, 20):
        fh = funk_hecke_eigenvalue(mpmath.exp, d, k, dps=25, singular_at_one=False)
        assert rel(fh, spec.eigenvalues[k]) < 1e-22, (d, k)


def test_arccos_coefficients_match_taylor():
    # exact derivation vs mpmath.taylor of the closed form (numerical differentiation
    # at 40 digits: agreement to 1e-30)
    c = arccos1_coefficients(16)
    with mpmath.workdps(40):
        tay = mpmath.taylor(arccos1, 0, 15)
        for p in range(16):
            assert abs(c[p] - tay[p]) < 1e-30, p


def test_series_vs_funk_hecke_arccos_d10():
    """Slowly decaying coefficients (c_p ~ 0.25 p^{-5/2}).  With P = 2000 the tail mass is
    1 − Σc_p ≈ 9.5e-7 and f(k,p) ≲ 4e-13 for p ≥ 2000 at d = 10, so the series misses
    ≈ 1e-19 absolute (the reported `truncation` ≈ 4e-19 bounds it).  All c_p ≥ 0, hence
    0 ≤ FH − series ≤ truncation, up to the 1e-24 quadrature error."""
    P = 2000
    c = arccos1_coefficients(P)
    with mpmath.workdps(40):
        tail = 1 - mpmath.fsum(c)
    spec = sphere_eigenvalues(c, 10, 20, dps=30, tail=tail)
    for k in (0, 1, 2, 4, 8, 20):
        fh = funk_hecke_eigenvalue(arccos1, 10, k, dps=25, singular_at_one=False)
        gap = fh - spec.eigenvalues[k]
        assert -1e-24 <= gap <= spec.truncation[k] + 1e-24, (k, gap, spec.truncation[k])
        assert spec.truncation[k] < 5e-19


def test_tanh_sinh_route_for_singular_kernel():
    """Same kernel in the t-singular form, through the default tanh-sinh route (25 digits)."""
    for k in (0, 2):
        a = funk_hecke_eigenvalue(arccos1, 10, k, dps=25)
        b = funk_hecke_eigenvalue(arccos1, 10, k, dps=25, singular_at_one=False)
        assert rel(a, b) < 1e-22


# ---------------------------------------------------------------------------
# 3. known values: depth-2 ReLU NTK, d = 3
# ---------------------------------------------------------------------------

def test_relu_ntk_d3_known_values():
    """FORMULAS.md §4: λ0 = 0.5, λ1 = 1/3, λ2 = 0.078125, λ4 = 5.2083e-3, λ6 = 1.40381e-3.
    Funk–Hecke at 25 digits reproduces them to 1e-20 as the rationals 1/2, 1/3, 5/64,
    1/192, 23/16384 (the quoted decimals are these, rounded), and odd k ≥ 3 vanish
    (|λ| < 1e-40: the even kernel is orthogonal to odd harmonics; quadrature noise)."""
    expected = {0: Fraction(1, 2), 1: Fraction(1, 3), 2: Fraction(5, 64), 4: Fraction(1, 192),
                6: Fraction(23, 16384)}
    quoted = {0: 0.5, 1: 1 / 3, 2: 0.078125, 4: 5.2083e-3, 6: 1.40381e-3}
    fh = {}
    for k, exact in expected.items():
        fh[k] = funk_hecke_eigenvalue(relu_ntk, 3, k, dps=25, singular_at_one=False)
        with mpmath.workdps(25):
            assert abs(fh[k] - mpmath.mpf(exact.numerator) / exact.denominator) < 1e-20 * fh[k]
        assert float(fh[k]) == pytest.approx(quoted[k], rel=1e-5)  # 5-6 digits quoted
    assert abs(funk_hecke_eigenvalue(relu_ntk, 3, 3, dps=15, singular_at_one=False)) < 1e-40

    # The series converges slowly at d = 3 (κ_p ~ p^{-3/2}, f(k,p) ~ 1/p): with P = 4000
    # the missing part is ≈ 3.3e-7 and `truncation` (tail mass 2 − Σκ_p ≈ 4e-3 times
    # max f ≈ 2.5e-4) ≈ 1e-6 bounds it; all terms positive so the series is below.
    P = 4000
    c = relu_ntk_coefficients(P)
    with mpmath.workdps(40):
        tail = 2 - mpmath.fsum(c)
    spec = sphere_eigenvalues(c, 3, 7, dps=30, tail=tail)
    for k, v in fh.items():
        gap = v - spec.eigenvalues[k]
        assert 0 <= gap <= spec.truncation[k] <= 1.1e-6, (k, gap)
    for k in (3, 5, 7):
        assert spec.eigenvalues[k] == 0  # no odd κ_p beyond p = 1: exactly zero


# ---------------------------------------------------------------------------
# 4. trace identity for the kernel
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("d", [2, 3, 10, 100])
def test_trace_identity_exp(d):
    """Σ_k N(d,k) λ_k = Σ_p c_p Σ_k N(d,k) f(k,p) = Σ_{p<P} c_p when kmax ≥ P−1; for exp with
    P = 60 that is e to 1e-81.  N(100,59) ≈ 1e38 multiplies λ_59 ≈ 1e-118, so this also
    checks the relative accuracy of tiny eigenvalues: 1e-28 relative at 30 digits."""
    P = 60
    with mpmath.workdps(40):
        coeffs = [1 / mpmath.factorial(p) for p in range(P)]
    spec = sphere_eigenvalues(coeffs, d, P - 1, dps=30)
    with mpmath.workdps(30):
        total = mpmath.fsum(n * v for n, v in zip(spec.multiplicities, spec.eigenvalues))
        assert rel(total, mpmath.e) < mpmath.mpf(10) ** -28


# ---------------------------------------------------------------------------
# 6. decay exponent vs Cor. 4.7
# ---------------------------------------------------------------------------

def test_predicted_decay_exponent_values():
    assert predicted_decay_exponent(1.5, 3) == 3.0  # ReLU NTK on S²: k^{-d}
    assert predicted_decay_exponent(2.5, 10) == 12.0  # arc-cosine 1: k^{-d-2}
    with pytest.raises(InputError):
        predicted_decay_exponent(1.0, 3)


@pytest.mark.parametrize("d,kmax,tol", [(3, 40, 0.1), (5, 60, 0.25)])
def test_decay_exponent_matches_cor_4_7(d, kmax, tol):
    """c_p = p^{-3/2} (p ≥ 1): Cor. 4.7 with d_M = d − 1 predicts s = d + 2a − 3 = d.
    λ_k is fed by p up to ≈ k²/(d−1), so P = 20000 ≫ kmax²; the remaining tail
    (Hurwitz ζ(3/2, P)) is reported and is < 4 % of λ_k.  The local slope still carries an
    O(1/k) pre-asymptotic correction (2.93 → 2.97 for d = 3, 4.78 → 4.88 for d = 5
    over the fitted range), hence the tolerances; the slope must also increase with k
    towards s, and Murray's formula with d_M = d (s = d + 1) is excluded."""
    P = 20000
    with mpmath.workdps(25):
        coeffs = [0] + [mpmath.mpf(p) ** -1.5 for p in range(1, P)]
        tail = mpmath.zeta(1.5, P)
    spec = sphere_eigenvalues(coeffs, d, kmax, dps=20, tail=tail)
    s_pred = predicted_decay_exponent(1.5, d)
    assert s_pred == d
    s_fit = spec.decay_exponent()
    assert abs(s_fit - s_pred) < tol, s_fit
    assert abs(s_fit - (d + 1)) > 0.5
    assert all(spec.truncation[k] < 0.04 * spec.eigenvalues[k] for k in range(kmax + 1))
    lo = spec.decay_exponent(kmin=kmax // 2)
    hi = spec.decay_exponent(kmin=3 * kmax // 4)
    assert lo < hi < s_pred + 0.02


def test_decay_exponent_skips_zeros_and_json():
    """ReLU NTK at d = 5: odd k ≥ 3 vanish exactly and are skipped; even k decay like k^{-5}
    (a = 3/2).  P = 6000 gives λ_k to < 1 % for k ≤ 30, and the fitted s lands within 0.4
    (pre-asymptotic drift as in the previous test)."""
    c = relu_ntk_coefficients(6000, dps=25)
    spec = sphere_eigenvalues(c, 5, 30, dps=20)
    assert isinstance(spec, SphereSpectrum) and spec.truncation[0] is None
    s = spec.decay_exponent()
    assert abs(s - predicted_decay_exponent(1.5, 5)) < 0.4
    js = spec.as_json(12)
    assert js["multiplicities"][:3] == [1, 5, 14]
    assert js["eigenvalues"][3] == "0"
    assert mpmath.mpf(js["eigenvalues"][0]) == pytest.approx(float(spec.eigenvalues[0]), rel=1e-11)
    assert len(js["eigenvalues"]) == 31


def test_input_validation():
    with pytest.raises(InputError):
        sphere_eigenvalues([1, 2], 1, 3)
    with pytest.raises(InputError):
        sphere_eigenvalues([1, float("nan")], 3, 3)
    with pytest.raises(InputError):
        multiplicity(3, -1)
    with pytest.raises(InputError):
        sphere_eigenvalues([1], 3, 2, tail=-1)
    # accepted coefficient types: int, float, str, Fraction, mpf
    spec = sphere_eigenvalues([1, 0.5, "0.25", Fraction(1, 8), mpmath.mpf(1) / 16], 3, 4, dps=20)
    assert spec.eigenvalues[4] > 0 and len(spec.multiplicities) == 5
    # kmax beyond the number of coefficients: zero eigenvalues, finite truncation
    spec = sphere_eigenvalues([1], 3, 3, tail=0.5)
    assert spec.eigenvalues[2] == 0 and 0 < spec.truncation[2] < 0.5
