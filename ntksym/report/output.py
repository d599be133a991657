"""Write a derivation's outputs into a directory, all or nothing.

``write_outputs`` claims the target (:mod:`ntksym.outputs`), renders into the
claim's private staging directory, compiles the PDF there (pdflatex without
shell escape, when one is installed), and publishes the directory atomically
only when everything succeeded.  An existing target is replaced only with
``force=True``; a failed or interrupted run leaves the target as it was and no
staging directory behind.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import outputs
from ..errors import InputError, NtksymError
from ..templating import render_latex
from . import analyses, figures, record, views

PDFLATEX_SECONDS = 120


@dataclass(frozen=True)
class Outputs:
    """What was written: the directory, the file names, and whether a PDF was compiled."""
    directory: Path
    files: tuple[str, ...]
    pdf: bool
    data: analyses.ReportData


def pdflatex() -> str | None:
    return shutil.which("pdflatex")


def render_report(data, title: str | None, prov: dict, figure_list) -> str:
    return render_latex("report.tex.j2", **views.report_context(data, title, prov, figure_list))


def render_equations(data, title: str | None, prov: dict) -> str:
    return render_latex("equations.tex.j2", **views.report_context(data, title, prov, []))


def compile_pdf(directory: Path, name: str = "report.tex") -> None:
    """Run pdflatex twice (longtable widths settle on the second pass); raise NtksymError on failure."""
    exe = pdflatex()
    if exe is None:
        raise NtksymError("no pdflatex on PATH")
    cmd = [exe, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", name]
    env = {**os.environ, "openout_any": "p", "openin_any": "p"}  # paranoid: no reads/writes outside the tree
    for _ in range(2):
        try:
            proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, errors="replace",
                                  timeout=PDFLATEX_SECONDS, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise NtksymError(f"pdflatex ran past {PDFLATEX_SECONDS} s") from None
        if proc.returncode != 0:
            first = next((ln for ln in proc.stdout.splitlines() if ln.startswith("!")), "see the TeX log")
            raise NtksymError(f"pdflatex failed on the report: {first}")


def _module(d, staging: Path) -> tuple[str | None, str | None]:
    """Write the generated kernel module; (file name, note) — the note says why it is absent."""
    try:
        from ..codegen import module_source
    except ImportError as exc:  # pragma: no cover - only in a broken install
        return None, f"code generation unavailable ({exc})"
    try:
        source = module_source(d)
    except NtksymError as exc:
        return None, f"no kernel module: {str(exc).splitlines()[0]}"
    (staging / "kernels.py").write_text(source, encoding="utf-8")
    return "kernels.py", None


def write_outputs(d, out, *, force: bool = False, command: str | None = None, title: str | None = None,
                  options: analyses.ReportOptions | None = None, pdf: bool = True, module: bool = True) -> Outputs:
    """report.tex (+ report.pdf), equations.tex, the kernel module, figures and derivation.json in ``out``.

    ``out`` is a path or a directory claim already held (:func:`ntksym.outputs.claim`, ``kind="dir"``;
    the CLI claims before deriving).  Everything is written into the claim's staging directory and
    published at the end under the rules of :mod:`ntksym.outputs` (no-clobber unless ``force``).
    """
    if not isinstance(out, outputs.Claim):
        out = Path(out).expanduser()
    with outputs.claimed(out, "dir", force) as claim:
        data = analyses.build(d, options)
        prov = record.provenance(command)
        try:
            files, compiled = _stage(d, claim.path, data, prov, title, pdf, module)
        except OSError as exc:
            raise InputError(f"cannot write {claim.target}: {exc.strerror or exc}") from None
        claim.publish()
        return Outputs(claim.target, tuple(files), compiled, data)


def _stage(d, staging: Path, data, prov, title, pdf: bool, module: bool) -> tuple[list[str], bool]:
    figs = figures.write_figures(data, staging)
    (staging / "report.tex").write_text(render_report(data, title, prov, figs), encoding="utf-8")
    (staging / "equations.tex").write_text(render_equations(data, title, prov), encoding="utf-8")
    files = ["report.tex", "equations.tex", *[name for name, _ in figs]]
    note = "not requested"
    if module:
        name, note = _module(d, staging)
        files += [name] if name else []
        if note:   # never silent: the CLI turns this into its one warning line
            warnings.warn(f"kernels.py was not written ({note}); the reason is also in derivation.json",
                          UserWarning, stacklevel=3)
    compiled = False
    if pdf and pdflatex() is not None:
        compile_pdf(staging)
        compiled = True
        files.append("report.pdf")
        for junk in staging.glob("report.*"):
            if junk.name not in ("report.tex", "report.pdf"):
                junk.unlink()
    files.append("derivation.json")
    rec = record.record(data, prov, files, note)
    (staging / "derivation.json").write_text(record.dumps(rec), encoding="utf-8")
    return files, compiled
