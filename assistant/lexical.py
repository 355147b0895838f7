"""BM25 indexes (abstract text and titles) persisted beside the Chroma store.

Local Chroma has no sparse index, so we keep our own with `bm25s`. It is rebuilt from
the store's rows after every successful ingest and tagged with the store's generation;
a mismatch (an ingest from another process, a crash between the two writes) triggers
a rebuild on load, so the two never silently disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from .text import QUESTION_SCAFFOLDING, STEMMER



def tokenize(texts: list[str]) -> list[list[str]]:
    """English stop words removed and Snowball-stemmed: what makes BM25 strong on SciFact."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=STEMMER, return_ids=False, show_progress=False)


def query_terms(query: str) -> list[str]:
    """The query's BM25 terms without question scaffolding ("how can I", "which paper",
    "is there any work on"): words that say how a person asks, not what about, and that
    would otherwise reward abstracts for saying "we propose a method"."""
    return [term for term in tokenize([query])[0] if term not in QUESTION_SCAFFOLDING]


def _column_max(scores: dict) -> np.ndarray:
    """Best precomputed BM25 score of each term over all documents (0 for unused terms)."""
    data, indptr = np.asarray(scores["data"]), np.asarray(scores["indptr"])
    counts = np.diff(indptr)
    best = np.zeros(len(counts), dtype=np.float32)
    nonempty = counts > 0
    if data.size and nonempty.any():
        best[nonempty] = np.maximum.reduceat(data, indptr[:-1][nonempty])
    return best


@dataclass
class _Field:
    retriever: bm25s.BM25 | None
    _term_max: np.ndarray | None = None

    @classmethod
    def build(cls, texts: list[str]) -> "_Field":
        tokens = tokenize(texts)
        if not any(tokens):
            return cls(None)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def query_tokens(self, query: str) -> list[str]:
        if self.retriever is None:
            return []
        return [t for t in query_terms(query) if t in self.retriever.vocab_dict]

    def search(self, query: str, n: int, size: int) -> list[tuple[int, float]]:
        if self.retriever is None or size == 0:
            return []
        query_tokens = self.query_tokens(query)
        if not query_tokens:
            return []
        indices, scores = self.retriever.retrieve([query_tokens], k=min(n, size), show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(indices[0], scores[0]) if s > 0]

    def ceiling(self, query: str) -> float:
        """What a document matching the whole query would score: hybrid fusion divides
        BM25 scores by it, so they read as the share of the query's terms matched.

        Each known query term (repeats included, as BM25 scores them) counts with its
        best score in any document, so no document scores above the ceiling. A term the
        index has never seen counts as a term found once, in one average-length
        document: a query whose words are mostly absent from the corpus keeps its few
        incidental matches small instead of having them stretched to a full match.
        0 when no query term is known (BM25 then has no candidates at all).
        """
        if self.retriever is None:
            return 0.0
        tokens = query_terms(query)
        vocab = self.retriever.vocab_dict
        known = [vocab[t] for t in tokens if t in vocab]
        if not known:
            return 0.0
        if self._term_max is None:
            self._term_max = _column_max(self.retriever.scores)
        n_docs = int(self.retriever.scores["num_docs"])
        k1 = float(getattr(self.retriever, "k1", 1.5))
        unseen = math.log(1 + (n_docs - 0.5) / 1.5) / (1 + k1)  # Lucene idf at df=1, tf=1, average length
        return float(self._term_max[known].sum()) + unseen * (len(tokens) - len(known))


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

    def ceiling(self, query: str) -> float:
        """Upper bound of any body score for this query (see `_Field.ceiling`)."""
        return self.body.ceiling(query)

    def title_ceiling(self, query: str) -> float:
        return self.title.ceiling(query)

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

