"""Citation lookup: which paper supports a claim, or which paper a (mistyped) title names.

- A **title**, exact or approximate (typos, missing or reordered words), is matched
  against every title in the catalog: rapidfuzz string similarity for typos, plus an
  IDF-weighted word overlap for missing words (see :func:`title_score`).
- Anything else is a **claim**: candidate papers come from the shared hybrid retrieval,
  and each is scored the way :class:`assistant.citations.Verifier` scores a cited
  sentence (best similarity between the claim and one abstract sentence, 1.0 when the
  claim is quoted). Papers below ``settings.support_threshold`` are not returned, so
  "nothing supports this" is an empty list, never a weak guess.

Title-vs-claim is decided by match quality: a title match at or above
:data:`TITLE_CUTOFF` wins; otherwise the text is treated as a claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rapidfuzz import fuzz

from .citations import Verifier
from .errors import InputError
from .evidence import SourceSet
from .library import Library
from .records import Paper, normalize_title
from .settings import Settings
from .text import cap, evidence_sentences

# title_score (0-100) from which the text is taken as a title. On the shipped corpus, 600
# sentences from abstracts score at most 84 against any title; titles with a typo and a
# missing word score 88-97.
TITLE_CUTOFF = 88.0
_TITLE_TIE = 3.0  # other titles this close to the best one are returned too (near-duplicates)
NO_SUPPORT = "no supporting paper in the corpus"


@dataclass
class CiteHit:
    paper: Paper
    support: float  # claim: Verifier support in [0, 1]; title: match quality in [0, 1]
    sentence: str  # claim: the supporting abstract sentence; title: the abstract's first sentence
    kind: str  # "claim" | "title"

    def to_dict(self) -> dict:
        return {
            "id": self.paper.id,
            "title": self.paper.title,
            "support": round(float(self.support), 4),
            "sentence": self.sentence,
            "kind": self.kind,
        }


class TitleIndex:
    """Normalized catalog titles with word weights (IDF over titles), so that naming a
    title's distinctive words counts and sharing "neural networks" with it does not."""

    def __init__(self, papers: list[Paper]) -> None:
        self.papers = papers
        self.titles = [normalize_title(p.title) for p in papers]
        self.words = [t.split() for t in self.titles]
        df: dict[str, int] = {}
        for words in self.words:
            for word in set(words):
                df[word] = df.get(word, 0) + 1
        total = len(papers)
        self._idf = {word: math.log((total + 1) / (count + 0.5)) for word, count in df.items()}
        self._unseen = math.log((total + 1) / 0.5)

    def idf(self, word: str) -> float:
        return self._idf.get(word, self._unseen)

    def match(self, query: str, k: int = 5, cutoff: float = TITLE_CUTOFF) -> list[tuple[Paper, float]]:
        normalized = normalize_title(query)
        if not normalized:
            return []
        scored = [(self.papers[i], title_score(normalized, self.titles[i], self)) for i in range(len(self.papers))]
        scored = [(paper, score) for paper, score in scored if score >= cutoff]
        scored.sort(key=lambda item: (-item[1], item[0].title))
        if not scored:
            return []
        best = scored[0][1]
        return [(paper, score) for paper, score in scored if score >= best - _TITLE_TIE][:k]


def _word_match(a: str, b: str) -> bool:
    if a == b:
        return True
    if min(len(a), len(b)) < 4:
        return False
    return fuzz.ratio(a, b) >= 80  # one typo in a word of 5+ letters


def _weighted_overlap(query: list[str], title: list[str], index: "TitleIndex | None") -> tuple[float, float]:
    """(coverage, precision): the IDF share of the title's words the query names, and of
    the query's words found in the title; words match with a typo allowed."""
    weight = index.idf if index is not None else (lambda word: 1.0)
    matched_title = [any(_word_match(q, t) for q in query) for t in title]
    matched_query = [any(_word_match(q, t) for t in title) for q in query]
    title_total = sum(weight(t) for t in title) or 1.0
    query_total = sum(weight(q) for q in query) or 1.0
    coverage = sum(weight(t) for t, ok in zip(title, matched_title) if ok) / title_total
    precision = sum(weight(q) for q, ok in zip(query, matched_query) if ok) / query_total
    return coverage, precision


def title_score(query: str, title: str, index: "TitleIndex | None" = None) -> float:
    """How well `query` names `title`, 0-100.

    - typos and small slips over the whole string: max(fuzz.ratio, fuzz.token_sort_ratio);
    - missing words: the query's words are (nearly) all in the title and name most of
      the title's weight (IDF-weighted, see :class:`TitleIndex`), so a generic phrase
      ("graph neural networks") does not name "Forward Learning of Graph Neural Networks".
    """
    q, t = normalize_title(query), normalize_title(title)
    if not q or not t:
        return 0.0
    if q == t:
        return 100.0
    score = float(max(fuzz.ratio(q, t), fuzz.token_sort_ratio(q, t)))
    q_words, t_words = q.split(), t.split()
    if len(q_words) >= 2 and len(q_words) <= len(t_words) + 1:
        coverage, precision = _weighted_overlap(q_words, t_words, index)
        if precision >= 0.9:
            # coverage 1.0 -> 97 (a notch below an exact title), 0.65 -> 88 (the cut-off)
            score = max(score, 97.0 - (1.0 - coverage) * (9.0 / 0.35))
    return score


def title_index(library: Library) -> TitleIndex:
    """One index per catalog, kept on the library until the store changes."""
    return library.derived("title_index", TitleIndex)


def match_titles(library: Library, text: str, k: int = 5, cutoff: float = TITLE_CUTOFF) -> list[tuple[Paper, float]]:
    """Catalog papers whose title `text` names, best first: the best match plus any
    within a few points of it (duplicated or near-identical titles)."""
    return title_index(library).match(text, k, cutoff)


def support_claim(
    library: Library, claim: str, k: int = 5, candidates: int | None = None, *, settings: Settings | None = None
) -> list[CiteHit]:
    """Papers whose abstracts support the claim, best first; only those at or above
    settings.support_threshold. Scored by Verifier.support, exactly as answer citations are.

    Candidates are the hybrid search's best papers plus every paper owning one of the
    sentences nearest to the claim anywhere in the corpus (the sentence index), so a
    claim that paraphrases one sentence of an otherwise unrelated-looking abstract is found."""
    settings = library.calibrated(settings)
    pool = candidates or max(3 * k, 15)
    vector = library.embedder.embed_one(claim)
    hits = library.search(claim, pool, settings=settings, query_vector=vector)
    nearest = [paper_id for paper_id, _, _ in library.store.nearest_sentences(vector, settings.sentence_candidates)]
    extra = [paper_id for paper_id in dict.fromkeys(nearest) if paper_id not in {h.paper.id for h in hits}]
    papers = [h.paper for h in hits] + list(library.store.papers(extra).values())
    if not papers:
        return []
    stored = library.store.sentences([p.id for p in papers])
    sources = SourceSet(papers, library.embedder, stored=stored)
    verifier = Verifier(sources, settings.support_threshold)
    found: list[tuple[float, int, CiteHit]] = []
    for n in sources.numbers():
        score, sentence = verifier.support(claim, vector, n)
        if score >= settings.support_threshold:
            found.append((score, n, CiteHit(sources[n].paper, score, sentence, "claim")))
    found.sort(key=lambda item: (-item[0], item[1]))  # ties: retrieval rank
    return [hit for _, _, hit in found[:k]]


def cite(library: Library, text: str, k: int = 5, *, settings: Settings | None = None) -> list[CiteHit]:
    """A claim -> supporting papers; a title -> the matching paper. Empty when nothing passes.
    `settings` overrides the library's (retrieval, support threshold) for this call."""
    text = " ".join((text or "").split())
    if not text:
        raise InputError("nothing to look up: give a claim or a paper title")
    text = cap(text, (settings or library.settings).max_question_chars)
    titles = match_titles(library, text, k)
    if titles:
        return [
            CiteHit(paper, score / 100.0, (evidence_sentences(paper.abstract) or [""])[0], "title")
            for paper, score in titles
        ]
    return support_claim(library, text, k, settings=settings)
