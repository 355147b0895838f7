"""One paper's summary: the abstract sentence that best fits each role (problem, method,
result), a one-line TL;DR from the model kept only if the verifier finds it supported by
the abstract (else the most representative sentence), the code link and related papers."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from .. import generation, prompts
from ..citations import CheckedSentence, CitedText, Reference, Verifier, render
from ..errors import InputError, LLMError
from ..evidence import SourceSet
from ..library import Library
from ..llm import LLM
from ..records import Paper
from ..references import normalize_format
from ..retrieval import Hit
from ..settings import Settings
from ..text import with_markers
from .cleanup import clean_line, complete_sentences
from .markdown import paper_markdown

TLDR_PROMPT = generation.Prompt(
    "summary_system.txt",
    "summary_tldr_user.txt",
    "summary_tldr_completion.txt",
    stop=("\n", "Abstract:"),
    trim=True,
    chat_tokens="summary_key_point_tokens",
    completion_tokens="summary_key_point_tokens",
)
_TLDR_MAX_WORDS = 45

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

    def render(self, fmt: str = "markdown") -> str:
        return paper_markdown(self, normalize_format(fmt))

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


def summarize_paper(library: Library, paper_id: str, *, settings: Settings | None = None, llm: LLM | None = None) -> PaperSummary:
    """TL;DR of one paper (by id, or by title with typos allowed): its problem, method and
    result sentences, a verified one-line TL;DR, the code link and the most related papers.
    `settings` and `llm` override the library's for this call."""
    started = time.perf_counter()
    settings = settings or library.settings
    paper = _find_paper(library, paper_id)
    result = PaperSummary(paper)
    embedder = library.embedder
    sources = SourceSet([paper], embedder, stored=library.store.sentences([paper.id]))
    source = sources[1]
    result.roles = assign_roles(source.sentences, source.vectors, embedder.embed(list(ROLE_PROMPTS.values())))
    result.timings["roles_s"] = time.perf_counter() - started

    step = time.perf_counter()
    tldr = _generated_tldr(library, settings, llm, sources, result)
    if tldr:
        result.tldr, result.tldr_generated = tldr, True
    else:
        title_vector = embedder.embed_one(paper.title)
        result.tldr = representative_sentence(source.sentences, source.vectors, title_vector, exclude=set(result.roles.values()))
    result.timings["tldr_s"] = time.perf_counter() - step

    step = time.perf_counter()
    result.related = library.related(paper.id, settings.summary_related_papers) if settings.summary_related_papers else []
    result.timings["related_s"] = time.perf_counter() - step

    _cite(result, sources)
    result.markdown = result.render("markdown")
    result.timings["total_s"] = time.perf_counter() - started
    return result


def _find_paper(library: Library, paper_id: str) -> Paper:
    """The paper with this id, else the best title match (typos allowed)."""
    paper_id = (paper_id or "").strip()
    if not paper_id:
        raise InputError("no paper id given: `assistant search` prints ids")
    paper = library.get(paper_id)
    if paper is None:
        from ..lookup import match_titles

        matches = match_titles(library, paper_id, 1)
        paper = matches[0][0] if matches else None
    if paper is None:
        raise InputError(f"no paper with id or title {paper_id!r}; `assistant search` or `assistant cite \"title\"` print ids")
    return paper


def _cite(result: PaperSummary, sources: SourceSet) -> None:
    """TL;DR and role sentences cite the paper as [1]."""
    paper = result.paper
    checked = [CheckedSentence(text, [1], {1: (1.0, text)}) for text in [result.tldr, *result.roles.values()] if text]
    result.cited = render(checked, sources)
    result.references = result.cited.references or [
        Reference(1, paper.id, paper.title, paper.code_url, paper.date, paper.sources)
    ]
    result.papers = [paper]


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


def _generated_tldr(library: Library, settings: Settings, llm: LLM | None, sources: SourceSet, result: PaperSummary) -> str:
    """The model's one-line TL;DR if the verifier finds it supported by the abstract."""
    try:
        llm = llm or library.llm_for(settings)
        result.model = llm.name
        # an abstract too long for the context loses its last sentences first
        request = generation.fit(llm, settings, TLDR_PROMPT, sources[1].sentences, _abstract)
        raw = generation.generate(llm, request)
    except LLMError:
        return ""
    complete = complete_sentences(clean_line(raw))
    if not complete or len(complete[0].split()) > _TLDR_MAX_WORDS:
        return ""
    checked = Verifier(sources, settings.support_threshold).check(with_markers(complete[0], [1]))
    if len(checked) == 1 and checked[0].cited == [1]:  # the Verifier also checks it adds no foreign detail
        return checked[0].text
    return ""


def _abstract(sentences: list[str]) -> dict[str, object]:
    return {"abstract": prompts.quote(" ".join(sentences))}
