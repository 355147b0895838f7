"""The paper record every reader produces and every other module consumes."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field

from .text import neutralize

_URL_RE = re.compile(r"https?://[^\s<>\"'()\[\]{}]+")
_TRAILING_PUNCT = ".,;:!?)]}'\"*"


def normalize_title(title: str) -> str:
    """Case-folded, punctuation-free title: two dumps of the same paper agree on it.
    Letters of every script are kept (a Chinese or Greek title is not reduced to nothing;
    "α-" and "β-" stay different), and so are the marks that make letters of other scripts
    (Japanese voicing marks, Devanagari viramas, Hebrew points: かき and かぎ are two
    words). Accents on Latin letters are dropped ("Poincaré" = "Poincare"), so for ASCII
    and accented-Latin titles this is lower-case alphanumerics, as it always was, and
    existing ids are unchanged."""
    return _normalize(title, keep_marks=True)


def _normalize(title: str, keep_marks: bool) -> str:
    if not keep_marks:  # the id function before 2026-11-24, exactly (earlier_paper_ids)
        text = unicodedata.normalize("NFKD", title)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = unicodedata.normalize("NFKC", text).casefold()
        return " ".join(re.sub(r"[\W_]+", " ", text).split())
    kept: list[str] = []
    base_is_ascii = True
    for ch in unicodedata.normalize("NFKD", title):
        if unicodedata.combining(ch):
            if not base_is_ascii:
                kept.append(ch)
            continue
        base_is_ascii = ch.isascii()
        kept.append(ch)
    text = unicodedata.normalize("NFKC", "".join(kept)).casefold()
    # Letters, digits and marks make words; everything else (punctuation, "_") separates.
    text = "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text)
    return " ".join(text.split())


# Letters, marks (Devanagari vowel signs, Japanese voicing marks: part of words), digits,
# punctuation, spaces, math and currency signs.
_TEXT_CATEGORIES = ("L", "M", "N", "P", "Zs", "Sm", "Sc")


def garbage_reason(field: str, value: str) -> str | None:
    """Why a title or abstract is not text (None when it is): control characters such as
    NUL, no letters at all, or mostly symbols and unassigned code points (binary or random
    data decoded as text). Real titles and abstracts in any script pass."""
    # Counted per distinct character (an abstract has ~80): 4x faster than per character.
    counts = Counter(value)
    # C0 controls (NUL, \x01…) mean binary data; stray C1 controls (\x80–\x9f) are a common
    # mis-decoding of real text and are only dropped (see text.neutralize).
    controls = sum(n for ch, n in counts.items() if ord(ch) < 32 and ch not in "\t\n\r\x0b\x0c")
    if controls:
        return f"{field} contains {controls} control character(s) (NUL or similar): not text"
    visible = {ch: n for ch, n in counts.items() if not ch.isspace()}
    if not any(ch.isalpha() for ch in visible):
        return f"{field} has no letters"
    total = sum(visible.values())
    textual = sum(n for ch, n in visible.items() if unicodedata.category(ch).startswith(_TEXT_CATEGORIES))
    letters = sum(n for ch, n in visible.items() if ch.isalpha() or unicodedata.category(ch).startswith("M"))
    if textual < 0.9 * total or letters < 0.4 * total:
        return f"{field} is mostly symbols or unassigned characters ({letters} letters of {total}): not text"
    return None


def paper_id(title: str) -> str:
    """A stable id from the normalized title, so re-ingesting or merging dumps keeps ids."""
    return _id_of(normalize_title(title))


def _id_of(normalized: str) -> str:
    return f"p-{hashlib.sha1(normalized.encode('utf-8')).hexdigest()[:12]}"


def earlier_paper_ids(title: str) -> list[str]:
    """The ids earlier id functions gave this title, where they differ from today's
    :func:`paper_id`: the ASCII-only one (letters outside a-z dropped after removing
    accents) and the one that dropped every combining mark. Stores built with them keep
    such ids; ingest moves them to today's (Library._rekey_legacy_ids). Empty for an
    ASCII or accented-Latin title, whose id never changed."""
    today = paper_id(title)
    marks_dropped = _id_of(_normalize(title, keep_marks=False))
    return [old for old in dict.fromkeys((legacy_paper_id(title), marks_dropped)) if old != today]


def legacy_paper_id(title: str) -> str:
    """The id the first, ASCII-only id function gave this title (letters outside a-z
    dropped after removing accents). For an ASCII title it equals paper_id(title)."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())
    return _id_of(text)


# Distinct papers of the shipped corpus share at most 0.55 of their stemmed content words
# (the smaller abstract's; median 0.18 over 20,000 random pairs), the repeats of one paper
# across its dumps all of them, and two versions of one paper under two titles 0.90.
SAME_ABSTRACT_SHARE = 0.6


def abstracts_agree(a: str, b: str) -> bool:
    """Are these two texts of one abstract (another dump, a truncated or corrected
    version), rather than two papers' abstracts? A missing one contradicts nothing."""
    from .lexical import tokenize  # bm25s: loaded only when two records meet

    x, y = (set(terms) for terms in tokenize([a, b]))
    if not x or not y:
        return True
    return len(x & y) / min(len(x), len(y)) >= SAME_ABSTRACT_SHARE


def extract_urls(text: str) -> list[str]:
    """Code/project links mentioned in an abstract, trailing punctuation stripped, in order, unique."""
    urls: list[str] = []
    for match in _URL_RE.finditer(text):
        url = match.group(0).rstrip(_TRAILING_PUNCT)
        if url and url not in urls and len(url) > len("https://x.y"):
            urls.append(url)
    return urls


@dataclass
class Paper:
    """One paper: what is embedded (title + abstract) and what is shown and cited."""

    title: str
    abstract: str
    id: str = ""
    urls: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    date: str = ""
    authors: str = ""
    year: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        # Sources are data: their own "[4]" markers and any prompt delimiters are neutralized
        # once, here, so no job ever quotes them to the model or shows them as citations.
        self.title = neutralize(self.title)
        self.abstract = neutralize(self.abstract)
        if not self.id:
            self.id = paper_id(self.title)
        if not self.urls:
            self.urls = extract_urls(self.abstract)

    @property
    def code_url(self) -> str:
        """The first code or project link: what a researcher clicks to reproduce a result."""
        for url in self.urls:
            if "github.com" in url or "gitlab" in url:
                return url
        return self.urls[0] if self.urls else ""

    @property
    def document(self) -> str:
        """The text that is embedded and indexed."""
        return f"{self.title}. {self.abstract}"

    @property
    def content_hash(self) -> str:
        """Changes only when the embedded text changes, so metadata-only updates skip embedding."""
        return hashlib.sha256(self.document.encode("utf-8")).hexdigest()[:16]

    def merge(self, other: "Paper") -> None:
        """Fold a repeat of this paper (another dump, another file) into this record."""
        for source in other.sources:
            if source not in self.sources:
                self.sources.append(source)
        for url in other.urls:
            if url not in self.urls:
                self.urls.append(url)
        if len(other.abstract) > len(self.abstract):
            self.abstract = other.abstract
        for name in ("date", "authors", "year", "url"):
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))

    def to_metadata(self) -> dict[str, str | int | float | bool]:
        """Flat Chroma metadata: scalars for filtering, the full record as JSON for display."""
        meta: dict[str, str | int | float | bool] = {
            "title": self.title,
            "date": self.date,
            "has_code": bool(self.code_url),
            "code_url": self.code_url,
            "content_hash": self.content_hash,
            "record": json.dumps(asdict(self), ensure_ascii=False),
        }
        for source in self.sources:
            meta[source_key(source)] = True
        return meta

    @classmethod
    def from_metadata(cls, meta: dict) -> "Paper":
        return cls(**json.loads(meta["record"]))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["code_url"] = self.code_url
        return data


def source_key(source: str) -> str:
    """Metadata key marking membership of one source file (Chroma metadata holds no lists)."""
    return f"src:{source}"


def another_paper(stored: Paper, incoming: Paper) -> bool:
    """Is `incoming`, under a stored paper's id, a different paper rather than a new
    version of it? Only an explicit id can be reused that way (a title's id changes with
    the title): a different title with a different abstract. A corrected title (same
    abstract) or an edited abstract (same title) is an update."""
    return (
        incoming.id != paper_id(incoming.title)
        and normalize_title(stored.title) != normalize_title(incoming.title)
        and not abstracts_agree(stored.abstract, incoming.abstract)
    )
