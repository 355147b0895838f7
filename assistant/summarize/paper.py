"""One paper's summary: its problem, method and result in three sentences, each the
abstract sentence that best fits the role (assistant.roles) made self-contained, named
("*Name* reports that …") and verified against the abstract; a one-line TL;DR from the
model kept beside them only if the verifier finds it supported and it reads on its own;
the code link and related papers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


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
from ..roles import ROLE_PROMPTS, assign_roles
from ..text import with_markers
from . import statements as statements_
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
TLDR_ROLES = ("problem", "method", "result")

@dataclass
class PaperSummary:
    paper: Paper
    markdown: str = ""
    tldr: str = ""
    tldr_generated: bool = False  # True: the model's TL;DR passed verification
    roles: dict[str, str] = field(default_factory=dict)  # problem / method / result -> abstract sentence
    statements: dict[str, str] = field(default_factory=dict)  # the same, as displayed: self-contained, named, verified
    checked_roles: dict[str, CheckedSentence] = field(default_factory=dict, repr=False)
    checked_tldr: CheckedSentence | None = field(default=None, repr=False)  # the model's TL;DR as verified
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
            "statements": self.statements,
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
    settings = library.calibrated(settings)
    paper = _find_paper(library, paper_id)
    result = PaperSummary(paper)
    embedder = library.embedder
    sources = SourceSet([paper], embedder, stored=library.store.sentences([paper.id]))
    source = sources[1]
    verifier = Verifier(sources, settings.support_threshold)
    _role_statements(result, sources, verifier, embedder.embed(list(ROLE_PROMPTS.values())))
    result.timings["roles_s"] = time.perf_counter() - started

    step = time.perf_counter()
    tldr = _generated_tldr(library, settings, llm, sources, result)
    if tldr is not None:
        result.tldr, result.tldr_generated, result.checked_tldr = tldr.text, True, tldr
    else:  # the three role statements are the TL;DR
        result.tldr = " ".join(result.statements[role] for role in TLDR_ROLES if role in result.statements)
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


def _role_statements(result: PaperSummary, sources: SourceSet, verifier: Verifier, role_vectors) -> None:
    """Problem, method and result: the best sentence per role among those that can stand
    alone (all sentences if fewer than three can), each in its best verified wording."""
    source = sources[1]
    usable = [i for i, s in enumerate(source.sentences) if statements_.stands_alone(s)]
    if len(usable) < len(TLDR_ROLES):
        usable = list(range(len(source.sentences)))
    if not usable:
        return
    roles = assign_roles([source.sentences[i] for i in usable], source.vectors[usable], role_vectors)
    result.roles = {role: roles[role] for role in TLDR_ROLES if role in roles}
    for role, sentence in result.roles.items():
        checked = statements_.verified(sentence, 1, sources, verifier, role=role, name_it=role != "problem", evidence=sentence)
        if checked is not None:
            result.statements[role] = checked.text
            result.checked_roles[role] = checked


def _cite(result: PaperSummary, sources: SourceSet) -> None:
    """The TL;DR (when the model's) and the role statements cite the paper as [1]."""
    paper = result.paper
    checked: list[CheckedSentence] = []
    if result.checked_tldr is not None:  # cited with the support and evidence it was verified with, not as a quote
        checked.append(result.checked_tldr)
    checked += [result.checked_roles[role] for role in TLDR_ROLES if role in result.checked_roles]
    result.cited = render(checked, sources)
    result.references = result.cited.references or [
        Reference(1, paper.id, paper.title, paper.code_url, paper.date, paper.sources)
    ]
    result.papers = [paper]


def _generated_tldr(
    library: Library, settings: Settings, llm: LLM | None, sources: SourceSet, result: PaperSummary
) -> CheckedSentence | None:
    """The model's one-line TL;DR if the verifier finds it supported by the abstract."""
    try:
        llm = llm or library.llm_for(settings)
        result.model = llm.name
        # an abstract too long for the context loses its last sentences first
        request = generation.fit(llm, settings, TLDR_PROMPT, sources[1].sentences, _abstract)
        raw = generation.generate(llm, request)
    except LLMError:
        return None
    complete = complete_sentences(clean_line(raw))
    if not complete or len(complete[0].split()) > _TLDR_MAX_WORDS:
        return None
    verifier = Verifier(sources, settings.support_threshold)
    checked = verifier.check(with_markers(complete[0], [1]))
    if len(checked) == 1 and checked[0].cited == [1]:  # the Verifier also checks it adds no foreign detail
        readable = statements_.polish(checked[0], sources, verifier)  # no "This paper …" left dangling
        if readable is not None and readable.text not in result.statements.values():
            return readable
    return None


def _abstract(sentences: list[str]) -> dict[str, object]:
    return {"abstract": prompts.quote(" ".join(sentences), limit=4000)}
