"""``_repr_latex_`` bodies for Jupyter: ntksym objects render as LaTeX (MathJax) in notebooks.

The classes keep a one-line ``_repr_latex_`` that calls in here, so SymPy's and
our printers are imported only when a notebook asks.
"""
from __future__ import annotations

import mpmath

from .latex import escape_text, latex, number

TERMS = 8


def _display(lines: list[str]) -> str:
    return "$$\\begin{aligned}" + " \\\\ ".join(lines) + "\\end{aligned}$$"


def dual_kernels(dk) -> str:
    lines = []
    for sym, expr, route in ((r"\hat\Sigma(q_1, q_2, c)", dk.khat, dk.route_hat),
                             (r"\dot\Sigma(q_1, q_2, c)", dk.kdot, dk.route_dot)):
        body = latex(expr) if expr is not None else r"\text{(no closed form)}"
        lines.append(f"{sym} &= {body} && \\text{{{escape_text(route)}}}")
    return _display(lines)


def hermite_series(hs) -> str:
    lines = [f"\\mu_{{{c.k}}} &= {latex(c.exact) if c.exact is not None else number(mpmath.nstr(c.value, 15), 15)}"
             for c in hs.coefficients]
    if hs.closed_form is not None:
        lines.append(f"\\mu_k &= {latex(hs.closed_form)} \\quad (k \\ge {hs.closed_form_from})")
    return _display(lines)


def recursion(rec) -> str:
    return _display([f"{latex(layer.symbols[k])} &= {latex(v)}"
                     for layer in rec.layers for k, v in layer.equations.items()])


def power_series(ps) -> str:
    terms = " + ".join(f"{number(c, 8)}\\,\\rho^{{{p}}}" for p, c in enumerate(ps.ntk[:TERMS]))
    return f"$$\\Theta(\\rho) = {terms} + \\cdots \\quad (\\text{{{escape_text(ps.route)}}})$$"


def sphere_spectrum(s) -> str:
    terms = ", ".join(f"\\lambda_{{{k}}} = " + (r"\text{unresolved}" if text is None else number(text, max(n, 1)))
                      for k, (text, n) in enumerate(s.printed(8)[:TERMS]))   # certified digits only
    return f"$$\\text{{on }} S^{{{s.d - 1}}}:\\ {terms}, \\ldots$$"


def derivation(d) -> str:
    act = d.activation
    head = f"\\phi(x) &= {latex(act.concrete)} && \\text{{{escape_text(act.name)}}}"
    net = d.network
    netl = (f"L &= {net.depth},\\ \\sigma_w = {number(net.sigma_w, 10)},\\ \\sigma_b = {number(net.sigma_b, 10)}"
            f" && \\text{{{escape_text(net.parameterization)} parameterization}}")
    khat = latex(d.dual.khat) if d.dual.khat is not None else r"\text{(quadrature)}"
    kdot = latex(d.dual.kdot) if d.dual.kdot is not None else r"\text{(quadrature)}"
    last = d.recursion.layers[-1]
    rec = [f"{latex(last.symbols[k])} &= {latex(v)}" for k, v in last.equations.items() if k in ("Sigma_xy", "Theta_xy")]
    return _display([head, netl, f"\\hat\\Sigma &= {khat}", f"\\dot\\Sigma &= {kdot}", *rec])


def network(net) -> str:
    return (f"$L = {net.depth},\\ \\sigma_w = {number(net.sigma_w, 10)},\\ \\sigma_b = {number(net.sigma_b, 10)}"
            f"\\ (\\text{{{escape_text(net.parameterization)} parameterization}})$")


__all__ = ["dual_kernels", "hermite_series", "recursion", "power_series", "sphere_spectrum", "derivation", "network",
]
