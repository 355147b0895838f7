"""The paper record every reader produces and every other module consumes."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field

_URL_RE = re.compile(r"https?://[^\s<>\"'()\[\]{}]+")
_TRAILING_PUNCT = ".,;:!?)]}'\"*"


def normalize_title(title: str) -> str:
    """Lower-case, accent-free, punctuation-free title: two dumps of the same paper agree on it."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def paper_id(title: str) -> str:
    """A stable id from the normalized title, so re-ingesting or merging dumps keeps ids."""
    digest = hashlib.sha1(normalize_title(title).encode("utf-8")).hexdigest()
    return f"p-{digest[:12]}"


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
        self.title = " ".join(self.title.split())
        self.abstract = " ".join(self.abstract.split())
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
