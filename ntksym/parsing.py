"""Safe parsing of activation strings such as ``"a*x + b*Abs(x)"`` into SymPy.

Why not :func:`sympy.sympify` / ``parse_expr``: both finally call Python's
``eval`` on the string, so ``"__import__('os').system(...)"`` would run.  This
module never evaluates the text.  It only *parses* it with
``ast.parse(text, mode="eval")`` (which builds a syntax tree and runs nothing)
and walks that tree against an explicit whitelist, building the SymPy
expression node by node.

Accepted syntax
    * numbers: integer literals with ``|n| <= 10**9`` and finite decimal
      literals, made exact from the digits as written (``0.3`` -> 3/10,
      ``1e-3`` -> 1/1000);
    * names: the variable, the declared parameters and the constants ``pi``,
      ``E`` and ``e`` (``e`` is Euler's number unless declared as a name);
    * ``+ - * /``, ``**`` and ``^`` (both power; ``^`` is rewritten to ``**``
      before parsing, so ``2*x^2 + 1`` means ``2*x**2 + 1``), unary ``+ -``;
    * calls ``f(a, ...)`` of the names in :data:`ALLOWED_FUNCTIONS`, with
      positional arguments only.

Everything else (attribute access, subscripts, lambda, comparisons, strings,
comprehensions, f-strings, ``:=``, ...) raises :class:`ParseError` with a
one-line message, as do results that are not finite and real (``1/0``,
``log(0)``, ``sqrt(-1)``) or that contain an undeclared symbol.  The text must
be one expression at the token level: comments (``#``, which ``ast.parse``
would silently drop), line breaks, ``;`` and ``\\`` are refused before parsing,
so the accepted text is exactly the expression that was built.

Hostile input is kept cheap.  Before parsing: the text length, and after: the
number of syntax nodes and the nesting depth (``MAX_*`` constants).  While
building, SymPy's automatic evaluation is the danger (``9**9**9``,
``exp(10**9*log(3))``, ``exp(exp(10**9))``), so every power and function
argument is checked first: numeric exponents are small, exact numbers stay
below ``MAX_NUMBER_BITS`` bits and numbers inside function arguments below
``2**MAX_ARGUMENT_LOG2`` in magnitude (both ways).  ``Max``/``Min`` do not
compare symbolic arguments.  As a backstop the whole build runs under
:func:`ntksym.bounded.time_limit` (``PARSE_SECONDS``, main thread only).
"""
from __future__ import annotations

import ast
import io
import keyword
import math
import tokenize
import unicodedata
import warnings
from fractions import Fraction
from types import MappingProxyType
from typing import Callable, Iterable, Mapping, NamedTuple, NoReturn

import sympy

from ntksym.bounded import time_limit
from ntksym.errors import DerivationTimeout, ParseError

__all__ = ["ALLOWED_FUNCTIONS", "parse_expression"]

MAX_LENGTH = 2000            # characters of activation text
MAX_NODES = 1000             # syntax nodes (operator and context tokens not counted)
MAX_DEPTH = 60               # nesting depth; a chain a+b-c+... or a*b/c*... is one level
MAX_INT_LITERAL = 10**9      # largest integer (or decimal) literal
MAX_EXPONENT = 200           # largest |exponent| of a numeric exponent
MAX_LITERAL_EXP10 = 400      # largest |k| in a decimal literal 1.5e<k>
MAX_HERMITE_DEGREE = 60      # largest n in He(n, x)
MAX_NUMBER_BITS = 4096       # largest exact number anywhere (keeps it cheap and printable)
MAX_ROOT_BASE_BITS = 1024    # largest number raised to a fractional power (SymPy factors it)
MAX_TREE_SIZE = 50_000       # SymPy nodes of the result, counted as a tree
MAX_ARGUMENT_LOG2 = 1024     # numeric function arguments and exponents stay within 2**(+-1024)
PARSE_SECONDS = 5.0          # backstop on building the expression (main thread only, see ntksym.bounded)

_CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "e": sympy.E}
_RESERVED = ("pi", "E")      # constants that cannot be redeclared; "e" can


def _fail(message: str) -> NoReturn:
    """Raise ParseError with ``message`` squeezed onto one line."""
    raise ParseError(" ".join(message.split()))


# ------------------------------------------------------------ cost guards


_NON_REAL = "the activation contains a non-real constant (e.g. sqrt(-1), log(-1) or (-8)**(1/3))"


class _Stats(NamedTuple):
    size: int         # nodes of the expression counted as a tree
    bits: int         # bit length of its largest exact number
    numeric: bool     # True when it contains no symbol
    log2: float       # numeric only: an upper bound of |log2 |value|| (inf when unknown)
    peak: float       # the largest such bound over its numeric subexpressions
    imaginary: bool   # contains the imaginary unit


def _exp2(power: float) -> float:
    return math.inf if power > 1000 else 2.0 ** power


def _power_log2(base_log2: float, exponent_log2: float) -> float:
    """Bound |log2 |b**e|| = |e| |log2 |b|| from the bounds for b and e."""
    return base_log2 * _exp2(exponent_log2) if base_log2 else 0.0


def _log2_bound(node: sympy.Basic, logs: list[float]) -> float:
    """Bound |log2 |value|| of a numeric node from its arguments' bounds.

    Only the growth side matters for cost, so cancellation in sums is ignored.
    """
    if isinstance(node, sympy.Add):
        return max(logs) + math.log2(len(logs))
    if isinstance(node, sympy.Mul):
        return sum(logs)
    if isinstance(node, sympy.Pow):
        return _power_log2(logs[0], logs[1])
    if isinstance(node, (sympy.exp, sympy.sinh, sympy.cosh)):
        return 1.45 * _exp2(logs[0]) + 1
    if isinstance(node, sympy.erfc):
        return 1.45 * _exp2(2 * logs[0]) + 2
    if isinstance(node, sympy.tan):
        return 8 * logs[0] + 8
    return max(logs) + 2  # log, asinh and the bounded functions (erf, tanh, sin, Abs, Max, ...)


def _leaf_stats(node: sympy.Basic) -> _Stats:
    if isinstance(node, sympy.Rational):
        bits = max(abs(node.p).bit_length(), node.q.bit_length())
        log2 = abs(math.log2(abs(node.p)) - math.log2(node.q)) if node.p else 0.0
        return _Stats(1, bits, True, log2, log2, False)
    if isinstance(node, sympy.Symbol):
        return _Stats(1, 0, False, math.inf, 0.0, False)
    return _Stats(1, 0, True, 2.0, 2.0, node is sympy.I)  # pi, E, I, zoo, ...


def _measure(expr: sympy.Basic) -> _Stats:
    """Size, number and magnitude statistics of ``expr``.

    Shared subexpressions are visited once, so this is cheap even when the tree
    (e.g. nested ``He`` expansions) is exponentially larger than the DAG.
    """
    memo: dict[sympy.Basic, _Stats] = {}

    def visit(node: sympy.Basic) -> _Stats:
        if node not in memo:
            if not node.args:
                memo[node] = _leaf_stats(node)
            else:
                args = [visit(arg) for arg in node.args]
                numeric = all(arg.numeric for arg in args)
                log2 = _log2_bound(node, [arg.log2 for arg in args]) if numeric else math.inf
                memo[node] = _Stats(1 + sum(arg.size for arg in args), max(arg.bits for arg in args), numeric,
                                    log2, max([log2 if numeric else 0.0] + [arg.peak for arg in args]),
                                    any(arg.imaginary for arg in args))
        return memo[node]

    return visit(expr)


def _subexpressions(expr: sympy.Basic) -> set[sympy.Basic]:
    """The distinct subexpressions of ``expr`` (each shared one once)."""
    seen: set[sympy.Basic] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.args)
    return seen


_TOO_LARGE = f"a number in the activation is beyond 2**(+-{MAX_ARGUMENT_LOG2}), too large (or small) to evaluate"


def _check_operand(value: sympy.Expr) -> None:
    """Refuse a function argument or value with a number beyond 2**(+-MAX_ARGUMENT_LOG2), or non-real.

    SymPy evaluates the numbers inside arguments (to decide signs, comparisons,
    ...), and e.g. ``exp(exp(10**9))`` would need a billion bits of precision.
    """
    stats = _measure(value)
    if stats.peak > MAX_ARGUMENT_LOG2:
        _fail(_TOO_LARGE)
    if stats.imaginary:
        _fail(_NON_REAL)


def _check_power(base: sympy.Expr, exponent: sympy.Expr) -> None:
    """Refuse ``base**exponent`` when SymPy would compute a huge or non-real number.

    Recurses where SymPy merges powers: ``(b**e)**f -> b**(e*f)``,
    ``(a*b)**f -> a**f*b**f`` and ``exp(a)**f -> exp(a*f)``.
    """
    b, e = _measure(base), _measure(exponent)
    if e.peak + math.log2(1 + (b.log2 if b.numeric else 0.0)) > MAX_ARGUMENT_LOG2:
        _fail(_TOO_LARGE)
    if b.numeric and e.numeric and _power_log2(b.log2, e.log2) > MAX_ARGUMENT_LOG2:
        _fail(_TOO_LARGE)
    if b.numeric and exponent.is_Rational:  # SymPy computes b**(p/q) exactly, factoring b
        _check_root(b.bits, exponent)
    if e.imaginary or (b.numeric and exponent.is_integer is not True and base.is_extended_negative):
        _fail(_NON_REAL)
    if isinstance(base, sympy.Pow):
        _check_power(base.base, base.exp * exponent)
    elif isinstance(base, sympy.Mul):
        for factor in base.args:
            _check_power(factor, exponent)
    elif isinstance(base, sympy.exp):
        _check_exp(base.args[0] * exponent)


def _check_root(bits: int, exponent: sympy.Rational) -> None:
    """Refuse an exact power of a ``bits``-bit number that SymPy could not compute cheaply."""
    size = abs(exponent.p) if exponent.q == 1 else max(abs(exponent.p), exponent.q)
    if bits * size > MAX_NUMBER_BITS or (exponent.q > 1 and bits > MAX_ROOT_BASE_BITS):
        _fail("a number in the activation would be too large to compute")


def _check_product(factors: list[sympy.Expr]) -> None:
    """SymPy merges numeric powers in products: ``2**a*2**b -> 2**(a+b)`` and
    ``a**r*b**r -> (a*b)**r``; check the merged powers before they are computed."""
    by_base: dict[sympy.Expr, list[sympy.Expr]] = {}
    for factor in factors:
        for part in sympy.Mul.make_args(factor):
            base, exponent = part.as_base_exp()
            if base.is_Rational and exponent.is_Rational:
                by_base.setdefault(base, []).append(exponent)
    by_exponent: dict[sympy.Expr, int] = {}
    for base, exponents in by_base.items():
        total = sympy.Add(*exponents)
        _check_power(base, total)
        by_exponent[total] = by_exponent.get(total, 0) + _measure(base).bits
    for exponent, bits in by_exponent.items():
        _check_root(bits, exponent)


def _check_exp(arg: sympy.Expr) -> None:
    """Checks for ``exp(arg)``; SymPy rewrites ``exp(c*log(b))`` as ``b**c``."""
    _check_operand(arg)
    for node in _subexpressions(arg):
        if isinstance(node, sympy.Mul):
            coeff, rest = node.as_coeff_Mul()
            for factor in sympy.Mul.make_args(rest):
                if isinstance(factor, sympy.log):
                    _check_power(factor.args[0], coeff)


def _exp(arg: sympy.Expr) -> sympy.Expr:
    _check_exp(arg)
    return sympy.exp(arg)


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    """``base**exponent`` after the cost checks (``E**y`` is ``exp(y)``)."""
    if exponent.is_Rational and abs(exponent) > MAX_EXPONENT:
        _fail(f"exponent {exponent} is too large (at most {MAX_EXPONENT} in absolute value)")
    if base is sympy.E:
        return _exp(exponent)
    _check_power(base, exponent)
    return sympy.Pow(base, exponent)


# ------------------------------------------------------------ the function whitelist


class _Function(NamedTuple):
    build: Callable[..., sympy.Expr]
    min_args: int
    max_args: int | None  # None: no upper bound


def _heaviside(arg: sympy.Expr) -> sympy.Expr:
    return sympy.Heaviside(arg, sympy.S.Half)


def _extremum(cls: type) -> Callable[..., sympy.Expr]:
    """Max/Min builder.  Numeric arguments are folded into one; symbolic ones are
    not compared (SymPy's pairwise symbolic comparisons can take seconds), the
    result is ``cls(..., evaluate=False)``, which still sorts and de-duplicates,
    so ``max(x, 0) == Max(x, 0)`` and ``max(x, 0, 1) == Max(x, 1)``."""
    def build(*args: sympy.Expr) -> sympy.Expr:
        numbers = [arg for arg in args if _measure(arg).numeric]
        symbolic = [arg for arg in args if not _measure(arg).numeric]
        try:
            folded = [cls(*numbers)] if numbers else []
        except (TypeError, ValueError):  # e.g. a non-real number: Max(sqrt(-1), 1)
            _fail(f"the arguments of {cls.__name__} must be real and comparable")
        return cls(*symbolic, *folded, evaluate=False) if symbolic else folded[0]
    return build


_max, _min = _extremum(sympy.Max), _extremum(sympy.Min)


def _hermite_coefficients(n: int) -> list[int]:
    """Coefficients c_k of He_n(t) = sum c_k t**k, by He_{k+1} = t He_k - k He_{k-1}."""
    previous, current = [], [1]
    for k in range(n):
        following = [0] + current
        for i, c in enumerate(previous):
            following[i] -= k * c
        previous, current = current, following
    return current


def _hermite(n: sympy.Expr, arg: sympy.Expr) -> sympy.Expr:
    """Probabilists' Hermite polynomial He_n(arg), expanded in powers of ``arg``."""
    if not (n.is_Integer and 0 <= n <= MAX_HERMITE_DEGREE):
        _fail(f"He(n, x) needs a literal integer degree 0 <= n <= {MAX_HERMITE_DEGREE}, got {n}")
    coefficients = _hermite_coefficients(int(n))
    result = sympy.Add(*[c * _power(arg, sympy.Integer(k)) for k, c in enumerate(coefficients) if c])
    if _measure(result).size > MAX_TREE_SIZE:
        _fail("the activation is too large once He(n, x) is expanded")
    return result


def _unary(build: Callable[[sympy.Expr], sympy.Expr]) -> _Function:
    return _Function(build, 1, 1)


_FUNCTIONS: dict[str, _Function] = {
    "Abs": _unary(sympy.Abs), "abs": _unary(sympy.Abs), "sign": _unary(sympy.sign),
    "Heaviside": _unary(_heaviside), "step": _unary(_heaviside),
    "erf": _unary(sympy.erf), "erfc": _unary(sympy.erfc),
    "exp": _unary(_exp), "log": _unary(sympy.log),
    "sqrt": _unary(lambda arg: _power(arg, sympy.S.Half)),
    "sin": _unary(sympy.sin), "cos": _unary(sympy.cos), "tan": _unary(sympy.tan),
    "tanh": _unary(sympy.tanh), "sinh": _unary(sympy.sinh), "cosh": _unary(sympy.cosh),
    "atan": _unary(sympy.atan), "arctan": _unary(sympy.atan),
    "asinh": _unary(sympy.asinh), "arcsinh": _unary(sympy.asinh),
    "Max": _Function(_max, 2, None), "max": _Function(_max, 2, None),
    "Min": _Function(_min, 2, None), "min": _Function(_min, 2, None),
    "relu": _unary(lambda arg: _max(arg, sympy.S.Zero)),
    "sigmoid": _unary(lambda arg: 1 / (1 + _exp(-arg))),
    "softplus": _unary(lambda arg: sympy.log(1 + _exp(arg))),
    "Phi": _unary(lambda arg: (1 + sympy.erf(arg / sympy.sqrt(2))) / 2),
    "He": _Function(_hermite, 2, 2),
}

#: Whitelisted function names -> builders taking SymPy arguments.  ``Heaviside``
#: and ``step`` use H(0) = 1/2; ``relu(u) = Max(u, 0)``; ``sigmoid(u) =
#: 1/(1 + exp(-u))``; ``softplus(u) = log(1 + exp(u))``; ``Phi`` is the standard
#: normal CDF; ``He(n, u)`` is the probabilists' Hermite polynomial, 0 <= n <= 60.
ALLOWED_FUNCTIONS: Mapping[str, Callable[..., sympy.Expr]] = MappingProxyType(
    {name: spec.build for name, spec in _FUNCTIONS.items()})


# ------------------------------------------------------------ text and tree checks


def _namespace(variable: str, parameters: Iterable[str]) -> dict[str, sympy.Expr]:
    """Names usable in the text: constants, then the real symbols (which may shadow ``e``)."""
    names = [parameters] if isinstance(parameters, str) else list(parameters or ())
    for name in [variable, *names]:
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
                and unicodedata.normalize("NFKC", name) == name):
            _fail(f"{name!r} is not a valid variable or parameter name")
        if name in _FUNCTIONS or name in _RESERVED:
            _fail(f"the name {name!r} is reserved for a function or constant")
    if len({variable, *names}) != len(names) + 1:
        _fail("the variable and parameter names must all be different")
    namespace: dict[str, sympy.Expr] = dict(_CONSTANTS)
    namespace.update({name: sympy.Symbol(name, real=True) for name in [variable, *names]})
    return namespace


def _prepare(text: str) -> tuple[str, list[int]]:
    """Strip, validate characters and rewrite ``^`` as ``**``.

    Returns the source to parse and, for each of its characters, the 0-based
    column in ``text`` it came from (so error messages point at the user's text).
    """
    if not isinstance(text, str):
        _fail(f"an activation must be a string, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        _fail(f"activation is too long ({len(text)} characters, at most {MAX_LENGTH})")
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    if not stripped:
        _fail("empty activation")
    source, origin = [], []
    for i, char in enumerate(stripped, start=lead):
        if not char.isprintable():
            what = "NUL byte" if char == "\0" else f"non-printable character U+{ord(char):04X}"
            _fail(f"{what} at column {i + 1} is not allowed in an activation")
        source.append("**" if char == "^" else char)
        origin.extend([i, i] if char == "^" else [i])
    return "".join(source), origin + [lead + len(stripped)]


_NOT_ONE_EXPRESSION = {tokenize.COMMENT: "a comment ('#')", tokenize.NL: "a line break",
                       tokenize.NEWLINE: "a line break"}


def _check_tokens(source: str, origin: list[int]) -> None:
    """Refuse, at the token level, anything but one expression on one line.

    ``ast.parse`` silently drops comments, so ``x#anything`` would parse as
    ``x`` while the text still carries ``anything`` (and activation text ends
    up in reports and generated files); line breaks, ``;`` and ``\\`` line
    continuations are refused here too.  Other tokenizer complaints are left to
    :func:`_parse`, which reports them as syntax errors.
    """
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    try:
        for token in tokens:
            what = _NOT_ONE_EXPRESSION.get(token.type)
            if token.type == tokenize.NEWLINE and not token.string:
                what = None  # the implicit end of the single line
            elif token.type == tokenize.OP and token.string == ";":
                what = "a statement separator (';')"
            elif token.type == tokenize.ERRORTOKEN and token.string == "\\":
                what = "a line continuation ('\\')"
            if what:
                _fail(f"{what} is not allowed in an activation, which is one expression "
                      f"(at column {origin[min(token.start[1], len(origin) - 1)] + 1})")
    except (tokenize.TokenError, SyntaxError):
        pass  # unbalanced brackets, unterminated strings, ...: _parse reports them


def _parse(source: str, origin: list[int]) -> ast.Expression:
    """``ast.parse`` in eval mode (parse only, nothing is run); errors become ParseError."""
    _check_tokens(source, origin)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "1(2)"
            return ast.parse(source, mode="eval")
    except SyntaxError as exc:
        offset = exc.offset if isinstance(exc.offset, int) else 0
        where = f" at column {origin[offset - 1] + 1}" if 1 <= offset <= len(source) else " at the end"
        _fail(f"syntax error in activation{where} ({exc.msg})")
    except (RecursionError, MemoryError, ValueError):
        _fail("activation is too deeply nested or too complex to parse")


_TOKENS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
_CHAINS = ((ast.Add, ast.Sub), (ast.Mult, ast.Div))


def _chain_ops(node: ast.AST) -> tuple[type, ...] | None:
    """The chain class (+/- or * /) of a BinOp, else None."""
    if isinstance(node, ast.BinOp):
        for ops in _CHAINS:
            if isinstance(node.op, ops):
                return ops
    return None


def _check_bounds(tree: ast.Expression) -> None:
    """At most MAX_NODES nodes and MAX_DEPTH levels (checked without recursion)."""
    count, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _TOKENS):
            continue
        count += 1
        if count > MAX_NODES:
            _fail(f"activation is too complex (more than {MAX_NODES} syntax nodes)")
        if depth > MAX_DEPTH:
            _fail(f"activation is nested too deeply (more than {MAX_DEPTH} levels)")
        ops = _chain_ops(node)
        for child in ast.iter_child_nodes(node):
            same_chain = ops is not None and child is node.left and _chain_ops(child) == ops
            stack.append((child, depth if same_chain else depth + 1))


# ------------------------------------------------------------ tree -> SymPy


_FORBIDDEN = {
    ast.Attribute: "attribute access ('.')", ast.Subscript: "subscripting ('[...]')",
    ast.Slice: "slicing", ast.Lambda: "lambda", ast.IfExp: "a conditional expression ('if ... else')",
    ast.Compare: "a comparison", ast.BoolOp: "'and' / 'or'", ast.NamedExpr: "assignment (':=')",
    ast.Starred: "a starred expression ('*')", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.Tuple: "a tuple (',')", ast.List: "a list",
    ast.Set: "a set", ast.Dict: "a dict", ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_OPERATORS = {ast.Mod: "'%'", ast.FloorDiv: "'//'", ast.MatMult: "'@'", ast.LShift: "'<<'",
              ast.RShift: "'>>'", ast.BitOr: "'|'", ast.BitAnd: "'&'", ast.BitXor: "'^'",
              ast.Not: "'not'", ast.Invert: "'~'"}
_LITERALS = {str: "a string", bytes: "a bytes literal", complex: "a complex number",
             bool: "True/False", type(None): "None", type(...): "'...'"}


class _Builder:
    """Walks a bounds-checked tree; recursion depth is at most about MAX_DEPTH."""

    def __init__(self, source: str, origin: list[int], names: dict[str, sympy.Expr]):
        self.encoded = source.encode("utf-8")
        self.origin = origin
        self.names = names

    def fail(self, node: ast.AST, message: str) -> NoReturn:
        column = len(self.encoded[:node.col_offset].decode("utf-8", "ignore"))
        _fail(f"{message} (at column {self.origin[column] + 1})")

    def build(self, node: ast.AST) -> sympy.Expr:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _FORBIDDEN.get(type(node), f"'{type(node).__name__}' syntax")
            self.fail(node, f"{what} is not allowed in an activation")
        return method(node)

    def visit_Expression(self, node: ast.Expression) -> sympy.Expr:
        return self.build(node.body)

    def visit_Constant(self, node: ast.Constant) -> sympy.Expr:
        value = node.value
        if type(value) not in (int, float):
            self.fail(node, f"{_LITERALS.get(type(value), 'this literal')} is not allowed in an activation")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(node, "an infinite number is not allowed in an activation")
        if abs(value) > MAX_INT_LITERAL:
            self.fail(node, f"number {value!r} is too large (at most {MAX_INT_LITERAL})")
        return sympy.Integer(value) if isinstance(value, int) else self.decimal(node)

    def decimal(self, node: ast.Constant) -> sympy.Expr:
        """The exact value of a decimal literal, from its digits as written."""
        digits = self.encoded[node.col_offset:node.end_col_offset].decode().replace("_", "").lower()
        mantissa, _, power = digits.partition("e")
        if abs(int(power or 0)) > MAX_LITERAL_EXP10:
            self.fail(node, f"the exponent of {digits} is out of range")
        value = Fraction(mantissa) * Fraction(10) ** int(power or 0)
        return sympy.Rational(value.numerator, value.denominator)

    def visit_Name(self, node: ast.Name) -> sympy.Expr:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in _FUNCTIONS:
            self.fail(node, f"'{node.id}' is a function; call it as {node.id}(...)")
        symbols = [n for n, v in self.names.items() if isinstance(v, sympy.Symbol)]
        allowed = symbols + [n for n in _CONSTANTS if n not in symbols]
        self.fail(node, f"unknown name '{node.id}' (allowed: {', '.join(allowed)} and the functions "
                        f"{', '.join(_FUNCTIONS)})")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> sympy.Expr:
        if isinstance(node.op, ast.UAdd):
            return self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return -self.build(node.operand)
        self.fail(node, f"operator {_OPERATORS.get(type(node.op), '?')} is not allowed in an activation")

    def visit_BinOp(self, node: ast.BinOp) -> sympy.Expr:
        ops = _chain_ops(node)
        if ops is not None:
            return self.chain(node, ops)
        if isinstance(node.op, ast.Pow):
            return _power(self.build(node.left), self.build(node.right))
        self.fail(node, f"operator {_OPERATORS.get(type(node.op), '?')} is not allowed in an activation")

    def chain(self, node: ast.BinOp, ops: tuple[type, ...]) -> sympy.Expr:
        """A left-leaning chain a + b - c ... or a * b / c ..., built without recursion."""
        steps = []
        while _chain_ops(node) == ops:
            steps.append((node.op, node.right))
            node = node.left
        items = [self.build(node)]
        for op, right in reversed(steps):
            value = self.build(right)
            if isinstance(op, ast.Sub):
                value = -value
            elif isinstance(op, ast.Div):
                value = sympy.Pow(value, sympy.S.NegativeOne)
            items.append(value)
        if ops == _CHAINS[0]:
            return sympy.Add(*items)
        _check_product(items)
        return sympy.Mul(*items)

    def visit_Call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            self.fail(node, "only whitelisted functions may be called, by plain name")
        name, spec = node.func.id, _FUNCTIONS.get(node.func.id)
        if spec is None:
            what = f"'{name}' is not a function" if name in self.names else f"unknown function '{name}'"
            self.fail(node, f"{what} (allowed functions: {', '.join(_FUNCTIONS)})")
        if node.keywords:
            self.fail(node, f"keyword arguments are not allowed (in the call to {name})")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            self.fail(node, f"*-arguments are not allowed (in the call to {name})")
        self.check_arity(node, name, spec)
        args = [self.build(arg) for arg in node.args]
        for arg in args:
            _check_operand(arg)
        result = spec.build(*args)
        _check_operand(result)
        return result

    def check_arity(self, node: ast.Call, name: str, spec: _Function) -> None:
        given = len(node.args)
        if spec.min_args <= given and (spec.max_args is None or given <= spec.max_args):
            return
        if spec.max_args is None:
            expected = f"at least {spec.min_args}"
        else:
            expected = f"exactly {spec.min_args}"
        plural = "" if spec.min_args == 1 else "s"
        self.fail(node, f"{name}() takes {expected} argument{plural} ({given} given)")


# ------------------------------------------------------------ entry point


def _check_result(expr: sympy.Expr, names: dict[str, sympy.Expr]) -> sympy.Expr:
    """Final checks: bounded size, finite, real constants, only declared symbols."""
    stats = _measure(expr)
    if stats.size > MAX_TREE_SIZE:
        _fail(f"the activation is too large (more than {MAX_TREE_SIZE} SymPy nodes)")
    if stats.bits > MAX_NUMBER_BITS:
        _fail("a number in the activation is too large")
    parts = _subexpressions(expr)
    if parts & {sympy.nan, sympy.zoo, sympy.oo, -sympy.oo}:
        _fail("the activation contains an infinite or undefined value (division by zero?)")
    if sympy.I in parts:
        _fail(_NON_REAL)
    extra = {p for p in parts if isinstance(p, sympy.Symbol)} - set(names.values())
    if extra:
        _fail(f"the activation depends on undeclared symbols: {', '.join(sorted(map(str, extra)))}")
    return expr


_BUILDING = "building the activation"


def parse_expression(text: str, variable: str = "x", parameters: Iterable[str] = ()) -> sympy.Expr:
    """Parse an activation string into a SymPy expression without executing it.

    ``variable`` and each name in ``parameters`` become real SymPy symbols; the
    text may use them, the constants ``pi``, ``E``, ``e`` and the functions of
    :data:`ALLOWED_FUNCTIONS` (see the module docstring for the full grammar).
    Raises :class:`~ntksym.errors.ParseError` (one-line message) for anything
    else, and for input beyond the size bounds (``MAX_*`` constants).
    """
    names = _namespace(variable, parameters)
    source, origin = _prepare(text)
    tree = _parse(source, origin)
    _check_bounds(tree)
    try:
        with time_limit(PARSE_SECONDS, _BUILDING):
            return _check_result(_Builder(source, origin, names).build(tree), names)
    except ParseError:
        raise
    except DerivationTimeout as exc:
        if not str(exc).startswith(_BUILDING):
            raise  # an enclosing time limit ran out: not ours to report
        _fail(f"the activation is too costly to build (gave up after {PARSE_SECONDS:g} s)")
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:  # raised inside SymPy
        _fail(f"the activation cannot be built ({type(exc).__name__}: {exc})")
