"""Does the library answer this question at all, and how well does a sentence answer it?

Support (citations.Verifier) says a displayed sentence is faithful to the abstract it
cites; it says nothing about whether that sentence answers the question. A faithful
quote about something else is a wrong answer, so every job that answers a question also
scores relevance, sentence by sentence:

    relevance = cosine(question, sentence) + lexical_weight x (IDF share of the
                question's terms the sentence contains)

The cosine comes from the sentence index; the lexical share catches the question whose
topic words are near (an LLM paper for a question about LLM watermarks) but whose point
no sentence states. Weight and thresholds are calibrated on questions written the way
people ask (benchmarks/calibrate_relevance.py), not guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .lexical import LexicalIndex, query_terms, tokenize
from .records import Paper
from .retrieval import Hit
from .settings import Settings

Strength = Literal["strong", "weak"]

# Stemmed question words the English stop-word list keeps.
_QUESTION_WORDS = {"what", "doe", "do", "how", "which", "who", "whom", "whose", "why", "when", "where", "can", "could"}


class TermWeights:
    """Inverse document frequency of stemmed terms over the catalog (what makes a word count)."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        counts: Counter[str] = Counter()
        for terms in tokenize([p.document for p in papers]):
            counts.update(set(terms))
        self._total = len(papers)
        self._df = counts

    def idf(self, term: str) -> float:
        return math.log((self._total + 1) / (self._df.get(term, 0) + 0.5))


class IndexTermWeights:
    """TermWeights from the BM25 index's document frequencies: the same numbers (the index
    holds the same documents, tokenized the same way) without reading and tokenizing the
    whole catalog, which cost a fresh process's first answer 20 s at 100,000 papers. Each
    term's frequency is looked up when first asked for."""

    def __init__(self, index: LexicalIndex) -> None:
        self._index = index
        self._total = index.body.document_count()
        self._df: dict[str, int] = {}

    def idf(self, term: str) -> float:
        df = self._df.get(term)
        if df is None:
            df = self._df[term] = self._index.body.document_frequency(term)
        return math.log((self._total + 1) / (df + 0.5))


class RelevanceScorer:
    """Scores sentences against one question (see the module docstring)."""

    def __init__(
        self,
        question: str,
        question_vector: np.ndarray,
        weights: TermWeights | IndexTermWeights,
        settings: Settings,
        *,
        lead: float | None = None,
    ) -> None:
        self.lead = lead  # the nearest paper's lead over the crowd (see nearest_lead); None: not judged
        self.vector = np.asarray(question_vector, dtype=np.float32)
        self.terms = set(query_terms(question))
        self.weights = weights
        self.settings = settings
        self._total = sum(weights.idf(t) for t in self.terms)

    def coverage(self, sentence: str) -> float:
        """IDF-weighted share of the question's terms that the sentence contains."""
        if not self._total:
            return 0.0
        present = set(tokenize([sentence])[0])
        return sum(self.weights.idf(t) for t in self.terms if t in present) / self._total

    def score(self, sentence: str, sentence_vector: np.ndarray) -> float:
        cosine = float(np.asarray(sentence_vector, dtype=np.float32) @ self.vector)
        return cosine + self.settings.relevance_lexical_weight * self.coverage(sentence)

    def best(self, hits: Sequence[Hit]) -> float:
        """The most relevant sentence among the hits' stored sentences (a hit without
        stored sentences counts its whole-abstract cosine)."""
        scores = []
        for hit in hits:
            if hit.sentences and hit.sentence_vectors is not None:
                scores.append(self.best_sentence(hit.sentences, hit.sentence_vectors))
            else:
                scores.append(hit.similarity)
        return max(scores, default=0.0)

    def best_sentence(self, sentences: Sequence[str], vectors: np.ndarray | None) -> float:
        """The relevance of the most relevant of these sentences (0 for none)."""
        if not len(sentences) or vectors is None or not len(vectors):
            return 0.0
        return max(self.score(s, v) for s, v in zip(sentences, vectors))

    def strength(self, score: float, first_paper: bool = False) -> Strength:
        """Plain words: 'strong' from the level no unanswerable calibration question reached,
        or, for a sentence of search's first paper, from `strong_top_relevance` (the cosine
        alone labelled 78% of right citations weak; see benchmarks/calibrate_labels.py)."""
        floor = self.settings.strong_top_relevance if first_paper else self.settings.strong_relevance
        return "strong" if score >= min(floor, self.settings.strong_relevance) else "weak"


def nearest_lead(nearest: Sequence[tuple[str, float]]) -> float | None:
    """Cosine of the nearest paper minus that of the last one given (the crowd): large when
    one paper is about the question, small when many are loosely near it. None when there
    is no crowd to compare with."""
    if len(nearest) < 2:
        return None
    return nearest[0][1] - nearest[-1][1]


def names_every_term(query: str, hits: Sequence[Hit], settings: Settings) -> bool:
    """A moderately close paper contains every content word of the question: rare names
    ("PolyLoss") embed poorly but are unambiguous when matched in full."""
    terms = set(query_terms(query)) - _QUESTION_WORDS
    return bool(terms) and any(
        h.similarity >= settings.relevance_threshold / 2 and terms <= set(tokenize([h.paper.document])[0]) for h in hits
    )


def answerable(scorer: RelevanceScorer, query: str, hits: Sequence[Hit]) -> bool:
    """Answer only when some retrieved sentence addresses the question, some paper is on
    its topic as a whole, and (when the scorer knows the nearest paper's lead) the two stand
    out from the crowd of loosely related papers (all calibrated); or a paper names it in
    full. Otherwise the corpus has nothing on it."""
    if not hits:
        return False
    settings = scorer.settings
    best = scorer.best(hits)
    on_topic = max(h.similarity for h in hits) >= settings.relevance_threshold and best >= settings.answer_relevance
    if on_topic and scorer.lead is not None:
        on_topic = best + settings.standout_weight * scorer.lead >= settings.answer_standout
    return on_topic or names_every_term(query, hits, settings)


def on_topic(hit: Hit, best_sentence: float, settings: Settings) -> bool:
    """Does this paper belong in a table or summary on the topic? Its whole-abstract cosine
    says it is about the area, its best sentence that it addresses the point; neither alone
    tells "speeding up diffusion sampling" from a diffusion paper about something else as
    well as their sum (calibrated on judged papers: benchmarks/calibrate_topics.py)."""
    return hit.similarity + best_sentence >= settings.topic_paper_score
