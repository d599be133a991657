"""The Python API (``ntksym.kernel``) against the generated module, side by side (issue 13, item 4).

Depth-10 NNGP + NTK Gram matrices, σ = (1.5, 0.1), float64, n points in R^100, for the closed
forms erf, relu, gelu and sin, on two data sets:

* *general*: standard-normal rows (the module and the API both run the layer recursion);
* *unit-norm*: rows scaled to |x|²/d = 1 (the module uses its depth-independent angle table; the
  API uses a unit-norm table when one is hooked into it, else the recursion).

For each (activation, data, n): the median wall time over ``--repeat`` runs of

* ``api``: ``ntksym.kernel(act, X, depth=10, sigma_w=1.5, sigma_b=0.1)`` (after warm-up calls on
  5 rows, general and unit-norm, so compiling the closed forms, probing their trusted range and
  building a unit-norm table are not counted: they are done once per activation and network; the
  unit-norm warm-up time is printed);
* ``module``: ``load_module(derive(...)).kernels(X)`` (module built and imported before timing);

the ratio api/module (the issue's goal: ≤ 1.5), and the largest difference between the two results
relative to max|K| (a sanity check: both are float64 evaluations of the same recursion).  With
``--old``, also the issue-12 fold (tests/fold_reference.py: the whole-matrix layer recursion this
API used before issue 13) on the same closed-form kernels, timed in the same run (``--old-repeat``
runs, median), and its ratio to the module: the before/after of the panel fold.

    python benchmarks/api_speed.py                    # n = 1000 and 4000, 3 repeats
    python benchmarks/api_speed.py --n 1000 --repeat 1
    python benchmarks/api_speed.py --acts erf relu --data general
    python benchmarks/api_speed.py --old --old-repeat 1      # with the issue-12 fold for comparison
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ntksym  # noqa: E402
from ntksym.codegen import load_module  # noqa: E402

DEPTH, SIGMA_W, SIGMA_B, DIM = 10, 1.5, 0.1, 100


def data(kind: str, n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM))
    if kind == "unit-norm":
        x *= np.sqrt(DIM) / np.linalg.norm(x, axis=1, keepdims=True)
    return x


def median_time(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--acts", nargs="+", default=["erf", "relu", "gelu", "sin"])
    ap.add_argument("--data", nargs="+", default=["general", "unit-norm"], choices=["general", "unit-norm"])
    ap.add_argument("--old", action="store_true", help="also time the issue-12 fold (tests/fold_reference.py)")
    ap.add_argument("--old-repeat", type=int, default=1)
    args = ap.parse_args(argv)
    kw = dict(depth=DEPTH, sigma_w=SIGMA_W, sigma_b=SIGMA_B)
    old_eval = None
    if args.old:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from fold_reference import evaluate as old_eval  # noqa: E402
        from ntksym.kernels import kernel_functions  # noqa: E402
        from ntksym.network import Network  # noqa: E402
    print(f"depth {DEPTH}, sigma = ({SIGMA_W}, {SIGMA_B}), d = {DIM}, float64, median of {args.repeat}"
          + (f" (issue-12 fold: {args.old_repeat})" if args.old else ""))
    print(f"{'activation':10} {'data':10} {'n':>5} {'api s':>8} {'module s':>9} {'api/module':>10} {'max diff':>9}"
          + (f" {'issue-12 s':>10} {'issue-12/module':>15}" if args.old else ""))
    for act in args.acts:
        mod = load_module(ntksym.derive(act, **kw))
        ntksym.kernel(act, data("general", 5), **kw)          # compile + probe once (cached per activation)
        if "unit-norm" in args.data:                           # a unit-norm table, if the API builds one
            t0 = time.perf_counter()
            ntksym.kernel(act, data("unit-norm", 5), **kw)
            print(f"{act}: first unit-norm call (5 rows) {time.perf_counter() - t0:.2f} s", flush=True)
        if old_eval is not None:
            d = ntksym.derive(act, **kw)
            fns = kernel_functions(d.activation, d.dual)[0]
            net = Network(DEPTH, SIGMA_W, SIGMA_B)
        for kind in args.data:
            for n in args.n:
                x = data(kind, n)
                t_api, (s_a, t_a) = median_time(lambda: ntksym.kernel(act, x, **kw), args.repeat)
                t_mod, (s_m, t_m) = median_time(lambda: mod.kernels(x), args.repeat)
                diff = max(float(np.max(np.abs(s_a - s_m)) / np.max(np.abs(s_m))),
                           float(np.max(np.abs(t_a - t_m)) / np.max(np.abs(t_m))))
                line = f"{act:10} {kind:10} {n:5d} {t_api:8.3f} {t_mod:9.3f} {t_api / t_mod:10.2f} {diff:9.1e}"
                del s_a, t_a, s_m, t_m
                if old_eval is not None:
                    t_old, _ = median_time(lambda: old_eval(fns, net, x), args.old_repeat)
                    line += f" {t_old:10.3f} {t_old / t_mod:15.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
