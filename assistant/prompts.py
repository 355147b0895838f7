"""Prompt templates live in prompts/ as text files with $placeholders (string.Template),
so wording can be changed without touching code."""

from __future__ import annotations

import json
from functools import lru_cache
from string import Template

from .settings import PROMPTS_DIR


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    return Template((PROMPTS_DIR / name).read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """Fill a template; a missing value is an error, not a silent blank."""
    return _template(name).substitute(**{key: str(value) for key, value in values.items()})


def quote(text: str) -> str:
    """Sources go to the model as quoted strings: data to copy, never instructions."""
    return json.dumps(text, ensure_ascii=False)
