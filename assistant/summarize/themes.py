"""Themes of a topic summary: papers clustered by their embeddings, each cluster named
by a key phrase its papers share and the other clusters lack ("Post-training
quantization", "Low-rank decomposition"): a phrase of 2-4 words written verbatim in the
papers' titles or abstracts, never a list of single words. Phrases rare in the catalog
count more."""

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


def find_themes(papers: list[Paper], vectors: np.ndarray, background: WordStats, topic: str = "") -> list[Theme]:
    """Themes over papers numbered 1..n in the order given."""
    groups = cluster_papers(vectors, theme_count(len(papers)))
    headings = theme_headings([[papers[i] for i in group] for group in groups], background, topic=topic)
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
    """Document frequencies of candidate key phrases over the whole catalog: what makes a
    phrase distinctive."""

    documents: int
    df: dict[str, int]

    def idf(self, term: str) -> float:
        return math.log((self.documents + 1) / (self.df.get(term, 0) + 0.5))


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return STEMMER.stemWord(word.lower())


# Words that may sit inside a key phrase ("mixture of experts", "pruning and quantization")
# but never at either end.
_INNER = frozenset("of for and in on with to".split())
# Nouns and adjectives of the general stop-word list that do end or start good key phrases
# ("diffusion models", "neural networks", "large language models", "low-bit quantization").
_PHRASE_WORDS = frozenset("model models network networks large small high low deep".split())
# Words that make a phrase a clause fragment or a commonplace rather than a name.
_NOT_AT_ENDS = (STOPWORDS - _PHRASE_WORDS) | frozenset(
    """
    allow allows allowing enable enables enabling require requires requiring lead leads leading yield yields obtain
    obtains obtained reduce reduces reduced reducing outperform outperforms outperforming show showing shown
    demonstrated achieving improving introduced presented proposing called named termed known makes making
    accurate able possible even key main important task tasks data set sets way ways number numbers
    art approach technique techniques strategy strategies terms term case cases order example examples
    however although whereas thereby specifically particularly respectively
    """.split()
)
# Words that name a property or a vague whole, not a subject: they may start a phrase
# ("neural networks", "broad applications") but not end one.
_NOT_AT_END = frozenset(
    """
    neural deep large small high low efficient generative recurrent convolutional adversarial human language
    """.split()
)
# Vague nouns: "field of image", "broad range", "computational cost" name nothing.
_VAGUE = frozenset(
    """
    field fields application applications range variety kind kinds type types class family amount lack use
    cost costs advantage advantages benefit benefits aspect aspects area areas level levels part parts
    scenario scenarios manner fashion extent degree potential line lines direction directions
    """.split()
)
_ADJECTIVE_END = ("ous", "ive", "ical", "able", "ible", "ful", "less", "ial", "ary")
_NOUNS_LIKE_ADJECTIVES = frozenset("objective objectives alternative alternatives variable variables".split())
_MAX_WORDS = 4
_BEFORE_VERB = frozenset("to we can could will would may might must should which that they it also not".split())


@dataclass(frozen=True)
class Phrase:
    key: str  # stemmed, lower-case: "post-train quantize"
    surface: str  # as written in the text: "post-training quantization"
    in_title: bool


def _edge_ok(word: str) -> bool:
    lower = word.lower()
    if len(lower) < 3 and not (word.isupper() and len(word) >= 2):
        return False
    if lower in _NOT_AT_ENDS or lower in _INNER or lower in _VAGUE or lower.endswith("ly"):
        return False
    return not any(ch.isdigit() for ch in lower[:1])


def _end_ok(lower: str) -> bool:
    if lower in _NOUNS_LIKE_ADJECTIVES:
        return True
    return lower not in _NOT_AT_END and not lower.endswith(_ADJECTIVE_END)


def phrases(text: str, in_title: bool = False) -> list[Phrase]:
    """Candidate key phrases: runs of 2-4 content words within one clause, separated by
    spaces only (so each is verbatim in the text), with at most one connecting word
    ("of", "for", "and") inside."""
    found: list[Phrase] = []
    for chunk in _CLAUSE.split(text):
        words = list(WORD.finditer(chunk))
        for i, first in enumerate(words):
            if not _edge_ok(first.group()):
                continue
            if i and words[i - 1].group().lower() in _BEFORE_VERB:
                continue  # "to compress large models": the run starts with a verb
            inner = 0
            for j in range(i + 1, min(i + _MAX_WORDS, len(words))):
                gap = chunk[words[j - 1].end() : words[j].start()]
                if gap.strip():
                    break  # something other than spaces between the words: not one phrase
                word = words[j].group()
                lower = word.lower()
                if lower in _INNER:
                    inner += 1
                    if inner > 1:
                        break
                    continue
                if not _edge_ok(word):
                    break  # a function word, a verb or a commonplace ends the run
                if not _end_ok(lower):
                    continue  # may go on ("neural" → "neural networks"), cannot end here
                span = words[i : j + 1]
                surface = " ".join(chunk[first.start() : words[j].end()].split())
                key = " ".join(_stem(w.group()) for w in span if w.group().lower() not in _INNER)
                found.append(Phrase(key, surface, in_title))
    return found


def paper_phrases(paper: Paper) -> list[Phrase]:
    """The candidate key phrases of a paper's title and abstract."""
    return phrases(paper.title, True) + phrases(paper.abstract)


def word_stats(library: Library) -> WordStats:
    """Phrase document frequencies over the library's catalog, rebuilt only when the store changes."""
    return library.derived("summary_phrase_stats", _count_terms)


def _count_terms(papers: list[Paper]) -> WordStats:
    df: Counter[str] = Counter()
    for paper in papers:
        df.update({p.key for p in paper_phrases(paper)})
    return WordStats(len(papers), dict(df))


def theme_headings(groups: list[list[Paper]], background: WordStats, words: int = 3, topic: str = "") -> list[str]:
    """A key phrase per group (see the module docstring): the phrase most of the group's
    papers share and the other groups lack, weighted by its rarity in the catalog (IDF,
    capped so one odd phrase cannot win alone), titles counting extra and phrases that only
    repeat the topic counting less. When no phrase is shared by two of the group's papers,
    the best phrase of its best-ranked paper. (`words` is kept for compatibility.)"""
    per_paper: list[list[dict[str, Phrase]]] = []
    surfaces: Counter[tuple[str, str]] = Counter()
    for group in groups:
        rows = []
        for paper in group:
            found: dict[str, Phrase] = {}
            for phrase in paper_phrases(paper):
                surfaces[(phrase.key, phrase.surface)] += 1
                if phrase.key not in found or phrase.in_title:
                    found[phrase.key] = phrase
            rows.append(found)
        per_paper.append(rows)
    topic_stems = {_stem(w) for w in WORD.findall(topic)}
    cap = math.log(max(background.documents, 2) / 2.0) if background.documents else 1.0
    headings: list[str] = []
    used: list[str] = []
    for index, group in enumerate(groups):
        rows = per_paper[index]
        others = [row for i, r in enumerate(per_paper) if i != index for row in r]
        key = None
        if len(rows) > 1:  # shared by two papers and in a title; else shared in the abstracts
            key = _best_key(rows, others, background, cap, used, topic_stems, shared=True, titled=True)
            key = key or _best_key(rows, others, background, cap, used, topic_stems, shared=True)
        if key is None and rows:  # no phrase two papers share: the lead paper's best phrase
            key = _best_key(rows[:1], others, background, cap, used, topic_stems, shared=False)
            if key is None:
                key = _best_key(rows[:1], others, background, cap, [], topic_stems, shared=False)
        if key is None:  # not even one phrase: the lead paper's title (verbatim in the paper)
            headings.append(group[0].title if group else "Other papers")
            continue
        used.append(key)
        headings.append(_display(key, surfaces))
    return headings


def _best_key(
    rows: list[dict[str, Phrase]],
    others: list[dict[str, Phrase]],
    background: WordStats,
    cap: float,
    used: list[str],
    topic_stems: set[str],
    shared: bool,
    titled: bool = False,
) -> str | None:
    size = max(len(rows), 1)
    counts: Counter[str] = Counter()
    titles: Counter[str] = Counter()
    for row in rows:
        counts.update(row.keys())
        titles.update(k for k, p in row.items() if p.in_title)
    needed = 2 if shared else 1
    scored: list[tuple[float, str]] = []
    for key, count in counts.items():
        if count < needed or (titled and not titles[key]):
            continue
        other = sum(1 for row in others if key in row) / len(others) if others else 0.0
        share = count / size + titles[key] / size - other
        if share <= 0:
            continue
        stems = set(key.split())
        weight = min(background.idf(key), cap)
        if topic_stems and stems <= topic_stems:
            weight *= 0.4  # only repeats the topic: says little about this theme
        scored.append((share * weight, key))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best: str | None = None
    for score, key in scored:
        if any(_overlaps(key, u) for u in used):
            continue  # another theme's heading, or nearly
        best = key
        break
    if best is None:
        return None
    # a longer phrase as widely shared names it better ("large language models", not "language models")
    for key, count in counts.items():
        if key != best and f" {best} " in f" {key} " and count >= counts[best] and not any(_overlaps(key, u) for u in used):
            if best is None or len(key) > len(best):
                best = key
    return best


def _overlaps(a: str, b: str) -> bool:
    return f" {a} " in f" {b} " or f" {b} " in f" {a} "


def _display(key: str, surfaces: Counter[tuple[str, str]]) -> str:
    """The phrase as the papers usually write it, lower-cased except acronyms and names
    with inner capitals (LLMs, BiBERT), first letter capitalized."""
    forms = [(count, surface) for (k, surface), count in surfaces.items() if k == key]
    surface = max(forms)[1] if forms else key
    words = [w if any(ch.isupper() for ch in w[1:]) else w.lower() for w in surface.split()]
    text = " ".join(words)
    return text[:1].upper() + text[1:]
