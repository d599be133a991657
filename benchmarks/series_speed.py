"""Speed of the power-series routes, side by side with a straightforward baseline.

    python benchmarks/series_speed.py [--repeat 3]

* Goal: depth 50, order 10⁴, float64, ≤ 1 s (ReLU and erf, closed forms; tanh
  uses the Hermite-series maps).
* Baseline: truncated power-series arithmetic with direct convolutions and the
  layer maps applied by Horner's rule to their Hermite series
  (``ntksym.series.series_direct``, O(L·K·P²)), timed at equal depth and
  order on smaller P (it is cubic), printed with the ratio, and the agreement
  of the two routes.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import ntksym
from ntksym.series import DotProductNetwork, series_direct, series_fft


def median(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    r = argparse.ArgumentParser()
    r.add_argument("--repeat", type=int, default=3)
    repeat = r.parse_args().repeat
    print("goal: depth 50, order 10^4, float64, <= 1 s")
    for name in ("relu", "erf", "tanh"):
        act = ntksym.activation(name)
        dual = ntksym.dual_kernels(act)
        net = DotProductNetwork(50, 1.0 if name != "relu" else 2 ** 0.5, 0.05)
        series_fft(act, dual, net, 100)  # warm-up: compile the closed forms once
        t, _ = median(lambda: series_fft(act, dual, net, 10_000), repeat)
        print(f"  {name:5s} fft route: median {t:.3f} s  ({'OK' if t <= 1 else 'MISSED'})")
    print("\nside by side, depth 5 (fft vs direct convolution baseline)")
    print(f"{'act':6s} {'P':>5s} {'fft (s)':>9s} {'direct (s)':>11s} {'ratio':>8s} {'max |diff| / Θ(1)':>18s}")
    for name in ("erf", "tanh"):
        act = ntksym.activation(name)
        dual = ntksym.dual_kernels(act)
        net = DotProductNetwork(5, 1.2, 0.1)
        for order in (100, 200, 400):
            tf, f = median(lambda: series_fft(act, dual, net, order), repeat)
            td, d = median(lambda: series_direct(act, dual, net, order), 1)
            diff = np.max(np.abs(np.array(f.ntk) - np.array(d.ntk))) / f.ntk_at_one
            print(f"{name:6s} {order:5d} {tf:9.4f} {td:11.3f} {td / tf:8.1f}x {diff:18.2e}")


if __name__ == "__main__":
    main()
