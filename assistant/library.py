"""The shared Python API: the CLI and the UI are thin layers over :class:`Library`.

A Library owns one store, one embedder and (lazily) one LLM for the whole process,
so models load once and every job sees the same index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from .errors import DiskFull, EmptyStore, InputError
from .embeddings import Embedder, backend_family, backend_for_store, get_embedder
from .lexical import LexicalIndex, index_dir
from .ingest_report import IngestReport
from .readers import Problem, read_paths
from .records import Paper, another_paper, earlier_paper_ids, normalize_title, paper_id
from .retrieval import Filters, Hit, Mode, Retriever
from . import progress as progress_
from .progress import Progress
from .memory import release_freed_memory
from .settings import Settings
from .sentence_reads import SENTENCE_COUNT_KEY, sentence_id
from .store import PaperStore, Rows
from .writes import WriterLock
from .text import evidence_sentences

T = TypeVar("T")

# Papers whose abstracts and sentences go to the embedder together: the embedder sorts them
# by length and batches them itself (Settings.embedding_batch_size); this sets how often an
# ingest reports progress.
PAPERS_PER_EMBED_CALL = 32

class Library:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.RLock()  # components and caches
        self._ingest_lock = threading.Lock()  # one ingest at a time
        self._store: PaperStore | None = None
        self._lexical: LexicalIndex | None = None
        self._catalog: tuple[str, list[Paper]] | None = None
        self._derived: dict[str, tuple[list[Paper], object]] = {}

    # --- components, created on first use -----------------------------------------

    @property
    def store(self) -> PaperStore:
        with self._lock:
            if self._store is None:
                self._store = PaperStore(self.settings)
            return self._store

    @property
    def embedder(self) -> Embedder:
        settings = self.settings
        return get_embedder(
            settings.embedding_model, settings.embedding_batch_size, self.embedding_backend, settings.model_cache_dir,
            settings.embedding_memory_arena, settings.embedding_workers,
        )

    @property
    def embedding_backend(self) -> str:
        """The configured backend, unless the store's vectors need another family (see
        embeddings.backend_for_store); settled once the store holds papers."""
        backend = self.__dict__.get("_embedding_backend")
        if backend is None:
            backend = backend_for_store(self.settings.embedding_backend, self.store)
            if self.store.count():
                self.__dict__["_embedding_backend"] = backend
        return backend

    def calibrated(self, settings: Settings | None = None) -> Settings:
        """Per-call settings (default: this library's) with the thresholds calibrated for
        the vectors of this store (Settings.calibrated): every job resolves its settings
        here, so an int8 store is judged by int8 thresholds whatever the caller passed."""
        return (settings or self.settings).calibrated(backend_family(self.embedding_backend))

    def retriever(self, settings: Settings | None = None) -> Retriever:
        """Retrieval with this library's index and the given (per-call) settings."""
        return Retriever(settings or self.settings, self.store, self.embedder, self._lexical_index())

    @property
    def llm(self):
        """The configured LLM backend, loaded once per process on first use."""
        return self.llm_for(self.settings)

    def llm_for(self, settings: Settings | None = None):
        """The LLM for per-call settings (another model or server); each distinct model is
        loaded once per process and shared (see llm.get_llm)."""
        from .llm import get_llm

        return get_llm(settings or self.settings)

    def _lexical_index(self) -> LexicalIndex | None:
        """The BM25 index at the store's current generation (see lexical.py).

        Kept in memory and on disk, tagged with the store's generation and commit number
        (`seq`). When the store has moved on (this process's batch, another process's
        ingest, another client of the same Chroma server), the rows committed since the
        index's `seq` are read by their `seq` and added as one segment: O(what changed),
        not O(store). It is rebuilt from every row only when that cannot account for the
        store (no index yet, an index of another format, a store that went backwards, or
        a paper count that disagrees). A batch abandoned by a killed writer is rolled
        back first (PaperStore.recover), so BM25 never indexes half a batch."""
        with self._lock:
            state = self.store.state()
            if state.pending and not state.writer_alive():
                try:
                    self.store.recover()
                    state = self.store.state()
                except Exception:  # noqa: BLE001 - e.g. a read-only store: search what is there
                    pass
            if self._lexical is not None and self._lexical.generation == state.generation:
                return self._lexical
            directory = index_dir(self.settings.store_dir, self.store.location, self.settings.collection)
            index = self._lexical
            loaded, on_disk = LexicalIndex.load_newer(directory, index, state.generation)
            if loaded is not None:
                index = loaded
            index = self._sync_lexical(index, state)
            if index is not None and index.generation != on_disk:  # a reader leaves the disk alone
                try:
                    index.save(directory)
                except OSError:
                    pass  # a read-only store still searches, with the index in memory
            self._lexical = index
            return index

    def _sync_lexical(self, index: LexicalIndex | None, state) -> LexicalIndex | None:
        if index is not None and index.generation == state.generation:
            return index
        if index is not None and index.seq <= state.seq:
            changed = self.store.rows_committed_between(index.seq, state.seq) if index.seq < state.seq else Rows()
            if changed.ids:
                index.add(changed.ids, changed.documents, [meta.get("title", "") for meta in changed.metadatas])
            if state.pending or len(index.ids) == self.store.count():
                index.generation, index.seq = state.generation, state.seq
                return index
        return self._rebuild_lexical(state)

    def _rebuild_lexical(self, state) -> LexicalIndex | None:
        rows = self.store.all_rows()
        committed = [i for i, meta in enumerate(rows.metadatas) if int(meta.get("seq", 0) or 0) <= state.seq]
        if not committed:
            return None
        ids = [rows.ids[i] for i in committed]
        documents = [rows.documents[i] for i in committed]
        titles = [rows.metadatas[i].get("title", "") for i in committed]
        return LexicalIndex.build(ids, documents, titles, state.generation, state.seq)

    # --- ingest --------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], progress: Progress | None = None) -> IngestReport:
        """Read files and add their papers; only new or changed abstracts are embedded."""
        result = read_paths(paths)
        report = self.ingest_papers(result.papers, progress=progress)
        report.files, report.errors, report.problems = result.files, result.errors, result.problems + report.problems
        return report

    def ingest_papers(self, papers: list[Paper], progress: Progress | None = None) -> IngestReport:
        """Add papers in committed batches of `ingest_batch_size`: each batch is embedded,
        then written (papers and their sentences, all-or-nothing: PaperStore.write), then
        added to BM25. An interruption loses at most the batch in progress; running the same
        ingest again skips every committed paper (same id and content: "unchanged") and
        carries on. Ingests into one store take turns (a lock file for a local store, the
        store's pending mark for a Chroma server); searches and answers go on meanwhile."""
        report = IngestReport()
        with self._ingest_lock, WriterLock(self.settings):
            try:
                self.store.recover()  # a batch a killed ingest left half-written
            except Exception:  # noqa: BLE001 - the write below reports a store that cannot be written
                pass
            report.rekeyed = self._rekey_legacy_ids(papers)
            existing = self._existing_records([p.id for p in papers])
            to_embed: list[Paper] = []
            keep_vector: list[Paper] = []
            settled: list[Paper] = []
            for paper in papers:
                found = existing.get(paper.id)
                if found is None:
                    report.added += 1
                    to_embed.append(paper)
                    continue
                old, meta = found
                if another_paper(old, paper):
                    where = paper.sources[-1] if paper.sources else "input"
                    report.problems.append(Problem(where, 0, (
                        f"id {paper.id!r} already holds {old.title[:80]!r}, a different paper; skipped {paper.title[:80]!r} "
                        "(give it another id)"
                    )))
                    continue
                # Seen before in other files: keep those sources too.
                paper.sources = [s for s in old.sources if s not in paper.sources] + paper.sources
                paper.date = paper.date or old.date
                if old.content_hash != paper.content_hash:
                    report.updated += 1
                    to_embed.append(paper)
                    continue
                if old.to_metadata() != paper.to_metadata():
                    report.metadata_only += 1
                    keep_vector.append(paper)
                else:
                    report.unchanged += 1
                if meta.get(SENTENCE_COUNT_KEY) != 0:
                    settled.append(paper)  # not known to have no evidence sentences at all
            # Papers whose sentences are missing (a store from before the sentence index)
            # get them now, without re-embedding the paper itself.
            with_sentences = self.store.papers_with_sentences([p.id for p in settled])
            backfill = [p for p in settled if p.id not in with_sentences]
            report.embedded = len(to_embed)
            backfilled = {p.id for p in backfill}
            keep_vector = [p for p in keep_vector if p.id not in backfilled]
            work = [(p, "embed") for p in to_embed] + [(p, "sentences") for p in backfill] + [(p, "keep") for p in keep_vector]
            size = self.settings.ingest_batch_size
            batches = [work[start : start + size] for start in range(0, len(work), size)]
            total = len(to_embed) + len(backfill)
            done = 0
            for number, batch in enumerate(batches, start=1):
                where = f"batch {number} of {len(batches)}" if len(batches) > 1 else ""
                try:
                    done = self._ingest_batch(batch, done, total, where, existing, progress)
                    release_freed_memory()  # the batch's buffers, so RSS follows what the store holds
                except DiskFull as full:
                    if number == 1:
                        raise
                    kept = sum(len(b) for b in batches[: number - 1])
                    committed = "batch 1" if number == 2 else f"batches 1-{number - 1}"
                    message = str(full).replace("; nothing was changed", "")
                    raise DiskFull(
                        f"{message}; {committed} ({kept} papers) committed before it filled up are kept, nothing of "
                        f"batch {number} was written: running the same ingest again adds the rest"
                    ) from full
        return report

    def _rekey_legacy_ids(self, papers: list[Paper]) -> int:
        """Move papers a store keeps under an id of an earlier id function (ASCII-only, or
        dropping every combining mark) to today's id (one committed batch, vectors and
        sentences reused), so re-ingesting an old store's files updates those papers instead
        of adding each a second time.

        Only titles with non-Latin letters have several ids. The old id is taken as this
        paper's only when the stored title normalizes to the same title: the old function
        gave every Chinese title one id (and "α-Net"/"β-Net" one), so a row under it may
        hold another paper, which keeps its id. Returns the papers moved."""
        by_old: dict[str, list[Paper]] = {}
        for paper in papers:
            if paper.id != paper_id(paper.title):
                continue  # explicit ids are never moved
            for old in earlier_paper_ids(paper.title):
                by_old.setdefault(old, []).append(paper)
        if not by_old:
            return 0
        stored = self.store.get(list(by_old), with_embeddings=True)
        if not stored.ids:
            return 0
        matches: dict[str, str] = {}  # old id -> new id
        for old, meta in zip(stored.ids, stored.metadatas):
            title = normalize_title(meta.get("title", ""))
            match = next((p for p in by_old[old] if normalize_title(p.title) == title), None)
            if match is not None:
                matches[old] = match.id
        if not matches:
            return 0
        present = set(self.store.get(list(matches.values())).ids)  # already moved: the old row is a leftover
        sentences_by_owner = self.store.sentence_rows(list(matches), with_embeddings=True)
        rows, sentences = Rows(), Rows()
        for old, vector, document, meta in zip(stored.ids, stored.embeddings, stored.documents, stored.metadatas):
            new = matches.get(old)
            if new is None or new in present:
                continue
            paper = Paper.from_metadata(meta)
            paper.id = new
            moved = paper.to_metadata()
            if SENTENCE_COUNT_KEY in meta:
                moved[SENTENCE_COUNT_KEY] = meta[SENTENCE_COUNT_KEY]
            rows.add(new, vector, document, moved)
        for id, vector, document, meta in zip(
            sentences_by_owner.ids, sentences_by_owner.embeddings, sentences_by_owner.documents, sentences_by_owner.metadatas
        ):
            new = matches[meta["paper_id"]]
            if new not in present:
                sentences.add(sentence_id(new, int(meta["position"])), vector, document, {**meta, "paper_id": new})
        self.store.write(rows, sentences, rows.ids, removed=list(matches))
        self._lexical_index()
        return len(rows.ids)

    def _ingest_batch(self, batch, done: int, total: int, where: str, existing: dict, progress: Progress | None) -> int:
        """Embed, write and index one batch; returns the papers embedded so far."""
        to_embed = [p for p, kind in batch if kind == "embed"]
        backfill = [p for p, kind in batch if kind == "sentences"]
        keep_vector = [p for p, kind in batch if kind == "keep"]
        paper_vectors, sentence_rows = self._embed(to_embed, backfill, progress, done, total, where)
        done += len(to_embed) + len(backfill)
        counts: dict[str, int] = {}
        for meta in sentence_rows.metadatas:
            counts[meta["paper_id"]] = counts.get(meta["paper_id"], 0) + 1
        rows = Rows()
        for paper, vector in zip(to_embed, paper_vectors):
            rows.add(paper.id, vector, paper.document, {**paper.to_metadata(), SENTENCE_COUNT_KEY: counts.get(paper.id, 0)})
        # Papers kept as they are embedded: a new source, or sentences added (the paper row
        # then records their count); their stored vector is reused.
        if backfill or keep_vector:
            stored = self.store.embeddings([p.id for p in backfill + keep_vector])
            for paper in backfill + keep_vector:
                meta = paper.to_metadata()
                old_meta = existing[paper.id][1]
                if paper.id in counts or paper in backfill:
                    meta[SENTENCE_COUNT_KEY] = counts.get(paper.id, 0)
                elif SENTENCE_COUNT_KEY in old_meta:
                    meta[SENTENCE_COUNT_KEY] = old_meta[SENTENCE_COUNT_KEY]
                rows.add(paper.id, stored[paper.id], paper.document, meta)
        owners = [p.id for p in to_embed + backfill]
        if rows.ids or sentence_rows.ids:
            progress_.report(progress, done, total or 1, f"writing the index {where}".strip())
            self.store.write(rows, sentence_rows, owners)
            self._lexical_index()  # BM25 follows each committed batch, not the user's first search
            progress_.report(progress, done, total or 1, f"committed {where}".strip() if where else "committed")
        return done

    def _existing_records(self, ids: list[str]) -> dict[str, tuple[Paper, dict]]:
        found: dict[str, tuple[Paper, dict]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            rows = self.store.get(unique[start : start + 500])
            for id, meta in zip(rows.ids, rows.metadatas):
                found[id] = (Paper.from_metadata(meta), meta)
        return found

    def _embed(
        self,
        papers: list[Paper],
        sentences_only: list[Paper],
        progress: Progress | None,
        done: int = 0,
        total: int | None = None,
        where: str = "",
    ) -> tuple[list, Rows]:
        """Paper embeddings for `papers`, and sentence-index rows for them and for
        `sentences_only`; progress counts papers (`done` before this call, of `total`)."""
        batch = PAPERS_PER_EMBED_CALL
        vectors: list = []
        sentence_rows = Rows()
        work = [(paper, True) for paper in papers] + [(paper, False) for paper in sentences_only]
        total = total if total is not None else len(work)
        message = f"embedding papers and sentences {where}".strip()
        for start in range(0, len(work), batch):
            chunk = work[start : start + batch]
            documents = [paper.document for paper, whole in chunk if whole]
            split = [(paper, evidence_sentences(paper.abstract)) for paper, _ in chunk]
            texts = documents + [sentence for _, sentences in split for sentence in sentences]
            embedded = self.embedder.embed(texts)
            vectors.extend(embedded[: len(documents)])
            offset = len(documents)
            for paper, sentences in split:
                for position, sentence in enumerate(sentences):
                    sentence_rows.add(
                        sentence_id(paper.id, position), embedded[offset], sentence, {"paper_id": paper.id, "position": position}
                    )
                    offset += 1
            progress_.report(progress, done + min(start + batch, len(work)), total, message)
        return vectors, sentence_rows

    # --- reading -------------------------------------------------------------------

    def count(self) -> int:
        return self.store.count()

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: Filters | None = None,
        mmr: bool = False,
        mode: Mode = "hybrid",
        settings: Settings | None = None,
        query_vector=None,
    ) -> list[Hit]:
        """Hybrid search; `settings` overrides this library's retrieval settings for one call;
        `query_vector` is the query's embedding when the caller already has it."""
        query = (query or "").strip()
        if not query:
            raise InputError("the query is empty: type what you are looking for")
        hits = self.retriever(settings).search(query, k, filters=filters, mmr=mmr, mode=mode, query_vector=query_vector)
        # Counted only when nothing was found: an empty store is then told apart from
        # filters that matched nothing, and a search that finds papers skips the count
        # (6 ms of each search at 100,000 papers).
        if not hits and self.count() == 0:
            raise EmptyStore(
                f"the store at {self.store.location} is empty: run `assistant ingest PATH` "
                f"(e.g. `assistant ingest {self.settings.corpus_dir}`) first"
            )
        return hits

    def get(self, paper_id: str) -> Paper | None:
        return self.store.papers([paper_id]).get(paper_id)

    def related(self, paper_id: str, k: int = 5) -> list[Hit]:
        return self.retriever().related(paper_id, k)

    def catalog(self) -> list[Paper]:
        """Every paper, sorted by title; cached until the store changes."""
        with self._lock:
            generation = self.store.generation
            if self._catalog is None or self._catalog[0] != generation:
                rows = self.store.all_rows()
                papers = sorted((Paper.from_metadata(m) for m in rows.metadatas), key=lambda p: p.title.lower())
                self._catalog = (generation, papers)
            return self._catalog[1]

    def term_weights(self):
        """Word weights for question relevance (relevance.RelevanceScorer): from the BM25
        index when there is one (no pass over the catalog), else from the catalog."""
        from .relevance import IndexTermWeights, TermWeights

        index = self._lexical_index()
        return IndexTermWeights(index) if index is not None else self.derived("term_weights", TermWeights)

    def derived(self, name: str, build: Callable[[list[Paper]], T]) -> T:
        """Something computed from the whole catalog (title index, word statistics), kept
        on this library and rebuilt only when the store changes."""
        with self._lock:
            papers = self.catalog()
            cached = self._derived.get(name)
            if cached is None or cached[0] is not papers:
                cached = (papers, build(papers))
                self._derived[name] = cached
            return cached[1]

    def stats(self) -> dict:
        papers = self.catalog()
        sources = sorted({s for p in papers for s in p.sources})
        return {
            "papers": len(papers),
            "sources": len(sources),
            "source_files": sources,
            "with_code": sum(1 for p in papers if p.code_url),
            "store": self.store.location,
            "collection": self.settings.collection,
            "embedding_model": self.embedder_name(),
            "embedding_backend": self.embedding_backend,
        }

    def embedder_name(self) -> str:
        from .embeddings import default_embedding_model

        return self.settings.embedding_model or default_embedding_model()
