"""Linear-width spectra of the conjugate kernel (CK) and the NTK.

Limit laws of Fan & Wang, "Spectra of the Conjugate Kernel and Neural
Tangent Kernel for linear-width neural networks" (NeurIPS 2020, arXiv
2005.11879v3; Thm 3.4, Lemma 3.5, Thm 3.7 and the algorithm of App. A).
The training simulation in :mod:`ntksym.finite.rmt_sample` follows the
phenomenon described by Wang, Wu, Fan et al. 2022 ("Spectral evolution and
invariance in linear-width neural networks").

Normalization (Fan & Wang's, stated once for the whole module)
--------------------------------------------------------------
* Data X₀ ∈ ℝ^{d₀×n} has approximately orthonormal columns (by default iid
  N(0, 1/d₀) entries); μ₀ = limspec X₀ᵀX₀ is then Marchenko–Pastur MP_{γ₀}.
* X_ℓ = σ(W_ℓ X_{ℓ−1})/√d_ℓ with W_ℓ ∈ ℝ^{d_ℓ×d_{ℓ−1}} iid N(0, 1); the
  output is f(x) = wᵀx_L with w iid N(0, 1).
* γ₀ = n/d₀ and γ_ℓ = n/d_ℓ (n = number of samples).  ``gammas`` is
  (γ₀, γ₁, …, γ_L); a single value means L = 0 (both laws are then μ₀).
* σ is *centered and normalized automatically*: the activation used is
  σ̃ = (σ − Eσ(ξ))/sd σ(ξ), ξ ~ N(0, 1), so that Eσ̃ = 0, Eσ̃² = 1 as the
  theorems require.  Eσ = μ₀ and b = Eσ̃′ = μ₁/sd come from ntksym's Hermite
  coefficients (exact where a rule applies); Eσ² and Eσ′² from the exact
  dual-kernel diagonals Σ̂(1,1,1), Σ̇(1,1,1) where those are closed forms,
  otherwise from Gauss–Legendre quadrature (mpmath).  The route is recorded.
* Constants: b = Eσ̃′, a_σ = Eσ̃′², q_ℓ = b^{2(L−ℓ)}, r_ℓ = a_σ^{L−ℓ},
  r₊ = Σ_{ℓ=0}^{L−1} (r_ℓ − q_ℓ).
* Stieltjes transform m(z) = ∫ dμ(x)/(x − z); the density reported on the
  grid is Im m(x + iη)/π, i.e. *exactly* the density of μ convolved with a
  Cauchy(η) law, up to the fixed-point residual (reported).  Known atoms
  (mass at 0 of the CK when some γ > 1 …) are subtracted and listed apart.

CK law (Thm 3.4): μ_ℓ = MP_{γ_ℓ} ⊠ ((1−b²) + b² μ_{ℓ−1}) — affine map first,
then the MP map.  NTK law (Lemma 3.5): limspec of r₊I + X_LᵀX_L +
Σ_{ℓ<L} q_ℓ X_ℓᵀX_ℓ, computed through the fixed-point equations of Thm 3.7
(the CK is the special case r₊ = 0, q = 0).  If b = 0 every μ_ℓ (ℓ ≥ 1) is
MP_{γ_ℓ} and the NTK law is r₊ + MP_{γ_L}; both are evaluated in closed form, also for 0 < b² < 1e-4
(``B2_ZERO``), where Thm 3.7's terms 1/z_ℓ ~ 1/b² lose digits and the laws differ by O(b²).  Results whose
fixed-point residual exceeds 1e-8 are refused with an error rather than returned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import mpmath
import numpy as np

from ntksym.errors import ActivationError, InputError, NtksymError

__all__ = ["RMTConstants", "NormalizedActivation", "SpectrumResult", "normalize_activation", "rmt_constants",
           "mp_stieltjes", "mp_density", "stieltjes", "limit_spectrum", "KERNELS"]

KERNELS = ("ck", "ntk")
B2_ZERO = 1e-4        # below this b² the b = 0 closed forms are used (Thm 3.7 loses digits as b → 0);
#                       the laws move by O(b²) in Wasserstein-1 distance (for the NTK mainly r₊ and q_ℓ ≤ b²)
MAX_RESIDUAL = 1e-8   # limit_spectrum refuses results whose fixed-point residual exceeds this
MAX_GAMMA = 1e6       # each γ_ℓ = n/d_ℓ in (0, 10⁶]: beyond, the support (~γ) and the atom mass 1 − 1/γ leave
#                       the solver's working range


# ----------------------------------------------------------------------------- activation and constants

@dataclass(frozen=True)
class NormalizedActivation:
    """σ̃ = (σ − mean)/sd with the moments used and how each was obtained."""
    name: str
    mean: float          # Eσ(ξ)
    second: float        # Eσ(ξ)²
    sd: float            # sqrt(Eσ² − (Eσ)²)
    mu1: float           # Eσ′(ξ) = Hermite μ₁ of σ
    deriv_second: float  # Eσ′(ξ)²
    routes: tuple[tuple[str, str], ...]
    smooth: bool         # no breakpoints (Fan & Wang assume σ ∈ C² with bounded σ′, σ″)
    _fn: Any = field(repr=False, compare=False, default=None)
    _dfn: Any = field(repr=False, compare=False, default=None)

    def fn(self, t):
        return (self._fn(t) - self.mean) / self.sd

    def dfn(self, t):
        return self._dfn(t) / self.sd

    @property
    def b(self) -> float:
        return self.mu1 / self.sd

    @property
    def a_sigma(self) -> float:
        return self.deriv_second / self.sd ** 2

    @property
    def note(self) -> str:
        s = (f"σ̃ = (σ − {self.mean:.6g})/{self.sd:.6g} (centered and normalized automatically: Eσ̃ = 0, Eσ̃² = 1)")
        if not self.smooth:
            s += "; σ has breakpoints, so Fan & Wang's C² assumption fails (laws are used as stated, unproven here)"
        return s


def _gauss_expect(fn, breakpoints, dps=30) -> float:
    """E f(ξ), ξ ~ N(0,1), by mpmath Gauss–Legendre on intervals split at the breakpoints."""
    with mpmath.workdps(dps):
        pts = [-mpmath.inf] + sorted(mpmath.mpf(p) for p in breakpoints) + [mpmath.inf]
        w = lambda t: fn(t) * mpmath.exp(-t * t / 2)  # noqa: E731
        return float(mpmath.quad(w, pts) / mpmath.sqrt(2 * mpmath.pi))


def normalize_activation(spec: Any, params: Mapping[str, Any] | None = None) -> NormalizedActivation:
    """Moments of σ and its centered, normalized version (Fan & Wang's Assumption: Eσ̃ = 0, Eσ̃² = 1)."""
    import sympy as sp

    from ntksym.activation import check_square_integrable
    from ntksym.derivation import as_activation, dual_kernels, hermite

    act = as_activation(spec, params)
    check_square_integrable(act)
    herm = hermite(act, 2, digits=20)
    for label, c in zip(("Eσ", "Eσ′"), herm.coefficients):
        _check_moment(act, label, c.value, MAX_MEAN)
    mean, mu1 = (float(c.value) for c in herm.coefficients)
    routes = [("Eσ", herm.coefficients[0].route), ("Eσ′ (b·sd)", herm.coefficients[1].route)]
    dual = dual_kernels(act)
    moments = []
    for which, label, expr in (("khat", "Eσ²", act.concrete), ("kdot", "Eσ′²", act.derivative)):
        diag = dual.diagonal(which)
        value = None
        if diag is not None and not (which == "kdot" and dual.kdot_distributional):
            try:
                value = float(sp.N(diag.subs(sp.Symbol("q", positive=True), 1), 30))
                routes.append((label, "exact: dual-kernel diagonal at q = 1 (" + getattr(dual, f"route_{which[1:]}")
                               + ")"))
            except (TypeError, ValueError):
                value = None
        if value is None or not math.isfinite(value):
            f = sp.lambdify(act.x, expr ** 2, "mpmath")
            value = _gauss_expect(f, act.breakpoints)
            routes.append((label, "numeric: mpmath Gauss–Legendre quadrature (30 digits)"))
        _check_moment(act, label, value, MAX_SECOND)
        moments.append(value)
    second, dsecond = moments
    var = second - mean ** 2
    if not var > 1e-14 * max(1.0, second):
        raise ActivationError(f"activation {act.name!r} is constant under N(0,1) (variance {var:.3g}); "
                              "the normalized activation (σ − Eσ)/sd is undefined")
    return NormalizedActivation(str(act.concrete), mean, second, math.sqrt(var), mu1, dsecond, tuple(routes),
                                not act.breakpoints, act.numpy_fn(), act.numpy_fn(derivative=True))


MAX_MEAN = 1e150     # |Eσ|, |Eσ′| beyond this: their squares (Var σ = Eσ² − (Eσ)², b²) would leave float64
MAX_SECOND = 1e300   # Eσ², Eσ′² beyond this: the normalizing moments are beyond float64


def _check_moment(act, label: str, value, bound: float) -> None:
    """Refuse an activation whose normalizing moments under N(0, 1) are not representable in float64."""
    if not mpmath.isfinite(value) or abs(value) > bound:
        raise ActivationError(f"activation {act.name!r}: {label} under N(0,1) is {mpmath.nstr(value, 3)}, beyond "
                              f"{bound:g} (its normalizing moments overflow float64); rescale the activation")


@dataclass(frozen=True)
class RMTConstants:
    """Fan & Wang's constants for depth L (after normalization)."""
    depth: int
    b: float
    a_sigma: float
    q: tuple[float, ...]   # q_ℓ = b^{2(L−ℓ)}, ℓ = 0..L−1
    r: tuple[float, ...]   # r_ℓ = a_σ^{L−ℓ}
    r_plus: float          # Σ (r_ℓ − q_ℓ)

    def as_dict(self) -> dict:
        return {"depth": self.depth, "b": self.b, "a_sigma": self.a_sigma, "q": list(self.q), "r": list(self.r),
                "r_plus": self.r_plus}


def rmt_constants(act: NormalizedActivation, depth: int) -> RMTConstants:
    b, a = act.b, act.a_sigma
    q = tuple(b ** (2 * (depth - l)) for l in range(depth))
    r = tuple(a ** (depth - l) for l in range(depth))
    return RMTConstants(depth, b, a, q, r, float(sum(r) - sum(q)))


# ----------------------------------------------------------------------------- Marchenko–Pastur

def mp_stieltjes(z, gamma: float):
    """m(z) of MP_γ (limspec X₀ᵀX₀, X₀ d×n iid N(0,1/d), γ = n/d): ∫dμ(x)/(x − z), z ∉ ℝ.

    Root of γ z m² − (1 − γ − z) m + 1 = 0 with the branch m ~ −1/z at ∞; the product of two principal
    square roots puts the cut exactly on the support [(1−√γ)², (1+√γ)²] (plus a pole at 0 if γ > 1)."""
    z = np.asarray(z, dtype=complex)
    a, b = (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2
    root = np.sqrt(z - a) * np.sqrt(z - b)
    return ((1 - gamma - z) + root) / (2 * gamma * z)


def mp_density(x, gamma: float):
    """Absolutely continuous part of MP_γ (mean 1); the atom at 0 has mass max(0, 1 − 1/γ)."""
    x = np.asarray(x, dtype=float)
    a, b = (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.sqrt(np.clip((b - x) * (x - a), 0, None)) / (2 * math.pi * gamma * x)
    return np.where((x > a) & (x < b), d, 0.0)


class _Mu0:
    """μ₀: MP_{γ₀} in closed form, or the empirical law of given eigenvalues."""

    def __init__(self, gamma0: float, eigenvalues=None):
        self.gamma0 = gamma0
        self.eigs = None if eigenvalues is None else np.asarray(eigenvalues, dtype=float).ravel()
        self.mean = 1.0 if self.eigs is None else float(self.eigs.mean())
        self.top = (1 + math.sqrt(gamma0)) ** 2 if self.eigs is None else float(self.eigs.max())

    def m(self, zeta):
        if self.eigs is None:
            return mp_stieltjes(zeta, self.gamma0)
        zeta = np.asarray(zeta, dtype=complex)
        out = np.empty(zeta.shape, dtype=complex)
        flat, res = zeta.ravel(), out.ravel()
        for i in range(0, flat.size, 256):  # chunks keep the (chunk, n) matrix small
            res[i:i + 256] = np.mean(1.0 / (self.eigs[None, :] - flat[i:i + 256, None]), axis=1)
        return out

    def t0(self, z, w):
        """t₀((z₋₁, z₀), (w₋₁, w₀)) = ∫ (w₋₁ + w₀x)/(z₋₁ + z₀x) dμ₀(x)."""
        (zm, z0), (wm, w0) = z, w
        small = np.abs(z0) < 1e-300
        z0s = np.where(small, 1.0, z0)
        val = w0 / z0s + (wm - w0 * zm / z0s) * self.m(-zm / z0s) / z0s
        return np.where(small, (wm + w0 * self.mean) / zm, val)


# ----------------------------------------------------------------------------- Thm 3.7 fixed point

class _Chain:
    """The fixed-point system of Fan & Wang Thm 3.7 for one top-level vector z^{(L)} per grid point.

    z^{(L)} = (−z + shift, c₀, …, c_{L−1}, c_L); z^{(ℓ−1)} = z_prev(s_ℓ, z^{(ℓ)}) = (z₋₁ + (1−b²)/s_ℓ, z₀, …,
    z_{ℓ−2}, z_{ℓ−1} + b²/s_ℓ); s_ℓ = 1/z^{(ℓ)}_ℓ + γ_ℓ t_{ℓ−1}(z^{(ℓ−1)}, (1−b², 0, …, 0, b²));
    t_ℓ(z, w) = w_ℓ/z_ℓ + t_{ℓ−1}(z_prev, w_prev), w_prev = w[:−1] − (w_ℓ/z_ℓ) z[:−1]."""

    def __init__(self, z, gammas, b, shift, coeffs, mu0: _Mu0):
        self.z = np.asarray(z, dtype=complex)
        self.g = list(gammas)          # γ₁..γ_L
        self.L = len(self.g)
        self.b2 = b * b
        top = [(-self.z + shift)] + [np.full_like(self.z, c) for c in coeffs]
        self.top = np.array(top)       # (L+2, G)
        self.mu0 = mu0

    def chain(self, s):
        zs = [None] * (self.L + 1)
        zs[self.L] = self.top
        for l in range(self.L, 0, -1):
            zl = zs[l]
            prev = zl[:-1].copy()
            prev[0] = prev[0] + (1 - self.b2) / s[l - 1]
            prev[-1] = prev[-1] + self.b2 / s[l - 1]
            zs[l - 1] = prev
        return zs

    def t(self, zs, k, w):
        acc = 0
        w = np.array(w, dtype=complex) if not isinstance(w, np.ndarray) else w.astype(complex)
        for j in range(k, 0, -1):
            c = w[-1] / zs[j][-1]
            acc = acc + c
            w = w[:-1] - c * zs[j][:-1]
        return acc + self.mu0.t0(zs[0], w)

    def update(self, s):
        zs = self.chain(s)
        new = np.empty_like(s)
        for l in range(1, self.L + 1):
            w = np.zeros((l + 1,) + self.z.shape, dtype=complex)
            w[0] += 1 - self.b2
            w[-1] += self.b2
            new[l - 1] = 1 / zs[l][-1] + self.g[l - 1] * self.t(zs, l - 1, w)
        return new

    def m(self, s):
        zs = self.chain(s)
        w = np.zeros((self.L + 2,) + self.z.shape, dtype=complex)
        w[0] += 1
        return self.t(zs, self.L, w)


def _residual(chain: _Chain, s):
    return np.max(np.abs(chain.update(s) - s) / (1 + np.abs(s)), axis=0)


def _newton(chain: _Chain, s, tol, maxit=40):
    """Batched Newton on G(s) = s − F(s) (F holomorphic, Jacobian by forward differences), with a damped
    fixed-point step wherever Newton would leave ℂ⁺ or increase the residual."""
    L = chain.L
    for _ in range(maxit):
        F = chain.update(s)
        G = s - F
        res = np.max(np.abs(G) / (1 + np.abs(s)), axis=0)
        if np.all(res < tol):
            break
        J = np.empty((L, L) + s.shape[1:], dtype=complex)
        for j in range(L):
            h = 1e-7 * (1 + np.abs(s[j]))
            sp_ = s.copy()
            sp_[j] = sp_[j] + h
            J[:, j] = (chain.update(sp_) - F) / h
        A = np.eye(L)[:, :, None] - J
        delta = np.linalg.solve(np.moveaxis(A, -1, 0), np.moveaxis(-G, -1, 0)[..., None])[..., 0]
        cand = s + np.moveaxis(delta, 0, -1)
        ok = np.all(np.isfinite(cand), axis=0) & np.all(cand.imag > 0, axis=0)
        ok &= np.where(ok, _residual(chain, np.where(ok, cand, s)) < np.maximum(res, tol), False)
        damped = 0.5 * s + 0.5 * F
        damped = damped.real + 1j * np.maximum(damped.imag, 1e-300)
        s = np.where(ok, cand, damped)
    return s


def _solve(z_grid, eta, gammas, b, shift, coeffs, mu0, tol=1e-11):
    """m(x + iη) on the grid, by continuation in η from a large value down to η (Newton at each level)."""
    x = np.asarray(z_grid, dtype=float)
    g = list(gammas)
    if not g:  # L = 0
        chain = _Chain(x + 1j * eta, g, b, shift, coeffs, mu0)
        return chain.m(np.zeros((0, x.size), complex)), 0.0, 0
    scale = max(1.0, float(np.max(np.abs(x))))
    etas = [eta]
    while etas[-1] < scale:
        etas.append(etas[-1] * 2.5)
    s = np.ones((len(g), x.size), dtype=complex) * (1 + 1j)
    for e in reversed(etas):
        chain = _Chain(x + 1j * e, g, b, shift, coeffs, mu0)
        if e == etas[-1]:
            for _ in range(400):  # damped fixed point at large η (a contraction there)
                s = 0.5 * s + 0.5 * chain.update(s)
        s = _newton(chain, s, tol)
    res = _residual(chain, s)
    return chain.m(s), float(np.max(res)), len(etas)


# ----------------------------------------------------------------------------- public API

@dataclass(frozen=True)
class SpectrumResult:
    """Limit law on a grid: density = Im m(x+iη)/π minus the Lorentzians of the listed atoms."""
    kernel: str
    gammas: tuple[float, ...]
    x: np.ndarray
    density: np.ndarray
    m: np.ndarray                      # m(x + iη), complex
    eta: float
    residual: float                    # max relative fixed-point residual |F(s) − s|/(1+|s|) over the grid
    atoms: tuple[tuple[float, float], ...]
    constants: RMTConstants
    normalization: str
    route: str
    mu0: str

    def m_continuous(self):
        """m minus the Stieltjes transforms mass/(loc − z) of the listed atoms."""
        z = self.x + 1j * self.eta
        out = self.m.copy()
        for loc, mass in self.atoms:
            out = out - mass / (loc - z)
        return out

    @property
    def mass_on_grid(self) -> float:
        """Trapezoid integral of the density over the grid (atoms excluded)."""
        return float(np.sum(0.5 * np.diff(self.x) * (self.density[1:] + self.density[:-1])))

    @property
    def tail_mass(self) -> tuple[float, float]:
        """Cauchy(η)-smoothed mass of the continuous part left and right of the grid: (η/π) Re m_c(x_min),
        −(η/π) Re m_c(x_max), accurate to O((η/dist)³) relative when the grid ends ≫ η away from the support."""
        mc = self.m_continuous()
        return float(self.eta / math.pi * mc[0].real), float(-self.eta / math.pi * mc[-1].real)

    @property
    def total_mass(self) -> float:
        """Grid mass + tails + atoms; equals 1 up to the trapezoid and tail-expansion errors."""
        return self.mass_on_grid + sum(self.tail_mass) + sum(w for _, w in self.atoms)

    def cdf(self, t):
        """CDF of the Cauchy(η)-smoothed law at points t (flat beyond the grid, apart from atoms)."""
        t = np.asarray(t, dtype=float)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(self.x) * (self.density[1:] + self.density[:-1]))])
        left, right = self.tail_mass
        F = left + np.interp(t, self.x, cum)
        F = np.where(t < self.x[0], left, F)  # an upper bound there (≤ the η-tail, ~η/(π·distance))
        F = np.where(t > self.x[-1], left + cum[-1] + right, F)
        for loc, mass in self.atoms:
            F = F + mass * (0.5 + np.arctan((t - loc) / self.eta) / math.pi)
        return F

    def accuracy(self) -> str:
        return (f"density = Im m(x+iη)/π with η = {self.eta:.3g} (the law convolved with Cauchy(η)); "
                f"max relative fixed-point residual {self.residual:.1e}; grid spacing {self.x[1] - self.x[0]:.3g}")

    def to_json(self) -> dict:
        return {"kernel": self.kernel, "gammas": list(self.gammas), "x": self.x.tolist(),
                "density": self.density.tolist(), "eta": self.eta, "residual": self.residual,
                "atoms": [{"x": a, "mass": w} for a, w in self.atoms], "mass_on_grid": self.mass_on_grid,
                "constants": self.constants.as_dict(), "normalization": self.normalization, "route": self.route,
                "mu0": self.mu0, "accuracy": self.accuracy()}


def _check_gammas(gammas) -> tuple[float, ...]:
    try:
        g = tuple(float(v) for v in gammas)
    except (TypeError, ValueError):
        raise InputError(f"gammas must be numbers, got {gammas!r}") from None
    if not g:
        raise InputError("give at least one gamma (γ₀ = n/d₀)")
    if not all(0 < v <= MAX_GAMMA for v in g):  # NaN fails too
        raise InputError(f"gammas must be positive and at most {MAX_GAMMA:g}, got {list(g)}")
    return g


def _atoms(kernel, g, b, consts, eigs) -> tuple[tuple[float, float], ...]:
    """Atoms of the limit law.  CK: at 0 with mass 1 − 1/γ_L (rank X_L ≤ d_L; for b² = 1 the rank is
    ≤ min_ℓ d_ℓ, so max_ℓ(1 − 1/γ_ℓ)).  NTK (Lemma 3.5 form r₊I + Σ c_ℓX_ℓᵀX_ℓ, c_ℓ > 0): at r₊ with the
    mass of ∩ ker X_ℓ: 1 − 1/γ_L if b = 0 (only X_L enters), 1 − 1/γ₀ if b² = 1 (ker X₀ ⊂ ker X_ℓ), and
    1 − Σ_ℓ 1/γ_ℓ otherwise (row spaces in general position; checked against η·Im m(r₊ + iη) → mass and
    sampled Lemma 3.5 matrices in the tests).  None are listed for an empirical μ₀."""
    if eigs is not None:
        return ()
    L = len(g) - 1
    linear = abs(b * b - 1) < 1e-12
    if kernel == "ck" or L == 0:
        mass = max([0.0, 1 - 1 / g[-1]] + ([1 - 1 / v for v in g] if linear else []))
        return ((0.0, mass),) if mass > 0 else ()
    if b * b < B2_ZERO:
        mass = 1 - 1 / g[-1]
    elif linear:
        mass = 1 - 1 / g[0]
    else:
        mass = 1 - sum(1 / v for v in g)
    return ((consts.r_plus, mass),) if mass > 0 else ()


def stieltjes(act: Any, gammas: Sequence[float], z_real, eta: float, kernel: str = "ck",
              mu0_eigenvalues=None, tol: float = 1e-11):
    """m(x + iη) of the CK or NTK limit law on real points x; returns (m, residual, route)."""
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if not isinstance(act, NormalizedActivation):
        act = normalize_activation(act)
    g = _check_gammas(gammas)
    L = len(g) - 1
    consts = rmt_constants(act, L)
    mu0 = _Mu0(g[0], mu0_eigenvalues)
    b = consts.b
    x = np.asarray(z_real, dtype=float)
    if L >= 1 and b * b < B2_ZERO:
        shift = consts.r_plus if kernel == "ntk" else 0.0
        m = mp_stieltjes(x - shift + 1j * eta, g[-1])
        note = "b = 0" if b == 0 else f"b² = {b * b:.1e} < {B2_ZERO:g}, treated as 0 (the laws move by O(b²))"
        return m, 0.0, f"{note}: μ_L = MP_γ_L in closed form{' shifted by r₊' if kernel == 'ntk' else ''}"
    if kernel == "ck":
        shift, coeffs = 0.0, [0.0] * L + [1.0]
        route = "Fan & Wang Thm 3.7 with z = (−z, 0, …, 0, 1) (CK, equivalent to Thm 3.4's MP recursion)"
    else:
        shift, coeffs = consts.r_plus, list(consts.q) + [1.0]
        route = "Fan & Wang Thm 3.7 with z = (−z + r₊, q₀, …, q_{L−1}, 1) (NTK via Lemma 3.5)"
    m, res, levels = _solve(x, eta, g[1:], b, shift, coeffs, mu0, tol)
    return m, res, route + f"; batched Newton with η-continuation ({levels} levels)"


def _auto_range(act, g, kernel, consts, mu0):
    """A range holding the support: norm bounds U_ℓ = ((1−b²) + b²U_{ℓ−1})(1+√γ_ℓ)², refined by a coarse solve."""
    b2 = consts.b ** 2
    U = [mu0.top]
    for v in g[1:]:
        U.append(((1 - b2) + b2 * U[-1]) * (1 + math.sqrt(v)) ** 2)
    if kernel == "ck" or len(g) == 1:
        lo, hi = 0.0, U[-1]
    else:
        lo = consts.r_plus
        hi = consts.r_plus + U[-1] + sum(q * u for q, u in zip(consts.q, U[:-1]))
    return lo, hi


def _support(act, g, kernel, consts, eigs, lo, hi, points=600):
    """Where the law lives, from two coarse solves: inside the support Im m(x+iη)/π hardly changes when η
    drops 4×; outside it (Cauchy tails) it drops ≈ 4×.  Known atoms are always included."""
    xs = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), points)
    eta = xs[1] - xs[0]
    d1 = stieltjes(act, g, xs, eta, kernel, eigs, tol=1e-9)[0].imag
    d2 = stieltjes(act, g, xs, eta / 4, kernel, eigs, tol=1e-9)[0].imag
    atoms = _atoms(kernel, g, consts.b, consts, eigs)
    for loc, mass in atoms:  # remove the atoms' Lorentzians: Im of mass/(loc − x − iη)
        d1 = d1 - mass * eta / ((xs - loc) ** 2 + eta ** 2)
        d2 = d2 - mass * (eta / 4) / ((xs - loc) ** 2 + (eta / 4) ** 2)
    inside = xs[(d2 > 0.5 * d1) & (d2 > 1e-4 * np.max(d2))]
    if inside.size == 0:
        inside = xs[[int(np.argmax(d2))]]
    a, c = float(inside.min()) - eta, float(inside.max()) + eta
    for loc, _ in atoms:
        a, c = min(a, loc), max(c, loc)
    return a, c


def _refined_support(act, g, kernel, consts, eigs, lo, hi, passes=6):
    """:func:`_support`, repeated on the range found while that range is much narrower than the window;
    returns the range and the last window.

    The norm bound [lo, hi] of :func:`_auto_range` grows like ((1−b²) + b²·)(1+√γ)² per layer, so for
    long chains it exceeds the support by orders of magnitude and one coarse pass (600 points, η = its
    spacing) cannot resolve it: it reported x down to −24 for a CK supported in [0, 6]."""
    wlo, whi = lo, hi
    a, c = _support(act, g, kernel, consts, eigs, wlo, whi)
    for _ in range(passes):
        a, c = max(a, lo), min(c, hi)  # the law lives in [lo, hi]
        if not c - a < 0.25 * (whi - wlo):
            break
        pad = 0.25 * (c - a) + 1e-12 * max(1.0, abs(hi))
        wlo, whi = max(lo, a - pad), min(hi, c + pad)
        a, c = _support(act, g, kernel, consts, eigs, wlo, whi)
    return a, c, wlo, whi


def _check_outside(m, x, eta, lo, hi) -> None:
    """Refuse a converged fixed point on a wrong branch.  The law is a probability measure on [lo, hi]
    (:func:`_auto_range`, rigorous norm bounds), so at distance δ > 0 outside it
    Im m(x + iη) = ∫ η/((t − x)² + η²) dμ(t) ≤ η/(δ² + η²).  Long chains of hidden layers (beyond about
    five) can make the η-continuation land on another root of Thm 3.7's system, which violates this."""
    dist = np.maximum(lo - x, x - hi)
    out = dist > 0
    bound = eta / (dist ** 2 + eta ** 2)
    bad = out & (m.imag > 1.01 * bound + 1e-12)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise NtksymError(f"the fixed-point solver converged to an invalid solution (density {m.imag[i] / math.pi:.3g} "
                          f"at x = {x[i]:.4g}, outside the support bound [{lo:.4g}, {hi:.4g}]); this happens for "
                          "long chains of hidden layers: use fewer layers")


def limit_spectrum(activation: Any, gammas: Sequence[float], kernel: str = "ck", grid: int = 400,
                   eta: float | None = None, xmin: float | None = None, xmax: float | None = None,
                   params: Mapping[str, Any] | None = None, mu0_eigenvalues=None,
                   tol: float = 1e-11) -> SpectrumResult:
    """Limit eigenvalue law of the CK (X_LᵀX_L) or NTK of Fan & Wang (arXiv 2005.11879) on a grid.

    ``gammas`` = (γ₀, γ₁, …, γ_L) with γ₀ = n/d₀, γ_ℓ = n/d_ℓ.  ``activation`` is a spec for
    :func:`ntksym.derivation.as_activation` or a :class:`NormalizedActivation`; it is centered and
    normalized automatically.  μ₀ = MP_{γ₀} unless ``mu0_eigenvalues`` (eigenvalues of X₀ᵀX₀) are given.
    η defaults to 2·10⁻³ × the support width; the grid covers the support found by a coarse pass.
    """
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if not (isinstance(grid, (int, np.integer)) and 10 <= grid <= 200_000):
        raise InputError(f"grid must be an integer in [10, 200000], got {grid!r}")
    g = _check_gammas(gammas)
    act = activation if isinstance(activation, NormalizedActivation) else normalize_activation(activation, params)
    consts = rmt_constants(act, len(g) - 1)
    mu0 = _Mu0(g[0], mu0_eigenvalues)
    if eta is not None and not (math.isfinite(eta) and eta > 0):
        raise InputError(f"eta must be positive, got {eta}")
    lo, hi = _auto_range(act, g, kernel, consts, mu0)
    if xmin is None or xmax is None:
        a, c, wlo, whi = _refined_support(act, g, kernel, consts, mu0_eigenvalues, lo, hi)
        pad = 0.03 * (c - a) + 1e-3 * (whi - wlo)
        xmin = a - pad if xmin is None else xmin
        xmax = c + pad if xmax is None else xmax
    if not (math.isfinite(xmin) and math.isfinite(xmax) and xmin < xmax):
        raise InputError(f"need xmin < xmax, got {xmin}, {xmax}")
    if eta is None:
        eta = 2e-3 * (xmax - xmin)
    x = np.linspace(xmin, xmax, int(grid))
    m, res, route = stieltjes(act, g, x, eta, kernel, mu0_eigenvalues, tol)
    if not (res <= MAX_RESIDUAL and np.all(np.isfinite(m))):
        raise NtksymError(f"the fixed-point solver did not converge (residual {res:.1e} > {MAX_RESIDUAL:g}; "
                          f"b = {consts.b:.3g}); try a larger --eta")
    if mu0_eigenvalues is None or float(np.min(mu0.eigs)) >= 0:
        _check_outside(m, x, eta, lo, hi)
    atoms = _atoms(kernel, g, consts.b, consts, mu0_eigenvalues)
    density = m.imag / math.pi
    for loc, mass in atoms:
        density = density - mass * eta / math.pi / ((x - loc) ** 2 + eta ** 2)
    mu0_note = ("μ₀ = MP_γ₀ (X₀ with iid N(0, 1/d₀) entries), closed form" if mu0_eigenvalues is None
                else f"μ₀ = empirical law of {mu0.eigs.size} given eigenvalues of X₀ᵀX₀")
    return SpectrumResult(kernel, g, x, density, m, float(eta), res, atoms, consts, act.note + "; routes: "
                          + "; ".join(f"{k}: {v}" for k, v in act.routes), route, mu0_note)
