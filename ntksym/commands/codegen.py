"""``ntksym codegen``: write a standalone NNGP/NTK module (see :mod:`ntksym.codegen`).

    ntksym codegen relu --depth 3 --sigma-w 1.4 --sigma-b 0.1 -o relu_kernels.py

No-clobber policy (:mod:`ntksym.outputs`): an existing output is left alone
(exit 2, one line on stderr) unless ``--force`` is given; the output is claimed
before the derivation and published atomically, so a failed run never leaves a
partial module and a symlink is replaced, never written through.
"""
from __future__ import annotations

import shlex
import sys

from ..errors import NtksymError


def register(sub) -> dict:
    from ..cli import _activation_args, _derivative_arg, _network_args
    p = sub.add_parser("codegen", help="write a standalone NNGP/NTK module (array-API code, no SymPy)")
    _activation_args(p)
    _network_args(p)
    _derivative_arg(p)
    p.add_argument("-o", "--output", required=True, help="path of the module to write (e.g. kernels.py)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    return {"codegen": cmd_codegen}


def cmd_codegen(args) -> int:
    from .. import derivation as api
    from ..cli import _params
    from ..codegen import module_source, write_module
    from ..outputs import claim
    if not args.output.endswith(".py"):
        raise NtksymError(f"the output must be a .py file, got {args.output}")
    with claim(args.output, "file", args.force) as out:   # claimed before the derivation
        d = api.derive(args.activation, args.depth, args.sigma_w, args.sigma_b, _params(args.param),
                       args.parameterization, args.width, derivative=args.derivative)
        if d.dual.kdot_distributional:   # the module would return inf on every Gram diagonal, unlabelled
            raise NtksymError(f"{args.activation}: with --derivative distributional Sigma-dot has a Dirac part "
                              "(infinite at c = ±sqrt(q1 q2), e.g. every Gram diagonal), so no module is generated; "
                              "the default almost-everywhere derivative (--derivative ae) is finite")
        command = "ntksym " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if _invoked_as_cli() else
                                                               _reconstruct(args)))
        target = write_module(d, out, source=module_source(d, command))
    print(target)
    return 0


def _invoked_as_cli() -> bool:
    return len(sys.argv) > 1 and sys.argv[1] == "codegen"


def _reconstruct(args) -> list[str]:
    out = ["codegen", args.activation, "--depth", str(args.depth), "--sigma-w", repr(args.sigma_w),
           "--sigma-b", repr(args.sigma_b), "--parameterization", args.parameterization]
    for p in args.param or []:
        out += ["--param", p]
    if args.width is not None:
        out += ["--width", str(args.width)]
    if args.derivative != "ae":
        out += ["--derivative", args.derivative]
    return out + ["-o", args.output]
