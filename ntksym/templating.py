"""One cached Jinja environment for every template ntksym renders.

Templates live in the repository's ``templates/`` folder, installed as the
package ``ntksym.templates`` (see pyproject.toml), so a non-editable install
finds them.  StrictUndefined: a missing value is an error, never blank text.

Templates that emit Python (``*.py.j2``) have no autoescaping to lean on, so
user-derived values (activation text and names, command lines, paths,
parameters, routes) enter them only through two filters of this module:

* ``pyliteral`` (:func:`python_literal`): a Python literal of a str, int,
  finite float, bool or None, by ``repr`` -- for code positions;
* ``pytext`` (:func:`python_text`): one line of printable text that is safe
  both in a ``#`` comment and inside a non-raw ``\"\"\"`` docstring, where it
  reads back as the original text -- for comments and docstrings.

:func:`ntksym.codegen.module_source` checks the result: the generated module
must compile, and its tokens outside string literals and comments must not
depend on any user text.
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2


_LITERAL_TYPES = (str, int, float, bool, type(None))


def python_literal(value) -> str:
    """``repr(value)`` for a str, int, finite float, bool or None (exact types: a subclass could
    override ``__repr__``); anything else is a bug in the caller and raises TypeError/ValueError."""
    if type(value) not in _LITERAL_TYPES:
        raise TypeError(f"no Python literal for a {type(value).__name__}")
    if type(value) is float and not math.isfinite(value):
        raise ValueError(f"no Python literal for the float {value!r}")
    return repr(value)


_TEXT_ESCAPES = {"\\": "\\\\", '"': '\\"'}


def python_text(value) -> str:
    r"""``str(value)`` as one line of printable text for a ``#`` comment or a non-raw docstring.

    Backslashes and double quotes are escaped (``\\`` and ``\"``), and every non-printable
    character -- line breaks, carriage returns, NUL, tabs, form feeds, U+2028/U+2029, lone
    surrogates -- is written as its ``repr`` escape (``\n``, ``\x00``, ``\u2028``, ...).
    So the result cannot end a comment line, close or escape out of a triple-quoted string,
    or form an invalid escape; inside a docstring it reads back as the original text.
    """
    return "".join(_TEXT_ESCAPES.get(char) or (char if char.isprintable() else repr(char)[1:-1])
                   for char in str(value))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The environment of the plain-text and Python templates (filters ``pyliteral``, ``pytext``)."""
    loader = jinja2.FunctionLoader(_load)
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters["pyliteral"] = python_literal
    env.filters["pytext"] = python_text
    return env


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
