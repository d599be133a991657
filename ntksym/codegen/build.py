"""The module builder: a Derivation -> the strings a template needs (no computing in the printer).

Stages (each a small function, each result a field of :class:`ModuleParts`):

1. ``dual_code``: Σ̂ and Σ̇ together, after :func:`ntksym.kernels.stable_form`
   (asin → atan2) and radicand snapping (:class:`ntksym.kernels.SafeSqrt`), with
   common subexpressions shared by :func:`sympy.cse`; or, for activations
   without a closed form and without kinks, a polar product quadrature
   written in array code (φ and φ' printed, nodes embedded as literals).
2. ``layer_code``: the input layer and one hidden layer of the *same* named
   recursion as :func:`ntksym.network.recursion` (built with Σ̂, Σ̇ left as
   named functions, then printed), plus the variance map q ↦ σ_w² Σ̂(q,q,q) + σ_b².
3. ``table``: the depth-independent panel table of the dot-product kernels
   (:mod:`ntksym.codegen.interpolant`), or None.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..derivation import Derivation
from ..errors import NtksymError
from ..gaussian.dual import C, Q1, Q2, DualKernels
from ..kernels import _SCALE, _estimate, _snap_radicands, stable_form
from ..network import recursion
from .interpolant import AngleTable, angle_table
from .printer import ArrayCodePrinter, print_assignments

N_ANGLE, N_RADIUS, R_MAX = 64, 64, 12.0
PRINTED_SPECIALLY = {"SafeSqrt", "Heaviside", "Max", "Min", "Piecewise"}   # see ArrayCodePrinter


@dataclass(frozen=True)
class ModuleParts:
    dual_code: str
    route: str
    accuracy: str
    phi_code: str | None
    dphi_code: str | None
    diag_code: str
    input_code: str
    hidden_code: str
    variance_code: str
    table: AngleTable | None
    quadrature: tuple | None      # (cos t, sin t, r, W) of the polar rule


def _printer(names=None):
    return ArrayCodePrinter(names or {Q1: "q1", Q2: "q2", C: "c", _SCALE: "scale"})


def _cse_block(exprs: list, outputs: list[str], names=None) -> str:
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), optimizations="basic")
    pr = _printer(names)
    return print_assignments(list(repl) + list(zip(outputs, reduced)), pr)


def dual_parts(d: Derivation):
    """(code, route, accuracy, quadrature) of ``dual(xp, q1, q2, c) -> (Σ̂, Σ̇)``."""
    dual = d.dual
    if dual.khat is not None and dual.kdot is not None:
        forms = [_snap_radicands(stable_form(e)) for e in (dual.khat, dual.kdot)]
        _check_printable(forms, d.activation.name)
        code = _cse_block(forms, ["khat", "kdot"])
        acc = ("closed form, atan2 angle and snapped radicands: a few ulps per layer "
               "(diagonal exact)")
        return code, f"closed form ({dual.route_hat})", acc, None
    act = d.activation
    if act.breakpoints:
        raise NtksymError(f"no closed-form dual kernel for {act.name} and it has kinks at "
                          f"{', '.join(map(str, act.breakpoints))}: the quadrature rule would converge "
                          "only algebraically there, so no code is generated (use ntksym.kernel instead)")
    phi, dphi = act.numpy_fn(), act.numpy_fn(derivative=True)
    err = _estimate(lambda *a: polar_rule(phi, dphi, *a, N_ANGLE, N_RADIUS),
                    lambda *a: polar_rule(phi, dphi, *a, 3 * N_ANGLE // 2, 3 * N_RADIUS // 2))
    route = (f"polar quadrature ({N_ANGLE}-point trapezoid in the angle × {N_RADIUS}-point Gauss–Legendre "
             f"in the radius on [0, {R_MAX:g}]; {dual.route_hat})")
    acc = (f"quadrature: estimated error {err:.0e} at unit variance ({N_ANGLE}×{N_RADIUS} nodes vs "
           f"{3 * N_ANGLE // 2}×{3 * N_RADIUS // 2})")
    return "    khat, kdot = _polar(xp, q1, q2, c)", route, acc, polar_nodes(N_ANGLE, N_RADIUS)


def polar_nodes(n_angle: int, n_radius: int, r_max: float = None):
    """(cos t_k, sin t_k, r_j, W_kj): E[g(u, v)] ≈ Σ_kj W_kj g(u_kj, v_kj) (see ``_polar`` in the template)."""
    r_max = R_MAX if r_max is None else r_max
    t = 2 * np.pi * np.arange(n_angle) / n_angle
    x, wx = np.polynomial.legendre.leggauss(n_radius)
    r = (x + 1) * r_max / 2
    wr = wx * r_max / 2 * r * np.exp(-r * r / 2)
    return np.cos(t), np.sin(t), r, np.outer(np.ones(n_angle) / n_angle, wr)


def polar_rule(phi, dphi, q1, q2, c, n_angle, n_radius):
    """NumPy version of the generated ``_polar`` (used only to estimate its error)."""
    ct, st, r, w = polar_nodes(n_angle, n_radius)
    q1, q2, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, c)))
    sa = np.sqrt(q1)
    a = c / np.where(sa > 0, sa, 1.0)
    b = np.sqrt(np.maximum(q2 - a * a, 0))
    u = (sa[..., None] * ct)[..., None] * r
    v = (a[..., None] * ct + b[..., None] * st)[..., None] * r
    return (w * phi(u) * phi(v)).sum((-1, -2)), (w * dphi(u) * dphi(v)).sum((-1, -2))


def _check_printable(exprs, name: str) -> None:
    """Refuse (NtksymError) a closed form with a function the array namespace does not provide."""
    from .printer import ARRAY_FUNCTIONS
    for e in exprs:
        for f in e.atoms(sp.Function):
            fname = type(f).__name__
            if fname not in ARRAY_FUNCTIONS and fname not in PRINTED_SPECIALLY:
                raise NtksymError(f"the dual kernel of {name} uses {fname}, which has no array-API form here")


def activation_code(d: Derivation) -> tuple[str | None, str | None]:
    """φ(x) and φ'(x) printed as array code (None where the printer has no array form)."""
    out = []
    x = d.activation.x
    for expr in (d.activation.concrete, d.activation.derivative):
        expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
        try:
            _check_printable([expr], d.activation.name)
            code = ArrayCodePrinter({x: "x"}).doprint(expr)
        except (NtksymError, NotImplementedError, TypeError):  # only the optional fn is lost
            code = None
        if code is not None and not expr.has(x):
            code = f"({code}) + 0.0*x"
        out.append(code)
    return out[0], out[1]


def layer_parts(d: Derivation):
    """(diagonal, input layer, hidden layer, variance map) code from the named recursion."""
    generic = recursion(DualKernels(None, None, "", ""), d.network)
    s0, s1 = generic.layers[0].symbols, generic.layers[1].symbols
    names = {s0["Sigma_xx"]: "q1", s0["Sigma_yy"]: "q2", s0["Sigma_xy"]: "sigma", s0["Theta_xy"]: "theta",
             s1["Sigma_xy"]: "sigma_next", s1["Sigmadot_xy"]: "sigmadot", s1["Theta_xy"]: "theta_next"}
    for n in ("xx", "yy", "xy", "d"):
        names[sp.Symbol(n, real=True)] = n
        names[sp.Symbol(n, positive=True)] = n
    khat_, kdot_, khat_q = sp.symbols("khat kdot khat_q")
    pr = ArrayCodePrinter(names)
    eq0 = generic.layers[0].equations
    input_code = "\n".join([f"    q1 = {pr.doprint(eq0['Sigma_xx'])}", f"    q2 = {pr.doprint(eq0['Sigma_yy'])}",
                            f"    sigma = {pr.doprint(eq0['Sigma_xy'])}", f"    theta = {pr.doprint(eq0['Theta_xy'])}"])
    eq1 = generic.layers[1].equations

    def sub(e):
        return e.replace(lambda t: isinstance(t, sp.Function) and type(t).__name__ == "Sigmahat",
                         lambda t: khat_q if len(set(t.args)) == 1 else khat_) \
                .replace(lambda t: isinstance(t, sp.Function) and type(t).__name__ == "Sigmadot", lambda t: kdot_)
    hidden = [f"    sigma_next = {pr.doprint(sub(eq1['Sigma_xy']))}", f"    sigmadot = {pr.doprint(sub(eq1['Sigmadot_xy']))}",
              f"    theta_next = {pr.doprint(sub(eq1['Theta_xy']))}"]
    variance = f"    return {pr.doprint(sub(eq1['Sigma_xx']))}"
    diag = d.dual.diagonal("khat")
    if diag is not None:
        q = sp.Symbol("q", positive=True)
        diag_code = _cse_block([diag], ["khat_q"], {q: "q"})
    else:
        diag_code = "    khat_q, _ = dual(xp, q, q, q)"
    variance = variance.replace("khat_q", "khat_diag(xp, q)")
    return diag_code, input_code, "\n".join(hidden), variance


def build_parts(d: Derivation) -> ModuleParts:
    """Every string and table the template needs, from the Derivation alone."""
    dual_code, route, acc, quad = dual_parts(d)
    phi_code, dphi_code = activation_code(d)
    if quad is not None and (phi_code is None or dphi_code is None):
        raise NtksymError(f"the activation {d.activation.name} has no array-code form for quadrature")
    diag_code, input_code, hidden_code, variance_code = layer_parts(d)
    table = angle_table(d) if quad is None else None
    return ModuleParts(dual_code, route, acc, phi_code, dphi_code, diag_code, input_code, hidden_code,
                       variance_code, table, quad)


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
