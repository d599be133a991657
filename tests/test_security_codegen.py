"""User text is data in generated Python (issue 11, item 1): no activation text, name, parameter,
command line or path can change the token stream of a generated module, stop it from importing,
or run code when it is imported.

Every generated module here is imported in a *subprocess* whose working directory is empty; the
payloads try to create a marker file there (or at an absolute path in tmp_path), and the tests
assert that nothing was created.
"""
import ast
import dataclasses
import importlib.util
import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ntksym
from ntksym.cli import main
from ntksym.codegen import code_tokens, load_module, module_source, write_module
from ntksym.codegen.printer import ArrayCodePrinter
from ntksym.errors import NtksymError, ParseError
from ntksym.parsing import parse_expression
from ntksym.templating import python_literal, python_text

MARKER = "PWNED"
RUN = f'__import__("pathlib").Path("{MARKER}").touch()'

#: the reproductions of issue 11 plus our own: quotes, escapes, line breaks, Jinja and % syntax
HOSTILE = [
    'x#"""+str(__import__("os").system("touch PWNED"))+"""',
    f'x#"""+str({RUN})+"""',
    "relu\n", "x #\\N", "x # \\x", 'x # """', 'x#"""', "x#'''", "x;" + RUN, "x\\",
    '"""', "'''", '""""', '"', "'", "\\", "\\\\", "\\N", "\\N{", "\\x", "\\x4", "\\u12", "\\U0001",
    f'"""\n{RUN}\n"""', f"\n{RUN}\n#", f"\r{RUN}\r#", f"\r\n{RUN}", f"\x0c{RUN}", f"\x0b{RUN}",
    f"\u2028{RUN}", f"\u2029{RUN}", f"\x85{RUN}", "\x00", "nul\x00byte", "\t", "\ufeff", "\udc80",
    "{{ 7*7 }}", "{% raw %}", "{% endraw %}", "{#", "#}", "{{", "%s %d %% %(x)s", "# coding: latin-1",
    "φ(x) = ∞ — 😀 ℕ", "x" * 100_000, 'x"""\\', "x''' + 1", "-*- coding: utf-16 -*-",
    "coding: utf-7 +AAo-__import__('pathlib').Path('PWNED').touch()+AAo-#", "# vim: set fileencoding=latin-1 :",
]


def _import_all(paths, workdir: Path) -> list[dict]:
    """Import every module in one fresh interpreter run in the empty ``workdir``; evaluate it once."""
    workdir.mkdir(exist_ok=True)
    script = (
        "import importlib.util, json, sys\n"
        "import numpy as np\n"
        "out = []\n"
        "for i, path in enumerate(sys.argv[1:]):\n"
        "    spec = importlib.util.spec_from_file_location(f'generated_{i}', path)\n"
        "    m = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(m)\n"
        "    s, t = m.kernels(np.eye(2))\n"
        "    out.append({'activation': m.ACTIVATION, 'doc': m.__doc__, 'ntk': float(t[0, 0])})\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script, *map(str, paths)], cwd=workdir, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(workdir.iterdir()) == []          # no side effect in the working directory
    return json.loads(proc.stdout)


def _code(source: str) -> list:
    """Tokens outside strings and comments of the UTF-8 file as the importer reads it: declared
    encoding, universal newlines (tokenize alone keeps a lone CR inside a comment; Python does not)."""
    data = source.encode("utf-8")
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = importlib.util.decode_source(data)
    return [encoding] + [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(text).readline)
                         if t.type not in (tokenize.STRING, tokenize.COMMENT)]


@pytest.fixture(scope="module")
def relu():
    d = ntksym.derive("relu", depth=1)
    return d, _code(module_source(d, "benign"))


# ------------------------------------------------------------ the parser: one expression or nothing


@pytest.mark.parametrize("text", [h for h in HOSTILE if len(h) < 1000])
def test_parser_refuses_or_parses_one_expression(text):
    try:
        expr = parse_expression(text)
    except ParseError as exc:
        assert "\n" not in str(exc)
    else:  # accepted: the text is exactly one expression (only names, numbers and operators)
        kinds = {t.type for t in tokenize.generate_tokens(io.StringIO(text.strip()).readline)}
        assert kinds <= {tokenize.NAME, tokenize.NUMBER, tokenize.OP, tokenize.NEWLINE, tokenize.ENDMARKER}
        assert isinstance(expr, sp.Expr)


@pytest.mark.parametrize("text, what, column", [
    ('x#"""+str(__import__("os").system("touch /tmp/pwned"))+"""', "comment", 2),
    ("  relu(x) # trailing note", "comment", 11),
    ("(x # open", "comment", 4),
    ("x; y", "';'", 2),
    ("x \\ + 1", "line continuation", 3),
    ("x\\", "line continuation", 2),
])
def test_parser_refuses_comments_separators_continuations(text, what, column):
    with pytest.raises(ParseError, match=f"{re.escape(what)}.*at column {column}\\)$"):
        parse_expression(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["x", "relu(x)", "x**2 + 1", "erf(x)", "  x"]),
       st.sampled_from(["#", ";", "\\", " #", " ;", "\n", "\r"]), st.text(max_size=40))
def test_parser_refuses_valid_expression_with_hostile_tail(head, separator, tail):
    with pytest.raises(ParseError):
        parse_expression(head + separator + tail + ("x" if separator in "\n\r" else ""))


# ------------------------------------------------------------ the two template filters


@pytest.mark.parametrize("text", HOSTILE)
def test_python_text_is_one_safe_line_that_reads_back(text):
    out = python_text(text)
    assert out.isprintable() and "\n" not in out and "\r" not in out
    assert not re.search(r'(?<!\\)(\\\\)*"', out)             # every double quote escaped
    assert ast.literal_eval('"""' + out + '"""') == text       # in a docstring it is the original text
    cookie = "# -*- coding: utf-8 -*-\n"                      # as in the template: declared first
    assert _code(f"{cookie}x = 1  # {out}\n") == _code(f"{cookie}x = 1  # comment\n")


@pytest.mark.parametrize("value", HOSTILE + [0, -7, 10**30, 1.5, -0.0, 1e-300, True, None])
def test_python_literal_is_one_literal(value):
    out = python_literal(value)
    assert ast.literal_eval(out) == value
    node = ast.parse(out, mode="eval").body
    assert isinstance(node.operand if isinstance(node, ast.UnaryOp) else node, ast.Constant)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), b"x", sp.Integer(1), object(), ["x"]])
def test_python_literal_refuses_non_literals(value):
    with pytest.raises((TypeError, ValueError)):
        python_literal(value)


def test_template_inserts_user_values_only_through_the_filters():
    text = (Path(ntksym.__file__).resolve().parents[1] / "templates" / "kernel_module.py.j2").read_text()
    printed = {"dual_code", "diag_code", "variance_code", "input_code", "hidden_code", "phi_code", "dphi_code",
               "row", "quad.angle", "quad.angle_w", "quad.radius", "quad.radius_w",
               "series_nodes.z", "series_nodes.z_w"}   # printer output and float literals (_floats), not text
    for expr in re.findall(r"\{\{(.*?)\}\}", text):
        expr = expr.strip()
        assert expr in printed or re.search(r"\| (pyliteral|pytext)$", expr), expr


# ------------------------------------------------------------ module_source: hostile command and names


def test_hostile_command_activation_name_and_parameter(relu, tmp_path):
    """Each hostile text at once as the command line, the activation name and a parameter name."""
    d, code = relu
    paths, expected = [], []
    for i, text in enumerate(HOSTILE):
        act = dataclasses.replace(d.activation, name=text, params=((text, sp.Rational(1, 3)),))
        hostile = dataclasses.replace(d, activation=act)
        source = module_source(hostile, text)
        assert _code(source) == code
        lines = source.splitlines()
        assert lines[1] == "# -*- coding: utf-8 -*-"   # the encoding is declared before any user text
        assert lines[2].startswith("# Command: ") and lines[3].startswith('"""')
        paths.append(write_module(hostile, tmp_path / f"m{i}.py", source=source))
        expected.append(str(act))
    results = _import_all(paths, tmp_path / "cwd")
    assert [r["activation"] for r in results] == expected
    assert all(r["doc"].startswith("Infinite-width NNGP and NTK of a fully-connected network: " + e)
               for r, e in zip(results, expected))
    assert len({r["ntk"] for r in results}) == 1


def test_hostile_sympy_symbol_and_parameter_names(tmp_path):
    x = sp.Symbol(f'x"""+{RUN}+"""')
    a = sp.Symbol(f'a"""\n{RUN}#\\N')
    cases = [(sp.Max(x, 0), {}), (a * sp.Max(x, 0), {a.name: 2}), (sp.erf(x) * a, {a.name: sp.Rational(1, 2)})]
    paths = []
    for i, (expr, params) in enumerate(cases):
        d = ntksym.derive(expr, depth=1, params=params)
        paths.append(write_module(d, tmp_path / f"m{i}.py"))
    results = _import_all(paths, tmp_path / "cwd")
    assert all(a.name in r["activation"] for r in results[1:]) and x.name in results[0]["activation"]


@pytest.mark.parametrize("command, name, message", [
    (f"x\n{RUN}", "relu", "change its code"), (f"x\r{RUN}", "relu", "change its code"),
    ("x\r1 +", "relu", "not compile"), ("x", f'x"""+str({RUN})+"""', "change its code"),
    ("x", "\\N", "not compile"), ("x", 'x"""', "not compile")])
def test_backstop_refuses_a_template_that_lets_text_through(relu, monkeypatch, command, name, message):
    """module_source's own check, with the ``pytext`` filter broken on purpose (text passed raw)."""
    import ntksym.codegen as codegen
    from ntksym.templating import environment
    broken = environment().overlay()
    broken.filters = {**broken.filters, "pytext": str}    # a copy: overlays share the filter dict
    monkeypatch.setattr(codegen, "render", lambda name, **context: broken.get_template(name).render(**context))
    d = dataclasses.replace(relu[0], activation=dataclasses.replace(relu[0].activation, name=name))
    with pytest.raises(NtksymError, match=message):
        module_source(d, command)


def test_printer_never_prints_a_name_that_is_not_an_identifier():
    printer = ArrayCodePrinter({})
    for expr in (sp.Symbol('a"""; import os') + 1, sp.Function("os.system")(sp.Symbol("x")),
                 sp.Symbol("a\nb"), sp.Symbol("a#b")):
        with pytest.raises(NtksymError, match="not a Python identifier"):
            printer.doprint(expr)
    assert printer.doprint(sp.Symbol("t0") * 2) == "2.0*t0"


def test_load_module_of_the_reproduction_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NTKSYM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ParseError, match="comment"):
        load_module(ntksym.derive(f'x#"""+str({RUN})+"""', depth=1))
    assert not (tmp_path / "cache").exists()


#: any code point (surrogates and controls included), biased towards the dangerous ones
_TEXT = st.text(st.sampled_from(list('"\'\\#\n\r\x00\x0c\u2028Nxu{}%')) | st.characters(blacklist_categories=()),
                max_size=200)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(command=_TEXT)
def test_random_commands_never_change_the_code(relu, command):
    d, code = relu
    source = module_source(d, command)
    compile(source, "<generated>", "exec", dont_inherit=True)
    assert _code(source) == code and code_tokens(source) is not None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(name=_TEXT)
def test_random_activation_names_never_change_the_code(relu, name):
    d, code = relu
    hostile = dataclasses.replace(d, activation=dataclasses.replace(d.activation, name=name))
    source = module_source(hostile)
    compile(source, "<generated>", "exec", dont_inherit=True)
    assert _code(source) == code


# ------------------------------------------------------------ the CLI: codegen -o and derive --out


OUTPUT_NAMES = [
    f'a\nimport os;os.system("touch {MARKER}")#.py', f"c\r{RUN}#.py", 'q"""x.py', "q'''x.py", 'q"x.py',
    "b\\N.py", "b\\x.py", "u\u2028v.py", "{{x}}.py", "%s%%.py", "h#.py", "t\tab.py",
]


def test_cli_codegen_hostile_output_names(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    paths = []
    for name in OUTPUT_NAMES:
        assert main(["codegen", "relu", "--depth", "1", "-o", str(out / name)]) == 0
        paths.append(out / name)
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_NAMES)
    for path in paths:
        assert path.read_text(encoding="utf-8").splitlines()[2].startswith("# Command: ntksym codegen relu")
    _import_all(paths, tmp_path / "cwd")
    assert not (out / MARKER).exists()


@pytest.mark.parametrize("activation", ['x#"""+str(__import__("os").system("touch PWNED"))+"""',
                                        "x #\\N", "x # \\x", 'x # """', "x;y"])
def test_cli_codegen_refuses_hostile_activation_text(tmp_path, capsys, activation):
    target = tmp_path / "g.py"
    assert main(["codegen", activation, "--depth", "1", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntksym: error: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_codegen_trailing_newline_in_the_activation(tmp_path, capsys):
    target = tmp_path / "g.py"
    assert main(["codegen", "relu\n", "--depth", "1", "-o", str(target)]) == 0
    capsys.readouterr()
    assert _import_all([target], tmp_path / "cwd")[0]["activation"].startswith("relu")


def test_cli_derive_out_with_hostile_directory_and_title(tmp_path, capsys):
    out = tmp_path / f'R"""\n{RUN}#'
    assert main(["derive", "relu", "--depth", "1", "--out", str(out), "--no-pdf", "--title", f'"""\n{RUN}',
                 "--kmax", "2", "--series-order", "16", "--mc-samples", "2"]) == 0
    capsys.readouterr()
    _import_all([out / "kernels.py"], tmp_path / "cwd")
    assert main(["derive", f'x#"""+str({RUN})+"""', "--depth", "1", "--out", str(tmp_path / "S")]) == 2
    assert "comment" in capsys.readouterr().err and not (tmp_path / "S").exists()
