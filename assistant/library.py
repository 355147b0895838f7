"""The shared Python API: the CLI and the UI are thin layers over :class:`Library`.

A Library owns one store, one embedder and (lazily) one LLM for the whole process,
so models load once and every job sees the same index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .errors import EmptyStore, InputError
from .embeddings import Embedder, get_embedder
from .lexical import LexicalIndex, index_dir
from .readers import Problem, read_paths
from .records import Paper
from .retrieval import Filters, Hit, Mode, Retriever
from . import progress as progress_
from .progress import Progress
from .settings import Settings
from .store import PaperStore, Rows, sentence_id
from .text import evidence_sentences

T = TypeVar("T")

@dataclass
class IngestReport:
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files that could not be read
    problems: list[Problem] = field(default_factory=list)  # records skipped
    added: int = 0
    updated: int = 0  # content changed: re-embedded
    metadata_only: int = 0  # e.g. the paper was seen in one more file
    unchanged: int = 0
    embedded: int = 0  # texts sent to the embedder

    @property
    def papers_read(self) -> int:
        return self.added + self.updated + self.metadata_only + self.unchanged

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "errors": self.errors,
            "problems": [str(p) for p in self.problems],
            "added": self.added,
            "updated": self.updated,
            "metadata_only": self.metadata_only,
            "unchanged": self.unchanged,
            "embedded": self.embedded,
        }


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
        return get_embedder(self.settings.embedding_model, self.settings.embedding_batch_size)

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
        with self._lock:
            generation = self.store.generation
            if self._lexical is not None and self._lexical.generation == generation:
                return self._lexical
            directory = index_dir(self.settings.store_dir, self.store.location, self.settings.collection)
            loaded = LexicalIndex.load(directory)
            if loaded is None or loaded.generation != generation:
                loaded = self._rebuild_lexical(directory, generation)
            self._lexical = loaded
            return loaded

    def _rebuild_lexical(self, directory: Path, generation: str) -> LexicalIndex | None:
        rows = self.store.all_rows()
        if not rows.ids:
            return None
        titles = [meta.get("title", "") for meta in rows.metadatas]
        index = LexicalIndex.build(rows.ids, rows.documents, titles, generation)
        try:
            index.save(directory)
        except OSError:
            pass  # a read-only store still searches, with the index rebuilt in memory
        return index

    # --- ingest --------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path], progress: Progress | None = None) -> IngestReport:
        """Read files and add their papers; only new or changed abstracts are embedded."""
        result = read_paths(paths)
        report = self.ingest_papers(result.papers, progress=progress)
        report.files, report.errors, report.problems = result.files, result.errors, result.problems
        return report

    def ingest_papers(self, papers: list[Paper], progress: Progress | None = None) -> IngestReport:
        """Embed first, write last: an interruption before the write changes nothing,
        and the write itself is all-or-nothing (see PaperStore.write). Ingests in this
        process take turns; searches and answers go on while one embeds."""
        report = IngestReport()
        with self._ingest_lock:
            existing = self._existing_records([p.id for p in papers])
            to_embed: list[Paper] = []
            keep_vector: list[Paper] = []
            for paper in papers:
                old = existing.get(paper.id)
                if old is None:
                    report.added += 1
                    to_embed.append(paper)
                    continue
                # Seen before in other files: keep those sources too.
                paper.sources = [s for s in old.sources if s not in paper.sources] + paper.sources
                paper.date = paper.date or old.date
                if old.content_hash != paper.content_hash:
                    report.updated += 1
                    to_embed.append(paper)
                elif old.to_metadata() != paper.to_metadata():
                    report.metadata_only += 1
                    keep_vector.append(paper)
                else:
                    report.unchanged += 1
            # Papers whose sentences are missing (a store from before the sentence index)
            # get them now, without re-embedding the paper itself.
            embedding = {p.id for p in to_embed}
            settled = [p for p in papers if p.id in existing and p.id not in embedding]
            with_sentences = {meta["paper_id"] for meta in self.store.sentence_rows([p.id for p in settled]).metadatas}
            backfill = [p for p in settled if p.id not in with_sentences]
            paper_vectors, sentence_rows = self._embed(to_embed, backfill, progress)
            report.embedded = len(to_embed)
            rows = Rows()
            for paper, vector in zip(to_embed, paper_vectors):
                rows.add(paper.id, vector, paper.document, paper.to_metadata())
            if keep_vector:
                stored = self.store.embeddings([p.id for p in keep_vector])
                for paper in keep_vector:
                    rows.add(paper.id, stored[paper.id], paper.document, paper.to_metadata())
            if rows.ids or sentence_rows.ids:
                done = len(to_embed) + len(backfill)
                progress_.report(progress, done, done, "writing the index")
                owners = [p.id for p in to_embed + backfill]
                self.store.write(rows, sentence_rows, owners)
                self._lexical_index()  # rebuild BM25 now, not on the user's first search
        return report

    def _existing_records(self, ids: list[str]) -> dict[str, Paper]:
        found: dict[str, Paper] = {}
        for start in range(0, len(ids), 500):
            found.update(self.store.papers(ids[start : start + 500]))
        return found

    def _embed(self, papers: list[Paper], sentences_only: list[Paper], progress: Progress | None) -> tuple[list, Rows]:
        """Paper embeddings for `papers`, and sentence-index rows for them and for
        `sentences_only`; progress counts papers."""
        batch = self.settings.embedding_batch_size
        vectors: list = []
        sentence_rows = Rows()
        work = [(paper, True) for paper in papers] + [(paper, False) for paper in sentences_only]
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
            progress_.report(progress, min(start + batch, len(work)), len(work), "embedding papers and sentences")
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
        if self.count() == 0:
            raise EmptyStore(
                f"the store at {self.store.location} is empty: run `assistant ingest PATH` "
                f"(e.g. `assistant ingest {self.settings.corpus_dir}`) first"
            )
        return self.retriever(settings).search(query, k, filters=filters, mmr=mmr, mode=mode, query_vector=query_vector)

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
        }

    def embedder_name(self) -> str:
        from .embeddings import default_embedding_model

        return self.settings.embedding_model or default_embedding_model()
