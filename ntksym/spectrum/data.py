"""Spectra of NTK Gram matrices of a given data set (dot-product kernels).

Setting and normalisation
-------------------------
This module works in the dot-product setting of Murray, Jin, Bowman and
Montúfar, "Characterizing the spectrum of the NTK via a power series
expansion" (ICLR 2023; arXiv 2211.07844), §4:

* the rows ``x_i`` of the data matrix ``X`` (shape ``n × d``) have **unit
  Euclidean norm** (use :func:`normalize_rows`), so the input Gram matrix
  ``G = X Xᵀ`` has unit diagonal and entries ``ρ_ij = <x_i, x_j>`` are cosines;
* the kernel is a power series with coefficients ``c_p ≥ 0``,
  ``Θ(ρ) = Σ_p c_p ρ^p``, so the (unscaled) kernel Gram matrix is
  ``Θ = Σ_p c_p G^{⊙p}`` (``⊙p`` is the p-th Hadamard power, ``G^{⊙0} = 11ᵀ``);
* Murray et al. scale the Gram matrix by ``1/n``: ``K = Θ / n``, i.e.
  ``n K = Σ_p c_p G^{⊙p}``.  Eigenvalue *bounds* in this module
  (:func:`generic_eigenvalue_bound`) refer to this scaled ``K``.  Effective
  ranks and condition numbers are scale invariant and do not care.

Centering (Thm 4.3).  With ``K = (1/n) Σ_p c_p G^{⊙p}`` the centred kernel is
``K̃ = K − (c₀/n) 11ᵀ = (1/n) Σ_{p≥1} c_p G^{⊙p}``: the constant term is
removed *exactly*.  If one works with the unscaled ``Θ`` instead, the matching
centring is ``Θ − c₀ 11ᵀ`` (not ``Θ − (c₀/n) 11ᵀ``, which would leave
``(1 − 1/n) c₀ 11ᵀ`` behind).  :func:`murray_bounds` therefore builds the
centred matrix from the coefficients ``p ≥ 1`` and never subtracts.

Theorems used (numbering of arXiv 2211.07844v4)
-----------------------------------------------
* Thm 4.1: ``eff(K) ≤ Σ_p c_p / c₀`` (``c₀ > 0``).  Reason: ``tr(nK) = n Σ c_p``
  (unit diagonal) and ``λ₁(nK) ≥ λ₁(c₀ 11ᵀ) = c₀ n`` since every Hadamard
  power of a PSD matrix is PSD (Schur product theorem).
* Thm 4.3: ``eff(K̃) ≤ eff(XXᵀ) · Σ_{p≥1} c_p / c₁`` (``c₁ > 0``).  Reason:
  ``tr(nK̃) = n Σ_{p≥1} c_p`` and ``λ₁(nK̃) ≥ c₁ λ₁(G)``, with ``tr G = n``.
* Thm 4.8 / Thm C.23 (generic data): asymptotic upper bounds on ``λ_n(K)``
  from the decay of ``c_p`` and ``r = rank(XXᵀ)``; see
  :func:`asymptotic_bound`.  Its key lemma — for ``k > rank(H_m)`` with
  ``H_m = Σ_{j<m} c_j G^{⊙j}``, ``λ_k(K) ≤ ‖G^{⊙m}‖₂/n · Σ_{j≥m} c_j`` — is
  :func:`generic_eigenvalue_bound`.  (Weyl's inequality plus
  ``‖G^{⊙j}‖₂ ≤ ‖G^{⊙m}‖₂`` for ``j ≥ m``, again by Schur's theorem with the
  unit diagonal of ``G^{⊙(j−m)}``.)

Array backends
--------------
:func:`gram_from_coefficients` only uses elementwise arithmetic, so it runs in
the array namespace of ``G`` (numpy, torch, cupy, ...).
:func:`data_spectrum`, :func:`effective_rank`, :func:`condition_number`,
:func:`murray_bounds` and :func:`generic_eigenvalue_bound` diagonalise with the
array's own ``linalg.eigvalsh`` when the array is a torch tensor or a cupy
array (detected by the module of its type, so neither library is imported
unless such an array is passed) and always return numpy / Python floats.
Computation happens in the array's floating dtype (float32 stays float32, with
tolerances scaled by its eps); other dtypes are promoted to float64.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import numpy as np

from ntksym.errors import InputError

__all__ = [
    "normalize_rows",
    "gram_from_coefficients",
    "effective_rank",
    "condition_number",
    "DataSpectrum",
    "data_spectrum",
    "murray_bounds",
    "generic_eigenvalue_bound",
    "AsymptoticRate",
    "asymptotic_bound",
]

Coefficients = Union[Sequence[float], np.ndarray]

#: tolerance on max|G_ii − 1| for an input Gram matrix (at least 64·eps of its dtype)
UNIT_DIAGONAL_RTOL = 1e-8
#: tolerance (relative to max|A|, at least 64·eps of its dtype) on the asymmetry of a
#: matrix passed to eigvalsh
SYMMETRY_RTOL = 1e-10


# --------------------------------------------------------------------------
# Backend helpers (duck typing; torch / cupy imported only when needed)
# --------------------------------------------------------------------------

def _backend(A: Any) -> str:
    mod = type(A).__module__
    if mod.startswith("torch"):
        return "torch"
    if mod.startswith("cupy"):
        return "cupy"
    return "numpy"


def _as_float_matrix(A: Any, name: str = "matrix", square: bool = True):
    """Validate a 2-D (square) finite real array; float32/float64 are kept, other
    dtypes become float64."""
    be = _backend(A)
    if be == "numpy":
        try:
            A = np.asarray(A)
            if A.dtype not in (np.float32, np.float64):
                A = A.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} must be a real numeric array: {exc}") from None
    elif be == "torch":
        import torch
        if A.dtype not in (torch.float32, torch.float64):
            A = A.to(torch.float64)
    else:  # cupy
        import cupy
        if A.dtype not in (cupy.float32, cupy.float64):
            A = A.astype(cupy.float64)
    if A.ndim != 2:
        raise InputError(f"{name} must be 2-D, got shape {tuple(A.shape)}")
    if square and A.shape[0] != A.shape[1]:
        raise InputError(f"{name} must be square, got shape {tuple(A.shape)}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise InputError(f"{name} is empty")
    if not bool(_isfinite_all(A, be)):
        raise InputError(f"{name} contains NaN or infinite entries")
    return A


def _isfinite_all(A: Any, be: str) -> bool:
    if be == "torch":
        import torch
        return bool(torch.isfinite(A).all())
    if be == "cupy":
        import cupy
        return bool(cupy.isfinite(A).all())
    return bool(np.isfinite(A).all())


def _eps(A: Any) -> float:
    if _backend(A) == "torch":
        import torch
        return float(torch.finfo(A.dtype).eps)
    return float(np.finfo(A.dtype).eps)


def _symmetrize(A: Any, name: str):
    """Check near-symmetry and return (A + Aᵀ)/2 (eigvalsh reads one triangle only)."""
    scale = float(abs(A).max())
    asym = float(abs(A - A.T).max())
    rtol = max(SYMMETRY_RTOL, 64 * _eps(A))
    if asym > rtol * max(scale, np.finfo(float).tiny):
        raise InputError(
            f"{name} is not symmetric: max|A - Aᵀ| = {asym:.3g} > {rtol:.3g}·max|A| "
            f"(max|A| = {scale:.3g})")
    return (A + A.T) / 2


def _eigvalsh_desc(A: Any) -> np.ndarray:
    """Eigenvalues of a symmetric matrix, descending, as numpy float64.

    Uses the array's own ``linalg.eigvalsh`` (torch, cupy or numpy)."""
    be = _backend(A)
    if be == "torch":
        import torch
        w = torch.linalg.eigvalsh(A).detach().cpu().numpy()
    elif be == "cupy":
        import cupy
        w = cupy.asnumpy(cupy.linalg.eigvalsh(A))
    else:
        w = np.linalg.eigvalsh(A)
    return np.ascontiguousarray(np.asarray(w, dtype=np.float64)[::-1])


def _trace(A: Any) -> float:
    return float(A.diagonal().sum())


def _coefficients(coeffs: Coefficients, nonnegative: bool) -> np.ndarray:
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise InputError("coefficients must be a non-empty 1-D sequence c_0, c_1, ...")
    if not np.isfinite(c).all():
        raise InputError("coefficients must be finite")
    if nonnegative and (c < 0).any():
        p = int(np.flatnonzero(c < 0)[0])
        raise InputError(f"the theorems need c_p ≥ 0 for all p; got c_{p} = {c[p]!r}")
    return c


def _check_unit_diagonal(G: Any) -> None:
    diag = G.diagonal()
    dev = float(abs(diag - 1).max())
    if dev > max(UNIT_DIAGONAL_RTOL, 64 * _eps(G)):
        raise InputError(
            f"G = XXᵀ must have unit diagonal (unit-norm rows; see normalize_rows); "
            f"max|G_ii − 1| = {dev:.3g}")


# --------------------------------------------------------------------------
# Basic constructions
# --------------------------------------------------------------------------

def normalize_rows(X: Any):
    """Return ``X`` with every row scaled to unit Euclidean norm.

    The results of this module (Murray et al. 2023, Assumption 2 and §4)
    assume ``‖x_i‖ = 1``, i.e. ``G = XXᵀ`` has unit diagonal.  Raises
    :class:`~ntksym.errors.InputError` for non-2-D input, non-finite entries or
    zero rows.  The result stays in the namespace of ``X`` (numpy, torch,
    cupy); float32 stays float32, other non-float64 dtypes become float64.
    """
    be = _backend(X)
    X = _as_float_matrix(X, "X", square=False)
    if be == "torch":
        import torch
        norms = torch.linalg.norm(X, dim=1, keepdim=True)
    elif be == "cupy":
        import cupy
        norms = cupy.linalg.norm(X, axis=1, keepdims=True)
    else:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
    if not bool((norms > 0).all()):
        raise InputError("X has a zero row; it cannot be normalised to the unit sphere")
    return X / norms


def gram_from_coefficients(G: Any, coeffs: Union[Coefficients, Callable[[Any], Any]]):
    """Unscaled kernel Gram matrix ``Θ = Σ_p c_p G^{⊙p}`` (Hadamard powers).

    Evaluated by Horner's scheme in Hadamard powers,
    ``Θ = c_0 + G ⊙ (c_1 + G ⊙ (c_2 + ...))``, with elementwise arithmetic only,
    so the result lives in the array namespace (and dtype) of ``G``.  ``G``
    need not be square (cross Gram matrices are fine).  Murray et al.'s
    ``K`` is ``Θ / n``.

    ``coeffs`` may also be a callable ``f``; it is then applied entrywise,
    ``Θ = f(G)`` (it must accept arrays of ``G``'s namespace).
    """
    if callable(coeffs):
        return coeffs(G)
    c = _coefficients(coeffs, nonnegative=False)
    if _backend(G) == "numpy":
        G = np.asarray(G)
        if G.dtype not in (np.float32, np.float64):
            G = G.astype(np.float64)
    K = G * 0 + float(c[-1])
    for cp in c[-2::-1]:
        K = K * G + float(cp)
    return K


def effective_rank(A: Any) -> float:
    """Effective rank ``eff(A) = tr A / λ_max(A)`` of a symmetric PSD matrix
    (Murray et al. 2023, §4.1).  Raises if ``λ_max ≤ 0``."""
    A = _symmetrize(_as_float_matrix(A, "A"), "A")
    lam_max = float(_eigvalsh_desc(A)[0])
    if not lam_max > 0:
        raise InputError(f"effective rank needs λ_max > 0, got {lam_max!r}")
    return _trace(A) / lam_max


def condition_number(A: Any) -> float:
    """Condition number ``λ_max / λ_min`` of a symmetric positive definite matrix.

    Returns ``math.inf`` when ``λ_min ≤ 0`` in working precision (singular or
    numerically indefinite; e.g. any Gram matrix with ``n > `` its rank)."""
    A = _symmetrize(_as_float_matrix(A, "A"), "A")
    return _condition(_eigvalsh_desc(A))


def _condition(w_desc: np.ndarray) -> float:
    lo, hi = float(w_desc[-1]), float(w_desc[0])
    return hi / lo if lo > 0 else math.inf


@dataclass(frozen=True, eq=False)
class DataSpectrum:
    """Spectrum of a symmetric kernel Gram matrix.

    eigenvalues:      all eigenvalues, descending, numpy float64 (read-only)
    effective_rank:   tr / λ_max
    condition_number: λ_max / λ_min (``inf`` if λ_min ≤ 0)
    trace:            trace of the matrix
    """
    eigenvalues: np.ndarray
    effective_rank: float
    condition_number: float
    trace: float

    @property
    def n(self) -> int:
        return int(self.eigenvalues.shape[0])


def data_spectrum(K: Any) -> DataSpectrum:
    """Eigen-decomposition summary of a symmetric Gram matrix ``K``.

    ``K`` may be a numpy array, a torch tensor (any device) or a cupy array;
    the array's own ``linalg.eigvalsh`` is used and the results are numpy /
    Python floats.  ``K`` must be symmetric to ``SYMMETRY_RTOL`` relative to
    ``max|K|``; it is symmetrised before diagonalisation.
    """
    K = _symmetrize(_as_float_matrix(K, "K"), "K")
    w = _eigvalsh_desc(K)
    w.setflags(write=False)
    tr = _trace(K)
    lam_max = float(w[0])
    eff = tr / lam_max if lam_max > 0 else math.nan
    return DataSpectrum(eigenvalues=w, effective_rank=eff,
                        condition_number=_condition(w), trace=tr)


# --------------------------------------------------------------------------
# Murray et al. (2023): effective-rank bounds and the Thm 4.8 key lemma
# --------------------------------------------------------------------------

def _input_gram(G: Any):
    G = _symmetrize(_as_float_matrix(G, "G"), "G")
    _check_unit_diagonal(G)
    return G


def murray_bounds(G: Any, coeffs: Coefficients) -> dict:
    """Effective ranks and the bounds of Murray et al. (ICLR 2023), Thm 4.1 and 4.3.

    ``G = XXᵀ`` with unit-norm rows; ``coeffs = (c_0, c_1, ...)``, ``c_p ≥ 0``;
    ``K = (1/n) Σ_p c_p G^{⊙p}``.  Returns a dict of floats:

    * ``eff_K``: ``eff(K)``;
    * ``thm41_bound``: ``Σ_p c_p / c_0`` (Thm 4.1; ``inf`` if ``c_0 = 0``);
    * ``eff_K_centered``: ``eff(K̃)`` with ``K̃ = K − (c_0/n) 11ᵀ
      = (1/n) Σ_{p≥1} c_p G^{⊙p}`` (built from ``p ≥ 1`` exactly; ``nan`` if
      all ``c_p``, ``p ≥ 1``, vanish);
    * ``eff_G``: ``eff(XXᵀ) = n / λ_1(G)``;
    * ``thm43_bound``: ``eff(XXᵀ) · Σ_{p≥1} c_p / c_1`` (Thm 4.3; ``inf`` if
      ``c_1 = 0``);
    * ``n``.

    Both bounds are guaranteed: ``eff_K ≤ thm41_bound`` and
    ``eff_K_centered ≤ thm43_bound`` (up to rounding).  Effective ranks are
    scale invariant, so the ``1/n`` only matters for consistency with
    :func:`generic_eigenvalue_bound`.
    """
    G = _input_gram(G)
    c = _coefficients(coeffs, nonnegative=True)
    n = int(G.shape[0])
    K = gram_from_coefficients(G, c) / n
    eff_K = effective_rank(K)
    if c.size > 1 and c[1:].sum() > 0:
        K_centered = G * gram_from_coefficients(G, c[1:]) / n   # Σ_{p≥1} c_p G^{⊙p} / n
        eff_Kc = effective_rank(K_centered)
    else:
        eff_Kc = math.nan
    eff_G = effective_rank(G)
    c0 = float(c[0])
    c1 = float(c[1]) if c.size > 1 else 0.0
    tail1 = float(c[1:].sum())
    return {
        "n": n,
        "eff_K": eff_K,
        "thm41_bound": float(c.sum()) / c0 if c0 > 0 else math.inf,
        "eff_K_centered": eff_Kc,
        "eff_G": eff_G,
        "thm43_bound": eff_G * tail1 / c1 if c1 > 0 else math.inf,
    }


def generic_eigenvalue_bound(G: Any, coeffs: Coefficients, m: int, rtol: float | None = None):
    """Key lemma of Murray et al. (ICLR 2023), Thm 4.8 / Thm C.23.

    With ``K = (1/n) Σ_p c_p G^{⊙p}`` (``c_p ≥ 0``, ``G = XXᵀ`` with unit
    diagonal) and ``H_m = Σ_{j<m} c_j G^{⊙j}``: for every ``k > rank(H_m)``
    (1-based, eigenvalues descending)

        λ_k(K) ≤ ‖G^{⊙m}‖₂ / n · Σ_{j≥m} c_j.

    Returns ``(rank_Hm, bound)``.  The numerical rank counts eigenvalues of
    ``H_m`` above ``rtol · λ_max(H_m)``; the default ``rtol = n · eps`` (eps of
    the working dtype) is numpy's ``matrix_rank`` convention.  ``Σ_{j≥m}`` runs
    over the coefficients supplied (a truncated series is its own kernel).

    The numerical rank reflects the precision of ``G``: e.g. float32 data cast
    to float64 carries ~1e-7 relative noise that makes ``H_m`` numerically full
    rank at the default ``rtol``; pass an ``rtol`` above the data's noise level
    (a larger rank only makes the statement weaker, never wrong, while a
    too-small rank could claim the bound for ``k`` where ``H_m`` still
    contributes).
    """
    if not isinstance(m, numbers.Integral) or isinstance(m, bool) or m < 0:
        raise InputError(f"m must be a non-negative integer, got {m!r}")
    m = int(m)
    G = _input_gram(G)
    c = _coefficients(coeffs, nonnegative=True)
    n = int(G.shape[0])
    if rtol is None:
        rtol = n * _eps(G)
    if not (isinstance(rtol, numbers.Real) and 0 <= rtol < 1):
        raise InputError(f"rtol must be in [0, 1), got {rtol!r}")

    head = c[:m]
    if head.size == 0 or not (head > 0).any():
        rank = 0
    else:
        w = _eigvalsh_desc(gram_from_coefficients(G, head))
        rank = int((w > rtol * max(float(w[0]), 0.0)).sum()) if w[0] > 0 else 0

    tail = float(c[m:].sum())
    if tail == 0.0:
        return rank, 0.0
    Gm = G ** m if m > 0 else G * 0 + 1.0
    norm_Gm = float(np.abs(_eigvalsh_desc(Gm)).max())
    return rank, norm_Gm / n * tail


# --------------------------------------------------------------------------
# Thm 4.8 (informal) rates
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class AsymptoticRate:
    """Order of ``λ_n(K)`` predicted by Murray et al. Thm 4.8 (no constants).

    ``float(rate)`` is ``value``; ``str(rate)`` is ``expression``.  ``log_value``
    stays finite when ``value`` underflows.
    """
    kind: str
    alpha: float
    r: int
    n: int
    value: float
    log_value: float
    expression: str
    alpha_prime: float | None = None

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        return self.expression


def _integer_root_floor(x: int, r: int) -> int:
    """Largest integer m ≥ 0 with m**r ≤ x (exact integer arithmetic)."""
    lo, hi = 0, 1
    while hi ** r <= x:
        hi *= 2
    while hi - lo > 1:  # invariant: lo**r ≤ x < hi**r
        mid = (lo + hi) // 2
        if mid ** r <= x:
            lo = mid
        else:
            hi = mid
    return lo


#: default α′ = ALPHA_PRIME_FRACTION · α · 2^{−1/(2r)} (the theorem allows any α′ below that)
ALPHA_PRIME_FRACTION = 0.99


def asymptotic_bound(coeff_decay: dict, n: int, r: int, *, formal: bool = False) -> AsymptoticRate:
    """Order of ``λ_n(K)`` from Murray et al. (ICLR 2023) Thm 4.8 (informal
    version of Thm C.23) for generic unit-norm data with ``r = rank(XXᵀ)``.

    ``coeff_decay`` describes an upper bound on the coefficients:

    * ``{'kind': 'power', 'alpha': α}``: ``c_p = O(p^{−α})``; needs ``α > r + 1``;
      order ``n^{−(α−1)/r}``;
    * ``{'kind': 'sqrt-exp', 'alpha': α}``: ``c_p = O(e^{−α√p})``; order
      ``n^{1/(2r)} exp(−α′ n^{1/(2r)})``;
    * ``{'kind': 'exp', 'alpha': α}``: ``c_p = O(e^{−αp})``; order
      ``exp(−α′ n^{1/r})``.

    For the two exponential kinds the theorem holds for any
    ``0 < α′ < α · 2^{−1/(2r)}``; pass ``'alpha_prime'`` in ``coeff_decay`` or
    get ``α′ = 0.99 · α · 2^{−1/(2r)}``.  With ``formal=True`` the extra
    hypothesis of the formal version (as recorded in the project's formula
    sheet), ``m(n) = ⌊(n/2)^{1/r}⌋ ≥ r ≥ 7``, is enforced too.

    Raises ``ValueError`` (:class:`~ntksym.errors.InputError`) outside these
    conditions.  Returns an :class:`AsymptoticRate` (float-like, prints as the
    formula with the numbers substituted).
    """
    if not isinstance(coeff_decay, dict):
        raise InputError("coeff_decay must be a dict like {'kind': 'power', 'alpha': 3.0}")
    kind = coeff_decay.get("kind")
    kinds = ("power", "sqrt-exp", "exp")
    if kind not in kinds:
        raise InputError(f"coeff_decay['kind'] must be one of {kinds}, got {kind!r}")
    unknown = set(coeff_decay) - {"kind", "alpha", "alpha_prime"}
    if unknown:
        raise InputError(f"unknown keys in coeff_decay: {sorted(unknown)}")
    alpha = coeff_decay.get("alpha")
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) \
            or not math.isfinite(alpha) or alpha <= 0:
        raise InputError(f"coeff_decay['alpha'] must be a finite number > 0, got {alpha!r}")
    alpha = float(alpha)
    for name, val in (("n", n), ("r", r)):
        if not isinstance(val, numbers.Integral) or isinstance(val, bool) or val < 1:
            raise InputError(f"{name} must be a positive integer, got {val!r}")
    n, r = int(n), int(r)
    if formal:
        m_n = _integer_root_floor(n // 2, r)   # ⌊(n/2)^{1/r}⌋ = ⌊(⌊n/2⌋)^{1/r}⌋, exactly
        if r < 7 or m_n < r:
            raise InputError(
                f"the formal version (Thm C.23) needs m(n) = floor((n/2)^(1/r)) ≥ r ≥ 7; "
                f"got r = {r}, m(n) = {m_n}")

    if kind == "power":
        if "alpha_prime" in coeff_decay:
            raise InputError("'alpha_prime' only applies to the 'sqrt-exp' and 'exp' kinds")
        if not alpha > r + 1:
            raise InputError(
                f"Thm 4.8 (power decay c_p = O(p^-α)) needs α > r + 1; got α = {alpha:g}, r = {r}")
        expo = (alpha - 1) / r
        log_v = -expo * math.log(n)
        return AsymptoticRate(kind, alpha, r, n, math.exp(log_v), log_v,
                              f"n^(-(α-1)/r) = {n}^(-{expo:.6g})")

    sup = alpha * 2.0 ** (-1.0 / (2 * r))
    ap = coeff_decay.get("alpha_prime", ALPHA_PRIME_FRACTION * sup)
    if not isinstance(ap, numbers.Real) or isinstance(ap, bool) or not (0 < ap < sup):
        raise InputError(
            f"Thm 4.8 needs 0 < α′ < α·2^(-1/(2r)) = {sup:.6g}; got alpha_prime = {ap!r}")
    ap = float(ap)
    if kind == "sqrt-exp":
        t = n ** (1.0 / (2 * r))
        log_v = math.log(t) - ap * t
        expr = f"n^(1/(2r)) exp(-α′ n^(1/(2r))) with α′ = {ap:.6g}, n^(1/(2r)) = {t:.6g}"
    else:
        t = n ** (1.0 / r)
        log_v = -ap * t
        expr = f"exp(-α′ n^(1/r)) with α′ = {ap:.6g}, n^(1/r) = {t:.6g}"
    return AsymptoticRate(kind, alpha, r, n, math.exp(log_v), log_v, expr, ap)
