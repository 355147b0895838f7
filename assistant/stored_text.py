"""Where a row's text is kept in Chroma: not in its document.

Chroma indexes every document twice, for a full-text search this product never uses
(BM25 is its own, lexical.py): an SQLite FTS5 trigram index and a metadata b-tree. In the
100,000-paper store those held about 1.5 GB of the 2.7 GB database, and writing them was
half of Chroma's write time (1,000 papers into an empty store: 10 s against 5 s). So a paper row is written with an empty document (its text is
``Paper.document``, rebuilt from the record its metadata already carries) and a sentence
row with its text as a metadata string, which only the b-tree indexes.

Rows are converted here, at the store's edge: everywhere else a row's ``document`` is its
text. Rows written before (text in the document) are read as they always were.
"""

from __future__ import annotations

from .records import Paper
from .writes import Rows

SENTENCE_TEXT_KEY = "text"


def paper_document(document: str | None, metadata: dict | None) -> str:
    """A stored paper row's text: its document, or rebuilt from its record."""
    if document:
        return document
    try:
        return Paper.from_metadata(metadata or {}).document
    except (KeyError, TypeError, ValueError):
        return document or ""


def papers_for_store(rows: Rows) -> Rows:
    """Paper rows as written: the document left empty where the record rebuilds it exactly
    (any other row keeps its document, so nothing is lost)."""
    documents = [
        "" if document and paper_document("", meta) == document else document
        for document, meta in zip(rows.documents, rows.metadatas)
    ]
    return Rows(rows.ids, rows.embeddings, documents, rows.metadatas)


def sentence_text(document: str | None, metadata: dict | None) -> str:
    """A stored sentence row's text: its document (rows written before), or its metadata's."""
    return document or str((metadata or {}).get(SENTENCE_TEXT_KEY) or "")


def sentences_for_store(rows: Rows) -> Rows:
    """Sentence rows as written: the text in the metadata, the document empty."""
    metadatas = [{**meta, SENTENCE_TEXT_KEY: document} for document, meta in zip(rows.documents, rows.metadatas)]
    return Rows(rows.ids, rows.embeddings, [""] * len(rows.ids), metadatas)


def without_text(metadata: dict) -> dict:
    """A sentence row's metadata as the rest of the code knows it (paper id and position)."""
    return {key: value for key, value in metadata.items() if key != SENTENCE_TEXT_KEY}
