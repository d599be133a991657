"""Terminal and JSON views of a :class:`~ntksym.derivation.Derivation` (no computation here)."""
from __future__ import annotations

import json

import sympy as sp

from .gaussian.kform import K


def _pretty(e) -> str:
    return "(no closed form)" if e is None else sp.sstr(e)


def summary_dict(d) -> dict:
    net = d.network
    return {
        "activation": {"name": d.activation.name, "expr": sp.sstr(d.activation.expr),
                       "params": {n: sp.sstr(v) for n, v in d.activation.params}},
        "network": {"depth": net.depth, "sigma_w": net.sigma_w, "sigma_b": net.sigma_b,
                    "parameterization": net.parameterization, "width": net.width},
        "hermite": [{"k": c.k, "exact": None if c.exact is None else sp.sstr(c.exact),
                     "value": c.value_str(d.hermite.digits), "route": c.route} for c in d.hermite.coefficients],
        "hermite_closed_form_in_k": None if d.hermite.closed_form is None else
        {"formula": sp.sstr(d.hermite.closed_form), "valid_from_k": d.hermite.closed_form_from},
        "dual_kernels": {"khat": None if d.dual.khat is None else sp.sstr(d.dual.khat),
                         "kdot": None if d.dual.kdot is None else sp.sstr(d.dual.kdot),
                         "route_hat": d.dual.route_hat, "route_dot": d.dual.route_dot,
                         "kdot_distributional": d.dual.kdot_distributional},
        "numeric_kernel_route": d.kernel_route,
        "recursion": [{"layer": layer.index,
                       "equations": {sp.sstr(layer.symbols[k]): sp.sstr(v) for k, v in layer.equations.items()}}
                      for layer in d.recursion.layers],
        "timings_s": {name: round(t, 4) for name, t in d.timings},
    }


def summary_text(d, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(summary_dict(d), indent=2)
    act, net = d.activation, d.network
    lines = [f"Activation  {act}", f"Network     depth L = {net.depth}, sigma_w = {net.sigma_w:g}, "
             f"sigma_b = {net.sigma_b:g}, parameterization = {net.parameterization}"
             + (f", width = {net.width}" if net.width else ""),
             "Convention  neural-tangents stax: serial([Dense, phi] * L, Dense); NNGP = Sigma^(L), NTK = Theta^(L)",
             "", "Hermite coefficients mu_k = E[phi(Z) He_k(Z)/sqrt(k!)]"]
    for c in d.hermite.coefficients:
        exact = "" if c.exact is None else f"= {sp.sstr(c.exact)}"
        lines.append(f"  mu_{c.k:<2d} {c.value_str(d.hermite.digits):>24}  {exact}  [{c.route}]")
    if d.hermite.closed_form is not None:
        lines.append(f"  for k >= {d.hermite.closed_form_from}: mu_k = {sp.sstr(d.hermite.closed_form)}")
    lines += ["", "Dual kernels, (u, v) ~ N(0, [[q1, c], [c, q2]])",
              f"  E[phi(u)phi(v)]   = {_pretty(d.dual.khat)}", f"      [{d.dual.route_hat}]",
              f"  E[phi'(u)phi'(v)] = {_pretty(d.dual.kdot)}"
              + ("   (distributional: infinite at c = ±sqrt(q1 q2))" if d.dual.kdot_distributional else ""),
              f"      [{d.dual.route_dot}]",
              f"  numeric evaluation: {d.kernel_route}", "",
              "Recursion (per layer; symbols refer to the previous layer)"]
    for layer in d.recursion.layers:
        for key, eq in layer.equations.items():
            lines.append(f"  {sp.sstr(layer.symbols[key])} = {sp.sstr(eq)}")
    lines += ["", "Stage times: " + ", ".join(f"{n} {t:.2f} s" for n, t in d.timings)]
    return "\n".join(lines)
