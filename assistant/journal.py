"""The undo journal of a store write: what one batch replaces, kept until it commits.

It lives in a Chroma collection of its own (``<collection>-journal``) rather than in a file
beside the store, so that every client of the same Chroma server, not only the process
that wrote it, can roll back a batch whose writer died (see store.py for the protocol).
The journal is JSON (ids the batch adds, the ids whose sentences it replaces, and the paper
and sentence rows it overwrites, embeddings included), cut into rows of at most
``CHUNK`` characters; a journal missing some of its rows was itself cut short, which means
the batch's rows were never written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .writes import Rows, rows_from_json, rows_to_json

CHUNK = 1_000_000  # characters of journal JSON per journal row


@dataclass
class Entry:
    """One batch's undo record."""

    absent: list[str]  # paper ids the batch adds (deleted on rollback)
    owners: list[str]  # paper ids whose sentence rows the batch replaces
    papers: Rows  # paper rows as they were before the batch
    sentences: Rows  # those papers' sentence rows as they were


class UndoJournal:
    def __init__(self, client, collection: str) -> None:
        self._client = client
        self._name = f"{collection}-journal"

    def _collection(self):
        return self._client.get_or_create_collection(
            name=self._name, embedding_function=None, configuration={"hnsw": {"space": "l2"}}
        )

    def save(self, token: str, entry: Entry) -> None:
        text = json.dumps({
            "absent": entry.absent, "owners": entry.owners,
            "papers": rows_to_json(entry.papers), "sentences": rows_to_json(entry.sentences),
        })
        parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
        self._collection().upsert(
            ids=[f"{token}:{i}" for i in range(len(parts))],
            embeddings=[[1.0]] * len(parts),
            documents=parts,
            metadatas=[{"token": token, "part": i, "parts": len(parts)} for i in range(len(parts))],
        )

    def load(self, token: str) -> Entry | None:
        """The batch's record; None when nothing (or not all of it) was written, i.e. the
        batch never reached its rows."""
        found = self._collection().get(where={"token": token}, include=["documents", "metadatas"])
        if not found["ids"]:
            return None  # marked pending, but nothing was written yet
        parts = sorted(zip(found["metadatas"], found["documents"]), key=lambda item: item[0]["part"])
        if len(parts) != parts[0][0]["parts"]:
            return None  # the journal itself was cut short: the batch's rows were never written
        data = json.loads("".join(document for _, document in parts))
        return Entry(data["absent"], data["owners"], rows_from_json(data["papers"]), rows_from_json(data["sentences"]))

    def drop(self) -> None:
        try:
            collection = self._collection()
            ids = collection.get(include=[])["ids"]
            if ids:
                collection.delete(ids=ids)
        except Exception:  # noqa: BLE001 - leftovers are ignored and dropped by the next write
            pass
