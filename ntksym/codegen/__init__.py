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
* no closed form and no kinks (tanh, sigmoid, softplus, SiLU, mish, ...): a
  polar product rule (64-point trapezoid in the angle × 64-point Gauss–Legendre
  in the radius) written in array code, with its estimated error stated in the
  module docstring (smooth φ: geometric convergence; ~1e-9 for tanh);
* no closed form *and* kinks (ELU, SELU): refused with an NtksymError, because
  an unsplit product rule converges only algebraically across a kink.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import sys
import tempfile
import types

from ..derivation import Derivation
from ..templating import render
from .build import N_ANGLE, N_RADIUS, R_MAX, build_parts

__all__ = ["module_source", "write_module", "load_module"]

TILE_RECURSION = 256
TILE_QUADRATURE = 8


def _floats(values) -> str:
    return ", ".join(repr(float(v)) for v in values)


def _quadrature_strings(quad):
    if quad is None:
        return {}
    ct, st, r, w = quad
    rows = ",\n    ".join(f"({_floats(row)})" for row in w)
    return {"cos_t": _floats(ct), "sin_t": _floats(st), "radii": _floats(r), "weights": f"\n    {rows},\n"}


def module_source(d: Derivation, command: str | None = None) -> str:
    """The text of the generated module for ``d`` (``command``: provenance line, default the Python API)."""
    from .. import __version__
    parts = build_parts(d)
    net, act = d.network, d.activation
    command = command or (f"ntksym.codegen.module_source(ntksym.derive({act.name!r}, depth={net.depth}, "
                          f"sigma_w={net.sigma_w!r}, sigma_b={net.sigma_b!r}, "
                          f"parameterization={net.parameterization!r}))")
    ctx = dict(version=__version__, command=command, activation=str(act), depth=net.depth,
               sigma_w=repr(float(net.sigma_w)), sigma_b=repr(float(net.sigma_b)),
               parameterization=net.parameterization, width=net.width, route=parts.route,
               accuracy=parts.accuracy, dual_code=parts.dual_code, diag_code=parts.diag_code,
               variance_code=parts.variance_code, input_code=parts.input_code, hidden_code=parts.hidden_code,
               phi_code=parts.phi_code, dphi_code=parts.dphi_code, table=parts.table,
               table_rows=[_floats(r) for r in parts.table.coefficients] if parts.table else [],
               quadrature=parts.quadrature is not None,
               quad=_quadrature_strings(parts.quadrature), n_angle=N_ANGLE, n_radius=N_RADIUS, r_max=R_MAX,
               tile=TILE_QUADRATURE if parts.quadrature else TILE_RECURSION)
    ctx["reprs"] = {k: repr(ctx[k]) for k in ("version", "activation", "parameterization", "route", "accuracy")}
    return render("kernel_module.py.j2", **ctx)


def write_module(d: Derivation, path, command: str | None = None, source: str | None = None) -> pathlib.Path:
    """Write the module atomically (temporary file beside ``path``, then ``os.replace``)."""
    target = pathlib.Path(path).resolve()
    text = module_source(d, command) if source is None else source
    fd, tmp = tempfile.mkstemp(prefix=".ntksym-", suffix=".py", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; the module is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("NTKSYM_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME")
                                                          or os.path.expanduser("~/.cache"), "ntksym")
    path = pathlib.Path(root) / "codegen"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_module(d: Derivation) -> types.ModuleType:
    """The generated module, written to the cache folder (``$NTKSYM_CACHE`` or ~/.cache/ntksym)
    under a content hash and imported with importlib — the in-memory face of ``write_module``."""
    text = module_source(d)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"ntksym_generated_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = _cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_module(d, path, source=text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
