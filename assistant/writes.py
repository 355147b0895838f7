"""What one store write carries and what the store says about writes in progress.

:class:`Rows` are rows as Chroma takes them (also the undo journal of a write, stored
as JSON by :func:`rows_to_json`); :class:`StoreState` is the papers collection's
metadata: generation, commit sequence and the pending mark of a batch being written,
with whether that writer is still alive; :func:`estimated_bytes` is the disk a write
needs, checked before it starts. The write protocol itself is in :mod:`assistant.store`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import StoreError
from .settings import Settings

WRITE_BATCH = 256
LEASE_SECONDS = 600  # a pending mark older than this is an abandoned write, whoever made it

# Tokens of the writes this process is running now. A pending mark carrying this
# process's pid but none of these tokens was left by a write of ours that failed and
# could not clear it: it is abandoned, not "alive" (else the next write waits out the lease).
ACTIVE_TOKENS: set[str] = set()


@dataclass(frozen=True)
class StoreState:
    """The papers collection's metadata: what the BM25 index and caches key on."""

    generation: str
    seq: int
    pending: str  # "" or "token|host|pid|unix time" of a batch being written

    @property
    def pending_token(self) -> str:
        return self.pending.split("|", 1)[0] if self.pending else ""

    def writer_alive(self) -> bool:
        """Is the writer that marked the store pending still at it?"""
        if not self.pending:
            return False
        try:
            _, host, pid, started = self.pending.split("|")
            pid_, started_ = int(pid), float(started)
        except ValueError:
            return False
        if time.time() - started_ > LEASE_SECONDS:
            return False
        if host == socket.gethostname():
            if pid_ == os.getpid():
                return self.pending_token in ACTIVE_TOKENS
            try:
                os.kill(pid_, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True


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

    def batches(self, size: int = WRITE_BATCH) -> Iterable["Rows"]:
        for start in range(0, len(self.ids), size):
            end = start + size
            yield Rows(self.ids[start:end], self.embeddings[start:end], self.documents[start:end], self.metadatas[start:end])


def rows_to_json(rows: Rows) -> dict:
    """Rows as JSON for the undo journal (embeddings as base64 float32)."""
    vectors = np.stack(rows.embeddings).astype(np.float32) if rows.ids else np.zeros((0, 0), dtype=np.float32)
    return {
        "ids": rows.ids,
        "documents": rows.documents,
        "metadatas": rows.metadatas,
        "shape": list(vectors.shape),
        "embeddings": base64.b64encode(vectors.tobytes()).decode(),
    }


def rows_from_json(data: dict) -> Rows:
    vectors = np.frombuffer(base64.b64decode(data["embeddings"]), dtype=np.float32).reshape(data["shape"])
    return Rows(list(data["ids"]), list(vectors), list(data["documents"]), list(data["metadatas"]))


def estimated_bytes(*parts: Rows) -> int:
    """Disk a Chroma 1.x local store grows by when these rows are written, with room to
    spare: measured on the shipped corpus (446 papers and 3,881 sentences: 24.5 MB from
    2.4 MB of text and 6.6 MB of vectors) it is about 2x the vectors (log, HNSW) + 4x the
    text (log, metadata segment, full-text index) + ~400 bytes a row; one more copy of
    text and vectors covers the undo journal of rows being replaced."""
    text = vectors = count = 0
    for rows in parts:
        count += len(rows.ids)
        vectors += sum(np.asarray(vector).nbytes for vector in rows.embeddings)
        text += sum(len(document.encode("utf-8")) for document in rows.documents)
        text += sum(len(json.dumps(meta, ensure_ascii=False)) for meta in rows.metadatas)
    return 5 * text + 3 * vectors + 512 * count


class WriterLock:
    """One ingest at a time per local store, across processes: an exclusive lock on
    `<store>/ingest.lock`, held for the whole ingest; a second ingest gets a clear error
    instead of interleaving its writes. (A Chroma server's writers take turns through the
    store's pending mark instead, see store.py.)"""

    _held: dict[tuple[str, int], int] = {}  # (lock path, thread) -> nesting depth: a repair ingests under its own lock

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._handle = None
        self._key = (str(settings.store_dir / "ingest.lock"), threading.get_ident())

    def __enter__(self) -> "WriterLock":
        if self.settings.chroma_url:
            return self
        if self._key in WriterLock._held:
            WriterLock._held[self._key] += 1
            return self
        import errno
        import fcntl
        import os

        path = self.settings.store_dir / "ingest.lock"
        try:
            self.settings.store_dir.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):  # said now, before any reading or embedding
                raise StoreError(
                    f"cannot open the store at {self.settings.store_dir} for writing ({exc.strerror}): "
                    "make it writable, or ingest into another --store"
                ) from None
            return self  # the store itself will say what is wrong with the directory
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise StoreError(
                f"another ingest is writing to {self.settings.store_dir}"
                + (f" (process {holder})" if holder else "")
                + "; wait for it to finish, then run this one again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        WriterLock._held[self._key] = 1
        return self

    def __exit__(self, *exc) -> None:
        if self._key in WriterLock._held and self._handle is None:
            WriterLock._held[self._key] -= 1
            return
        WriterLock._held.pop(self._key, None)
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
