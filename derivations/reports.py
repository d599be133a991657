"""One report per catalogue activation: derivations/catalogue/<name>/.

    python derivations/reports.py                 # every catalogue activation (a few minutes)
    python derivations/reports.py relu erf --pdf  # some, and compile report.pdf too (needs pdflatex)

Each directory holds what `ntksym derive NAME --depth 3 --sigma-w 1.2 --sigma-b 0.1 --out DIR`
writes: report.tex (standalone LaTeX), equations.tex (fragments to \\input into a paper, with
labels ntksym:<name>:<what>) and derivation.json (the machine-readable record); `ntksym derive`
itself also writes kernels.py (the generated kernel module).  PDFs, figures and kernels.py (about 160 kB each, mostly its
interpolation table) are left out of the repository; pass --pdf to build them locally.  The index is derivations/catalogue/README.md.
"""
from __future__ import annotations

import argparse
import pathlib
import shlex
import sys
import time

import ntksym
from ntksym.report import ReportOptions, write_outputs

ROOT = pathlib.Path(__file__).with_name("catalogue")
NAMES = sorted(ntksym.CATALOGUE) + ["hermite3", "monomial3"]
DEPTH, SIGMA_W, SIGMA_B = 3, 1.2, 0.1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=NAMES)
    parser.add_argument("--pdf", action="store_true", help="compile report.pdf and draw the figures")
    args = parser.parse_args(argv)
    ROOT.mkdir(exist_ok=True)
    rows = []
    for name in args.names:
        t0 = time.perf_counter()
        d = ntksym.derive(name, depth=DEPTH, sigma_w=SIGMA_W, sigma_b=SIGMA_B)
        command = f"ntksym derive {shlex.quote(name)} --depth {DEPTH} --sigma-w {SIGMA_W} --sigma-b {SIGMA_B} " \
                  f"--out derivations/catalogue/{name}"
        out = write_outputs(d, ROOT / name, force=True, command=command, options=ReportOptions(figures=args.pdf),
                            pdf=args.pdf, module=args.pdf)
        checks = out.data.checks
        passed = sum(c.passed for c in checks)
        description = (d.activation.description or '-').replace("|", "\\|")
        rows.append(f"| [{name}]({name}/report.tex) | {description} | "
                    f"{'closed form' if d.dual.khat is not None else 'quadrature'} | {passed}/{len(checks)} |")
        print(f"{name:12s} {time.perf_counter() - t0:6.1f} s  checks {passed}/{len(checks)}", file=sys.stderr)
    if args.names == NAMES:
        (ROOT / "README.md").write_text(
            "# Catalogue reports\n\nRegenerate with `python derivations/reports.py` (depth "
            f"{DEPTH}, σ_w = {SIGMA_W}, σ_b = {SIGMA_B}).\n\n| activation | description | dual kernels | checks passed |\n"
            "|---|---|---|---|\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
