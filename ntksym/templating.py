"""One cached Jinja environment for every template ntksym renders.

Templates live in the repository's ``templates/`` folder, installed as the
package ``ntksym.templates`` (see pyproject.toml), so a non-editable install
finds them.  StrictUndefined: a missing value is an error, never blank text.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(_load)
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


@lru_cache(maxsize=1)
def latex_environment() -> jinja2.Environment:
    r"""Delimiters that do not clash with TeX braces or %: \VAR{x}, \BLOCK{for ...}, \#{comment}.

    Values reach templates pre-printed (escaped text, LaTeX from our printer); the ``e``
    filter escapes any remaining user text."""
    from .report.latex import escape_text
    env = jinja2.Environment(loader=jinja2.FunctionLoader(_load), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                             block_start_string=r"\BLOCK{", block_end_string="}",
                             variable_start_string=r"\VAR{", variable_end_string="}",
                             comment_start_string=r"\#{", comment_end_string="}",
                             line_comment_prefix="%#")
    env.filters["e"] = escape_text
    return env


def render_latex(name: str, **context) -> str:
    return latex_environment().get_template(name).render(**context)


def _load(name: str) -> str:
    try:
        root = resources.files("ntksym.templates")
    except ModuleNotFoundError:  # running from a source checkout: templates/ beside the package
        root = Path(__file__).resolve().parents[1] / "templates"
    return root.joinpath(name).read_text(encoding="utf-8")


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
