"""Command-line interface: a thin layer over the Python API.

User errors print one line on stderr and exit with status 2; nothing is
written unless the whole result is ready (every output is claimed before the
work, staged and published atomically: see :mod:`ntksym.outputs`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

from . import derivation as api
from . import outputs
from .errors import InputError, NtksymError
from .inputs import bounded_int
from .summary import summary_text


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        raise SystemExit(_fail(f"{message} (see 'ntksym {self.prog.split()[-1]} --help')"
                               if " " in self.prog else message))


def _fail(message: str) -> int:
    print(f"ntksym: error: {message}", file=sys.stderr)
    return 2


def _params(pairs) -> dict:
    out = {}
    for item in pairs or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise NtksymError(f"--param expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _network_args(p, depth_required=True):
    p.add_argument("--depth", type=int, required=depth_required, default=None if depth_required else 1,
                   help="number of hidden layers L (activations)")
    p.add_argument("--sigma-w", type=float, default=1.0, help="weight standard deviation σ_w (W_std)")
    p.add_argument("--sigma-b", type=float, default=0.0, help="bias standard deviation σ_b (b_std)")
    p.add_argument("--parameterization", choices=["ntk", "standard"], default="ntk")
    p.add_argument("--width", type=int, default=None, help="hidden width (standard parameterization only)")


def _series_network_args(p):
    p.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    p.add_argument("--sigma-w", default="1", help="σ_w, a number or exact expression such as sqrt(2)")
    p.add_argument("--sigma-b", default="0", help="σ_b, a number or exact expression")
    p.add_argument("--preset", choices=["murray"], default=None,
                   help="Murray et al.'s parameterization (unit variance; depth = their l - 1)")


def _sigma(text: str, name: str):
    from .activation import exact_number
    value = exact_number(text, name)
    if value < 0:
        raise NtksymError(f"{name} must be >= 0, got {text}")
    return value


def _decimal(value, digits: int | None) -> str:
    import mpmath
    if value == 0:   # exact zeros (e.g. κ_p that vanish by parity) print as 0, not 0.0
        return "0"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    with mpmath.workdps((digits or 17) + 5):
        return mpmath.nstr(mpmath.mpf(value if not hasattr(value, "evalf") else str(value.evalf((digits or 17) + 5))),
                           digits or 17)


def _accuracy_arg(p):
    p.add_argument("--allow-inaccurate", action="store_true",
                   help="print numeric results whose error estimate exceeds the tolerance (marked INACCURATE) "
                        "instead of failing")


def _activation_args(p):
    p.add_argument("activation", help="catalogue name (relu, erf, gelu, ...) or an expression in x")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="activation parameter (repeatable)")


def _derivative_arg(p):
    p.add_argument("--derivative", choices=["ae", "distributional"], default="ae",
                   help="phi' in Sigma-dot for activations with jumps (sign, step): 'ae' (default) the "
                        "almost-everywhere derivative, as finite networks and neural-tangents; 'distributional' "
                        "the smoothed limit (Dirac parts, infinite on the diagonal)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ntksym", description="Symbolic NNGP/NTK derivations for fully-connected networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("derive", help="the whole job: print the summary, or write a report directory with --out")
    _activation_args(p)
    _network_args(p)
    p.add_argument("--order", type=int, default=8, help="number of Hermite coefficients shown")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--out", metavar="DIR", help="write report.tex/.pdf, equations.tex, kernels.py, figures and "
                   "derivation.json into DIR")
    p.add_argument("--force", action="store_true", help="replace an existing DIR")
    p.add_argument("--title", help="title of the report (default: the activation name)")
    p.add_argument("--no-pdf", action="store_true", help="do not run pdflatex even when it is installed")
    p.add_argument("--sphere-dim", type=int, default=3, help="ambient dimension d of the sphere spectrum (default 3)")
    p.add_argument("--kmax", type=int, default=20, help="largest degree k of the sphere spectrum (default 20)")
    p.add_argument("--series-order", type=int, default=256, help="power-series coefficients computed (default 256)")
    p.add_argument("--mc-samples", type=int, default=48, help="networks in the Monte-Carlo check (default 48)")
    _accuracy_arg(p)
    _derivative_arg(p)

    p = sub.add_parser("hermite", help="Hermite coefficients μ_k = E[φ(Z) h_k(Z)]")
    _activation_args(p)
    p.add_argument("--order", type=int, required=True, help="number of coefficients K (k = 0..K-1)")
    p.add_argument("--digits", type=int, default=20)
    p.add_argument("--json", action="store_true")
    _accuracy_arg(p)

    p = sub.add_parser("series", help="power-series coefficients of the NNGP and NTK in rho (|x|^2/d = 1)")
    _activation_args(p)
    _series_network_args(p)
    p.add_argument("--order", type=int, required=True, help="number of coefficients P (p = 0..P-1)")
    p.add_argument("--digits", type=int, default=None, help="mpmath precision (default: float64 FFT route)")
    p.add_argument("--exact", action="store_true", help="exact SymPy coefficients (low orders)")
    p.add_argument("--json", action="store_true")
    _derivative_arg(p)

    p = sub.add_parser("spectrum", help="NTK eigenvalues on the unit sphere S^(d-1), uniform measure")
    _activation_args(p)
    _series_network_args(p)
    p.add_argument("--dim", type=int, required=True, help="ambient dimension d")
    p.add_argument("--kmax", type=int, required=True, help="largest degree k")
    p.add_argument("--digits", type=int, default=30)
    p.add_argument("--order", type=bounded_int(1, 1 << 17), default=None,
                   help="number of series coefficients used (1..131072)")
    p.add_argument("--json", action="store_true")
    _derivative_arg(p)

    p = sub.add_parser("eoc", help="edge of chaos for a given sigma_b, or the phase of (sigma_w, sigma_b)")
    _activation_args(p)
    p.add_argument("--sigma-w", default=None, help="give it to get the phase of (sigma_w, sigma_b)")
    p.add_argument("--sigma-b", default="0")
    p.add_argument("--q0", default=None, help="first layer's pre-activation variance q1 = sigma_w^2 |x|^2/d + "
                   "sigma_b^2 whose orbit selects q* (default 1; see ntksym.eoc)")
    p.add_argument("--json", action="store_true")
    _derivative_arg(p)

    p = sub.add_parser("kernel", help="NNGP/NTK Gram matrices on data")
    _activation_args(p)
    _network_args(p)
    p.add_argument("--inputs", required=True, help=".npy file, shape (n1, d)")
    p.add_argument("--inputs2", help=".npy file, shape (n2, d) (default: inputs)")
    p.add_argument("--out", required=True, help="output .npz with arrays nngp and ntk")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    _accuracy_arg(p)
    _derivative_arg(p)

    for name in EXTENSIONS:  # subcommands that live next to their subject (ntksym/commands/<name>.py)
        COMMANDS.update(_extension(name).register(sub))
    return parser


# Each module ntksym.commands.<name> has register(subparsers) -> {command: handler}; handlers
# may use the helpers of this module (_activation_args, _network_args, _params, _load, ...).
EXTENSIONS = ("empirical", "rmt", "codegen")


def _extension(name: str):
    import importlib
    return importlib.import_module(f"ntksym.commands.{name}")


def _load(path: str) -> np.ndarray:
    """A finite float64 (n, d) array from a regular .npy file (checks in :mod:`ntksym.inputs`)."""
    from .inputs import load_array
    return load_array(path)


def _write_npz_atomic(out, force: bool = False, **arrays) -> None:
    """Write an .npz to ``out`` (a path or a held claim) under the rules of :mod:`ntksym.outputs`."""
    outputs.write_file(out, lambda fh: np.savez(fh, **arrays), force=force)


def cmd_hermite(args) -> int:
    if args.order < 1 or args.order > 500:
        raise NtksymError("--order must be between 1 and 500")
    if args.digits < 1 or args.digits > 1000:
        raise NtksymError("--digits must be between 1 and 1000")
    series = api.hermite(args.activation, args.order, args.digits, _params(args.param),
                         allow_inaccurate=args.allow_inaccurate)
    rows = [{"k": c.k, "exact": None if c.exact is None else str(c.exact),
             "value": c.value_str(args.digits), "route": c.route} for c in series.coefficients]
    if args.json:
        print(json.dumps({"activation": args.activation, "coefficients": rows}))
    else:
        for r in rows:
            print(f"mu_{r['k']:<3d} {r['value']:>{args.digits + 8}}  {r['exact'] or '':30s} [{r['route']}]")
    return 0


def cmd_kernel(args) -> int:
    with outputs.claim(args.out, "file", args.force) as out:   # claimed before the work
        x1 = _load(args.inputs)
        x2 = _load(args.inputs2) if args.inputs2 else None
        nngp, ntk = api.kernel(args.activation, x1, x2, args.depth, args.sigma_w, args.sigma_b,
                               _params(args.param), args.parameterization, args.width,
                               allow_inaccurate=args.allow_inaccurate, derivative=args.derivative)
        _write_npz_atomic(out, nngp=nngp.astype(np.float64), ntk=ntk.astype(np.float64))
    return 0


def cmd_derive(args) -> int:
    if not 1 <= args.order <= 200:
        raise NtksymError("--order must be between 1 and 200")
    if args.out is None:
        if args.force or args.title or args.no_pdf:
            raise NtksymError("--force, --title and --no-pdf need --out DIR")
        d = api.derive(args.activation, args.depth, args.sigma_w, args.sigma_b, _params(args.param),
                       args.parameterization, args.width, order=args.order,
                       allow_inaccurate=args.allow_inaccurate, derivative=args.derivative)
        print(summary_text(d, as_json=args.json))
        return 0
    from .report import ReportOptions, write_outputs
    if not 2 <= args.sphere_dim <= 100000 or not 0 <= args.kmax <= 500:
        raise NtksymError("--sphere-dim must be in [2, 100000] and --kmax in [0, 500]")
    if not 16 <= args.series_order <= 1 << 16 or not 2 <= args.mc_samples <= 100000:
        raise NtksymError("--series-order must be in [16, 65536] and --mc-samples in [2, 100000]")
    opts = ReportOptions(series_order=args.series_order, sphere_dim=args.sphere_dim, sphere_kmax=args.kmax,
                         mc_samples=args.mc_samples)
    with outputs.claim(args.out, "dir", args.force) as claim:   # claimed before the long computation
        d = api.derive(args.activation, args.depth, args.sigma_w, args.sigma_b, _params(args.param),
                       args.parameterization, args.width, order=args.order,
                       allow_inaccurate=args.allow_inaccurate, derivative=args.derivative)
        out = write_outputs(d, claim, command=_command_line(), title=args.title, options=opts,
                            pdf=not args.no_pdf)
    summary = {"directory": str(out.directory), "files": list(out.files), "pdf": out.pdf,
               "checks_passed": all(c.passed for c in out.data.checks)}
    print(json.dumps(summary) if args.json else
          f"wrote {', '.join(out.files)} to {out.directory}" + ("" if out.pdf or args.no_pdf else
                                                                 " (no pdflatex found: report.pdf not compiled)"))
    return 0


_ARGV: list[str] | None = None


def _command_line() -> str:
    import shlex
    return "ntksym " + shlex.join(_ARGV if _ARGV is not None else sys.argv[1:])


def cmd_series(args) -> int:
    if args.order < 1 or args.order > 1 << 20:
        raise NtksymError("--order must be between 1 and 1048576")
    if args.digits is not None and not 1 <= args.digits <= 200:
        raise NtksymError("--digits must be between 1 and 200")
    if args.exact and args.order > 40:
        raise NtksymError("--exact is for low orders (at most 40); use --digits for high precision")
    s = api.power_series(args.activation, args.depth, _sigma(args.sigma_w, "sigma-w"), _sigma(args.sigma_b, "sigma-b"),
                         args.order, args.digits, _params(args.param), args.exact, args.preset,
                         derivative=args.derivative)
    digits = args.digits or (30 if args.exact else None)
    out = {"nngp": [_decimal(c, digits) for c in s.nngp], "ntk": [_decimal(c, digits) for c in s.ntk],
           "route": s.route, "accuracy": s.accuracy, "ntk_at_1": _decimal(s.ntk_at_one, digits),
           "nngp_at_1": _decimal(s.nngp_at_one, digits)}
    if args.exact:
        out["nngp_exact"] = [str(c) for c in s.nngp]
        out["ntk_exact"] = [str(c) for c in s.ntk]
    if args.json:
        print(json.dumps(out))
    else:
        print(f"route: {s.route}\naccuracy: {s.accuracy}\nTheta(1) = {out['ntk_at_1']}")
        for p, (a, b) in enumerate(zip(out["nngp"], out["ntk"])):
            print(f"p = {p:<5d} nngp {a:>26s}   ntk {b:>26s}")
    return 0


def cmd_spectrum(args) -> int:
    if not 2 <= args.dim <= 100000 or not 0 <= args.kmax <= 5000:
        raise NtksymError("--dim must be in [2, 100000] and --kmax in [0, 5000]")
    if not 1 <= args.digits <= 200:
        raise NtksymError("--digits must be between 1 and 200")
    spec = api.sphere_spectrum(args.activation, args.depth, args.dim, args.kmax, _sigma(args.sigma_w, "sigma-w"),
                               _sigma(args.sigma_b, "sigma-b"), args.digits, _params(args.param), args.order,
                               args.preset, derivative=args.derivative)
    data = spec.as_json(args.digits)
    if args.json:
        print(json.dumps(data))
    else:
        bounds = data.get("error_bound") or [None] * len(data["eigenvalues"])
        reasons = {u["k"]: u["reason"] for u in data.get("unresolved", [])}
        for k, (lam, mult, b) in enumerate(zip(data["eigenvalues"], data["multiplicities"], bounds)):
            # unresolved eigenvalues are marked, never printed as digits (their bound says why)
            shown = "unresolved" if lam is None else lam
            tail = f"   error <= {b}" if b is not None else ""
            print(f"k = {k:<5d} lambda_k = {shown:>40s}   N(d,k) = {mult}{tail}"
                  + (f"   ({reasons[k]})" if k in reasons else ""))
    return 0


def cmd_eoc(args) -> int:
    import mpmath
    from . import eoc
    act = api.as_activation(args.activation, _params(args.param))
    dual = api.dual_kernels(act, derivative=getattr(args, "derivative", "ae"))
    sb = _sigma(args.sigma_b, "sigma-b")

    def num(v, digits=20):   # values come rounded to the digits they have (ntksym.eoc); ∞ as "inf"
        return None if v is None else ("inf" if v == mpmath.inf else mpmath.nstr(v, digits))
    if args.sigma_w is None:
        if args.q0 is not None:
            raise NtksymError("--q0 selects the fixed point of a phase: give --sigma-w as well")
        e = eoc.edge_of_chaos(act, dual, sb)
        out = {"sigma_w": num(e.sigma_w), "sigma_b": num(e.sigma_b), "q_star": num(e.q_star), "chi1": num(e.chi1),
               "exact": None if e.exact is None else str(e.exact), "route": e.route}
        if e.q_star is None:
            out["note"] = "positively homogeneous activation: every q is a fixed point at the EOC"
        if e.others:
            out["others"] = [f"sigma_w = {num(w, 12)} at q = {num(q, 12)} ({kind})" for w, q, kind in e.others]
    else:
        ph = eoc.phase(act, dual, _sigma(args.sigma_w, "sigma-w"), sb,
                       q0=None if args.q0 is None else _sigma(args.q0, "q0"))
        out = {"sigma_w": num(ph.sigma_w), "sigma_b": num(ph.sigma_b), "q_star": num(ph.q_star),
               "chi1": num(ph.chi1), "phase": ph.phase, "xi_q": num(ph.xi_q, 15), "xi_c": num(ph.xi_c, 15),
               "c_star": num(ph.c_star, 15), "v_slope": num(ph.v_slope, 15),
               "fixed_points": [p.describe() for p in ph.fixed_points], "route": ph.route}
        if ph.note:
            out["note"] = ph.note
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:12s} {'; '.join(v) if isinstance(v, list) else v}")
    return 0


COMMANDS = {"eoc": cmd_eoc, "derive": cmd_derive, "hermite": cmd_hermite, "kernel": cmd_kernel, "series": cmd_series,
            "spectrum": cmd_spectrum}


def _warn_once(caught: list) -> None:
    """All warnings of a successful run as one line on stderr (NumPy's quote internal source lines)."""
    first = " ".join(str(caught[0].message).split())[:200]
    more = f" and {len(caught) - 1} more" if len(caught) > 1 else ""
    numeric = any(issubclass(w.category, RuntimeWarning) for w in caught)
    hint = "; some values may be inf or nan" if numeric else ""
    print(f"ntksym: warning: {first}{more}{hint}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # never crash on a terminal that cannot show φ or Σ
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    global _ARGV
    _ARGV = None if argv is None else list(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args = build_parser().parse_args(argv)
            status = COMMANDS[args.command](args)
        if status == 0 and caught:
            _warn_once(caught)
        return status
    except outputs.Terminated as exc:  # SIGTERM/SIGHUP while writing: staging removed, nothing written
        import signal
        _fail(f"terminated by {signal.Signals(exc.signum).name}; staging removed, no partial output")
        return exc.code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    except NtksymError as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        return _fail("interrupted")
    except BrokenPipeError:  # e.g. `ntksym derive relu --depth 3 | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file the command touched: name it, one line
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return _fail(f"{where + ': ' if where else ''}{exc.strerror or exc}")
    except Exception as exc:  # a bug: one line unless NTKSYM_DEBUG=1 asks for the traceback
        if os.environ.get("NTKSYM_DEBUG") == "1":
            raise
        first = (str(exc).splitlines() or [""])[0]
        print(f"ntksym: internal error: {type(exc).__name__}: {first} (set NTKSYM_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
