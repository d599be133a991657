"""Sampled CK/NTK spectra at linear width, distances to the limit laws, and a training simulation.

Fan & Wang (NeurIPS 2020, arXiv 2005.11879v3) normalization: X₀ ∈ ℝ^{d₀×n} with iid N(0, 1/d₀) entries
(approximately orthonormal columns), X_ℓ = σ̃(W_ℓX_{ℓ−1})/√d_ℓ with W_ℓ iid N(0,1), f(x) = wᵀx_L.
σ̃ is the centered, normalized activation of :func:`ntksym.finite.rmt.normalize_activation`.

* CK = X_LᵀX_L (n×n).
* NTK K = X_LᵀX_L + Σ_ℓ (S_ℓᵀS_ℓ) ⊙ (X_{ℓ−1}ᵀX_{ℓ−1}) with S_ℓ[:, α] = ∂f(x_α)/∂(W_ℓx_{ℓ−1,α}):
  S_L = diag(w)σ̃′(W_LX_{L−1})/√d_L and S_ℓ = σ̃′(W_ℓX_{ℓ−1}) ⊙ (W_{ℓ+1}ᵀS_{ℓ+1})/√d_ℓ.  The readout is
  rescaled to ‖w‖² = d_L by default (removes an O(d^{−1/2}) global scale fluctuation; FORMULAS §8).
* "Lemma 3.5 matrix" r₊I + X_LᵀX_L + Σ_{ℓ<L} q_ℓX_ℓᵀX_ℓ from the same draw.

The training simulation follows the phenomenon of Wang et al. 2022 ("Spectral evolution and invariance in
linear-width neural networks"): gradient steps with a small learning rate leave the CK bulk unchanged;
a large step creates an outlier aligned with the labels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ntksym.errors import InputError
from ntksym.finite.rmt import (NormalizedActivation, SpectrumResult, _check_gammas, normalize_activation,
                               rmt_constants)

__all__ = ["SampledSpectra", "sample_spectra", "ks_distance", "stieltjes_error", "TrainingSpectra",
           "training_simulation", "widths_from_gammas"]


def _act(activation, params) -> NormalizedActivation:
    return activation if isinstance(activation, NormalizedActivation) else normalize_activation(activation, params)


def widths_from_gammas(n: int, gammas: Sequence[float]) -> tuple[int, ...]:
    """d_ℓ = round(n/γ_ℓ), ℓ = 0..L."""
    return tuple(max(1, int(round(n / g))) for g in _check_gammas(gammas))


@dataclass(frozen=True)
class SampledSpectra:
    """Eigenvalues of one sampled network (ascending)."""
    n: int
    widths: tuple[int, ...]
    mu0: np.ndarray      # X₀ᵀX₀
    ck: np.ndarray       # X_LᵀX_L
    ntk: np.ndarray      # Fan & Wang's K^NTK
    lemma35: np.ndarray  # r₊I + X_LᵀX_L + Σ q_ℓ X_ℓᵀX_ℓ
    readout_normalized: bool


def sample_spectra(activation: Any, gammas: Sequence[float], n: int, seed: int = 0,
                   params: Mapping[str, Any] | None = None, normalize_readout: bool = True,
                   ntk: bool = True) -> SampledSpectra:
    """Sample X₀ and one network of widths d_ℓ = round(n/γ_ℓ) and return the CK/NTK eigenvalues."""
    if not (isinstance(n, (int, np.integer)) and 2 <= n <= 20000):
        raise InputError(f"n must be an integer in [2, 20000], got {n!r}")
    act = _act(activation, params)
    d = widths_from_gammas(n, gammas)
    L = len(d) - 1
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((d[0], n)) / math.sqrt(d[0])]
    W, H = [None], [None]
    for l in range(1, L + 1):
        W.append(rng.standard_normal((d[l], d[l - 1])))
        H.append(W[l] @ X[l - 1])
        X.append(act.fn(H[l]) / math.sqrt(d[l]))
    grams = [x.T @ x for x in X]
    eig = lambda a: np.linalg.eigvalsh(0.5 * (a + a.T))  # noqa: E731
    consts = rmt_constants(act, L)
    lemma = consts.r_plus * np.eye(n) + grams[L] + sum(q * grams[l] for l, q in enumerate(consts.q))
    K = grams[L].copy()
    if ntk and L >= 1:
        w = rng.standard_normal(d[L])
        if normalize_readout:
            w *= math.sqrt(d[L]) / np.linalg.norm(w)
        S = w[:, None] * act.dfn(H[L]) / math.sqrt(d[L])
        for l in range(L, 0, -1):
            K += (S.T @ S) * grams[l - 1]
            if l > 1:
                S = act.dfn(H[l - 1]) * (W[l].T @ S) / math.sqrt(d[l - 1])
    return SampledSpectra(n, d, eig(grams[0]), eig(grams[L]), eig(K) if ntk else np.array([]), eig(lemma),
                          normalize_readout)


def ks_distance(eigenvalues, law: SpectrumResult, smooth: bool = True) -> float:
    """Kolmogorov–Smirnov distance sup_t |F_n(t) − F(t)| between sampled eigenvalues and the limit law.

    With ``smooth`` (default) both CDFs are Cauchy(η)-smoothed with the law's η (the law's CDF is exactly
    that of μ * Cauchy(η); the empirical one is mean(½ + arctan((t − λ_i)/η)/π)) and the sup is taken over
    the grid and the eigenvalues.  Without it the empirical CDF is the step function and the law's CDF is
    still the η-smoothed one (so use a small η)."""
    lam = np.sort(np.asarray(eigenvalues, dtype=float))
    t = np.sort(np.concatenate([law.x, lam]))
    F = law.cdf(t)
    if smooth:
        Fn = np.empty_like(t)
        for i in range(0, t.size, 512):
            Fn[i:i + 512] = np.mean(0.5 + np.arctan((t[i:i + 512, None] - lam[None, :]) / law.eta) / math.pi, axis=1)
        return float(np.max(np.abs(Fn - F)))
    Fr = np.searchsorted(lam, t, side="right") / lam.size
    Fl = np.searchsorted(lam, t, side="left") / lam.size
    return float(max(np.max(np.abs(Fr - F)), np.max(np.abs(Fl - F))))


def stieltjes_error(eigenvalues, m_limit, z) -> float:
    """max_z |m_n(z) − m(z)|/|m(z)| with m_n(z) = mean 1/(λ_i − z) (FORMULAS §8 uses z = x + 0.5i)."""
    lam = np.asarray(eigenvalues, dtype=float)
    z = np.asarray(z, dtype=complex)
    mn = np.array([np.mean(1 / (lam - zz)) for zz in z])
    return float(np.max(np.abs(mn - m_limit) / np.abs(m_limit)))


# ----------------------------------------------------------------------------- training (Wang et al. 2022)

@dataclass(frozen=True)
class TrainingSpectra:
    """CK spectra X₁ᵀX₁ of a two-layer network before and after GD on the first layer."""
    n: int
    d0: int
    d1: int
    steps: int
    learning_rates: tuple[float, ...]
    initial: np.ndarray
    trained: tuple[np.ndarray, ...]
    bulk_ks: tuple[float, ...]           # KS between initial and trained spectra, top `outliers` removed
    top: tuple[float, ...]               # largest eigenvalue after training, per learning rate
    initial_top: float
    alignment: tuple[float, ...]         # |⟨v_top, y⟩|/‖y‖ of the trained CK's top eigenvector
    initial_alignment: float
    loss: tuple[tuple[float, float], ...]  # (initial, final) training loss per learning rate


def _ks_two(a, b) -> float:
    a, b = np.sort(a), np.sort(b)
    t = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, t, "right") / a.size - np.searchsorted(b, t, "right") / b.size)))


def training_simulation(activation: Any = "tanh", n: int = 300, gammas: Sequence[float] = (1.5, 1.0),
                        learning_rates: Sequence[float] = (1.0, 400.0), steps: int = 1, seed: int = 0,
                        outliers: int = 3, params: Mapping[str, Any] | None = None) -> TrainingSpectra:
    """GD on the first layer only of f(x) = wᵀσ̃(Wx)/√d₁ (readout w fixed, ‖w‖² = d₁), loss (1/2n)Σ(f − y)²,
    single-index teacher y = tanh(2√d₀ βᵀx) (β a unit vector; x iid N(0, I/d₀) as in Fan & Wang).

    Learning rates are per entry of W (W iid N(0,1), ‖W‖ ≈ √d₀ + √d₁).  The data columns have norm ≈ 1, so
    the gradient is nearly rank one with norm O(d₀^{−1/2}): an O(1) rate moves W by O(d^{−1/2}) in operator
    norm and leaves the CK spectrum unchanged (Wang et al. 2022's invariance); a rate of order n moves it by
    O(√n), comparable to ‖W‖, and creates an outlier whose eigenvector aligns with the labels.  The large
    step overshoots the squared loss (the readout is not refit); ``loss`` reports it as measured."""
    act = _act(activation, params)
    d0, d1 = widths_from_gammas(n, gammas)[:2]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d0, n)) / math.sqrt(d0)
    beta = rng.standard_normal(d0)
    beta /= np.linalg.norm(beta)
    y = np.tanh(2 * math.sqrt(d0) * (beta @ X))   # βᵀx ~ N(0, 1/d₀): rescale so the label is O(1)
    W0 = rng.standard_normal((d1, d0))
    w = rng.standard_normal(d1)
    w *= math.sqrt(d1) / np.linalg.norm(w)

    def ck(W):
        F = act.fn(W @ X) / math.sqrt(d1)
        return F.T @ F

    def loss_grad(W):
        H = W @ X
        f = w @ act.fn(H) / math.sqrt(d1)
        r = f - y
        G = ((w[:, None] * act.dfn(H) / math.sqrt(d1)) * r[None, :]) @ X.T / n
        return 0.5 * float(np.mean(r ** 2)), G

    def spec(W):
        vals, vecs = np.linalg.eigh(ck(W))
        return vals, abs(vecs[:, -1] @ y) / np.linalg.norm(y)

    init_vals, init_align = spec(W0)
    trained, ks, top, align, losses = [], [], [], [], []
    for lr in learning_rates:
        W = W0.copy()
        l0, _ = loss_grad(W)
        for _ in range(steps):
            _, G = loss_grad(W)
            W = W - lr * G
        l1, _ = loss_grad(W)
        vals, a = spec(W)
        trained.append(vals)
        ks.append(_ks_two(init_vals[:-outliers], vals[:-outliers]))
        top.append(float(vals[-1]))
        align.append(float(a))
        losses.append((l0, l1))
    return TrainingSpectra(n, d0, d1, steps, tuple(float(v) for v in learning_rates), init_vals, tuple(trained),
                           tuple(ks), tuple(top), float(init_vals[-1]), tuple(align), float(init_align),
                           tuple(losses))
