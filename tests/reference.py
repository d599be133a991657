"""Independent reference values by arbitrary-precision quadrature (mpmath).

These routes share no code with the engine: Hermite polynomials come from
mpmath's physicists' H_n (He_k(x) = 2^{−k/2} H_k(x/√2)), integrals from
mpmath's tanh-sinh ``quad``.  Bivariate expectations use polar coordinates
of the whitened pair, split on the rays where u = 0 or v = 0 so that kinks at 0
lie on panel edges.
"""
from __future__ import annotations

import mpmath

DPS = 20


def hermite_ref(fn, k: int, breakpoints=(), dps: int = DPS):
    with mpmath.workdps(dps + 10):
        pts = sorted({mpmath.mpf(0), *(mpmath.mpf(b) for b in breakpoints)})

        def integrand(t):
            he = mpmath.hermite(k, t / mpmath.sqrt(2)) / mpmath.sqrt(2) ** k
            return fn(t) * he * mpmath.npdf(t)
        val = mpmath.quad(integrand, [-mpmath.inf, *pts, mpmath.inf])
        return +(val / mpmath.sqrt(mpmath.factorial(k)))


def dual_ref_smooth(f, g, q1, q2, c, n: int = 80, dps: int = 25):
    """E[f(u) g(v)] for smooth (entire) f, g by an n×n Gauss–Hermite product
    rule with nodes computed by mpmath at ``dps`` digits (checked against n/2)."""
    with mpmath.workdps(dps):
        x, w = mpmath.gauss_quadrature(n, "hermite")
        q1, q2, c = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
        z = [mpmath.sqrt(2) * t for t in x]
        w = [t / mpmath.sqrt(mpmath.pi) for t in w]
        a = c / mpmath.sqrt(q1)
        b = mpmath.sqrt(max(q2 - a * a, 0))
        total = mpmath.mpf(0)
        for zi, wi in zip(z, w):
            fu = f(mpmath.sqrt(q1) * zi)
            total += wi * fu * mpmath.fsum(wj * g(a * zi + b * zj) for zj, wj in zip(z, w))
        return +total


def dual_ref(f, g, q1, q2, c, dps: int = DPS):
    """E[f(u) g(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]), kinks of f, g at 0."""
    with mpmath.workdps(dps + 5):
        q1, q2, c = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
        rho = c / mpmath.sqrt(q1 * q2)
        if abs(abs(rho) - 1) < mpmath.mpf(10) ** (-dps):
            s = mpmath.sign(rho) * mpmath.sqrt(q2 / q1)
            val = mpmath.quad(lambda z: f(mpmath.sqrt(q1) * z) * g(s * mpmath.sqrt(q1) * z) * mpmath.npdf(z),
                              [-mpmath.inf, 0, mpmath.inf])
            return +val
        a = rho * mpmath.sqrt(q2)
        b = mpmath.sqrt(q2 * (1 - rho**2))
        # u = √q1 r cos t; v = r (a cos t + b sin t): u = 0 at t = ±π/2, v = 0 at tan t = −a/b
        t0 = mpmath.atan2(-a, b)
        cuts = sorted({mpmath.mpf(-mpmath.pi / 2), mpmath.mpf(mpmath.pi / 2),
                       _wrap(t0), _wrap(t0 + mpmath.pi)})
        grid = [-mpmath.pi / 2] + [t for t in cuts if -mpmath.pi / 2 < t < 3 * mpmath.pi / 2] + [3 * mpmath.pi / 2]
        grid = sorted(set(grid + [mpmath.pi / 2]))

        def integrand(t, r):
            ct, st = mpmath.cos(t), mpmath.sin(t)
            return f(mpmath.sqrt(q1) * r * ct) * g(r * (a * ct + b * st)) * r * mpmath.exp(-r * r / 2)
        val = mpmath.quad(integrand, grid, [0, mpmath.inf]) / (2 * mpmath.pi)
        return +val


def _wrap(t):
    while t < -mpmath.pi / 2:
        t += 2 * mpmath.pi
    while t >= 3 * mpmath.pi / 2:
        t -= 2 * mpmath.pi
    return t
