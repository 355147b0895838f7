"""Rebuilding a local store whose Chroma vector index was damaged.

Chroma 1.5 saves a collection's HNSW index by rewriting its files in place, then its id
map, then the position it reached in its log, with no fsync and no atomic swap, and it
purges the log up to that position. A kill, crash or power loss during a save (at scale,
every few seconds of an ingest) leaves an index it cannot load ("Failed to apply logs to
the hnsw segment writer", "Error deserializing pickle file"), and since the log is gone
it cannot rebuild it either: every read of that collection fails from then on.

The papers themselves are not in the index: each paper's whole record lives in Chroma's
SQLite database (the metadata segment), written transactionally. So the store is rebuilt
from there: the committed papers are read straight from SQLite (Chroma cannot read a
collection whose index it cannot load), an unfinished batch is undone from its journal
as `PaperStore.recover` would, and everything is ingested afresh into a new directory,
re-embedding papers and sentences, into a directory beside the store; only then is the
damaged directory moved aside (renamed, kept until the user deletes it) and the new one put
in its place. A repair that fails, is stopped or killed before that leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .embeddings import backend_for_family
from .errors import StoreError
from .library import Library
from .progress import Progress
from .records import Paper
from .settings import Settings
from .chroma_client import signals_held
from .writes import StoreState, WriterLock, rows_from_json


@dataclass
class RepairReport:
    papers: int  # papers in the rebuilt store
    undone: int  # papers of an unfinished batch left out (added by it) or put back (changed by it)
    damaged_copy: Path  # where the damaged directory was moved
    seconds: float


def repair_store(settings: Settings, progress: Progress | None = None) -> RepairReport:
    """Rebuild the local store at settings.store_dir from the papers its database holds."""
    if settings.chroma_url:
        raise StoreError("repair rebuilds a local store; a Chroma server's index is the server's to repair")
    database = settings.chroma_dir / "chroma.sqlite3"
    if not database.is_file():
        raise StoreError(f"there is no store at {settings.store_dir} to repair (no {database})")
    started = time.perf_counter()
    with WriterLock(settings):
        papers, undone, family = committed_papers(database, settings.collection)
        build = settings.store_dir / ".repair"  # built beside the store: a kill before the swap leaves the store as it was
        shutil.rmtree(build, ignore_errors=True)
        backend = backend_for_family(settings.embedding_backend, family)  # the vectors stay in the store's family
        rebuilt = Library(settings.with_overrides(store_dir=build, embedding_backend=backend))
        rebuilt.ingest_papers(papers, progress=progress)
        _let_go(build / "chroma")
        damaged = settings.store_dir / f"chroma.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        with signals_held():
            settings.chroma_dir.rename(damaged)
            (build / "chroma").rename(settings.chroma_dir)
        shutil.rmtree(build, ignore_errors=True)
    return RepairReport(len(papers), undone, damaged, time.perf_counter() - started)


def _let_go(chroma_dir: Path) -> None:
    """Stop the Chroma system that built the new store before its directory is moved, so
    nothing of it writes to the old path afterwards."""
    from chromadb.api.shared_system_client import SharedSystemClient

    system = SharedSystemClient._identifier_to_system.pop(str(chroma_dir), None)
    if system is not None:
        system.stop()


def committed_papers(database: Path, collection: str) -> tuple[list[Paper], int, str]:
    """The papers of every committed batch (an unfinished batch undone from its journal),
    how many papers undoing touched, and the store's embedding family."""
    # Read-write (the ingest lock is held): a process killed mid-transaction leaves a journal
    # that only a writable connection may roll back before reading.
    try:
        with contextlib.closing(sqlite3.connect(database)) as connection:
            return _committed_papers(connection, collection)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the store's database {database} ({exc}): nothing can be rebuilt from it") from exc


def _committed_papers(connection: sqlite3.Connection, collection: str) -> tuple[list[Paper], int, str]:
    metadata = _collection_metadata(connection, collection)
    state = StoreState(str(metadata.get("generation", "")), int(metadata.get("seq", 0) or 0), str(metadata.get("pending", "") or ""))
    records = _values(connection, collection, "record")
    undone = 0
    if state.pending_token:
        journal = _journal(connection, f"{collection}-journal", state.pending_token)
        if journal is not None:
            for id in journal["absent"]:
                undone += records.pop(id, None) is not None
            old = rows_from_json(journal["papers"])
            for id, meta in zip(old.ids, old.metadatas):
                records[id] = meta["record"]
                undone += 1
    return [Paper(**json.loads(record)) for record in records.values()], undone, str(metadata.get("embedding_family", "fp32"))


def _collection_metadata(connection: sqlite3.Connection, name: str) -> dict:
    row = connection.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = ", ".join(sorted(n for (n,) in connection.execute("SELECT name FROM collections")))
        raise StoreError(f"the store's database has no collection {name!r} (it has: {names or 'none'}): set ASSISTANT_COLLECTION")
    return {
        key: next((v for v in values if v is not None), None)
        for key, *values in connection.execute(
            "SELECT key, str_value, int_value, float_value, bool_value FROM collection_metadata WHERE collection_id = ?", (row[0],)
        )
    }


def _values(connection: sqlite3.Connection, collection: str, key: str, ids_like: str = "%", column: str = "string_value") -> dict:
    """id -> metadata `key` (from `column`) of the collection's rows whose id is LIKE
    `ids_like`, read from its metadata segment (the document is the key 'chroma:document')."""
    query = f"""
        SELECT e.embedding_id, m.{column}
        FROM embeddings e
        JOIN segments s ON s.id = e.segment_id
        JOIN collections c ON c.id = s.collection
        JOIN embedding_metadata m ON m.id = e.id
        WHERE c.name = ? AND s.scope = 'METADATA' AND m.key = ? AND e.embedding_id LIKE ?
    """
    return dict(connection.execute(query, (collection, key, ids_like)))


def _journal(connection: sqlite3.Connection, name: str, token: str) -> dict | None:
    """The unfinished batch's undo record, None when it was never wholly written (so the
    batch never reached its rows: see journal.UndoJournal.load)."""
    parts = sorted(_values(connection, name, "chroma:document", f"{token}:%").items(), key=lambda item: int(item[0].rsplit(":", 1)[1]))
    expected = _values(connection, name, "parts", f"{token}:0", column="int_value").get(f"{token}:0")
    if not parts or expected != len(parts):
        return None
    return json.loads("".join(document for _, document in parts))
