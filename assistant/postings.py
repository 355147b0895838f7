"""One field of one BM25 segment: term -> (rows, term frequencies), a sparse column store.

Kept apart from lexical.py (segments, global statistics, persistence) because merging is
where the index's memory goes at scale. The first merge concatenated every posting's
(term, row) key and sorted them: about 70 bytes per posting held at once. In a 100,000-paper
ingest, peak RSS jumped by 210-220 MB at the merges near 17,500 and 25,000 papers; replaying
that ingest's BM25 work, one batch held up to 472 MB above the index (18 MB now, with the
reload fix in Library; benchmarks/bm25_memory.py). A merge now writes each part's columns
straight into place in the output (8 bytes per posting) in slices of at most
`MERGE_SLICE` postings: the same arrays, in the same order, as the sort gave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

MERGE_SLICE = 1 << 20  # postings of one part handled at once while merging

EMPTY_INT = np.zeros(0, dtype=np.int32)
EMPTY_FLOAT = np.zeros(0, dtype=np.float32)


@dataclass
class Postings:
    """Rows of each term sorted ascending; `indptr[t]:indptr[t + 1]` is term t's column."""

    vocab: dict[str, int]
    indptr: np.ndarray  # int64, len(vocab) + 1
    rows: np.ndarray  # int32
    tf: np.ndarray  # float32
    lengths: np.ndarray  # float32, tokens per row

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> "Postings":
        vocab: dict[str, int] = {}
        doc_of: list[int] = []
        term_of: list[int] = []
        for row, tokens in enumerate(token_lists):
            for token in tokens:
                term_of.append(vocab.setdefault(token, len(vocab)))
                doc_of.append(row)
        lengths = np.array([len(tokens) for tokens in token_lists], dtype=np.float32)
        n_rows = max(len(lengths), 1)
        keys, counts = np.unique(np.asarray(term_of, dtype=np.int64) * n_rows + np.asarray(doc_of, dtype=np.int64),
                                 return_counts=True)
        terms, rows = keys // n_rows, keys % n_rows
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.add.at(indptr, terms + 1, 1)
        return cls(vocab, np.cumsum(indptr), rows.astype(np.int32), counts.astype(np.float32), lengths)

    def column(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        index = self.vocab.get(term)
        if index is None:
            return EMPTY_INT, EMPTY_FLOAT
        start, end = self.indptr[index], self.indptr[index + 1]
        return self.rows[start:end], self.tf[start:end]

    @classmethod
    def merge(cls, parts: list[tuple["Postings", np.ndarray]]) -> "Postings":
        """The kept rows (boolean mask per part) of several postings, renumbered in part
        order, as one: each term's column is its columns in the parts, one after the other."""
        vocab: dict[str, int] = {}
        remaps = [np.array([vocab.setdefault(term, len(vocab)) for term in p.vocab], dtype=np.int64) for p, _ in parts]
        kept_per_term = [_kept_per_term(p, keep) for p, keep in parts]
        sizes = np.zeros(len(vocab), dtype=np.int64)
        for remap, kept in zip(remaps, kept_per_term):
            sizes[remap] += kept  # a part's terms are distinct: no index repeats
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        rows = np.empty(int(indptr[-1]), dtype=np.int32)
        tf = np.empty(int(indptr[-1]), dtype=np.float32)
        cursor = indptr[:-1].copy()  # where each merged term's next posting goes
        offset = 0
        for (postings, keep), remap, kept in zip(parts, remaps, kept_per_term):
            new_row = (np.cumsum(keep) - 1 + offset).astype(np.int32)
            for first, last in _term_slices(postings.indptr):
                start, end = postings.indptr[first], postings.indptr[last]
                alive = keep[postings.rows[start:end]]
                counts = kept[first:last]
                # Each term's kept postings go to its cursor, in row order.
                begins = np.cumsum(counts) - counts
                destination = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(cursor[remap[first:last]] - begins, counts)
                rows[destination] = new_row[postings.rows[start:end][alive]]
                tf[destination] = postings.tf[start:end][alive]
                cursor[remap[first:last]] += counts
            offset += int(keep.sum())
        lengths = np.concatenate([p.lengths[keep] for p, keep in parts]) if parts else EMPTY_FLOAT
        return cls(vocab, indptr, rows, tf, lengths.astype(np.float32))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}_vocab": np.frombuffer(json.dumps(list(self.vocab)).encode(), dtype=np.uint8),
            f"{prefix}_indptr": self.indptr,
            f"{prefix}_rows": self.rows,
            f"{prefix}_tf": self.tf,
            f"{prefix}_lengths": self.lengths,
        }

    @classmethod
    def from_arrays(cls, data, prefix: str) -> "Postings":
        terms = json.loads(bytes(data[f"{prefix}_vocab"]).decode())
        return cls(
            {term: i for i, term in enumerate(terms)},
            data[f"{prefix}_indptr"],
            data[f"{prefix}_rows"],
            data[f"{prefix}_tf"],
            data[f"{prefix}_lengths"],
        )


def _kept_per_term(postings: Postings, keep: np.ndarray) -> np.ndarray:
    """How many of each term's postings fall in kept rows."""
    kept = np.zeros(len(postings.vocab), dtype=np.int64)
    for first, last in _term_slices(postings.indptr):
        start, end = postings.indptr[first], postings.indptr[last]
        alive = np.concatenate(([0], np.cumsum(keep[postings.rows[start:end]], dtype=np.int64)))
        kept[first:last] = alive[postings.indptr[first + 1 : last + 1] - start] - alive[postings.indptr[first:last] - start]
    return kept


def _term_slices(indptr: np.ndarray) -> list[tuple[int, int]]:
    """Runs of whole terms holding at most about MERGE_SLICE postings each (a term with
    more is a run of its own)."""
    n_terms = len(indptr) - 1
    slices, first = [], 0
    while first < n_terms:
        last = int(np.searchsorted(indptr, indptr[first] + MERGE_SLICE, side="right")) - 1
        last = min(max(last, first + 1), n_terms)
        slices.append((first, last))
        first = last
    return slices
