"""LaTeX reports, equation fragments and the JSON record of a derivation.

``write_outputs(derivation, directory)`` is the main entry point (``ntksym derive … --out DIR``);
:mod:`.analyses` computes what the report shows, :mod:`.views` pre-prints it, the
templates in ``templates/`` lay it out, :mod:`.record` writes ``derivation.json``.
"""
from .analyses import ReportData, ReportOptions, build
from .output import Outputs, compile_pdf, write_outputs
from .latex import escape_text, latex
from .record import load as load_record
from .record import rederive

__all__ = ["ReportData", "ReportOptions", "build", "Outputs", "compile_pdf", "write_outputs", "escape_text", "latex",
           "load_record", "rederive"]
