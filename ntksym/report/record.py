"""``derivation.json``: a machine-readable record of everything a report shows.

Numbers are written as decimal strings where they carry more than float64
precision (Hermite values, EOC quantities, sphere eigenvalues) and as JSON
floats otherwise (non-finite ones as the strings "nan", "inf", "-inf");
expressions as SymPy strings (``sympy.sstr``) and as LaTeX.  :func:`load`
reads a record without trusting it (bounds in :mod:`.jsonfile` and :mod:`.schema`);
:func:`rederive` rebuilds the Derivation from a record, which is how the
record is checked to round-trip.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import re
from importlib import metadata

import mpmath
import sympy as sp

from ..activation import Activation, make_activation
from ..errors import NtksymError, RecordError
from ..network import Network
from ..parsing import MAX_NUMBER_BITS
from ..summary import summary_dict
from . import jsonfile, schema
from .schema import SCHEMA


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(command: str | None) -> dict:
    """Versions, the command line and the date (SOURCE_DATE_EPOCH honoured, for reproducible output)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch and epoch.isdigit() \
        else datetime.datetime.now(datetime.timezone.utc)
    from .. import __version__
    return {"version": __version__, "python": platform.python_version(), "sympy": _version("sympy"),
            "mpmath": _version("mpmath"), "numpy": _version("numpy"), "command": command or "(Python API)",
            "date": when.strftime("%Y-%m-%d %H:%M UTC")}


def _mp(x, digits: int = 20):
    if x is None:
        return None
    if x == mpmath.inf:
        return "inf"
    return mpmath.nstr(x, digits)


def _outcome(o, fn):
    return {"skipped": o.skipped} if o.value is None else {"route": o.route, **fn(o.value)}


def record(data, prov: dict, files: list[str], module_note: str | None = None) -> dict:
    """The JSON-ready record of a ReportData."""
    d = data.derivation
    out = {"schema": SCHEMA, "provenance": prov, **summary_dict(d)}
    out["activation"].update({"source": d.activation.source, "description": d.activation.description,
                              "latex": sp.latex(d.activation.expr)})
    out["series"] = _outcome(data.series, lambda s: {
        "order": len(s.ntk), "accuracy": s.accuracy, "nngp": [float(c) for c in s.nngp],
        "ntk": [float(c) for c in s.ntk], "ntk_at_1": float(s.ntk_at_one), "nngp_at_1": float(s.nngp_at_one)})
    out["decay"] = _outcome(data.decay, lambda v: {
        "reason": v["reason"], "predicted": v["predicted"],
        "fits": {k: {"power_exponent": f.power_exponent, "geometric_rate": f.geometric_rate, "better": f.better,
                     "note": f.note} for k, f in v["fits"].items()}})

    def eoc(v):
        ph, edge, cos = v["phase"], v["edge"], v["cosine"]
        res = {"phase": {"name": ph.phase, "sigma_w": _mp(ph.sigma_w), "sigma_b": _mp(ph.sigma_b),
                         "q_star": _mp(ph.q_star), "chi1": _mp(ph.chi1), "xi_q": _mp(ph.xi_q),
                         "xi_c": _mp(ph.xi_c), "c_star": _mp(ph.c_star), "route": ph.route},
               "edge": None if edge is None else {"sigma_w": _mp(edge.sigma_w), "sigma_b": _mp(edge.sigma_b),
                                                  "q_star": _mp(edge.q_star), "chi1": _mp(edge.chi1),
                                                  "exact": None if edge.exact is None else sp.sstr(edge.exact),
                                                  "route": edge.route},
               "edge_note": v["edge_note"]}
        if cos is not None:
            res["cosine_map"] = {"delta_phi": sp.sstr(cos.delta), "map": sp.sstr(cos.rho_map),
                                 "sigma_w2": sp.sstr(cos.sigma_w2)}
        return res
    out["eoc"] = _outcome(data.eoc, eoc)
    def sphere(s):   # certified digits only (null where unresolved); bounds rounded up (spectrum.sphere)
        js = s.as_json(20)
        return {"dim": s.d, "eigenvalues": js["eigenvalues"], "multiplicities": js["multiplicities"],
                "error_bound": js.get("error_bound", [None] * len(s.eigenvalues)), "n_terms": s.n_terms}
    out["sphere_spectrum"] = _outcome(data.spectrum, sphere)
    out["verification"] = {
        "checks": [{"what": c.what, "reference": c.reference, "error": c.error, "tolerance": c.tolerance,
                    "unit": c.unit, "passed": c.passed} for c in data.checks],
        "skipped": [{"what": n, "why": why} for n, why in data.skipped_checks]}
    out["report_options"] = {k: getattr(data.options, k) for k in data.options.__dataclass_fields__}
    out["analysis_timings_s"] = {n: round(t, 4) for n, t in data.timings}
    out["files"] = sorted(files)
    if module_note:
        out["kernel_module"] = module_note
    return out


def _finite(obj):
    """JSON has no NaN or infinity: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(rec: dict) -> str:
    return json.dumps(_finite(rec), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def load(path) -> dict:
    """Read and check a derivation.json (see :mod:`.schema` for the bounds).

    Raises :class:`~ntksym.errors.RecordError` (an InputError), one line, for
    anything that is not a well-formed record: the file, the JSON, the schema,
    and the activation and network, which are rebuilt here exactly as
    :func:`rederive` would (text through the safe parser, never evaluated).
    """
    rec = jsonfile.read_json(path)
    try:
        inputs(rec)
    except RecordError as exc:
        raise RecordError(f"{jsonfile.display(path)}: {exc}") from None
    return rec


_RATIONAL = re.compile(r"-?\d{1,1300}(?:/\d{1,1300})?")


def _exact(value):
    """A parameter value as written (``sympy.sstr`` of an exact number): p or p/q read directly, since the
    parser bounds its literals; any other text goes to :func:`ntksym.activation.exact_number`'s safe parser."""
    if not isinstance(value, str) or not _RATIONAL.fullmatch(value):
        return value
    p, _, q = value.partition("/")
    try:
        num, den = int(p), int(q or 1)
    except ValueError as exc:  # a lowered sys.set_int_max_str_digits
        raise RecordError(f"a parameter value cannot be read ({exc})") from None
    if den == 0 or max(num.bit_length(), den.bit_length()) > MAX_NUMBER_BITS:
        raise RecordError(f"parameter value {schema.describe(value)} has a zero denominator or more than "
                          f"{MAX_NUMBER_BITS} bits")
    return sp.Rational(num, den)


def inputs(rec) -> tuple[Activation, Network]:
    """The activation and network a record describes, checked and rebuilt (RecordError otherwise).

    A catalogue activation is rebuilt from its name, an expression from the text the user gave
    (``activation.name``), a SymPy-built one from ``activation.expr``; all through
    :func:`ntksym.activation.make_activation`, whose parser never evaluates text.
    """
    schema.validate(rec)
    act, net = rec["activation"], rec["network"]
    text = act["expr"] if act["source"] == "sympy" else act["name"]
    try:
        params = {n: _exact(v) for n, v in act["params"].items()}
        activation = make_activation(text, params)
    except NtksymError as exc:
        raise RecordError(f"activation: {exc}") from None
    try:
        network = Network(net["depth"], net["sigma_w"], net["sigma_b"], net["parameterization"], net["width"])
    except NtksymError as exc:
        raise RecordError(f"network: {exc}") from None
    return activation, network


def rederive(rec: dict, order: int | None = None, allow_inaccurate: bool = False):
    """The Derivation a record describes, derived again from its activation and network.

    ``order`` (default: as many Hermite coefficients as the record has) is at most
    :data:`.schema.MAX_ORDER`; ``allow_inaccurate`` is passed to :func:`ntksym.derive`.
    A malformed record raises RecordError before any work.
    """
    from ..derivation import derive
    activation, net = inputs(rec)
    order = len(rec["hermite"]) if order is None else order
    schema.Int(1, schema.MAX_ORDER).check(order, "order")
    dk = rec["dual_kernels"]   # records without "derivative" predate the option: Dirac Σ̇ meant distributional
    derivative = dk.get("derivative", "distributional" if dk["kdot_distributional"] else "ae")
    return derive(activation, net.depth, net.sigma_w, net.sigma_b, None, net.parameterization, net.width,
                  order=order, allow_inaccurate=bool(allow_inaccurate), derivative=derivative)
