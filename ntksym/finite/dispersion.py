"""NTK dispersion E[Θ²]/E[Θ]² of deep ReLU networks at depth ~ width.

References
----------
* B. Hanin and M. Nica, "Finite depth and width corrections to the neural
  tangent kernel", ICLR 2020 (arXiv 1909.05989), Thm 1: for equal widths
  ``E[K²]/E[K]² ≃ exp(5 L/M)`` up to universal constants.
* M. Seleznova and G. Kutyniok, "Analyzing finite neural networks: can we
  trust neural tangent kernel theory?", ICML 2022 (MSML 2021): the dispersion
  in the ordered, EOC and chaotic phases as a function of ``λ = L/M``.

Setup (that of Seleznova & Kutyniok's code; see ``FORMULAS.md`` §7)
------------------------------------------------------------------
ReLU MLP in the *standard* parameterization, ``W^l ~ N(0, σ_w²/fan_in)`` on
every layer including the readout, biases initialised at zero but trainable,
input dimension ``n_0 = M``, ``L`` hidden layers of width ``M``, one output,
``‖x‖ = 1``; ``Θ(x, x) = Σ_{l=1}^{L+1} ‖∂f/∂W^l‖² + ‖∂f/∂b^l‖²``.  With
:func:`ntksym.finite.empirical.sample_network` this is
``parameterization="standard", sigma_b=0`` (the bias multiplier is 1 in the
standard parameterization, so the bias gradients count).

Exact scalar representation (derived in FORMULAS §7 and re-derived here)
-----------------------------------------------------------------------
Per hidden layer ``j``: ``K_j ~ Bin(M, 1/2)``; given ``K_j``, ``X_j ~ χ²_{K_j}``
and ``Y_j ~ χ²_{K_j−1}`` independent; ``x_j = 2X_j/M``, ``y_j = 2Y_j/M``; one
``ξ ~ N(0, 1)`` (the readout weight along ``h^L``); ``a = σ_w²/2``:

* ``‖h^{l−1}‖² = a^{l−1} ∏_{j<l} x_j``,
* ``‖δ^l‖² = a ŷ_l ‖δ^{l+1}‖² + f²/‖h^l‖²`` with ``f² = (2/M) a ξ² ‖h^L‖²``
  (Euler: ``f = ⟨δ^{l+1}, z^{l+1}⟩``; ``D_l − u uᵀ`` is a rank ``K_l − 1``
  projection), i.e. ``‖δ^l‖² = a^{L−l+1}[∏_{j=l}^L y_j + (2/M)ξ² Σ_{m=l}^L
  ∏_{j=l}^{m−1} y_j ∏_{j=m+1}^L x_j]``,
* ``Θ = Σ_{l=1}^{L+1} (‖h^{l−1}‖² + 1) ‖δ^l‖²``

(the event of a dead layer, probability ``≤ L 2^{−M}``, is ignored).
Expanding ``Θ`` gives a sum over *paths*: words over the layers with one
letter per layer from {``1``, ``x``, ``y``}.  The words are those accepted by
a 5-state automaton (below), so ``E[Θ]`` is a product of 5×5 transfer
matrices and ``E[Θ²]`` (pairs of paths, per-layer moments ``E[x²] = 1 + 5/M``,
``E[y²] = 1 + 1/M − 4/M²``, ``E[xy] = 1 − 1/M``, ``E[y] = 1 − 2/M``,
``E[x] = 1``, ``E[ξ⁴] = 3``) of 25×25 ones.  Both are exact for finite
``(M, L)``; with ``exact=True`` they are computed in rational arithmetic.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np

from ntksym.errors import NetworkError

__all__ = [
    "PHASES", "TheoryMoments", "exact_moments", "mean_ntk", "dispersion", "r_eoc", "r_weights", "r_chaotic",
    "hanin_nica", "ordered_limit", "continuum_limit", "relu_phase", "seleznova_inputs", "Comparison", "compare",
    "TrainingRun", "training_run", "log_moments", "ratio_standard_error",
]

PHASES = ("ordered", "eoc", "chaotic")
TERMS = ("all", "weights", "biases")

# Automaton states (one letter per hidden layer, read bottom to top):
#   P0: before the gradient layer l of a *bias* path (letter 1, no factor a)
#   PX: before the gradient layer l of a *weight* path (letter x, factor a)
#   Y : layers l..m−1 of δ^l (letter y, factor a)
#   MI: the layer m where f²/‖h^m‖² enters (letter 1, factor a·2/M, one ξ²)
#   X2: layers above m (letter x, factor a)
P0, PX, Y, MI, X2 = range(5)
_LETTER = ("1", "x", "y", "1", "x")
_NEXT = {P0: (P0, Y, MI), PX: (PX, Y, MI), Y: (Y, MI), MI: (X2,), X2: (X2,)}
_HAS_XI = (False, False, False, True, True)


def _moments(M, one):
    """Per-layer E[letter] and E[letter·letter'] for width M (exact if ``one`` is a Fraction)."""
    m = one * M
    e1 = {"1": one, "x": one, "y": one - 2 / m}
    e2 = {("1", "1"): one, ("1", "x"): one, ("1", "y"): one - 2 / m,
          ("x", "x"): one + 5 / m, ("y", "y"): one + 1 / m - 4 / (m * m), ("x", "y"): one - 1 / m}
    for (p, q), v in list(e2.items()):
        e2[(q, p)] = v
    return e1, e2


MAX_EXACT_DEPTH = 1000   # exact=True: big-rational transfer matrices (L = 1000 takes ~0.5 s, L = 3000 ~11 s)


def _check(M, L, sigma_w2, terms, exact=False):
    from ntksym.network import MAX_DEPTH, MAX_WIDTH
    for name, v, top in (("M", M, MAX_WIDTH), ("L", L, MAX_EXACT_DEPTH if exact else MAX_DEPTH)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= v <= top:
            raise NetworkError(f"{name} must be an integer in [1, {top}]"
                               + (" with exact=True" if exact and name == "L" else "") + f", got {v!r}")
    if isinstance(sigma_w2, bool) or not isinstance(sigma_w2, numbers.Real) or not sigma_w2 > 0 \
            or not math.isfinite(float(sigma_w2)):
        raise NetworkError(f"sigma_w2 must be a finite number > 0, got {sigma_w2!r}")
    if terms not in TERMS:
        raise NetworkError(f"terms must be one of {TERMS}, got {terms!r}")


def _initial(terms, one):
    """Coefficient of each state at layer 1: P0/PX start paths with l >= 2 (or the readout),
    Y/MI start the l = 1 paths, whose factor is ‖h⁰‖² + 1 = 2 (weights and bias)."""
    w = one if terms in ("all", "weights") else 0 * one
    b = one if terms in ("all", "biases") else 0 * one
    return (b, w, w + b, w + b, 0 * one)


@dataclass(frozen=True)
class TheoryMoments:
    """Exact E[Θ] and E[Θ²] of the Seleznova–Kutyniok network (see module docstring).

    ``mean`` and ``second`` may be ``inf`` for very deep chaotic networks;
    ``ratio = second/mean²`` is computed with rescaling (in logarithms) and is ``inf`` only where
    it truly exceeds the float64 range (depth/width beyond about 140).
    """
    M: int
    L: int
    sigma_w2: float
    terms: str
    mean: float
    second: float
    ratio: float
    exact_ratio: Fraction | None = None


def exact_moments(M: int, L: int, sigma_w2=2, terms: str = "all", exact: bool = False) -> TheoryMoments:
    """E[Θ(x,x)], E[Θ(x,x)²] and R = E[Θ²]/E[Θ]² by transfer matrices over the exact representation.

    ``terms``: ``"all"`` (weights and biases, the paper's NTK), ``"weights"``
    (Σ‖∂f/∂W^l‖² only, Hanin & Nica's K without biases) or ``"biases"``.
    ``exact=True`` uses rational arithmetic (``sigma_w2`` converted exactly
    from its decimal repr); it costs O(L·625) big-rational operations.
    """
    _check(M, L, sigma_w2, terms, exact)
    if exact:
        a = Fraction(str(sigma_w2)) / 2 if not isinstance(sigma_w2, Fraction) else sigma_w2 / 2
        mean, second = _transfer_exact(M, L, a, terms)
        r = second / mean ** 2
        return TheoryMoments(M, L, float(sigma_w2), terms, _float(mean), _float(second), _float(r), r)
    log_mean, log_second = _transfer_float(M, L, float(sigma_w2) / 2, terms)
    return TheoryMoments(M, L, float(sigma_w2), terms, _exp(log_mean), _exp(log_second),
                         _exp(log_second - 2 * log_mean))


def _exp(t: float) -> float:
    """exp(t), ``inf`` where the true value is beyond the float64 range."""
    return math.exp(t) if t < 709.0 else math.inf


def _float(q: Fraction) -> float:
    """A rational as a float, ``inf`` where it is beyond the float64 range."""
    try:
        return float(q)
    except OverflowError:
        return math.inf


def _weights(a, M, one):
    m = one * M
    return tuple(one if s == P0 else (a * 2 / m if s == MI else a) for s in range(5))


def _transfer_exact(M, L, a, terms):
    one = Fraction(1)
    e1, e2 = _moments(M, one)
    w = _weights(a, M, one)
    c = _initial(terms, one)
    u = [c[t] * w[t] * e1[_LETTER[t]] for t in range(5)]
    V = {(t, s): c[t] * c[s] * w[t] * w[s] * e2[(_LETTER[t], _LETTER[s])] for t in range(5) for s in range(5)}
    for _ in range(L - 1):
        nu = [0 * one] * 5
        for s in range(5):
            if u[s]:
                for t in _NEXT[s]:
                    nu[t] += u[s] * w[t] * e1[_LETTER[t]]
        nV = {k: 0 * one for k in V}
        for (s, s2), v in V.items():
            if v:
                for t in _NEXT[s]:
                    for t2 in _NEXT[s2]:
                        nV[(t, t2)] += v * w[t] * w[t2] * e2[(_LETTER[t], _LETTER[t2])]
        u, V = nu, nV
    mean = sum(u)
    second = sum(v * (3 if _HAS_XI[s] and _HAS_XI[s2] else 1) for (s, s2), v in V.items())
    return mean, second


@lru_cache(maxsize=256)
def _matrices(M, a, terms):
    e1, e2 = _moments(M, 1.0)
    w = _weights(a, M, 1.0)
    c = _initial(terms, 1.0)
    adj = np.zeros((5, 5))
    for s, nxt in _NEXT.items():
        adj[s, list(nxt)] = 1.0
    emit1 = np.array([w[t] * e1[_LETTER[t]] for t in range(5)])
    emit2 = np.array([[w[t] * w[s] * e2[(_LETTER[t], _LETTER[s])] for s in range(5)] for t in range(5)])
    T1 = adj * emit1[None, :]
    T2 = np.kron(adj, adj) * emit2.reshape(-1)[None, :]
    u0 = np.array(c) * emit1
    V0 = np.outer(c, c).reshape(-1) * emit2.reshape(-1)
    xi = np.array([[3.0 if _HAS_XI[t] and _HAS_XI[s] else 1.0 for s in range(5)] for t in range(5)]).reshape(-1)
    return T1, T2, u0, V0, xi


def _transfer_float(M, L, a, terms):
    """log E[Θ], log E[Θ²] with per-layer renormalisation (no overflow at any depth)."""
    T1, T2, u, V, xi = _matrices(int(M), float(a), terms)
    log_u = log_v = 0.0
    for _ in range(L - 1):
        u = u @ T1
        V = V @ T2
        su, sv = u.sum(), V.sum()
        u, V = u / su, V / sv
        log_u += math.log(su)
        log_v += math.log(sv)
    return log_u + math.log(u.sum()), log_v + math.log(V @ xi)


def _layer_moment(M: int, p: int, q: int) -> float:
    """E[x^p y^q] for one layer: (2/M)^{p+q} E_K[E χ²_K^p · E χ²_{K−1}^q], K ~ Bin(M, 1/2), with the
    chi-square moments ∏_{i<p}(ν + 2i) as polynomials in K (the convention behind the quoted
    second moments; it differs from conditioning on K ≥ 1 only by O(2^{−M}))."""
    K = np.arange(M + 1, dtype=float)
    logw = np.array([math.lgamma(M + 1) - math.lgamma(k + 1) - math.lgamma(M - k + 1) for k in range(M + 1)])
    w = np.exp(logw - M * math.log(2))
    mx = np.prod([K + 2 * i for i in range(p)], axis=0) if p else np.ones_like(K)
    my = np.prod([K - 1 + 2 * i for i in range(q)], axis=0) if q else np.ones_like(K)
    return float((2 / M) ** (p + q) * np.sum(w * mx * my))


@lru_cache(maxsize=64)
def _tuple_matrices(M, a, terms, k):
    """Transfer matrix over k-tuples of paths (5^k states) and the start / final vectors."""
    import itertools
    w = _weights(a, M, 1.0)
    c = _initial(terms, 1.0)
    adj = np.zeros((5, 5))
    for s, nxt in _NEXT.items():
        adj[s, list(nxt)] = 1.0
    states = list(itertools.product(range(5), repeat=k))
    mom = {}
    emit = np.empty(len(states))
    start = np.empty(len(states))
    final = np.empty(len(states))
    for i, st in enumerate(states):
        p = sum(_LETTER[t] == "x" for t in st)
        q = sum(_LETTER[t] == "y" for t in st)
        if (p, q) not in mom:
            mom[(p, q)] = _layer_moment(M, p, q)
        emit[i] = np.prod([w[t] for t in st]) * mom[(p, q)]
        start[i] = np.prod([c[t] for t in st]) * emit[i]
        j = sum(_HAS_XI[t] for t in st)                  # E[ξ^{2j}] = (2j − 1)!!
        final[i] = float(np.prod(np.arange(1, 2 * j, 2))) if j else 1.0
    T = adj
    for _ in range(k - 1):
        T = np.kron(T, adj)
    return T * emit[None, :], start, final


def log_moments(M: int, L: int, sigma_w2=2, k_max: int = 4, terms: str = "all") -> list:
    """[log E[Θ^k] for k = 1..k_max] from transfer matrices over k-tuples of paths (5^k states).

    Independent of the specialised pair automaton used by :func:`exact_moments` (same
    representation, generic code); k ≤ 4 (625 states)."""
    _check(M, L, sigma_w2, terms)
    if not 1 <= k_max <= 4:
        raise NetworkError(f"k_max must be between 1 and 4, got {k_max!r}")
    out = []
    for k in range(1, k_max + 1):
        T, v, final = _tuple_matrices(int(M), float(sigma_w2) / 2, terms, k)
        log_v = 0.0
        for _ in range(L - 1):
            v = v @ T
            s = v.sum()
            v = v / s
            log_v += math.log(s)
        out.append(log_v + math.log(v @ final))
    return out


def ratio_standard_error(M: int, L: int, sigma_w2, samples: int, terms: str = "all") -> float:
    """Standard error of the plug-in R̂ = mean(Θ²)/mean(Θ)² over ``samples`` iid networks, from the
    exact moments up to E[Θ⁴] (delta method): with m_k = E[Θ^k]/E[Θ]^k,
    S·Var(R̂) ≈ (m₄ − m₂²) − 4m₂(m₃ − m₂) + 4m₂²(m₂ − 1)."""
    lm = log_moments(M, L, sigma_w2, 4, terms)
    m2, m3, m4 = (_exp(lm[k - 1] - k * lm[0]) for k in (2, 3, 4))
    if math.inf in (m2, m3, m4) or m2 > 1e100:  # E[Θ⁴]/E[Θ]⁴ beyond float64: the SE is too
        return math.inf
    var = (m4 - m2 ** 2) - 4 * m2 * (m3 - m2) + 4 * m2 ** 2 * (m2 - 1)
    return math.sqrt(max(var, 0.0) / samples)


def mean_ntk(L: int, sigma_w2) -> float:
    """Closed form E[Θ] = (L+1) a^L + Σ_{k=0}^L a^k, a = σ_w²/2 (independent of M)."""
    a = sigma_w2 / 2
    return (L + 1) * a ** L + sum(a ** k for k in range(L + 1))


def dispersion(M: int, L: int, sigma_w2=2, terms: str = "all") -> float:
    """Exact finite-(M, L) dispersion R = E[Θ²]/E[Θ]² (float)."""
    return exact_moments(M, L, sigma_w2, terms).ratio


# --------------------------------------------------------------------------
# continuum limits M, L → ∞ with L/M → λ (FORMULAS §7, checked against the
# exact transfer matrix at large M in tests/test_dispersion.py)
# --------------------------------------------------------------------------

def _lam(lam):
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not lam >= 0 or not math.isfinite(lam):
        raise NetworkError(f"lambda = L/M must be a finite number >= 0, got {lam!r}")
    return mpmath.mpf(lam)


def r_eoc(lam: float) -> float:
    """EOC (σ_w² = 2): R_EOC(λ) = [45λ²e^{5λ} + 48λe^{5λ} − 108λ + 19e^{5λ} − 54 + 35e^{−λ}]/(540λ²).

    → 1 as λ → 0, ~ e^{5λ}/12 as λ → ∞.  Evaluated at 40 digits (the
    numerator cancels to O(λ²))."""
    lam = _lam(lam)
    if lam == 0:
        return 1.0
    with mpmath.workdps(40 + int(5 * lam / 2.3)):
        e5, em = mpmath.exp(5 * lam), mpmath.exp(-lam)
        num = 45 * lam ** 2 * e5 + 48 * lam * e5 - 108 * lam + 19 * e5 - 54 + 35 * em
        return float(num / (540 * lam ** 2))


def r_weights(lam: float) -> float:
    """Weights only (and the chaotic phase σ_w² > 2): R_W(λ) = [e^{5λ}(9λ² + 6λ − 1) + e^{−λ}]/(27λ²).

    → 1 as λ → 0, ~ e^{5λ}/3 as λ → ∞ (Hanin & Nica's e^{5β} up to a constant)."""
    lam = _lam(lam)
    if lam == 0:
        return 1.0
    with mpmath.workdps(40 + int(5 * lam / 2.3)):
        num = mpmath.exp(5 * lam) * (9 * lam ** 2 + 6 * lam - 1) + mpmath.exp(-lam)
        return float(num / (27 * lam ** 2))


r_chaotic = r_weights


def hanin_nica(lam: float) -> float:
    """Hanin & Nica's law E[K²]/E[K]² ≃ exp(5λ), λ = Σ 1/n_i = L/M (valid up to O(1) factors)."""
    return _exp(5 * float(_lam(lam)))


def ordered_limit(M: int, sigma_w2: float, tol: float = 1e-13, max_depth: int = 100000) -> TheoryMoments:
    """Ordered phase (σ_w² < 2): the depth-independent R at L → ∞ for width M (= 1 + O(1/M)).

    Iterates the exact transfer matrix in L until R changes by < ``tol``."""
    if not sigma_w2 < 2:
        raise NetworkError(f"the ordered phase needs sigma_w2 < 2, got {sigma_w2!r}")
    prev, L = None, 8
    while L <= max_depth:
        t = exact_moments(M, L, sigma_w2)
        if prev is not None and abs(t.ratio - prev) < tol:
            return t
        prev, L = t.ratio, 2 * L
    raise NetworkError(f"the ordered-phase limit did not converge by depth {max_depth}")


def relu_phase(sigma_w2: float) -> str:
    """'ordered' | 'eoc' | 'chaotic' for ReLU with σ_b = 0, via :func:`ntksym.eoc.phase` (χ₁ = σ_w²/2)."""
    from ntksym import derivation, eoc
    act = derivation.as_activation("relu")
    ph = eoc.phase(act, derivation.dual_kernels(act), math.sqrt(float(sigma_w2)), 0.0)
    return {"edge of chaos": "eoc"}.get(ph.phase, ph.phase)


def continuum_limit(lam: float, sigma_w2: float, M: int | None = None) -> float:
    """The λ = L/M → limit of R in the phase of σ_w²: R_EOC, R_W (chaotic), or, in the
    ordered phase (needs ``M``), the exact depth-independent value of :func:`ordered_limit`."""
    phase = relu_phase(sigma_w2)
    if phase == "eoc":
        return r_eoc(lam)
    if phase == "chaotic":
        return r_weights(lam)
    if M is None:
        raise NetworkError("the ordered-phase dispersion depends on M (1 + O(1/M)); pass M")
    return ordered_limit(M, sigma_w2).ratio


def seleznova_inputs(M: int, n: int = 1, seed: int = 0) -> np.ndarray:
    """``n`` unit-norm inputs in R^M (the first is e_1); the theory concerns the diagonal Θ(x, x)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, M))
    X[0] = 0.0
    X[0, 0] = 1.0
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# --------------------------------------------------------------------------
# theory next to Monte Carlo
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """Theory vs Monte Carlo for one (M, L, σ_w²) of the Seleznova–Kutyniok network.

    ``limit`` is the continuum value in the phase (R_EOC(λ), R_W(λ), or the
    ordered-phase L → ∞ value at this M); ``hanin_nica = exp(5λ)``;
    ``z_mean``/``z_ratio`` are (MC − exact)/SE with the SE estimated from the samples;
    ``theory_ratio_se`` is the exact delta-method SE of R̂ for this many samples (from E[Θ³], E[Θ⁴]),
    and ``z_ratio_theory`` uses it.  Θ is heavy-tailed at larger λ: there the sample SE
    underestimates the true one (the rare large Θ that dominate E[Θ⁴] are seldom drawn)."""
    M: int
    L: int
    sigma_w2: float
    phase: str
    lam: float
    theory_mean: float
    theory_ratio: float
    limit: float
    hanin_nica: float
    mc_mean: float
    mc_mean_se: float
    mc_ratio: float
    mc_ratio_se: float
    samples: int
    seconds: float
    theory_ratio_se: float = math.nan

    @property
    def z_mean(self) -> float:
        return (self.mc_mean - self.theory_mean) / self.mc_mean_se

    @property
    def z_ratio(self) -> float:
        return (self.mc_ratio - self.theory_ratio) / self.mc_ratio_se

    @property
    def z_ratio_theory(self) -> float:
        return (self.mc_ratio - self.theory_ratio) / self.theory_ratio_se

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(z_mean=self.z_mean, z_ratio=self.z_ratio, z_ratio_theory=self.z_ratio_theory)
        return d


def compare(configs, samples: int = 2000, seed=0, backend: str = "numpy", device=None,
            progress: bool = False) -> list:
    """Exact theory next to a direct Monte Carlo of the network for each ``(M, L, σ_w²)`` in ``configs``.

    The MC uses :func:`ntksym.finite.montecarlo.monte_carlo` with
    ``parameterization='standard'``, ``sigma_b=0`` (trainable zero biases),
    ``n_0 = M``, input ``e_1`` — exactly the setup of the theory.  Each
    configuration gets its own seed ``(seed, index)``."""
    from ntksym.finite.montecarlo import monte_carlo
    out = []
    for i, (M, L, sw2) in enumerate(configs):
        t = exact_moments(M, L, sw2)
        phase = relu_phase(sw2)
        lam = L / M
        limit = continuum_limit(lam, sw2, M)
        mc = monte_carlo("relu", seleznova_inputs(M, 1), L, M, math.sqrt(sw2), 0.0, samples, seed=[seed, i],
                         parameterization="standard", backend=backend, device=device, progress=progress)
        out.append(Comparison(M, L, float(sw2), phase, lam, t.mean, t.ratio, limit, hanin_nica(lam),
                              float(mc.ntk_mean[0, 0]), float(mc.ntk_sem[0, 0]), mc.dispersion_diag,
                              mc.dispersion_diag_se, samples, mc.seconds,
                              ratio_standard_error(M, L, sw2, samples)))
    return out


# --------------------------------------------------------------------------
# does the NTK move during training?
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingRun:
    """Full-batch GD on an MSE regression: relative NTK change ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F and the losses."""
    M: int
    L: int
    sigma_w2: float
    phase: str
    steps: int
    lr: float
    loss_initial: float
    loss_final: float
    ntk_change: float


def _loss_gradients(net, pre, ins, out, y, dphi):
    """Gradients of loss = 1/(2n) Σ_i ‖f(x_i) − y_i‖² with respect to the stored parameters."""
    a, c = net.multipliers()
    n = out.shape[0]
    e = (out - y) / n                                   # ∂loss/∂z^{L+1}, shape (n, n_out)
    gw, gb = [], []
    for l in range(net.depth, -1, -1):                  # layer l+1 in 1-based numbering
        gw.append(a[l] * (e.T @ ins[l]))
        gb.append(c * e.sum(axis=0))
        if l > 0:
            e = (e @ net.weights[l]) * (a[l] * dphi(pre[l - 1]))
    return gw[::-1], gb[::-1]


def training_run(M: int, L: int, sigma_w2: float, steps: int = 100, n: int = 16, lr_scale: float = 0.5,
                 seed: int = 0) -> TrainingRun:
    """Train the Seleznova–Kutyniok network (standard parameterization, trainable zero biases) by
    full-batch gradient descent on ``n`` unit-norm inputs in R^M with targets ``tanh(3⟨u, x⟩)``
    and report how far the empirical NTK on the training inputs moves.

    The learning rate is ``lr = lr_scale · n / λ_max(Θ_0)`` (function-space step ``(lr/n)Θ``
    with spectral radius ``lr_scale``, < 2 for stability), so the phases, whose NTK scales
    differ by orders of magnitude, train at comparable speed."""
    from ntksym.finite import empirical as emp
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise NetworkError(f"steps must be an integer >= 1, got {steps!r}")
    if not 0 < lr_scale < 2:
        raise NetworkError(f"lr_scale must be in (0, 2), got {lr_scale!r}")
    rng = np.random.default_rng(seed)
    X = seleznova_inputs(M, n, seed)
    u = rng.standard_normal(M)
    y = np.tanh(3 * X @ (u / np.linalg.norm(u)))[:, None]
    phi = lambda z: np.maximum(z, 0.0)  # noqa: E731
    dphi = lambda z: (z > 0).astype(np.float64)  # noqa: E731
    net = emp.sample_network(L, M, M, math.sqrt(sigma_w2), 0.0, rng, parameterization="standard")
    theta0 = emp.empirical_kernels(net, X, None, phi, dphi)[1]
    lr = lr_scale * n / np.linalg.eigvalsh(theta0)[-1]
    W = [w.copy() for w in net.weights]
    b = [v.copy() for v in net.biases]
    losses = []
    for _ in range(steps + 1):
        cur = emp.Network(tuple(W), tuple(b), net.sigma_w, net.sigma_b, "standard")
        pre, ins, out = emp._features(cur, X, phi)
        losses.append(float(0.5 * np.mean(np.sum((out - y) ** 2, axis=1))))
        if len(losses) > steps:
            break
        gw, gb = _loss_gradients(cur, pre, ins, out, y, dphi)
        W = [w - lr * g for w, g in zip(W, gw)]
        b = [v - lr * g for v, g in zip(b, gb)]
    thetaT = emp.empirical_kernels(cur, X, None, phi, dphi)[1]
    change = float(np.linalg.norm(thetaT - theta0) / np.linalg.norm(theta0))
    return TrainingRun(M, L, float(sigma_w2), relu_phase(sigma_w2), steps, float(lr), losses[0], losses[-1], change)
