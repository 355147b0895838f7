"""The answer pipeline: retrieve → pick evidence → generate → verify → cite.

Correctness never rests on the model: what reaches the user is either a sentence the
verifier matched to the abstract it cites, or a quoted evidence sentence (extractive
fallback), or an abstention naming the nearest titles.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np


from . import generation, prompts, relevance
from .citations import CheckedSentence, CitedText, Verifier, extractive, render
from .compose import compose_answer
from .evidence import EvidenceSentence, SourceSet
from .library import Library
from .errors import InputError, LLMError
from .llm import LLM, Request, load_in_background
from .retrieval import Filters, Hit
from .rewrite import has_dangling_opening
from .text import cap
from .settings import Settings

# "it", "its", "the paper": the follow-up is about the one paper just cited, not the topic.
_SINGULAR_REFERENCE = re.compile(r"\b(it|its|it's|this (paper|method|model|work|approach)|the (paper|method|model|approach|authors?|work))\b", re.IGNORECASE)
# Unmistakably about the paper just cited ("its memory cost", "the authors"); a bare "it"
# ("so it can be detected") may belong to a new question.
_NAMES_THE_PAPER = re.compile(r"\b(its|this (paper|method|model|work|approach)|the (paper|method|model|approach|authors?|work))\b", re.IGNORECASE)
_FOLLOW_UP = re.compile(
    r"\b(it|its|it's|they|their|them|this|that|these|those|the (paper|method|model|approach|authors?|work))\b"
    r"|^(what|how) about\b|^and\b",
    re.IGNORECASE,
)
# "Is there anything like that for …", "what about …", "and if I …": the follow-up asks for
# other work on a related point, which another paper may answer better than the one cited.
_ASKS_FOR_OTHER_WORK = re.compile(
    r"\b(is there|are there|any(thing|one| work| papers?)|something|what about|how about|what if|and if)\b", re.IGNORECASE
)
ANSWER_PROMPT = generation.Prompt("answer_system.txt", "answer_user.txt", "answer_completion.txt", stop=("###", "\n"))


@dataclass
class Turn:
    """What a follow-up question needs from the previous exchange."""

    question: str
    answer: str
    cited_titles: list[str] = field(default_factory=list)
    query: str = ""
    cited_ids: list[str] = field(default_factory=list)


@dataclass
class AnswerResult:
    question: str
    query: str  # the standalone query used for retrieval
    answer: str = ""
    abstained: bool = False
    mode: str = "generated"  # generated | composed | extractive | abstained
    cited: CitedText | None = None
    hits: list[Hit] = field(default_factory=list)
    sources: SourceSet | None = None
    raw: str = ""  # what the model wrote, before verification
    request: Request | None = field(default=None, repr=False)  # exactly what the model was sent
    model: str = ""
    notice: str = ""  # what the reader should know about how the answer was made (e.g. the model server failed)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def citations(self):
        return self.cited.citations if self.cited else []

    @property
    def references(self):
        return self.cited.references if self.cited else []

    def cited_papers(self):
        """The cited papers in reference order (for export as BibTeX / Markdown)."""
        by_id = {s.paper.id: s.paper for s in self.sources.sources.values()} if self.sources else {}
        return [by_id[r.id] for r in self.references if r.id in by_id]

    def to_turn(self) -> Turn:
        return Turn(self.question, self.answer, [r.title for r in self.references], self.query, [r.id for r in self.references])

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "query": self.query,
            "answer": self.answer,
            "abstained": self.abstained,
            "mode": self.mode,
            "citations": [c.to_dict() for c in self.citations],
            "references": [r.to_dict() for r in self.references],
            "dropped": self.cited.dropped if self.cited else [],
            "removed_citations": self.cited.removed_citations if self.cited else 0,
            "nearest": [h.to_dict() for h in self.hits] if self.abstained else [],
            "model": self.model,
            "notice": self.notice,
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
        }


def is_follow_up(question: str, history: list[Turn] | None) -> bool:
    return bool(history) and bool(_FOLLOW_UP.search(question) or len(question.split()) <= 2)


def standalone_query(question: str, history: list[Turn] | None) -> str:
    """Resolve a follow-up ("what about its memory cost?") against the last exchange,
    by adding what it was about; model-free, so it works with any model."""
    if not history or not is_follow_up(question, history):
        return question
    last = history[-1]
    focus = last.cited_titles[0] if last.cited_titles else (last.query or last.question)
    return f"{question} ({focus})"


class AnswerPipeline:
    """Answers over one library; `settings` and `llm` override the library's for this
    pipeline only (a UI slider, another model), so nothing is copied or subclassed."""

    def __init__(self, library: Library, *, settings: Settings | None = None, llm: LLM | None = None) -> None:
        self.library = library
        self.settings = library.calibrated(settings)
        self._llm = llm

    @property
    def llm(self) -> LLM:
        return self._llm if self._llm is not None else self.library.llm_for(self.settings)

    def _load_model_meanwhile(self) -> None:
        """Load the model while retrieval runs (see llm.load_in_background)."""
        if self._llm is None:
            load_in_background(self.settings)

    def stream(
        self,
        question: str,
        history: list[Turn] | None = None,
        *,
        k: int | None = None,
        filters: Filters | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[AnswerResult]:
        """Yield the result as it grows: verified sentences appear one by one; the last
        yielded result is final (timings filled in). Setting `stop` ends generation at the
        next token and frees the model; what was verified so far is kept."""
        question = (question or "").strip()
        if not question:
            raise InputError("the question is empty: type a question about the papers")
        question = cap(" ".join(question.split()), self.settings.max_question_chars)  # a pasted page still gets an answer
        started = time.perf_counter()
        self._load_model_meanwhile()
        query, hits, scorer, query_vector = self._retrieve(question, history, k, filters)
        if is_follow_up(question, history) and not _NAMES_THE_PAPER.search(question):
            # "so it can be detected" sounded like a follow-up but is a new question: the
            # papers just cited do not answer it, so it stands on its own. ("its memory
            # cost" names the paper in focus: that one answers, or the answer is no.)
            if not relevance.answerable(scorer, query, hits):
                query, hits, scorer, query_vector = self._retrieve(question, None, k, filters)
            elif _ASKS_FOR_OTHER_WORK.search(question):
                alone = self._retrieve(question, None, k, filters)
                if _answers_better_elsewhere(alone, hits, history[-1].cited_ids[:2]):  # type: ignore[index]
                    query, hits, scorer, query_vector = alone
        result = AnswerResult(question, query)
        result.hits = hits
        result.timings["retrieval_s"] = time.perf_counter() - started
        if not relevance.answerable(scorer, query, hits):
            yield self._abstain(result, started)
            return

        embedder = self.library.embedder

        sources = SourceSet.from_hits(hits, embedder)
        result.sources = sources
        order_by = self._follow_up_order(question, query, scorer)
        evidence = sources.select_evidence(query_vector, self.settings.evidence_sentences, scorer.score, order_by)
        result.timings["evidence_s"] = time.perf_counter() - started - result.timings["retrieval_s"]

        verifier = Verifier(sources, self.settings.support_threshold)
        generation_started = time.perf_counter()
        try:
            yield from self._generate(result, question, evidence, verifier, scorer, stop, started)
        except LLMError as exc:
            if not self.settings.llm_url:
                raise  # a local model that cannot run is a set-up problem to fix, not to hide
            # A model server that is down or frozen must not cost the researcher the answer:
            # grounding never depended on it, so compose from the abstracts and say so.
            result.notice = f"{exc} This answer was composed from the abstracts without the model."
            result.raw = ""
            result.cited = None
        result.timings["generation_s"] = time.perf_counter() - generation_started
        self._publish(result, verifier.check(result.raw), sources, scorer)
        if not _reads_well(result.cited) or _passes_over_the_first(result.cited, sources, scorer):
            # The model's text did not survive, survived only as pasted quotes or sentences
            # that lean on their abstract, or cites other papers than search's first one
            # although that one answers: compose the answer instead.
            dropped = result.cited.dropped if result.cited else []
            result.mode = "composed"
            result.cited = compose_answer(
                question, sources, scorer.score, self.settings, order_by=order_by
            )
            if not result.cited.citations:
                result.mode = "extractive"
                result.cited = extractive(evidence, sources, min_relevance=self.settings.answer_relevance)
            result.cited.dropped = dropped
            result.answer = result.cited.text
            self._rate(result.cited, sources, scorer)
        result.timings["total_s"] = time.perf_counter() - started
        yield result

    def answer(self, question: str, history: list[Turn] | None = None, **options) -> AnswerResult:
        final = None
        for final in self.stream(question, history, **options):
            pass
        assert final is not None
        return final

    # --- helpers ---------------------------------------------------------------------

    def _generate(self, result: AnswerResult, question: str, evidence, verifier: Verifier, scorer, stop, started: float) -> Iterator[AnswerResult]:
        """Stream the model's answer into `result`, yielding it whenever a further sentence
        is verified."""
        llm = self.llm
        result.model = llm.name
        request = result.request = self._request(llm, question, evidence)
        verified_prefix = ""
        with closing(generation.stream(llm, request, stop)) as tokens:  # closing frees the model at once
            for token in tokens:
                if not result.raw:
                    result.timings["first_token_s"] = time.perf_counter() - started
                result.raw += token
                complete = _complete_prefix(result.raw)
                if complete != verified_prefix:
                    verified_prefix = complete
                    if self._publish(result, verifier.check(complete), sources=result.sources, scorer=scorer):
                        yield result

    def _retrieve(self, question: str, history: list[Turn] | None, k: int | None, filters: Filters | None):
        """(query, hits, relevance scorer, query vector) for the question, read as a
        follow-up of `history` when it sounds like one."""
        query = standalone_query(question, history)
        vector = self.library.embedder.embed_one(query)
        hits = self.library.search(query, k or self.settings.k, filters=filters, settings=self.settings, query_vector=vector)
        if is_follow_up(question, history):
            hits = self._keep_focus(hits, history[-1].cited_ids, query, vector)  # type: ignore[index]
        weights = self.library.term_weights()
        lead = relevance.nearest_lead(self.library.store.nearest(vector, self.settings.standout_rank))
        return query, hits, relevance.RelevanceScorer(query, vector, weights, self.settings, lead=lead), vector

    def _keep_focus(self, hits: list[Hit], focus_ids: list[str], query: str, query_vector: np.ndarray) -> list[Hit]:
        """A follow-up is about the papers just cited: put them first among the sources."""
        focus = focus_ids[:2]
        if not focus:
            return hits
        papers = self.library.store.papers(focus)
        vectors = self.library.store.embeddings(focus)
        stored = self.library.store.sentences(focus)  # evidence and relevance from the sentence index
        pinned = []
        for id in focus:
            if id in papers:
                hit = Hit(papers[id], 1.0, float(vectors[id] @ query_vector))
                if stored.get(id) and stored[id][0]:
                    hit.sentences, hit.sentence_vectors = stored[id]
                    hit.sentence_score = float((hit.sentence_vectors @ query_vector).max())
                pinned.append(hit)
        rest = [h for h in hits if h.paper.id not in papers]
        if _SINGULAR_REFERENCE.search(query) and pinned:
            rest = []  # "its memory cost": answer from the paper in focus only
        merged = (pinned + rest)[: len(hits)]
        for rank, hit in enumerate(merged, start=1):
            hit.rank = rank
        return merged

    def _follow_up_order(self, question: str, query: str, scorer: relevance.RelevanceScorer):
        """How to order a paper's sentences for a follow-up retrieved with the cited
        paper's title added (None: by the scorer, as for any question). The title's words
        fit every sentence of that paper, so on their own they pick the sentence closest to
        its topic again ("how much faster is it?" got "One of the key components within
        diffusion models is the UNet …"); the follow-up's own words say which sentence
        answers. Both count equally; the scorer still decides what answers at all."""
        if query == question:
            return None
        own = relevance.RelevanceScorer(question, self.library.embedder.embed_one(question), scorer.weights, self.settings)
        return lambda sentence, vector: (scorer.score(sentence, vector) + own.score(sentence, vector)) / 2

    def _abstain(self, result: AnswerResult, started: float) -> AnswerResult:
        result.abstained = True
        result.mode = "abstained"
        result.hits = sorted(result.hits, key=lambda h: -h.similarity)
        nearest = "; ".join(f"{h.paper.title} ({h.similarity:.2f})" for h in result.hits[:3])
        result.answer = "The corpus has no paper on this." + (f" Nearest titles: {nearest}." if nearest else "")
        result.timings["total_s"] = time.perf_counter() - started
        return result

    @staticmethod
    def _relevance(sources: SourceSet, n: int, evidence: str, scorer: relevance.RelevanceScorer) -> float:
        vector = sources.sentence_vector(n, evidence)
        return scorer.score(evidence, vector) if vector is not None else 0.0

    def _rate(self, cited: CitedText, sources: SourceSet, scorer: relevance.RelevanceScorer) -> None:
        """Give each citation its relevance to the question, in figures and plain words."""
        by_id = {source.paper.id: n for n, source in sources.sources.items()}
        first = min(sources.sources, default=None)  # sources are numbered in search order
        for citation in cited.citations:
            n = by_id[citation.id]
            citation.relevance = self._relevance(sources, n, citation.evidence, scorer)
            citation.strength = scorer.strength(citation.relevance, first_paper=n == first)

    def _request(self, llm: LLM, question: str, evidence: list[EvidenceSentence]) -> Request:
        """The answer prompt; evidence that does not fit the context goes, least relevant first."""
        quoted_question = " ".join(question.split())

        def values(kept: list[EvidenceSentence]) -> dict[str, object]:
            lines = "\n".join(f"[{e.n}] {prompts.quote(e.text)}" for e in kept)
            return {"evidence": lines, "question": quoted_question}

        return generation.fit(llm, self.settings, ANSWER_PROMPT, evidence, values, priority=lambda e: e.score)

    def _publish(self, result: AnswerResult, checked: list[CheckedSentence], sources: SourceSet, scorer: relevance.RelevanceScorer) -> bool:
        """Update the verified answer; True when its text changed. A sentence faithful to
        its source but not answering the question (its evidence below the calibrated
        relevance) is not shown: a true quote about something else is a wrong answer."""
        for item in checked:
            if item.cited and max(self._relevance(sources, n, item.support[n][1], scorer) for n in item.cited) < self.settings.answer_relevance:
                item.removed += item.cited
                item.cited = []
        cited = render(checked, sources)
        self._rate(cited, sources, scorer)
        changed = cited.text != result.answer
        result.cited = cited
        result.answer = cited.text
        return changed


def _answers_better_elsewhere(alone: tuple, focus_hits: list[Hit], focus_ids: list[str]) -> bool:
    """A follow-up asking for other work ("what about …"), searched on its own words, finds
    another paper first, one that answers it, and whose best sentence answers those words
    better than any sentence of the papers just cited. On benchmarks/followups.jsonl this
    sends follow-ups that another paper answers to it (calibration half 0/5 → 2/5) and keeps
    every one the cited paper answers (12/12)."""
    query, hits, scorer, _ = alone
    if not hits or hits[0].paper.id in focus_ids or not relevance.answerable(scorer, query, hits):
        return False
    in_focus = [h for h in focus_hits if h.paper.id in focus_ids]
    return scorer.best(hits[:1]) > scorer.best(in_focus)


def _reads_well(cited: CitedText | None) -> bool:
    """The model's verified text is worth showing: something survived, not every sentence
    is a verbatim quote (that is a paste, which the composer does better), and no sentence
    opens by pointing back at an abstract the reader has not seen ("However, …", "This …")."""
    if cited is None or not cited.citations:
        return False
    if all(c.support >= 0.999 for c in cited.citations):
        return False
    return not any(has_dangling_opening(sentence) for sentence, _ in cited.sentences)


def _passes_over_the_first(cited: CitedText | None, sources: SourceSet, scorer: relevance.RelevanceScorer) -> bool:
    """Search's first paper has a sentence that answers the question, yet the text does not
    cite it (answers must not cite worse than search ranks)."""
    if cited is None or not sources.sources:
        return False
    first = sources[min(sources.sources)]
    if any(c.id == first.paper.id for c in cited.citations):
        return False
    floor = scorer.settings.answer_relevance
    return any(scorer.score(s, v) >= floor for s, v in zip(first.sentences, first.vectors))


def _complete_prefix(raw: str) -> str:
    """The part of the generated text whose sentences are finished (a later one has begun)."""
    from .citations import parse_cited_sentences

    pieces = parse_cited_sentences(raw)
    if len(pieces) < 2:
        return ""
    last = pieces[-1][0]
    index = raw.rfind(last[: max(1, min(len(last), 20))])
    return raw[:index] if index > 0 else ""


def answer_question(
    library: Library, question: str, history: list[Turn] | None = None, *, settings: Settings | None = None, llm: LLM | None = None, **options
) -> AnswerResult:
    """One-call API: the final verified answer."""
    return AnswerPipeline(library, settings=settings, llm=llm).answer(question, history, **options)
