"""Derivation times of the Hermite engine, side by side with naive baselines.

    python benchmarks/derive_times.py [--repeat 5]

Rows (median wall time of --repeat runs, in-process after import):
  * erf, 20 exact coefficients: ntksym (integration by parts + exp-poly moments)
    vs brute-force ``sympy.integrate`` of φ·h_k·γ for the first 5 only (bounded
    at 60 s);
  * tanh, 20 coefficients at 30 digits: ntksym (shared-node Gauss–Legendre) vs
    one adaptive ``mpmath.quad`` per coefficient;
  * the CLI commands named in the issue goal, end to end in a subprocess
    (import included), against the 5 s goal.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import mpmath
import sympy as sp

import ntksym
from ntksym.bounded import time_limit
from ntksym.errors import DerivationTimeout


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def brute_force_erf(n=5, budget=60.0):
    x = sp.Symbol("x", real=True)
    t0 = time.perf_counter()
    try:
        with time_limit(budget, "sympy.integrate baseline"):
            for k in range(n):
                sp.integrate(sp.erf(x) * sp.hermite_prob(k, x) * sp.exp(-x**2 / 2), (x, -sp.oo, sp.oo))
    except DerivationTimeout:
        return float("inf")
    return time.perf_counter() - t0


def naive_tanh(order=20, digits=30):
    with mpmath.workdps(digits + 10):
        for k in range(order):
            mpmath.quad(lambda t: mpmath.tanh(t) * mpmath.hermite(k, t / mpmath.sqrt(2)) * mpmath.npdf(t),
                        [-mpmath.inf, 0, mpmath.inf])


def cli(args):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ntksym", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    r = ap.parse_args().repeat
    rows = []
    t_erf = median_time(lambda: ntksym.hermite("erf", 20), r)
    t_base = brute_force_erf()
    rows.append(("erf, 20 exact coeffs", t_erf, "sympy.integrate, 5 coeffs", t_base))
    t_tanh = median_time(lambda: ntksym.hermite("tanh", 20, digits=30), r)
    t_naive = median_time(naive_tanh, max(1, r // 2))
    rows.append(("tanh, 20 coeffs @30 digits", t_tanh, "mpmath.quad per coefficient", t_naive))
    print(f"{'task':30s} {'ntksym (s)':>11s}   {'baseline':30s} {'baseline (s)':>12s} {'ratio':>8s}")
    for task, ours, base_name, base in rows:
        print(f"{task:30s} {ours:11.3f}   {base_name:30s} {base:12.3f} {base / ours:8.1f}x")
    for args in (["hermite", "erf", "--order", "20"], ["hermite", "tanh", "--order", "20", "--digits", "30"]):
        t = statistics.median(cli(args) for _ in range(r))
        print(f"CLI: ntksym {' '.join(args):40s} median {t:.2f} s (goal < 5 s): {'OK' if t < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
