"""One way to ask the model for text, shared by answers and summaries.

A :class:`Prompt` names the templates of one kind of generation: chat models get a
system and a user message, base models a few-shot completion prompt. :func:`build`
fills them and sets the request options from Settings; :func:`fit` drops the
lowest-priority evidence until the prompt fits the context window; :func:`stream`
yields tokens until done or until a `stop` event is set, and always closes the model's
stream so its lock is freed at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TypeVar

from . import prompts
from .llm import LLM, Request
from .settings import Settings

T = TypeVar("T")

# Room kept free beside prompt and generation: BOS and chat-template tokens.
MARGIN_TOKENS = 16


@dataclass(frozen=True)
class Prompt:
    """The templates of one kind of generation, and which Settings field limits its output.

    `values` given to :func:`build` may hold more than one template takes (a chat user
    message may show the topic, the completion not): each template gets the values its
    contract in ``prompts.PLACEHOLDERS`` names, and a value it needs but lacks is an error.
    """

    system: str
    user: str
    completion: str
    stop: tuple[str, ...] = ()  # completion only: where the model's line ends
    trim: bool = False  # completion ends at a label the model continues ("TL;DR:"): drop the file's final newline
    chat_tokens: str = "max_tokens"  # Settings field: generation limit with chat messages
    completion_tokens: str = "max_tokens"  # Settings field: generation limit with a completion prompt


def _render(name: str, values: dict[str, object]) -> str:
    wanted = prompts.PLACEHOLDERS.get(name, frozenset())
    return prompts.render(name, **{key: values[key] for key in wanted if key in values})


def build(llm: LLM, settings: Settings, prompt: Prompt, values: dict[str, object]) -> Request:
    """The request for this model: chat messages or a completion prompt, options from `settings`."""
    options = dict(temperature=settings.temperature, seed=settings.seed, repeat_penalty=settings.repeat_penalty)
    if llm.chat:
        messages = [
            {"role": "system", "content": _render(prompt.system, values)},
            {"role": "user", "content": _render(prompt.user, values)},
        ]
        return Request(messages=messages, max_tokens=getattr(settings, prompt.chat_tokens), **options)
    text = _render(prompt.completion, values)
    return Request(
        prompt=text.rstrip("\n") if prompt.trim else text,
        stop=list(prompt.stop),
        max_tokens=getattr(settings, prompt.completion_tokens),
        **options,
    )


def prompt_tokens(llm: LLM, request: Request) -> int:
    text = request.prompt if request.prompt is not None else "\n".join(m["content"] for m in request.messages or [])
    return llm.count_tokens(text)


def prompt_budget(llm: LLM, max_tokens: int, cap: int | None = None) -> int:
    """Prompt tokens allowed: the context window minus the generation limit, or `cap` if lower."""
    budget = llm.n_ctx - max_tokens - MARGIN_TOKENS
    if cap:
        budget = min(budget, cap)
    return max(budget, 1)


def fit(
    llm: LLM,
    settings: Settings,
    prompt: Prompt,
    items: Sequence[T],
    values: Callable[[list[T]], dict[str, object]],
    *,
    priority: Callable[[T], float] | None = None,
    cap: int | None = None,
) -> Request:
    """The request showing as many `items` (evidence) as fit the budget: the item with the
    lowest `priority` is dropped first (without `priority`, the last one); one always stays."""
    kept = list(items)
    while True:
        request = build(llm, settings, prompt, values(kept))
        if len(kept) <= 1 or prompt_tokens(llm, request) <= prompt_budget(llm, request.max_tokens, cap):
            return request
        kept.remove(min(kept, key=priority) if priority is not None else kept[-1])


def stream(llm: LLM, request: Request, stop: threading.Event | None = None) -> Iterator[str]:
    """Tokens as they come; ends early once `stop` is set. The model's stream is closed on
    every exit (done, stopped, or the caller closing this generator), freeing the model."""
    if stop is not None and stop.is_set():
        return
    with closing(llm.stream(request)) as tokens:
        for token in tokens:
            if stop is not None and stop.is_set():
                return
            yield token


def generate(llm: LLM, request: Request, stop: threading.Event | None = None) -> str:
    """The whole generated text (what was written before `stop`, if it was set)."""
    return "".join(stream(llm, request, stop))
