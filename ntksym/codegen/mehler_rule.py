"""The per-row Hermite (Mehler) route of generated modules for activations without a closed form.

For a row with variance q the module computes, once per layer, with the z-rule built here,

    a_k(q) = E[φ(√q Z) h_k(Z)],  b_k(q) = E[φ'(√q Z) h_k(Z)],   k = 0..K_MAX,
    m0 = E[φ(√q Z)²], m1 = E[φ'(√q Z)²], n0 = E[φ(√q Z) φ(−√q Z)], n1 (the same for φ'),
    T0(K) = E[(φ(√q Z) − Σ_{k≤K} a_k h_k(Z))²]  (and T1 for φ'),

h_k = He_k/√k! (orthonormal, by the three-term recurrence), and per entry Mehler's formula
(O'Donnell, *Analysis of Boolean Functions*, §11.2; Daniely et al. 2016)

    Σ̂(q₁, q₂, c) = Σ_k a_k(q₁) a_k(q₂) ρ^k,   Σ̇ = Σ_k b_k(q₁) b_k(q₂) ρ^k,   ρ = c/√(q₁q₂),

truncated at K with the Cauchy–Schwarz/Parseval bound |tail| ≤ |ρ|^{K+1} √(T(q₁) T(q₂)).
Repeated and antipodal rows (q₁ = q₂, c = ±q) are the 1-D integrals m0, m1 and n0, n1.

The z-rule: composite Gauss–Legendre on [−Z_MAX, Z_MAX], split at z = 0 (a kink of φ at 0 is
never inside a panel), panels graded (ratio 2) toward 0 on [0, 1] down to ≈ 1/(36√q_max) (φ(√q z)
changes on the scale 1/√q there), then panels of width Z_STEP; Z_MAX = 20 covers the oscillation of h_k up
to k = 64 (|z| ≤ 2√k) and the Gaussian weight is below e⁻²⁰⁰ beyond it.  Its error is
estimated by :func:`series_rule` against a finer rule (one more grading level, half the step,
8 more points per panel) at variances spread over [0, q_max].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

K_MAX = 64            # the largest truncation order
SERIES_TOL = 1e-13    # per-entry bound, relative to sqrt(m(q1) m(q2)), float64
Z_MAX, Z_STEP, Z_N, Z_GRADING = 20.0, 1.0, 16, 0.5
COEF_ERR_MAX = 2e-14  # the z-rule must be this accurate (relative to sqrt(m)), or the series is not used


@dataclass(frozen=True)
class SeriesRule:
    """The z-rule of the per-row Hermite series and its estimated error."""
    z: tuple
    z_w: tuple              # Gauss-Legendre weights times the standard normal density
    k_max: int
    tol: float              # the per-entry bound, relative to sqrt(m_i m_j)
    coef_err: float         # estimated error of a, b, sqrt(T), m, n relative to sqrt(m) (resp. m)
    parity: str | None = None   # "odd" or "even" (Activation.parity): half the coefficients are 0


def z_nodes(levels: int, step: float = Z_STEP, n: int = Z_N):
    """Symmetric composite Gauss-Legendre nodes on [-Z_MAX, Z_MAX] and weights times N(0,1)'s density."""
    half = [0.0] + [Z_GRADING ** k for k in range(levels, 0, -1)] + list(np.arange(1.0, Z_MAX + 1e-9, step))
    x, w = np.polynomial.legendre.leggauss(n)
    lo, hi = np.array(half[:-1]), np.array(half[1:])
    z = (lo[:, None] + (hi - lo)[:, None] * (x + 1) / 2).ravel()
    wz = ((hi - lo)[:, None] / 2 * w).ravel()
    z, wz = np.concatenate([-z[::-1], z]), np.concatenate([wz[::-1], wz])
    return z, wz * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def hermite_table(z: np.ndarray, k_max: int = K_MAX) -> np.ndarray:
    """(len(z), k_max+1): h_k(z) = He_k(z)/√k! by h_{k+1} = (z h_k − √k h_{k−1})/√(k+1) (the module's recurrence)."""
    cols = [np.ones_like(z), z]
    for k in range(1, k_max):
        cols.append((z * cols[k] - k ** 0.5 * cols[k - 1]) / (k + 1) ** 0.5)
    return np.stack(cols, -1)


def row_moments(f, q, z, w, k_max: int = K_MAX):
    """(a (K+1,), m, n, T(K_MAX)) of f(√q Z) by the rule (z, w): NumPy twin of the module's row_series."""
    u = math.sqrt(q) * z
    with np.errstate(all="ignore"):
        fv = f(u)
    h = hermite_table(z, k_max)
    a = (fv * w) @ h
    res = fv - h @ a
    return a, float(np.sum(fv * fv * w)), float(np.sum(fv * fv[::-1] * w)), float(np.sum(res * res * w))


def z_levels(q_max: float) -> int:
    """Grading levels so that the smallest panel near z = 0 is about 1/(36 √q_max)."""
    return max(2, math.ceil(math.log(36.0 * math.sqrt(max(q_max, 1.0))) / math.log(1 / Z_GRADING)))


def series_rule(phi, dphi, q_max: float, parity: str | None = None) -> SeriesRule | None:
    """The z-rule for q ∈ [0, q_max] with its error estimated at 13 variances (0 and a geometric
    spread from 1e-4 to q_max) against a finer rule: 4× the largest difference in a, b, √T0, √T1
    (relative to √m) and in m, n (relative to m).  None when that exceeds :data:`COEF_ERR_MAX`
    (then the module evaluates every entry by its polar rule, as before)."""
    levels = z_levels(q_max)
    z, w = z_nodes(levels)
    zf, wf = z_nodes(levels + 1, Z_STEP / 2, Z_N + 8)
    worst = 0.0
    for q in np.concatenate([[0.0], np.geomspace(1e-4, q_max, 12)]):
        for f in (phi, dphi):
            a, m, n, t = row_moments(f, q, z, w)
            af, mf, nf, tf = row_moments(f, q, zf, wf)
            if not all(np.isfinite(v).all() for v in (a, m, n, t, af, mf, nf, tf)):
                return None
            if mf == 0:
                if max(abs(a).max(), abs(m), abs(n), abs(t)) != 0:
                    return None
                continue
            scale = math.sqrt(mf)
            worst = max(worst, float(np.linalg.norm(a - af)) / scale, abs(math.sqrt(max(t, 0.0))
                        - math.sqrt(max(tf, 0.0))) / scale, abs(m - mf) / mf, abs(n - nf) / mf)
    err = max(4 * worst, 1e-16)
    if err > COEF_ERR_MAX:
        return None
    return SeriesRule(tuple(z), tuple(w), K_MAX, SERIES_TOL, err, parity if parity in ("odd", "even") else None)
