"""Splitting a piecewise-smooth expression into smooth pieces on intervals.

An activation such as ``a*x + b*Abs(x)`` or ``Max(x, 0) + alpha*Min(x, 0)`` is
smooth except at finitely many breakpoints.  :func:`split` returns the pieces
``(lo, hi, smooth_expr)`` that cover the real line, so that Gaussian integrals
can be taken piece by piece and the jumps of the function and its derivatives
at the breakpoints (the distributional derivative) are explicit.

Breakpoints come from the arguments of ``Abs``, ``sign``, ``Heaviside``,
``Max``, ``Min`` and ``Piecewise`` conditions; they must be roots of
polynomials in the variable.  Their ordering is decided numerically after
substituting representative values for the parameters (``order_subs``).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

NONSMOOTH = (sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise)


class NotPiecewiseSmooth(Exception):
    """The expression has a non-smooth part this module cannot place."""


@dataclass(frozen=True)
class Piece:
    lo: sp.Expr
    hi: sp.Expr
    expr: sp.Expr


def _innermost(expr: sp.Expr) -> list[sp.Expr]:
    found = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, NONSMOOTH) and not any(
                isinstance(sub, NONSMOOTH) for arg in node.args for sub in sp.preorder_traversal(arg)):
            found.append(node)
    return found


def _switch_functions(atom: sp.Expr) -> list[sp.Expr]:
    """Expressions whose sign changes mark the breakpoints of ``atom``."""
    if isinstance(atom, (sp.Abs, sp.sign)):
        return [atom.args[0]]
    if isinstance(atom, sp.Heaviside):
        return [atom.args[0]]
    if isinstance(atom, (sp.Max, sp.Min)):
        args = atom.args
        return [args[i] - args[j] for i in range(len(args)) for j in range(i + 1, len(args))]
    out = []
    for _, cond in atom.args:
        if isinstance(cond, sp.core.relational.Relational):
            out.append(cond.lhs - cond.rhs)
        elif cond not in (sp.true, sp.false):
            raise NotPiecewiseSmooth(f"unsupported Piecewise condition {cond}")
    return out


def _real_roots(u: sp.Expr, z: sp.Symbol, order_subs: dict) -> list[sp.Expr]:
    if not u.has(z):
        return []
    if not u.is_polynomial(z):
        raise NotPiecewiseSmooth(f"breakpoint of non-polynomial argument {u}")
    poly = sp.Poly(u, z)
    if poly.degree() == 1:
        a, b = poly.all_coeffs()
        return [sp.simplify(-b / a)]
    if poly.free_symbols - {z}:
        raise NotPiecewiseSmooth(f"breakpoints of {u} depend on parameters")
    try:
        return list(sp.real_roots(poly))
    except (NotImplementedError, sp.PolynomialError, ValueError) as exc:
        raise NotPiecewiseSmooth(f"cannot isolate the breakpoints of {u} ({exc})") from None


def _value(e: sp.Expr, order_subs: dict) -> float:
    v = complex(sp.N(e.subs(order_subs), 30))
    return v.real


def _resolve(atom: sp.Expr, z: sp.Symbol, at: sp.Expr, order_subs: dict) -> sp.Expr:
    def val(e):
        return _value(e.subs(z, at), order_subs)
    if isinstance(atom, sp.Abs):
        return atom.args[0] if val(atom.args[0]) >= 0 else -atom.args[0]
    if isinstance(atom, sp.sign):
        return sp.Integer(1) if val(atom.args[0]) > 0 else sp.Integer(-1)
    if isinstance(atom, sp.Heaviside):
        return sp.Integer(1) if val(atom.args[0]) > 0 else sp.Integer(0)
    if isinstance(atom, sp.Max):
        return max(atom.args, key=val)
    if isinstance(atom, sp.Min):
        return min(atom.args, key=val)
    for branch, cond in atom.args:
        truth = cond if cond in (sp.true, sp.false) else cond.subs(z, at).subs(order_subs)
        if bool(truth):
            return branch
    raise NotPiecewiseSmooth(f"no Piecewise branch applies at {at}")


def _midpoint(lo, hi, order_subs):
    if lo == -sp.oo and hi == sp.oo:
        return sp.Integer(0)
    if lo == -sp.oo:
        return sp.Float(_value(hi, order_subs) - 1, 30)
    if hi == sp.oo:
        return sp.Float(_value(lo, order_subs) + 1, 30)
    return sp.Float((_value(lo, order_subs) + _value(hi, order_subs)) / 2, 30)


def split(expr: sp.Expr, z: sp.Symbol, order_subs: dict | None = None,
          lo: sp.Expr = -sp.oo, hi: sp.Expr = sp.oo, _depth: int = 0) -> tuple[Piece, ...]:
    """Pieces ``(lo, hi, smooth)`` covering ``(lo, hi)``, adjacent equal pieces merged."""
    order_subs = order_subs or {}
    if _depth > 8:
        raise NotPiecewiseSmooth("nesting of non-smooth functions too deep")
    atoms = _innermost(expr)
    if not atoms:
        return (Piece(lo, hi, expr),)
    cuts = {}
    for atom in atoms:
        for u in _switch_functions(atom):
            for r in _real_roots(u, z, order_subs):
                v = _value(r, order_subs)
                inside = (lo == -sp.oo or v > _value(lo, order_subs)) and (hi == sp.oo or v < _value(hi, order_subs))
                if inside and not any(abs(v - w) < 1e-12 for w in cuts):
                    cuts[v] = r
    bounds = [lo] + [cuts[v] for v in sorted(cuts)] + [hi]
    pieces: list[Piece] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        at = _midpoint(a, b, order_subs)
        resolved = expr.xreplace({atom: _resolve(atom, z, at, order_subs) for atom in atoms})
        pieces.extend(split(resolved, z, order_subs, a, b, _depth + 1))
    return _merge(pieces)


def _merge(pieces: list[Piece]) -> tuple[Piece, ...]:
    merged: list[Piece] = []
    for p in pieces:
        if merged and sp.simplify(merged[-1].expr - p.expr) == 0:
            merged[-1] = Piece(merged[-1].lo, p.hi, merged[-1].expr)
        else:
            merged.append(p)
    return tuple(merged)


def breakpoints(pieces: tuple[Piece, ...]) -> tuple[sp.Expr, ...]:
    return tuple(p.lo for p in pieces[1:])
