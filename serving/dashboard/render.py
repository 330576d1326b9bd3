"""The Jinja2 templates (package data), rendered with the words of one language."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from leadradar.serving.dashboard.charts import FAMILY_COLORS, GRADE_COLORS
from leadradar.serving.dashboard.messages import translator


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("leadradar.serving.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(grade_colors=GRADE_COLORS, family_colors=FAMILY_COLORS)
    return env


def render(template: str, lang: str, **context: Any) -> str:
    """A page in `lang`: templates call `t(key, **slots)` for every word."""
    return environment().get_template(template).render(t=translator(lang), lang=lang, **context)
