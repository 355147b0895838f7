"""The literature table: one row per relevant paper, one column per question a researcher
asks of every paper (what problem, what method, what data, what result, where is the code).

Nothing in a cell is written by a model. Each text cell quotes its paper's abstract: the
sentence the role classifier (assistant/roles.py) finds for the column, or, for the data
column, the clause of that sentence that names the dataset, always a verbatim substring of
the abstract. A column no sentence fills convincingly stays empty: an empty "data" cell
says the abstract names no dataset, which is worth knowing, while an invented one would
mislead. The code column comes from the paper's metadata (its code link), never from text.
Every cell carries its support, scored the way answer citations are (assistant/citations.py):
1.0 for text quoted from the abstract.

Rows are the library's hybrid search results that are on the topic by the calibrated
relevance tests (assistant/relevance.py), so a paper that merely shares a word with the
topic does not get a row; when nothing is on topic the table abstains with the nearest titles.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import relevance
from .citations import Verifier
from .errors import InputError
from .evidence import SourceSet, sentence_cache
from .library import Library
from .records import Paper, normalize_title
from .retrieval import Hit
from .roles import TABLE_ROLE_PROMPTS, TABLE_RULES, choose_roles, cue_spans, named_dataset_spans
from .settings import Settings
from .text import cap, is_boilerplate

COLUMNS = ("problem", "method", "data", "result", "code")
TEXT_COLUMNS = ("problem", "method", "data", "result")
COLUMN_TITLES = {"problem": "Problem", "method": "Method", "data": "Data", "result": "Result", "code": "Code"}
EMPTY_MARK = "—"

# Where a sentence splits into clauses that stand on their own: semicolons, dashes, and a
# comma before a word that opens a new clause ("…, while on COCO it reaches …"). Plain
# commas do not split: they separate the items of a dataset list.
_CLAUSE_BREAK = re.compile(
    r";\s+|\s+(?:—|--)\s+|,\s+(?=(?:while|whereas|which|where|but|although|though|yet|and (?:we|it|our|they|this|these|the (?:results?|proposed))|"
    r"achieving|outperforming|showing|yielding|resulting|demonstrating|surpassing|reaching|leading|improving|reducing|"
    r"obtaining|setting|establishing)\b)"
)
_MIN_CLAUSE_WORDS = 4
_LONG_SENTENCE_WORDS = 30  # a data sentence longer than this is quoted by its clause
# A cell is read out of its abstract: a sentence that opens by pointing back ("This
# challenge …", "However, …") or leans on an earlier one loses to one that stands alone.
_LEANS_BACK_PENALTY = 0.12
_POINTS_BACK = re.compile(
    r"^\W*(this|these|that|those|such|it|its|they|their|however|moreover|furthermore|additionally|in addition|also|thus|hence|"
    r"therefore|to this end|to (address|tackle|solve) (this|these|the above)|as a result|consequently|in contrast|on the other hand)\b"
    r"|\b(this|these|the above|such) (problems?|issues?|challenges?|limitations?|methods?|approach(es)?|gaps?)\b",
    re.IGNORECASE,
)
_QUOTE_TEST_CHARS = 20  # Verifier.support counts longer normalized text found in the abstract as quoted (1.0)


@dataclass
class Cell:
    """One cell: the quoted text (empty when the abstract does not say), its support
    against the abstract (None for an empty cell and for the code link, which is not a
    claim), and the whole abstract sentence the text comes from (for highlighting)."""

    text: str = ""
    support: float | None = None
    sentence: str = ""

    def to_dict(self) -> dict:
        return {"text": self.text, "support": None if self.support is None else round(self.support, 4)}


@dataclass
class Row:
    paper: Paper
    cells: dict[str, Cell]
    relevance: float = 0.0  # the paper's best sentence relevance to the topic

    def to_dict(self, columns: Sequence[str]) -> dict:
        return {"id": self.paper.id, "title": self.paper.title, "cells": {c: self.cells[c].to_dict() for c in columns}}


@dataclass
class LiteratureTable:
    """The table for one topic, and its three renderings (JSON-ready dict, Markdown, CSV).
    An abstained table has no rows and says why in `message`, naming the nearest titles."""

    topic: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    abstained: bool = False
    message: str = ""
    nearest: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"topic": self.topic, "columns": list(self.columns), "rows": [row.to_dict(self.columns) for row in self.rows]}

    def header(self) -> list[str]:
        return ["Paper"] + [COLUMN_TITLES[c] for c in self.columns]

    def display_rows(self) -> list[list[str]]:
        """One list of strings per row, for a UI table: title, then each column's text
        (EMPTY_MARK where the abstract does not say)."""
        return [[row.paper.title] + [row.cells[c].text or EMPTY_MARK for c in self.columns] for row in self.rows]

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table; a cell whose support is below 1.0 shows it."""
        if self.abstained:
            return self.message + "\n"
        lines = [
            f"# Literature table: {_md_cell(self.topic)}",
            "",
            "| " + " | ".join(self.header()) + " |",
            "|" + "---|" * (len(self.columns) + 1),
        ]
        for row in self.rows:
            cells = [_md_cell(row.paper.title)]
            for column in self.columns:
                cell = row.cells[column]
                if not cell.text:
                    cells.append(EMPTY_MARK)
                elif column == "code":
                    cells.append(f"<{cell.text}>")
                else:
                    score = "" if cell.support is None or cell.support >= 0.9995 else f" *(support {cell.support:.2f})*"
                    cells.append(_md_cell(cell.text) + score)
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"{len(self.rows)} paper(s). Each cell quotes the paper's abstract verbatim; {EMPTY_MARK} marks a column "
            "the abstract does not fill; code links come from the paper's metadata.",
        ]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """CSV with a header row: id, title, then `<column>` and `<column>_support` pairs.
        Made to be opened in a spreadsheet, so every cell goes through
        :func:`spreadsheet_safe` (the Markdown and JSON renderings keep the text verbatim)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["id", "title"] + [name for c in self.columns for name in (c, f"{c}_support")])
        for row in self.rows:
            values: list[str] = [row.paper.id, row.paper.title]
            for column in self.columns:
                cell = row.cells[column]
                values += [cell.text, "" if cell.support is None else f"{cell.support:.4f}"]
            writer.writerow([spreadsheet_safe(value) for value in values])
        return buffer.getvalue()

    def verbatim_share(self) -> float:
        """Share of filled text cells whose text occurs verbatim in the row's abstract
        (1.0 by construction; benchmarks report it)."""
        filled = [(row, row.cells[c]) for row in self.rows for c in self.columns if c in TEXT_COLUMNS and row.cells[c].text]
        if not filled:
            return 1.0
        return sum(1 for row, cell in filled if cell.text in row.paper.abstract) / len(filled)


# A spreadsheet reads a cell starting with one of these as a formula (or, tab and CR,
# as whitespace it strips before looking again): OWASP "CSV Injection".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """The cell as a spreadsheet shows it as text: a title or abstract quote that starts
    like a formula (``=HYPERLINK(…)``, ``@SUM(…)``, ``-2+3``) gets a leading single quote, as
    OWASP advises, so opening the exported CSV never runs or links anything. Leading
    spaces are looked through: some spreadsheets trim them before parsing."""
    text = str(value)
    return "'" + text if text.lstrip(" ").startswith(_FORMULA_START) else text


def _md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes or line breaks."""
    return " ".join((text or "").split()).replace("|", "\\|")


def parse_columns(columns: str | Iterable[str] | None) -> list[str]:
    """Columns from "problem,method" or a list; unknown names are an InputError naming them."""
    if columns is None:
        return list(COLUMNS)
    items = columns.split(",") if isinstance(columns, str) else list(columns)
    chosen = [item.strip().lower() for item in items if item and item.strip()]
    unknown = [c for c in chosen if c not in COLUMNS]
    if unknown:
        raise InputError(f"unknown column(s) {', '.join(unknown)}: choose from {', '.join(COLUMNS)}")
    if not chosen:
        raise InputError(f"no columns given: choose from {', '.join(COLUMNS)}")
    return list(dict.fromkeys(chosen))


def build_table(
    library: Library,
    topic: str,
    *,
    n: int | None = None,
    columns: str | Iterable[str] | None = COLUMNS,
    settings: Settings | None = None,
) -> LiteratureTable:
    """The literature table of the `n` (default ``settings.table_papers``) papers most
    relevant to `topic`. Model-free: retrieval, the sentence index and the role classifier."""
    started = time.perf_counter()
    topic = " ".join((topic or "").split())
    if not topic:
        raise InputError("the topic is empty: say what the table should be about")
    chosen = parse_columns(columns)
    settings = library.calibrated(settings)
    topic = cap(topic, settings.max_question_chars)
    n = settings.table_papers if n is None else int(n)
    low, high = Settings.bounds("table_papers")
    if not low <= n <= high:
        raise InputError(f"n must be between {low:g} and {high:g}")
    table = LiteratureTable(topic, chosen)

    embedder = library.embedder
    vector = embedder.embed_one(topic)
    hits = library.search(topic, 2 * n, settings=settings, query_vector=vector)  # room for the off-topic ones left out
    scorer = relevance.RelevanceScorer(topic, vector, library.term_weights(), settings)
    kept = relevant_hits(hits, scorer, topic, settings)[:n]
    table.timings["retrieval_s"] = time.perf_counter() - started
    if not kept:
        return _abstain(table, hits, started)

    step = time.perf_counter()
    stored = _sentences(library, kept)
    role_vectors = _role_vectors(embedder)
    sources = SourceSet([h.paper for h in kept], embedder, stored=stored)
    verifier = Verifier(sources, settings.support_threshold)
    table.rows = [_row(sources[i + 1], hit, role_vectors, scorer) for i, hit in enumerate(kept)]
    _score_support(table.rows, sources, verifier, embedder)
    table.timings["cells_s"] = time.perf_counter() - step
    table.timings["total_s"] = time.perf_counter() - started
    return table


def relevant_hits(hits: Sequence[Hit], scorer: relevance.RelevanceScorer, topic: str, settings: Settings) -> list[Hit]:
    """The hits on the topic, in retrieval order. Nothing, unless the library answers the
    topic at all (relevance.answerable); then each paper must be on the topic itself
    (relevance.on_topic): sharing the topic's words or its broad area is not enough."""
    if not relevance.answerable(scorer, topic, hits):
        return []
    return [hit for hit in hits if relevance.on_topic(hit, scorer.best([hit]), settings)]


def _abstain(table: LiteratureTable, hits: Sequence[Hit], started: float) -> LiteratureTable:
    table.abstained = True
    table.nearest = sorted(hits, key=lambda h: -h.similarity)[:3]
    nearest = "; ".join(f"{h.paper.title} ({h.similarity:.2f})" for h in table.nearest)
    table.message = "No paper in the library is on this topic, so there is no table." + (f" Nearest titles: {nearest}." if nearest else "")
    table.timings["total_s"] = time.perf_counter() - started
    return table


def _role_vectors(embedder) -> np.ndarray:
    """The role descriptions' embeddings, made once per embedder and kept on it (like its
    sentence cache): every table uses the same four."""
    vectors = getattr(embedder, "table_role_vectors", None)
    if vectors is None:
        vectors = embedder.table_role_vectors = embedder.embed(list(TABLE_ROLE_PROMPTS.values()))
    return vectors


def _sentences(library: Library, hits: Sequence[Hit]) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each paper's sentences and vectors from the sentence index (search already read
    them for most hits); a store built before the index falls back to the sentence cache."""
    stored = {h.paper.id: (h.sentences, h.sentence_vectors) for h in hits if h.sentences and h.sentence_vectors is not None}
    missing = [h.paper.id for h in hits if h.paper.id not in stored]
    if missing:
        stored.update(library.store.sentences(missing))
    still = [h.paper for h in hits if h.paper.id not in stored]
    if still:
        stored.update(sentence_cache(library.embedder).get(still))
    return stored


def _row(source, hit: Hit, role_vectors: np.ndarray, scorer: relevance.RelevanceScorer) -> Row:
    """The cells of one paper: the role classifier's choices among its sentences
    (availability notices and links excluded: they are the code column's business)."""
    usable = [i for i, s in enumerate(source.sentences) if not is_boilerplate(s)]
    sentences = [source.sentences[i] for i in usable]
    vectors = source.vectors[usable] if usable else source.vectors[:0]
    penalty = np.array([_LEANS_BACK_PENALTY if _POINTS_BACK.search(s) else 0.0 for s in sentences])
    choices = choose_roles(
        sentences, vectors, role_vectors, roles=list(TABLE_ROLE_PROMPTS), rules=TABLE_RULES, shared=("data",), penalty=penalty
    )
    cells = {column: Cell() for column in COLUMNS}
    for role, choice in choices.items():
        text = choice.sentence
        if role == "data":
            used_elsewhere = any(c.sentence == choice.sentence for r, c in choices.items() if r != "data")
            if used_elsewhere or len(choice.sentence.split()) > _LONG_SENTENCE_WORDS:
                text = data_clause(choice.sentence)
            if used_elsewhere and text == choice.sentence:
                text = data_mention(choice.sentence)  # the same sentence twice in one row reads as a glitch
        cells[role] = Cell(text, None, choice.sentence)
    code = source.paper.code_url
    cells["code"] = Cell(code, None, "") if code else Cell()
    best = max((scorer.score(s, v) for s, v in zip(source.sentences, source.vectors)), default=hit.similarity)
    return Row(source.paper, cells, best)


def clause_spans(sentence: str) -> list[tuple[int, int]]:
    """(start, end) of each clause of the sentence (see _CLAUSE_BREAK)."""
    spans, start = [], 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(sentence)))
    return spans


def data_clause(sentence: str) -> str:
    """The clause(s) of the sentence that name its data (from the first clause holding a
    data cue to the last), a verbatim substring; the whole sentence when that clause is
    too short to stand alone."""
    cues = cue_spans("data", sentence)
    if not cues:
        return sentence
    clauses = [(a, b) for a, b in clause_spans(sentence) if any(a <= start < b for start, _ in cues)]
    if not clauses:
        return sentence
    text = sentence[clauses[0][0] : clauses[-1][1]].strip().rstrip(",;:").strip()
    return text if len(text.split()) >= _MIN_CLAUSE_WORDS else sentence


_LEADING_PREPOSITION = re.compile(r"^(on|across|over|using|with|in)\s+", re.IGNORECASE)
_DATA_NOUNS = re.compile(r"(\s+(data ?sets?|data|benchmarks?|corpus|corpora|suites?))+", re.IGNORECASE)
_MENTION_WORDS = 12  # a longer span runs across clauses: the first mention alone is quoted


def data_mention(sentence: str) -> str:
    """The words of the sentence that say what the data is: its named datasets ("CIFAR-10,
    CIFAR-100 and ImageNet"), else its data phrase ("several open benchmarks"). A verbatim
    substring, for a Data cell whose sentence already fills another cell of the row."""
    spans = named_dataset_spans(sentence) or cue_spans("data", sentence)
    if not spans:
        return sentence
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    if len(sentence[start:end].split()) > _MENTION_WORDS:
        start, end = spans[0]
    more = _DATA_NOUNS.match(sentence, end)  # "real-world benchmark| datasets"
    if more:
        end = more.end()
    if sentence[start:end].count("(") > sentence[start:end].count(")") and sentence[end : end + 1] == ")":
        end += 1  # "two datasets (CIFAR10, CIFAR100)"
    text = _LEADING_PREPOSITION.sub("", sentence[start:end].strip(" ,;:."))
    return text or sentence


def _score_support(rows: list[Row], sources: SourceSet, verifier: Verifier, embedder) -> None:
    """Support of every text cell against its own abstract, as citations are checked
    (Verifier.support): 1.0 for quoted text. A whole sentence, or a clause long enough for
    the verifier's quotation test, needs no new embedding (its sentence's stored vector
    stands in); only a short clause is embedded (all of the table's in one batch)."""
    clauses: list[tuple[int, str]] = []
    for n, row in enumerate(rows, start=1):
        source = sources[n]
        for column in TEXT_COLUMNS:
            cell = row.cells[column]
            if not cell.text:
                continue
            whole = cell.text == cell.sentence or len(normalize_title(cell.text)) > _QUOTE_TEST_CHARS
            if not whole and cell.text in source.paper.abstract:
                # A short verbatim mention ("ImageNet"): too short for the verifier's quotation
                # test, which guards generated text against chance matches, and quoted all the same.
                cell.support = 1.0
            elif whole and cell.sentence in source.sentences:
                cell.support = verifier.support(cell.text, source.vectors[source.sentences.index(cell.sentence)], n)[0]
            else:
                clauses.append((n, column))
    if clauses:
        vectors = embedder.embed([rows[n - 1].cells[column].text for n, column in clauses])
        for (n, column), vector in zip(clauses, vectors):
            cell = rows[n - 1].cells[column]
            cell.support = verifier.support(cell.text, vector, n)[0]
