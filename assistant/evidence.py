"""Numbered sources and their sentences: what the model sees and what citations are checked against.

Every job that writes cited text (answers, summaries) builds a :class:`SourceSet` from
retrieved papers. Source numbers are fixed here; the model may only cite these numbers,
and the verifier checks each citation against the sentences of the numbered paper.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .embeddings import Embedder
from .records import Paper
from .text import evidence_sentences, is_boilerplate

_PAPER_RELEVANCE_WEIGHT = 0.5
Relevance = Callable[[str, np.ndarray], float]  # (sentence, its vector) -> how well it answers
_BOILERPLATE_PENALTY = 0.5


@dataclass
class Source:
    n: int
    paper: Paper
    sentences: list[str]  # instruction-like sentences removed: sources are data, not orders
    vectors: np.ndarray  # one normalized embedding per sentence
    similarity: float = 0.0  # the paper's relevance from retrieval (fused score relative to the best hit)


@dataclass
class EvidenceSentence:
    n: int
    text: str
    score: float  # ranking score: question relevance, plus the paper's retrieval relevance
    relevance: float = 0.0  # how well it answers the question alone (see assistant.relevance)


class SentenceCache:
    """Sentence splits and embeddings per paper, so follow-up questions reuse them.

    Keyed by paper id and content hash: a paper whose abstract changed (re-ingested by
    this or another process) is split and embedded again, never answered from its old text."""

    def __init__(self, embedder: Embedder, capacity: int = 2048) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], tuple[list[str], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(paper: Paper) -> tuple[str, str]:
        return (paper.id, paper.content_hash)

    def get(self, papers: list[Paper]) -> dict[str, tuple[list[str], np.ndarray]]:
        with self._lock:
            missing = {self.key(p): p for p in papers if self.key(p) not in self._items}
        fresh: dict[tuple[str, str], tuple[list[str], np.ndarray]] = {}
        if missing:
            splits = {key: evidence_sentences(p.abstract) for key, p in missing.items()}
            vectors = self.embedder.embed([s for key in missing for s in splits[key]])
            offset = 0
            for key in missing:
                count = len(splits[key])
                fresh[key] = (splits[key], vectors[offset : offset + count])
                offset += count
            with self._lock:
                self._items.update(fresh)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        with self._lock:
            found = {}
            for paper in papers:
                key = self.key(paper)
                if key in self._items:
                    self._items.move_to_end(key)
                    found[paper.id] = self._items[key]
                elif key in fresh:  # already trimmed away again (more papers than the capacity)
                    found[paper.id] = fresh[key]
        for paper in papers:  # evicted by another request meanwhile: rare, recompute
            if paper.id not in found:
                sentences = evidence_sentences(paper.abstract)
                found[paper.id] = (sentences, self.embedder.embed(sentences))
        return found


def sentence_cache(embedder: Embedder) -> SentenceCache:
    """One cache per embedder, kept on the embedder itself (it lives as long as the cache)."""
    cache = getattr(embedder, "sentence_cache", None)
    if cache is None:
        cache = embedder.sentence_cache = SentenceCache(embedder)
    return cache


class SourceSet:
    """Papers numbered 1..n in the order given (retrieval rank)."""

    def __init__(
        self,
        papers: list[Paper],
        embedder: Embedder,
        similarities: list[float] | None = None,
        stored: dict[str, tuple[list[str], np.ndarray]] | None = None,
    ) -> None:
        """`stored` holds sentences and vectors read from the sentence index; only papers
        missing from it (a store built before the index) are split and embedded here."""
        self.embedder = embedder
        stored = stored or {}
        missing = [p for p in papers if p.id not in stored]
        cached = sentence_cache(embedder).get(missing) if missing else {}
        similarities = similarities or [0.0] * len(papers)
        self.sources: dict[int, Source] = {}
        for n, (paper, similarity) in enumerate(zip(papers, similarities), start=1):
            sentences, vectors = stored.get(paper.id) or cached[paper.id]
            self.sources[n] = Source(n, paper, sentences, vectors, similarity)

    @classmethod
    def from_hits(cls, hits: list, embedder: Embedder) -> "SourceSet":
        """Sources in retrieval order. Each paper's relevance is its fused retrieval score
        relative to the best hit's (the order search decided on, not the dense cosine
        alone), and its sentence vectors come from the sentence index when search read them."""
        best = max((h.score for h in hits), default=0.0)
        relevance = [h.score / best if best > 0 else h.similarity for h in hits]
        stored = {h.paper.id: (h.sentences, h.sentence_vectors) for h in hits if h.sentences is not None and h.sentence_vectors is not None}
        return cls([h.paper for h in hits], embedder, relevance, stored)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, n: int) -> Source:
        return self.sources[n]

    def __contains__(self, n: object) -> bool:
        return n in self.sources

    def numbers(self) -> list[int]:
        return list(self.sources)

    def ranked_sentences(
        self, query_vector: np.ndarray, relevance: Relevance | None = None, order_by: Relevance | None = None
    ) -> list[EvidenceSentence]:
        """All source sentences, best first: answering the query (`relevance(sentence,
        vector)`, the cosine by default), from a paper search ranked high (a stray on-topic
        sentence in an off-topic paper ranks lower), and not boilerplate such as "Code is
        available at ...". `order_by`, if given, ranks in place of `relevance`, while each
        sentence keeps `relevance` as how well it answers: the relevance floors were
        calibrated on that score, not on the ranking one."""
        ranked = []
        for source in self.sources.values():
            for sentence, vector in zip(source.sentences, source.vectors):
                answers = relevance(sentence, vector) if relevance else float(vector @ query_vector)
                score = (
                    (order_by(sentence, vector) if order_by else answers)
                    + _PAPER_RELEVANCE_WEIGHT * source.similarity
                    - (_BOILERPLATE_PENALTY if is_boilerplate(sentence) else 0.0)
                )
                ranked.append(EvidenceSentence(source.n, sentence, score, answers))
        return sorted(ranked, key=lambda e: -e.score)

    def sentence_vector(self, n: int, sentence: str) -> np.ndarray | None:
        """The stored vector of one sentence of source n (None if it is not one of them)."""
        source = self.sources[n]
        for text, vector in zip(source.sentences, source.vectors):
            if text == sentence:
                return vector
        return None

    def select_evidence(
        self, query_vector: np.ndarray, count: int, relevance: Relevance | None = None, order_by: Relevance | None = None
    ) -> list[EvidenceSentence]:
        """The `count` sentences most relevant to the query, at least one from the top
        sources, shown grouped by source and in abstract order so the model reads context.
        (`order_by`: as for :meth:`ranked_sentences`.)"""
        ranked = self.ranked_sentences(query_vector, relevance, order_by)
        chosen: list[EvidenceSentence] = []
        seen_sources: set[int] = set()
        for evidence in ranked:  # first pass: the best sentence of each source
            if evidence.n not in seen_sources and len(chosen) < count:
                chosen.append(evidence)
                seen_sources.add(evidence.n)
        for evidence in ranked:
            if len(chosen) >= count:
                break
            if evidence not in chosen:
                chosen.append(evidence)
        order = {(s.n, text): i for s in self.sources.values() for i, text in enumerate(s.sentences)}
        return sorted(chosen, key=lambda e: (e.n, order[(e.n, e.text)]))
