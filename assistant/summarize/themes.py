"""Themes of a topic summary: papers clustered by their embeddings, each cluster named
by the words its papers share and the other clusters lack (rare words in the catalog
count more)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..library import Library
from ..records import Paper
from ..text import STEMMER, STOPWORDS, WORD

_CLAUSE = re.compile(r"[.,;:!?()\[\]{}\"“”]|\s[-–—]+\s")


@dataclass
class Theme:
    heading: str
    numbers: list[int]  # global source numbers of the theme's papers (retrieval order)
    sentences: list[tuple[str, list[int]]] = field(default_factory=list)  # final, renumbered

    def to_dict(self) -> dict:
        return {"heading": self.heading, "sentences": [{"text": t, "citations": c} for t, c in self.sentences]}


def find_themes(papers: list[Paper], vectors: np.ndarray, background: WordStats) -> list[Theme]:
    """Themes over papers numbered 1..n in the order given."""
    groups = cluster_papers(vectors, theme_count(len(papers)))
    headings = theme_headings([[papers[i] for i in group] for group in groups], background)
    return [Theme(heading, [i + 1 for i in group]) for heading, group in zip(headings, groups)]


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


def word_stats(library: Library) -> WordStats:
    """Document frequencies over the library's catalog, rebuilt only when the store changes."""
    return library.derived("summary_word_stats", _count_terms)


def _count_terms(papers: list[Paper]) -> WordStats:
    df: Counter[str] = Counter()
    for paper in papers:
        df.update({term for term, _ in _terms(paper.document)})
    return WordStats(len(papers), dict(df))


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
