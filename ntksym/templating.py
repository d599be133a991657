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


def _load(name: str) -> str:
    try:
        root = resources.files("ntksym.templates")
    except ModuleNotFoundError:  # running from a source checkout: templates/ beside the package
        root = Path(__file__).resolve().parents[1] / "templates"
    return root.joinpath(name).read_text(encoding="utf-8")


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
