"""SymPy printer for array-API code: every function is looked up on ``xp``.

:class:`ArrayCodePrinter` subclasses SymPy's :class:`PythonCodePrinter` and
only changes the name tables and a few ``_print_<Class>`` methods (DESIGN.md §3,
example 4): functions print as ``xp.<name>(...)`` where ``xp`` is the
namespace shim of the generated module (see ``templates/kernel_module.py.j2``);
numbers print as Python literals (exact rationals as ``p/q``, which CPython
folds at compile time); √ prints as ``xp.sqrt``; the radicand-snapping
``SafeSqrt(t, scale)`` of :mod:`ntksym.kernels` prints as a call of the
module's ``_safe_sqrt``.  Symbol and function names are printed only when they are
plain identifiers (SymPy names are arbitrary text).  The printer never computes: constants and the CSE
are prepared by :mod:`ntksym.codegen.build`.
"""
from __future__ import annotations

import keyword

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..errors import NtksymError

# SymPy function name -> name on the generated module's namespace shim ``xp``
ARRAY_FUNCTIONS = {
    "sqrt": "sqrt", "exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan",
    "tanh": "tanh", "sinh": "sinh", "cosh": "cosh", "asin": "asin", "acos": "acos", "atan": "atan",
    "atan2": "atan2", "asinh": "asinh", "Abs": "abs", "sign": "sign", "erf": "erf", "erfc": "erfc",
    "expm1": "expm1", "log1p": "log1p", "Erfc": "erfc",
}
# functions of :mod:`ntksym.stable` printed as overflow-free array expressions (ArrayCodePrinter)
STABLE_FUNCTIONS = ("softplus", "sigmoid")


class ArrayCodePrinter(PythonCodePrinter):
    """Python code over an array namespace ``xp`` (NumPy, torch, JAX, CuPy, Dask via the shim)."""
    printmethod = "_ntksym_array_code"
    language = "Python (array API)"
    _kf = {name: f"xp.{target}" for name, target in ARRAY_FUNCTIONS.items()}
    _kc = {}

    def __init__(self, names: dict | None = None, settings=None):
        super().__init__(settings={"fully_qualified_modules": True, "allow_unknown_functions": True,
                                   **(settings or {})})
        self._names = dict(names or {})

    def _print_Symbol(self, expr):
        return self._names.get(expr, None) or _identifier(super()._print_Symbol(expr), "symbol")

    def _print_Pi(self, expr):
        return repr(float(sp.pi))

    def _print_Exp1(self, expr):
        return repr(float(sp.E))

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}"

    def _print_Half(self, expr):
        return "0.5"

    def _print_Integer(self, expr):
        return f"{int(expr)}.0" if abs(int(expr)) < 2**53 else repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        if expr.is_number and expr.is_real:
            return repr(float(expr))
        base, exp = expr.as_base_exp()
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
        if exp == sp.S.Half:
            return f"xp.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0/xp.sqrt({self._print(base)}))"
        if exp.is_Rational and exp.q == 2:
            return f"xp.sqrt({self._print(base)})**{int(exp.p)}"
        if exp.is_Integer:
            if exp == -1:
                return f"(1.0/{b})"
            if exp == 2:
                return f"({b}*{b})"
            return f"{b}**{int(exp)}"
        return f"{b}**{self.parenthesize(exp, sp.printing.precedence.PRECEDENCE['Pow'])}"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name == "SafeSqrt":
            return f"_safe_sqrt(xp, {self._print(expr.args[0])}, {self._print(expr.args[1])})"
        _identifier(name, "function")
        return super()._print_Function(expr)

    def _print_Max(self, expr):
        return self._fold(expr.args, ">")

    def _print_Min(self, expr):
        return self._fold(expr.args, "<")

    def _fold(self, args, op):
        out = self._print(args[0])
        for a in args[1:]:
            a = self._print(a)
            out = f"xp.pick({out} {op} {a}, {out}, {a})"
        return out

    def _print_softplus(self, expr):
        """log(1 + e^a) = max(a, 0) + log1p(e^{-|a|}): no overflow (ntksym.stable)."""
        a = self._print(expr.args[0])
        return f"(xp.pick({a} > 0.0, {a}, 0.0) + xp.log1p(xp.exp(-xp.abs({a}))))"

    def _print_sigmoid(self, expr):
        """1/(1 + e^{-a}) = e^{min(a, 0)}/(1 + e^{-|a|}): no overflow, full relative accuracy."""
        a = self._print(expr.args[0])
        return f"(xp.exp(xp.pick({a} < 0.0, {a}, 0.0))/(1.0 + xp.exp(-xp.abs({a}))))"

    def _print_Heaviside(self, expr):
        """H(a) with SymPy's value at 0 (1/2 unless given), as the NumPy route (numpy.heaviside):
        the ELU derivative e^{min(x,0)}·H(−x) + H(x) is 1 at x = 0 on both routes."""
        a = self._print(expr.args[0])
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        if h0 == 0:
            return f"xp.pick({a} > 0, 1.0, 0.0)"
        if h0 == 1:
            return f"xp.pick({a} >= 0, 1.0, 0.0)"
        if h0 == sp.S.Half:  # in the dtype and on the device of a (pick of two numbers is not, in torch)
            return f"(0.5*xp.sign({a}) + 0.5)"
        return f"xp.pick({a} > 0, 1.0, xp.pick({a} < 0, 0.0, {self._print(h0)}))"

    def _print_Piecewise(self, expr):
        out = None
        for value, cond in reversed(expr.args):
            v = self._print(value)
            out = v if cond == sp.true and out is None else f"xp.pick({self._print(cond)}, {v}, {out})"
        return out


def _identifier(name: str, what: str) -> str:
    """``name`` if it is a plain Python identifier, else NtksymError: a SymPy name is arbitrary
    text (``Symbol('a; b')``) and must never reach generated code as code."""
    if not (name.isidentifier() and name.isascii() and not keyword.iskeyword(name)):
        raise NtksymError(f"the {what} name {name!r} is not a Python identifier; no code is generated for it")
    return name


def _print_on_namespace(self, expr):
    if expr.is_number and expr.is_real:
        return repr(float(expr))
    args = ", ".join(self._print(a) for a in expr.args)
    return f"{self._kf[type(expr).__name__]}({args})"


for _name in ARRAY_FUNCTIONS:
    setattr(ArrayCodePrinter, f"_print_{_name}", _print_on_namespace)


def print_activation(expr: sp.Expr, var: sp.Symbol, name: str = "x") -> str:
    """φ or φ' (an expression in ``var``) as array code in the variable ``name``, in the stable
    form of :mod:`ntksym.stable` (softplus, sigmoid, expm1, erfc, clamped exp branches, Horner
    polynomials): no intermediate overflow where the value is finite."""
    from ..stable import stable_form
    return ArrayCodePrinter({var: name}).doprint(stable_form(expr, var, horner=True))


def print_assignments(pairs, printer: ArrayCodePrinter, indent: str = "    ") -> str:
    """Lines ``name = code`` for (name, expression) pairs, in order."""
    return "\n".join(f"{indent}{name} = {printer.doprint(expr)}" for name, expr in pairs)
