"""BM25 indexes (abstract text and titles) persisted beside the Chroma store, in segments.

Local Chroma has no sparse index, so we keep our own. Texts are tokenized as bm25s does
it (English stop words removed, Snowball-stemmed: what makes BM25 strong on SciFact) and
scored with the Lucene BM25 bm25s uses (k1 1.5, b 0.75), but the index keeps raw term
frequencies instead of bm25s' precomputed scores, so that it can grow in segments:

- A **segment** holds the postings (term frequencies, one sparse column per term) and
  token counts of some papers. Every committed ingest batch appends one segment built
  from that batch alone: an ingest of 10 papers tokenizes 10 abstracts and writes one
  small file, whatever the size of the store (no O(store) work per small ingest).
- A paper ingested again (changed abstract) lives in the newest segment holding it;
  its older rows are dead (ignored). Liveness follows from segment order, so nothing
  else needs storing.
- Scores are computed at query time from **global** statistics over the live rows of
  every segment (N, average length, each query term's document frequency), exactly
  as one index over all papers would score them: a paper in a small recent segment
  scores on the same scale as the rest, so fusion's normalization (`ceiling`, the best
  score each query term reaches) stays comparable. A single segment scores like bm25s.
- When there are more than `MAX_SEGMENTS`, all segments are merged into one by
  concatenating postings (no re-tokenizing): amortized O(1) per paper.

The index is tagged with the store's generation and commit sequence number
(`PaperStore.state`): Library brings it up to date by adding the rows committed
after its sequence number (another process's or another Chroma client's ingests),
and rebuilds it from the store only when that cannot account for the store's contents.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from .postings import EMPTY_FLOAT, Postings
from .text import QUESTION_SCAFFOLDING, STEMMER

K1 = 1.5
B = 0.75
MAX_SEGMENTS = 8
_FORMAT = 2


def tokenize(texts: list[str]) -> list[list[str]]:
    """English stop words removed and Snowball-stemmed: what makes BM25 strong on SciFact."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=STEMMER, return_ids=False, show_progress=False)


def query_terms(query: str) -> list[str]:
    """The query's BM25 terms without question scaffolding ("how can I", "which paper",
    "is there any work on"): words that say how a person asks, not what about, and that
    would otherwise reward abstracts for saying "we propose a method"."""
    return [term for term in tokenize([query])[0] if term not in QUESTION_SCAFFOLDING]


@dataclass
class _Segment:
    name: str
    ids: list[str]
    body: Postings
    title: Postings
    saved: bool = False

    @classmethod
    def build(cls, ids: list[str], documents: list[str], titles: list[str]) -> "_Segment":
        return cls(f"seg-{uuid.uuid4().hex[:16]}", list(ids), Postings.build(tokenize(list(documents))), Postings.build(tokenize(list(titles))))

    def save(self, directory: Path) -> None:
        arrays = {"ids": np.frombuffer(json.dumps(self.ids).encode(), dtype=np.uint8)}
        arrays.update(self.body.arrays("body"))
        arrays.update(self.title.arrays("title"))
        staging = directory / f".{self.name}.tmp.npz"
        np.savez(staging, **arrays)
        os.replace(staging, directory / f"{self.name}.npz")
        self.saved = True

    @classmethod
    def load(cls, directory: Path, name: str) -> "_Segment":
        with np.load(directory / f"{name}.npz") as data:
            ids = json.loads(bytes(data["ids"]).decode())
            return cls(name, ids, Postings.from_arrays(data, "body"), Postings.from_arrays(data, "title"), saved=True)


class _FieldView:
    """One field (body or title) across the live rows of every segment, scored with
    global statistics."""

    def __init__(self, index: "LexicalIndex", field: str) -> None:
        self.index = index
        self.field = field

    def _postings(self) -> list[tuple[int, Postings, np.ndarray]]:
        return [(base, getattr(seg, self.field), live) for seg, base, live in self.index._layout()]

    def _stats(self) -> tuple[int, float]:
        n_docs, total = 0, 0.0
        for _, postings, live in self._postings():
            n_docs += int(live.sum())
            total += float(postings.lengths[live].sum())
        return n_docs, (total / n_docs if n_docs else 0.0)

    def document_count(self) -> int:
        return sum(int(live.sum()) for _, _, live in self._postings())

    def document_frequency(self, term: str) -> int:
        """How many live documents contain `term` (a token as `tokenize` makes them)."""
        total = 0
        for _, postings, live in self._postings():
            rows, _ = postings.column(term)
            total += int(live[rows].sum()) if len(rows) else 0
        return total

    def _term_scores(self, term: str, n_docs: int, avg: float) -> tuple[np.ndarray, np.ndarray]:
        """(global rows, BM25 score) of every live document containing `term`."""
        rows_parts, tf_parts, len_parts = [], [], []
        for base, postings, live in self._postings():
            rows, tf = postings.column(term)
            if len(rows) == 0:
                continue
            keep = live[rows]
            rows, tf = rows[keep], tf[keep]
            rows_parts.append(rows.astype(np.int64) + base)
            tf_parts.append(tf)
            len_parts.append(postings.lengths[rows])
        if not rows_parts:
            return np.zeros(0, dtype=np.int64), EMPTY_FLOAT
        rows = np.concatenate(rows_parts)
        tf = np.concatenate(tf_parts)
        lengths = np.concatenate(len_parts)
        df = len(rows)
        idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        tfc = tf / (K1 * ((1 - B) + B * lengths / max(avg, 1e-9)) + tf)
        return rows, (idf * tfc).astype(np.float32)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        tokens = query_terms(query)
        if not tokens:
            return []
        n_docs, avg = self._stats()
        if n_docs == 0:
            return []
        total_rows = self.index._total_rows()
        scores = np.zeros(total_rows, dtype=np.float32)
        for term in dict.fromkeys(tokens):
            rows, term_scores = self._term_scores(term, n_docs, avg)
            if len(rows):
                scores[rows] += term_scores * tokens.count(term)  # repeats count, as in bm25s
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) == 0:
            return []
        if len(candidates) > n:
            candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
        ordered = candidates[np.argsort(-scores[candidates], kind="stable")]
        ids = self.index._row_ids()
        return [(ids[row], float(scores[row])) for row in ordered]

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
        tokens = query_terms(query)
        if not tokens:
            return 0.0
        n_docs, avg = self._stats()
        if n_docs == 0:
            return 0.0
        best: dict[str, float] = {}
        for term in dict.fromkeys(tokens):
            _, term_scores = self._term_scores(term, n_docs, avg)
            if len(term_scores):
                best[term] = float(term_scores.max())
        if not best:
            return 0.0
        unseen = math.log(1 + (n_docs - 0.5) / 1.5) / (1 + K1)  # Lucene idf at df=1, tf=1, average length
        return sum(best.get(t, unseen) for t in tokens)


class LexicalIndex:
    """BM25 over documents and over titles, addressed by paper id, in segments (see the
    module docstring). `generation` and `seq` name the store state it reflects."""

    def __init__(self, segments: list[_Segment], generation: str, seq: int = 0) -> None:
        self.segments = segments
        self.generation = generation
        self.seq = seq
        self._cache: tuple | None = None
        self.body = _FieldView(self, "body")
        self.title = _FieldView(self, "title")

    @classmethod
    def build(cls, ids: list[str], documents: list[str], titles: list[str], generation: str, seq: int = 0) -> "LexicalIndex":
        index = cls([], generation, seq)
        if ids:
            index.add(ids, documents, titles)
        return index

    def add(self, ids: list[str], documents: list[str], titles: list[str]) -> None:
        """Append a segment for these papers (new ones, or new versions of indexed ones)."""
        if not ids:
            return
        self.segments.append(_Segment.build(ids, documents, titles))
        self._cache = None
        if len(self.segments) > MAX_SEGMENTS:
            self.compact()

    def compact(self) -> None:
        """Merge segments' live rows (postings concatenated, not re-tokenized): the recent
        small segments into one when the oldest is still much bigger than all of them
        together (so a small ingest does not copy the whole index), else everything."""
        layout = self._layout()
        head = int(layout[0][2].sum())
        if head >= 3 * sum(len(seg.ids) for seg, _, _ in layout[1:]):
            layout = layout[1:]
            keep = self.segments[:1]
        else:
            keep = []
        ids = [id for seg, _, live in layout for id, alive in zip(seg.ids, live) if alive]
        body = Postings.merge([(seg.body, live) for seg, _, live in layout])
        title = Postings.merge([(seg.title, live) for seg, _, live in layout])
        self.segments = keep + [_Segment(f"seg-{uuid.uuid4().hex[:16]}", ids, body, title)]
        self._cache = None

    # --- layout: global rows and which are live ------------------------------------------

    def _layout(self) -> list[tuple[_Segment, int, np.ndarray]]:
        """(segment, its first global row, live mask) for each segment."""
        if self._cache is None:
            newest: dict[str, tuple[int, int]] = {}
            for s, seg in enumerate(self.segments):
                for row, id in enumerate(seg.ids):
                    newest[id] = (s, row)
            layout, base, row_ids = [], 0, []
            for s, seg in enumerate(self.segments):
                live = np.zeros(len(seg.ids), dtype=bool)
                for row, id in enumerate(seg.ids):
                    live[row] = newest[id] == (s, row)
                layout.append((seg, base, live))
                base += len(seg.ids)
                row_ids.extend(seg.ids)
            self._cache = (layout, row_ids, base, [id for id, _ in sorted(newest.items(), key=lambda kv: kv[1])])
        return self._cache[0]

    def _row_ids(self) -> list[str]:
        self._layout()
        return self._cache[1]

    def _total_rows(self) -> int:
        self._layout()
        return self._cache[2]

    @property
    def ids(self) -> list[str]:
        """Every indexed paper id once (live rows), oldest segment first."""
        self._layout()
        return self._cache[3]

    # --- queries ------------------------------------------------------------------------

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        return self.body.search(query, n)

    def search_titles(self, query: str, n: int) -> list[tuple[str, float]]:
        return self.title.search(query, n)

    def ceiling(self, query: str) -> float:
        """Upper bound of any body score for this query (see `_FieldView.ceiling`)."""
        return self.body.ceiling(query)

    def title_ceiling(self, query: str) -> float:
        return self.title.ceiling(query)

    def matching(self, query: str) -> list[str]:
        """Ids of the papers whose title or abstract contains every (stemmed) word of the
        query, best BM25 first: the Library tab's server-side word search."""
        tokens = list(dict.fromkeys(tokenize([query])[0]))
        if not tokens:
            return []
        found: np.ndarray | None = None
        for term in tokens:
            rows = set()
            for field in (self.body, self.title):
                n_docs, avg = field._stats()
                term_rows, _ = field._term_scores(term, n_docs, avg)
                rows.update(term_rows.tolist())
            current = np.fromiter(rows, dtype=np.int64)
            found = current if found is None else np.intersect1d(found, current)
            if len(found) == 0:
                return []
        ranked = dict(self.body.search(query, len(found) + 1)) if found is not None else {}
        ids = self._row_ids()
        return sorted((ids[row] for row in found), key=lambda id: -ranked.get(id, 0.0))

    # --- persistence ---------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the segments not yet on disk, then swap in a new manifest (atomic rename):
        a crash never leaves half an index, and adding a segment rewrites only it and the
        manifest. Segment files no manifest names are removed once they are old enough
        that no other process can be about to read them."""
        directory.mkdir(parents=True, exist_ok=True)
        for seg in self.segments:
            if not seg.saved or not (directory / f"{seg.name}.npz").exists():
                seg.save(directory)
        manifest = {
            "format": _FORMAT,
            "generation": self.generation,
            "seq": self.seq,
            "segments": [seg.name for seg in self.segments],
            "ids": self.ids,
        }
        handle, staging = tempfile.mkstemp(prefix=".manifest-", dir=directory)
        with os.fdopen(handle, "w") as out:
            json.dump(manifest, out)
        os.replace(staging, directory / "manifest.json")
        keep = {f"{seg.name}.npz" for seg in self.segments}
        for path in directory.iterdir():
            if path.name in keep or path.name == "manifest.json":
                continue
            try:
                if path.is_dir() and path.name in ("body", "title"):
                    shutil.rmtree(path, ignore_errors=True)  # an index from before segments
                elif time.time() - path.stat().st_mtime > 600:
                    path.unlink()
            except OSError:
                pass

    @classmethod
    def load_newer(cls, directory: Path, current: "LexicalIndex | None", generation: str) -> tuple["LexicalIndex | None", str | None]:
        """The index saved in `directory` when it should replace `current` (none yet, it is
        at the store's `generation`, or it has seen more commits), and the generation saved
        there. Otherwise only the manifest is read: loading a 100,000-paper index after every
        ingest batch, only to keep the one in memory, held a second copy of it each time."""
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            saved = (manifest["generation"], int(manifest.get("seq", 0))) if manifest.get("format") == _FORMAT else None
        except (OSError, ValueError, KeyError, TypeError):
            saved = None
        if saved is None:
            return None, None
        if current is not None and saved[0] != generation and saved[1] <= current.seq:
            return None, saved[0]
        loaded = cls.load(directory)
        return loaded, (loaded.generation if loaded is not None else None)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex | None":
        manifest_path = directory / "manifest.json"
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("format") != _FORMAT:
                return None  # an index from before segments: rebuilt from the store
            segments = [_Segment.load(directory, name) for name in manifest["segments"]]
        except (OSError, ValueError, KeyError):
            return None  # unreadable: the caller rebuilds it from the store
        return cls(segments, manifest["generation"], int(manifest.get("seq", 0)))


def index_dir(store_dir: Path, location: str, collection: str) -> Path:
    """One BM25 directory per (store location, collection): local and remote stores never
    share. A local store inside the store directory is named by its path there, so a store
    directory moved or copied whole keeps its index (at 100,000 papers a rebuild takes a
    minute)."""
    if "://" not in location:
        try:
            location = Path(location).resolve().relative_to(Path(store_dir).resolve()).as_posix()
        except ValueError:
            pass  # a Chroma directory kept elsewhere: named by its full path
    tag = hashlib.sha1(f"{location}|{collection}".encode()).hexdigest()[:10]
    return store_dir / "bm25" / f"{collection}-{tag}"
