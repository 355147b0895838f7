"""Reading the sentence index: ids, counts, and rows by id or by paper.

A sentence's id is `<paper id>:s<position>`, positions 0..n-1, and its paper's row
records n (SENTENCE_COUNT_KEY), so a paper's sentences can be read by id, a primary-key
lookup, instead of through a metadata filter (see read_rows)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .stored_text import sentence_text, without_text
from .writes import WRITE_BATCH, Rows

SENTENCE_COUNT_KEY = "sentences"  # paper rows: how many sentence rows (positions 0..n-1) the paper has


def sentence_id(paper_id: str, position: int) -> str:
    return f"{paper_id}:s{position}"


def paper_of(sentence: str) -> str:
    """The paper id in a sentence id (the last ':s' is the separator: a paper id may hold one)."""
    return sentence.rsplit(":s", 1)[0]


def sentence_metadata(sentence: str) -> dict:
    """The metadata every sentence row holds, from its id."""
    position = sentence.rsplit(":s", 1)[1]
    return {"paper_id": paper_of(sentence), "position": int(position)}


def sentence_vectors(collection, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """paper id -> its sentences' vectors (abstract order), read by id without their text or
    metadata: re-ranking needs only the vectors, and at 100,000 papers reading the text of
    the ~800 sentences re-ranked per search cost 14 ms and their metadata 7 ms more."""
    ids = [sentence_id(id, position) for id, count in counts.items() for position in range(count)]
    grouped: dict[str, list[tuple[int, np.ndarray]]] = {}
    for start in range(0, len(ids), WRITE_BATCH):
        found = collection.get(ids=ids[start : start + WRITE_BATCH], include=["embeddings"])
        for id, vector in zip(found["ids"], found["embeddings"]):
            meta = sentence_metadata(id)
            grouped.setdefault(meta["paper_id"], []).append((meta["position"], vector))
    return {
        paper: np.stack([vector for _, vector in sorted(items, key=lambda item: item[0])]).astype(np.float32)
        for paper, items in grouped.items()
    }


def counts_of(metadatas: dict[str, dict]) -> dict[str, int]:
    """Sentence counts from paper rows, for those that record one."""
    return {id: meta[SENTENCE_COUNT_KEY] for id, meta in metadatas.items() if isinstance(meta.get(SENTENCE_COUNT_KEY), int)}


def read_rows(collection, paper_ids: Sequence[str], with_embeddings: bool = False, counts: dict[str, int] | None = None) -> Rows:
    """Stored sentences of these papers (any order), from the sentence `collection`.

    Without `counts`: every row the paper-id filter finds, which writes, rollbacks and
    repairs need (a row no count names is found too). With `counts` (paper id -> how
    many sentences its row records): the named papers' sentences read by their ids, 10x
    faster than the filter at 700,000 sentences (7 ms against 77 ms for 30 papers), which
    is how evidence is read; papers missing from `counts` (rows written before counts
    were kept) go through the filter."""
    rows = Rows()
    include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
    ids = list(dict.fromkeys(paper_ids))
    counts = counts if counts is not None else {}
    by_id = [sentence_id(id, position) for id in ids if id in counts for position in range(counts[id])]
    unknown = [id for id in ids if id not in counts]

    def add(found) -> None:
        embeddings = found.get("embeddings") if with_embeddings else None
        for index, id in enumerate(found["ids"]):
            vector = embeddings[index] if embeddings is not None else np.zeros(0)
            meta = found["metadatas"][index] or {}
            rows.add(id, vector, sentence_text(found["documents"][index], meta), without_text(meta) or sentence_metadata(id))

    for start in range(0, len(by_id), WRITE_BATCH):
        add(collection.get(ids=by_id[start : start + WRITE_BATCH], include=include))
    for start in range(0, len(unknown), WRITE_BATCH):
        chunk = unknown[start : start + WRITE_BATCH]
        where = {"paper_id": chunk[0]} if len(chunk) == 1 else {"paper_id": {"$in": chunk}}
        add(collection.get(where=where, include=include))
    return rows


def by_paper(rows: Rows) -> dict[str, tuple[list[str], np.ndarray]]:
    """paper id -> (its sentences in abstract order, their embeddings)."""
    grouped: dict[str, list[tuple[int, str, np.ndarray]]] = {}
    for document, meta, vector in zip(rows.documents, rows.metadatas, rows.embeddings):
        grouped.setdefault(meta["paper_id"], []).append((int(meta["position"]), document, vector))
    result = {}
    for paper_id, items in grouped.items():
        items.sort(key=lambda item: item[0])
        result[paper_id] = ([text for _, text, _ in items], np.stack([vector for _, _, vector in items]).astype(np.float32))
    return result
