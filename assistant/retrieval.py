"""The one retrieval path: dense (Chroma) + BM25 (body and title) fused by weighted RRF.

Answers, summaries, citation lookup, the UI and the evaluation harness all call
:meth:`Retriever.search`, so an improvement here improves every job at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .embeddings import Embedder
from .lexical import LexicalIndex
from .records import Paper, source_key
from .settings import Settings
from .store import PaperStore

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass
class Filters:
    """Metadata filters a researcher can combine; all optional."""

    source: str | None = None
    date: str | None = None
    has_code: bool | None = None

    def chroma_where(self) -> dict | None:
        clauses: list[dict] = []
        if self.source:
            clauses.append({source_key(self.source): True})
        if self.date:
            clauses.append({"date": self.date})
        if self.has_code is not None:
            clauses.append({"has_code": self.has_code})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def accepts(self, paper: Paper) -> bool:
        if self.source and self.source not in paper.sources:
            return False
        if self.date and paper.date != self.date:
            return False
        if self.has_code is not None and bool(paper.code_url) != self.has_code:
            return False
        return True

    @property
    def active(self) -> bool:
        return bool(self.source or self.date or self.has_code is not None)


@dataclass
class Hit:
    """A retrieved paper. `similarity` is the cosine between query and paper embeddings,
    comparable across queries (abstention uses it); `score` is the fused rank score."""

    paper: Paper
    score: float
    similarity: float
    rank: int = 0
    bm25: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "id": self.paper.id,
            "title": self.paper.title,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 4),
            "url": self.paper.code_url or self.paper.url,
            "date": self.paper.date,
            "sources": self.paper.sources,
        }


def reciprocal_rank_fusion(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Weighted RRF: sum of weight / (k + rank) over the rankings an id appears in."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, id in enumerate(ids, start=1):
            fused[id] = fused.get(id, 0.0) + weight / (k + rank)
    return fused


def mmr_select(query: np.ndarray, vectors: np.ndarray, count: int, lambda_: float) -> list[int]:
    """Maximal marginal relevance over normalized vectors: relevant, but not near-duplicates."""
    if len(vectors) == 0:
        return []
    relevance = vectors @ query
    chosen: list[int] = [int(np.argmax(relevance))]
    while len(chosen) < min(count, len(vectors)):
        redundancy = (vectors @ vectors[chosen].T).max(axis=1)
        scores = lambda_ * relevance - (1 - lambda_) * redundancy
        scores[chosen] = -np.inf
        chosen.append(int(np.argmax(scores)))
    return chosen


class Retriever:
    def __init__(self, settings: Settings, store: PaperStore, embedder: Embedder, lexical: LexicalIndex | None) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.lexical = lexical

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: Filters | None = None,
        mmr: bool = False,
        mode: Mode = "hybrid",
        candidates: int | None = None,
    ) -> list[Hit]:
        k = k or self.settings.k
        filters = filters or Filters()
        n = max(candidates or self.settings.candidates, k)
        query_vector = self.embedder.embed_one(query)
        rankings: list[tuple[list[str], float]] = []
        bm25_scores: dict[str, float] = {}
        if mode in ("hybrid", "dense"):
            dense = self.store.nearest(query_vector, n, filters.chroma_where())
            rankings.append(([id for id, _ in dense], self.settings.dense_weight if mode == "hybrid" else 1.0))
        if mode in ("hybrid", "bm25") and self.lexical is not None:
            # Over-fetch when filtering: BM25 filters after ranking.
            fetch = n * 4 if filters.active else n
            body = self.lexical.search(query, fetch)
            bm25_scores = dict(body)
            rankings.append(([id for id, _ in body], self.settings.bm25_weight if mode == "hybrid" else 1.0))
            if mode == "hybrid":
                titles = self.lexical.search_titles(query, fetch)
                rankings.append(([id for id, _ in titles], self.settings.title_weight))
        fused = reciprocal_rank_fusion(rankings, self.settings.rrf_k)
        ordered = sorted(fused, key=lambda id: (-fused[id], id))
        pool = ordered[: max(k * 4, n)] if (mmr or filters.active) else ordered[: k]
        rows = self.store.get(pool, with_embeddings=True)
        by_id = {id: (Paper.from_metadata(meta), vec) for id, meta, vec in zip(rows.ids, rows.metadatas, rows.embeddings)}
        hits = []
        for id in pool:
            if id not in by_id:
                continue  # the BM25 index can briefly lag a concurrent delete
            paper, vector = by_id[id]
            if not filters.accepts(paper):
                continue
            vector = np.asarray(vector, dtype=np.float32)
            hits.append(Hit(paper, fused[id], float(vector @ query_vector), bm25=bm25_scores.get(id), embedding=vector))
        if mmr and hits:
            order = mmr_select(query_vector, np.stack([h.embedding for h in hits]), k, self.settings.mmr_lambda)
            hits = [hits[i] for i in order]
        hits = hits[:k]
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return hits

    def related(self, paper_id: str, k: int = 5) -> list[Hit]:
        """Nearest papers to one paper by its stored embedding."""
        vectors = self.store.embeddings([paper_id])
        if paper_id not in vectors:
            return []
        vector = np.asarray(vectors[paper_id], dtype=np.float32)
        neighbours = [(id, sim) for id, sim in self.store.nearest(vector, k + 1) if id != paper_id][:k]
        papers = self.store.papers([id for id, _ in neighbours])
        return [
            Hit(papers[id], sim, sim, rank=rank)
            for rank, (id, sim) in enumerate(neighbours, start=1)
            if id in papers
        ]
