"""The Chroma collections of papers and of their abstract sentences: local
(PersistentClient) or remote (HttpClient).

Two collections, side by side in one client: ``<collection>`` holds one row per paper
(title + abstract embedding, metadata); ``<collection>-sentences`` holds one row per
evidence sentence of each abstract (id ``<paper id>:s<position>``, metadata
``paper_id`` and ``position``). A second collection rather than sentences mixed into
the papers' one keeps paper search, counts and paging exact, and lets a question be
matched against every sentence of the corpus with one nearest-neighbour query.

Writes go through :meth:`PaperStore.write`, which journals the paper rows and the
sentence rows it replaces and puts both back if anything (an exception, Ctrl-C) stops it
halfway: a failed ingest leaves papers and sentences as they were, and the store's
generation (which the BM25 index follows) changes only after both are written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

from .errors import StoreError
from .records import Paper
from .settings import Settings

_WRITE_BATCH = 256
_GENERATION_KEY = "generation"


@dataclass
class Rows:
    """Rows as Chroma takes them; also the rollback journal of a write."""

    ids: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    metadatas: list[dict] = field(default_factory=list)

    def add(self, id: str, embedding: np.ndarray, document: str, metadata: dict) -> None:
        self.ids.append(id)
        self.embeddings.append(np.asarray(embedding, dtype=np.float32))
        self.documents.append(document)
        self.metadatas.append(metadata)

    def batches(self, size: int = _WRITE_BATCH) -> Iterable["Rows"]:
        for start in range(0, len(self.ids), size):
            end = start + size
            yield Rows(self.ids[start:end], self.embeddings[start:end], self.documents[start:end], self.metadatas[start:end])


def _open_client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if not url.hostname:
            raise StoreError(f"--chroma-url {settings.chroma_url!r} is not a URL like http://host:port")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:
            raise StoreError(f"cannot reach the Chroma server at {settings.chroma_url}: {exc}") from exc
    path = settings.chroma_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        raise StoreError(f"cannot open the store at {path}: {exc}") from exc


def sentence_id(paper_id: str, position: int) -> str:
    return f"{paper_id}:s{position}"


class PaperStore:
    """Chroma collections of papers and sentences with precomputed embeddings (never Chroma's own)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.location = settings.chroma_url or str(settings.chroma_dir)
        self._client = _open_client(settings)
        self._collection = self._open_collection(settings.collection)
        self._sentences = self._open_collection(f"{settings.collection}-sentences")

    def _open_collection(self, name: str):
        try:
            return self._client.get_or_create_collection(
                name=name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        except Exception as exc:
            raise StoreError(f"cannot open collection {name!r} in {self.location}: {exc}") from exc

    # --- reading ------------------------------------------------------------------

    def count(self) -> int:
        return self._collection.count()

    @property
    def generation(self) -> str:
        """Changes on every successful write; the BM25 index records it to detect staleness.
        Read fresh from the server each time: another process (or Library) may have ingested."""
        metadata = self._client.get_collection(self.settings.collection).metadata or {}
        return str(metadata.get(_GENERATION_KEY, ""))

    def get(self, ids: Sequence[str], with_embeddings: bool = False) -> Rows:
        if not ids:
            return Rows()
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        found = self._collection.get(ids=list(ids), include=include)
        embeddings = found.get("embeddings") if with_embeddings else None
        rows = Rows()
        for index, id in enumerate(found["ids"]):
            vector = embeddings[index] if embeddings is not None else np.zeros(0)
            rows.add(id, vector, found["documents"][index], found["metadatas"][index])
        return rows

    def papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        rows = self.get(ids)
        return {id: Paper.from_metadata(meta) for id, meta in zip(rows.ids, rows.metadatas)}

    def all_rows(self, page: int = 1000) -> Rows:
        """Every row without embeddings, paged so a big remote collection is not one request."""
        rows = Rows()
        offset = 0
        while True:
            found = self._collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            for id, document, meta in zip(found["ids"], found["documents"], found["metadatas"]):
                rows.add(id, np.zeros(0), document, meta)
            if len(found["ids"]) < page:
                return rows
            offset += page

    def embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        rows = self.get(ids, with_embeddings=True)
        return dict(zip(rows.ids, rows.embeddings))

    def nearest(self, vector: np.ndarray, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) best first."""
        total = self.count()
        if total == 0:
            return []
        result = self._collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=min(n, total),
            where=where or None,
            include=["distances"],
        )
        return [(id, 1.0 - float(distance)) for id, distance in zip(result["ids"][0], result["distances"][0])]

    # --- sentences ------------------------------------------------------------------

    def sentence_rows(self, paper_ids: Sequence[str], with_embeddings: bool = False) -> Rows:
        """Every stored sentence of these papers (any order)."""
        rows = Rows()
        include = ["documents", "metadatas"] + (["embeddings"] if with_embeddings else [])
        ids = list(dict.fromkeys(paper_ids))
        for start in range(0, len(ids), _WRITE_BATCH):
            chunk = ids[start : start + _WRITE_BATCH]
            where = {"paper_id": chunk[0]} if len(chunk) == 1 else {"paper_id": {"$in": chunk}}
            found = self._sentences.get(where=where, include=include)
            embeddings = found.get("embeddings") if with_embeddings else None
            for index, id in enumerate(found["ids"]):
                vector = embeddings[index] if embeddings is not None else np.zeros(0)
                rows.add(id, vector, found["documents"][index], found["metadatas"][index])
        return rows

    def sentences(self, paper_ids: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """paper id -> (its evidence sentences in abstract order, their embeddings); papers
        with no stored sentences (a store built before the sentence index) are absent."""
        rows = self.sentence_rows(paper_ids, with_embeddings=True)
        grouped: dict[str, list[tuple[int, str, np.ndarray]]] = {}
        for document, meta, vector in zip(rows.documents, rows.metadatas, rows.embeddings):
            grouped.setdefault(meta["paper_id"], []).append((int(meta["position"]), document, vector))
        result = {}
        for paper_id, items in grouped.items():
            items.sort(key=lambda item: item[0])
            result[paper_id] = ([text for _, text, _ in items], np.stack([vector for _, _, vector in items]).astype(np.float32))
        return result

    def sentence_count(self) -> int:
        return self._sentences.count()

    def nearest_sentences(self, vector: np.ndarray, n: int) -> list[tuple[str, str, float]]:
        """(paper id, sentence, cosine similarity), best first, over every sentence stored."""
        total = self._sentences.count()
        if total == 0:
            return []
        result = self._sentences.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=min(n, total),
            include=["documents", "metadatas", "distances"],
        )
        return [
            (meta["paper_id"], document, 1.0 - float(distance))
            for document, meta, distance in zip(result["documents"][0], result["metadatas"][0], result["distances"][0])
        ]

    # --- writing ------------------------------------------------------------------

    def write(self, rows: Rows, sentences: Rows | None = None, sentence_owners: Sequence[str] = ()) -> None:
        """Upsert paper rows and replace the sentences of `sentence_owners` with `sentences`,
        all-or-nothing: on any failure the replaced rows of both collections are restored."""
        sentences = sentences or Rows()
        if not rows.ids and not sentences.ids:
            return
        journal = self.get(rows.ids, with_embeddings=True)
        present = set(journal.ids)
        previously_absent = [id for id in rows.ids if id not in present]
        sentence_journal = self.sentence_rows(sentence_owners, with_embeddings=True)
        try:
            self._delete(self._sentences, sentence_journal.ids)  # an abstract may have lost sentences
            for batch in sentences.batches():
                self._sentences.upsert(
                    ids=batch.ids, embeddings=batch.embeddings, documents=batch.documents, metadatas=batch.metadatas
                )
            for batch in rows.batches():
                self._collection.upsert(
                    ids=batch.ids, embeddings=batch.embeddings, documents=batch.documents, metadatas=batch.metadatas
                )
            self._collection.modify(metadata={_GENERATION_KEY: uuid.uuid4().hex})
        except BaseException as failure:  # Ctrl-C included: restore, then let it propagate
            try:
                self._restore(journal, previously_absent)
                self._delete(self._sentences, sentences.ids)
                self._upsert_all(self._sentences, sentence_journal)
            except Exception as restore_failure:  # e.g. the Chroma server went away mid-write
                raise StoreError(
                    f"writing to {self.location} failed ({failure}) and so did putting the old rows back "
                    f"({restore_failure}): the store may be inconsistent; run the same ingest again to repair it"
                ) from failure
            if isinstance(failure, Exception):
                raise StoreError(f"writing to {self.location} failed, nothing was changed: {failure}") from failure
            raise

    @staticmethod
    def _delete(collection, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _WRITE_BATCH):
            collection.delete(ids=list(ids[start : start + _WRITE_BATCH]))

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
                ids=batch.ids, embeddings=batch.embeddings, documents=batch.documents, metadatas=metadatas
            )
