"""BM25 indexes (abstract text and titles) persisted beside the Chroma store.

Local Chroma has no sparse index, so we keep our own with `bm25s`. It is rebuilt from
the store's rows after every successful ingest and tagged with the store's generation;
a mismatch (an ingest from another process, a crash between the two writes) triggers
a rebuild on load, so the two never silently disagree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bm25s
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """English stop words removed and Snowball-stemmed: what makes BM25 strong on SciFact."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


@dataclass
class _Field:
    retriever: bm25s.BM25 | None

    @classmethod
    def build(cls, texts: list[str]) -> "_Field":
        tokens = tokenize(texts)
        if not any(tokens):
            return cls(None)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def search(self, query: str, n: int, size: int) -> list[tuple[int, float]]:
        if self.retriever is None or size == 0:
            return []
        query_tokens = [t for t in tokenize([query])[0] if t in self.retriever.vocab_dict]
        if not query_tokens:
            return []
        indices, scores = self.retriever.retrieve([query_tokens], k=min(n, size), show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(indices[0], scores[0]) if s > 0]


class LexicalIndex:
    """BM25 over documents and over titles, addressed by paper id."""

    def __init__(self, ids: list[str], body: _Field, title: _Field, generation: str) -> None:
        self.ids = ids
        self.body = body
        self.title = title
        self.generation = generation

    @classmethod
    def build(cls, ids: list[str], documents: list[str], titles: list[str], generation: str) -> "LexicalIndex":
        return cls(list(ids), _Field.build(documents), _Field.build(titles), generation)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        return [(self.ids[i], s) for i, s in self.body.search(query, n, len(self.ids))]

    def search_titles(self, query: str, n: int) -> list[tuple[str, float]]:
        return [(self.ids[i], s) for i, s in self.title.search(query, n, len(self.ids))]

    # --- persistence ---------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write to a temporary sibling, then swap it in: a crash never leaves half an index."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".bm25-", dir=directory.parent))
        try:
            for name, field in (("body", self.body), ("title", self.title)):
                if field.retriever is not None:
                    field.retriever.save(str(staging / name))
            manifest = {"generation": self.generation, "ids": self.ids}
            (staging / "manifest.json").write_text(json.dumps(manifest))
            retired = directory.with_name(directory.name + ".old")
            if directory.exists():
                os.replace(directory, retired)
            os.replace(staging, directory)
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex | None":
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            fields = {}
            for name in ("body", "title"):
                path = directory / name
                fields[name] = _Field(bm25s.BM25.load(str(path)) if path.exists() else None)
        except (OSError, ValueError, KeyError):
            return None  # unreadable: the caller rebuilds it from the store
        return cls(manifest["ids"], fields["body"], fields["title"], manifest["generation"])


def index_dir(store_dir: Path, location: str, collection: str) -> Path:
    """One BM25 directory per (store location, collection): local and remote stores never share."""
    tag = hashlib.sha1(f"{location}|{collection}".encode()).hexdigest()[:10]
    return store_dir / "bm25" / f"{collection}-{tag}"

