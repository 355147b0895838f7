"""The one retrieval path: dense (Chroma) + BM25 (body and title), fused.

Fusion is a weighted sum of scaled scores by default (`fusion = "convex"`: cosine +
BM25 as a share of the query's attainable BM25 score),
weighted reciprocal rank fusion on request (`fusion = "rrf"`); weights are tuned on
SciFact by benchmarks/tune_retrieval.py.

Answers, summaries, citation lookup, the UI and the evaluation harness all call
:meth:`Retriever.search`, so an improvement here improves every job at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import InputError
from .embeddings import Embedder
from .lexical import LexicalIndex
from .records import Paper, source_key
from .settings import Settings
from .sentence_reads import counts_of
from .store import PaperStore

Mode = Literal["hybrid", "dense", "bm25", "sentence"]


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
    # From the sentence index: the best query-sentence cosine of the paper, and its
    # evidence sentences with their stored vectors (reused as evidence, not re-embedded).
    sentence_score: float | None = None
    sentences: list[str] | None = field(default=None, repr=False)
    sentence_vectors: np.ndarray | None = field(default=None, repr=False)

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


@dataclass
class Ranking:
    """One ranker's candidates: its own order, its raw scores, and the scale that maps
    those scores into [0, 1] for convex fusion.

    `scores` may cover more ids than `ranked` (dense cosines are exact for every
    candidate any ranker found, since their embeddings are fetched anyway); ids
    without a score contribute nothing from this ranker. `scale` None means the best
    score among the candidates.
    """

    name: str
    weight: float
    ranked: list[str]
    scores: dict[str, float]
    scale: float | None = None


def reciprocal_rank_fusion(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Weighted RRF: sum of weight / (k + rank) over the rankings an id appears in."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, id in enumerate(ids, start=1):
            fused[id] = fused.get(id, 0.0) + weight / (k + rank)
    return fused


def convex_fusion(rankings: list[Ranking]) -> dict[str, float]:
    """Weighted sum of scaled scores: sum of weight * max(score, 0) / scale.

    With the scales Retriever.search passes, each term lies in [0, weight] on an
    absolute scale: the dense term is the cosine itself, the BM25 terms are the score
    as a share of the best score the query's terms can reach in the index
    (LexicalIndex.ceiling). A rare identifier matched in full therefore counts a lot;
    a query whose only BM25 matches are a common word or two counts little, instead of
    its best weak match being stretched to 1 as min-max or max normalization would.
    Tuned on SciFact (benchmarks/RETRIEVAL.md) it beats weighted RRF by about 0.01-0.02
    nDCG@10.
    """
    fused: dict[str, float] = {}
    for ranking in rankings:
        scale = ranking.scale if ranking.scale is not None else max(ranking.scores.values(), default=0.0)
        if ranking.weight <= 0 or scale <= 0:
            continue
        for id, score in ranking.scores.items():
            if score > 0:
                fused[id] = fused.get(id, 0.0) + ranking.weight * score / scale
    for ranking in rankings:  # a candidate every ranker scored at 0 is still a candidate
        for id in ranking.ranked:
            fused.setdefault(id, 0.0)
    return fused


def fuse(rankings: list[Ranking], method: str, rrf_k: int) -> dict[str, float]:
    """The fusion step every search goes through: `convex` (default) or `rrf`."""
    if method == "rrf":
        return reciprocal_rank_fusion([(r.ranked, r.weight) for r in rankings], rrf_k)
    if method == "convex":
        return convex_fusion(rankings)
    raise InputError(f"fusion must be 'convex' or 'rrf', not {method!r}")


def fuse_candidates(
    lists: dict[str, list[tuple[str, float]]],
    similarity: dict[str, float],
    weights: dict[str, float],
    method: str,
    rrf_k: int,
    scales: dict[str, float | None] | None = None,
) -> list[tuple[str, float]]:
    """Rankers' candidate lists -> (id, fused score), best first; ties broken by id.

    `similarity` holds the exact query cosine of every admissible candidate (those
    that passed the filters): other ids are dropped. The dense ranker is scored by
    these cosines for every candidate (scale 1: the cosine itself), the BM25 rankers by
    their own scores over `scales[name]` (their ceiling; the best candidate's score if
    not given). The tuning script calls this very function, so what it tunes is what runs.
    """
    scales = scales or {}
    rankings = []
    for name, items in lists.items():
        ranked = [id for id, _ in items if id in similarity]
        if name == "dense":
            rankings.append(Ranking(name, weights.get(name, 0.0), ranked, similarity, 1.0))
        else:
            scores = {id: s for id, s in items if id in similarity}
            rankings.append(Ranking(name, weights.get(name, 0.0), ranked, scores, scales.get(name)))
    fused = fuse(rankings, method, rrf_k)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def best_per_paper(sentence_hits: list[tuple[str, str, float]]) -> list[tuple[str, float]]:
    """Nearest sentences -> (paper id, its best sentence cosine), best first."""
    best: dict[str, float] = {}
    for paper_id, _, similarity in sentence_hits:
        if paper_id not in best:
            best[paper_id] = similarity
    return list(best.items())


def rerank_with_sentences(
    fused: dict[str, float], pool: list[str], best_sentence: dict[str, float], similarity: dict[str, float], weight: float
) -> dict[str, float]:
    """Add `weight` x the best query-sentence cosine to each pooled candidate's fused score
    and put the pool, so re-ranked, ahead of the rest (which keep their order).

    A question in a person's own words often paraphrases one sentence of the paper that
    answers it while sharing little with the abstract as a whole: the best sentence
    says more than the whole-abstract cosine. A paper with no stored sentences (a store
    built before the sentence index) counts its whole-abstract cosine instead. The
    tuning script calls this very function.
    """
    rescored = {
        id: fused.get(id, 0.0) + weight * best_sentence.get(id, similarity.get(id, 0.0)) for id in dict.fromkeys(pool)
    }  # a paper found only through one of its sentences enters with a fused score of 0
    ordered = sorted(rescored.items(), key=lambda item: (-item[1], item[0]))
    rest = [(id, score) for id, score in fused.items() if id not in rescored]
    return dict(ordered + rest)


def sentence_pool(fused: dict[str, float], sentence_list: list[tuple[str, float]], depth: int, admissible: dict) -> list[str]:
    """What gets re-ranked: the best `depth` fused candidates and every admissible paper
    one of whose sentences is among the nearest to the query."""
    return list(dict.fromkeys(list(fused)[:depth] + [id for id, _ in sentence_list if id in admissible]))


def mmr_select(relevance: np.ndarray, vectors: np.ndarray, count: int, lambda_: float) -> list[int]:
    """Maximal marginal relevance over normalized vectors: relevant, but not near-duplicates.

    `relevance` is on the cosine scale of the query-paper similarity, comparable with
    the paper-paper cosine redundancy it is traded against.
    """
    if len(vectors) == 0:
        return []
    relevance = np.asarray(relevance, dtype=np.float32)
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

    def weights(self, mode: Mode) -> dict[str, float]:
        if mode == "hybrid":
            return {
                "dense": self.settings.dense_weight,
                "bm25": self.settings.bm25_weight,
                "title": self.settings.title_weight,
                "sentence": self.settings.sentence_weight,
            }
        return {mode: 1.0}

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        filters: Filters | None = None,
        mmr: bool = False,
        mode: Mode = "hybrid",
        candidates: int | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The top `k` papers for `query`. `query_vector`, if given, is the query's
        embedding computed beforehand (the evaluation harness embeds its queries in
        batches); otherwise the query is embedded here."""
        k = k or self.settings.k
        filters = filters or Filters()
        n = max(candidates or self.settings.candidates, k)
        weights = self.weights(mode)
        if query_vector is None:
            query_vector = self.embedder.embed_one(query)
        query_vector = np.asarray(query_vector, dtype=np.float32)

        # 1. Candidates from each ranker (Chroma filters itself; BM25 over-fetches, then filters).
        lists: dict[str, list[tuple[str, float]]] = {}
        scales: dict[str, float | None] = {}
        if "dense" in weights:
            lists["dense"] = self.store.nearest(query_vector, n, filters.chroma_where())
        if weights.get("sentence", 0) > 0:
            lists["sentence"] = best_per_paper(self.store.nearest_sentences(query_vector, self.settings.sentence_candidates))
        if self.lexical is not None:
            fetch = n * 4 if filters.active else n
            if "bm25" in weights:
                lists["bm25"] = self.lexical.search(query, fetch)
                scales["bm25"] = self.lexical.ceiling(query)
            if weights.get("title", 0) > 0:
                lists["title"] = self.lexical.search_titles(query, fetch)
                scales["title"] = self.lexical.title_ceiling(query)

        # 2. Every candidate's vector, for exact cosines. Metadata is 4x dearer to read
        #    (store.embeddings), so it is read for all candidates only when filters need it,
        #    else for the papers re-ranked by their sentences and the papers returned.
        pool = list(dict.fromkeys(id for items in lists.values() for id, _ in items))
        metas: dict[str, dict] = {}
        papers: dict[str, Paper] = {}
        if filters.active:
            rows = self.store.get(pool, with_embeddings=True)
            metas = dict(zip(rows.ids, rows.metadatas))
            papers = {id: Paper.from_metadata(meta) for id, meta in metas.items()}
            vectors = {id: np.asarray(vec, dtype=np.float32) for id, vec in zip(rows.ids, rows.embeddings) if filters.accepts(papers[id])}
        else:
            vectors = self.store.embeddings(pool)
        # (an id missing from `vectors` is a BM25 entry lagging a concurrent delete, or filtered out)
        similarity = {id: float(vec @ query_vector) for id, vec in vectors.items()}

        # 3. Fusion of the paper-level rankers, then the best candidates (and every paper
        #    one of whose sentences matched closely) re-ranked with their best sentence.
        paper_lists = {name: items for name, items in lists.items() if name != "sentence"}
        fused = dict(fuse_candidates(paper_lists, similarity, weights, self.settings.fusion, self.settings.rrf_k, scales))
        best: dict[str, float] = {}
        if "sentence" in lists:
            if mode == "sentence":
                fused = {id: 0.0 for id in similarity}
            pool = sentence_pool(fused, lists["sentence"], self.settings.rerank_depth, similarity)
            metas.update(self.store.metadatas([id for id in pool if id not in metas]))
            counts = counts_of({id: metas[id] for id in pool if id in metas})
            # Vectors alone for the pool; text only for the papers returned (below).
            pool_vectors = self.store.sentence_vectors(counts)
            uncounted = [id for id in pool if id not in counts]  # rows from before counts were kept
            if uncounted:
                pool_vectors.update({id: matrix for id, (_, matrix) in self.store.sentences(uncounted, counts={}).items()})
            best = {id: float((matrix @ query_vector).max()) for id, matrix in pool_vectors.items() if len(matrix)}
            fused = rerank_with_sentences(fused, pool, best, similarity, weights["sentence"])
        ordered = list(fused)
        ordered = ordered[: max(k * 4, n)] if mmr else ordered[:k]
        metas.update(self.store.metadatas([id for id in ordered if id not in metas]))
        returned = [id for id in ordered if id in best]  # the re-ranked papers returned
        sentence_data: dict[str, tuple[list[str], np.ndarray]] = self.store.sentences(returned, counts={id: counts[id] for id in returned if id in counts}) if returned else {}

        bm25_scores = dict(lists.get("bm25", []))
        hits = []
        for id in ordered:
            if id not in metas:
                continue  # deleted by a concurrent ingest since its vector was read
            paper = papers.get(id) or Paper.from_metadata(metas[id])
            hit = Hit(paper, fused[id], similarity[id], bm25=bm25_scores.get(id), embedding=vectors[id])
            if id in sentence_data:
                hit.sentences, hit.sentence_vectors = sentence_data[id]
                hit.sentence_score = best.get(id)
            hits.append(hit)
        if mmr and hits:
            # Fused scores mapped onto the cosine scale MMR trades against redundancy
            # (in dense mode these are exactly the cosines).
            best = max(hits[0].score, 1e-9)
            relevance = np.array([hits[0].similarity * max(h.score, 0.0) / best for h in hits])
            order = mmr_select(relevance, np.stack([h.embedding for h in hits]), k, self.settings.mmr_lambda)
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
