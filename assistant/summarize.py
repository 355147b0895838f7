"""Topic summaries and one-paper TL;DRs, cited sentence by sentence.

Topic summary (:func:`summarize_topic`)
    retrieve a diverse set of papers (MMR) → number them once, 1..n, in one
    :class:`SourceSet` → group them into themes (embedding clusters, headings from their
    most distinctive words) → **map**: for each part of a theme that fits the context
    budget, the model writes one key point per paper from that paper's quoted evidence,
    citing the global number → every key point is checked by :class:`Verifier` against the
    global SourceSet → **reduce**: the model writes an overview from the verified key points
    (with their global markers), in several rounds if they do not fit the budget, and its
    output is verified again → papers left uncited get their best evidence sentence quoted
    (extractive) → :func:`citations.render` renumbers 1..m and builds the references.

    Numbers never change meaning between steps: every prompt shows global numbers, every
    check is against the global SourceSet, and only the final render renumbers. So a
    summary can cite only retrieved papers, and each [n] resolves to a reference.

Paper summary (:func:`summarize_paper`)
    the abstract sentence that best fits each role (problem, method, result; similarity
    to role descriptions plus a position prior), a one-line TL;DR from the model kept only
    if the verifier finds it supported by the abstract (else the most representative
    sentence), the code link and the most related papers.

Correctness never depends on the model: with a model that writes nothing useful, the
output is entirely quoted evidence with correct citations.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import prompts
from .citations import CheckedSentence, CitedText, Reference, Verifier, render
from .evidence import SourceSet
from .library import Library
from .llm import LLMError, Request
from .records import Paper, normalize_title
from .references import format_references, markdown_escape, normalize_format
from .retrieval import Hit
from .text import STEMMER, STOPWORDS, WORD, grounded, looks_like_instruction, split_sentences, with_markers

ProgressFn = Callable[[float, str], None]

EVIDENCE_PER_PAPER = 2  # evidence sentences quoted per paper in a map prompt
KEY_POINT_TOKENS = 64  # generation limit for one key point (completion prompts)
OVERVIEW_TOKENS = 80  # generation limit for one overview round (completion prompts)
OVERVIEW_SENTENCES = 2
MAX_REDUCE_ROUNDS = 4
OUTLIER_RATIO = 0.5  # papers less similar to the topic than this share of the best are left out

_CLAUSE = re.compile(r"[.,;:!?()\[\]{}\"“”]|\s[-–—]+\s")

ROLE_PROMPTS = {
    "problem": "Existing methods suffer from a limitation; this remains a challenging open problem.",
    "method": "In this paper, we propose a new method that introduces a novel approach.",
    "result": "Experiments show that our method outperforms state-of-the-art baselines and improves accuracy.",
}
# Cue phrases: abstracts signal their moves in stock words; a cue adds to the similarity.
_ROLE_CUES = {
    "problem": re.compile(
        r"\b(however|challeng\w*|limitation\w*|limited|remains?|difficult\w*|problem\w*|suffer\w*|fail\w*|lack\w*|"
        r"despite|bottleneck\w*|costly|expensive|unclear|unknown|issue\w*|struggl\w*|hinder\w*|open question)\b",
        re.IGNORECASE,
    ),
    "method": re.compile(
        r"\b(we (propose|introduce|present|develop|design|describe|formulate|derive|study|investigate)|"
        r"this (paper|work) (proposes|introduces|presents|develops)|our (method|approach|framework|model|algorithm)|"
        r"(is|are) proposed|(a|an) (novel|new) (method|approach|framework|model|algorithm|architecture))\b",
        re.IGNORECASE,
    ),
    "result": re.compile(
        r"\b(outperform\w*|results? (show|demonstrate|indicate|suggest)\w*|experiment\w*|empirical\w*|achiev\w*|"
        r"state[- ]of[- ]the[- ]art|improv\w*|surpass\w*|speed-?up|accuracy|we (show|demonstrate|find|observe))\b|\d+(\.\d+)?\s?(%|x\b|×)",
        re.IGNORECASE,
    ),
}
_ROLE_CUE_WEIGHT = 0.15
_ROLE_POSITION = {"problem": -0.1, "method": 0.0, "result": 0.1}  # prior per unit of relative position (-0.5..0.5)


# --- results --------------------------------------------------------------------------------


@dataclass
class Theme:
    heading: str
    numbers: list[int]  # global source numbers of the theme's papers (retrieval order)
    sentences: list[tuple[str, list[int]]] = field(default_factory=list)  # final, renumbered

    def to_dict(self) -> dict:
        return {"heading": self.heading, "sentences": [{"text": t, "citations": c} for t, c in self.sentences]}


@dataclass
class TopicSummary:
    topic: str
    markdown: str = ""
    cited: CitedText = field(default_factory=lambda: CitedText([], [], [], [], 0))
    references: list[Reference] = field(default_factory=list)
    papers: list[Paper] = field(default_factory=list)  # in reference order: papers[i] is [i + 1]
    hits: list[Hit] = field(default_factory=list)  # the retrieved papers the summary may cite
    overview: list[tuple[str, list[int]]] = field(default_factory=list)
    themes: list[Theme] = field(default_factory=list)
    abstained: bool = False
    mode: str = "generated"  # generated | extractive | abstained
    model: str = ""
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def citations(self):
        return self.cited.citations

    def references_text(self, fmt: str = "markdown") -> str:
        return format_references(self.papers, fmt)

    def render(self, fmt: str = "markdown") -> str:
        """The Markdown summary with its reference list in `fmt` (markdown | bibtex | text)."""
        return _topic_markdown(self, normalize_format(fmt))

    def to_dict(self) -> dict:
        return {
            "topic": self.topic,
            "abstained": self.abstained,
            "mode": self.mode,
            "markdown": self.markdown,
            "overview": [{"text": t, "citations": c} for t, c in self.overview],
            "themes": [theme.to_dict() for theme in self.themes],
            "citations": [c.to_dict() for c in self.cited.citations],
            "references": [r.to_dict() for r in self.references],
            "retrieved": [h.to_dict() for h in self.hits],
            "dropped": self.cited.dropped,
            "removed_citations": self.cited.removed_citations,
            "model": self.model,
            "notes": self.notes,
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
            "stats": self.stats,
        }


@dataclass
class PaperSummary:
    paper: Paper
    markdown: str = ""
    tldr: str = ""
    tldr_generated: bool = False  # True: the model's TL;DR passed verification
    roles: dict[str, str] = field(default_factory=dict)  # problem / method / result -> abstract sentence
    related: list[Hit] = field(default_factory=list)
    cited: CitedText = field(default_factory=lambda: CitedText([], [], [], [], 0))
    references: list[Reference] = field(default_factory=list)
    papers: list[Paper] = field(default_factory=list)
    model: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def references_text(self, fmt: str = "markdown") -> str:
        return format_references(self.papers, fmt)

    def render(self, fmt: str = "markdown") -> str:
        return _paper_markdown(self, normalize_format(fmt))

    def to_dict(self) -> dict:
        return {
            "id": self.paper.id,
            "title": self.paper.title,
            "tldr": self.tldr,
            "tldr_generated": self.tldr_generated,
            "roles": self.roles,
            "code_url": self.paper.code_url,
            "related": [h.to_dict() for h in self.related],
            "references": [r.to_dict() for r in self.references],
            "markdown": self.markdown,
            "model": self.model,
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
        }


# --- topic summary ------------------------------------------------------------------------------


def summarize_topic(
    library: Library,
    topic: str,
    n: int = 12,
    *,
    max_context_tokens: int | None = None,
    progress: ProgressFn | None = None,
) -> TopicSummary:
    """A cited Markdown summary of the `n` most relevant (diverse) papers on `topic`.

    `max_context_tokens` caps the prompt size (default: n_ctx minus max_tokens); evidence
    that does not fit one prompt is summarized in parts and merged (map-reduce).
    """
    topic = " ".join((topic or "").split())
    if not topic:
        raise ValueError("the topic is empty: say what the summary should be about")
    if n < 1:
        raise ValueError("n must be at least 1")
    return _TopicSummarizer(library, topic, n, max_context_tokens, progress).run()


class _TopicSummarizer:
    def __init__(self, library: Library, topic: str, n: int, max_context_tokens: int | None, progress: ProgressFn | None) -> None:
        self.library = library
        self.settings = library.settings
        self.topic = topic
        self.n = n
        self.max_context_tokens = max_context_tokens
        self._progress = progress
        self.result = TopicSummary(topic)
        self.stats = Counter()
        self.dropped: list[str] = []
        self.removed = 0
        self.generated_ok = 0
        self.quoted: set[int] = set()  # id() of quoted (extractive) sentences

    def progress(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(max(0.0, min(1.0, fraction)), message)

    def run(self) -> TopicSummary:
        started = time.perf_counter()
        result, timings = self.result, self.result.timings
        self.progress(0.0, "retrieving papers")
        hits = self.library.search(self.topic, self.n, mmr=True)
        result.hits = hits
        timings["retrieval_s"] = time.perf_counter() - started
        if not hits or max(h.similarity for h in hits) < self.settings.relevance_threshold:
            return self._abstain(started)
        best = max(h.similarity for h in hits)
        kept = [h for h in hits if h.similarity >= OUTLIER_RATIO * best]
        if len(kept) < len(hits):
            result.notes.append(f"{len(hits) - len(kept)} retrieved paper(s) far less relevant than the rest left out")
        hits = kept
        result.hits = hits

        # One numbering for every step: source n is hits[n - 1].
        step = time.perf_counter()
        self.progress(0.05, "reading abstracts")
        embedder = self.library.embedder
        self.sources = SourceSet([h.paper for h in hits], embedder, [h.similarity for h in hits])
        self.verifier = Verifier(self.sources, self.settings.support_threshold)
        self.topic_vector = embedder.embed_one(self.topic)
        vectors = np.stack([h.embedding if h.embedding is not None else embedder.embed_one(h.paper.document) for h in hits])
        groups = cluster_papers(vectors, theme_count(len(hits)))
        headings = theme_headings([[hits[i].paper for i in group] for group in groups], self._background())
        themes = [Theme(heading, [i + 1 for i in group]) for heading, group in zip(headings, groups)]
        timings["themes_s"] = time.perf_counter() - step

        try:
            llm = self.library.llm
            result.model = llm.name
        except LLMError as exc:  # no model: the summary is still made, from quotes
            llm = None
            result.notes.append(f"model unavailable ({exc}); key points are quoted evidence")
        self.llm = llm
        self.budget = self._budget()

        # Map: key points per theme part, verified against the global sources.
        step = time.perf_counter()
        theme_points: list[list[CheckedSentence]] = []
        for index, theme in enumerate(themes):
            self.progress(0.1 + 0.6 * index / len(themes), f"summarizing theme {index + 1} of {len(themes)}: {theme.heading}")
            theme_points.append(self._map_theme(theme) if llm is not None else [])
        timings["map_s"] = time.perf_counter() - step

        # Reduce: an overview from the verified key points, verified again.
        step = time.perf_counter()
        self.progress(0.75, "writing the overview")
        all_points = [item for points in theme_points for item in points]
        overview = self._reduce(all_points) if llm is not None and all_points else []
        if not overview:
            overview = self._extractive_overview()
        timings["reduce_s"] = time.perf_counter() - step

        # Assemble: no sentence twice, every paper of a theme cited in that theme.
        self.progress(0.95, "checking citations")
        seen: set[str] = set()
        overview = _unique(overview[:OVERVIEW_SENTENCES], seen)
        theme_points = [_unique(points, seen) for points in theme_points]
        for theme, points in zip(themes, theme_points):
            cited_here = {n for item in points for n in item.cited}
            for number in theme.numbers:
                if number not in cited_here:
                    quote = self._quote(number, seen)
                    if quote is not None:
                        points.append(quote)
                        cited_here.add(number)
        # Sentences of each theme in the theme's paper order.
        for theme, points in zip(themes, theme_points):
            order = {number: i for i, number in enumerate(theme.numbers)}
            points.sort(key=lambda item: min((order.get(n, len(order)) for n in item.cited), default=len(order)))

        flat = overview + [item for points in theme_points for item in points]
        cited = render(flat, self.sources)
        cited.dropped = self.dropped
        cited.removed_citations = self.removed
        result.cited = cited
        result.references = cited.references
        by_id = {h.paper.id: h.paper for h in hits}
        result.papers = [by_id[ref.id] for ref in cited.references]
        position = len(overview)
        result.overview = cited.sentences[:position]
        for theme, points in zip(themes, theme_points):
            theme.sentences = cited.sentences[position : position + len(points)]
            position += len(points)
        result.themes = [theme for theme in themes if theme.sentences]
        generated = sum(1 for item in flat if id(item) not in self.quoted)
        result.mode = "generated" if generated else "extractive"
        self.stats["papers"] = len(hits)
        self.stats["themes"] = len(result.themes)
        self.stats["generated_sentences_verified"] = self.generated_ok
        self.stats["generated_sentences_shown"] = generated
        self.stats["quoted_sentences_shown"] = len(flat) - generated
        self.stats["dropped_sentences"] = len(self.dropped)
        result.stats = dict(self.stats)
        result.markdown = result.render("markdown")
        timings["total_s"] = time.perf_counter() - started
        self.progress(1.0, "done")
        return result

    # --- steps ------------------------------------------------------------------------------

    def _abstain(self, started: float) -> TopicSummary:
        result = self.result
        result.abstained = True
        result.mode = "abstained"
        nearest = "; ".join(f"{h.paper.title} ({h.similarity:.2f})" for h in result.hits[:3])
        result.markdown = (
            f"# Summary: {markdown_escape(self.topic)}\n\nThe corpus has no paper on this topic."
            + (f" Nearest titles: {markdown_escape(nearest)}." if nearest else "")
            + "\n"
        )
        result.timings["total_s"] = time.perf_counter() - started
        self.progress(1.0, "done")
        return result

    def _background(self) -> "WordStats":
        return word_stats(self.library)

    def _budget(self) -> int:
        """Prompt tokens allowed: n_ctx minus the generation allowance, or less if asked."""
        n_ctx = self.llm.n_ctx if self.llm is not None else self.settings.n_ctx
        budget = n_ctx - self.settings.max_tokens
        if self.max_context_tokens:
            budget = min(budget, self.max_context_tokens)
        return max(budget, 1)

    def _tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def _options(self, max_tokens: int) -> dict:
        return dict(
            max_tokens=max_tokens,
            temperature=self.settings.temperature,
            seed=self.settings.seed,
            repeat_penalty=self.settings.repeat_penalty,
        )

    def _generate(self, request: Request) -> str:
        self.stats["llm_calls"] += 1
        try:
            return "".join(self.llm.stream(request))
        except LLMError as exc:
            self.result.notes.append(f"generation failed ({exc}); quoted evidence used instead")
            return ""

    def _evidence(self, number: int) -> list[str]:
        """The paper's sentences most relevant to the topic, in abstract order."""
        source = self.sources[number]
        if not source.sentences:
            return []
        scores = source.vectors @ self.topic_vector
        top = sorted(np.argsort(-scores)[:EVIDENCE_PER_PAPER].tolist())
        return [source.sentences[i] for i in top]

    def _keep(self, checked: list[CheckedSentence]) -> list[CheckedSentence]:
        """Verified sentences only, and only if they add no content word foreign to the
        papers they cite (the model's few-shot examples must not leak in); the rest are
        counted and reported as dropped."""
        kept = []
        for item in checked:
            item.text = _LEADING_JUNK.sub("", item.text)
            self.removed += len(item.removed)
            if item.supported and grounded(item.text, [self.sources[n].paper for n in item.cited]):
                kept.append(item)
                self.generated_ok += 1
            else:
                self.dropped.append(item.text)
        return kept

    # map

    def _map_theme(self, theme: Theme) -> list[CheckedSentence]:
        numbers = [n for n in theme.numbers if self._evidence(n)]
        parts = self._parts(numbers)
        self.stats["map_parts"] += len(parts)
        points: list[CheckedSentence] = []
        for part in parts:
            points.extend(self._map_chat(part) if self.llm.chat else self._map_completion(part))
        return points

    def _block(self, number: int) -> str:
        evidence = " ".join(prompts.quote(s) for s in self._evidence(number))
        return prompts.render("summary_map_block.txt", n=number, evidence=evidence).rstrip("\n")

    def _chat_evidence(self, numbers: list[int]) -> str:
        return "\n".join(f"[{n}] " + " ".join(prompts.quote(s) for s in self._evidence(n)) for n in numbers)

    def _chat_map_messages(self, numbers: list[int]) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": prompts.render("summary_system.txt")},
            {"role": "user", "content": prompts.render("summary_map_user.txt", evidence=self._chat_evidence(numbers), topic=self.topic)},
        ]

    def _parts(self, numbers: list[int]) -> list[list[int]]:
        """Split a theme's papers into consecutive parts whose prompts fit the budget."""
        if not numbers:
            return []
        parts: list[list[int]] = []
        current: list[int] = []
        if self.llm.chat:
            for number in numbers:
                trial = current + [number]
                text = "\n".join(m["content"] for m in self._chat_map_messages(trial))
                if current and self._tokens(text) > self.budget:
                    parts.append(current)
                    trial = [number]
                current = trial
        else:
            prefix = self._tokens(prompts.render("summary_map_completion.txt"))
            used = prefix
            for number in numbers:
                cost = self._tokens(self._block(number) + "\n\n") + KEY_POINT_TOKENS
                if current and used + cost > self.budget:
                    parts.append(current)
                    current, used = [], prefix
                current.append(number)
                used += cost
        parts.append(current)
        return parts

    def _map_completion(self, numbers: list[int]) -> list[CheckedSentence]:
        """Guided few-shot completion: after each paper's quoted evidence the model writes
        that paper's key point; the prompt grows paper by paper, so llama.cpp reuses the
        evaluated prefix and only new tokens cost time."""
        prompt = prompts.render("summary_map_completion.txt")
        points: list[CheckedSentence] = []
        for number in numbers:
            prompt += self._block(number)
            raw = self._generate(Request(prompt=prompt, stop=["\n", "Paper ["], **self._options(KEY_POINT_TOKENS)))
            self.stats["map_calls"] += 1
            line = _clean_line(raw)
            prompt += (" " + line if line else "") + "\n\n"
            sentences = _complete_sentences(line)
            if not sentences:
                continue
            text = " ".join(with_markers(s, [number]) for s in sentences)
            points.extend(self._keep(self.verifier.check(text)))
        return points

    def _map_chat(self, numbers: list[int]) -> list[CheckedSentence]:
        raw = self._generate(Request(messages=self._chat_map_messages(numbers), **self._options(self.settings.max_tokens)))
        self.stats["map_calls"] += 1
        return self._keep(self.verifier.check(_drop_unfinished(_sanitize(raw))))

    # reduce

    def _reduce_request(self, points: list[CheckedSentence]) -> Request:
        lines = "\n".join("- " + with_markers(item.text, item.cited) for item in points)
        if self.llm.chat:
            return Request(
                messages=[
                    {"role": "system", "content": prompts.render("summary_system.txt")},
                    {"role": "user", "content": prompts.render("summary_reduce_user.txt", points=lines, topic=self.topic)},
                ],
                **self._options(self.settings.max_tokens),
            )
        prompt = prompts.render("summary_reduce_completion.txt", points=lines).rstrip("\n")
        return Request(prompt=prompt, stop=["\n", "Key points:"], **self._options(OVERVIEW_TOKENS))

    def _request_tokens(self, request: Request) -> int:
        text = request.prompt if request.prompt is not None else "\n".join(m["content"] for m in request.messages or [])
        return self._tokens(text)

    def _reduce_groups(self, points: list[CheckedSentence]) -> list[list[CheckedSentence]]:
        groups: list[list[CheckedSentence]] = []
        current: list[CheckedSentence] = []
        for item in points:
            trial = current + [item]
            if current and self._request_tokens(self._reduce_request(trial)) > self.budget:
                groups.append(current)
                trial = [item]
            current = trial
        groups.append(current)
        return groups

    def _reduce_once(self, points: list[CheckedSentence]) -> list[CheckedSentence]:
        raw = self._generate(self._reduce_request(points))
        self.stats["reduce_calls"] += 1
        return self._keep(self.verifier.check(_drop_unfinished(_sanitize(raw))))

    def _reduce(self, points: list[CheckedSentence]) -> list[CheckedSentence]:
        """Overview from verified key points; when they do not fit one prompt, reduce
        groups that fit, then reduce the results, until one prompt holds them all."""
        level = points
        self.stats["reduce_inputs"] = len(points)
        for round_ in range(1, MAX_REDUCE_ROUNDS + 1):
            groups = self._reduce_groups(level)
            self.stats["reduce_rounds"] = round_
            if len(groups) == 1:
                return self._reduce_once(groups[0])
            merged: list[CheckedSentence] = []
            for group in groups:
                out = self._reduce_once(group)
                merged.extend(out or group[:1])  # nothing verified: carry the group's first point up
            if len(merged) >= len(level):  # no progress: stop rather than loop
                break
            level = merged
        return []

    # extractive pieces

    def _extractive_overview(self) -> list[CheckedSentence]:
        """The most topic-relevant evidence sentence of all: quoted, so supported by construction."""
        ranked = self.sources.ranked_sentences(self.topic_vector)
        for evidence in ranked:
            if not looks_like_instruction(evidence.text):
                item = CheckedSentence(evidence.text, [evidence.n], {evidence.n: (1.0, evidence.text)})
                self.quoted.add(id(item))
                return [item]
        return []

    def _quote(self, number: int, seen: set[str]) -> CheckedSentence | None:
        """Paper `number`'s most topic-relevant sentence not used yet."""
        source = self.sources[number]
        if not source.sentences:
            return None
        scores = source.vectors @ self.topic_vector
        for i in np.argsort(-scores).tolist():
            text = source.sentences[i]
            key = normalize_title(text)
            if key and not _near_duplicate(key, seen):
                seen.add(key)
                item = CheckedSentence(text, [number], {number: (1.0, text)})
                self.quoted.add(id(item))
                return item
        return None


def _near_duplicate(key: str, seen: set[str]) -> bool:
    """Same sentence up to punctuation, one inside the other, or 80% the same words."""
    if key in seen:
        return True
    words = set(key.split())
    for other in seen:
        if len(key) > 20 and len(other) > 20 and (key in other or other in key):
            return True
        other_words = set(other.split())
        if words and other_words and len(words & other_words) / len(words | other_words) >= 0.8:
            return True
    return False


def _unique(items: list[CheckedSentence], seen: set[str]) -> list[CheckedSentence]:
    """Drop sentences already used, or nearly (a small model repeats itself and its evidence)."""
    kept = []
    for item in items:
        key = normalize_title(item.text)
        if key and not _near_duplicate(key, seen):
            seen.add(key)
            kept.append(item)
    return kept


_MARKUP = re.compile(r"<[^<>\n]{0,80}>|\[/?INST\]", re.IGNORECASE)
_LEADING_JUNK = re.compile(r"^[^\w(]+")


def _sanitize(raw: str) -> str:
    """Generated text without prompt markup a small model echoes (<<SYS>>, </evidence>),
    list bullets or quote marks, so only prose reaches the verifier."""
    text = re.sub(r">{2,}", ">", re.sub(r"<{2,}", "<", raw))
    text = _MARKUP.sub(" ", text).replace("<", " ").replace(">", " ")
    text = re.sub(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+", "", text)
    text = text.replace('"', " ").replace("“", " ").replace("”", " ")
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def _clean_line(raw: str) -> str:
    """A generated key point without quotes, stray markers or a repeated label."""
    line = " ".join(_sanitize(raw).split())
    line = re.sub(r"^(key point|tl;dr|overview)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = re.sub(r"\[\d+(?:\s*[,;]\s*\d+)*\]", "", line)
    line = line.strip().strip('"“”').strip()
    line = re.sub(r'"\s*"', " ", line)  # two quoted sentences glued together
    line = line.replace('"', "")
    return " ".join(line.split())


def _complete_sentences(text: str) -> list[str]:
    """Sentences that were finished (the last one may have been cut by the token limit)."""
    sentences = split_sentences(text)
    if sentences and not sentences[-1].rstrip("\"')]").endswith((".", "!", "?")):
        sentences = sentences[:-1]
    return [s for s in sentences if len(s.split()) >= 4]


def _drop_unfinished(text: str) -> str:
    """Generated text without a trailing sentence cut off by the token limit."""
    stripped = text.rstrip()
    if not stripped or re.search(r"[.!?](\s*\[\d+(?:\s*[,;]\s*\d+)*\])*[\"')\]]?$", stripped):
        return stripped
    cut = max(stripped.rfind(". "), stripped.rfind("! "), stripped.rfind("? "), stripped.rfind(".\n"))
    if cut < 0:
        return ""
    return stripped[: cut + 1]


# --- themes ---------------------------------------------------------------------------------------


def theme_count(papers: int) -> int:
    """1 theme for up to 4 papers, then about one per four papers, at most 4."""
    if papers < 5:
        return 1
    return max(2, min(4, round(papers / 4)))


def cluster_papers(vectors: np.ndarray, k: int, min_size: int = 2) -> list[list[int]]:
    """Deterministic divisive clustering: repeatedly split the largest group along its
    first principal direction, at the cut that best separates the two sides (Otsu's
    criterion), never leaving a side smaller than `min_size` (a theme of one paper is
    not a theme). Groups come out ordered by their best-ranked member, members in rank order.
    """
    count = len(vectors)
    if count == 0:
        return []
    groups = [list(range(count))]
    while len(groups) < k:
        for group in sorted(groups, key=len, reverse=True):
            halves = _bisect(vectors, group, min_size)
            if halves is not None:
                groups.remove(group)
                groups.extend(halves)
                break
        else:
            break  # nothing can be split any more
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


def _bisect(vectors: np.ndarray, group: list[int], min_size: int) -> list[list[int]] | None:
    if len(group) < 2 * min_size:
        return None
    points = vectors[group].astype(np.float64)
    centered = points - points.mean(axis=0)
    try:
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
    except np.linalg.LinAlgError:
        return None
    direction = vt[0]
    # fix the sign so the split does not depend on the SVD's arbitrary orientation
    if direction[np.argmax(np.abs(direction))] < 0:
        direction = -direction
    projection = centered @ direction
    order = np.argsort(projection, kind="stable")
    values = projection[order]
    best, cut = -1.0, None
    for i in range(min_size, len(group) - min_size + 1):
        left, right = values[:i], values[i:]
        score = len(left) * len(right) * (left.mean() - right.mean()) ** 2
        if score > best + 1e-12:
            best, cut = score, i
    if cut is None:
        return None
    return [[group[j] for j in order[:cut]], [group[j] for j in order[cut:]]]


@dataclass
class WordStats:
    """Document frequencies over the whole catalog: what makes a word distinctive."""

    documents: int
    df: dict[str, int]

    def idf(self, term: str) -> float:
        return math.log((self.documents + 1) / (self.df.get(term, 0) + 0.5))


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return STEMMER.stemWord(word.lower())


def _terms(text: str) -> list[tuple[str, str]]:
    """(stemmed term, surface form): words and phrases of 2-3 words without stop words,
    so "network" and "networks" count as one term; phrases never span punctuation."""
    terms: list[tuple[str, str]] = []
    for chunk in _CLAUSE.split(text):
        run: list[str] = []  # the current run of consecutive content words
        for word in WORD.findall(chunk):
            lower = word.lower()
            if lower in STOPWORDS or len(lower) < 3 or lower.isdigit():
                run = []
                continue
            run = (run + [word])[-3:]
            for size in range(1, len(run) + 1):  # the word, and the phrases of 2-3 words ending with it
                phrase = run[-size:]
                terms.append((" ".join(_stem(w) for w in phrase), " ".join(phrase)))
    return terms


_word_stats_cache: dict[int, tuple[list[Paper], WordStats]] = {}


def word_stats(library: Library) -> WordStats:
    papers = library.catalog()
    cached = _word_stats_cache.get(id(library))
    if cached is None or cached[0] is not papers:
        df: Counter[str] = Counter()
        for paper in papers:
            df.update({term for term, _ in _terms(paper.document)})
        cached = (papers, WordStats(len(papers), dict(df)))
        _word_stats_cache[id(library)] = cached
    return cached[1]


def theme_headings(groups: list[list[Paper]], background: WordStats, words: int = 3) -> list[str]:
    """A heading per group from the terms its papers share and the other groups lack,
    weighted by rarity in the catalog (IDF, capped so one odd phrase cannot win alone);
    terms in titles count extra."""
    papers_with: list[Counter[str]] = []  # papers of the group containing the term
    titles_with: list[Counter[str]] = []
    surfaces: Counter[tuple[str, str]] = Counter()
    for group in groups:
        docs: Counter[str] = Counter()
        titles: Counter[str] = Counter()
        for paper in group:
            terms = _terms(paper.document)
            for term, surface in terms:
                surfaces[(term, surface)] += 1
            docs.update({term for term, _ in terms})
            titles.update({term for term, _ in _terms(paper.title)})
        papers_with.append(docs)
        titles_with.append(titles)
    cap = math.log(max(background.documents, 2) / 2.0) if background.documents else 1.0
    headings: list[str] = []
    used: set[str] = set()
    for index, group in enumerate(groups):
        chosen: list[str] = []
        # terms the group's papers share that set it apart; else what they share; else any title term
        for contrast, shared in ((True, True), (False, True), (False, False)):
            chosen = _pick_terms(index, groups, papers_with, titles_with, background, cap, used, words, contrast, shared)
            if chosen:
                break
        used.update(chosen)
        labels = [_surface(term, surfaces) for term in chosen]
        if not labels:  # the papers share no title word: name the group by its best-ranked title
            labels = [group[0].title] if group else ["Other papers"]
        heading = ", ".join(labels)
        headings.append(heading[:1].upper() + heading[1:])
    return headings


def _pick_terms(
    index: int,
    groups: list[list[Paper]],
    papers_with: list[Counter[str]],
    titles_with: list[Counter[str]],
    background: WordStats,
    cap: float,
    used: set[str],
    words: int,
    contrast: bool,
    shared: bool,
) -> list[str]:
    group = groups[index]
    size = max(len(group), 1)
    other_size = sum(len(g) for i, g in enumerate(groups) if i != index)
    needed = 2 if shared and len(group) > 1 else 1  # a heading names what several papers share
    counts = papers_with[index]
    scored = []
    for term, count in counts.items():
        in_titles = titles_with[index].get(term, 0)
        if count < needed or not in_titles:
            continue  # title words describe papers best; abstracts confirm they are shared
        other = 0.0
        if contrast and other_size:
            other = sum(c.get(term, 0) for i, c in enumerate(papers_with) if i != index) / other_size
        share = count / size + in_titles / size - other
        if share <= 0:
            continue
        bonus = 1.0 + 0.15 * term.count(" ")  # a phrase says more than a word
        scored.append((share * min(background.idf(term), cap) * bonus, term))
    scored.sort(key=lambda item: (-item[0], item[1]))
    chosen: list[str] = []
    for _, term in scored:
        if any(f" {term} " in f" {u} " for u in used) or any(set(term.split()) & set(c.split()) for c in chosen):
            continue  # already another theme's heading, or overlapping this one's
        if any(
            other != term and other not in used and f" {term} " in f" {other} " and counts[other] >= counts[term]
            for _, other in scored
        ):
            continue  # a longer phrase is as widely shared: name that ("deep neural network", not "deep neural")
        chosen.append(term)
        if len(chosen) == words:
            break
    return chosen


def _surface(term: str, surfaces: Counter[tuple[str, str]]) -> str:
    """How the term is usually written: keep acronyms (GAN, INRs), lower-case the rest."""
    forms = [(count, surface) for (t, surface), count in surfaces.items() if t == term]
    if not forms:
        return term
    surface = max(forms)[1]
    return surface if any(ch.isupper() for ch in surface[1:]) else surface.lower()


# --- Markdown -------------------------------------------------------------------------------------


def _references_block(papers: list[Paper], fmt: str) -> str:
    if not papers:
        return ""
    body = format_references(papers, fmt)
    if fmt == "bibtex":
        return f"## References\n\n```bibtex\n{body}\n```\n"
    if fmt == "text":
        return "## References\n\n" + "\n".join(line + "  " for line in body.splitlines()) + "\n"
    return f"## References\n\n{body}\n"


def _topic_markdown(summary: TopicSummary, fmt: str) -> str:
    if summary.abstained:
        return summary.markdown
    lines = [f"# Summary: {markdown_escape(summary.topic)}", ""]
    count = len(summary.hits)
    themes = len(summary.themes)
    lines.append(
        f"*{count} paper{'s' if count != 1 else ''} retrieved for this topic (a diverse selection), "
        f"{len(summary.references)} cited, in {themes} theme{'s' if themes != 1 else ''}.*"
    )
    lines.append("")
    if summary.overview:
        lines += ["## Overview", "", " ".join(with_markers(t, c) for t, c in summary.overview), ""]
    if summary.themes:
        lines += ["## Themes", ""]
        for theme in summary.themes:
            lines += [f"### {markdown_escape(theme.heading)}", ""]
            lines += [f"- {with_markers(t, c)}" for t, c in theme.sentences]
            lines.append("")
    block = _references_block(summary.papers, fmt)
    if block:
        lines.append(block)
    return "\n".join(lines).rstrip() + "\n"


def _paper_markdown(summary: PaperSummary, fmt: str) -> str:
    paper = summary.paper
    lines = [f"# {markdown_escape(paper.title)}", ""]
    if summary.tldr:
        lines += [f"**TL;DR:** {with_markers(summary.tldr, [1])}", ""]
    for role in ("problem", "method", "result"):
        if role in summary.roles:
            lines.append(f"- **{role.capitalize()}:** {with_markers(summary.roles[role], [1])}")
    if summary.roles:
        lines.append("")
    lines.append(f"**Code:** <{paper.code_url}>" if paper.code_url else "**Code:** no code link in the abstract")
    listing = ", ".join(paper.sources)
    meta = f"**Id:** `{paper.id}`"
    if paper.date:
        meta += f" · **Listed:** {markdown_escape(paper.date)}"
    if listing:
        meta += f" ({markdown_escape(listing)})"
    lines += ["", meta, ""]
    if summary.related:
        lines += ["## Related papers", ""]
        for hit in summary.related:
            code = f" — code: <{hit.paper.code_url}>" if hit.paper.code_url else ""
            lines.append(f"{hit.rank}. **{markdown_escape(hit.paper.title)}** (similarity {hit.similarity:.2f}) — id: `{hit.paper.id}`{code}")
        lines.append("")
    block = _references_block(summary.papers, fmt)
    if block:
        lines.append(block)
    return "\n".join(lines).rstrip() + "\n"


# --- paper summary ----------------------------------------------------------------------------------


def summarize_paper(library: Library, paper_id: str) -> PaperSummary:
    """TL;DR of one paper (by id, or by title with typos allowed): its problem, method and
    result sentences, a verified one-line TL;DR, the code link and the 5 most related papers."""
    started = time.perf_counter()
    paper_id = (paper_id or "").strip()
    if not paper_id:
        raise ValueError("no paper id given: `assistant search` prints ids")
    paper = library.get(paper_id)
    if paper is None:  # a title (typos allowed) works too
        from .lookup import match_titles

        matches = match_titles(library, paper_id, 1)
        paper = matches[0][0] if matches else None
    if paper is None:
        raise ValueError(f"no paper with id or title {paper_id!r}; `assistant search` or `assistant cite \"title\"` print ids")
    settings = library.settings
    result = PaperSummary(paper)
    embedder = library.embedder
    sources = SourceSet([paper], embedder)
    source = sources[1]
    result.roles = assign_roles(source.sentences, source.vectors, embedder.embed(list(ROLE_PROMPTS.values())))
    result.timings["roles_s"] = time.perf_counter() - started

    step = time.perf_counter()
    tldr = _generated_tldr(library, sources, result)
    if tldr:
        result.tldr, result.tldr_generated = tldr, True
    else:
        title_vector = embedder.embed_one(paper.title)
        result.tldr = representative_sentence(source.sentences, source.vectors, title_vector, exclude=set(result.roles.values()))
    result.timings["tldr_s"] = time.perf_counter() - step

    step = time.perf_counter()
    result.related = library.related(paper.id, 5)
    result.timings["related_s"] = time.perf_counter() - step

    checked = []
    for text in [result.tldr, *result.roles.values()]:
        if text:
            checked.append(CheckedSentence(text, [1], {1: (1.0, text)}))
    result.cited = render(checked, sources)
    result.references = result.cited.references or [
        Reference(1, paper.id, paper.title, paper.code_url, paper.date, paper.sources)
    ]
    result.papers = [paper]
    result.markdown = result.render("markdown")
    result.timings["total_s"] = time.perf_counter() - started
    return result


def assign_roles(sentences: list[str], vectors: np.ndarray, role_vectors: np.ndarray) -> dict[str, str]:
    """Best distinct sentence per role: similarity to the role description, plus cue
    phrases ("however", "we propose", "outperforms"), plus a position prior (problems
    come early in abstracts, results late)."""
    if not sentences:
        return {}
    count = len(sentences)
    positions = np.linspace(-0.5, 0.5, count) if count > 1 else np.zeros(1)
    roles = list(ROLE_PROMPTS)
    rows = []
    for i, role in enumerate(roles):
        cues = np.array([1.0 if _ROLE_CUES[role].search(s) else 0.0 for s in sentences])
        rows.append(vectors @ role_vectors[i] + _ROLE_CUE_WEIGHT * cues + _ROLE_POSITION[role] * positions * 2)
    scores = np.stack(rows)
    chosen: dict[str, int] = {}
    taken: set[int] = set()
    # greedy over the best (role, sentence) pairs, each sentence used once
    for flat in np.argsort(-scores, axis=None, kind="stable").tolist():
        r, s = divmod(flat, count)
        role = roles[r]
        if role in chosen or s in taken:
            continue
        chosen[role] = s
        taken.add(s)
        if len(chosen) == len(roles) or len(taken) == count:
            break
    return {role: sentences[chosen[role]] for role in roles if role in chosen}


def representative_sentence(
    sentences: list[str], vectors: np.ndarray, title_vector: np.ndarray | None = None, exclude: set[str] | None = None
) -> str:
    """The sentence closest to the title (itself a summary) and to the abstract's centroid."""
    if not sentences:
        return ""
    centroid = vectors.mean(axis=0)
    scores = vectors @ centroid
    if title_vector is not None:
        scores = scores + vectors @ title_vector
    order = np.argsort(-scores, kind="stable").tolist()
    for i in order:
        if not exclude or sentences[i] not in exclude:
            return sentences[i]
    return sentences[order[0]]


def _generated_tldr(library: Library, sources: SourceSet, result: PaperSummary) -> str:
    """The model's one-line TL;DR if the verifier finds it supported by the abstract."""
    settings = library.settings
    try:
        llm = library.llm
    except LLMError:
        return ""
    result.model = llm.name
    source = sources[1]
    sentences = list(source.sentences)
    budget = llm.n_ctx - settings.max_tokens
    options = dict(max_tokens=KEY_POINT_TOKENS, temperature=settings.temperature, seed=settings.seed, repeat_penalty=settings.repeat_penalty)
    while True:
        abstract = prompts.quote(" ".join(sentences))
        if llm.chat:
            request = Request(
                messages=[
                    {"role": "system", "content": prompts.render("summary_system.txt")},
                    {"role": "user", "content": prompts.render("summary_tldr_user.txt", abstract=abstract)},
                ],
                **options,
            )
            text = "\n".join(m["content"] for m in request.messages or [])
        else:
            request = Request(prompt=prompts.render("summary_tldr_completion.txt", abstract=abstract).rstrip("\n"), stop=["\n", "Abstract:"], **options)
            text = request.prompt or ""
        if len(sentences) <= 1 or llm.count_tokens(text) <= budget:
            break
        sentences.pop()
    try:
        raw = "".join(llm.stream(request))
    except LLMError:
        return ""
    line = _clean_line(raw)
    complete = _complete_sentences(line)
    if not complete:
        return ""
    candidate = complete[0]
    if len(candidate.split()) > 45:
        return ""
    checked = Verifier(sources, settings.support_threshold).check(with_markers(candidate, [1]))
    if len(checked) == 1 and checked[0].cited == [1] and grounded(checked[0].text, [sources[1].paper]):
        return checked[0].text
    return ""
