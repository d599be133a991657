"""What a ``derivation.json`` may hold: the schema as data, and its check.

:func:`validate` checks a parsed record (read by :func:`.jsonfile.read_json`)
against :data:`RECORD`: required keys, types, ranges, list lengths, then the
cross-references (``hermite[k].k == k``, one ``recursion`` entry per layer
0..depth).  Keys the schema does not name are tolerated and never read.  Depth,
σ and width have the bounds of :mod:`ntksym.network` (depth ≤ 10⁵), the Hermite
order that of ``ntksym derive --order`` (:data:`MAX_ORDER`), so re-deriving a
record costs no more than the writer's own run could.  Every failure is a
:class:`~ntksym.errors.RecordError` with a one-line message that names the key
path (``network.depth``, ``hermite[3].k``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordError
from ..network import MAX_DEPTH, MAX_SIGMA, MAX_WIDTH, PARAMETERIZATIONS

SCHEMA = "ntksym.derivation/1"
MAX_ORDER = 200               # Hermite coefficients, as `ntksym derive --order`
MAX_PARAMS = 32
SOURCES = ("catalogue", "expression", "sympy")

# --------------------------------------------------------------------- schema

_SURROGATE = re.compile("[\ud800-\udfff]")
_SPELLED = re.compile(r"[+-]?(?:nan|inf|infinity|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.IGNORECASE)


def describe(value: Any) -> str:
    """A short one-line description of a JSON value (never its whole text)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40]) + ("…" if len(value) > 40 else "")
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    return f"a {type(value).__name__}"


def _fail(path: str, expected: str, value: Any):
    raise RecordError(f"{path or 'record'}: expected {expected}, got {describe(value)}")


def _member(path: str, key: Any) -> str:
    text = key if isinstance(key, str) and len(key) <= 40 and key.isprintable() else describe(key)
    return f"{path}.{text}" if path else text


class Spec:
    """A check of one JSON value; ``what`` describes what it accepts."""
    what = "a value"

    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Spec):
    lo: int = 0
    hi: int | None = None

    @property
    def what(self):
        return f"an integer >= {self.lo}" if self.hi is None else f"an integer in [{self.lo}, {self.hi}]"

    def check(self, value, path):
        if isinstance(value, bool) or not isinstance(value, int) or value < self.lo \
                or (self.hi is not None and value > self.hi):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Num(Spec):
    """A finite JSON number in [lo, hi]; with ``spelled``, also a number the writer wrote as a string."""
    lo: float = -math.inf
    hi: float = math.inf
    spelled: bool = False

    @property
    def what(self):
        bounds = "" if (self.lo, self.hi) == (-math.inf, math.inf) else f" in [{self.lo:g}, {self.hi:g}]"
        return f"a finite number{bounds}" + (" (or one spelled as a string)" if self.spelled else "")

    def check(self, value, path):
        if self.spelled and isinstance(value, str) and len(value) <= 64 and _SPELLED.fullmatch(value):
            return
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) \
            and (not isinstance(value, int) or value.bit_length() <= 1000) \
            and math.isfinite(value) and self.lo <= value <= self.hi
        if not ok:
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Str(Spec):
    choices: tuple[str, ...] = ()
    identifier: bool = False

    @property
    def what(self):
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        return "an identifier" if self.identifier else "a string"

    def check(self, value, path):
        if not isinstance(value, str) or (self.choices and value not in self.choices) \
                or (self.identifier and not (value.isidentifier() and len(value) <= 64)):
            _fail(path, self.what, value)
        if _SURROGATE.search(value):
            raise RecordError(f"{path}: a string holds a lone UTF-16 surrogate")


class Bool(Spec):
    what = "true or false"

    def check(self, value, path):
        if not isinstance(value, bool):
            _fail(path, self.what, value)


@dataclass(frozen=True)
class Maybe(Spec):
    spec: Spec

    @property
    def what(self):
        return f"null or {self.spec.what}"

    def check(self, value, path):
        if value is not None:
            self.spec.check(value, path)


@dataclass(frozen=True)
class AnyOf(Spec):
    specs: tuple[Spec, ...]

    @property
    def what(self):
        return " or ".join(s.what for s in self.specs)

    def check(self, value, path):
        for spec in self.specs:
            try:
                return spec.check(value, path)
            except RecordError:
                continue
        _fail(path, self.what, value)


@dataclass(frozen=True)
class List(Spec):
    item: Spec
    lo: int = 0
    hi: int = 100_000

    @property
    def what(self):
        return f"a list of {self.lo} to {self.hi} entries"

    def check(self, value, path):
        if not isinstance(value, (list, tuple)) or not self.lo <= len(value) <= self.hi:
            _fail(path, self.what, value)
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")


@dataclass(frozen=True)
class Map(Spec):
    """An object with free keys (``key``) and values of one kind, at most ``hi`` entries."""
    value: Spec
    key: Spec = Str()
    hi: int = 64

    @property
    def what(self):
        return f"an object of at most {self.hi} entries"

    def check(self, value, path):
        if not isinstance(value, dict) or len(value) > self.hi:
            _fail(path, self.what, value)
        for k, v in value.items():
            self.key.check(k, f"{path} key")
            self.value.check(v, _member(path, k))


@dataclass(frozen=True)
class Obj(Spec):
    """An object with these required keys (and optional ones); other keys are tolerated, never read."""
    required: dict
    optional: dict = field(default_factory=dict)
    what = "an object"

    def check(self, value, path):
        if not isinstance(value, dict):
            _fail(path, self.what, value)
        for key, spec in self.required.items():
            if key not in value:
                raise RecordError(f"{path or 'record'}: missing key {key!r}")
            spec.check(value[key], _member(path, key))
        for key, spec in self.optional.items():
            if key in value:
                spec.check(value[key], _member(path, key))


@dataclass(frozen=True)
class Outcome(Spec):
    """An analysis: ``{"skipped": why}``, or its ``body`` (which has a route)."""
    body: Obj
    what = "an object"

    def check(self, value, path):
        if isinstance(value, dict) and "skipped" in value:
            Obj({"skipped": Maybe(TEXT)}).check(value, path)
        else:
            self.body.check(value, path)


TEXT = Str()
BOOL = Bool()
COUNT = Int(0)
REAL = Num(spelled=True)          # analysis numbers: JSON numbers, or the writer's "nan", "inf", str(numpy value)
SECONDS = Map(Num(0, 1e9), hi=256)
OPTION = AnyOf((Num(), BOOL, List(TEXT, 0, 64)))   # ReportOptions fields: numbers, flags, the analyses


def _outcome(optional: dict | None = None, **fields: Spec) -> Outcome:
    return Outcome(Obj({"route": TEXT, **fields}, optional or {}))


_MP = ("sigma_w", "sigma_b", "q_star", "chi1")
RECORD = Obj({
    "schema": TEXT,
    "provenance": Obj({k: TEXT for k in ("version", "python", "sympy", "mpmath", "numpy", "command", "date")}),
    "activation": Obj({"name": TEXT, "expr": TEXT, "params": Map(AnyOf((TEXT, Num())), Str(identifier=True),
                                                                  MAX_PARAMS),
                       "source": Str(SOURCES), "description": TEXT, "latex": TEXT}),
    "network": Obj({"depth": Int(1, MAX_DEPTH), "sigma_w": Num(0, MAX_SIGMA), "sigma_b": Num(0, MAX_SIGMA),
                    "parameterization": Str(PARAMETERIZATIONS), "width": Maybe(Int(1, MAX_WIDTH))}),
    "hermite": List(Obj({"k": Int(0, MAX_ORDER - 1), "exact": Maybe(TEXT), "value": TEXT, "route": TEXT}),
                    1, MAX_ORDER),
    "hermite_closed_form_in_k": Maybe(Obj({"formula": TEXT, "valid_from_k": AnyOf((COUNT, TEXT))})),
    "dual_kernels": Obj({"khat": Maybe(TEXT), "kdot": Maybe(TEXT), "route_hat": TEXT, "route_dot": TEXT,
                         "kdot_distributional": BOOL},
                        # the convention of φ' in Σ̇ (absent in records older than the option: see record.rederive)
                        {"derivative": Str(("ae", "distributional"))}),
    "numeric_kernel_route": TEXT,
    "recursion": List(Obj({"layer": Int(0, MAX_DEPTH), "equations": Map(TEXT, hi=16)}), 2, MAX_DEPTH + 1),
    "timings_s": SECONDS,
    "series": _outcome(order=COUNT, accuracy=TEXT, nngp=List(REAL, 0, 1 << 20), ntk=List(REAL, 0, 1 << 20),
                       ntk_at_1=REAL, nngp_at_1=REAL),
    "decay": _outcome(reason=Maybe(TEXT), predicted=Map(Maybe(REAL), hi=8),
                      fits=Map(Obj({"power_exponent": Maybe(REAL), "geometric_rate": Maybe(REAL), "better": TEXT,
                                    "note": Maybe(TEXT)}), hi=8)),
    "eoc": _outcome(phase=Obj({"name": TEXT, "route": TEXT,
                               **{k: Maybe(TEXT) for k in (*_MP, "xi_q", "xi_c", "c_star")}}),
                    edge=Maybe(Obj({"exact": Maybe(TEXT), "route": TEXT, **{k: Maybe(TEXT) for k in _MP}})),
                    edge_note=Maybe(TEXT),
                    optional={"cosine_map": Obj({"delta_phi": TEXT, "map": TEXT, "sigma_w2": TEXT})}),
    "sphere_spectrum": _outcome(dim=COUNT, eigenvalues=List(Maybe(TEXT)), multiplicities=List(COUNT),
                                error_bound=List(Maybe(TEXT)), n_terms=COUNT),
    "verification": Obj({"checks": List(Obj({"what": TEXT, "reference": TEXT, "error": Maybe(REAL),
                                             "tolerance": Maybe(REAL), "unit": TEXT, "passed": BOOL}), 0, 1000),
                         "skipped": List(Obj({"what": TEXT, "why": TEXT}), 0, 1000)}),
    "report_options": Map(OPTION, Str(identifier=True)),
    "analysis_timings_s": SECONDS,
    "files": List(TEXT, 0, 10_000),
}, optional={"kernel_module": TEXT})


def validate(rec: Any) -> dict:
    """``rec`` itself if it is a well-formed record; else RecordError naming the first bad key path."""
    if not isinstance(rec, dict):
        _fail("", "a JSON object", rec)
    if rec.get("schema") != SCHEMA:
        raise RecordError(f"not an ntksym derivation record (schema {describe(rec.get('schema'))}, "
                          f"expected {SCHEMA!r})")
    RECORD.check(rec, "")
    for i, entry in enumerate(rec["hermite"]):
        if entry["k"] != i:
            raise RecordError(f"hermite[{i}].k: expected {i}, got {describe(entry['k'])}")
    layers, depth = rec["recursion"], rec["network"]["depth"]
    if len(layers) != depth + 1:
        raise RecordError(f"recursion: expected {depth + 1} layers for network.depth = {depth}, got {len(layers)}")
    for i, layer in enumerate(layers):
        if layer["layer"] != i:
            raise RecordError(f"recursion[{i}].layer: expected {i}, got {describe(layer['layer'])}")
    return rec
