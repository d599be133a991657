"""Code generation: standalone NNGP/NTK modules from a :class:`~ntksym.derivation.Derivation`.

Public API::

    src = module_source(d)             # the module text (rendered from templates/kernel_module.py.j2)
    path = write_module(d, "k.py")     # atomic write (temporary file in the target folder, then rename)
    mod = load_module(d)               # the same module, imported from a cache file (no exec of strings)
    mod.kernels(X)                     # (NNGP, NTK) Gram matrices on NumPy/torch/JAX/CuPy/Dask arrays

The generated module imports only the array library of its inputs (and the
standard library's importlib): no ntksym, no SymPy.  Routes:

* closed-form dual kernels (ReLU family, erf, GELU, sin/cos/exp, polynomials, ...):
  printed with an atan2 angle, clipped |c| ≤ √(q₁q₂), snapped radicands and
  shared common subexpressions; for unit-norm data a depth-independent panel
  table in θ = arccos ρ (:mod:`ntksym.codegen.interpolant`) when it converges;
  all in scaled form (no intermediate overflow: :func:`ntksym.codegen.build.scaled_form`);
  c is snapped to ±√q₁√q₂ within 16 ulps, so repeated and antipodal rows stay exactly tied
  at any depth (also in the chaotic phase);
* no closed form (tanh, sigmoid, softplus, SiLU, mish, ELU, SELU, ...): per layer, per-row
  Hermite coefficients a_k(q_i), b_k(q_i) (a 1-D z-rule, interpolated in log q from Chebyshev
  points when there are many rows) and Mehler's formula Σ_k a_k(q₁)a_k(q₂)ρ^k by blocked Horner,
  with a per-entry bound ≤ 1e-13 √(m₁m₂) (:mod:`ntksym.codegen.mehler_rule`); ties by the 1-D
  rule; the entries beyond the bound by a polar product rule split on the rays u = 0, v = 0
  and graded toward them and toward r = 0 down to the scale 1/√q of the largest variance the
  network reaches for |x|²/d ∈ [1e-2, 1e2] (:func:`ntksym.codegen.build.numeric_rule`); the
  module states both and raises ValueError for variances beyond q_max;
* no closed form and a kink away from 0: refused with an NtksymError (no ray to split on).
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pathlib
import stat
import sys
import textwrap
import time
import tokenize
import types

from ..derivation import Derivation
from ..errors import NtksymError
from ..templating import render
from .build import build_parts

__all__ = ["module_source", "write_module", "load_module"]

TILE_RECURSION = 256
TILE_QUADRATURE = 4
TILE_SERIES = 256     # the per-row Hermite route: Horner on tiles that stay in cache


def _floats(values) -> str:
    return ", ".join(repr(float(v)) for v in values)


def _quadrature_strings(rule):
    if rule is None:
        return {}
    return {"angle": _floats(rule.angle), "angle_w": _floats(rule.angle_w), "radius": _floats(rule.radius),
            "radius_w": _floats(rule.radius_w)}


def _series(rule):
    """The numbers of the per-row Hermite route (None without one)."""
    if rule is None or rule.series is None:
        return None
    sr = rule.series
    return {"k_max": int(sr.k_max), "tol": float(sr.tol), "coef_err": float(sr.coef_err),
            "parity": {"odd": 1, "even": 0}.get(sr.parity)}


def _series_strings(rule):
    if rule is None or rule.series is None:
        return {}
    return {"z": _floats(rule.series.z), "z_w": _floats(rule.series.z_w)}


def module_source(d: Derivation, command: str | None = None) -> str:
    """The text of the generated module for ``d`` (``command``: provenance line, default the Python API).

    User text (the command, the activation's text and name, ...) enters the template only through
    the ``pyliteral``/``pytext`` filters of :mod:`ntksym.templating`; as a backstop the result must
    compile and its tokens outside string literals and comments must equal those of the same module
    rendered with placeholder text (:func:`_check_tokens`), so no text can add or change code.
    """
    context = _context(d, command)
    source = render(TEMPLATE, **context)
    _check_tokens(source, context)
    return source


TEMPLATE = "kernel_module.py.j2"
#: the context entries that carry text (user text, or text that may quote it)
USER_TEXT = ("version", "command", "activation", "parameterization", "route", "accuracy")
_PLACEHOLDERS = dict.fromkeys(USER_TEXT, "ntksym placeholder text")


def _context(d: Derivation, command: str | None) -> dict:
    from .. import __version__
    parts = build_parts(d)
    net, act = d.network, d.activation
    command = command or (f"ntksym.codegen.module_source(ntksym.derive({act.name!r}, depth={net.depth}, "
                          f"sigma_w={net.sigma_w!r}, sigma_b={net.sigma_b!r}, "
                          f"parameterization={net.parameterization!r}))")
    return dict(version=str(__version__), command=str(command), activation=str(act), depth=int(net.depth),
                sigma_w=float(net.sigma_w), sigma_b=float(net.sigma_b),
                parameterization=str(net.parameterization), width=None if net.width is None else int(net.width),
                route=str(parts.route), accuracy=str(parts.accuracy),
                dual_code=textwrap.indent(parts.dual_code, "    "),   # inside the errstate block
                diag_code=textwrap.indent(parts.diag_code, "    "),
                # the variance map: the pair form at c = q (as the API), unless the diagonal form is
                # homogeneous (exact, e.g. ReLU's q/2)
                diag_numeric=not parts.diag_homogeneous or parts.diag_code.lstrip().startswith("khat_q, _ = dual"),
                variance_code=parts.variance_code, input_code=parts.input_code,
                hidden_code=parts.hidden_code, phi_code=parts.phi_code, dphi_code=parts.dphi_code,
                table=parts.table,
                table_rows=[_floats(r) for r in parts.table.coefficients] if parts.table else [],
                quadrature=parts.quadrature is not None,
                quad=_quadrature_strings(parts.quadrature),
                q_max=parts.quadrature.q_max if parts.quadrature else None,
                series=_series(parts.quadrature),
                series_nodes=_series_strings(parts.quadrature),
                homogeneous=parts.homogeneous, diag_homogeneous=parts.diag_homogeneous,
                tile=(TILE_RECURSION if parts.quadrature is None else
                      TILE_SERIES if parts.quadrature.series is not None else TILE_QUADRATURE))


def code_tokens(source: str) -> list[tuple[int, str]] | None:
    """The (type, text) tokens of ``source`` as Python reads its UTF-8 file (declared encoding,
    universal newlines: a lone CR ends a line), string literals and comments reduced to their
    type, after the encoding; None when it does not tokenize."""
    data = source.encode("utf-8")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        tokens = tokenize.generate_tokens(io.StringIO(importlib.util.decode_source(data)).readline)
        return [(tokenize.ENCODING, encoding)] + [
            (t.type, "" if t.type in (tokenize.STRING, tokenize.COMMENT) else t.string) for t in tokens]
    except (SyntaxError, UnicodeError, LookupError, tokenize.TokenError):
        return None


def _check_tokens(source: str, context: dict) -> None:
    """Refuse a module that does not compile or whose code depends on user text.

    The code check compares two renders that differ only in the user text (the real one and
    placeholders); both use the same short stand-in for the bulky number tables, which are
    complete bracketed number lists in either case, so this is cheap and sees the same token
    context at every place where user text is inserted.
    """
    try:  # bytes, as the file is read: a stray encoding declaration would count
        compile(source.encode("utf-8"), "<generated module>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeError):
        raise NtksymError("refusing to generate the module: it would not compile (user text in it?)") from None
    skeleton = {**context, "table_rows": context["table_rows"][:1],
                "quad": dict.fromkeys(context["quad"], "0.0,"),
                "series_nodes": dict.fromkeys(context["series_nodes"], "0.0,")}
    tokens = code_tokens(render(TEMPLATE, **skeleton))
    if tokens is None or tokens != code_tokens(render(TEMPLATE, **{**skeleton, **_PLACEHOLDERS})):
        raise NtksymError("refusing to generate the module: user text (activation, command, ...) would "
                          "change its code")


def write_module(d: Derivation, path, command: str | None = None, source: str | None = None, *,
                 force: bool = False) -> pathlib.Path:
    """Write the module to ``path`` (a path or a held file claim) under the rules of
    :mod:`ntksym.outputs`: claimed first, staged privately, published atomically; an existing
    file is replaced only with ``force`` (a symlink is replaced itself, never written through)."""
    from ..outputs import claimed, write_file
    with claimed(path, "file", force) as claim:
        text = module_source(d, command) if source is None else source
        return write_file(claim, lambda fh: fh.write(text.encode("utf-8")))


def _cache_dir() -> pathlib.Path:
    """The module cache folder, created 0700; refused unless it is a real directory (not a link) of
    this user, and made private (0700) if it is not, so nothing planted there is imported."""
    root = os.environ.get("NTKSYM_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME")
                                                          or os.path.expanduser("~/.cache"), "ntksym")
    path = pathlib.Path(root) / "codegen"
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise NtksymError(f"cannot use the module cache {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != _euid():
        raise NtksymError(f"refusing the module cache {path}: not a directory of this user "
                          "(set NTKSYM_CACHE to another folder)")
    if st.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise NtksymError(f"cannot make the module cache {path} private: {exc.strerror or exc}") from None
    return path


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _cached_text(path: pathlib.Path) -> str | None:
    """The text of a cached module that is a regular file of this user; None otherwise."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != _euid():
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def load_module(d: Derivation) -> types.ModuleType:
    """The generated module, written to the cache folder (``$NTKSYM_CACHE`` or ~/.cache/ntksym)
    under a content hash and imported with importlib — the in-memory face of ``write_module``.
    Only a regular file of this user holding exactly the expected text is imported; anything
    else in its place (a symlink, another user's file, stale text) is replaced first."""
    text = module_source(d)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"ntksym_generated_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = _cache_dir() / f"{name}.py"
    if _cached_text(path) != text:
        try:
            write_module(d, path, source=text, force=True)
        except NtksymError:   # e.g. another process is writing the same module: wait for it
            deadline = time.monotonic() + 10
            while _cached_text(path) != text and time.monotonic() < deadline:
                time.sleep(0.05)
            if _cached_text(path) != text:
                raise
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
