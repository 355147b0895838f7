"""Turn files into paper records: Hugging Face daily-papers dumps, JSON/JSONL, CSV, BibTeX.

A reader never raises for one bad record: it reports a :class:`Problem` naming the file
and line and goes on, so one typo cannot keep a researcher's other 500 papers out.
A file that cannot be read at all raises :class:`UnreadableFile`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UnreadableFile
from .records import Paper, abstracts_agree, garbage_reason, normalize_title

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".bib")

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_DATE_LABEL = re.compile(rf"^(?:{_MONTHS})[a-z]* \d{{1,2}}(?:, \d{{4}})?$")
_FURNITURE_EXACT = {"new", "subscribe", "byak and the research community"}
_FURNITURE_PREFIXES = ("get trending papers",)
_LONGEST_TITLE = 400  # a "title" longer than this is really a continued abstract paragraph


@dataclass
class Problem:
    """A record that was skipped, with where it is so the user can fix it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class ReadResult:
    papers: list[Paper]
    problems: list[Problem]  # skipped records; their files' other records were read
    files: list[str]  # files read
    errors: list[str]  # files that could not be read at all, each message naming the file


def read_paths(paths: Iterable[str | Path]) -> ReadResult:
    """Read files and directories (walked recursively), merging repeated papers by id.

    A file that cannot be read is reported in `errors` and the others are still read:
    the caller decides whether that is fatal (the CLI: only when nothing was read).
    """
    merged: dict[str, Paper] = {}
    problems: list[Problem] = []
    files: list[str] = []
    errors: list[str] = []
    for file in _expand(paths, errors):
        try:
            papers, file_problems = read_file(file)
        except UnreadableFile as exc:
            errors.append(str(exc))
            continue
        files.append(str(file))
        problems.extend(file_problems)
        for paper in papers:
            known = merged.get(paper.id)
            if known is None:
                merged[paper.id] = paper
            elif not abstracts_agree(known.abstract, paper.abstract):  # two papers under one id: report, never merge
                if normalize_title(known.title) == normalize_title(paper.title):
                    message = f"{paper.title[:80]!r} appears again with a different abstract; kept the first, skipped this one (id {paper.id})"
                else:
                    message = f"id {paper.id!r} is already used by {known.title[:80]!r}; skipped {paper.title[:80]!r}"
                problems.append(Problem(str(file), 0, message))
            else:
                known.merge(paper)  # the same paper listed again (another dump, another file, a corrected title)
    return ReadResult(list(merged.values()), problems, files, errors)


def _expand(paths: Iterable[str | Path], errors: list[str]) -> Iterator[Path]:
    """Files to read, in order. A path that cannot be looked at (no permission, a
    symlink loop) is one error and the other paths are still read; in a directory, any
    entry with a paper-file suffix that is not a directory is yielded, so that a FIFO or a
    broken link there is reported by read_file rather than silently left out."""
    for raw in paths:
        path = Path(raw)
        try:
            is_dir = stat.S_ISDIR(path.stat().st_mode)
        except FileNotFoundError:
            errors.append(f"{path}: no such file or directory")
            continue
        except OSError as exc:
            errors.append(f"{path}: cannot read ({exc.strerror or exc}); skipped")
            continue
        if not is_dir:
            yield path
            continue
        try:
            children = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES and not p.is_dir())
        except OSError as exc:
            errors.append(f"{path}: cannot read the directory ({exc.strerror or exc}); skipped")
            continue
        yield from children


def read_file(path: Path) -> tuple[list[Paper], list[Problem]]:
    """Dispatch on the suffix; unknown types are an error rather than a silent skip."""
    suffix = path.suffix.lower()
    readers = {
        ".txt": read_daily_papers_dump,
        ".jsonl": read_jsonl,
        ".json": read_json,
        ".csv": read_csv,
        ".bib": read_bibtex,
    }
    if suffix not in readers:
        raise UnreadableFile(
            f"{path}: unknown file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        # Only regular files: opening a FIFO (or a device) named like a paper file would
        # wait forever for a writer.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UnreadableFile(f"{path}: not a regular file (a FIFO, socket or device); skipped")
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot read ({exc.strerror})") from exc
    return readers[suffix](text, path.name)


# --- Hugging Face daily-papers page dumps ------------------------------------------


def _is_furniture(line: str) -> bool:
    lowered = line.lower()
    return lowered in _FURNITURE_EXACT or lowered.startswith(_FURNITURE_PREFIXES)


def read_daily_papers_dump(text: str, source: str) -> tuple[list[Paper], list[Problem]]:
    """Parse a copied daily-papers page into (title, abstract) pairs.

    Both layouts seen in the wild reduce to "non-furniture lines alternate title,
    abstract" once blank lines are dropped; the first title may be glued to the
    page's `Subscribe` button text.
    """
    date = ""
    content: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or _is_furniture(line):
            continue
        if _DATE_LABEL.match(line):
            date = date or line
            continue
        if line.startswith("Subscribe") and not content:
            line = line[len("Subscribe") :].strip()
            if not line:
                continue
        content.append((number, line))

    papers: list[Paper] = []
    problems: list[Problem] = []
    index = 0
    while index < len(content):
        title_line, title = content[index]
        if len(title) > _LONGEST_TITLE and papers:
            # A second paragraph of the previous abstract, not a new title.
            papers[-1].abstract += " " + title
            index += 1
            continue
        if index + 1 >= len(content):
            problems.append(Problem(source, title_line, f"title without an abstract: {title[:80]!r}"))
            break
        _, abstract = content[index + 1]
        garbage = garbage_reason("title", title) or garbage_reason("abstract", abstract)
        if garbage:
            problems.append(Problem(source, title_line, garbage))
        else:
            papers.append(Paper(title=title, abstract=abstract, sources=[source], date=date))
        index += 2
    # Papers keep the page date even when the label comes after the first titles.
    for paper in papers:
        paper.date = paper.date or date
    return papers, problems


# --- structured formats -------------------------------------------------------------


def _paper_from_mapping(data: object, source: str, line: int) -> Paper | Problem:
    if not isinstance(data, dict):
        return Problem(source, line, f"expected an object with title and abstract, got {type(data).__name__}")
    title = str(data.get("title") or "").strip()
    abstract = str(data.get("abstract") or data.get("text") or "").strip()
    missing = [name for name, value in (("title", title), ("abstract", abstract)) if not value]
    if missing:
        return Problem(source, line, f"missing {' and '.join(missing)}")
    garbage = garbage_reason("title", title) or garbage_reason("abstract", abstract)
    if garbage:
        return Problem(source, line, garbage)
    authors = data.get("authors") or data.get("author") or ""  # BibTeX says "author"
    if isinstance(authors, list):
        authors = "; ".join(str(a) for a in authors)
    return Paper(
        title=title,
        abstract=abstract,
        id=str(data.get("id") or data.get("_id") or ""),
        sources=[source],
        authors=str(authors),
        year=str(data.get("year") or ""),
        url=str(data.get("url") or ""),
        date=str(data.get("date") or ""),
    )


def _collect(items: Iterable[tuple[int, object]], source: str) -> tuple[list[Paper], list[Problem]]:
    papers: list[Paper] = []
    problems: list[Problem] = []
    for line, data in items:
        result = _paper_from_mapping(data, source, line)
        (problems if isinstance(result, Problem) else papers).append(result)
    return papers, problems


def read_jsonl(text: str, source: str) -> tuple[list[Paper], list[Problem]]:
    papers: list[Paper] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(source, number, f"invalid JSON: {exc.msg}"))
            continue
        more_papers, more_problems = _collect([(number, data)], source)
        papers += more_papers
        problems += more_problems
    return papers, problems


def read_json(text: str, source: str) -> tuple[list[Paper], list[Problem]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if isinstance(data, dict):
        data = data.get("papers", [data])
    if not isinstance(data, list):
        raise UnreadableFile(f"{source}: expected a list of papers or an object with a 'papers' list")
    # JSON arrays carry no per-item line; report the item's position (1-based) instead.
    return _collect(enumerate(data, start=1), source)


def read_csv(text: str, source: str) -> tuple[list[Paper], list[Problem]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"title", "abstract"} <= {f.strip().lower() for f in reader.fieldnames}:
        raise UnreadableFile(f"{source}: CSV needs 'title' and 'abstract' columns, found {reader.fieldnames}")
    rows: list[tuple[int, object]] = []
    try:
        for row in reader:
            normalized = {(k or "").strip().lower(): (v or "") for k, v in row.items() if k is not None}
            rows.append((reader.line_num, normalized))
    except csv.Error as exc:
        raise UnreadableFile(f"{source}: malformed CSV at line {reader.line_num}: {exc}") from exc
    return _collect(rows, source)


def read_bibtex(text: str, source: str) -> tuple[list[Paper], list[Problem]]:
    import bibtexparser

    library = bibtexparser.parse_string(text)
    problems = [
        Problem(source, block.start_line + 1, f"unparsable BibTeX: {block.error if hasattr(block, 'error') else block.raw[:60]!r}")
        for block in library.failed_blocks
    ]
    items: list[tuple[int, object]] = []
    for entry in library.entries:
        fields = {field.key.lower(): _strip_braces(str(field.value)) for field in entry.fields}
        items.append((entry.start_line + 1, fields))
    papers, more = _collect(items, source)
    return papers, problems + more


def _strip_braces(value: str) -> str:
    return " ".join(value.replace("{", "").replace("}", "").split())
