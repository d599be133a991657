"""Monte Carlo over initialisations: empirical NTK / NNGP statistics of finite MLPs.

The network and kernel conventions are those of :mod:`ntksym.finite.empirical`
(default: neural-tangents' ``'ntk'`` parameterization, ``L = depth`` hidden
layers, the readout Dense counts): the mean empirical NTK converges to the
infinite-width recursion of :func:`ntksym.kernel` as the width grows, with
an ``O(L/width)`` bias (Hanin & Nica, ICLR 2020).

Backends
--------
* ``"numpy"``: :func:`ntksym.finite.empirical._kernels` (exact per-layer
  gradient formulas, batched over the inputs).  Network ``s`` is drawn from
  ``default_rng(child_s)`` with ``child_s`` spawned from ``seed``: for the same
  seed the means equal those of :func:`~ntksym.finite.empirical.monte_carlo_kernels`.
* ``"torch"`` (optional): the same formulas in float64 PyTorch on ``device``
  (default ``"cuda"`` when available, else ``"cpu"``); the weights are drawn on
  the device by a ``torch.Generator`` seeded from ``child_s``, so the samples
  differ from the NumPy backend's but have the same law and are reproducible
  for a given seed and device.

Statistics
----------
Entrywise mean and unbiased variance (Welford) of Θ̂ and of the NNGP
``f(x)f(y)`` (mean over output units), their standard errors, and the
dispersion ``R = E[Θ²]/E[Θ]²`` pooled over the diagonal and over the
off-diagonal entries: per sample ``u_s = mean_i Θ_ii²``, ``v_s = mean_i Θ_ii``
(likewise over ``i ≠ j``), ``R̂ = mean(u)/mean(v)²`` with a delta-method
standard error from the sample covariance of ``(u_s, v_s)`` (samples are iid,
entries within a sample need not be).  For inputs of equal norm all diagonal
entries share one law, so the pooled ``R̂`` estimates that law's dispersion
(Seleznova & Kutyniok, ICML 2022).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ntksym.errors import ActivationError, InputError, NtksymError
from ntksym.finite import empirical as emp

__all__ = ["BACKENDS", "MCStats", "monte_carlo", "torch_kernels", "resolve_activation", "Progress",
           "ratio_estimate"]

BACKENDS = ("numpy", "torch")


# --------------------------------------------------------------------------
# progress bar (stderr, no dependency)
# --------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on ``stream`` (stderr), redrawn at most every ``interval`` s."""

    def __init__(self, total: int, label: str = "samples", enabled: bool = True, stream=None,
                 interval: float = 0.2):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = sys.stderr if stream is None else stream
        self.interval, self.done = interval, 0
        self.start = self.last = time.perf_counter()

    def update(self, k: int = 1) -> None:
        self.done += k
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.interval or self.done == self.total):
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = 24
        fill = int(width * self.done / max(self.total, 1))
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                          f"{rate:.3g}/s eta {eta:.0f}s ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------

def ratio_estimate(u: np.ndarray, v: np.ndarray):
    """R̂ = mean(u)/mean(v)² and its delta-method standard error from iid pairs (u_s, v_s)."""
    S = len(u)
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    scale = float(np.max(np.abs(v))) if S else 0.0
    if not (math.isfinite(scale) and scale > 0) or not np.all(np.isfinite(u)):
        return math.nan, math.nan
    u, v = u / scale / scale, v / scale  # R is scale-free
    U, V = float(np.mean(u)), float(np.mean(v))
    if V == 0.0 or not math.isfinite(U):
        return math.nan, math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        cov = np.cov(np.vstack([u, v])) if S > 1 else np.zeros((2, 2))
        g = np.array([1.0 / V ** 2, -2.0 * U / V ** 3])
        se = float(np.sqrt(max(g @ cov @ g, 0.0) / S))
    return U / V ** 2, se


@dataclass(frozen=True, eq=False)
class MCStats:
    """Monte-Carlo statistics of the empirical kernels (float64 arrays are ``(n1, n2)``).

    ``ntk_var`` / ``nngp_var`` are unbiased entrywise variances across samples,
    ``*_sem = sqrt(var/samples)``.  ``dispersion_diag`` / ``dispersion_offdiag``
    (and their ``*_se``) are the pooled E[Θ²]/E[Θ]² described in the module
    docstring (``nan`` where undefined, e.g. no off-diagonal entries).
    """
    samples: int
    seed: object
    backend: str
    device: str
    ntk_mean: np.ndarray
    ntk_var: np.ndarray
    nngp_mean: np.ndarray
    nngp_var: np.ndarray
    dispersion_diag: float
    dispersion_diag_se: float
    dispersion_offdiag: float
    dispersion_offdiag_se: float
    seconds: float

    @property
    def ntk_sem(self) -> np.ndarray:
        return np.sqrt(self.ntk_var / self.samples)

    @property
    def nngp_sem(self) -> np.ndarray:
        return np.sqrt(self.nngp_var / self.samples)

    @property
    def ntk_dispersion(self) -> np.ndarray:
        """Entrywise E[Θ²]/E[Θ]² (plug-in: second moment = var·(S−1)/S + mean²)."""
        S = self.samples
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.ntk_var * (S - 1) / S + self.ntk_mean ** 2) / self.ntk_mean ** 2

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else math.inf

    def arrays(self) -> dict:
        """The float64 arrays written by ``ntksym empirical``."""
        return {"ntk_mean": self.ntk_mean, "ntk_var": self.ntk_var, "nngp_mean": self.nngp_mean,
                "ntk_sem": self.ntk_sem, "nngp_var": self.nngp_var,
                "dispersion_diag": np.array([self.dispersion_diag, self.dispersion_diag_se]),
                "dispersion_offdiag": np.array([self.dispersion_offdiag, self.dispersion_offdiag_se]),
                "samples": np.array(self.samples)}


class _Accumulator:
    """Welford entrywise moments plus per-sample diagonal/off-diagonal aggregates."""

    def __init__(self, n1: int, n2: int, square: bool):
        self.s = 0
        self.mean_t, self.m2_t = np.zeros((n1, n2)), np.zeros((n1, n2))
        self.mean_g, self.m2_g = np.zeros((n1, n2)), np.zeros((n1, n2))
        self.square = square
        self.off = ~np.eye(n1, dtype=bool) if square else np.ones((n1, n2), dtype=bool)
        self.diag_u, self.diag_v, self.off_u, self.off_v = [], [], [], []

    def add(self, nngp: np.ndarray, ntk: np.ndarray) -> None:
        emp.check_kernels_finite(nngp, ntk)
        self.s += 1
        if self.s == 1:  # R = E[Θ²]/E[Θ]² is scale-free: aggregate Θ/scale so that Θ² stays in range
            top = float(np.max(np.abs(ntk)))
            self.scale = top if 0 < top < math.inf else 1.0
        with np.errstate(over="ignore"):  # a variance beyond float64 is inf (its true value)
            for mean, m2, x in ((self.mean_t, self.m2_t, ntk), (self.mean_g, self.m2_g, nngp)):
                dx = x - mean
                mean += dx / self.s
                m2 += dx * (x - mean)
            t = ntk / self.scale
            if self.square:
                dg = np.diagonal(t)
                self.diag_u.append(float(np.mean(dg ** 2)))
                self.diag_v.append(float(np.mean(dg)))
            if self.off.any():
                od = t[self.off]
                self.off_u.append(float(np.mean(od ** 2)))
                self.off_v.append(float(np.mean(od)))

    def result(self, seed, backend, device, seconds) -> MCStats:
        S = self.s
        if any(np.isnan(a).any() for a in (self.mean_t, self.m2_t, self.mean_g, self.m2_g)):
            raise ActivationError(emp.OVERFLOW)  # inf − inf in the running moments
        nan = (math.nan, math.nan)
        rd = ratio_estimate(np.array(self.diag_u), np.array(self.diag_v)) if self.diag_u else nan
        ro = ratio_estimate(np.array(self.off_u), np.array(self.off_v)) if self.off_u else nan
        return MCStats(S, seed, backend, device, self.mean_t, self.m2_t / (S - 1), self.mean_g,
                       self.m2_g / (S - 1), rd[0], rd[1], ro[0], ro[1], seconds)


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------

def resolve_activation(activation, params=None):
    """``(phi, dphi, expr_pair)`` from an Activation, a catalogue name/expression, or a ``(phi, dphi)``
    pair of NumPy callables (``expr_pair`` is ``None`` then, and the torch backend maps through NumPy)."""
    if isinstance(activation, tuple) and len(activation) == 2 and all(callable(f) for f in activation):
        return activation[0], activation[1], None
    from ntksym.activation import Activation
    from ntksym.derivation import as_activation
    act = activation if isinstance(activation, Activation) else as_activation(activation, params)
    deriv = ae_derivative(act)
    from ntksym.activation import numeric_form, numpy_callable
    try:
        dphi = numpy_callable(numeric_form(deriv, act.x), act.x)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ActivationError(f"cannot evaluate φ' of {act.name!r} numerically for the Monte Carlo "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return act.numpy_fn(), dphi, (act.concrete, deriv, act.x)


def ae_derivative(act):
    """φ' almost everywhere, as a SymPy expression.  Where SymPy leaves a derivative unevaluated (sign,
    Heaviside or Abs of an argument not known to be real, e.g. sign(sin(1/x))), sign(u) and Heaviside(u)
    are locally constant off the null set {u = 0} and Abs(u) = u·sign(u), so φ' is the derivative with
    those frozen; what still cannot be differentiated is refused (:class:`ActivationError`)."""
    import sympy as sp
    d = act.derivative
    if not d.has(sp.Derivative, sp.Subs):
        return d
    frozen = {}

    def freeze(e):
        if isinstance(e, (sp.sign, sp.Heaviside)):
            k = sp.Dummy("k")
            frozen[k] = e
            return k
        if isinstance(e, sp.Abs):
            k = sp.Dummy("k")
            frozen[k] = sp.sign(e.args[0])
            return freeze(e.args[0]) * k
        return e.func(*[freeze(a) for a in e.args]) if e.args else e

    d = sp.diff(freeze(act.concrete), act.x).xreplace(frozen)
    d = d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
    if d.has(sp.Derivative, sp.Subs):
        raise ActivationError(f"cannot differentiate φ = {act.concrete} for the Monte Carlo (SymPy leaves "
                              f"{next(iter(d.atoms(sp.Derivative, sp.Subs)))} unevaluated)")
    return d


def _torch_fn(expr, var, np_fn, torch):
    """A torch elementwise function for a SymPy expression, by walking its tree (never eval).

    Nodes outside a small whitelist fall back to the NumPy function on the host."""
    import sympy as sp

    unary = {sp.exp: torch.exp, sp.erf: torch.special.erf, sp.tanh: torch.tanh, sp.sin: torch.sin,
             sp.cos: torch.cos, sp.Abs: torch.abs, sp.log: torch.log, sp.sign: torch.sign,
             sp.atan: torch.atan, sp.cosh: torch.cosh, sp.sinh: torch.sinh}

    def build(e):
        if e == var:
            return lambda z: z
        if e.is_Number or e.is_NumberSymbol:
            c = float(e)
            return lambda z: torch.full_like(z, c)
        args = [build(a) for a in e.args]
        if isinstance(e, sp.Add):
            return lambda z: sum(f(z) for f in args)
        if isinstance(e, sp.Mul):
            def mul(z):
                out = args[0](z)
                for f in args[1:]:
                    out = out * f(z)
                return out
            return mul
        if isinstance(e, sp.Pow):
            base, ex = args
            return lambda z: torch.pow(base(z), ex(z))
        if isinstance(e, (sp.Max, sp.Min)):
            op = torch.maximum if isinstance(e, sp.Max) else torch.minimum

            def mm(z):
                out = args[0](z)
                for f in args[1:]:
                    out = op(out, f(z))
                return out
            return mm
        if isinstance(e, sp.Heaviside):
            half = float(e.args[1]) if len(e.args) > 1 else 0.5
            return lambda z: torch.heaviside(args[0](z), torch.tensor(half, dtype=z.dtype, device=z.device))
        for cls, fn in unary.items():
            if isinstance(e, cls):
                return lambda z, f=args[0], fn=fn: fn(f(z))
        raise NotImplementedError(type(e).__name__)

    try:
        if expr.has(sp.DiracDelta):
            raise NotImplementedError("DiracDelta")
        return build(expr)
    except NotImplementedError:
        def host(z):
            return torch.as_tensor(np_fn(z.detach().cpu().numpy()), dtype=z.dtype, device=z.device)
        return host


# --------------------------------------------------------------------------
# torch backend
# --------------------------------------------------------------------------

def _import_torch():
    try:
        import torch
    except ImportError:
        raise NtksymError("backend 'torch' needs PyTorch (pip install torch)") from None
    return torch


def _torch_device(torch, device):
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise NtksymError(f"torch device {device!r} is not usable: {str(exc).splitlines()[0]}") from None
    return str(device)


def _torch_kernels(Ws, bs, a, c, X, phi, dphi):
    """NNGP and NTK of one network in torch; same formulas as empirical._kernels (X2 = X)."""
    L = len(Ws) - 1
    n_out = Ws[-1].shape[0]
    h, pre, ins = X, [], [X]
    for l in range(L):
        z = a[l] * (h @ Ws[l].T) + c * bs[l]
        h = phi(z)
        pre.append(z)
        ins.append(h)
    out = a[L] * (h @ Ws[L].T) + c * bs[L]
    nngp = out @ out.T / n_out
    ntk = a[L] ** 2 * (ins[L] @ ins[L].T) + c ** 2
    delta = (a[L] * Ws[L])[None, :, :] * dphi(pre[L - 1])[:, None, :]
    for l in range(L - 1, -1, -1):
        flat = delta.reshape(delta.shape[0], -1)
        ntk = ntk + (flat @ flat.T / n_out) * (a[l] ** 2 * (ins[l] @ ins[l].T) + c ** 2)
        if l > 0:
            n, k, m = delta.shape
            delta = (delta.reshape(n * k, m) @ Ws[l]).reshape(n, k, -1) * (a[l] * dphi(pre[l - 1])[:, None, :])
    return nngp, ntk


def torch_kernels(net: emp.Network, X, activation, params=None, device=None):
    """Empirical (NNGP, NTK) of a given :class:`~ntksym.finite.empirical.Network` with the torch
    backend (returned as NumPy float64 arrays); for checking the backend against NumPy."""
    torch = _import_torch()
    device = _torch_device(torch, device)
    phi_np, dphi_np, exprs = resolve_activation(activation, params)
    phi, dphi = _torch_pair(torch, phi_np, dphi_np, exprs)
    X = emp._check_data("X", X, net.d)
    a, c = net.multipliers()
    t = lambda arr: torch.tensor(np.array(arr), dtype=torch.float64, device=device)  # noqa: E731
    g, k = _torch_kernels([t(w) for w in net.weights], [t(b) for b in net.biases], a, c, t(X), phi, dphi)
    return g.cpu().numpy(), k.cpu().numpy()


def _torch_pair(torch, phi_np, dphi_np, exprs):
    if exprs is None:
        return _host(torch, phi_np), _host(torch, dphi_np)
    f, df, var = exprs
    return _torch_fn(f, var, phi_np, torch), _torch_fn(df, var, dphi_np, torch)


def _host(torch, np_fn):
    def host(z):
        return torch.as_tensor(np.asarray(np_fn(z.detach().cpu().numpy()), dtype=np.float64),
                               dtype=z.dtype, device=z.device)
    return host


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------

def _children(seed, samples):
    try:
        root = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid seed {seed!r}: {exc}") from None
    return root.bit_generator.seed_seq.spawn(samples)


def monte_carlo(activation, X, depth: int, width: int, sigma_w: float = 1.0, sigma_b: float = 0.0,
                samples: int = 100, seed=0, *, params=None, parameterization: str = "ntk", n_out: int = 1,
                backend: str = "numpy", device: Optional[str] = None, progress: bool = False,
                progress_stream=None) -> MCStats:
    """Empirical NTK/NNGP statistics over ``samples`` random initialisations (see module docstring).

    ``activation``: an :class:`~ntksym.activation.Activation`, a catalogue name or expression
    (with ``params``), or a ``(phi, dphi)`` pair of NumPy callables.  ``X``: ``(n, d)`` inputs.
    ``parameterization``: ``'ntk'`` (default, neural-tangents) or ``'standard'``
    (``W ~ N(0, σ_w²/fan_in)``, ``b ~ N(0, σ_b²)``; biases are trainable even when σ_b = 0,
    as in Seleznova & Kutyniok's setup).  ``progress``: a bar on stderr.
    """
    depth, width, n_out, _ = emp._check_shape(depth, width, n_out)
    sigma_w = emp._check_sigma("sigma_w", sigma_w)
    sigma_b = emp._check_sigma("sigma_b", sigma_b)
    parameterization = emp._check_parameterization(parameterization)
    samples = emp._check_samples(samples)
    if backend not in BACKENDS:
        raise NtksymError(f"backend must be one of {BACKENDS}, got {backend!r}")
    X = emp._check_data("X", X)
    emp.check_mc_memory(X.shape[0], X.shape[1], depth, width, n_out)
    phi, dphi, exprs = resolve_activation(activation, params)
    children = _children(seed, samples)
    acc = _Accumulator(X.shape[0], X.shape[0], True)
    bar = Progress(samples, f"{backend} MC", enabled=bool(progress), stream=progress_stream)
    t0 = time.perf_counter()
    try:
        if backend == "numpy":
            dev = "cpu"
            for child in children:
                net = emp.sample_network(depth, width, X.shape[1], sigma_w, sigma_b, np.random.default_rng(child),
                                         n_out=n_out, parameterization=parameterization)
                g, k = emp._kernels(net, X, None, phi, dphi)
                acc.add(g, k)
                bar.update()
        else:
            dev = _run_torch(acc, bar, children, phi, dphi, exprs, X, depth, width, sigma_w, sigma_b, n_out,
                             parameterization, device)
    finally:
        bar.close()
    return acc.result(seed, backend, dev, time.perf_counter() - t0)


def _run_torch(acc, bar, children, phi_np, dphi_np, exprs, X, depth, width, sigma_w, sigma_b, n_out,
               parameterization, device):
    torch = _import_torch()
    dev = _torch_device(torch, device)
    phi, dphi = _torch_pair(torch, phi_np, dphi_np, exprs)
    Xt = torch.as_tensor(X, dtype=torch.float64, device=dev)
    sizes = [X.shape[1]] + [width] * depth + [n_out]
    if parameterization == "ntk":
        a, c = [sigma_w / math.sqrt(f) for f in sizes[:-1]], sigma_b
        wscale, bscale = [1.0] * len(sizes[:-1]), 1.0
    else:
        a, c = [1.0] * len(sizes[:-1]), 1.0
        wscale, bscale = [sigma_w / math.sqrt(f) for f in sizes[:-1]], sigma_b
    gen = torch.Generator(device=dev)
    for child in children:
        gen.manual_seed(int(child.generate_state(1, np.uint64)[0] >> np.uint64(1)))
        Ws = [torch.randn((fo, fi), generator=gen, dtype=torch.float64, device=dev) * s
              for fi, fo, s in zip(sizes[:-1], sizes[1:], wscale)]
        bs = [torch.randn((fo,), generator=gen, dtype=torch.float64, device=dev) * bscale for fo in sizes[1:]]
        g, k = _torch_kernels(Ws, bs, a, c, Xt, phi, dphi)
        if not (torch.isfinite(g).all() and torch.isfinite(k).all()):
            raise ActivationError(emp.OVERFLOW)
        acc.add(g.cpu().numpy(), k.cpu().numpy())
        bar.update()
    return dev
