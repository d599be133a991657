"""The fixed hostile corpus of the fuzz harness (``tests/test_fuzz.py``, issue 11), as data.

Every entry is a :class:`Case`: an id, the hostile value and the EXPECTED outcome class:

* ``OK``      - exit status 0 (API: returns);
* ``REFUSED`` - exit status 2 with one line ``ntksym: error: ...`` (API: an ``NtksymError`` subclass);
* ``EITHER``  - one of the two (what must hold either way: no traceback, at most one line on stderr,
                nothing written outside the declared output, a module that imports cleanly, a time bound).

Payloads that would run code try to create a file named :data:`MARKER` in the current directory;
the harness asserts that it never appears.  Nothing here is ever evaluated.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Callable, NamedTuple

import numpy as np

OK, REFUSED, EITHER = "ok", "refused", "either"
MARKER = "MARKER"
SYSTEM = f'__import__("os").system("touch {MARKER}")'


class Case(NamedTuple):
    id: str
    value: Any
    expect: str
    why: str = ""


# ---------------------------------------------------------------- activation strings
ACTIVATIONS: dict[str, tuple[Case, ...]] = {
    "code": (
        Case("docstring-breakout", f'x#"""+str({SYSTEM})+"""', REFUSED, "issue 11 #1: comment hides a payload"),
        Case("docstring-breakout-single", f"x#'''+str({SYSTEM})+'''", REFUSED),
        Case("docstring-breakout-r", f'x#"""+r"""+str({SYSTEM})+"""', REFUSED),
        Case("import", "__import__('os')", REFUSED),
        Case("system", SYSTEM, REFUSED),
        Case("semicolon", "x;import os", REFUSED),
        Case("semicolon-trailing", "x;", REFUSED),
        Case("newline-statement", f"x\nimport os;os.system('touch {MARKER}')", REFUSED),
        Case("comment", "x # comment", REFUSED),
        Case("comment-bare", "x#", REFUSED),
        Case("comment-triple-quote", 'x # """', REFUSED, "issue 11: module does not import"),
        Case("comment-N-escape", "x #\\N", REFUSED, "issue 11: '\\N' in a docstring is a SyntaxError"),
        Case("comment-x-escape", "x # \\x", REFUSED),
        Case("comment-u-escape", "x # \\u12", REFUSED),
        Case("comment-backslash-end", "x # \\", REFUSED),
        Case("backslash-continuation", "x\\\n+1", REFUSED),
        Case("paren-newline", "(x\n+1)", REFUSED),
        Case("string-literal", "'x'", REFUSED),
        Case("fstring", "f'{x}'", REFUSED),
        Case("attribute", "x.__class__", REFUSED),
        Case("attribute-call", "exp.__globals__", REFUSED),
        Case("subscript", "x[0]", REFUSED),
        Case("lambda", "lambda: x", REFUSED),
        Case("walrus", "(y:=x)", REFUSED),
        Case("ternary", "x if x else 1", REFUSED),
        Case("list", "[x]", REFUSED),
        Case("tuple", "x, x", REFUSED),
        Case("compare", "x < 1", REFUSED),
        Case("boolop", "x and 1", REFUSED),
        Case("keyword-arg", "exp(x=1)", REFUSED),
        Case("starred", "exp(*x)", REFUSED),
        Case("eval", "eval('x')", REFUSED),
        Case("open", "open('/etc/passwd')", REFUSED),
        Case("getattr", "getattr(x, 'real')", REFUSED),
        Case("builtins", "__builtins__", REFUSED),
        Case("sympify", "sympify('x')", REFUSED),
        Case("dunder-name", "__x__", REFUSED),
    ),
    "control-chars": (
        Case("trailing-newline-catalogue", "relu\n", EITHER, "issue 11: codegen $'relu\\n' wrote a broken module"),
        Case("trailing-newline-expr", "x\n", EITHER),
        Case("cr-inside", "x\r+1", REFUSED),
        Case("cr-trailing", "x\r", EITHER),
        Case("crlf-inside", "x\r\n+1", REFUSED),
        Case("nul-inside", "x\x00+1", REFUSED),
        Case("nul-trailing", "x\x00", REFUSED),
        Case("u2028-inside", "x\u2028+1", REFUSED),
        Case("u2029-trailing", "x\u2029", EITHER),
        Case("nel-inside", "x\x85+1", REFUSED),
        Case("vt-inside", "x\x0b+1", EITHER),
        Case("ff-inside", "x\x0c+1", EITHER),
        Case("escape-seq", "x\x1b[2J", REFUSED),
        Case("tab-inside", "x\t+\t1", EITHER),
        Case("zero-width-space", "x\u200b", REFUSED),
        Case("rtl-override", "x\u202e+1", REFUSED),
        Case("bom-leading", "\ufeffx", EITHER),
        Case("lone-surrogate", "x\udc80", REFUSED),
    ),
    "templates": (
        Case("jinja-expr", "{{7*7}}", REFUSED),
        Case("jinja-block", "{%", REFUSED),
        Case("jinja-block-full", "{% for a in b %}x{% endfor %}", REFUSED),
        Case("jinja-comment", "{# x #}", REFUSED),
        Case("jinja-in-expr", "x+{{x}}", REFUSED),
        Case("tex-input", "\\input{/etc/passwd}", REFUSED),
        Case("tex-write18", f"\\immediate\\write18{{touch {MARKER}}}", REFUSED),
        Case("tex-math", "$x$", REFUSED),
        Case("tex-braces-power", "x^{2}", REFUSED),
        Case("tex-caret", "2*x^2 + 1", OK, "^ means **"),
    ),
    "huge": (
        Case("power-tower", "9**9**9", REFUSED),
        Case("power-tower-10", "10**10**10", REFUSED),
        Case("x-power-tower", "x**(9**9**9)", REFUSED),
        Case("big-int-power", "2**100000", REFUSED),
        Case("exp-1e9", "exp(10**9)", REFUSED),
        Case("exp-exp-exp", "exp(exp(exp(x)))", REFUSED, "issue 11: gmp overflow abort (exit 134)"),
        Case("exp-exp", "exp(exp(x))", REFUSED),
        Case("exp-x2", "exp(x**2)", REFUSED),
        Case("exp-x2-over-4", "exp(x**2/4)", REFUSED, "phi^2 times the Gaussian is 1: not integrable"),
        Case("exp-x2-over-5", "exp(x**2/5)", EITHER, "square-integrable"),
        Case("x-pow-200", "x**200", EITHER),
        Case("x-pow-201", "x**201", EITHER),
        Case("x-pow-10-9", "x**(10**9)", REFUSED),
        Case("big-literal", "1e400*x", EITHER),
        Case("huge-literal", "1e999999*x", REFUSED),
        Case("tiny-literal", "1e-999999*x", EITHER),
        Case("long-int-literal", "1" * 5000 + "*x", REFUSED),
        Case("sin-pow-200", "sin(x)**200", EITHER, "issue 11: IndexError in hermite.py"),
        Case("poly-200-gauss", "(x+1)**200*exp(-x**2)", EITHER, "issue 11: IndexError in hermite.py"),
        Case("he60-he60", "He(60, He(60, x))", EITHER, "issue 11: hangs in check_square_integrable"),
        Case("he60-pow-200", "He(60, x)**200", EITHER, "issue 11: hangs in check_square_integrable"),
        Case("he-61", "He(61, x)", EITHER),
        Case("he-negative", "He(-1, x)", REFUSED),
        Case("he-fraction", "He(2.5, x)", REFUSED),
        Case("he-symbolic-degree", "He(x, x)", REFUSED),
        Case("hermite99", "hermite99", EITHER, "issue 11: ufunc TypeError"),
        Case("hermite60", "hermite60", EITHER),
        Case("hermite100", "hermite100", REFUSED),
        Case("monomial99", "monomial99", EITHER),
        Case("monomial0", "monomial0", EITHER),
        Case("nested-sin", "sin(" * 200 + "x" + ")" * 200, REFUSED),
        Case("nested-parens", "(" * 1000 + "x" + ")" * 1000, REFUSED),
        Case("long-sum", "+".join(["x"] * 5000), REFUSED),
        Case("long-name", "x" * 100000, REFUSED),
        Case("many-unary", "-" * 3000 + "x", REFUSED),
        Case("long-product", "*".join(["x"] * 150), EITHER),
        Case("sum-of-hermites", "+".join(f"He({n}, x)" for n in range(0, 61)), EITHER),
    ),
    "integrability": (
        Case("one-over-x", "1/x", REFUSED, "issue 11: accepted with meaningless numbers"),
        Case("x-pow-minus-1", "x**-1", REFUSED),
        Case("abs-pow-minus-half", "Abs(x)**(-1/2)", REFUSED),
        Case("abs-pow-minus-0.6", "Abs(x)**(-0.6)", REFUSED),
        Case("abs-pow-minus-0.4", "Abs(x)**(-0.4)", EITHER, "phi in L2, phi' is not"),
        Case("tan", "tan(x)", REFUSED),
        Case("sec", "1/cos(x)", REFUSED),
        Case("step-log", "step(x)*log(x)", EITHER, "issue 11: NaN kernels, complex Hermite output"),
        Case("log", "log(x)", REFUSED, "complex for x < 0"),
        Case("log-abs", "log(Abs(x))", EITHER),
        Case("sqrt", "sqrt(x)", REFUSED),
        Case("sqrt-abs", "sqrt(Abs(x))", EITHER),
        Case("cube-root", "x**(1/3)", REFUSED),
        Case("x-pow-x", "x**x", REFUSED),
        Case("minus-one-pow-x", "(-1)**x", REFUSED),
        Case("sign-sin-inv", "sign(sin(1/x))", EITHER, "issue 11: printer ValueError"),
        Case("sin-inv", "sin(1/x)", EITHER),
        Case("complex-unit", "I*x", REFUSED),
        Case("complex-literal", "x*1j", REFUSED),
        Case("nan-name", "nan", REFUSED),
        Case("inf-name", "inf", REFUSED),
        Case("oo", "oo", REFUSED),
        Case("zoo", "zoo", REFUSED),
        Case("division-by-zero", "x/0", REFUSED),
        Case("log-zero", "log(0)*x", REFUSED),
        Case("zero", "0", EITHER),
        Case("zero-times-x", "0*x", EITHER),
        Case("constant", "1", EITHER),
        Case("pi", "pi", EITHER),
        Case("huge-scale", "1e300*x", EITHER),
        Case("gauss-1e308", "exp(-x**2)*1e308", EITHER),
    ),
    "unicode": (
        Case("cyrillic-x", "\u0445", REFUSED),
        Case("greek-chi", "\u03c7", REFUSED),
        Case("fullwidth-x", "\uff58", EITHER, "NFKC folds it to x"),
        Case("fullwidth-relu", "\uff52\uff45\uff4c\uff55", EITHER),
        Case("math-italic-x", "\U0001d465**2", EITHER),
        Case("fullwidth-plus", "x\uff0b1", REFUSED),
        Case("combining", "x\u0301", REFUSED),
        Case("emoji", "x*\U0001f600", REFUSED),
        Case("non-ascii-catalogue", "r\u0435lu", REFUSED, "Cyrillic e"),
    ),
    "degenerate": (
        Case("empty", "", REFUSED),
        Case("space", " ", REFUSED),
        Case("spaces", "   \t ", REFUSED),
        Case("newline-only", "\n", REFUSED),
        Case("parens", "()", REFUSED),
        Case("operator-only", "**", REFUSED),
        Case("two-names", "relu relu", REFUSED),
        Case("unknown-name", "foo", REFUSED),
        Case("unknown-function", "foo(x)", REFUSED),
        Case("uppercase-catalogue", "RELU", REFUSED),
        Case("padded-catalogue", "  relu  ", EITHER),
        Case("dash-leading", "-x", EITHER, "argparse reads it as an option; `-- -x` passes it"),
        Case("option-like", "--help", EITHER, "argparse treats it as an option"),
        Case("relu-call", "relu(x)", OK),
    ),
    "benign": (
        Case("relu", "relu", OK),
        Case("tanh", "tanh", OK),
        Case("identity", "x", OK),
        Case("quadratic", "x**2", OK),
        Case("params-free-mix", "0.3*x + 0.7*Abs(x)", OK),
        Case("erf-expr", "erf(x)", OK),
    ),
}

#: cases that take seconds even when handled well: only in the long run (pytest -m fuzz)
HEAVY = ("sin-inv", "sqrt-abs", "x-pow-200", "x-pow-201", "abs-pow-minus-0.4", "log-abs", "long-product",
         "sum-of-hermites", "exp-x2-over-5", "hermite60", "monomial99")

#: a few cases cheap enough for the default run through a real ``python -m ntksym`` process
CRITICAL = ("docstring-breakout", "system", "exp-exp-exp", "comment-N-escape", "trailing-newline-catalogue")


def all_activations() -> list[tuple[str, Case]]:
    return [(cat, c) for cat, cases in ACTIVATIONS.items() for c in cases]


def activation(case_id: str) -> Case:
    return next(c for _, c in all_activations() if c.id == case_id)


# ---------------------------------------------------------------- --param NAME=VALUE
# value: (activation, [--param strings])
PARAMS: tuple[Case, ...] = (
    Case("value-import", ("a*x", ["a=__import__('os')"]), REFUSED),
    Case("value-system", ("a*x", [f"a={SYSTEM}"]), REFUSED),
    Case("value-comment", ("a*x", ['a=1#"""']), REFUSED),
    Case("value-semicolon", ("a*x", ["a=1;import os"]), REFUSED),
    Case("value-newline", ("a*x", ["a=1\nimport os"]), REFUSED),
    Case("value-empty", ("a*x", ["a="]), REFUSED),
    Case("missing-equals", ("a*x", ["a"]), REFUSED),
    Case("missing-name", ("a*x", ["=1"]), REFUSED),
    Case("double-equals", ("a*x", ["a==1"]), REFUSED),
    Case("value-inf-literal", ("a*x", ["a=1e999"]), REFUSED),
    Case("value-nan", ("a*x", ["a=nan"]), REFUSED),
    Case("value-inf", ("a*x", ["a=inf"]), REFUSED),
    Case("value-minus-inf", ("a*x", ["a=-inf"]), REFUSED),
    Case("value-power-tower", ("a*x", ["a=9**9**9"]), REFUSED),
    Case("value-big", ("a*x", ["a=10**400"]), EITHER),
    Case("value-x", ("a*x", ["a=x"]), REFUSED),
    Case("value-tuple", ("a*x", ["a=(1,2)"]), REFUSED),
    Case("value-complex", ("a*x", ["a=1j"]), REFUSED),
    Case("value-fraction", ("a*x", ["a=1/3"]), EITHER),
    Case("value-sqrt", ("a*x", ["a=sqrt(2)"]), EITHER),
    Case("value-hex", ("a*x", ["a=0x10"]), EITHER),
    Case("value-underscore", ("a*x", ["a=1_000"]), EITHER),
    Case("value-tiny", ("a*x", ["a=1e-400"]), EITHER),
    Case("value-huge-exp", ("exp(a*x)", ["a=1e10"]), EITHER),
    Case("value-makes-non-l2", ("exp(a*x**2)", ["a=1"]), REFUSED),
    Case("value-jinja", ("a*x", ["a={{7*7}}"]), REFUSED),
    Case("repeated", ("a*x", ["a=1", "a=2"]), EITHER),
    Case("name-import", ("a*x", ["a=1", "__import__=1"]), EITHER),
    Case("name-space", ("a*x", ["a=1", "a b=1"]), EITHER),
    Case("name-newline", ("a*x", ["a=1", "b\nimport os=1"]), EITHER),
    Case("name-triple-quote", ("a*x", ["a=1", 'b"""=1']), EITHER),
    Case("name-comment", ("a*x", ["a=1", "b#=1"]), EITHER),
    Case("name-keyword", ("a*x", ["a=1", "import=1"]), EITHER),
    Case("name-digit", ("a*x", ["a=1", "1b=1"]), EITHER),
    Case("name-dotted", ("a*x", ["a=1", "os.system=1"]), EITHER),
    Case("name-variable", ("a*x", ["a=1", "x=1"]), EITHER),
    Case("name-reserved-pi", ("pi*x", ["pi=1"]), EITHER),
    Case("name-long", ("a*x", ["a=1", "b" * 5000 + "=1"]), EITHER),
    Case("name-unicode", ("\u03b1*x", ["\u03b1=1"]), EITHER),
    Case("catalogue-unknown", ("relu", ["a=1"]), REFUSED),
    Case("catalogue-hostile-value", ("leaky_relu", [f"alpha={SYSTEM}"]), REFUSED),
    Case("catalogue-nan", ("leaky_relu", ["alpha=nan"]), REFUSED),
    Case("catalogue-ok", ("leaky_relu", ["alpha=0.2"]), OK),
    Case("exp-huge-slope", ("exp", ["a=1e300"]), EITHER),
)


# ---------------------------------------------------------------- --title (derive --out DIR)
TITLES: tuple[Case, ...] = (
    Case("tex-input", "\\input{/etc/passwd}", OK),
    Case("tex-write18", f"\\immediate\\write18{{touch {MARKER}}}", OK),
    Case("tex-end-document", "}\\end{document}", OK),
    Case("tex-specials", "% # & $ _ ^ ~ \\\\ { }", OK),
    Case("tex-catcode", "\\catcode`\\%=11 \\def\\x{}", OK),
    Case("newline", "line one\nline two", EITHER),
    Case("carriage-return", "a\rb", EITHER),
    Case("nul", "a\x00b", EITHER),
    Case("python-breakout", f'"""+str({SYSTEM})+"""', OK),
    Case("python-comment-newline", f"x\nimport os; os.system('touch {MARKER}')", EITHER),
    Case("jinja", "{{ 7*7 }} {% if 1 %}x{% endif %} ((* 7*7 *)) <<7*7>>", OK),
    Case("unicode", "\u00e9 \u2211 \U0001f600 \u202e", EITHER),
    Case("long", "t" * 20000, EITHER),
    Case("empty", "", EITHER),
)
#: one title that carries the worst of the above, for the default run
TITLE_COMBINED = Case("combined", f'\\immediate\\write18{{touch {MARKER}}}"""+str({SYSTEM})+"""}}{{{{7*7}}}}%\n#',
                      EITHER)


# ---------------------------------------------------------------- output paths
class Target(NamedTuple):
    """An output target: ``setup`` says what is there before the run; ``name`` is the file name
    (the writer's suffix is appended, except to names of only "n": their length is the total length);
    ``force`` adds --force."""
    setup: str
    name: str = "out"
    force: bool = False


# setups understood by the harness: none, file, dir, symlink-file, symlink-dangling, symlink-dir,
# fifo, chardev (a private device node, root only), parent-file, parent-missing, parent-symlink,
# readonly-parent (skipped as root), proc (an absolute /proc/... path)
OUTPUTS: tuple[Case, ...] = (
    Case("plain", Target("none"), OK),
    Case("newline-name", Target("none", "a\nb"), EITHER, "issue 11: ends the # Command: line"),
    Case("cr-name", Target("none", "a\rb"), EITHER),
    Case("triple-quote-name", Target("none", 'a"""b'), EITHER),
    Case("quote-backslash-name", Target("none", "a'\\b"), EITHER),
    Case("hash-name", Target("none", "a#b"), EITHER),
    Case("shell-name", Target("none", f"$(touch {MARKER});`touch {MARKER}`"), EITHER),
    Case("escape-name", Target("none", "a\x1b[2Jb"), EITHER),
    Case("u2028-name", Target("none", "a\u2028b"), EITHER),
    Case("dash-name", Target("none", "-rf"), EITHER),
    Case("jinja-name", Target("none", "{{7*7}}{%"), EITHER),
    Case("name-240", Target("none", "n" * 240), OK, "issue 11: staging prefix pushed names >= 240 past NAME_MAX"),
    Case("name-250", Target("none", "n" * 250), OK),
    Case("name-255", Target("none", "n" * 255), OK, "the longest name a file system takes"),
    Case("name-256", Target("none", "n" * 256), REFUSED),
    Case("existing-file", Target("file"), REFUSED),
    Case("existing-file-force", Target("file", force=True), OK),
    Case("existing-dir", Target("dir"), REFUSED),
    Case("existing-dir-force", Target("dir", force=True), EITHER, "refused for file writers, replaced by derive"),
    Case("symlink-file", Target("symlink-file"), REFUSED),
    Case("symlink-file-force", Target("symlink-file", force=True), OK, "replace the link, not its target"),
    Case("symlink-dangling", Target("symlink-dangling"), EITHER),
    Case("symlink-dangling-force", Target("symlink-dangling", force=True), OK),
    Case("symlink-dir", Target("symlink-dir"), REFUSED),
    Case("symlink-dir-force", Target("symlink-dir", force=True), EITHER),
    Case("fifo", Target("fifo"), REFUSED),
    Case("fifo-force", Target("fifo", force=True), REFUSED),
    Case("chardev", Target("chardev"), REFUSED),
    Case("chardev-force", Target("chardev", force=True), REFUSED, "issue 11: as root it replaced /dev/full"),
    Case("parent-is-file", Target("parent-file"), REFUSED),
    Case("parent-missing", Target("parent-missing"), REFUSED),
    Case("through-symlinked-dir", Target("parent-symlink"), OK),
    Case("readonly-parent", Target("readonly-parent"), REFUSED),
    Case("proc", Target("proc"), REFUSED),
)


# ---------------------------------------------------------------- input .npy files
def _npy_header(shape, descr="<f8", version=(1, 0), extra="") -> bytes:
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, %s}" % (descr, tuple(shape), extra)
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin1")
    if version == (1, 0):
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(body)) + body


def _save(arr, allow_pickle=False) -> Callable[[str], None]:
    def write(path):
        with open(path, "wb") as fh:
            np.save(fh, arr, allow_pickle=allow_pickle)
    return write


def _raw(data: bytes) -> Callable[[str], None]:
    def write(path):
        with open(path, "wb") as fh:
            fh.write(data)
    return write


def _good(n=3, d=2, dtype=np.float64):
    return np.random.default_rng(0).normal(size=(n, d)).astype(dtype)


def _npz(path):
    with open(path, "wb") as fh:
        np.savez(fh, a=_good(), b=_good())


def _truncated(path):
    with open(path, "wb") as fh:
        fh.write(_npy_header((3, 2)) + b"\x00" * 20)


_nan = _good()
_nan[1, 1] = np.nan
_inf = _good()
_inf[0, 0] = np.inf

# value: a writer(path) or one of the special strings: "missing", "directory", "fifo", "/dev/null", "/dev/zero"
INPUTS: tuple[Case, ...] = (
    Case("good-float64", _save(_good()), OK),
    Case("good-float32", _save(_good(dtype=np.float32)), OK),
    Case("good-int", _save(np.arange(6).reshape(3, 2)), OK),
    Case("big-endian", _save(_good().astype(">f8")), OK),
    Case("fortran-order", _save(np.asfortranarray(_good())), OK),
    Case("float16", _save(_good(dtype=np.float16)), EITHER),
    Case("bool", _save(np.ones((3, 2), dtype=bool)), EITHER),
    Case("uint8", _save(np.ones((3, 2), dtype=np.uint8)), EITHER),
    Case("empty-file", _raw(b""), REFUSED, "issue 11: EOFError"),
    Case("dev-null", "/dev/null", REFUSED, "issue 11: EOFError"),
    Case("dev-zero", "/dev/zero", REFUSED),
    Case("missing", "missing", REFUSED),
    Case("directory", "directory", REFUSED),
    Case("fifo", "fifo", REFUSED, "issue 11: blocks forever"),
    Case("huge-header-shape", _raw(_npy_header((10**12, 10**6))), REFUSED, "issue 11: MemoryError"),
    Case("huge-header-shape-2", _raw(_npy_header((2**62, 2))), REFUSED),
    Case("overflowing-shape", _raw(_npy_header((2**70, 2**70))), REFUSED),
    Case("negative-shape", _raw(_npy_header((-1, 2))), REFUSED),
    Case("huge-header-text", _raw(_npy_header((3, 2), version=(2, 0), extra="'pad': '" + "p" * 200000 + "'")),
         REFUSED),
    Case("header-payload", _raw(_npy_header((3, 2), extra=f"'x': {SYSTEM}") + b"\x00" * 48), REFUSED),
    Case("truncated", _truncated, REFUSED),
    Case("bad-magic", _raw(b"\x93NUMPX\x01\x00" + b"\x00" * 100), REFUSED),
    Case("text-file", _raw(b"1,2\n3,4\n"), REFUSED),
    Case("npz-as-npy", _npz, REFUSED),
    Case("complex", _save(_good() + 1j), REFUSED, "issue 11: imaginary part dropped with a warning"),
    Case("complex-real-valued", _save(_good().astype(np.complex128)), REFUSED),
    Case("strings", _save(np.array([["1", "2"], ["3", "4"]])), REFUSED, "issue 11: accepted"),
    Case("bytes", _save(np.array([[b"1", b"2"]])), REFUSED),
    Case("object-pickle", _save(np.array([[1.0, None]], dtype=object), allow_pickle=True), REFUSED),
    Case("structured", _save(np.zeros((3,), dtype=[("a", "f8"), ("b", "f8")])), REFUSED),
    Case("datetime", _save(np.array([["2020-01-01", "2020-01-02"]], dtype="datetime64[D]")), REFUSED),
    Case("timedelta", _save(np.ones((3, 2), dtype="timedelta64[s]")), REFUSED),
    Case("nan", _save(_nan), REFUSED),
    Case("inf", _save(_inf), REFUSED),
    Case("huge-values", _save(np.full((3, 2), 1e300)), EITHER),
    Case("three-d", _save(np.zeros((2, 2, 2))), REFUSED),
    Case("one-d", _save(np.arange(3.0)), EITHER),
    Case("zero-d", _save(np.float64(1.0)), REFUSED),
    Case("no-rows", _save(np.zeros((0, 2))), EITHER),
    Case("no-columns", _save(np.zeros((3, 0))), EITHER),
)


# ---------------------------------------------------------------- numbers
# value: (flag, text); the harness knows which subcommands take each flag
NUMBERS: tuple[Case, ...] = (
    Case("depth-0", ("--depth", "0"), REFUSED),
    Case("depth-neg", ("--depth", "-1"), REFUSED),
    Case("depth-1e6", ("--depth", "1000000"), REFUSED, "issue 11: runs for minutes"),
    Case("depth-1e4", ("--depth", "10000"), OK, "issue 11: depth up to at least 1e4 must work"),
    Case("depth-abc", ("--depth", "abc"), REFUSED),
    Case("depth-float", ("--depth", "1e3"), REFUSED),
    Case("depth-empty", ("--depth", ""), REFUSED),
    Case("depth-2-63", ("--depth", str(2**63)), REFUSED),
    Case("depth-5000-digits", ("--depth", "9" * 5000), REFUSED),
    Case("sigma-w-1e200", ("--sigma-w", "1e200"), REFUSED, "issue 11: OverflowError"),
    Case("sigma-w-nan", ("--sigma-w", "nan"), REFUSED),
    Case("sigma-w-inf", ("--sigma-w", "inf"), REFUSED),
    Case("sigma-w-1e400", ("--sigma-w", "1e400"), REFUSED),
    Case("sigma-w-neg", ("--sigma-w", "-1"), REFUSED),
    Case("sigma-w-neg-zero", ("--sigma-w", "-0"), EITHER),
    Case("sigma-w-zero", ("--sigma-w", "0"), EITHER),
    Case("sigma-w-tiny", ("--sigma-w", "1e-300"), EITHER),
    Case("sigma-w-abc", ("--sigma-w", "abc"), REFUSED),
    Case("sigma-w-import", ("--sigma-w", "__import__('os')"), REFUSED),
    Case("sigma-w-1e10", ("--sigma-w", "1e10"), EITHER),
    Case("sigma-b-1e200", ("--sigma-b", "1e200"), REFUSED),
    Case("sigma-b-nan", ("--sigma-b", "nan"), REFUSED),
    Case("sigma-b-neg", ("--sigma-b", "-1"), REFUSED),
    Case("sigma-b-inf", ("--sigma-b", "inf"), REFUSED),
    Case("order-0", ("--order", "0"), REFUSED),
    Case("order-neg", ("--order", "-1"), REFUSED),
    Case("order-huge", ("--order", "1000000000"), REFUSED),
    Case("order-2-64", ("--order", str(2**64)), REFUSED),
    Case("digits-0", ("--digits", "0"), REFUSED),
    Case("digits-huge", ("--digits", "100000000"), REFUSED),
    Case("width-0", ("--width", "0"), REFUSED),
    Case("width-huge", ("--width", "1000000000"), REFUSED),
    Case("samples-huge", ("--samples", "1000000000"), REFUSED),
    Case("dim-huge", ("--dim", "1000000000"), REFUSED),
    Case("kmax-huge", ("--kmax", "1000000000"), REFUSED),
    Case("grid-huge", ("--grid", "1000000000"), REFUSED),
    Case("gammas-nan", ("--gammas", "nan"), REFUSED),
    Case("gammas-empty", ("--gammas", ","), REFUSED),
    Case("gammas-huge", ("--gammas", "1e308,1e308"), EITHER),
    Case("gammas-many", ("--gammas", ",".join(["0.5"] * 100000)), REFUSED),
)


# ---------------------------------------------------------------- records (derivation.json)
SCHEMA = "ntksym.derivation/1"


def minimal_record(**over) -> dict:
    """A hand-made record of relu at depth 1 (the fields rederive reads); ``over`` replaces parts."""
    rec = {"schema": SCHEMA,
           "activation": {"name": "relu", "expr": "Max(0, x)", "params": {}},
           "network": {"depth": 1, "sigma_w": 1.0, "sigma_b": 0.0, "parameterization": "ntk", "width": None},
           "hermite": [{"k": k} for k in range(4)]}
    for path, value in over.items():
        node = rec
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return rec


def _j(obj) -> bytes:
    return json.dumps(obj).encode()


# value: bytes (the file), or one of "missing", "directory", "fifo", "/dev/null"
RECORDS: tuple[Case, ...] = (
    Case("minimal", _j(minimal_record()), EITHER, "hand-made; the harness also round-trips a real one"),
    Case("not-json", b"{", REFUSED, "issue 11: JSONDecodeError"),
    Case("empty", b"", REFUSED),
    Case("binary", b"\xff\xfe\x00\x80", REFUSED, "issue 11: UnicodeDecodeError"),
    Case("list", b"[]", REFUSED, "issue 11: AttributeError"),
    Case("null", b"null", REFUSED),
    Case("string", b'"x"', REFUSED),
    Case("number", b"1", REFUSED),
    Case("deep-list", b"[" * 100000 + b"]" * 100000, REFUSED, "issue 11: RecursionError"),
    Case("deep-dict", b'{"a":' * 50000 + b"1" + b"}" * 50000, REFUSED),
    Case("huge-int", b'{"schema": "' + SCHEMA.encode() + b'", "x": ' + b"9" * 10000 + b"}", REFUSED),
    Case("no-schema", _j({"activation": {}}), REFUSED),
    Case("wrong-schema", _j(minimal_record(schema="other/1")), REFUSED),
    Case("schema-list", _j(minimal_record(schema=[SCHEMA])), REFUSED),
    Case("no-activation", _j({k: v for k, v in minimal_record().items() if k != "activation"}), REFUSED),
    Case("activation-list", _j(minimal_record(activation=[])), REFUSED, "issue 11: TypeError"),
    Case("expr-missing", _j(minimal_record(activation={"params": {}})), REFUSED, "issue 11: KeyError"),
    Case("expr-number", _j(minimal_record(activation__expr=1)), REFUSED),
    Case("expr-payload", _j(minimal_record(activation__expr=SYSTEM)), REFUSED),
    Case("expr-comment", _j(minimal_record(activation__expr=f'x#"""+str({SYSTEM})+"""')), REFUSED),
    Case("expr-not-l2", _j(minimal_record(activation__expr="exp(exp(exp(x)))")), REFUSED),
    Case("params-list", _j(minimal_record(activation__params=[1])), REFUSED),
    Case("params-payload", _j(minimal_record(activation__expr="a*x", activation__params={"a": SYSTEM})), REFUSED),
    Case("params-nested", _j(minimal_record(activation__expr="a*x", activation__params={"a": {"b": 1}})), REFUSED),
    Case("no-network", _j({k: v for k, v in minimal_record().items() if k != "network"}), REFUSED),
    Case("network-string", _j(minimal_record(network="deep")), REFUSED),
    Case("depth-1e6", _j(minimal_record(network__depth=10**6)), REFUSED, "issue 11: hangs"),
    Case("depth-string", _j(minimal_record(network__depth="1")), REFUSED),
    Case("depth-negative", _j(minimal_record(network__depth=-1)), REFUSED),
    Case("depth-float", _j(minimal_record(network__depth=1.5)), REFUSED),
    Case("depth-bool", _j(minimal_record(network__depth=True)), REFUSED),
    Case("depth-1e308", b'{"schema": "%s", "network": {"depth": 1e308}}' % SCHEMA.encode(), REFUSED),
    Case("sigma-w-inf", _j(minimal_record()).replace(b'"sigma_w": 1.0', b'"sigma_w": 1e999'), REFUSED,
         "issue 11: OverflowError"),
    Case("sigma-w-nan", _j(minimal_record()).replace(b'"sigma_w": 1.0', b'"sigma_w": NaN'), REFUSED),
    Case("sigma-w-string", _j(minimal_record(network__sigma_w="nan")), REFUSED),
    Case("sigma-w-negative", _j(minimal_record(network__sigma_w=-1.0)), REFUSED),
    Case("sigma-b-huge", _j(minimal_record(network__sigma_b=1e200)), REFUSED),
    Case("parameterization-bad", _j(minimal_record(network__parameterization="evil")), REFUSED),
    Case("width-string", _j(minimal_record(network__width="x")), REFUSED),
    Case("hermite-5000", _j(minimal_record(hermite=[{"k": k} for k in range(5000)])), REFUSED, "issue 11: hangs"),
    Case("hermite-dict", _j(minimal_record(hermite={"k": 1})), REFUSED),
    Case("hermite-missing", _j({k: v for k, v in minimal_record().items() if k != "hermite"}), REFUSED),
    Case("hermite-empty", _j(minimal_record(hermite=[])), EITHER),
    Case("bom", b"\xef\xbb\xbf" + _j(minimal_record()), EITHER),
    Case("duplicate-keys", _j(minimal_record())[:-1] + b', "schema": "other/1"}', EITHER),
    Case("latin1", _j(minimal_record(activation__name="\u00e9")).replace(b"\\u00e9", b"\xe9"), REFUSED),
    Case("file-missing", "missing", REFUSED),
    Case("file-directory", "directory", REFUSED),
    Case("file-fifo", "fifo", REFUSED),
    Case("file-dev-null", "/dev/null", REFUSED),
)
