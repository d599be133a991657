"""Finite-width fully-connected networks and their empirical NNGP / NTK.

This module is the Monte-Carlo counterpart of the symbolic infinite-width
kernels: it samples randomly initialised networks of finite width, evaluates
their outputs and the exact parameter-gradient inner products, and averages
them over independent draws.

Network convention
------------------
The architecture mirrors ``stax.serial([Dense(width), phi] * depth,
Dense(n_out))`` of neural-tangents.  With ``n_0 = d``, ``n_1 = ... = n_L =
width`` (``L = depth``) and ``n_{L+1} = n_out``, every layer ``l = 1..L+1``
has a weight matrix ``W^l`` of shape ``(n_l, n_{l-1})`` and a bias ``b^l`` of
shape ``(n_l,)``::

    z^1     = a_1 W^1 x + c b^1
    h^l     = phi(z^l)                          l = 1..L
    z^{l+1} = a_{l+1} W^{l+1} h^l + c b^{l+1}
    f       = z^{L+1}

* ``parameterization="ntk"``: the stored (trained) parameters are iid
  ``N(0, 1)`` and the multipliers are ``a_l = sigma_w / sqrt(n_{l-1})`` and
  ``c = sigma_b``.
* ``parameterization="standard"``: the stored parameters already carry their
  scale, ``W^l ~ N(0, sigma_w^2 / n_{l-1})`` and ``b^l ~ N(0, sigma_b^2)``,
  and ``a_l = c = 1``.

Both give the same distribution of the forward pass; they differ in what the
NTK differentiates with respect to (the stored parameters).

Empirical kernels
-----------------
For output unit ``k`` let ``delta^l_k(x) = d f_k(x) / d z^l(x)`` (a vector of
length ``n_l``; ``delta^{L+1}_k = e_k``).  Then

    <d f_k(x)/d theta, d f_k(y)/d theta>
        = sum_l <delta^l_k(x), delta^l_k(y)> (a_l^2 <h^{l-1}(x), h^{l-1}(y)> + c^2)

with ``h^0 = x``.  The empirical kernels returned here are averages over
the output units ``k``.  Everything is batched over inputs with matrix
products; the sensitivities of one layer occupy ``O(n * width * n_out)``
memory.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ntksym.errors import ActivationError, InputError, NetworkError
from ntksym.inputs import as_matrix

__all__ = [
    "PARAMETERIZATIONS",
    "Network",
    "sample_network",
    "forward",
    "empirical_kernels",
    "monte_carlo_kernels",
    "parameter_vector",
    "with_parameters",
]

PARAMETERIZATIONS = ("ntk", "standard")

ArrayFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

# Bounds of finite networks (the CLI applies the same ones; depth as for the infinite-width network).
MAX_WIDTH = 1_000_000       # finite-network width M; the weights (depth·M² floats) must also fit in memory
MAX_SAMPLES = 1_000_000     # random networks of a Monte Carlo
MAX_N_OUT = 10_000          # output units
MAX_DIM = 10_000_000        # input dimension d


def _check_int(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NetworkError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum or maximum is not None and value > maximum:
        raise NetworkError(f"{name} must be in [{minimum}, {maximum}], got {value}" if maximum is not None
                           else f"{name} must be >= {minimum}, got {value}")
    return value


def _check_shape(depth, width, n_out, d=1):
    """``(depth, width, n_out, d)`` checked against the bounds above."""
    from ntksym.network import MAX_DEPTH
    return (_check_int("depth", depth, 1, MAX_DEPTH), _check_int("width", width, 1, MAX_WIDTH),
            _check_int("n_out", n_out, 1, MAX_N_OUT), _check_int("d", d, 1, MAX_DIM))


def check_mc_memory(n: int, d: int, depth: int, width: int, n_out: int = 1) -> None:
    """Refuse a Monte Carlo (or one network, ``n = 0``) whose weights, activations and n×n statistics
    cannot fit in the available memory (:class:`InputError`)."""
    from ntksym.inputs import GRAM_ARRAYS, available_memory
    floats = (depth - 1) * width * width + (d + n_out) * width + 3 * (depth + 1) * n * width \
        + 2 * n * n_out * width + GRAM_ARRAYS * n * n
    need, avail = 8 * floats, available_memory()
    if need > avail:
        raise InputError(f"a network of depth {depth} and width {width}" + (f" on {n} inputs" if n else "")
                         + f" needs about {need / 2**30:.3g} GiB of memory, only {avail / 2**30:.3g} GiB available")


def _check_samples(samples) -> int:
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or not 2 <= samples <= MAX_SAMPLES:
        raise InputError(f"samples must be an integer in [2, {MAX_SAMPLES}], got {samples!r}")
    return int(samples)


def _check_sigma(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NetworkError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise NetworkError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def _check_parameterization(value) -> str:
    if value not in PARAMETERIZATIONS:
        raise NetworkError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {value!r}"
        )
    return value


def _check_data(name: str, X, d: Optional[int] = None) -> np.ndarray:
    """A finite float64 ``(n, d)`` array (:func:`ntksym.inputs.as_matrix`) whose rows have squared norms
    within float64 (otherwise every kernel entry overflows and the Monte Carlo would turn inf − inf into NaN)."""
    arr = as_matrix(X, name)
    if d is not None and arr.shape[1] != d:
        raise InputError(f"{name} has dimension {arr.shape[1]}, expected {d}")
    with np.errstate(over="ignore"):
        sq = np.einsum("ij,ij->i", arr, arr)
    if not np.all(np.isfinite(sq)):
        i = int(np.argmin(np.isfinite(sq)))
        raise InputError(f"{name} row {i} has a squared norm beyond the float64 range (max |entry| "
                         f"{np.max(np.abs(arr[i])):.3g}); rescale the inputs")
    return arr


def _check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise ActivationError(f"{name} must be a callable acting elementwise on arrays, got {fn!r}")


def _apply(name: str, fn: ArrayFn, z: np.ndarray) -> np.ndarray:
    """Apply a vectorised elementwise function and check the result."""
    out = np.asarray(fn(z))
    if out.ndim == 0:  # e.g. ``lambda x: 1.0`` as the derivative of the identity
        out = np.broadcast_to(out, z.shape)
    if out.shape != z.shape:
        raise ActivationError(
            f"{name} must act elementwise: input shape {z.shape}, output shape {out.shape}"
        )
    if out.dtype.kind not in "biuf":
        raise ActivationError(f"{name} must return real numbers, got dtype {out.dtype}")
    out = out.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        raise ActivationError(f"{name} produced NaN or infinite values (pre-activations up to |z| = "
                              f"{float(np.max(np.abs(z))):.3g}; it overflows float64 for these inputs and weights)")
    return out


# --------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Network:
    """A sampled fully-connected network (immutable; arrays are read-only).

    ``weights[l-1]`` is ``W^l`` with shape ``(n_l, n_{l-1})`` and
    ``biases[l-1]`` is ``b^l`` with shape ``(n_l,)``, for ``l = 1..depth+1``;
    they are the *stored* parameters of the given parameterization (see the
    module docstring).
    """

    weights: tuple
    biases: tuple
    sigma_w: float
    sigma_b: float
    parameterization: str = "ntk"

    def __post_init__(self):
        _check_sigma("sigma_w", self.sigma_w)
        _check_sigma("sigma_b", self.sigma_b)
        _check_parameterization(self.parameterization)
        weights = tuple(np.array(w, dtype=np.float64) for w in self.weights)
        biases = tuple(np.array(b, dtype=np.float64) for b in self.biases)
        if len(weights) < 2 or len(weights) != len(biases):
            raise NetworkError(
                "a network needs at least 2 layers (depth >= 1) and one bias per weight matrix"
            )
        for i, (w, b) in enumerate(zip(weights, biases), start=1):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise NetworkError(f"layer {i}: weight shape {w.shape} and bias shape {b.shape} do not match")
            if i > 1 and w.shape[1] != weights[i - 2].shape[0]:
                raise NetworkError(
                    f"layer {i}: fan-in {w.shape[1]} differs from the previous width {weights[i - 2].shape[0]}"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise NetworkError(f"layer {i}: parameters contain NaN or infinite entries")
            w.setflags(write=False)
            b.setflags(write=False)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)
        object.__setattr__(self, "sigma_w", float(self.sigma_w))
        object.__setattr__(self, "sigma_b", float(self.sigma_b))

    @property
    def depth(self) -> int:
        """Number of hidden layers ``L``."""
        return len(self.weights) - 1

    @property
    def d(self) -> int:
        return self.weights[0].shape[1]

    @property
    def width(self) -> int:
        return self.weights[0].shape[0]

    @property
    def n_out(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def layer_sizes(self) -> tuple:
        """``(n_0, n_1, ..., n_{L+1})``."""
        return (self.d,) + tuple(w.shape[0] for w in self.weights)

    @property
    def n_params(self) -> int:
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases))

    def multipliers(self):
        """Per-layer weight multipliers ``a_l`` and the bias multiplier ``c``."""
        if self.parameterization == "ntk":
            return [self.sigma_w / math.sqrt(w.shape[1]) for w in self.weights], self.sigma_b
        return [1.0] * len(self.weights), 1.0


def sample_network(depth, width, d, sigma_w, sigma_b, rng, n_out=1, parameterization="ntk") -> Network:
    """Draw a network at initialisation.

    ``rng`` is a :class:`numpy.random.Generator`.  The underlying standard
    normal draws are the same for both parameterizations (for a given rng
    state), so the two produce identical forward functions.
    """
    depth, width, n_out, d = _check_shape(depth, width, n_out, d)
    check_mc_memory(0, d, depth, width, n_out)
    sigma_w = _check_sigma("sigma_w", sigma_w)
    sigma_b = _check_sigma("sigma_b", sigma_b)
    parameterization = _check_parameterization(parameterization)
    if not isinstance(rng, np.random.Generator):
        raise NetworkError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")

    sizes = [d] + [width] * depth + [n_out]
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((fan_out, fan_in))
        b = rng.standard_normal(fan_out)
        if parameterization == "standard":
            w *= sigma_w / math.sqrt(fan_in)
            b *= sigma_b
        weights.append(w)
        biases.append(b)
    return Network(tuple(weights), tuple(biases), sigma_w, sigma_b, parameterization)


def parameter_vector(net: Network) -> np.ndarray:
    """All stored parameters flattened as ``[W^1, b^1, W^2, b^2, ...]``."""
    parts = []
    for w, b in zip(net.weights, net.biases):
        parts.append(w.ravel())
        parts.append(b.ravel())
    return np.concatenate(parts)


def with_parameters(net: Network, theta) -> Network:
    """A copy of ``net`` whose stored parameters are the flat vector ``theta``."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (net.n_params,):
        raise InputError(f"parameter vector must have shape ({net.n_params},), got {theta.shape}")
    weights, biases, pos = [], [], 0
    for w, b in zip(net.weights, net.biases):
        weights.append(theta[pos:pos + w.size].reshape(w.shape))
        pos += w.size
        biases.append(theta[pos:pos + b.size].copy())
        pos += b.size
    return Network(tuple(weights), tuple(biases), net.sigma_w, net.sigma_b, net.parameterization)


# --------------------------------------------------------------------------
# forward and kernels
# --------------------------------------------------------------------------

def _forward_checked(net: Network, X: np.ndarray, phi: ArrayFn):
    a, c = net.multipliers()
    pre, act = [], []
    h = X
    for l in range(net.depth):
        z = a[l] * (h @ net.weights[l].T) + c * net.biases[l]
        h = _apply("phi", phi, z)
        pre.append(z)
        act.append(h)
    out = a[-1] * (h @ net.weights[-1].T) + c * net.biases[-1]
    return pre, act, out


def forward(net: Network, X, phi: ArrayFn):
    """Evaluate the network on the rows of ``X`` (shape ``(n, d)``).

    Returns ``(preacts, acts, out)``: ``preacts = [z^1, ..., z^L]`` and
    ``acts = [h^1, ..., h^L]`` (each of shape ``(n, width)``) for the hidden
    layers, and ``out = z^{L+1}`` of shape ``(n, n_out)``.
    """
    if not isinstance(net, Network):
        raise NetworkError(f"net must be a Network, got {type(net).__name__}")
    _check_callable("phi", phi)
    X = _check_data("X", X, net.d)
    return _forward_checked(net, X, phi)


def _features(net: Network, X: np.ndarray, phi: ArrayFn):
    """Forward pass returning ``(preacts, inputs, out)`` with ``inputs = [h^0=X, h^1, ..., h^L]``."""
    pre, act, out = _forward_checked(net, X, phi)
    return pre, [X] + act, out


def _sensitivities(net: Network, pre, dphi: ArrayFn):
    """Yield ``(l - 1, delta^l)`` for the hidden layers ``l = L, L-1, ..., 1``.

    ``delta^l`` has shape ``(n, n_out, n_l)``; entry ``[i, k, :]`` is
    ``d f_k(x_i) / d z^l``.  Generated top-down so that only one layer's
    sensitivities are alive at a time (the readout's, ``e_k``, is implicit).
    """
    a, _ = net.multipliers()
    L = net.depth
    # delta^L[i, k, :] = a_{L+1} W^{L+1}[k, :] * phi'(z^L_i)
    dz = _apply("dphi", dphi, pre[L - 1])
    delta = (a[L] * net.weights[L])[None, :, :] * dz[:, None, :]
    yield L - 1, delta
    for l in range(L - 1, 0, -1):
        dz = _apply("dphi", dphi, pre[l - 1])
        # delta^l = (delta^{l+1} @ a_{l+1} W^{l+1}) * phi'(z^l); one 2-D GEMM (a 3-D matmul
        # would run n separate matrix-vector products, ~10x slower at width 1000)
        n, k, m = delta.shape
        delta = (delta.reshape(n * k, m) @ net.weights[l]).reshape(n, k, -1) * (a[l] * dz[:, None, :])
        yield l - 1, delta


OVERFLOW = ("the empirical kernels overflow float64 (entries beyond 1.8e308): the activation grows too fast "
            "for these inputs and weights; rescale the inputs or lower sigma_w")


def check_kernels_finite(*arrays) -> None:
    """Refuse kernels that overflowed (inf, or NaN from inf − inf) with one line."""
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ActivationError(OVERFLOW)


def _kernels(net: Network, X1: np.ndarray, X2: Optional[np.ndarray], phi, dphi):
    """The kernels of one network; an overflow anywhere is refused (:data:`OVERFLOW`), never returned."""
    with np.errstate(over="ignore", invalid="ignore"):
        nngp, ntk = _kernels_raw(net, X1, X2, phi, dphi)
    check_kernels_finite(nngp, ntk)
    return nngp, ntk


def _kernels_raw(net: Network, X1: np.ndarray, X2: Optional[np.ndarray], phi, dphi):
    a, c = net.multipliers()
    n_out = net.n_out
    pre1, in1, out1 = _features(net, X1, phi)
    same = X2 is None
    if same:
        pre2, in2, out2 = pre1, in1, out1
    else:
        pre2, in2, out2 = _features(net, X2, phi)

    nngp = (out1 @ out2.T) / n_out

    # Readout layer: delta^{L+1}_k = e_k, so <delta, delta'> = 1 for each k.
    L = net.depth
    ntk = a[L] ** 2 * (in1[L] @ in2[L].T) + c ** 2
    sens2 = None if same else _sensitivities(net, pre2, dphi)
    for idx, d1 in _sensitivities(net, pre1, dphi):
        if same:
            d2 = d1
        else:
            _, d2 = next(sens2)
        n1, n2 = d1.shape[0], d2.shape[0]
        dd = (d1.reshape(n1, -1) @ d2.reshape(n2, -1).T) / n_out
        ntk += dd * (a[idx] ** 2 * (in1[idx] @ in2[idx].T) + c ** 2)
    return nngp, ntk


def empirical_kernels(net: Network, X1, X2, phi: ArrayFn, dphi: ArrayFn):
    """Empirical NNGP and NTK of one network, each an ``(n1, n2)`` float64 array.

    ``nngp[i, j] = mean_k f_k(x_i) f_k(y_j)`` and
    ``ntk[i, j] = mean_k <d f_k(x_i)/d theta, d f_k(y_j)/d theta>``, with
    ``theta`` the stored parameters of ``net``.  ``X2=None`` (or ``X2 is X1``)
    means ``X2 = X1`` and the forward/backward pass is done once.
    ``dphi`` must be the derivative of ``phi`` (a subgradient at kinks).
    """
    if not isinstance(net, Network):
        raise NetworkError(f"net must be a Network, got {type(net).__name__}")
    _check_callable("phi", phi)
    _check_callable("dphi", dphi)
    same = X2 is None or X2 is X1
    X1 = _check_data("X1", X1, net.d)
    X2 = None if same else _check_data("X2", X2, net.d)
    return _kernels(net, X1, X2, phi, dphi)


# --------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------

def monte_carlo_kernels(phi, dphi, X1, X2, depth, width, sigma_w, sigma_b, samples, seed,
                        n_out=1, parameterization="ntk") -> dict:
    """Average the empirical kernels over ``samples`` independent networks.

    Network ``s`` is drawn from ``numpy.random.default_rng(child_s)`` where
    ``child_0..child_{samples-1}`` are spawned from the seed sequence of
    ``numpy.random.default_rng(seed)``; the result is a deterministic function
    of ``seed`` (and is independent of the loop order).

    Returns float64 arrays ``nngp_mean``, ``nngp_sem``, ``ntk_mean``,
    ``ntk_sem``, ``ntk_var`` (entrywise; variance unbiased, ``sem =
    sqrt(var / samples)``) and the int ``samples``.
    """
    depth, width, n_out, _ = _check_shape(depth, width, n_out)
    sigma_w = _check_sigma("sigma_w", sigma_w)
    sigma_b = _check_sigma("sigma_b", sigma_b)
    parameterization = _check_parameterization(parameterization)
    samples = _check_samples(samples)
    _check_callable("phi", phi)
    _check_callable("dphi", dphi)
    same = X2 is None or X2 is X1
    X1 = _check_data("X1", X1)
    d = X1.shape[1]
    X2 = None if same else _check_data("X2", X2, d)
    check_mc_memory(max(X1.shape[0], 0 if same else X2.shape[0]), d, depth, width, n_out)

    try:
        root = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid seed {seed!r}: {exc}") from None
    children = root.bit_generator.seed_seq.spawn(samples)

    # Welford accumulation (numerically stable, O(n1 n2) memory).
    n1 = X1.shape[0]
    n2 = n1 if X2 is None else X2.shape[0]
    mean_g = np.zeros((n1, n2))
    m2_g = np.zeros((n1, n2))
    mean_t = np.zeros((n1, n2))
    m2_t = np.zeros((n1, n2))
    for s, child in enumerate(children, start=1):
        net = sample_network(depth, width, d, sigma_w, sigma_b, np.random.default_rng(child),
                             n_out=n_out, parameterization=parameterization)
        g, t = _kernels(net, X1, X2, phi, dphi)
        with np.errstate(over="ignore"):  # a variance beyond float64 is inf (its true value)
            dg = g - mean_g
            mean_g += dg / s
            m2_g += dg * (g - mean_g)
            dt = t - mean_t
            mean_t += dt / s
            m2_t += dt * (t - mean_t)

    var_g = m2_g / (samples - 1)
    var_t = m2_t / (samples - 1)
    if np.isnan(mean_g).any() or np.isnan(mean_t).any() or np.isnan(var_g).any() or np.isnan(var_t).any():
        raise ActivationError(OVERFLOW)
    return {
        "nngp_mean": mean_g,
        "nngp_sem": np.sqrt(var_g / samples),
        "ntk_mean": mean_t,
        "ntk_sem": np.sqrt(var_t / samples),
        "ntk_var": var_t,
        "samples": samples,
    }
