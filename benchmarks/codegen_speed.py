"""Generated kernel code vs a hand-written NumPy recursion (issue 6, item 5).

Depth-10 ReLU (σ_w = √2, σ_b = 0.1) and erf (σ_w = 1.5, σ_b = 0.1) NNGP + NTK Gram
matrices on n points in R^d (default n = 4000, d = 100), float64, in one run:

* ``baseline``: the straightforward vectorised recursion over the n×n matrix
  (arccos / arcsin closed forms, clipped ratios), written by hand below;
* ``generated``: ``load_module(derive(...)).kernels(X)`` — the module that
  ``ntksym codegen`` writes;
* ``neural-tangents``: its jitted ``kernel_fn`` when neural_tangents is installed.

Two data sets: *unit-norm* rows (|x|²/d = 1: the kernel is a function of ρ alone,
and the generated code uses its depth-independent table) and *general* rows
(standard normal: the generated code runs its recursion).  Reported per case:
median wall time over ``--repeat`` runs, the ratio baseline/generated, the
error of each method against a 50-digit mpmath evaluation of the same recursion
on a sample of entries (the diagonal, repeated points and random pairs; relative
to max|K|, and elementwise), the max difference generated − baseline over the
whole matrix, and the peak traced memory (tracemalloc, a separate run).

    python benchmarks/codegen_speed.py            # n = 4000, 3 repeats
    python benchmarks/codegen_speed.py --quick    # n = 1000, 1 repeat
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ntksym  # noqa: E402
from ntksym.codegen import load_module  # noqa: E402

CASES = (("relu", 2 ** 0.5, 0.1), ("erf", 1.5, 0.1))
DEPTH = 10


def baseline_relu(x, depth, sw, sb):
    d = x.shape[1]
    sw2, sb2 = sw * sw, sb * sb
    g = x @ x.T / d
    q = sw2 * np.diag(g).copy() + sb2
    s = sw2 * g + sb2
    t = s.copy()
    for _ in range(depth):
        norm = np.sqrt(np.outer(q, q))
        c = np.clip(s / norm, -1.0, 1.0)
        theta = np.arccos(c)
        khat = norm * (np.sqrt(1.0 - c * c) + (np.pi - theta) * c) / (2 * np.pi)
        kdot = (np.pi - theta) / (2 * np.pi)
        s = sw2 * khat + sb2
        t = s + sw2 * kdot * t
        q = sw2 * q / 2 + sb2
    return s, t


def baseline_erf(x, depth, sw, sb):
    d = x.shape[1]
    sw2, sb2 = sw * sw, sb * sb
    g = x @ x.T / d
    q = sw2 * np.diag(g).copy() + sb2
    s = sw2 * g + sb2
    t = s.copy()
    for _ in range(depth):
        a = 1.0 + 2.0 * q
        prod = np.outer(a, a)
        khat = 2 / np.pi * np.arcsin(np.clip(2.0 * s / np.sqrt(prod), -1.0, 1.0))
        kdot = 4 / np.pi / np.sqrt(prod - 4.0 * s * s)
        s = sw2 * khat + sb2
        t = s + sw2 * kdot * t
        q = sw2 * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + sb2
    return s, t


BASELINES = {"relu": baseline_relu, "erf": baseline_erf}


def mp_entries(d, x, pairs, dps=50):
    """(Σ, Θ) at the given (i, j) pairs by the named layer equations of d.recursion in mpmath."""
    mods = [{"sqrt": lambda t: mpmath.sqrt(t) if t > 0 else mpmath.mpf(0),
             "asin": lambda t: mpmath.asin(max(-1, min(1, t)))}, "mpmath"]
    layers = [(layer.symbols, [(k, sorted(e.free_symbols, key=str)) for k, e in layer.equations.items()],
               {k: sp.lambdify(sorted(e.free_symbols, key=str), e, modules=mods) for k, e in layer.equations.items()})
              for layer in d.recursion.layers]
    out = []
    with mpmath.workdps(dps):
        for i, j in pairs:
            a = [mpmath.mpf(float(v)) for v in x[i]]
            b = [mpmath.mpf(float(v)) for v in x[j]]
            given = {"xx": mpmath.fdot(a, a), "yy": mpmath.fdot(b, b), "xy": mpmath.fdot(a, b),
                     "d": mpmath.mpf(len(a))}
            env = {}
            for symbols, eqs, fns in layers:
                for key, free in eqs:
                    env[symbols[key]] = fns[key](*[env[s] if s in env else given[str(s)] for s in free])
            last = layers[-1][0]
            out.append((float(env[last["Sigma_xy"]]), float(env[last["Theta_xy"]])))
    return np.array(out).T


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def peak_mib(fn):
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def errors(result, ref, pairs):
    i, j = np.array(pairs).T
    out = []
    for k in range(2):
        got = result[k][i, j]
        scale = np.max(np.abs(result[k]))
        out.append((np.max(np.abs(got - ref[k])) / scale, np.max(np.abs(got - ref[k]) / np.abs(ref[k]))))
    return out


def neural_tangents_fn(name, sw, sb):
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        from neural_tangents import stax
    except Exception:  # noqa: BLE001 - optional peer
        return None
    act = {"relu": stax.Relu, "erf": stax.Erf}[name]
    layers = []
    for _ in range(DEPTH):
        layers += [stax.Dense(1, W_std=sw, b_std=sb), act()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=sw, b_std=sb))
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")

    def run(x):
        k = kernel_fn(x, None, ("nngp", "ntk"))
        return np.asarray(k[0]), np.asarray(k[1])
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="n = 1000, one repeat")
    p.add_argument("--samples", type=int, default=200, help="random entries checked against mpmath")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 1000, 1
    rng = np.random.default_rng(0)
    general = rng.normal(size=(args.n, args.d))
    general[1] = general[0]                                   # a repeated point
    unit = general / np.linalg.norm(general, axis=1, keepdims=True) * np.sqrt(args.d)
    pairs = [(k, k) for k in range(5)] + [(0, 1), (1, 0)] + \
        [tuple(rng.integers(0, args.n, 2)) for _ in range(args.samples)]
    print(f"n = {args.n}, d = {args.d}, depth = {DEPTH}, float64, median of {args.repeat}; errors vs 50-digit "
          f"mpmath on {len(pairs)} entries (diagonal, a repeated point, random pairs): max|ΔK|/max|K|, "
          f"max elementwise |ΔK/K|")
    for name, sw, sb in CASES:
        d = ntksym.derive(name, DEPTH, sw, sb)
        t0 = time.perf_counter()
        mod = load_module(d)
        build = time.perf_counter() - t0
        print(f"\n{name}: σ_w = {sw:.6g}, σ_b = {sb}; module built/loaded in {build:.2f} s; table: "
              f"{'%d panels' % mod._PANELS if mod._TABLE is not None else 'none'}")
        nt = neural_tangents_fn(name, sw, sb)
        for label, x in (("unit-norm", unit), ("general", general)):
            ref = mp_entries(d, x, pairs)
            methods = {"baseline": lambda: BASELINES[name](x, DEPTH, sw, sb), "generated": lambda: mod.kernels(x)}
            if nt is not None:
                methods["neural-tangents"] = lambda: nt(x)
            results = {}
            for m, fn in methods.items():
                med, res = timed(fn, args.repeat)
                results[m] = (med, res, peak_mib(fn), errors(res, ref, pairs))
            base_t, base_res = results["baseline"][0], results["baseline"][1]
            gen_res = results["generated"][1]
            diff = [np.max(np.abs(gen_res[k] - base_res[k])) / np.max(np.abs(base_res[k])) for k in range(2)]
            print(f"  {label} data (generated − baseline over the whole matrix: NNGP {diff[0]:.1e}, NTK {diff[1]:.1e})")
            for m, (med, _, peak, err) in results.items():
                print(f"    {m:16s} {med:8.3f} s  ×{base_t / med:5.2f} vs baseline  peak {peak:7.0f} MiB  "
                      f"NNGP err {err[0][0]:.1e} / {err[0][1]:.1e}   NTK err {err[1][0]:.1e} / {err[1][1]:.1e}")
            del results, methods
            gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
