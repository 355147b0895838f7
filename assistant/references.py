"""Reference lists in the formats researchers paste elsewhere: BibTeX, Markdown, plain text.

Answers, summaries and citation lookup all export their references through
:func:`format_references`, so a paper is written the same way wherever it comes from.

BibTeX entries are ``@misc`` records (the corpus holds listing pages, not venues) with a
stable key (first significant title word + page date label/year + a short hash of the
paper id: the same across runs and machines), the title with LaTeX special characters
escaped, the code/project link as ``url`` and a ``note`` naming the source page(s) and
date label. They parse back with bibtexparser 2.x.
"""

from __future__ import annotations

import hashlib
import re

from .errors import InputError
from .records import Paper, normalize_title

FORMATS = ("bibtex", "markdown", "text")
_ALIASES = {"bib": "bibtex", "md": "markdown", "txt": "text", "plain": "text"}

# Words that make a poor citation key on their own.
_KEY_STOPWORDS = frozenset(
    "a an the on of in for to and or with via from by at as is are be its into towards toward "
    "how what when why which do does can we our using use new".split()
)

# LaTeX special characters in BibTeX text fields (braces are handled separately).
_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\textdollar{}",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def normalize_format(fmt: str | None, default: str = "markdown") -> str:
    """'bib' -> 'bibtex', 'md' -> 'markdown', ...; a ValueError names the valid choices."""
    value = (fmt or default).strip().lower()
    value = _ALIASES.get(value, value)
    if value not in FORMATS:
        raise InputError(f"unknown reference format {fmt!r}: use one of {', '.join(FORMATS)}")
    return value


def format_for_path(path: str, fmt: str | None = None) -> str:
    """The export format: from the file suffix (.bib → bibtex, .md → markdown) when it
    names one, else the format given, else text."""
    suffix = str(path).lower().rsplit(".", 1)[-1] if "." in str(path) else ""
    by_suffix = {"bib": "bibtex", "bibtex": "bibtex", "md": "markdown", "markdown": "markdown", "txt": "text"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    return normalize_format(fmt) if fmt else "text"


# --- BibTeX -------------------------------------------------------------------------------


def _braces_balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def latex_escape(text: str) -> str:
    """Escape text for a brace-delimited BibTeX field; the result is always brace-balanced."""
    balanced = _braces_balanced(text)
    out: list[str] = []
    for ch in text:
        if ch in "{}":
            if balanced:
                out.append("\\" + ch)  # \{ \} keep the field balanced, and decode back to { }
            else:
                out.append(r"\textbraceleft{}" if ch == "{" else r"\textbraceright{}")
        else:
            out.append(_LATEX_ESCAPES.get(ch, ch))
    return " ".join("".join(out).split())


def _url_field(url: str) -> str:
    """URLs go in verbatim (url fields are not LaTeX-decoded), only braces/space encoded."""
    return url.replace("{", "%7B").replace("}", "%7D").replace(" ", "%20")


def _date_label(paper: Paper) -> str:
    return " ".join((paper.date or "").split())


def bibtex_key(paper: Paper) -> str:
    """Stable key, e.g. ``convergent_mar13_5f2a9c``: first significant title word, the
    year and/or page date label when known, and a short hash of the paper id."""
    words = normalize_title(paper.title).split()
    word = next((w for w in words if w not in _KEY_STOPWORDS and len(w) > 2), words[0] if words else "paper")
    word = word[:24]
    parts = [word]
    year = re.sub(r"[^0-9]", "", paper.year or "")
    if year:
        parts.append(year)
    label = re.sub(r"[^a-z0-9]", "", _date_label(paper).lower())
    if label and label != year:
        parts.append(label)
    parts.append(hashlib.sha1(paper.id.encode("utf-8")).hexdigest()[:6])
    return "_".join(parts)


def _note(paper: Paper) -> str:
    pieces = []
    if paper.sources:
        pieces.append("Listed in " + ", ".join(paper.sources))
    label = _date_label(paper)
    if label:
        pieces.append(f"page date {label}")
    pieces.append(f"id {paper.id}")
    return "; ".join(pieces)


def bibtex_entry(paper: Paper) -> str:
    """One ``@misc`` entry; fields with no value are left out."""
    fields: list[tuple[str, str]] = [("title", latex_escape(paper.title))]
    if paper.authors:
        fields.append(("author", latex_escape(paper.authors)))
    year = re.sub(r"[^0-9]", "", paper.year or "")
    if year:
        fields.append(("year", year))
    url = paper.code_url or paper.url
    if url:
        fields.append(("url", _url_field(url)))
    if paper.url and paper.url != url:
        fields.append(("howpublished", r"\url{" + _url_field(paper.url) + "}"))
    fields.append(("note", latex_escape(_note(paper))))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{bibtex_key(paper)},\n{body}\n}}"


# --- Markdown and text ---------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def markdown_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _listing(paper: Paper) -> str:
    label = _date_label(paper)
    sources = ", ".join(paper.sources)
    if label and sources:
        return f"{label} ({sources})"
    return label or sources


def markdown_reference(paper: Paper, n: int) -> str:
    parts = [f"[{n}] **{markdown_escape(paper.title)}**"]
    url = paper.code_url or paper.url
    if url:
        parts.append(f"code: <{url}>")
    listing = _listing(paper)
    if listing:
        parts.append(f"listed {markdown_escape(listing)}")
    parts.append(f"id: `{paper.id}`")
    return "- " + " — ".join(parts)


def text_reference(paper: Paper, n: int) -> str:
    parts = [f"[{n}] {paper.title}"]
    url = paper.code_url or paper.url
    if url:
        parts.append(f"code: {url}")
    listing = _listing(paper)
    if listing:
        parts.append(f"listed {listing}")
    parts.append(f"id: {paper.id}")
    return " — ".join(parts)


def format_reference(paper: Paper, fmt: str, n: int = 1) -> str:
    """One paper as reference number `n` in the given format."""
    fmt = normalize_format(fmt)
    if fmt == "bibtex":
        return bibtex_entry(paper)
    if fmt == "markdown":
        return markdown_reference(paper, n)
    return text_reference(paper, n)


def format_references(papers: list[Paper], fmt: str) -> str:
    """Papers numbered 1..m in the order given (reference order), in `fmt`
    (bibtex | markdown | text). BibTeX entries are separated by blank lines."""
    fmt = normalize_format(fmt)
    separator = "\n\n" if fmt == "bibtex" else "\n"
    return separator.join(format_reference(paper, fmt, n) for n, paper in enumerate(papers, start=1))
