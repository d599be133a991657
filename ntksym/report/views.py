"""Pre-printed views of a :class:`~ntksym.report.analyses.ReportData` for the LaTeX templates.

Everything here is formatting: expressions through :func:`ntksym.report.latex.latex`,
user text through :func:`escape_text`, numbers through :func:`number`.  Nothing
is computed that the report data does not already hold.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ..gaussian.dual import DualKernels
from ..network import recursion as build_recursion
from .latex import escape_label, escape_text, latex, number

SERIES_ROWS = 12
MAX_LINE = 95  # characters of LaTeX source per displayed line of a long expression


def split_lines(expr, max_chars: int = MAX_LINE) -> list[str]:
    """LaTeX of ``expr`` broken at top-level + signs into lines of about ``max_chars``."""
    expr = sp.sympify(expr)
    terms = sp.Add.make_args(expr) if isinstance(expr, sp.Add) else (expr,)
    if len(terms) == 1:
        return [latex(expr)]
    lines, current = [], ""
    for i, term in enumerate(terms):
        text = latex(term)
        if i and not text.startswith("-"):
            text = "+ " + text
        if current and len(current) + len(text) > max_chars:
            lines.append(current)
            current = text
        else:
            current = f"{current} {text}".strip()
    lines.append(current)
    return lines


def _slug(d) -> str:
    return escape_label(d.activation.name if d.activation.source == "catalogue" else "activation")


def _mp(x, digits=12) -> str:
    if x is None:
        return "--"
    if x == mpmath.inf:
        return r"\infty"
    return number(mpmath.nstr(x, digits), digits)


def activation_view(d, title: str | None) -> dict:
    act = d.activation
    return {
        "title": escape_text(title if title is not None else act.name),
        "name": escape_text(act.name), "description": escape_text(act.description), "source": escape_text(act.source),
        "expr": split_lines(act.expr), "concrete": latex(act.concrete), "derivative": split_lines(act.derivative),
        "params": [(latex(sp.Symbol(n)), latex(v)) for n, v in act.params],
        "parity": act.parity or "neither", "breakpoints": ", ".join(number(b) for b in act.breakpoints) or "none",
    }


def network_view(d) -> dict:
    n = d.network
    return {"depth": n.depth, "sigma_w": number(n.sigma_w, 10), "sigma_b": number(n.sigma_b, 10),
            "parameterization": escape_text(n.parameterization), "width": n.width}


def hermite_view(d) -> dict:
    h = d.hermite
    rows = [{"k": c.k, "exact": None if c.exact is None else latex(c.exact),
             "value": number(mpmath.nstr(c.value, 15), 15), "route": escape_text(c.route)} for c in h.coefficients]
    form = None if h.closed_form is None else {"formula": latex(h.closed_form), "from": h.closed_form_from}
    return {"rows": rows, "closed_form": form, "digits": h.digits}


def dual_view(d) -> dict:
    dk = d.dual
    return {"khat": None if dk.khat is None else split_lines(dk.khat),
            "kdot": None if dk.kdot is None else split_lines(dk.kdot),
            "khat_diag": None if dk.khat is None else latex(dk.diagonal("khat")),
            "kdot_diag": None if dk.kdot is None else latex(dk.diagonal("kdot")),
            "route_hat": escape_text(dk.route_hat), "route_dot": escape_text(dk.route_dot),
            "distributional": dk.kdot_distributional, "numeric_route": escape_text(d.kernel_route)}


def recursion_view(d) -> list[dict]:
    """The per-layer recursion with Σ̂, Σ̇ as named functions (their closed forms are printed once)."""
    generic = build_recursion(DualKernels(None, None, "", ""), d.network, symbolic_sigmas=True)
    out = []
    for layer in generic.layers:
        eqs = [(latex(layer.symbols[k]), latex(v)) for k, v in layer.equations.items()]
        out.append({"index": layer.index, "equations": eqs})
    return out


def series_view(data) -> dict | None:
    s = data.series
    if s.value is None:
        return {"skipped": escape_text(s.skipped)}
    ps = s.value
    rows = [{"p": p, "nngp": number(a, 10), "ntk": number(b, 10)}
            for p, (a, b) in enumerate(zip(ps.nngp[:SERIES_ROWS], ps.ntk[:SERIES_ROWS]))]
    captured = ps.captured("ntk")
    out = {"skipped": None, "rows": rows, "order": len(ps.ntk), "route": escape_text(ps.route),
           "accuracy": escape_text(ps.accuracy), "ntk_at_one": number(ps.ntk_at_one, 12),
           "nngp_at_one": number(ps.nngp_at_one, 12),
           "captured": [(p, number(100 * captured[p], 6)) for p in (0, 1, 2, 4, 9) if p < len(captured)],
           "decay": None}
    dec = data.decay.value
    if dec is not None:
        out["decay"] = {
            which: {"power": number(f.power_exponent, 4), "rate": number(f.geometric_rate, 6),
                    "better": escape_text(f.better), "note": escape_text(f.note),
                    "predicted": number(dec["predicted"][which], 4)}
            for which, f in dec["fits"].items()}
        out["decay_reason"] = escape_text(dec["reason"])
    return out


def eoc_view(data) -> dict:
    e = data.eoc
    if e.value is None:
        return {"skipped": escape_text(e.skipped)}
    ph, edge, cos = e.value["phase"], e.value["edge"], e.value["cosine"]
    out = {"skipped": None, "phase": {
        "name": escape_text(ph.phase), "q_star": _mp(ph.q_star), "chi1": _mp(ph.chi1), "xi_q": _mp(ph.xi_q, 8),
        "xi_c": _mp(ph.xi_c, 8), "c_star": _mp(ph.c_star, 10), "route": escape_text(ph.route)},
        "edge": None, "edge_note": escape_text(e.value["edge_note"]), "cosine": None}
    if edge is not None:
        out["edge"] = {"sigma_w": _mp(edge.sigma_w), "sigma_b": _mp(edge.sigma_b),
                       "q_star": "any $q$" if edge.q_star is None else f"${_mp(edge.q_star)}$",
                       "exact": None if edge.exact is None else latex(edge.exact), "route": escape_text(edge.route)}
    if cos is not None:
        out["cosine"] = {"delta": latex(cos.delta), "map": latex(cos.rho_map), "sigma_w2": latex(cos.sigma_w2)}
    return out


def spectrum_view(data) -> dict:
    s = data.spectrum
    if s.value is None:
        return {"skipped": escape_text(s.skipped)}
    sp_ = s.value
    from ..spectrum.sphere import _bound_str
    # only the digits the error bound certifies; unresolved eigenvalues are marked, not printed
    shown = sp_.printed(10)
    rows = [{"k": k, "value": r"\text{unresolved}" if text is None else number(text, max(n, 1)), "mult": mult,
             "bound": "--" if b is None else number(_bound_str(b), 3)}
            for k, ((text, n), mult, b) in enumerate(zip(shown, sp_.multiplicities, sp_.truncation))]
    try:
        exponent = number(sp_.decay_exponent(), 4)
    except Exception:  # noqa: BLE001 - too few resolved eigenvalues: say so
        exponent = "--"
    return {"skipped": None, "rows": rows, "dim": sp_.d, "route": escape_text(s.route), "exponent": exponent}


def checks_view(data) -> dict:
    rows = [{"what": escape_text(c.what), "reference": escape_text(c.reference), "error": number(c.error, 2),
             "tolerance": number(c.tolerance, 2), "unit": escape_text(c.unit), "passed": c.passed}
            for c in data.checks]
    skipped = [(escape_text(n), escape_text(why)) for n, why in data.skipped_checks]
    return {"rows": rows, "skipped": skipped, "all_passed": all(c.passed for c in data.checks)}


def report_context(data, title: str | None, provenance: dict, figures: list[tuple[str, str]]) -> dict:
    """Everything the report and equation templates show, pre-printed."""
    d = data.derivation
    return {
        "label": _slug(d),
        "act": activation_view(d, title), "net": network_view(d), "hermite": hermite_view(d), "dual": dual_view(d),
        "recursion": recursion_view(d), "series": series_view(data), "eoc": eoc_view(data),
        "spectrum": spectrum_view(data), "checks": checks_view(data),
        "figures": [(name, escape_text(caption)) for name, caption in figures],
        "prov": {k: escape_text(v) for k, v in provenance.items()},
        "timings": [(escape_text(n), f"{t:.2f}") for n, t in (*d.timings, *data.timings)],
    }
