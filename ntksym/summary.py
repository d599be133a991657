"""Terminal and JSON views of a :class:`~ntksym.derivation.Derivation` (no computation here)."""
from __future__ import annotations

import json

import sympy as sp

from .templating import render


def _json_int(v):
    """A SymPy Integer (``closed_form_in_k``'s start index) as a JSON int; other values as text."""
    if v is None or isinstance(v, int):
        return v
    return int(v) if getattr(v, "is_Integer", False) else sp.sstr(v)


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
        {"formula": sp.sstr(d.hermite.closed_form), "valid_from_k": _json_int(d.hermite.closed_form_from)},
        "dual_kernels": {"khat": None if d.dual.khat is None else sp.sstr(d.dual.khat),
                         "kdot": None if d.dual.kdot is None else sp.sstr(d.dual.kdot),
                         "route_hat": d.dual.route_hat, "route_dot": d.dual.route_dot,
                         "kdot_distributional": d.dual.kdot_distributional, "derivative": d.dual.derivative},
        "numeric_kernel_route": d.kernel_route,
        "recursion": [{"layer": layer.index,
                       "equations": {sp.sstr(layer.symbols[k]): sp.sstr(v) for k, v in layer.equations.items()}}
                      for layer in d.recursion.layers],
        "timings_s": {name: round(t, 4) for name, t in d.timings},
    }


def summary_text(d, as_json: bool = False) -> str:
    data = summary_dict(d)
    if as_json:
        return json.dumps(data, indent=2)
    return render("summary.txt.j2", activation=str(d.activation), net=data["network"], hermite=data["hermite"],
                  closed_form=data["hermite_closed_form_in_k"], dual=data["dual_kernels"],
                  numeric_route=data["numeric_kernel_route"], recursion=data["recursion"],
                  timings=data["timings_s"]).rstrip()
