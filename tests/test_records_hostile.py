"""Hostile derivation.json records: load_record/rederive raise only RecordError (an InputError), in one
line and within a time bound, and never run anything; well-formed records (from the real writer and the
catalogue in derivations/) still load and re-derive.
"""
import copy
import glob
import json
import os
import threading
import time
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ntksym
from ntksym.errors import InputError, NtksymError, RecordError
from ntksym.report import ReportOptions, load_record, rederive, write_outputs
from ntksym.report import jsonfile, schema
from ntksym.report.record import dumps, inputs
from ntksym.summary import summary_dict

SECONDS = 5.0            # every refusal, including the 64 MiB ones, is far faster on a quiet machine
CATALOGUE = sorted(glob.glob(str(Path(__file__).parent.parent / "derivations" / "catalogue" / "*" /
                                 "derivation.json")))
FAST = ReportOptions(series_order=16, sphere_kmax=2, sphere_digits=12, mc_samples=4, mc_width=32, figures=False)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """One record from the real writer (a catalogue activation with parameters)."""
    d = ntksym.derive("abrelu", depth=2, sigma_w=1.3, sigma_b=0.1, params={"a": "0.3"}, order=4)
    out = write_outputs(d, tmp_path_factory.mktemp("rec") / "out", options=FAST, pdf=False)
    return json.loads((out.directory / "derivation.json").read_text(encoding="utf-8"))


def refused(call, *args, seconds=SECONDS, **kw):
    """Run call; assert it raises RecordError (an InputError) with a one-line message, in time."""
    t0 = time.perf_counter()
    with pytest.raises(InputError) as info:
        call(*args, **kw)
    elapsed = time.perf_counter() - t0
    assert isinstance(info.value, RecordError), repr(info.value)
    assert "\n" not in str(info.value) and "\r" not in str(info.value)
    assert elapsed < seconds, f"{elapsed:.1f} s"
    return str(info.value)


def write(path: Path, data) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# ----------------------------------------------------------------- well-formed records


def test_writer_record_loads_and_rederives(valid, tmp_path):
    rec = load_record(write(tmp_path / "d.json", dumps(valid)))
    assert rec == valid
    again = rederive(rec)
    assert again.activation.name == "abrelu" and dict(again.activation.params)["a"] == sp.Rational(3, 10)
    assert [sp.sstr(c.exact) for c in again.hermite.coefficients] == [h["exact"] for h in valid["hermite"]]


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: Path(p).parent.name)
def test_catalogue_records_load(path):
    rec = load_record(path)
    assert rec["schema"] == schema.SCHEMA


def test_rederive_reads_exact_parameters_beyond_the_parser_bounds():
    """selu's parameters are written as 32-digit rationals, which the activation parser refuses as
    literals; the record reader reads p/q itself (the old rederive raised ParseError here)."""
    path = next(p for p in CATALOGUE if Path(p).parent.name == "selu")
    d = rederive(load_record(path), order=2)
    assert dict(d.activation.params)["alpha"] == sp.Rational("1.6732632423543772848170429916717")


def test_rederive_uses_the_users_text_not_the_printout(valid, tmp_path):
    """sstr prints 100000*100000*x as 10000000000*x, a literal beyond the parser's bound; the record is
    re-derived from the text the user gave (activation.name), which the parser accepted."""
    d = ntksym.derive("100000*100000*x + a*Abs(x)", depth=1, order=2, params={"a": "0.5"})
    summary = json.loads(json.dumps(summary_dict(d), default=str))
    rec = {**copy.deepcopy(valid), **{k: v for k, v in summary.items() if k != "activation"}}
    rec["activation"].update(summary["activation"], source="expression")
    again = rederive(load_record(write(tmp_path / "big.json", dumps(rec))))
    assert again.activation.concrete == d.activation.concrete and again.network == d.network


# ----------------------------------------------------------------- hostile files

HOSTILE_BYTES = {
    "not JSON": b"{not json",
    "truncated": b'{"schema": "ntksym.derivation/1", "network": {',
    "invalid UTF-8": b'{"schema": "\xff\xfe"}',
    "UTF-16": '{"schema": 1}'.encode("utf-16"),
    "BOM": b'\xef\xbb\xbf{"schema": "ntksym.derivation/1"}',
    "empty": b"",
    "whitespace": b" \n\t ",
    "100k-deep list": b"[" * 100_000 + b"]" * 100_000,
    "100k-deep object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep, unterminated": b"[" * 1_000_000,
    "huge integer": b'{"schema": ' + b"9" * 5000 + b"}",
    "huge negative integer": b"[-" + b"1" * 10_000 + b"]",
    "NaN": b'{"schema": NaN}',
    "Infinity": b'{"x": Infinity}',
    "-Infinity": b"[-Infinity]",
    "1e999": b"[1e999]",
    "top-level list": b"[1, 2]",
    "top-level string": b'"ntksym.derivation/1"',
    "top-level null": b"null",
    "lone surrogate": b'{"schema": "ntksym.derivation/1", "provenance": {"version": "\\ud800"}}',
    "escaped quotes, unterminated": b'"' + b'\\"' * 3_000_000,
    "many values": b"[" + b"0," * 3_000_000 + b"0]",
    "foreign schema": b'{"schema": "other/1"}',
    "schema as object": b'{"schema": {"a": [1, 2]}}',
}


@pytest.mark.parametrize("name", list(HOSTILE_BYTES))
def test_hostile_bytes_refused(tmp_path, name):
    refused(load_record, write(tmp_path / "derivation.json", HOSTILE_BYTES[name]))


def test_size_cap(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(jsonfile.MAX_BYTES + 1)    # sparse: costs nothing
    assert "at most" in refused(load_record, path)


@pytest.mark.parametrize("kind", ["/dev/null", "directory", "missing", "dangling symlink", "nul byte",
                                  "newline name", "not a path"])
def test_not_a_regular_file(tmp_path, kind):
    if kind == "/dev/null":
        path = "/dev/null"
    elif kind == "directory":
        path = tmp_path
    elif kind == "missing":
        path = tmp_path / "absent.json"
    elif kind == "dangling symlink":
        path = tmp_path / "link.json"
        os.symlink(tmp_path / "absent", path)
    elif kind == "nul byte":
        path = str(tmp_path / "a\0b.json")
    elif kind == "newline name":
        path = write(tmp_path / "a\nb.json", b"[")
    else:
        path = 3.5
    refused(load_record, path)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "derivation.json"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            load_record(fifo)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(SECONDS)
    if worker.is_alive():   # unblock the reader so that the thread ends
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("load_record blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], RecordError) and "FIFO" in str(outcome[0])


# ----------------------------------------------------------------- hostile contents


def mutated(valid, fn):
    rec = copy.deepcopy(valid)
    fn(rec)
    return rec


def test_depth_of_a_million_is_refused_at_once(valid, tmp_path):
    rec = mutated(valid, lambda r: r["network"].update(depth=10**6))
    assert "network.depth" in refused(load_record, write(tmp_path / "d.json", dumps(rec)), seconds=1)
    assert "network.depth" in refused(rederive, rec, seconds=1)


def test_depth_must_match_the_recursion(valid):
    rec = mutated(valid, lambda r: r["network"].update(depth=schema.MAX_DEPTH))
    assert "recursion" in refused(rederive, rec, seconds=1)


def test_5000_hermite_entries_are_refused_at_once(valid, tmp_path):
    entries = [{"k": k, "exact": "0", "value": "0.0", "route": "exact"} for k in range(5000)]
    rec = mutated(valid, lambda r: r.update(hermite=entries))
    assert "hermite" in refused(load_record, write(tmp_path / "d.json", dumps(rec)), seconds=1)
    assert "hermite" in refused(rederive, rec, seconds=1)


@pytest.mark.parametrize("order", [0, -1, schema.MAX_ORDER + 1, 5000, "8", 2.0, True, 10**400],
                         ids=["0", "-1", "max+1", "5000", "str", "float", "bool", "huge"])
def test_rederive_order_argument(valid, order):
    refused(rederive, valid, order=order, seconds=1)


@pytest.mark.parametrize("value", [None, [], "record", 10**5000, {}, {"schema": schema.SCHEMA}],
                         ids=["null", "list", "string", "huge int", "empty", "schema only"])
def test_rederive_refuses_non_records(value):
    refused(rederive, value, seconds=1)


HOSTILE_TEXT = [
    "__import__('os').system('touch {marker}')",
    "x#\"\"\"+str(__import__('os').system('touch {marker}'))+\"\"\"",
    "x#comment",
    "x; __import__('os').system('touch {marker}')",
    "x\n__import__('os').system('touch {marker}')",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "x.__class__.__base__.__subclasses__()",
    "open('{marker}', 'w')",
    "exec('import os')",
    "[x for x in ()]",
    "x if x else x",
    "'x'",
]


@pytest.mark.parametrize("field", ["name", "expr", "param", "catalogue param"])
@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_activation_text_is_refused_and_never_runs(valid, tmp_path, monkeypatch, field, text):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    text = text.format(marker=marker)
    act = {"name": "a*x", "expr": "a*x", "params": {"a": "1"}, "source": "expression"}
    if field == "name":
        act.update(name=text)
    elif field == "expr":
        act.update(expr=text, name=text, source="sympy")
    elif field == "param":
        act.update(params={"a": text})
    else:
        act.update(name="abrelu", source="catalogue", params={"a": text, "b": "1"})
    rec = mutated(valid, lambda r: r["activation"].update(act))
    assert "activation" in refused(load_record, write(tmp_path / "d.json", dumps(rec)))
    assert "activation" in refused(rederive, rec)
    assert not marker.exists() and not Path("MARKER").exists()


# ----------------------------------------------------------------- every key, every wrong type

# keys the writer may leave out (record.record), and values it may write as null (record.py, summary.py)
OPTIONAL = {"kernel_module", "eoc.cosine_map", "dual_kernels.derivative"}
NULLABLE = {"network.width", "hermite[].exact", "hermite_closed_form_in_k", "dual_kernels.khat",
            "dual_kernels.kdot", "eoc.edge", "eoc.edge_note", "decay.reason", "decay.predicted.*",
            "decay.fits.*.power_exponent", "decay.fits.*.geometric_rate", "decay.fits.*.note",
            "verification.checks[].error", "verification.checks[].tolerance", "sphere_spectrum.eigenvalues[]",
            "sphere_spectrum.error_bound[]", "series.skipped", "decay.skipped", "eoc.skipped",
            "sphere_spectrum.skipped"} | {f"eoc.phase.{k}" for k in
                                         ("sigma_w", "sigma_b", "q_star", "chi1", "xi_q", "xi_c", "c_star")} \
    | {f"eoc.edge.{k}" for k in ("sigma_w", "sigma_b", "q_star", "chi1", "exact")}
ALSO_ACCEPTED = {"activation.params.*": {"number"}}   # as ntksym.derive(params=...) accepts them
FREE_KEYS = {"activation.params", "timings_s", "analysis_timings_s", "report_options", "decay.predicted",
             "decay.fits", "recursion[].equations"}
REPLACEMENTS = [None, [1], {"a": 1}, 10**30, 1e300, -1, -0.5, "x", True]


def kind(value):
    for k, types in (("null", type(None)), ("bool", bool), ("number", (int, float)), ("string", str),
                     ("list", list), ("object", dict)):
        if isinstance(value, types):
            return k


def paths(value, path=(), pattern=""):
    """(key path, normalised pattern) of every value; list items: the first two and the last."""
    yield path, pattern
    if isinstance(value, dict):
        free = pattern in FREE_KEYS
        for k, v in value.items():
            yield from paths(v, path + (k,), (f"{pattern}." if pattern else "") + ("*" if free else k))
    elif isinstance(value, list):
        for i in sorted({0, 1, len(value) - 1} & set(range(len(value)))):
            yield from paths(value[i], path + (i,), pattern + "[]")


def observed_kinds(records):
    seen = {}
    for rec in records:
        for path, pattern in paths(rec):
            value = rec
            for k in path:
                value = value[k]
            seen.setdefault(pattern, set()).add(kind(value))
    return seen


def replaced(rec, path, value):
    out = copy.deepcopy(rec)
    target = out
    for k in path[:-1]:
        target = target[k]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


def test_every_key_with_every_wrong_type(valid):
    """Each key deleted, and each value replaced by null, a list, an object, a huge or negative number,
    a string, a boolean: refused with RecordError whenever no record the writer made has that kind there
    (kinds learnt from the writer's record and the catalogue), never any other exception."""
    kinds = observed_kinds([valid] + [json.loads(Path(p).read_text(encoding="utf-8")) for p in CATALOGUE])
    checked = 0
    t0 = time.perf_counter()
    for path, pattern in paths(valid):
        if not path:
            continue
        cases = [(KeyError, not isinstance(path[-1], int) and pattern not in OPTIONAL
                  and not pattern.endswith("*"))]
        for value in REPLACEMENTS:
            allowed = kinds.get(pattern, set()) | ALSO_ACCEPTED.get(pattern, set()) \
                | ({"null"} if pattern in NULLABLE else set())
            cases.append((value, kind(value) not in allowed))
        for value, must_refuse in cases:
            if isinstance(path[-1], int) and value is KeyError:
                continue
            rec = replaced(valid, path, value)
            try:
                inputs(rec)
            except RecordError:
                checked += 1
                continue
            assert not must_refuse, f"{pattern} = {value!r} was accepted"
    assert checked > 300 and time.perf_counter() - t0 < 60


# ----------------------------------------------------------------- random mutations

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**60, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
    | st.sampled_from(["relu", "x", "abrelu", "ntk", "standard", "nan", "inf", "1/0", "-1", "3/2", "",
                       "catalogue", "expression", "sympy", schema.SCHEMA, "x#", "__import__('os')"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8)


@st.composite
def mutations(draw, valid):
    rec = copy.deepcopy(valid)
    all_paths = [p for p, _ in paths(rec) if p]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(all_paths))
        try:
            target = rec
            for k in path[:-1]:
                target = target[k]
            if draw(st.booleans()) and isinstance(target, dict):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced a parent
            pass
    return rec


def test_random_mutations(valid):
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        rec = data.draw(mutations(valid))
        t0 = time.perf_counter()
        try:
            rederive(rec)
        except NtksymError as exc:
            assert "\n" not in str(exc)
        assert time.perf_counter() - t0 < 20

    run()


def test_mutations_through_a_file(valid, tmp_path):
    """The same through dumps and load_record (non-finite floats become strings on the way)."""
    path = tmp_path / "derivation.json"

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        rec = data.draw(mutations(valid))
        write(path, dumps(rec))
        t0 = time.perf_counter()
        try:
            load_record(path)
        except NtksymError as exc:
            assert isinstance(exc, RecordError) and "\n" not in str(exc)
        assert time.perf_counter() - t0 < SECONDS

    run()
