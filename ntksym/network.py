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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .errors import InputError, NetworkError
from .gaussian.dual import C, Q1, Q2, DualKernels

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

    ``kernel_fns(q1, q2, c) -> (Σ̂, Σ̇)`` evaluates the dual kernels on arrays.
    """
    x1, x2 = validate_inputs(x1, x2)
    with np.errstate(over="ignore"):  # a true overflow gives inf (beyond float64), silently
        return _evaluate(kernel_fns, net, x1, x2)


def _evaluate(kernel_fns, net: Network, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = x1.shape[1]
    sw2, sb2 = float(net.sigma_w) ** 2, float(net.sigma_b) ** 2
    q1 = sw2 * np.einsum("ij,ij->i", x1, x1) / d + sb2
    q2 = sw2 * np.einsum("ij,ij->i", x2, x2) / d + sb2
    sig = sw2 * (x1 @ x2.T) / d + sb2
    theta = sig.copy() if net.parameterization == "ntk" else x1 @ x2.T + 1.0
    for _ in range(net.depth):
        khat, kdot = kernel_fns(q1[:, None], q2[None, :], sig)
        khat1, _ = kernel_fns(q1, q1, q1)
        khat2, _ = kernel_fns(q2, q2, q2)
        sig = sw2 * khat + sb2
        if net.parameterization == "ntk":
            theta = sig + sw2 * kdot * theta
        else:
            theta = net.width * khat + 1.0 + sw2 * kdot * theta
        q1, q2 = sw2 * khat1 + sb2, sw2 * khat2 + sb2
    return np.ascontiguousarray(sig), np.ascontiguousarray(theta)
