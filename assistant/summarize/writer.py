"""Map and reduce of a topic summary: the model's key points per paper and the overview
over them, every sentence verified against the summary's one numbered SourceSet."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from .. import generation, prompts
from ..citations import CheckedSentence, Verifier
from ..errors import LLMError
from ..evidence import SourceSet
from ..llm import LLM, Request
from ..settings import Settings
from ..text import background_flags, with_markers
from .cleanup import LEADING_JUNK, clean_line, complete_sentences, drop_unfinished, sanitize
from .themes import Theme

T = TypeVar("T")

MAP_PROMPT = generation.Prompt(
    "summary_system.txt",
    "summary_map_user.txt",
    "summary_map_completion.txt",
    stop=("\n", "Paper ["),
    trim=True,
    completion_tokens="summary_key_point_tokens",
)
REDUCE_PROMPT = generation.Prompt(
    "summary_system.txt",
    "summary_reduce_user.txt",
    "summary_reduce_completion.txt",
    stop=("\n", "Key points:"),
    trim=True,
    completion_tokens="summary_overview_tokens",
)


def pack(items: list[T], fits: Callable[[list[T]], bool]) -> list[list[T]]:
    """Consecutive groups, each as large as `fits` allows (one item always makes a group)."""
    groups: list[list[T]] = []
    for item in items:
        if groups and fits(groups[-1] + [item]):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


class Writer:
    """Writes with one model for one topic; counts what it did in `stats`, keeps the
    sentences the verifier rejected in `dropped` and problems in `notes`."""

    def __init__(
        self,
        llm: LLM,
        settings: Settings,
        topic: str,
        sources: SourceSet,
        topic_vector: np.ndarray,
        *,
        max_context_tokens: int | None = None,
        stop: threading.Event | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.llm, self.settings, self.topic, self.stop = llm, settings, topic, stop
        self.sources, self.topic_vector = sources, topic_vector
        self.verifier = Verifier(sources, settings.support_threshold)
        self.budget = generation.prompt_budget(llm, settings.max_tokens, max_context_tokens)
        self.stats: Counter[str] = Counter()
        self.dropped: list[str] = []  # generated sentences the verifier rejected
        self.removed = 0  # citations the verifier removed
        self.notes = notes if notes is not None else []

    # --- map: key points --------------------------------------------------------------

    def key_points(self, theme: Theme) -> list[CheckedSentence]:
        """Verified key points of the theme's papers, in parts that fit the budget."""
        numbers = [n for n in theme.numbers if self._evidence(n)]
        parts = pack(numbers, self._map_fits)
        self.stats["map_parts"] += len(parts)
        points: list[CheckedSentence] = []
        for part in parts:
            points.extend(self._map_chat(part) if self.llm.chat else self._map_completion(part))
        return points

    def _map_fits(self, numbers: list[int]) -> bool:
        if self.llm.chat:
            return self._tokens(self._chat_map_request(numbers)) <= self.budget
        request = self._build(MAP_PROMPT, papers="\n\n".join(self._block(n) for n in numbers))
        return self._tokens(request) + len(numbers) * request.max_tokens <= self.budget  # room for each key point

    def _map_completion(self, numbers: list[int]) -> list[CheckedSentence]:
        """Guided few-shot completion: after each paper's quoted evidence the model writes
        that paper's key point; the prompt grows paper by paper, so llama.cpp reuses the
        evaluated prefix and only new tokens cost time."""
        papers = ""
        points: list[CheckedSentence] = []
        for number in numbers:
            papers += self._block(number)
            line = clean_line(self._generate(self._build(MAP_PROMPT, papers=papers), "map_calls"))
            papers += (" " + line if line else "") + "\n\n"
            sentences = complete_sentences(line)
            if sentences:
                points.extend(self._keep(" ".join(with_markers(s, [number]) for s in sentences)))
        return points

    def _map_chat(self, numbers: list[int]) -> list[CheckedSentence]:
        return self._keep(drop_unfinished(sanitize(self._generate(self._chat_map_request(numbers), "map_calls"))))

    def _chat_map_request(self, numbers: list[int]) -> Request:
        evidence = "\n".join(f"[{n}] " + " ".join(prompts.quote(s) for s in self._evidence(n)) for n in numbers)
        return self._build(MAP_PROMPT, evidence=evidence, topic=self.topic)

    def _block(self, number: int) -> str:
        evidence = " ".join(prompts.quote(s) for s in self._evidence(number))
        return prompts.render("summary_map_block.txt", n=number, evidence=evidence).rstrip("\n")

    def _evidence(self, number: int) -> list[str]:
        """The paper's sentences most relevant to the topic, in abstract order; sentences
        about the field rather than the paper only when there are too few others (the
        model copies what it is given)."""
        source = self.sources[number]
        if not source.sentences:
            return []
        scores = source.vectors @ self.topic_vector
        background = background_flags(source.sentences)
        order = sorted(range(len(scores)), key=lambda i: (background[i], -scores[i]))
        top = sorted(order[: self.settings.summary_evidence_per_paper])
        return [source.sentences[i] for i in top]

    # --- reduce: overview -------------------------------------------------------------

    def overview(self, points: list[CheckedSentence]) -> list[CheckedSentence]:
        """Overview from verified key points; when they do not fit one prompt, reduce
        groups that fit, then reduce the results, until one prompt holds them all."""
        level = points
        self.stats["reduce_inputs"] = len(points)
        for round_ in range(1, self.settings.summary_max_reduce_rounds + 1):
            groups = pack(level, lambda group: self._tokens(self._reduce_request(group)) <= self.budget)
            self.stats["reduce_rounds"] = round_
            if len(groups) == 1:
                return self._reduce_once(groups[0])
            merged: list[CheckedSentence] = []
            for group in groups:
                merged.extend(self._reduce_once(group) or group[:1])  # nothing verified: carry the group's first point up
            if len(merged) >= len(level):  # no progress: stop rather than loop
                break
            level = merged
        return []

    def _reduce_request(self, points: list[CheckedSentence]) -> Request:
        lines = "\n".join("- " + with_markers(item.text, item.cited) for item in points)
        return self._build(REDUCE_PROMPT, points=lines, topic=self.topic)

    def _reduce_once(self, points: list[CheckedSentence]) -> list[CheckedSentence]:
        return self._keep(drop_unfinished(sanitize(self._generate(self._reduce_request(points), "reduce_calls"))))

    # --- helpers ----------------------------------------------------------------------

    def _build(self, prompt: generation.Prompt, **values: object) -> Request:
        return generation.build(self.llm, self.settings, prompt, values)

    def _tokens(self, request: Request) -> int:
        return generation.prompt_tokens(self.llm, request)

    def _generate(self, request: Request, kind: str) -> str:
        if self.stop is not None and self.stop.is_set():
            return ""
        self.stats["llm_calls"] += 1
        self.stats[kind] += 1
        try:
            return generation.generate(self.llm, request, self.stop)
        except LLMError as exc:
            self.notes.append(f"generation failed ({exc}); quoted evidence used instead")
            return ""

    def _keep(self, text: str) -> list[CheckedSentence]:
        """The verified sentences of generated text; the rest are counted and reported as
        dropped (the Verifier also rejects details foreign to the cited papers)."""
        kept = []
        for item in self.verifier.check(text):
            item.text = LEADING_JUNK.sub("", item.text)
            self.removed += len(item.removed)
            if item.supported:
                kept.append(item)
                self.stats["generated_sentences_verified"] += 1
            else:
                self.dropped.append(item.text)
        return kept
