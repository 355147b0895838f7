"""The Chroma collections of papers and of their abstract sentences: local
(PersistentClient) or remote (HttpClient).

Two collections, side by side in one client: ``<collection>`` holds one row per paper
(title + abstract embedding, metadata); ``<collection>-sentences`` holds one row per
evidence sentence of each abstract (id ``<paper id>:s<position>``, metadata
``paper_id``, ``position`` and the sentence's text; no row keeps its text in its Chroma
document, see stored_text.py). A second collection rather than sentences mixed into
the papers' one keeps paper search, counts and paging exact, and lets a question be
matched against every sentence of the corpus with one nearest-neighbour query.

Writes go through :meth:`PaperStore.write`, one committed batch at a time:

1. The writer marks the papers collection ``pending`` (its metadata also holds the store
   ``generation`` and the commit sequence number ``seq``) with a token, its host, pid and
   start time; a writer that finds another live writer's mark waits for it, one that
   finds a dead writer's mark (same host and the pid gone, or older than
   ``LEASE_SECONDS``) first rolls that batch back (:meth:`recover`).
2. The undo journal (ids the batch adds, the paper rows and sentence rows it replaces,
   embeddings included) is written to a third collection, ``<collection>-journal`` (journal.py).
3. Sentences, then papers are upserted; each paper row carries ``seq`` = the commit's number.
4. Commit: one metadata write sets the new generation and ``seq`` and clears ``pending``.

An exception or Ctrl-C in step 3 puts the old rows back at once. A kill -9 (or a
vanished Chroma client) leaves the ``pending`` mark and the journal in the store itself,
so the next writer, or any reader of the same store (local or the same Chroma server),
rolls the half-written batch back before it is used. A batch is therefore all-or-nothing
even across kill -9; readers see only committed batches' BM25 (which follows the
generation), and the rows of committed batches can be found by ``seq``.

Faults of the parts underneath are one-line :class:`StoreError`s (see `store_faults.py`):
every request to a Chroma server times out after ``chroma_timeout_s``; a full disk under
a local store is checked before a batch (an estimate) and, should it fill up during the
write anyway, a reserve file written beforehand is deleted so the rollback has room; a
read-only local store is searched from a private copy (Chroma 1.x writes to its
database on every open, so it cannot open one in place).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence

import numpy as np

from . import store_faults
from .chroma_client import Guarded, open_client, runner, signals_held
from .disk import full_error, room_for
from .errors import StoreError
from .journal import Entry, UndoJournal
from .records import Paper
from .sentence_reads import by_paper, counts_of, paper_of, read_rows, sentence_id, sentence_vectors
from .settings import Settings
from .stored_text import paper_document, papers_for_store, sentences_for_store
from .writes import (
    ACTIVE_TOKENS,
    LEASE_SECONDS,
    WRITE_BATCH,
    Rows,
    StoreState,
    estimated_bytes,
)

__all__ = ["PaperStore", "Rows", "StoreError", "StoreState", "sentence_id"]

_GENERATION_KEY = "generation"
_SEQ_KEY = "seq"  # collection metadata: commits so far; paper rows: the commit that wrote them
_PENDING_KEY = "pending"


class PaperStore:
    """Chroma collections of papers and sentences with precomputed embeddings (never Chroma's own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = settings.chroma_url or str(settings.chroma_dir)
        client, self.read_only = open_client(settings)
        self._client = Guarded(client, self._fault, runner(self.settings))
        self._collection = self._open_collection(settings.collection)
        self._sentences = self._open_collection(f"{settings.collection}-sentences")
        self._journal = UndoJournal(self._client, settings.collection)
        self._seen_generation: str | None = None  # the generation this client's vector index reflects
        self._reopen_lock = threading.Lock()

    def _open_collection(self, name: str):
        try:
            return self._client.get_or_create_collection(
                name=name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        except Exception as exc:
            raise StoreError(f"cannot open collection {name!r} in {self.location}: {exc}") from exc

    def _fault(self, exc: Exception) -> StoreError | None:
        return store_faults.translate(self.settings, self.location, exc)

    def _disk_full(self, exc: BaseException) -> bool:
        return store_faults.caused_by_full_disk(self.settings, exc)

    # --- reading ------------------------------------------------------------------

    def count(self) -> int:
        return self._collection.count()

    @property
    def generation(self) -> str:
        """Changes on every successful write; the BM25 index records it to detect staleness.
        Read fresh from the server each time: another process (or Library) may have ingested."""
        return self.state().generation

    def _metadata(self) -> dict:
        return dict(self._client.get_collection(self.settings.collection).metadata or {})

    def state(self) -> StoreState:
        """Generation, commit number and pending mark, read fresh (one request)."""
        metadata = self._metadata()
        state = StoreState(
            str(metadata.get(_GENERATION_KEY, "")), int(metadata.get(_SEQ_KEY, 0) or 0), str(metadata.get(_PENDING_KEY, "") or "")
        )
        self._follow(state.generation)
        return state

    def _follow(self, generation: str) -> None:
        """Reopen a local store once another process has committed to it. Chroma's
        in-process vector index does not see other processes' writes: without this, a
        server's get(include=embeddings) fails with "Error finding id" after an ingest
        by `assistant ingest`, and its queries miss the new and changed rows. Our own
        commits go through _set_state, which records their generation, so they never
        reopen. (A Chroma server is one process: nothing to follow.)"""
        with self._reopen_lock:
            seen, self._seen_generation = self._seen_generation, generation
            if seen is None or seen == generation or self.settings.chroma_url:
                return
            from chromadb.api.shared_system_client import SharedSystemClient

            # Drop Chroma's shared system for this path (not stopped: requests still
            # running on the old collections finish on them), so the new client loads
            # the index as it is on disk now.
            SharedSystemClient._identifier_to_system.pop(getattr(self._client, "_identifier", ""), None)
            client, self.read_only = open_client(self.settings)
            self._client = Guarded(client, self._fault, runner(self.settings))
            self._collection = self._open_collection(self.settings.collection)
            self._sentences = self._open_collection(f"{self.settings.collection}-sentences")

    def _set_state(self, generation: str, seq: int, pending: str) -> None:
        metadata = self._metadata()  # modify() replaces the whole metadata: keep other keys
        metadata.update({_GENERATION_KEY: generation, _SEQ_KEY: seq, _PENDING_KEY: pending})
        self._collection.modify(metadata=metadata)
        self._seen_generation = generation  # our own commit: this client already holds its rows

    def get(self, ids: Sequence[str], with_embeddings: bool = False) -> Rows:
        if not ids:
            return Rows()
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        return _paper_rows(self._collection.get(ids=list(ids), include=include))

    def papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        rows = self.get(ids)
        return {id: Paper.from_metadata(meta) for id, meta in zip(rows.ids, rows.metadatas)}

    def all_rows(self, page: int = 1000) -> Rows:
        """Every row without embeddings, paged so a big remote collection is not one request."""
        return self._every_page(None, page)

    def rows_committed_between(self, after: int, upto: int, page: int = 1000) -> Rows:
        """Paper rows (no embeddings) written by commits after..upto (their `seq`)."""
        return self._every_page({"$and": [{_SEQ_KEY: {"$gt": after}}, {_SEQ_KEY: {"$lte": upto}}]}, page)

    def _every_page(self, where: dict | None, page: int) -> Rows:
        rows = Rows()
        offset = 0
        while True:
            found = self._collection.get(where=where, include=["documents", "metadatas"], limit=page, offset=offset)
            _paper_rows(found, into=rows)
            if len(found["ids"]) < page:
                return rows
            offset += page

    def page(self, offset: int, limit: int, where: dict | None = None) -> Rows:
        """One page of paper rows (no embeddings) in the store's own order."""
        return _paper_rows(self._collection.get(where=where or None, include=["documents", "metadatas"], limit=limit, offset=offset))

    def ids(self, where: dict | None = None) -> list[str]:
        """Every paper id (matching `where`), without documents: cheap enough to count."""
        found = self._collection.get(where=where or None, include=[])
        return list(found["ids"])

    def embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The papers' vectors alone: reading their metadata too costs 4x as much (400
        papers of a 100,000-paper store: 7 ms against 31 ms)."""
        if not ids:
            return {}
        found = self._collection.get(ids=list(ids), include=["embeddings"])
        return {id: np.asarray(vector, dtype=np.float32) for id, vector in zip(found["ids"], found["embeddings"])}

    def metadatas(self, ids: Sequence[str]) -> dict[str, dict]:
        """The papers' metadata rows (no documents, no vectors)."""
        if not ids:
            return {}
        found = self._collection.get(ids=list(ids), include=["metadatas"])
        return {id: meta or {} for id, meta in zip(found["ids"], found["metadatas"])}

    def nearest(self, vector: np.ndarray, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) best first. Chroma 1.x returns what there is when asked
        for more (locally and from a server), so the store is not counted first: a count
        costs more than the query (100,000 papers: 4 ms against 1 ms)."""
        result = self._collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=n,
            where=where or None,
            include=["distances"],
        )
        return [(id, 1.0 - float(distance)) for id, distance in zip(result["ids"][0], result["distances"][0])]

    # --- sentences ------------------------------------------------------------------

    def sentence_rows(self, paper_ids: Sequence[str], with_embeddings: bool = False, counts: dict[str, int] | None = None) -> Rows:
        """Stored sentences of these papers; by id when `counts` names them (sentence_reads.read_rows)."""
        return read_rows(self._sentences, paper_ids, with_embeddings, counts)

    def sentence_counts(self, paper_ids: Sequence[str]) -> dict[str, int]:
        """How many sentences each of these papers has, for those whose row records it."""
        return counts_of(self.metadatas(list(dict.fromkeys(paper_ids))))

    def sentences(self, paper_ids: Sequence[str], counts: dict[str, int] | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
        """paper id -> (its evidence sentences in abstract order, their embeddings), read by
        id; papers with no stored sentences (a store built before the sentence index) are
        absent. `counts`, when the caller has the paper rows, saves reading them again."""
        if counts is None:
            counts = self.sentence_counts(paper_ids)
        return by_paper(self.sentence_rows(paper_ids, with_embeddings=True, counts=counts))

    def sentence_vectors(self, counts: dict[str, int]) -> dict[str, np.ndarray]:
        """paper id -> its sentences' vectors, for the papers `counts` names (their rows' counts)."""
        return sentence_vectors(self._sentences, counts)

    def papers_with_sentences(self, paper_ids: Sequence[str]) -> set[str]:
        """Which of these papers have sentences stored (looked up by their first sentence's
        id: a primary-key lookup, no documents)."""
        found: set[str] = set()
        ids = list(dict.fromkeys(paper_ids))
        for start in range(0, len(ids), 500):
            chunk = [sentence_id(id, 0) for id in ids[start : start + 500]]
            found.update(paper_of(id) for id in self._sentences.get(ids=chunk, include=[])["ids"])
        return found

    def sentence_count(self) -> int:
        return self._sentences.count()

    def nearest_sentences(self, vector: np.ndarray, n: int) -> list[tuple[str, str, float]]:
        """(paper id, sentence id, cosine similarity), best first, over every sentence stored.
        Ids and distances only: at 700,000 sentences counting them took 31 ms and reading
        their text and metadata 3 ms, the search itself 1 ms (see nearest)."""
        result = self._sentences.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=n, include=["distances"]
        )
        return [(paper_of(id), id, 1.0 - float(distance)) for id, distance in zip(result["ids"][0], result["distances"][0])]

    # --- writing ------------------------------------------------------------------

    def write(
        self, rows: Rows, sentences: Rows | None = None, sentence_owners: Sequence[str] = (), removed: Sequence[str] = ()
    ) -> None:
        """Upsert paper rows, replace the sentences of `sentence_owners` with `sentences`
        and delete the papers `removed` (and their sentences) as one committed batch,
        all-or-nothing (see the module docstring): on an exception or Ctrl-C the replaced
        rows of both collections are restored at once; after a kill, by the next writer or
        reader of the store (:meth:`recover`)."""
        sentences = sentences or Rows()
        removed = [id for id in dict.fromkeys(removed) if id not in set(rows.ids)]
        if not rows.ids and not sentences.ids and not removed:
            return
        if self.read_only:
            raise StoreError(f"the store at {self.location} is read-only: make it writable, or ingest into another --store")
        token = uuid.uuid4().hex
        ACTIVE_TOKENS.add(token)  # before the mark exists: no thread of ours takes it for abandoned
        try:
            with self._reserve(rows, sentences) as release:
                self._write(token, rows, sentences, list(sentence_owners), removed, release)
        finally:
            ACTIVE_TOKENS.discard(token)

    def _write(self, token: str, rows: Rows, sentences: Rows, owners: list[str], removed: list[str], release) -> None:
        state = self._begin(token)
        seq = state.seq + 1
        rows = Rows(list(rows.ids), list(rows.embeddings), list(rows.documents), [{**meta, _SEQ_KEY: seq} for meta in rows.metadatas])
        owners = list(dict.fromkeys(owners + removed))
        try:
            journal = self.get(rows.ids + removed, with_embeddings=True)
            present = set(journal.ids)
            previously_absent = [id for id in rows.ids if id not in present]
            # A paper not yet stored has no sentences (they are written and rolled back with
            # it); its first sentence's id is checked all the same, a primary-key lookup,
            # where the paper-id filter over a large store is not (at 100k, 2 ms against 130 ms
            # for 1,000 new papers).
            orphaned = self.papers_with_sentences([id for id in owners if id not in present])
            sentence_journal = self.sentence_rows([id for id in owners if id in present or id in orphaned], with_embeddings=True)
            self._journal.save(token, Entry(previously_absent, owners, journal, sentence_journal))
        except BaseException as failure:
            full = self._disk_full(failure)
            release()
            with signals_held():
                try:
                    self._set_state(state.generation, state.seq, "")  # nothing written yet
                except Exception:  # noqa: BLE001 - the mark, journal-less, is cleared by the next writer or reader
                    pass
                self._journal.drop()
            if full:
                raise full_error(self.settings.store_dir) from failure
            raise
        try:
            self._delete(self._sentences, sentence_journal.ids)  # an abstract may have lost sentences
            self._delete(self._collection, removed)
            self._upsert_all(self._sentences, sentences_for_store(sentences))
            self._upsert_all(self._collection, papers_for_store(rows))
            self._set_state(uuid.uuid4().hex, seq, "")  # the commit
        except BaseException as failure:  # Ctrl-C included: restore, then let it propagate
            full = self._disk_full(failure)
            release()  # the reserve's room is what the rollback writes into
            with signals_held():
                try:
                    self._rollback(previously_absent, owners, journal, sentence_journal)
                    self._set_state(state.generation, state.seq, "")
                except Exception as restore_failure:  # e.g. the Chroma server went away mid-write
                    raise store_faults.unrestored(self.settings, self.location, failure, restore_failure, full) from failure
                self._journal.drop()
            if full:
                raise full_error(self.settings.store_dir) from failure
            if isinstance(failure, StoreError):
                raise StoreError(f"{failure}; nothing was changed") from failure
            if isinstance(failure, Exception):
                raise StoreError(f"writing to {self.location} failed, nothing was changed: {failure}") from failure
            raise
        self._journal.drop()

    def _reserve(self, rows: Rows, sentences: Rows):
        """Room for a local write and for undoing it (see disk.room_for); a server's disk is its own."""
        if self.settings.chroma_url:
            return contextlib.nullcontext(lambda: None)
        return room_for(self.settings.store_dir, estimated_bytes(rows, sentences))

    def _begin(self, token: str) -> StoreState:
        """Mark the store pending for this writer: wait while another live writer holds the
        mark, roll back an abandoned batch first. Chroma has no compare-and-set, so the mark
        is read back after a moment to make two writers that raced for it back off."""
        deadline = time.monotonic() + LEASE_SECONDS
        recoveries = 0
        while True:
            state = self.state()
            if state.pending and state.writer_alive():
                if time.monotonic() > deadline:
                    raise StoreError(f"another writer has been writing to {self.location} for too long; try again later")
                time.sleep(0.25)
                continue
            if state.pending:
                recoveries += 1
                if recoveries > 3:  # never spin on a mark that will not clear
                    raise StoreError(f"cannot roll back the unfinished batch in {self.location}; try again later")
                self.recover()
                continue
            mark = f"{token}|{socket.gethostname()}|{os.getpid()}|{time.time():.0f}"
            self._set_state(state.generation, state.seq, mark)
            if self.settings.chroma_url:
                time.sleep(0.05)
            confirmed = self.state()
            if confirmed.pending == mark:
                return confirmed

    def recover(self) -> bool:
        """Roll back a batch whose writer died between its first write and its commit
        (kill -9, a lost connection); True if there was one. A live writer's batch is left
        alone."""
        state = self.state()
        if not state.pending or state.writer_alive():
            return False
        journal = self._journal.load(state.pending_token)
        if journal is not None:
            self._rollback(journal.absent, journal.owners, journal.papers, journal.sentences)
        # A new generation: anything built while the batch was half-written is stale.
        self._set_state(uuid.uuid4().hex if journal is not None else state.generation, state.seq, "")
        self._journal.drop()
        return True

    def _rollback(self, previously_absent: list[str], owners: list[str], journal: Rows, sentence_journal: Rows) -> None:
        self._restore(journal, previously_absent)
        self._delete(self._sentences, self.sentence_rows(owners).ids)
        self._upsert_all(self._sentences, sentences_for_store(sentence_journal))

    @staticmethod
    def _delete(collection, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), WRITE_BATCH):
            collection.delete(ids=list(ids[start : start + WRITE_BATCH]))

    @staticmethod
    def _upsert_all(collection, rows: Rows) -> None:
        for batch in rows.batches():
            collection.upsert(ids=batch.ids, embeddings=batch.embeddings, documents=batch.documents, metadatas=batch.metadatas)

    def _restore(self, journal: Rows, previously_absent: list[str]) -> None:
        self._delete(self._collection, previously_absent)
        for batch in journal.batches():
            # Chroma merges metadata on upsert: keys the failed write added (e.g. a new
            # `src:` flag) survive unless set to None explicitly.
            current = self._collection.get(ids=batch.ids, include=["metadatas"])
            now = {id: meta or {} for id, meta in zip(current["ids"], current["metadatas"])}
            metadatas = [
                {**{key: None for key in now.get(id, {}) if key not in meta}, **meta}
                for id, meta in zip(batch.ids, batch.metadatas)
            ]
            self._collection.upsert(
                ids=batch.ids, embeddings=batch.embeddings, documents=papers_for_store(batch).documents, metadatas=metadatas
            )


def _paper_rows(found: dict, into: Rows | None = None) -> Rows:
    """A Chroma `get` of paper rows as Rows, each with its text (stored_text.paper_document)."""
    rows = into if into is not None else Rows()
    embeddings = found.get("embeddings") if "embeddings" in (found.get("included") or []) else None
    for index, id in enumerate(found["ids"]):
        meta = found["metadatas"][index]
        vector = embeddings[index] if embeddings is not None else np.zeros(0)
        rows.add(id, vector, paper_document(found["documents"][index], meta), meta)
    return rows
