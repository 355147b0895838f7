"""Prompt templates: text files with $placeholders (string.Template) in the top-level
prompts/ folder, shipped inside the package as ``assistant.prompt_templates`` so an
installed wheel finds them too.

:data:`PLACEHOLDERS` is the contract between code and templates: a template whose
placeholders differ from what the code fills is an error at render time (and a test
checks every file against it), so a wording change can never silently drop evidence.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from string import Template

from .errors import AssistantError
from .settings import PROJECT_ROOT, running_from_clone
from .text import cap, neutralize

# template file -> the placeholders the code fills
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "answer_system.txt": frozenset(),
    "answer_user.txt": frozenset({"evidence", "question"}),
    "answer_completion.txt": frozenset({"evidence", "question"}),
    "summary_system.txt": frozenset(),
    "summary_map_block.txt": frozenset({"n", "evidence"}),
    "summary_map_user.txt": frozenset({"evidence", "topic"}),
    "summary_map_completion.txt": frozenset({"papers"}),  # the papers so far, each with its key point
    "summary_reduce_user.txt": frozenset({"points", "topic"}),
    "summary_reduce_completion.txt": frozenset({"points"}),
    "summary_tldr_user.txt": frozenset({"abstract"}),
    "summary_tldr_completion.txt": frozenset({"abstract"}),
}


class TemplateError(AssistantError):
    """A prompt template is missing or does not take the values the code fills."""


def templates_dir() -> Path:
    """Where the templates are: the prompts/ folder of a clone, or the installed package data."""
    if running_from_clone():
        return PROJECT_ROOT / "prompts"
    spec = importlib.util.find_spec("assistant.prompt_templates")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateError("the prompt templates are not installed (package assistant.prompt_templates is missing)")
    return Path(list(spec.submodule_search_locations)[0])


def placeholders(template: Template) -> set[str]:
    """The $names a template uses."""
    return {
        match.group("named") or match.group("braced")
        for match in template.pattern.finditer(template.template)
        if match.group("named") or match.group("braced")
    }


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    path = templates_dir() / name
    try:
        template = Template(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read prompt template {path}: {exc.strerror}") from exc
    found, expected = placeholders(template), PLACEHOLDERS.get(name, frozenset())
    if found != expected:  # an edited template must not silently drop the evidence
        raise TemplateError(f"{path} uses {sorted(found)}, the code fills {sorted(expected)}")
    return template


def render(name: str, **values: object) -> str:
    """Fill a template; a missing or unexpected value is an error, not a silent blank."""
    expected = PLACEHOLDERS.get(name)
    if expected is None:
        raise TemplateError(f"unknown prompt template {name!r}: add it to prompts.PLACEHOLDERS")
    if set(values) != expected:
        raise TemplateError(f"{name} takes {sorted(expected)}, the code gave {sorted(values)}")
    return _template(name).substitute(**{key: str(value) for key, value in values.items()})


QUOTE_LIMIT = 800  # characters per quoted source text: one sentence never fills the context


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Sources go to the model as quoted strings: data to copy, never instructions, with
    markers and prompt delimiters neutralized and overlong text cut with an ellipsis."""
    return json.dumps(cap(neutralize(text), limit), ensure_ascii=False)
