"""Fully-connected networks and their infinite-width NNGP/NTK recursion.

Default convention (reproduces neural-tangents' ``stax`` with
``parameterization='ntk'``): the network
``serial([Dense(W_std=σ_w, b_std=σ_b), φ] * L, Dense(1, W_std=σ_w, b_std=σ_b))``
has, for inputs x, y ∈ R^d,

    Σ⁽⁰⁾ = σ_w² x·y/d + σ_b²,                      Θ⁽⁰⁾ = Σ⁽⁰⁾,
    Σ⁽ˡ⁾ = σ_w² Σ̂(Σ⁽ˡ⁻¹⁾_xx, Σ⁽ˡ⁻¹⁾_yy, Σ⁽ˡ⁻¹⁾_xy) + σ_b²,
    Σ̇⁽ˡ⁾ = Σ̇(Σ⁽ˡ⁻¹⁾_xx, Σ⁽ˡ⁻¹⁾_yy, Σ⁽ˡ⁻¹⁾_xy),
    Θ⁽ˡ⁾ = Σ⁽ˡ⁾ + σ_w² Σ̇⁽ˡ⁾ Θ⁽ˡ⁻¹⁾,             l = 1..L,

and NNGP = Σ⁽ᴸ⁾, NTK = Θ⁽ᴸ⁾ (the last Dense is the readout; L = depth = number
of activations).  Mappings to other conventions:

* Jacot et al. (2018): σ_w = 1, σ_b = β, and their Σ^{(L+1)}, Θ^{(L+1)} are our
  Σ⁽ᴸ⁾, Θ⁽ᴸ⁾.
* Unit-sphere / dot-product form: for |x|²/d = 1 the kernels depend only on
  ρ = x·y/d; data on the unit sphere S^{d−1} is passed as √d·x.
* ``parameterization='standard'`` (neural-tangents' meaning, hidden width n):
  the same Σ; the NTK weights each layer's parameters by their fan-in,
  Θ⁽⁰⁾ = x·y + 1 and Θ⁽ˡ⁾ = n·Σ̂⁽ˡ⁾ + 1 + σ_w² Σ̇⁽ˡ⁾ Θ⁽ˡ⁻¹⁾.

The symbolic recursion keeps one named subexpression per layer (Σ⁽ˡ⁾_xy,
Σ⁽ˡ⁾_xx, Σ⁽ˡ⁾_yy, Σ̇⁽ˡ⁾_xy, Θ⁽ˡ⁾_xy) and never substitutes layer l−1 into
layer l, so its size is linear in depth.

Stable fold (:func:`evaluate`; the generated modules mirror these rules)
-----------------------------------------------------------------------
1. *One Gram.*  G = x₁x₂ᵀ; with x2 = None its upper triangle is authoritative (rule 7) and the
   norms |x_i|² are its diagonal, otherwise row-wise ``einsum``.  Rows equal up to sign (x and ±x, also across
   inputs and inputs2; found with ``np.unique`` on sign-normalized rows) get the first member's |x|²
   and the Gram entries ±|x|² exactly.  Σ⁽⁰⁾ = σ_w²·G/d + σ_b², q = σ_w²·|x|²/d + σ_b² with the
   same operations, so a repeated pair has c == q bit for bit.
2. *Bound and snap, every layer.*  b = √q₁·√q₂ (never q₁q₂, which can overflow); c is clipped to
   [−b, b] and |c| ≥ b·(1 − 8ε) is set to ±b (:func:`ntksym.kernels.snap`; homogeneous kernels do
   the same on ρ = c/b: |ρ| ≥ 1 − 8ε → ±1, ρ = 0 where b = 0).  Radicands in D = q₁q₂ − c² =
   (b − |c|)(b + |c|) (:func:`ntksym.kernels.d_form`), so D = 0 exactly at a tie.
3. *Ties.*  A repeated pair (i, j) (and the diagonal) takes exactly the row's values at every layer:
   Σ̂_ij = Σ̂(q_i, q_i, q_i), Σ̇_ij = Σ̇(q_i, q_i, q_i), Σ_ij = the row's new q_i — so repeated rows
   stay repeated even where ρ = 1 is unstable (chaotic phase).  An antipodal pair (c = −q, only
   when σ_b = 0) of an odd kernel takes Σ̂ = −Σ̂(q,q,q), Σ̇ = +Σ̇(q,q,q) (stays antipodal); of an even
   kernel Σ̂ = +Σ̂(q,q,q), Σ̇ = −Σ̇(q,q,q) (becomes a repeated pair); otherwise it is an ordinary pair.
   Parity is checked on the closed forms in mpmath (:attr:`ClosedFormKernels.parity`).  With x2 = None
   a repeated row is, after every layer, a bitwise copy of the group's first row (Σ[i, k] =
   Σ[R(i), R(k)], also Θ): the stored upper triangle evaluates (q_k, q_i) or (q_i, q_k) depending on
   the index order, and a closed form is symmetric in q₁, q₂ only up to rounding.
4. *Θ.*  Θ⁽ˡ⁾ = Σ⁽ˡ⁾ + σ_w²Σ̇Θ⁽ˡ⁻¹⁾ with the product taken as 0 where Σ̇ = 0 (never 0·inf).
5. *Range (closed forms).*  Homogeneous kernels (ReLU family, |x|, sign, step, xⁿ) are evaluated
   as b^h·k̂(ρ), b^(h−1)·k̇(ρ): finite whenever the value is.  Every closed form has a *trusted*
   variance range (probed once against mpmath, :attr:`ClosedFormKernels.trusted`).  A row whose q leaves it (or overflows), and every entry of
   that row, is carried in mpmath from then on (q, c and Θ as 128-bit mpf; Σ̂, Σ̇ from the same SymPy
   forms at a precision raised until two evaluations agree, :meth:`ClosedFormKernels.mp`), and
   returns to float64 when its q is back in range.  Rows whose |x|² overflows or is below 2⁻⁹⁰⁰
   get Σ⁽⁰⁾ from an exact mpmath dot product.  A Θ that leaves float64 at an entry evaluated in
   float is carried on in mpmath.  Results are rounded to float64 at the end of each layer: ±inf
   exactly where the true value is beyond float64, with one :class:`KernelOverflowWarning`
   (counts and first layer); a NaN from a closed form raises AccuracyError.
6. *Quadrature routes* (plain callables ``f(q1, q2, c)``) get 1–4 but not 5.
7. *Panels, in place.*  Each layer overwrites Σ, Θ (two n₁×n₂ arrays, the only ones) panel by panel:
   rows i0:i1 (and all columns, or with x2 = None the columns from i0 on: the upper triangle) of
   about :data:`PANEL_ENTRIES` entries, so a panel and the kernels' temporaries stay in cache.  Every
   entry gets exactly the operations of the whole-matrix recursion (tests/test_fold_speed_paths.py
   compares bit for bit with the issue-12 fold, tests/fold_reference.py); values needed after a
   panel is overwritten (old Σ, Θ at ties, at mpmath entries and at carried Θ) are gathered before
   the pass, and a panel whose sums are finite (the common case) needs no further check: only
   panels with a non-finite value are searched entrywise for rule 4 and 5.  With x2 = None the
   lower triangle is mirrored from the upper one at the end (exactly symmetric results).

Layer-map protocol (what the fold calls on ``kernel_fns``; DESIGN.md §6)
-----------------------------------------------------------------------
``kernel_fns`` is an object with ``pair`` (else a plain callable ``f(q1, q2, c) -> (Σ̂, Σ̇)``, wrapped
as ``pair(q1, q2, c, b) = f(q1, q2, c)``).  Per layer the fold calls, in this order:

* ``begin_layer(q1, q2)`` (optional; only if the object defines it): once, before any ``pair`` call of
  the layer, with the 1-D float64 variances Σ⁽ˡ⁻¹⁾(x, x) of all rows of inputs and of inputs2 (the
  same array object twice when x2 is None).  For per-row work done once per layer (e.g. the Hermite
  coefficients μ_k(q_i) of a Mehler series).
* ``pair(q, q, q, q)`` with 1-D arrays (twice when x2 is given: inputs, then inputs2): the row
  diagonals Σ̂(q, q, q), Σ̇(q, q, q) → the new row variances and the tie values (rule 3).
* ``pair(q1[i0:i1, None], q2[None, j0:j1], c, b)`` per panel: q1 of shape (r, 1), q2 of shape (1, m),
  c and b = √q₁·√q₂ of shape (r, m), float64, c clipped and snapped to |c| ≤ b (rule 2) unless the
  object is homogeneous (``degree`` not None: it takes c unclipped and snaps ρ = c/b itself).  An
  object with ``begin_layer`` also gets ``rows=slice(i0, i1), cols=slice(j0, j1)``: the panel's row
  indices into the arrays of ``begin_layer``.  Returns (Σ̂, Σ̇) broadcastable to (r, m); the fold may
  write into returned arrays it owns (views and broadcasts are copied first) and never keeps c or b.
  Panels cover the upper triangle plus the lower half of each diagonal block (values there are
  discarded) when x2 is None.  A value should not depend on which other entries share its panel
  (beyond the object's stated error).

Optional attributes: ``panel_entries`` (int: entries per ``pair`` call; None or absent: one call on the
whole matrix per layer — what a route with a per-call error check wants; closed forms use
:data:`PANEL_ENTRIES`), ``degree`` (homogeneity, see above), ``parity`` ("odd"/"even": antipodal ties
of rule 3; only claim it when proven).  Rule 5 (trusted range, mpmath) applies to
:class:`ntksym.kernels.ClosedFormKernels` only.
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from .errors import AccuracyError, InputError, NetworkError
from .gaussian.dual import C, Q1, Q2, DualKernels
from .kernels import _EPS, SNAP_ULPS, ClosedFormKernels, _to_float, snap

SIGMA_W, SIGMA_B = sp.symbols("sigma_w sigma_b", nonnegative=True)
RHO = sp.Symbol("rho", real=True)
PARAMETERIZATIONS = ("ntk", "standard")
MAX_DEPTH = 100_000     # hidden layers; depth 10⁴ takes seconds on data, a few more symbolically
MAX_SIGMA = 1e6         # σ_w and σ_b are standard deviations in [0, 10⁶]
MAX_WIDTH = 10**9       # hidden width of the 'standard' parameterization, in [1, 10⁹]


@dataclass(frozen=True)
class Network:
    """Depth, weight/bias standard deviations and parameterization of an MLP.

    Bounds (:class:`NetworkError` otherwise): depth an integer in [1, MAX_DEPTH = 10⁵]; σ_w, σ_b
    finite numbers in [0, MAX_SIGMA = 10⁶]; width (needed by 'standard') an integer in
    [1, MAX_WIDTH = 10⁹].
    """
    depth: int
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"
    width: int | None = None

    def __post_init__(self):
        _check_int("depth", self.depth, MAX_DEPTH)
        for name in ("sigma_w", "sigma_b"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not 0 <= _as_float(v) <= MAX_SIGMA:
                raise NetworkError(f"{name.replace('_', '-')} must be a finite number in [0, {MAX_SIGMA:g}], "
                                   f"got {_short(v)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise NetworkError(f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}, "
                               f"got {self.parameterization!r}")
        if self.parameterization == "standard" and self.width is None:
            raise NetworkError("the 'standard' parameterization needs the hidden width (width >= 1)")
        if self.width is not None:
            _check_int("width", self.width, MAX_WIDTH)

    def _repr_latex_(self) -> str:
        from .report.notebook import network
        return network(self)


def _as_float(v) -> float:
    try:
        return float(v)
    except OverflowError:  # a huge Python int
        return math.inf


def _short(v) -> str:
    try:
        text = repr(v)
    except ValueError:  # an int beyond Python's digit limit for str()
        return "a huge integer"
    return text if len(text) <= 40 else text[:20] + "..."


def _check_int(name: str, v, maximum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= maximum:
        raise NetworkError(f"{name} must be an integer in [1, {maximum}], got {_short(v)}")


@dataclass(frozen=True)
class Layer:
    """Named per-layer subexpressions of the recursion (symbols refer to layer l−1)."""
    index: int
    symbols: dict
    equations: dict

    def latex(self) -> list[str]:
        return [f"{sp.latex(self.symbols[k])} = {sp.latex(v)}" for k, v in self.equations.items()]


@dataclass(frozen=True)
class Recursion:
    """The NNGP/NTK recursion as a sequence of named layers."""
    network: Network
    layers: tuple[Layer, ...]
    symbolic_sigmas: bool

    @property
    def nngp(self) -> sp.Symbol:
        return self.layers[-1].symbols["Sigma_xy"]

    @property
    def ntk(self) -> sp.Symbol:
        return self.layers[-1].symbols["Theta_xy"]

    def size(self) -> int:
        return sum(sp.count_ops(e) for layer in self.layers for e in layer.equations.values())

    def expand(self, which: str = "ntk") -> sp.Expr:
        """Substitute all layers into one expression (for small depth only: it swells)."""
        subs = {}
        for layer in self.layers:
            for key, eq in layer.equations.items():
                subs[layer.symbols[key]] = eq.xreplace(subs)
        return subs[self.ntk if which == "ntk" else self.nngp]

    def _repr_latex_(self) -> str:
        from .report.notebook import recursion
        return recursion(self)


def _layer_symbols(l: int) -> dict:
    return {
        "Sigma_xx": sp.Symbol(f"Sigma^({l})_xx", positive=True),
        "Sigma_yy": sp.Symbol(f"Sigma^({l})_yy", positive=True),
        "Sigma_xy": sp.Symbol(f"Sigma^({l})_xy", real=True),
        "Sigmadot_xy": sp.Symbol(f"Sigmadot^({l})_xy", real=True),
        "Theta_xy": sp.Symbol(f"Theta^({l})_xy", real=True),
    }


def recursion(dual: DualKernels, net: Network, symbolic_sigmas: bool = False) -> Recursion:
    """Symbolic per-layer recursion; Σ̂, Σ̇ appear as closed forms or as named functions."""
    sw, sb = (SIGMA_W, SIGMA_B) if symbolic_sigmas else (_exact(net.sigma_w), _exact(net.sigma_b))
    x_dot_y, x_dot_x, y_dot_y = sp.symbols("xy xx yy", real=True)
    d = sp.Symbol("d", positive=True)
    s0 = _layer_symbols(0)
    eq0 = {
        "Sigma_xx": sw**2 * x_dot_x / d + sb**2,
        "Sigma_yy": sw**2 * y_dot_y / d + sb**2,
        "Sigma_xy": sw**2 * x_dot_y / d + sb**2,
        "Theta_xy": s0["Sigma_xy"] if net.parameterization == "ntk" else x_dot_y + 1,
    }
    layers = [Layer(0, s0, eq0)]
    s1 = _layer_symbols(1)
    template = _hidden_layer(dual, net, sw, sb, s0, s1)  # closed forms evaluated once, for layer 1
    layers.append(Layer(1, s1, template))
    with sp.evaluate(False):  # once: setting it clears SymPy's cache
        for l in range(2, net.depth + 1):
            prev, cur = layers[-1].symbols, _layer_symbols(l)
            rename = {**{s0[k]: prev[k] for k in s0}, **{s1[k]: cur[k] for k in s1}}
            layers.append(Layer(l, cur, _renamed(template, rename)))
    return Recursion(net, tuple(layers), symbolic_sigmas)


def _hidden_layer(dual: DualKernels, net: Network, sw, sb, prev: dict, cur: dict) -> dict:
    """The equations of a hidden layer whose inputs are the symbols ``prev`` (layer l−1)."""
    khat, kdot = _kernel_fn(dual.khat, "Sigmahat"), _kernel_fn(dual.kdot, "Sigmadot")
    q = sp.Symbol("q", positive=True)
    diag = dual.diagonal("khat")  # simplified once
    khat_diag = (lambda s: diag.xreplace({q: s})) if diag is not None else (lambda s: khat(s, s, s))
    pair = khat(prev["Sigma_xx"], prev["Sigma_yy"], prev["Sigma_xy"])
    readout = cur["Sigma_xy"] if net.parameterization == "ntk" else net.width * pair + 1
    return {
        "Sigma_xx": sw**2 * khat_diag(prev["Sigma_xx"]) + sb**2,
        "Sigma_yy": sw**2 * khat_diag(prev["Sigma_yy"]) + sb**2,
        "Sigma_xy": sw**2 * pair + sb**2,
        "Sigmadot_xy": kdot(prev["Sigma_xx"], prev["Sigma_yy"], prev["Sigma_xy"]),
        "Theta_xy": readout + sw**2 * cur["Sigmadot_xy"] * prev["Theta_xy"],
    }


def _renamed(equations: dict, rename: dict) -> dict:
    """Layer-1 equations moved to layer l by renaming symbols; call it under ``sp.evaluate(False)``.

    Every layer's symbols have the same assumptions and sort in the same order (names differ
    only in the layer index, shared within an equation), so evaluating would rebuild the same
    trees (tests/test_inputs.py checks it); skipping that makes depth 10⁴ take seconds, not minutes.
    """
    return {k: v.xreplace(rename) for k, v in equations.items()}


def _exact(v: float) -> sp.Expr:
    return sp.Rational(repr(float(v))) if not float(v).is_integer() else sp.Integer(int(v))


def _kernel_fn(expr: sp.Expr | None, name: str):
    if expr is None:
        f = sp.Function(name)
        return lambda a, b, c: f(a, b, c)
    return lambda a, b, c: expr.xreplace({Q1: a, Q2: b, C: c})


# ------------------------------------------------------------------- numerics


def validate_inputs(x1, x2=None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 2-D finite real arrays with the same number of columns, whose n₁×n₂ Gram matrices
    fit in memory (checks in :mod:`ntksym.inputs`; complex, string, bool and object data are refused)."""
    from .inputs import as_matrix, check_gram_memory
    a = as_matrix(x1, "inputs")
    b = a if x2 is None else as_matrix(x2, "inputs2")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"inputs have dimension {a.shape[1]} but inputs2 has {b.shape[1]}")
    check_gram_memory(a.shape[0], b.shape[0])
    return a, b


def evaluate(kernel_fns, net: Network, x1, x2=None) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK Gram matrices (n₁×n₂, float64) in the convention of :class:`Network`.

    ``kernel_fns`` is a layer map (see "Layer-map protocol" in the module docstring): an object with
    ``pair(q1, q2, c, b)``, or a plain ``f(q1, q2, c) -> (Σ̂, Σ̇)`` on arrays; a
    :class:`ntksym.kernels.ClosedFormKernels` also gets the mpmath fallback (see "Stable fold" in the
    module docstring).  Entries whose true value is beyond float64 are inf, with one
    :class:`KernelOverflowWarning` saying how many and from which layer.
    """
    same = x2 is None
    x1, x2 = validate_inputs(x1, x2)
    with np.errstate(all="ignore"):
        fold = _Fold(kernel_fns, net, x1, x2, same)
        sig, theta = fold.run()
    if fold.nonfinite and not (np.all(np.isfinite(sig)) and np.all(np.isfinite(theta))):
        nan = int(np.isnan(sig).sum() + np.isnan(theta).sum())
        if nan and fold.closed:
            raise AccuracyError(f"{nan} kernel entries could not be evaluated (NaN) by the closed form")
        inf_s, inf_t = int(np.isinf(sig).sum()), int(np.isinf(theta).sum())
        if inf_s or inf_t:
            where = f" (first at layer {fold.first_overflow})" if fold.first_overflow is not None else ""
            warnings.warn(f"{inf_s} NNGP and {inf_t} NTK entries of {sig.size} exceed the float64 range{where}; "
                          "they are returned as inf", KernelOverflowWarning, stacklevel=2)
    return sig, theta


class KernelOverflowWarning(UserWarning):
    """Some kernel entries are beyond float64 (returned as inf)."""


class _PlainKernels:
    """A plain ``f(q1, q2, c) -> (Σ̂, Σ̇)`` (quadrature routes) in the interface of the fold."""
    degree = parity = None
    closed = False

    def __init__(self, fn):
        self.fn = fn

    def pair(self, q1, q2, c, b):
        return self.fn(q1, q2, c)


_MP_PREC = 128            # bits of the mpmath values the fold keeps (q, c, Θ of the mpmath entries)
_EXACT_INIT = 2.0 ** -900  # rows with |x|² below this (or overflowing) get Σ⁽⁰⁾ from an mpmath dot product
PANEL_ENTRIES = 1 << 14   # entries per pair() call of a closed form (rule 7): a panel and its temporaries
# stay in the core's cache; a layer map sets its own with ``panel_entries`` (None: the whole matrix)
_MIRROR_TILE = 256        # tile side of the transposed copies that mirror the upper triangle


def _mpf(v):
    return v if isinstance(v, mpmath.mpf) else mpmath.mpf(float(v))


class _Fold:
    """The layer recursion on data; see "Stable fold" in the module docstring.

    State between layers: ``sig``, ``theta`` (n₁×n₂ float64, updated in place panel by panel; with
    x2 = None the upper triangle is the result, the lower one is mirrored from it at the end),
    ``q1``, ``q2`` (row variances), the tie index arrays ``pos``, ``neg``, ``members`` (repeated rows
    and their first rows) and the mpmath state (``xq1``, ``xq2`` rows; ``xc``, ``xt`` entries).
    ``panel_entries``: entries per ``pair`` call (default: the layer map's, see the module docstring)."""

    def __init__(self, fns, net: Network, x1, x2, same: bool, panel_entries=False):
        self.closed = isinstance(fns, ClosedFormKernels)
        self.k = fns if hasattr(fns, "pair") else _PlainKernels(fns)
        self.degree = getattr(self.k, "degree", None)
        self.parity = getattr(self.k, "parity", None)
        self.begin = getattr(self.k, "begin_layer", None)
        self.net, self.same = net, same
        self.std = net.parameterization != "ntk"
        self.sw2, self.sb2 = float(net.sigma_w) ** 2, float(net.sigma_b) ** 2
        self.lo, self.hi = self.k.trusted if self.closed else (0.0, math.inf)
        self.zero_ok = self.k.zero_ok if self.closed else True
        self.first_overflow = None
        self.nonfinite = False     # whether the last layer left a non-finite entry
        if panel_entries is False:   # the default: the layer map's choice (closed forms: PANEL_ENTRIES)
            panel_entries = PANEL_ENTRIES if self.closed else getattr(self.k, "panel_entries", None)
        self.panels = _panels(x1.shape[0], x2.shape[0], same, panel_entries)
        self._init(x1, x2)

    # ------------------------------------------------------------ layer 0
    def _init(self, x1, x2):
        same, sw2, sb2 = self.same, self.sw2, self.sb2
        d = x1.shape[1]
        n1 = x1.shape[0]
        g = x1 @ (x1 if same else x2).T
        if same:
            nsq1 = g.diagonal().copy()
            nsq2 = nsq1
        else:
            nsq1, nsq2 = np.einsum("ij,ij->i", x1, x1), np.einsum("ij,ij->i", x2, x2)
        pos, neg = _row_classes(x1, x2, same, g, nsq1, nsq2)
        theta = g + 1.0 if self.std else None
        sig = g                                  # σ_w²·G/d + σ_b², in place: the same roundings
        np.multiply(sig, sw2, out=sig)
        np.divide(sig, d, out=sig)
        np.add(sig, sb2, out=sig)
        q1 = sw2 * nsq1 / d + sb2
        q2 = q1 if same else sw2 * nsq2 / d + sb2
        self.members = None
        if same:
            di = np.arange(n1)
            if pos[0].size:       # rows equal to an earlier row: their representative (the group's first row)
                rep = di.copy()
                np.minimum.at(rep, pos[1], pos[0])
                m = np.nonzero(rep != di)[0]
                self.members = (m, rep[m], rep)
            pos = (np.concatenate([di, pos[0]]), np.concatenate([di, pos[1]]))
        if theta is None:
            theta = sig.copy()
        self.q1, self.q2, self.sig, self.theta = q1, q2, sig, theta
        self._copy_members()
        self.pos = pos if pos[0].size else None
        self.neg = neg if (neg[0].size and sb2 == 0) else None
        # mpmath state: rows (index -> mpf q), entries ((i, j) -> mpf c / Θ)
        self.xq1, self.xq2 = {}, ({} if not same else None)
        self.xc, self.xt = {}, {}
        if not self.closed:
            return
        exact1 = np.nonzero(~np.isfinite(q1) | ((nsq1 < _EXACT_INIT) & (nsq1 > 0)) | ~np.isfinite(nsq1))[0]
        exact2 = exact1 if same else np.nonzero(~np.isfinite(q2) | ((nsq2 < _EXACT_INIT) & (nsq2 > 0))
                                               | ~np.isfinite(nsq2))[0]
        with mpmath.workprec(_MP_PREC):
            def dot(a, b):
                return mpmath.fdot([mpmath.mpf(float(t)) for t in a], [mpmath.mpf(float(t)) for t in b])
            for idx, x, xq in ((exact1, x1, self.xq1), (exact2, x2, self.xq2)):
                if xq is None:
                    continue
                for i in idx:
                    xq[int(i)] = sw2 * dot(x[i], x[i]) / d + sb2
            xq2 = self.xq1 if same else self.xq2
            for i, j in _entries(exact1, exact2, x1.shape[0], x2.shape[0]):
                dot_ij = dot(x1[i], x2[j])
                self.xc[(i, j)] = sw2 * dot_ij / d + sb2
                self.xt[(i, j)] = self.xc[(i, j)] if not self.std else dot_ij + 1
            for xq, q in ((self.xq1, q1), (xq2, q2)):
                for i, v in xq.items():
                    q[i] = float(v)
            for (i, j), v in self.xc.items():
                sig[i, j] = float(v)
                theta[i, j] = float(self.xt[(i, j)])
        self._mark_rows(self.q1, self.xq1)
        if not same:
            self._mark_rows(self.q2, self.xq2)

    def _mark_rows(self, q, xq):
        """Rows whose variance is outside the trusted range (or not finite) go to mpmath."""
        bad = np.nonzero(~((q >= self.lo) & (q <= self.hi) | (q == 0) & self.zero_ok))[0]
        for i in bad:
            i = int(i)
            if i not in xq:
                xq[i] = _mpf(q[i])

    def _copy_members(self):
        """Rule 3 for whole rows (x2 = None): a row equal to an earlier row is a copy of it, Σ[i, k] = Σ[R(i), R(k)]
        (R: the first row of the group), also Θ.  The stored upper triangle mixes the orientations
        (q_k, q_i) and (q_i, q_k) of a closed form that is symmetric only up to rounding; copying keeps
        repeated rows bitwise repeated, as their exact values are."""
        if self.members is None:
            return
        m, rm, rep = self.members
        k = np.arange(rep.size)
        dst = self._ix(m[:, None], k[None, :])
        src = self._ix(rm[:, None], rep[None, :])
        for a in (self.sig, self.theta):
            a[dst] = a[src]

    def _ix(self, i, j):
        """Index arrays of entries (i, j) in the stored (upper) orientation."""
        i, j = np.asarray(i, dtype=np.intp), np.asarray(j, dtype=np.intp)
        return (np.minimum(i, j), np.maximum(i, j)) if self.same else (i, j)

    # ------------------------------------------------------------ layers
    def run(self):
        for layer in range(1, self.net.depth + 1):
            self._layer(layer)
        if self.same:
            _mirror_upper(self.sig, 0, self.sig.shape[0])
            _mirror_upper(self.theta, 0, self.theta.shape[0])
        return self.sig, self.theta

    def _layer(self, layer: int):
        k, sw2, sb2, same = self.k, self.sw2, self.sb2, self.same
        q1, q2, sig, theta = self.q1, self.q2, self.sig, self.theta
        n1, n2 = sig.shape
        if self.begin is not None:
            self.begin(q1, q2)
        kh1, kd1 = (np.broadcast_to(np.asarray(v, dtype=float), q1.shape) for v in k.pair(q1, q1, q1, q1))
        kh2, kd2 = (kh1, kd1) if same else \
            (np.broadcast_to(np.asarray(v, dtype=float), q2.shape) for v in k.pair(q2, q2, q2, q2))
        new_q1 = sw2 * kh1 + sb2
        new_q2 = new_q1 if same else sw2 * kh2 + sb2
        # entries whose old values are needed after the panels have overwritten them: ties (rule 3) and the
        # mpmath entries and carried Θ (rule 5); gathered now (few, unless rows are carried in mpmath)
        ties = []
        for kind, idx in (("pos", self.pos), ("neg", self.neg)):
            if idx is not None and (kind == "pos" or self.parity is not None):
                ix = self._ix(*idx)
                ties.append((kind, idx[0], idx[1], sig[ix], theta[ix]))
        mp_known, carry_known, old = set(), set(), {}
        if self.closed:
            xq1 = self.xq1
            xq2 = xq1 if same else self.xq2
            # rows evaluated in float whose new variance left float64: recomputed in mpmath from the old one
            for xq, q, new in ((xq1, q1, new_q1), (None if same else xq2, q2, new_q2)):
                if xq is None or _all_finite(new):
                    continue
                for i in np.nonzero(~np.isfinite(new))[0].tolist():
                    if i not in xq:
                        xq[i] = _mpf(q[i])     # this layer's variance: the row is evaluated in mpmath from now on
            mp_known = set(self.xc) | _entries(np.array(sorted(xq1), dtype=int), np.array(sorted(xq2), dtype=int),
                                               n1, n2)
            carry_known = set(self.xt) - mp_known
            want = mp_known | carry_known
            if want:
                ii, jj = (np.array(t, dtype=np.intp) for t in zip(*want))
                ix = self._ix(ii, jj)
                old = dict(zip(zip(ii.tolist(), jj.tolist()), zip(sig[ix].tolist(), theta[ix].tolist())))
        found = self._panels_pass()                  # the float pass, panel by panel (rule 7)
        tie_k = self._ties(ties, kh1, kd1, new_q1, found, carry_known)
        if self.neg is not None and self.parity == "even":      # an antipodal pair becomes a repeated pair
            i, j = self.neg
            self.pos = (np.concatenate([self.pos[0], i]), np.concatenate([self.pos[1], j])) \
                if self.pos is not None else self.neg
        if self.parity != "odd":
            self.neg = None
        written = set(found)
        if self.closed:
            written |= self._mp_layer(new_q1, new_q2, old, mp_known, carry_known, found, tie_k)
        self._copy_members()
        self.nonfinite = False
        if written:
            ix = self._ix(*(np.array(t, dtype=np.intp) for t in zip(*written)))
            self.nonfinite = not (_all_finite(sig[ix]) and _all_finite(theta[ix]))
        if self.first_overflow is None and self.nonfinite:
            self.first_overflow = layer
        self.q1, self.q2 = new_q1, new_q2

    def _panels_pass(self) -> dict:
        """Σ⁽ˡ⁾, Θ⁽ˡ⁾ in float64, written over Σ⁽ˡ⁻¹⁾, Θ⁽ˡ⁻¹⁾ one panel at a time (rules 2, 4, 7).  Returns
        {(i, j): (old Σ, old Θ, Σ̂, Σ̇, new Σ, new Θ)} of the entries with a non-finite value (both
        orientations when x2 is None); every other entry is finite."""
        k, sw2, sb2, same, std = self.k, self.sw2, self.sb2, self.same, self.std
        width = self.net.width
        q1, q2, sig, theta = self.q1, self.q2, self.sig, self.theta
        s1 = np.sqrt(q1)
        s2 = s1 if same else np.sqrt(q2)
        homogeneous = self.degree is not None       # homogeneous kernels snap ρ = c/b themselves
        begin = self.begin is not None
        found = {}
        for i0, i1, j0, j1 in self.panels:
            cv, tv = sig[i0:i1, j0:j1], theta[i0:i1, j0:j1]
            b = s1[i0:i1, None] * s2[None, j0:j1]
            if not homogeneous:
                _snap_in_place(cv, b, i1 - i0 if same and j0 == i0 else 0)
            qa, qb = q1[i0:i1, None], q2[None, j0:j1]
            if begin:
                kh, kd = k.pair(qa, qb, cv, b, rows=slice(i0, i1), cols=slice(j0, j1))
            else:
                kh, kd = k.pair(qa, qb, cv, b)
            kh, kd = _owned(kh, b.shape), _owned(kd, b.shape)
            ns = np.multiply(kh, sw2)
            ns += sb2
            prod = np.multiply(kd, sw2)
            prod *= tv
            if std:
                nt = np.multiply(kh, float(width))
                nt += 1.0
                nt += prod
            else:
                nt = np.add(ns, prod)
            # all finite (the common case) when the sums are: a non-finite Σ̇Θ makes Θ non-finite, and
            # with the ntk parameterization a non-finite Σ makes Θ non-finite
            if not (math.isfinite(np.add.reduce(nt, axis=None))
                    and (not std or math.isfinite(np.add.reduce(ns, axis=None)))):
                if not _all_finite(prod):      # Σ̇ = 0 contributes nothing, even where Θ is inf
                    zero = kd == 0
                    nt[zero] = (ns if not std else width * kh + 1.0)[zero]
                if not (_all_finite(ns) and _all_finite(nt)):
                    self._record(found, i0, j0, cv, tv, kh, kd, ns, nt)
            cv[...] = ns
            tv[...] = nt
        return found

    def _record(self, found, i0, j0, cv, tv, kh, kd, ns, nt):
        """Entries of a panel with a non-finite value, with their old and new values, into ``found``
        (upper triangle mirrored when x2 is None: the lower part of a diagonal block is never used)."""
        bad = ~(np.isfinite(kh) & np.isfinite(kd) & np.isfinite(ns) & np.isfinite(nt))
        for a, bb in zip(*(t.tolist() for t in np.nonzero(bad))):
            i, j = a + i0, bb + j0
            if self.same and j < i:
                continue
            v = (float(cv[a, bb]), float(tv[a, bb]), float(kh[a, bb]), float(kd[a, bb]), float(ns[a, bb]),
                 float(nt[a, bb]))
            found[(i, j)] = v
            if self.same:
                found[(j, i)] = v

    def _ties(self, ties, kh1, kd1, new_q1, found, carry_known) -> dict:
        """Rule 3 at the tie entries (written over the float pass); their records in ``found`` are replaced.
        Returns {(i, j): (Σ̂, Σ̇)} of the tie entries in ``carry_known``."""
        sw2, sb2, std, sig, theta = self.sw2, self.sb2, self.std, self.sig, self.theta
        width = self.net.width
        tie_k = {}
        for kind, i, j, osig, oth in ties:
            kh, kd = kh1[i], kd1[i]
            if kind == "neg":
                kh, kd = (-kh, kd) if self.parity == "odd" else (kh, -kd)
            ns = new_q1[i] if kind == "pos" or self.parity == "even" else sw2 * kh + sb2
            prod = sw2 * kd * oth
            head = ns if not std else width * kh + 1.0
            nt = head + prod
            if not _all_finite(prod):
                nt = np.where((kd == 0) & ~np.isfinite(prod), head, nt)
            sig[i, j], theta[i, j] = ns, nt        # both orientations: pos and neg are symmetric when x2 is None
            keys = list(zip(i.tolist(), j.tolist()))
            if found:
                for e in keys:
                    found.pop(e, None)
            if carry_known:
                for m, e in enumerate(keys):
                    if e in carry_known:
                        tie_k[e] = (float(kh[m]), float(kd[m]))
            if not (_all_finite(kh) and _all_finite(kd) and _all_finite(ns) and _all_finite(nt)):
                bad = ~(np.isfinite(kh) & np.isfinite(kd) & np.isfinite(ns) & np.isfinite(nt))
                for m in np.nonzero(bad)[0].tolist():
                    found[keys[m]] = (float(osig[m]), float(oth[m]), float(kh[m]), float(kd[m]), float(ns[m]),
                                      float(nt[m]))
        return tie_k

    # ------------------------------------------------------------ mpmath entries
    def _mp_layer(self, new_q1, new_q2, old, mp_known, carry_known, found, tie_k) -> set:
        """Rule 5 after the float pass: the entries of mpmath rows, the non-finite float entries and the
        carried Θ, written over ``sig``/``theta``.  Returns the entries written."""
        k, sw2, sb2, same, std = self.k, self.sw2, self.sb2, self.same, self.std
        width = self.net.width
        sig, theta = self.sig, self.theta
        xq1 = self.xq1
        xq2 = xq1 if same else self.xq2
        if not (mp_known or carry_known or found or xq1 or xq2 or self.xc or self.xt):
            # every row and entry in float this layer (the common case): only the rows' new variances
            self._mark_rows(new_q1, xq1)
            if not same:
                self._mark_rows(new_q2, xq2)
            return set()

        def prev(e, w):           # the float Σ⁽ˡ⁻¹⁾ (w = 0) or Θ⁽ˡ⁻¹⁾ (w = 1) at entry e
            v = old.get(e)
            return (v if v is not None else found[e])[w]

        # entries whose float values cannot be trusted: an mpmath row, or a non-finite float result
        extra = {e for e, v in found.items() if not (math.isfinite(v[2]) and math.isfinite(v[3])
                                                     and math.isfinite(v[4]))}
        entries = mp_known | extra
        with mpmath.workprec(_MP_PREC):
            rows1 = {i: k.mp(v, v, v) for i, v in xq1.items()}
            rows2 = rows1 if same else {i: k.mp(v, v, v) for i, v in xq2.items()}
            pos = set(zip(self.pos[0].tolist(), self.pos[1].tolist())) if self.pos is not None and entries else set()
            new_xc, done = {}, {}
            for (i, j) in entries:
                if same and (j, i) in done:
                    kh, kd = done[(j, i)]
                else:
                    a = xq1.get(i)
                    a = _mpf(self.q1[i]) if a is None else a
                    bq = xq2.get(j)
                    bq = _mpf(self.q2[j]) if bq is None else bq
                    cv = self.xc.get((i, j))
                    cv = _mpf(prev((i, j), 0)) if cv is None else cv
                    if (i, j) in pos and a == bq:
                        r = rows1.get(i) or k.mp(a, a, a)
                        kh, kd = r
                    else:
                        kh, kd = k.mp(a, bq, cv)
                    done[(i, j)] = (kh, kd)
                cn = sw2 * kh + sb2
                tp = self.xt.get((i, j))
                tp = _mpf(prev((i, j), 1)) if tp is None else tp
                tn = (cn if not std else width * kh + 1) + (0 if kd == 0 else sw2 * kd * tp)
                new_xc[(i, j)] = cn
                self.xt[(i, j)] = tn
                sig[i, j], theta[i, j] = _to_float(cn), _to_float(tn)
            # Θ carried in mpmath (or leaving float64 now) at entries whose kernels were evaluated in float
            carry = {e for e in carry_known if e not in new_xc}
            carry |= {e for e, v in found.items() if e not in new_xc and not math.isfinite(v[5])}
            floats = self._float_kernels([e for e in carry if e not in found and e not in tie_k], old)
            for (i, j) in carry:
                e = (i, j)
                tp = self.xt.get(e)
                tp = _mpf(prev(e, 1)) if tp is None else tp
                kh, kd = found[e][2:4] if e in found else tie_k[e] if e in tie_k else floats[e]
                kd = _mpf(kd)
                ix = (min(i, j), max(i, j)) if same else e
                head = _mpf(sig[ix]) if not std else width * _mpf(kh) + 1
                tn = head + (0 if kd == 0 else sw2 * kd * tp)
                self.xt[e] = tn
                theta[i, j] = _to_float(tn)
            # rows: new variances
            new_rows1 = {i: sw2 * r[0] + sb2 for i, r in rows1.items()}
            new_rows2 = new_rows1 if same else {i: sw2 * r[0] + sb2 for i, r in rows2.items()}
        for xq, q, new in ((xq1, new_q1, new_rows1), (None if same else xq2, new_q2, new_rows2)):
            if xq is None:
                continue
            xq.clear()
            for i, v in new.items():
                q[i] = _to_float(v)
                if not (self.lo <= q[i] <= self.hi or q[i] == 0 and self.zero_ok):
                    xq[i] = v             # stays in mpmath
            self._mark_rows(q, xq)
        self.xc = {e: v for e, v in new_xc.items() if e[0] in xq1 or e[1] in xq2 or e in extra}
        self.xt = {e: v for e, v in self.xt.items() if e in self.xc or math.isinf(_to_float(v))}
        return set(new_xc) | carry

    def _float_kernels(self, entries, old) -> dict:
        """{(i, j): (Σ̂, Σ̇)} in float64 at entries the float pass evaluated (their old Σ is in ``old``):
        the same elementwise operations on the gathered entries (Σ̇ of a Θ carried in mpmath)."""
        if not entries:
            return {}
        ii, jj = (np.array(t, dtype=np.intp) for t in zip(*entries))
        q1, q2 = self.q1[ii], self.q2[jj]
        b = np.sqrt(q1) * np.sqrt(q2)
        c = np.array([old[e][0] for e in entries])
        if self.degree is None:
            c = snap(c, b)
        kh, kd = (np.broadcast_to(np.asarray(v, dtype=float), b.shape) for v in self.k.pair(q1, q2, c, b))
        return {e: (float(kh[m]), float(kd[m])) for m, e in enumerate(entries)}


def _panels(n1: int, n2: int, same: bool, entries) -> list:
    """Row panels (i0, i1, j0, j1) of about ``entries`` entries (None: one panel, the whole matrix); with
    x2 = None only the upper triangle: columns from i0 on (the diagonal blocks are computed whole)."""
    if entries is None or n1 * n2 <= entries:
        return [(0, n1, 0, n2)]
    out, i0 = [], 0
    while i0 < n1:
        j0 = i0 if same else 0
        rows = max(1, entries // max(1, n2 - j0))
        i1 = min(n1, i0 + rows)
        width = max(entries // (i1 - i0), i1 - i0 if same else 1)
        for c0 in range(j0, n2, width):
            out.append((i0, i1, c0, min(n2, c0 + width)))
        i0 = i1
    return out


@functools.lru_cache(maxsize=64)
def _lower(m: int):
    return np.tril_indices(m, -1)


def _mirror_upper(a, lo: int, hi: int) -> None:
    """a[lo:hi, lo:hi] made symmetric from its upper triangle (in place, square tiles: cache-friendly)."""
    t = _MIRROR_TILE
    for t0 in range(lo, hi, t):
        t1 = min(t0 + t, hi)
        blk = a[t0:t1, t0:t1]
        il = _lower(t1 - t0)
        blk[il] = blk.T[il]
        for s0 in range(t1, hi, t):
            s1 = min(s0 + t, hi)
            a[s0:s1, t0:t1] = a[t0:t1, s0:s1].T


def _snap_in_place(c, b, diag: int) -> None:
    """Rule 2 on a panel of the stored Σ, in place: :func:`ntksym.kernels.snap` bit for bit (|c| ≥ b(1 − 8ε)
    ≥ 0: c ≥ 0 → b, c < 0 → −b; nothing else changes, and |c| ≤ b then holds).  ``diag``: the panel's
    first ``diag`` columns are its diagonal block (where the ties are near ±b), checked on their own."""
    lim = b * (1.0 - SNAP_ULPS * _EPS)
    near = np.abs(c) >= lim
    if not near.any():
        return
    if diag and not near[:, diag:].any():
        c, b, near = c[:, :diag], b[:, :diag], near[:, :diag]
    np.copyto(c, np.where(c >= 0, b, -b), where=near)


def _owned(v, shape) -> np.ndarray:
    """``v`` as a writable float64 array of ``shape`` (copied only when it is a broadcast or a view)."""
    v = np.asarray(v, dtype=float)
    if v.shape != shape or not v.flags.writeable or not v.flags.owndata:
        v = np.array(np.broadcast_to(v, shape), dtype=float)
    return v


def _all_finite(a) -> bool:
    with np.errstate(all="ignore"):
        return math.isfinite(float(np.sum(a))) or bool(np.isfinite(a).all())


def _entries(idx1, idx2, n1: int, n2: int):
    """(i, j) with i in idx1 (any j) or j in idx2 (any i)."""
    out = set()
    for i in np.asarray(idx1).tolist():
        out.update((i, j) for j in range(n2))
    for j in np.asarray(idx2).tolist():
        out.update((i, j) for i in range(n1))
    return out


def _row_classes(x1, x2, same: bool, g, nsq1, nsq2):
    """Repeated and antipodal rows (x and ±x, also across inputs and inputs2): their squared norms are set
    to the first member's and their Gram entries to ±that, in place, so that ties are exact from layer 0.
    Returns (pos, neg): index arrays (i, j) of the pairs x_i = x_j (without the diagonal) and x_i = −x_j."""
    empty = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
    rows = x1 if same else np.vstack([x1, x2])
    n1 = x1.shape[0]
    if rows.shape[0] < 2:
        return empty, empty
    first = (rows != 0).argmax(axis=1)
    sgn = np.sign(rows[np.arange(rows.shape[0]), first])
    sgn[sgn == 0] = 1.0
    _, inv, counts = np.unique(rows * sgn[:, None], axis=0, return_inverse=True, return_counts=True)
    inv = np.asarray(inv).ravel()
    multi = np.nonzero(counts[inv] > 1)[0]
    if multi.size == 0:
        return empty, empty
    order = multi[np.argsort(inv[multi], kind="stable")]
    pos, neg = ([], []), ([], [])
    for grp in np.split(order, np.nonzero(np.diff(inv[order]))[0] + 1):
        rep = grp[0]
        r = nsq1[rep] if rep < n1 else nsq2[rep - n1]
        a = grp[grp < n1]
        bcols = a if same else grp[grp >= n1] - n1
        nsq1[a] = r
        if not same:
            nsq2[bcols] = r
        if a.size == 0 or bcols.size == 0:
            continue
        sa, sb = sgn[a], sgn[bcols if same else bcols + n1]
        prod = sa[:, None] * sb[None, :]
        g[np.ix_(a, bcols)] = r * prod
        ii, jj = np.meshgrid(a, bcols, indexing="ij")
        off = ii != jj if same else np.ones_like(prod, dtype=bool)
        for out, m in ((pos, (prod > 0) & off), (neg, prod < 0)):
            out[0].append(ii[m])
            out[1].append(jj[m])
    return tuple(tuple(np.concatenate(p) if p else np.zeros(0, dtype=np.intp) for p in pair) for pair in (pos, neg))
