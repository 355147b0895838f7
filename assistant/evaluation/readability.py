"""Does a summary read like a colleague's notes? Measures shared by benchmarks and tests.

- `dangling_share(sentences)`: share of displayed sentences that open by pointing back at
  a sentence the reader cannot see ("This …", "To this end, …", "However, …"; the check
  is `assistant.rewrite.has_dangling_opening`). Target 0.
- `heading_is_phrase(heading, papers)`: the theme heading is a phrase of two words or
  more (not a comma list of single words) written verbatim, case-insensitively, in the
  title or abstract of at least one of the theme's papers. Target: every heading.
- `off_topic_kept(summary, library)`: the summary's papers whose best sentence's
  relevance to the topic is below `Settings.answer_relevance`.
- background: displayed sentences about the field rather than the cited paper ("GNNs
  are highly sensitive to …", "recent advances in …"; `assistant.text.is_background`).
  Target 0: they tell the reader nothing about the paper.
- `scene_sentences(citations, sentences_of)`: displayed sentences whose cited evidence sets
  the field's scene rather than stating the paper's work ("Activation compressed training
  provides a solution …" before "However, …"; `assistant.text.background_flags` over the
  cited abstract). Target 0: shown under the paper's name, they credit it with prior work.
- `misplaced_sentences(summary)`: theme sentences citing a paper outside their theme
  (displayed under the wrong heading). Target 0.
- `topic_summary_figures(summary, library)` and `paper_summary_sentences(summary)` gather
  them for one summary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..records import Paper
from ..rewrite import has_dangling_opening
from ..text import evidence_sentences, is_background, sets_the_scene

if TYPE_CHECKING:
    from ..library import Library
    from ..summarize.paper import PaperSummary
    from ..summarize.topic import TopicSummary


def dangling_share(sentences: Iterable[str]) -> float:
    """Share of the sentences with a dangling opening (0.0 for none)."""
    items = [s for s in sentences if s and s.strip()]
    if not items:
        return 0.0
    return sum(1 for s in items if has_dangling_opening(_unmarked(s))) / len(items)


def _unmarked(sentence: str) -> str:
    return sentence.lstrip("-* ").strip()


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def heading_is_phrase(heading: str, papers: Sequence[Paper]) -> bool:
    """A multi-word phrase, not a list, present verbatim (ignoring case and spacing) in a paper."""
    words = heading.split()
    if len(words) < 2 or "," in heading:
        return False
    pattern = re.compile(r"(?<![\w-])" + re.escape(_normalized(heading)) + r"(?![\w-])")
    return any(pattern.search(_normalized(f"{p.title} {p.abstract}")) for p in papers)


def summary_sentences(summary: TopicSummary) -> list[str]:
    """Every displayed sentence of a topic summary: overview and themes."""
    return [text for text, _ in summary.overview] + [text for theme in summary.themes for text, _ in theme.sentences]


def theme_papers(summary: TopicSummary) -> list[tuple[str, list[Paper]]]:
    """(heading, the theme's papers) for each displayed theme (`Theme.numbers` are the
    positions of its papers in `summary.hits`)."""
    hits = summary.hits
    return [(t.heading, [hits[n - 1].paper for n in t.numbers if 0 < n <= len(hits)]) for t in summary.themes]


def best_relevance(library: Library, topic: str, papers: Sequence[Paper]) -> dict[str, float]:
    """Each paper's best sentence relevance to the topic (the calibrated scorer)."""
    from .. import relevance

    settings = library.calibrated()
    vector = library.embedder.embed_one(topic)
    scorer = relevance.RelevanceScorer(topic, vector, library.term_weights(), settings)
    stored = library.store.sentences([p.id for p in papers])
    scores = {}
    for paper in papers:
        sentences, vectors = stored.get(paper.id) or ([], None)
        scores[paper.id] = max((scorer.score(s, v) for s, v in zip(sentences, vectors)), default=0.0) if sentences else 0.0
    return scores


def scene_sentences(citations: Iterable, papers: Iterable[Paper]) -> list[str]:
    """Displayed sentences (once each) citing an abstract's scene-setting as their evidence
    (`papers`: the cited papers, matched by id)."""
    abstracts = {paper.id: paper.abstract for paper in papers}
    shown: list[str] = []
    for citation in citations:
        if sets_the_scene(citation.evidence, evidence_sentences(abstracts.get(citation.id, ""))) and citation.sentence not in shown:
            shown.append(citation.sentence)
    return shown


def misplaced_sentences(summary: TopicSummary) -> list[str]:
    """Theme sentences that cite a paper not in their theme (shown under the wrong heading)."""
    refs = summary.references
    wrong = []
    for theme in summary.themes:
        members = {summary.hits[n - 1].paper.id for n in theme.numbers if 0 < n <= len(summary.hits)}
        wrong += [text for text, numbers in theme.sentences if any(refs[k - 1].id not in members for k in numbers if 0 < k <= len(refs))]
    return wrong


def off_topic_kept(summary: TopicSummary, library: Library) -> list[str]:
    """Ids of the cited papers whose best sentence is below Settings.answer_relevance."""
    if summary.abstained or not summary.papers:
        return []
    scores = best_relevance(library, summary.topic, summary.papers)
    return [pid for pid, score in scores.items() if score < library.calibrated().answer_relevance]


def topic_summary_figures(summary: TopicSummary, library: Library) -> dict:
    """Headings that are phrases, dangling openings and off-topic papers for one summary."""
    themes = theme_papers(summary)
    sentences = summary_sentences(summary)
    return {
        "headings": len(themes),
        "headings_phrases": sum(1 for heading, papers in themes if heading_is_phrase(heading, papers)),
        "sentences": len(sentences),
        "dangling": sum(1 for s in sentences if has_dangling_opening(s)),
        "background": sum(1 for s in sentences if is_background(s)),
        "misplaced": len(misplaced_sentences(summary)),
        "scene": len(scene_sentences(summary.citations, summary.papers)) if summary.papers else 0,
        "papers": len(summary.papers),
        "off_topic_kept": len(off_topic_kept(summary, library)),
        "left_out": len(getattr(summary, "left_out", [])),
    }


def paper_summary_sentences(summary: PaperSummary) -> list[str]:
    """The displayed sentences of a paper TL;DR (role statements, and the model's line)."""
    shown = list(getattr(summary, "statements", {}).values()) or list(summary.roles.values())
    if summary.tldr_generated:
        shown.append(summary.tldr)
    return shown
