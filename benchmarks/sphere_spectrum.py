"""Time of ntksym.spectrum.sphere_eigenvalues next to a straightforward Γ-per-term sum.

    python benchmarks/sphere_spectrum.py [--kmax 1000] [--d 1000] [--P 2000] [--dps 30] [--budget 20]

Problem: λ_k = Σ_{p ≥ k, p−k even} c_p f(k, p) for k = 0..kmax with P random positive
decaying coefficients c_p = U(0,1)/(p+1)² (seed 0), at ``dps`` digits.

* ntksym: ratio recurrences in p and k, integer arithmetic (one run, after import);
* baseline: the literal series, with mpmath.gamma evaluated for every (k, p) term
  (Γ(d/2)/(2^k√π) · Γ(p+1)/Γ(p−k+1) · Γ((p−k+1)/2)/Γ((p+k+d)/2)).  It runs row by row
  until ``--budget`` seconds are used; its full time is extrapolated from the number
  of (k, p) terms done, and the rows it finished are compared with ntksym's values.
"""
from __future__ import annotations

import argparse
import random
import time

import mpmath

from ntksym.spectrum import sphere_eigenvalues


def baseline_rows(coeffs, d, kmax, dps, budget):
    """Literal Γ-per-term sum, rows k = 0, 1, ... until the time budget is spent."""
    P = len(coeffs)
    rows, terms = [], 0
    t0 = time.perf_counter()
    with mpmath.workdps(dps + 10):
        c = [mpmath.mpf(x) for x in coeffs]
        pre = mpmath.gamma(mpmath.mpf(d) / 2) / mpmath.sqrt(mpmath.pi)
        for k in range(kmax + 1):
            if time.perf_counter() - t0 > budget:
                break
            s = mpmath.mpf(0)
            for p in range(k, P, 2):
                s += c[p] * pre / mpmath.mpf(2) ** k * mpmath.gamma(p + 1) / mpmath.gamma(p - k + 1) \
                    * mpmath.gamma(mpmath.mpf(p - k + 1) / 2) / mpmath.gamma(mpmath.mpf(p + k + d) / 2)
                terms += 1
            rows.append(s)
    return rows, terms, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kmax", type=int, default=1000)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--P", type=int, default=2000)
    ap.add_argument("--dps", type=int, default=30)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds for the baseline")
    args = ap.parse_args(argv)

    rng = random.Random(0)
    coeffs = [rng.random() / (p + 1) ** 2 for p in range(args.P)]
    total_terms = sum(len(range(k, args.P, 2)) for k in range(args.kmax + 1))

    t0 = time.perf_counter()
    spec = sphere_eigenvalues(coeffs, args.d, args.kmax, dps=args.dps)
    t_fast = time.perf_counter() - t0

    rows, terms, t_base = baseline_rows(coeffs, args.d, args.kmax, args.dps, args.budget)
    t_base_full = t_base * total_terms / max(terms, 1)
    with mpmath.workdps(args.dps):
        worst = max((abs(a - b) / abs(b) for a, b in zip(spec.eigenvalues, rows) if b), default=0)

    print(f"problem: kmax={args.kmax}, d={args.d}, P={args.P}, dps={args.dps}; {total_terms} (k,p) terms")
    print(f"ntksym sphere_eigenvalues : {t_fast:8.3f} s")
    done = "all" if len(rows) == args.kmax + 1 else f"{len(rows)} of {args.kmax + 1}"
    print(f"gamma per term (baseline) : {t_base:8.3f} s for {done} rows ({terms} terms)"
          f" -> {t_base_full:8.1f} s extrapolated")
    print(f"ratio baseline/ntksym     : {t_base_full / t_fast:8.0f}x")
    print(f"max relative difference on the baseline rows: {mpmath.nstr(worst, 3)}")

    # end to end: coefficients at 30 digits (mpmath FFT route) + projection, for a deep-ish ReLU network
    from ntksym.derivation import sphere_spectrum
    for name in ("relu", "erf"):
        t0 = time.perf_counter()
        s = sphere_spectrum(name, 2, args.d, args.kmax, 1.2, 0.1, digits=args.dps)
        t_e2e = time.perf_counter() - t0
        resolved = max((k for k in range(len(s.eigenvalues)) if s.eigenvalues[k] > 1e6 * s.truncation[k]), default=-1)
        print(f"end to end ({name}, depth 2, {s.n_terms} coefficients at {args.dps} digits): {t_e2e:6.2f} s "
              f"(goal 5 s); eigenvalues resolved to >= 6 digits for k <= {resolved}")


if __name__ == "__main__":
    main()
