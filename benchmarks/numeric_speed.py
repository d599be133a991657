"""Activations without a textbook closed form, side by side with erf (issue 13, item 5).

Depth-10 NNGP + NTK Gram matrices, σ_w = 1.5, σ_b = 0.1, float64, n points in R^d (default
n = 4000, d = 100) for tanh, SiLU, mish, softplus, ELU, SELU and erf (the closed-form baseline),
on *unit-norm* rows (|x|²/d = 1) and on *general* rows (standard normal; row 1 repeats row 0, row 2 is −row 0).
Methods, all in one run:

* ``module``: ``load_module(derive(...)).kernels(X)`` — the module ``ntksym codegen`` writes
  (build + load time reported separately in the route list);
* ``api``: ``Derivation.kernel(X)`` on the same Derivation;
* ``oneshot``: ``ntksym.kernel(act, X, ...)``, which includes any per-call build;
* ``gh-naive``: a plain NumPy recursion with a 2-D tensor Gauss–Hermite rule of degree
  ``--gh-deg`` per entry (chunked), at n = ``--gh-n`` (default 64: it costs n²·deg² per layer,
  10 s at n = 100 and 17 s at n = 200 on a busy 2-core machine, so n = 4000 would take hours);
* ``nt-deg25``, ``nt-deg50``: neural-tangents ``stax.ElementwiseNumerical(fn, deg)`` at
  n = ``--nt-n`` (default 500), when ``neural_tangents`` is importable (run the script with a Python that
  has it, e.g. a venv with ``pip install neural-tangents`` and ntksym; neural-tangents 0.6.5 needs
  jax 0.4.35 and tf2jax 0.3.6).

Per case: the median wall time over ``--repeat`` runs, after one untimed warm-up call (module and api
on 16 rows: lazily built tables; nt: XLA compilation for the input's shape, not run; none for oneshot and gh-naive);
the ratio to the erf generated module of the same data kind *at the same n* (the modules are also
timed at the gh-naive and nt sizes); the peak memory traced by tracemalloc in a separate run (NumPy
buffers; XLA's buffers are not traced: nt rows say "n/a"); and the error against an independent
reference on 20 sampled entries (3 diagonal, a repeated row pair, an antipodal pair, 15 random pairs;
all within the first min(n, gh-n, nt-n) rows, so that every method is checked at the same entries):
max |ΔK/K| (elementwise relative) and max |ΔK| / max|K| (relative to the largest entry), max over
NNGP and NTK.

The goals of the issue become PASS/FAIL columns:

* speed: ``module`` rows ≤ 3× (general) / ≤ 1.5× (unit-norm) the erf module; ``api`` and ``oneshot``
  rows ≤ 1.5× the module of the same activation and data; ``nt-deg25`` rows: the ntksym module at
  the same n is faster than neural-tangents;
* accuracy: general data max relative error ≤ 1e-10; unit-norm data max error ≤ 1e-12 of max|K|;
  ``nt-deg25`` rows: the ntksym module is ≥ 10⁶× more accurate (max|ΔK|/max|K|) than nt.

The reference (:func:`reference`) shares no code with ntksym: the recursion (DESIGN.md §2) runs in
30-digit mpmath on the exact Gram of the float rows; the dual kernels E[φ(u)φ(v)], E[φ'(u)φ'(v)] are
erf's closed form (Williams 1997, in mpmath) or, for the others, a float64 2-D composite
Gauss–Legendre rule in whitened coordinates (u = √q1 z1, v = b·(z2 − z2*)), panels split at the kinks
u = 0, v = 0 and graded geometrically towards them down to the activation's scale, window |z| ≤ 10
(tail < 1e-21).  Every integral is done with 16 and 12 nodes per panel; the largest |Q16 − Q12|
relative to the integrand's Cauchy–Schwarz scale is reported as a (conservative) error estimate of
the 16-node values (measured 1e-16 to 3e-16: float64 rounding).  tests/test_benchmarks_smoke.py
checks it against ntksym's closed forms for erf and ReLU (kinked) and against Monte Carlo for SELU.

    python benchmarks/numeric_speed.py                              # the issue's run (slow)
    python benchmarks/numeric_speed.py --quick                      # n = 200, depth 3, 1 repeat
    python benchmarks/numeric_speed.py --n 1000 --repeat 1          # ≈ 15 min on 2 busy cores
    python benchmarks/numeric_speed.py --acts tanh,erf --kinds unit --n 1000 --json out.json

A case that raises or runs past ``--case-timeout`` seconds is reported as such and the run goes on.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import signal
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import mpmath
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ntksym  # noqa: E402
from ntksym.codegen import load_module  # noqa: E402

ACTS = ("tanh", "silu", "mish", "softplus", "elu", "selu", "erf")
KINDS = ("unit", "general")
SIGMA_W, SIGMA_B = 1.5, 0.1
BASELINE = "erf"
REF_DPS = 30
GOALS = {"general": {"speed": 3.0, "acc": 1e-10, "acc_kind": "relative"},
         "unit": {"speed": 1.5, "acc": 1e-12, "acc_kind": "of max|K|"},
         "api": 1.5, "nt_accuracy_factor": 1e6}

# ------------------------------------------------------------------ activations in float64 (stable forms)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


def _sigmoid(v):
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(v):
    return np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v)))


def _sech2(v):
    """1/cosh² v = 4e/(1 + e)², e = e^{−2|v|} (no overflow, no cancellation)."""
    e = np.exp(-2.0 * np.abs(v))
    return 4.0 * e / (1.0 + e) ** 2


def _erf(v):
    from scipy.special import erf
    return erf(v)


def _elu(alpha, lam=1.0):
    def phi(v):
        return lam * np.where(v > 0, v, alpha * np.expm1(np.minimum(v, 0.0)))

    def dphi(v):
        return lam * np.where(v > 0, 1.0, alpha * np.exp(np.minimum(v, 0.0)))
    return phi, dphi


def _mish_d(v):
    sp_ = _softplus(v)
    return np.tanh(sp_) + v * _sech2(sp_) * _sigmoid(v)


#: name -> (φ, φ') on float64 arrays, written from the definitions (checked against ntksym's
#: catalogue expressions in tests/test_benchmarks_smoke.py).  The derivative is the a.e. one.
PHI = {
    "tanh": (np.tanh, _sech2),
    "silu": (lambda v: v * _sigmoid(v), lambda v: _sigmoid(v) * (1.0 + v * _sigmoid(-v))),
    "mish": (lambda v: v * np.tanh(_softplus(v)), _mish_d),
    "softplus": (_softplus, _sigmoid),
    "elu": _elu(1.0),
    "selu": _elu(SELU_ALPHA, SELU_LAMBDA),
    "erf": (_erf, lambda v: 2.0 / math.sqrt(math.pi) * np.exp(-v * v)),
    "relu": (lambda v: np.maximum(v, 0.0), lambda v: (v > 0).astype(float)),
}
KINKED = ("elu", "selu", "relu")

# ------------------------------------------------------------------ the reference

_WINDOW = 10.0
_BASE_H = 0.5
_RULES = {k: np.polynomial.legendre.leggauss(k) for k in (12, 16)}
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _ends(center, scale: float) -> np.ndarray:
    """Panel ends on [−W, W]: a uniform grid of width 0.5, the point ``center`` and ±scale·2^k around it.
    ``center`` may be an array (one row of ends per center; clipped duplicates are kept as zero-width
    panels of weight 0, so that all rows have one length)."""
    scale = min(max(scale, 1e-12), _BASE_H)
    k = int(math.ceil(math.log2(2 * _WINDOW / scale))) + 1
    g = scale * 2.0 ** np.arange(k)
    offsets = np.concatenate([g, -g, [0.0]])
    center = np.asarray(center, dtype=float)
    base = np.arange(-_WINDOW, _WINDOW + 1e-9, _BASE_H)
    pts = np.concatenate([np.broadcast_to(base, center.shape + base.shape), center[..., None] + offsets], axis=-1)
    return np.sort(np.clip(pts, -_WINDOW, _WINDOW), axis=-1)


def _nodes(ends: np.ndarray, nodes: int):
    """Gauss–Legendre nodes and weights times the standard normal density on the given panels."""
    x, w = _RULES[nodes]
    lo, hi = ends[..., :-1], ends[..., 1:]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    z = (mid[..., None] + half[..., None] * x).reshape(*ends.shape[:-1], -1)
    wz = (half[..., None] * w).reshape(z.shape) * np.exp(-z * z / 2) * _INV_SQRT_2PI
    return z, wz


def _quad2(phi, dphi, s1: float, a: float, b: float, nodes: int):
    """(E φ(u)φ(v), E φ'(u)φ'(v)) with u = s1·z1, v = a·z1 + b·z2 by a product rule: outer panels graded
    towards z1 = 0 (u = 0, and where the inner kink sweeps past), inner ones towards z2* = −a z1/b (v = 0).
    b = 0: the 1-D integral E φ(s1 z)φ(a z)."""
    s_out = min(1.0, 1.0 / s1 if s1 > 0 else 1.0, b / abs(a) if a != 0 and b > 0 else 1.0) / 4
    z1, w1 = _nodes(_ends(0.0, s_out), nodes)
    u = s1 * z1
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if b == 0.0:
            v = a * z1
            return tuple(float(np.dot(w1, f(u) * f(v))) for f in (phi, dphi))
        zstar = -(a / b) * z1
        s_in = min(1.0, 1.0 / b) / 4
        ends = _ends(zstar, s_in)
        z2, w2 = _nodes(ends, nodes)
        v = b * (z2 - zstar[:, None])
        out = []
        for f in (phi, dphi):
            inner = np.sum(w2 * f(v), axis=1)
            out.append(float(np.dot(w1, f(u) * inner)))
        return tuple(out)


class QuadratureDual:
    """(q1, q2, c) in mpmath -> (Σ̂, Σ̇) in mpmath by :func:`_quad2` (16 nodes per panel), recording the
    largest |Q16 − Q12| relative to the Cauchy–Schwarz scale √(E f(u)² E f(v)²) seen."""

    def __init__(self, name: str):
        self.phi, self.dphi = PHI[name]
        self.est = 0.0
        self._diag = {}

    def diag(self, q):
        key = float(q)
        if key not in self._diag:
            s = math.sqrt(key)
            self._diag[key] = _quad2(self.phi, self.dphi, s, s, 0.0, 16)
        return self._diag[key]

    def __call__(self, q1, q2, c):
        with mpmath.workdps(REF_DPS):
            s1 = mpmath.sqrt(q1)
            a = c / s1
            b = mpmath.sqrt(max(q1 * q2 - c * c, 0) / q1)     # no cancellation in q2 − a²
        s1, a, b = float(s1), float(a), float(b)
        if b == 0.0 and q1 == q2 and a == s1:              # a repeated point: E φ(u)², E φ'(u)²
            fine = coarse = self.diag(q1)
        else:                                               # (b = 0 with a = −s1: an antipodal pair, 1-D)
            fine = _quad2(self.phi, self.dphi, s1, a, b, 16)
            coarse = _quad2(self.phi, self.dphi, s1, a, b, 12)
        scale = [math.sqrt(abs(x * y)) for x, y in zip(self.diag(q1), self.diag(q2))]
        for f, g, sc in zip(fine, coarse, scale):
            if sc > 0:
                self.est = max(self.est, abs(f - g) / sc)
        return mpmath.mpf(fine[0]), mpmath.mpf(fine[1])


def _erf_closed(q1, q2, c):
    """erf: Σ̂ = (2/π) asin(2c/√((1+2q1)(1+2q2))), Σ̇ = (4/π)/√(1 + 2(q1+q2) + 4(q1q2 − c²))
    (Williams 1997; the second form of the determinant has no cancellation)."""
    d1, d2 = 1 + 2 * q1, 1 + 2 * q2
    khat = 2 / mpmath.pi * mpmath.asin(max(min(2 * c / mpmath.sqrt(d1 * d2), 1), -1))
    return khat, 4 / mpmath.pi / mpmath.sqrt(1 + 2 * (q1 + q2) + 4 * max(q1 * q2 - c * c, 0))


def reference(name: str, x, pairs, depth: int, sigma_w: float = SIGMA_W, sigma_b: float = SIGMA_B,
              route: str = "auto"):
    """(nngp, ntk, est): the depth-``depth`` NNGP and NTK at the entries ``pairs`` of the rows ``x``, as
    float arrays, by the recursion in 30-digit mpmath; ``est`` is the quadrature's error estimate (0 for
    closed forms).  ``route``: "closed" (erf only), "quadrature", or "auto" (closed for erf)."""
    x = np.asarray(x, dtype=float)
    d = x.shape[1]
    if route == "auto":
        route = "closed" if name == "erf" else "quadrature"
    if route == "closed" and name != "erf":
        raise ValueError(f"no closed form here for {name}")
    quad = QuadratureDual(name) if route == "quadrature" else None
    rows = sorted({i for p in pairs for i in p})
    with mpmath.workdps(REF_DPS):
        sw2, sb2 = mpmath.mpf(sigma_w) ** 2, mpmath.mpf(sigma_b) ** 2
        with mpmath.workprec(400):       # the Gram of the float rows, exactly
            vec = {i: [mpmath.mpf(float(t)) for t in x[i]] for i in rows}
            dot = {}
            for i, j in {(min(p), max(p)) for p in pairs} | {(i, i) for i in rows}:
                dot[i, j] = mpmath.fsum(s * t for s, t in zip(vec[i], vec[j]))
        q = {i: +(sw2 * dot[i, i] / d + sb2) for i in rows}
        sig = {k: +(sw2 * v / d + sb2) for k, v in dot.items()}
        theta = dict(sig)
        for _ in range(depth):
            new_sig, new_theta = {}, {}
            for (i, j), c in sig.items():
                if i == j or (route == "quadrature" and c == q[i] == q[j]):
                    kh, kd = (quad.diag(q[i]) if quad else _erf_closed(q[i], q[i], q[i]))
                    kh, kd = mpmath.mpf(kh), mpmath.mpf(kd)
                else:
                    kh, kd = quad(q[i], q[j], c) if quad else _erf_closed(q[i], q[j], c)
                new_sig[i, j] = sw2 * kh + sb2
                new_theta[i, j] = new_sig[i, j] + sw2 * kd * theta[i, j]
            sig, theta = new_sig, new_theta
            q = {i: sig[i, i] for i in rows}
        nngp = np.array([float(sig[min(p), max(p)]) for p in pairs])
        ntk = np.array([float(theta[min(p), max(p)]) for p in pairs])
    return nngp, ntk, (quad.est if quad else 0.0)


# ------------------------------------------------------------------ naive Gauss–Hermite recursion

def gh_naive(name: str, x, depth: int, deg: int, sigma_w: float = SIGMA_W, sigma_b: float = SIGMA_B,
             chunk_bytes: int = 64 * 2**20):
    """The straightforward NumPy recursion: per entry, Σ̂ and Σ̇ by a deg×deg tensor Gauss–Hermite rule
    in u = √q1 z1, v = a z1 + b z2 (probabilists' nodes), rows in chunks of ≈ ``chunk_bytes``."""
    phi, dphi = PHI[name]
    z, w = np.polynomial.hermite_e.hermegauss(deg)
    w = w / math.sqrt(2 * math.pi)
    ww = np.outer(w, w)
    n, d = x.shape
    sw2, sb2 = sigma_w ** 2, sigma_b ** 2
    g = x @ x.T / d
    q = sw2 * np.diag(g).copy() + sb2
    s = sw2 * g + sb2
    t = s.copy()
    rows = max(1, chunk_bytes // (8 * n * deg * deg))
    for _ in range(depth):
        ns, nt = np.empty_like(s), np.empty_like(t)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            sq1 = np.sqrt(q[lo:hi])[:, None]
            c = np.clip(s[lo:hi], -sq1 * np.sqrt(q)[None, :], sq1 * np.sqrt(q)[None, :])
            a = c / sq1
            b = np.sqrt(np.maximum(q[None, :] - a * a, 0.0))
            u = sq1[:, :, None] * z                                             # (r, 1, m)
            v = a[..., None, None] * z[:, None] + b[..., None, None] * z[None, :]   # (r, n, m, m)
            for f, out in ((phi, ns), (dphi, nt)):
                out[lo:hi] = np.einsum("rnij,ij,ri->rn", f(v), ww, f(u)[:, 0, :], optimize=True)
        s_new = sw2 * ns + sb2
        t = s_new + sw2 * nt * t
        s = s_new
        q = np.diag(s).copy()
    return s, t


# ------------------------------------------------------------------ neural-tangents

def nt_function(name: str, deg: int, depth: int):
    """(x -> (nngp, ntk)) by neural-tangents' ElementwiseNumerical, or None when it is not importable."""
    import os
    import warnings
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")          # TensorFlow/XLA start-up chatter
    warnings.filterwarnings("ignore", message="(Numerical Activation Layer|Using JAX autodiff)")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from jax.scipy.special import erf as jerf
        from neural_tangents import stax
    except Exception:  # noqa: BLE001 - optional peer
        return None

    def softplus(v):
        return jnp.logaddexp(v, 0.0)
    fns = {"tanh": jnp.tanh, "silu": lambda v: v * jax.nn.sigmoid(v), "mish": lambda v: v * jnp.tanh(softplus(v)),
           "softplus": softplus, "elu": lambda v: jnp.where(v > 0, v, jnp.expm1(jnp.minimum(v, 0.0))),
           "selu": lambda v: SELU_LAMBDA * jnp.where(v > 0, v, SELU_ALPHA * jnp.expm1(jnp.minimum(v, 0.0))),
           "erf": jerf}
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(1, W_std=SIGMA_W, b_std=SIGMA_B), stax.ElementwiseNumerical(fns[name], deg=deg)]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=SIGMA_W, b_std=SIGMA_B))
    jitted = jax.jit(kernel_fn, static_argnames="get")
    compiled = {}

    def prepare(x):
        """Compile for this input shape without running it (the untimed warm-up)."""
        x = jnp.asarray(x)
        if x.shape not in compiled:
            compiled[x.shape] = jitted.lower(x, None, get=("nngp", "ntk")).compile()

    def run(x):
        x = jnp.asarray(x)
        prepare(x)
        k = compiled[x.shape](x, None)
        return np.asarray(k[0]), np.asarray(k[1])
    run.prepare = prepare
    return run


# ------------------------------------------------------------------ timing harness

class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in the code under test eats it."""


def _alarm(signum, frame):
    raise CaseTimeout()


class guard:
    """Run a block under a wall-clock limit (SIGALRM; checked between Python bytecodes)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        self.old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 0.001))
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)
        return False


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def peak_mib(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def errors(result, ref, pairs):
    """Per kernel: (max |ΔK|/max|K| over the sampled entries, max |ΔK/K_ref|)."""
    i, j = np.array(pairs).T
    out = []
    for k in range(2):
        full = np.asarray(result[k], dtype=float)
        got = full[i, j]
        scale = np.max(np.abs(full))
        diff = np.abs(got - ref[k])
        out.append((float(np.max(diff) / scale), float(np.max(diff / np.abs(ref[k])))))
    return out


def run_case(fn, repeat, memory, timeout, warmup=None):
    """dict with time/times/peak/result, or status 'timeout > …' / 'error: …'.  ``warmup`` (untimed, inside
    the time limit) is called first: JIT compilation, lazily built tables.  The tracemalloc run gets what
    is left of the limit; if it runs out, the timing stands and the peak is reported as missing."""
    t_start = time.perf_counter()
    try:
        with guard(timeout):
            if warmup is not None:
                warmup()
            med, times, res = timed(fn, repeat)
    except CaseTimeout:
        return {"status": f"timeout > {timeout:.0f} s", "elapsed_s": time.perf_counter() - t_start}
    except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
        return {"status": f"error: {type(exc).__name__}: {str(exc)[:160]}"}
    out = {"status": "ok", "time_s": med, "times_s": times, "result": res, "peak_mib": None}
    left = timeout - (time.perf_counter() - t_start)
    if memory and left > 0:
        try:
            with guard(left):
                out["peak_mib"] = peak_mib(fn)
        except CaseTimeout:
            out["peak_note"] = "tracemalloc run past the case limit"
        except Exception as exc:  # noqa: BLE001
            out["peak_note"] = f"tracemalloc run: {type(exc).__name__}"
    return out


# ------------------------------------------------------------------ main

def _fmt_t(rec):
    return f"{rec['time_s']:9.3f}" if rec.get("status") == "ok" else f"{'—':>9s}"


def _fmt_e(v):
    return f"{v:9.1e}" if v is not None else f"{'—':>9s}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--acts", default=",".join(ACTS), help="comma-separated (erf, the baseline, is always run)")
    p.add_argument("--kinds", default=",".join(KINDS), help="unit,general")
    p.add_argument("--methods", default="module,api,oneshot,gh-naive,nt",
                   help="comma-separated subset of module,api,oneshot,gh-naive,nt")
    p.add_argument("--gh-n", type=int, default=64, help="n for gh-naive (default 64)")
    p.add_argument("--nt-n", type=int, default=500, help="n for neural-tangents (default 500)")
    p.add_argument("--gh-deg", type=int, default=20, help="Gauss–Hermite degree per dimension of gh-naive")
    p.add_argument("--samples", type=int, default=15, help="random pairs checked against the reference")
    p.add_argument("--case-timeout", type=float, default=600.0, help="seconds per case (all its repeats)")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    p.add_argument("--quick", action="store_true", help="n = 200, depth 3, gh-n 50, nt-n 100, one repeat")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.depth, args.repeat, args.gh_n, args.nt_n = 200, 3, 1, 50, 100
    acts = [a for a in args.acts.split(",") if a]
    for a in acts:
        if a not in PHI:
            p.error(f"unknown activation {a!r} (choose from {', '.join(ACTS)})")
    if BASELINE not in acts:
        acts.append(BASELINE)
    acts.sort(key=lambda a: a != BASELINE)                     # the baseline first
    kinds = [k for k in args.kinds.split(",") if k]
    methods = [m for m in args.methods.split(",") if m]
    if not set(kinds) <= set(KINDS) or not set(methods) <= {"module", "api", "oneshot", "gh-naive", "nt"}:
        p.error("unknown --kinds or --methods entry")
    gh_n, nt_n = min(args.n, args.gh_n), min(args.n, args.nt_n)
    small = min(gh_n, nt_n)                                   # sampled entries lie in rows < small
    need = 7 + math.ceil(2 * args.samples ** 0.5)            # rows 3.. give (small − 3)(small − 4) ordered pairs
    if small < need:
        p.error(f"n, --gh-n and --nt-n must leave room for the sampled pairs: at least {need} rows")

    rng = np.random.default_rng(0)
    general = rng.normal(size=(args.n, args.d))
    general[1] = general[0]                                   # a repeated point
    general[2] = -general[0]                                  # an antipodal point (ρ = −1 at the input)
    unit = general / np.linalg.norm(general, axis=1, keepdims=True) * np.sqrt(args.d)
    data = {"unit": unit, "general": general}
    pairs = [(0, 0), (3, 3), (4, 4), (0, 1), (0, 2)]
    while len(pairs) < 5 + args.samples:
        i, j = (int(v) for v in rng.integers(3, small, 2))
        if i != j and (i, j) not in pairs:
            pairs.append((i, j))

    nt_ok = "nt" in methods and nt_function("erf", 25, 1) is not None
    print(f"n = {args.n}, d = {args.d}, depth = {args.depth}, σ = ({SIGMA_W}, {SIGMA_B}), float64, median of "
          f"{args.repeat}; gh-naive (degree {args.gh_deg}²) at n = {gh_n}, nt at n = {nt_n}; neural-tangents "
          f"{'available' if nt_ok else 'not importable: no nt rows'}; case timeout {args.case_timeout:.0f} s")
    print(f"errors on {len(pairs)} entries (3 diagonal, the repeated pair (0, 1), the antipodal pair (0, 2), "
          f"{len(pairs) - 5} random pairs, "
          f"rows < {small}) vs the 30-digit mpmath recursion (see the docstring); max over NNGP and NTK")

    records, routes, refs = [], {}, {}
    base_time = {}                                            # (kind, n) -> erf module time

    def record(act, kind, method, n, rec, ref=None):
        row = {"act": act, "kind": kind, "method": method, "n": n, "status": rec["status"],
               "time_s": rec.get("time_s"), "times_s": rec.get("times_s"), "peak_mib": rec.get("peak_mib"),
               "peak_note": rec.get("peak_note")}
        if rec["status"] == "ok" and ref is not None:
            err = errors(rec["result"], ref, pairs)
            row.update(nngp_err=err[0], ntk_err=err[1], err_scaled=max(err[0][0], err[1][0]),
                       err_rel=max(err[0][1], err[1][1]))
        records.append(row)
        return row

    interrupted = False
    try:                                                      # Ctrl-C: table of the cases so far
        for act in acts:
            info = {}
            try:
                with guard(args.case_timeout):
                    t0 = time.perf_counter()
                    d = ntksym.derive(act, args.depth, SIGMA_W, SIGMA_B)
                    t1 = time.perf_counter()
                    mod = load_module(d) if "module" in methods or "nt" in methods else None
                    info = {"derive_s": t1 - t0, "load_s": time.perf_counter() - t1, "api_route": d.kernel_route,
                            "module_route": getattr(mod, "ROUTE", None),
                            "module_accuracy": getattr(mod, "ACCURACY", None),
                            "module_table_panels": getattr(mod, "_PANELS", None)}
            except CaseTimeout:
                info = {"error": f"derive/load: timeout > {args.case_timeout:.0f} s"}
            except Exception as exc:  # noqa: BLE001
                info = {"error": f"derive/load: {type(exc).__name__}: {str(exc)[:200]}"}
            routes[act] = info
            print(f"\n{act}: " + (info["error"] if "error" in info else
                  f"derive {info['derive_s']:.2f} s, module build+load {info['load_s']:.2f} s\n"
                  f"    api route:    {str(info['api_route'])[:150]}\n"
                  f"    module route: {str(info['module_route'])[:150]}"), flush=True)
            for kind in kinds:
                x = data[kind]
                t0 = time.perf_counter()
                ref = reference(act, x, pairs, args.depth)
                refs[act, kind] = {"seconds": time.perf_counter() - t0, "quadrature_estimate": ref[2],
                                   "min_abs_entry": float(min(np.min(np.abs(ref[0])), np.min(np.abs(ref[1]))))}
                cases = []                                        # (method, n, timed call, untimed warm-up)
                w = x[:min(args.n, 16)]
                if "error" not in info:
                    if "module" in methods:
                        cases.append(("module", args.n, lambda x=x: mod.kernels(x), lambda w=w: mod.kernels(w)))
                    if "api" in methods:
                        cases.append(("api", args.n, lambda x=x: d.kernel(x), lambda w=w: d.kernel(w)))
                    if "oneshot" in methods:                      # no warm-up: each call builds anew
                        cases.append(("oneshot", args.n, lambda x=x, act=act: ntksym.kernel(
                            act, x, depth=args.depth, sigma_w=SIGMA_W, sigma_b=SIGMA_B), None))
                    sizes = ({gh_n} if "gh-naive" in methods else set()) | ({nt_n} if nt_ok else set())
                    for m in sorted(sizes):                       # the module at the gh-naive / nt sizes too
                        if m < args.n:
                            cases.append(("module", m, lambda x=x, m=m: mod.kernels(x[:m]), lambda w=w: mod.kernels(w)))
                if "gh-naive" in methods:
                    cases.append(("gh-naive", gh_n, lambda x=x: gh_naive(act, x[:gh_n], args.depth, args.gh_deg), None))
                if nt_ok:
                    for deg in (25, 50):
                        fn = nt_function(act, deg, args.depth)    # compiled for the input's shape first
                        cases.append((f"nt-deg{deg}", nt_n, lambda x=x, fn=fn: fn(x[:nt_n]),
                                      lambda x=x, fn=fn: fn.prepare(x[:nt_n])))
                for method, n, fn, warm in cases:
                    rec = run_case(fn, args.repeat, not args.no_memory and not method.startswith("nt"),
                                   args.case_timeout, warm)
                    row = record(act, kind, method, n, rec, ref)
                    if act == BASELINE and method == "module" and rec["status"] == "ok":
                        base_time[kind, n] = rec["time_s"]
                    del rec
                    gc.collect()
                    print(f"  {kind:7s} {method:9s} n={n:<5d} {row['status'] if row['status'] != 'ok' else ''}"
                          f"{_fmt_t(row)} s  err {_fmt_e(row.get('err_rel'))} rel "
                          f"{_fmt_e(row.get('err_scaled'))} of max",
                          flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the table below holds the cases finished so far", flush=True)

    # ratios and goals
    def find(act, kind, method, n):
        for r in records:
            if (r["act"], r["kind"], r["method"], r["n"]) == (act, kind, method, n) and r["status"] == "ok":
                return r
        return None

    for r in records:
        bt = base_time.get((r["kind"], r["n"]))
        r["ratio_erf"] = r["time_s"] / bt if r["status"] == "ok" and bt else None
        g = GOALS[r["kind"]]
        r["goal_speed"] = r["goal_accuracy"] = None
        if r["status"] != "ok":
            if r["method"] in ("module", "api", "oneshot") and r["n"] == args.n:
                r["goal_speed"] = r["goal_accuracy"] = "FAIL"
            continue
        if r["method"] in ("module", "api", "oneshot") and r["n"] == args.n:
            acc = r["err_rel"] if r["kind"] == "general" else r["err_scaled"]
            r["goal_accuracy"] = "PASS" if acc <= g["acc"] else "FAIL"
            if r["method"] == "module" and r["act"] != BASELINE and r["ratio_erf"] is not None:
                r["goal_speed"] = "PASS" if r["ratio_erf"] <= g["speed"] else "FAIL"
            elif r["method"] != "module":
                m = find(r["act"], r["kind"], "module", r["n"])
                r["ratio_module"] = r["time_s"] / m["time_s"] if m else None
                if m:
                    r["goal_speed"] = "PASS" if r["time_s"] <= GOALS["api"] * m["time_s"] else "FAIL"
        if r["method"] == "nt-deg25":
            m = find(r["act"], r["kind"], "module", r["n"])
            if m:
                r["goal_speed"] = "PASS" if m["time_s"] < r["time_s"] else "FAIL"
                r["goal_accuracy"] = ("PASS" if m["err_scaled"] * GOALS["nt_accuracy_factor"] <= r["err_scaled"]
                                      else "FAIL")

    print(f"\nTable: time = median wall seconds; ×erf = time / erf generated module, same data kind and n; "
          f"peak = tracemalloc MiB (separate run); err rel = max |ΔK/K|, err/max = max |ΔK| / max|K| on the "
          f"sampled entries; speed goal: module ≤ {GOALS['general']['speed']:g}× erf (general), "
          f"≤ {GOALS['unit']['speed']:g}× (unit); api/oneshot ≤ {GOALS['api']:g}× module; "
          f"nt-deg25: ntksym module "
          f"faster; accuracy goal: general err rel ≤ 1e-10, unit err/max ≤ 1e-12; nt-deg25: module ≥ 1e6× more "
          f"accurate.  Rows at n = {gh_n} / {nt_n} (gh-naive, nt-*, module) are NOT at n = {args.n}: compare them "
          f"with the module row at the same n.")
    hdr = (f"{'act':9s}{'kind':8s}{'method':10s}{'n':>6s}{'time s':>10s}{'×erf':>8s}{'peak MiB':>10s}"
           f"{'err rel':>10s}{'err/max':>10s}  {'speed':6s}{'acc':6s}")
    print(hdr)
    print("-" * len(hdr))
    for r in records:
        ok = r["status"] == "ok"
        peak = f"{r['peak_mib']:10.0f}" if ok and r["peak_mib"] is not None else f"{'n/a':>10s}"
        ratio = f"{r['ratio_erf']:8.2f}" if r.get("ratio_erf") is not None else f"{'—':>8s}"
        line = (f"{r['act']:9s}{r['kind']:8s}{r['method']:10s}{r['n']:6d}"
                + (f"{r['time_s']:10.3f}{ratio}{peak}{_fmt_e(r.get('err_rel')):>10s}{_fmt_e(r.get('err_scaled')):>10s}"
                   if ok else f"  {r['status'][:58]:58s}")
                + f"  {r['goal_speed'] or '':6s}{r['goal_accuracy'] or '':6s}")
        print(line)
    verdicts = [v for r in records for v in (r["goal_speed"], r["goal_accuracy"]) if v]
    failed = sorted({f"{r['act']}/{r['kind']}/{r['method']}" for r in records
                     if "FAIL" in (r["goal_speed"], r["goal_accuracy"])})
    print(f"\ngoals: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL"
          + (f" ({', '.join(failed)})" if failed else ""))
    print("reference: " + ", ".join(f"{a}/{k} {v['seconds']:.1f} s (quadrature est. {v['quadrature_estimate']:.0e})"
                                      for (a, k), v in refs.items()))
    if args.json:
        out = {"command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
               "config": {"n": args.n, "d": args.d, "depth": args.depth, "sigma_w": SIGMA_W, "sigma_b": SIGMA_B,
                          "repeat": args.repeat, "gh_n": gh_n, "nt_n": nt_n, "gh_deg": args.gh_deg,
                          "neural_tangents": nt_ok, "case_timeout_s": args.case_timeout, "pairs": pairs},
               "goals": GOALS, "routes": routes, "interrupted": interrupted,
               "reference": {f"{a}/{k}": v for (a, k), v in refs.items()},
               "cases": records}
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
