"""BEIR data: loading a corpus/queries/qrels triple, turning documents into papers, and
the deterministic tuning / held-out split of the judged queries.

Documents without a title (some SciFact exports strip them) get their first sentence as
title and the remaining sentences as abstract, so the embedded and BM25-indexed body holds
every sentence exactly once (see :func:`beir_papers`).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..records import Paper
from .jsonl import read_jsonl
from .metrics import Qrels


@dataclass
class BeirData:
    corpus: list[dict]  # {"_id", "title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: Qrels

    @property
    def judged_query_ids(self) -> list[str]:
        """Queries that have text and at least one relevant document, in file order."""
        return [qid for qid in self.queries if any(r > 0 for r in self.qrels.get(qid, {}).values())]


def read_qrels(path: Path) -> Qrels:
    """BEIR qrels: tab-separated `query-id corpus-id score`, with or without a header."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise InputError(f"{path}:{number}: expected `query-id<TAB>corpus-id<TAB>score`")
            try:
                score = int(float(row[2]))
            except ValueError:
                if number == 1:
                    continue  # the header
                raise InputError(f"{path}:{number}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    return qrels


def load_beir(corpus: Path, queries: Path, qrels: Path) -> BeirData:
    for path in (corpus, queries, qrels):
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}")
    docs = read_jsonl(Path(corpus))
    for number, doc in enumerate(docs, start=1):
        if "_id" not in doc:
            raise InputError(f"{corpus}: record {number} has no `_id`")
        doc["_id"] = str(doc["_id"])
        doc.setdefault("title", "")
        doc.setdefault("text", "")
    query_texts = {str(q["_id"]): str(q.get("text", "")) for q in read_jsonl(Path(queries)) if "_id" in q}
    return BeirData(docs, query_texts, read_qrels(Path(qrels)))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def split_first_sentence(text: str) -> tuple[str, str]:
    text = " ".join(text.split())
    parts = _SENTENCE_END.split(text, maxsplit=1)
    first = parts[0].rstrip(".")
    return first, parts[1] if len(parts) > 1 else ""


def beir_papers(corpus: list[dict]) -> tuple[list[Paper], int]:
    """Paper records keeping the BEIR `_id` as the paper id; also how many had no title.

    A missing title becomes the first sentence, and the abstract the rest, so the body
    holds each sentence once. A document with neither keeps its id as title.
    """
    papers = []
    untitled = 0
    for doc in corpus:
        title, text = str(doc.get("title") or "").strip(), str(doc.get("text") or "")
        if not title:
            untitled += 1
            title, text = split_first_sentence(text)
            title = title or doc["_id"]
        papers.append(Paper(title=title, abstract=text, id=doc["_id"], sources=["beir"]))
    return papers, untitled


def split_queries(query_ids: Sequence[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic halves (tuning, held-out): order by a seeded hash of the id, cut in two.

    Independent of file order, Python version and hash randomisation.
    """
    keyed = sorted(query_ids, key=lambda qid: hashlib.sha1(f"{seed}:{qid}".encode()).hexdigest())
    half = (len(keyed) + 1) // 2
    tune, held = set(keyed[:half]), set(keyed[half:])
    return [q for q in query_ids if q in tune], [q for q in query_ids if q in held]


def select_queries(data: BeirData, split: str = "all", seed: int = 0, limit: int | None = None) -> list[str]:
    ids = data.judged_query_ids
    if split != "all":
        tune, held = split_queries(ids, seed)
        if split in ("tune", "tuning"):
            ids = tune
        elif split in ("heldout", "held-out", "test"):
            ids = held
        else:
            raise InputError(f"--split must be all, tune or heldout, not {split!r}")
    if limit is not None:
        ids = ids[:limit]
    return ids
