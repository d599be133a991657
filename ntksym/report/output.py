"""Write a derivation's outputs into a directory, all or nothing.

``write_outputs`` renders into a hidden staging directory next to the target,
compiles the PDF there (pdflatex without shell escape, when one is installed),
and renames the staging directory into place only when everything succeeded.
An existing target is replaced only with ``force=True``; a failed run leaves
the target as it was and no staging directory behind.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
        from ..codegen import write_module
    except ImportError as exc:  # pragma: no cover - only in a broken install
        return None, f"code generation unavailable ({exc})"
    try:
        write_module(d, staging / "kernels.py")
    except NtksymError as exc:
        return None, f"no kernel module: {str(exc).splitlines()[0]}"
    return "kernels.py", None


def write_outputs(d, out, *, force: bool = False, command: str | None = None, title: str | None = None,
                  options: analyses.ReportOptions | None = None, pdf: bool = True, module: bool = True) -> Outputs:
    """report.tex (+ report.pdf), equations.tex, the kernel module, figures and derivation.json in ``out``."""
    target = Path(out).expanduser().absolute()
    parent = target.parent
    if not parent.is_dir():
        raise InputError(f"parent directory does not exist: {parent}")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory")
    if target.exists() and not force:
        raise InputError(f"{target} already exists (use --force to replace it)")
    data = analyses.build(d, options)
    prov = record.provenance(command)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.ntksym-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)   # mkdtemp makes 0700; the result is an ordinary directory
    try:
        figs = figures.write_figures(data, staging)
        (staging / "report.tex").write_text(render_report(data, title, prov, figs), encoding="utf-8")
        (staging / "equations.tex").write_text(render_equations(data, title, prov), encoding="utf-8")
        files = ["report.tex", "equations.tex", *[name for name, _ in figs]]
        note = "not requested"
        if module:
            name, note = _module(d, staging)
            files += [name] if name else []
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
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Outputs(target, tuple(files), compiled, data)


def _replace(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / "previous")
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old / "previous", target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
