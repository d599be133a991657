"""LaTeX printing: user text escaped, SymPy expressions through our printer.

Two rules keep reports safe to compile (no shell escape, no file access):

* every piece of *text* that is not written by ntksym's templates (activation
  names, descriptions, parameter names, routes, the command line) goes through
  :func:`escape_text`, which neutralises the ten TeX special characters and
  maps non-ASCII characters to math symbols or a visible ``[U+XXXX]`` code;
* every *expression* goes through :class:`ReportLatexPrinter`, a subclass of
  SymPy's printer that prints our layer symbols as Σ⁽ˡ⁾, Σ̇⁽ˡ⁾, Θ⁽ˡ⁾ and
  escapes any symbol name that is not a plain identifier (SymPy prints symbol
  names verbatim, so ``Symbol(r"\\input{x}")`` would otherwise reach TeX).
"""
from __future__ import annotations

import re
import unicodedata

import sympy as sp
from sympy.printing.latex import LatexPrinter

_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "%": r"\%", "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", '"': r"\textquotedbl{}",
    # no ligatures from user text: "--" stays two hyphens, "''" two quotes, "?`" no inverted mark
    "-": "-{}", "'": "'{}", "`": r"\textasciigrave{}",
}

# Unicode that appears in ntksym's own routes and descriptions, and in typical user text.
_UNICODE = {
    "φ": r"$\phi$", "ϕ": r"$\phi$", "σ": r"$\sigma$", "Σ": r"$\Sigma$", "Θ": r"$\Theta$", "ρ": r"$\rho$",
    "μ": r"$\mu$", "δ": r"$\delta$", "γ": r"$\gamma$", "κ": r"$\kappa$", "λ": r"$\lambda$", "ξ": r"$\xi$",
    "χ": r"$\chi$", "π": r"$\pi$", "α": r"$\alpha$", "β": r"$\beta$", "ε": r"$\varepsilon$", "Δ": r"$\Delta$",
    "η": r"$\eta$", "θ": r"$\theta$", "ω": r"$\omega$", "ν": r"$\nu$", "τ": r"$\tau$",
    "×": r"$\times$", "·": r"$\cdot$", "≤": r"$\le$", "≥": r"$\ge$", "≈": r"$\approx$", "≠": r"$\ne$",
    "→": r"$\to$", "←": r"$\leftarrow$", "∞": r"$\infty$", "√": r"$\surd$", "±": r"$\pm$", "∫": r"$\int$",
    "∂": r"$\partial$", "′": r"$'$", "″": r"$''$", "∈": r"$\in$", "⊙": r"$\odot$", "ℓ": r"$\ell$",
    "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\dots{}", "−": "-{}",
    "⁰": r"$^0$", "¹": r"$^1$", "²": r"$^2$", "³": r"$^3$", "⁴": r"$^4$", "⁵": r"$^5$", "⁶": r"$^6$",
    "⁷": r"$^7$", "⁸": r"$^8$", "⁹": r"$^9$", "⁽": r"$^($", "⁾": r"$^)$", "ˡ": r"$^l$", "ᴸ": r"$^L$",
    "₀": r"$_0$", "₁": r"$_1$", "₂": r"$_2$", "ₖ": r"$_k$", "ₚ": r"$_p$",
    "\u0302": "", "\u0307": "",  # combining hat and dot (as in Σ̂, Σ̇): dropped, the base letter stays
}


def escape_text(text) -> str:
    """``text`` as literal LaTeX text: TeX specials neutralised, Unicode mapped or shown as [U+XXXX]."""
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ch == "\n" or ch == "\t":
            out.append(" ")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"[U+{ord(ch):04X}]")
        elif ord(ch) < 128:
            out.append(ch)
        else:
            base = "".join(b for b in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(b))
            if base and all(ord(b) < 128 for b in base) and base.isalnum():
                out.append(base)          # é -> e, ﬁ -> fi
            else:
                out.append(f"[U+{ord(ch):04X}]")
    return "".join(out)


def escape_label(text) -> str:
    """A string safe inside ``\\label{...}``/``\\ref{...}``: letters, digits, ':', '-' and '.' only."""
    return re.sub(r"[^A-Za-z0-9:.\-]", "-", str(text))


_LAYER = re.compile(r"^(Sigma|Sigmadot|Theta)\^\((\d+)\)_(xx|yy|xy)$")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)?$")
_GREEK = {"Sigma": r"\Sigma", "Sigmadot": r"\dot{\Sigma}", "Theta": r"\Theta"}
_FUNCTIONS = {"Sigmahat": r"\hat{\Sigma}", "Sigmadot": r"\dot{\Sigma}"}
_DOTS = {"xy": r"x \cdot y", "xx": r"x \cdot x", "yy": r"y \cdot y"}


class ReportLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with ntksym's symbol names and escaped foreign names."""

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        match = _LAYER.match(name)
        if match:
            head, layer, pair = match.groups()
            return f"{_GREEK[head]}^{{({layer})}}_{{{pair}}}"
        if name in _DOTS:
            return _DOTS[name]
        if _PLAIN.match(name):
            return super()._print_Symbol(expr, style)
        return r"\text{\ttfamily " + escape_text(name) + "}"

    def _print_Function(self, expr, exp=None):
        name = type(expr).__name__
        if name in _FUNCTIONS:
            body = f"{_FUNCTIONS[name]}\\left({', '.join(self._print(a) for a in expr.args)}\\right)"
            return body if exp is None else f"{body}^{{{exp}}}"
        return super()._print_Function(expr, exp)


def latex(expr, **settings) -> str:
    """LaTeX of a SymPy expression (or number) with :class:`ReportLatexPrinter`."""
    return ReportLatexPrinter(settings).doprint(sp.sympify(expr) if not isinstance(expr, sp.Basic) else expr)


def number(value, digits: int = 6) -> str:
    """A float for a table: fixed or scientific notation in LaTeX math, '--' for None, inf/nan spelled out."""
    if value is None:
        return "--"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return escape_text(value)
    if v != v:
        return r"\text{nan}"
    if v in (float("inf"), float("-inf")):
        return r"\infty" if v > 0 else r"-\infty"
    if v == 0:
        return "0"
    text = f"{v:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        return rf"{mant} \times 10^{{{int(exp)}}}"
    return text
