"""The retrieval harness: a throwaway index built from a BEIR corpus, every query run
through the one retrieval path (:meth:`assistant.retrieval.Retriever.search`) in each
mode, and the IR metrics of each mode.

The index lives in a temporary store directory, deleted afterwards. When most of a
corpus lacks titles, the title BM25 field would see each document's lead sentence a
second time (it became the title, see :func:`.beir.beir_papers`), so the title ranking
is switched off for the run (``title_weight = 0``) instead of counting it twice.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..progress import Progress, report
from ..records import Paper
from ..settings import Settings
from .beir import BeirData, beir_papers
from .metrics import evaluate_run

MODES = ("dense", "bm25", "sentence", "hybrid")
DEEP_K = 100  # depth retrieved for Recall@100


@dataclass
class RetrievalReport:
    metrics: dict[str, dict[str, float]]  # mode -> metric -> value
    queries: int
    documents: int
    untitled: int = 0
    settings: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {mode: {k: round(v, 4) for k, v in values.items()} for mode, values in self.metrics.items()}


class EvalIndex:
    """A throwaway (or reused) store filled from a BEIR corpus.

    With ``store_dir=None`` a temporary directory is created and removed by :meth:`close`;
    an explicit directory is kept (the tuning script reuses one across runs).
    """

    def __init__(self, settings: Settings | None = None, store_dir: Path | None = None) -> None:
        from ..library import Library

        base = settings or Settings()
        self._temporary = store_dir is None
        self.store_dir = Path(tempfile.mkdtemp(prefix="assistant-eval-")) if store_dir is None else Path(store_dir)
        # Local store only: never the user's store, never a configured Chroma server.
        self.settings = base.with_overrides(store_dir=self.store_dir, collection="eval").model_copy(
            update={"chroma_url": None}
        )
        self.library = Library(self.settings)

    def ingest(self, papers: list[Paper], progress: Progress | None = None) -> None:
        if self.library.count() == len(papers) and not self._temporary:
            known = self.library.store.get([p.id for p in papers[:50]])
            if len(known.ids) == min(50, len(papers)):
                return  # reused store already holds this corpus
        self.library.ingest_papers(papers, progress=progress)

    def retriever(self, **overrides: object):
        from ..retrieval import Retriever

        library = self.library
        settings = library.settings.model_copy(update=overrides) if overrides else library.settings
        return Retriever(settings, library.store, library.embedder, library._lexical_index())

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> "EvalIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_queries(
    retriever,
    queries: dict[str, str],
    query_ids: Sequence[str],
    mode: str,
    on_query: Callable[[], None] | None = None,
    vectors: dict[str, np.ndarray] | None = None,
) -> dict[str, list[str]]:
    """Ranked doc ids, DEEP_K deep, for each query through Retriever.search.

    The top 10 come from a search with the configured candidate depth, exactly what the
    assistant itself retrieves; Recall@100 needs a deeper second search when fewer than
    100 candidates are configured. `vectors` are precomputed query embeddings
    (see :func:`embed_queries`); without them each search embeds its query.
    """
    run: dict[str, list[str]] = {}
    candidates = retriever.settings.candidates
    vectors = vectors or {}
    for qid in query_ids:
        text, vector = queries[qid], vectors.get(qid)
        deep = [h.paper.id for h in retriever.search(text, DEEP_K, mode=mode, candidates=max(candidates, DEEP_K), query_vector=vector)]
        if candidates < DEEP_K:
            top = [h.paper.id for h in retriever.search(text, 10, mode=mode, query_vector=vector)]
            deep = top + [doc for doc in deep if doc not in set(top)]
        run[qid] = deep
        if on_query:
            on_query()
    return run


def embed_queries(embedder, queries: dict[str, str], query_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Every query embedded once, in batches: much faster than one at a time, and the
    vectors match what Retriever.search would compute (up to float rounding)."""
    vectors = embedder.embed([queries[qid] for qid in query_ids])
    return dict(zip(query_ids, vectors))


def evaluate_retrieval(
    data: BeirData,
    query_ids: Sequence[str],
    settings: Settings | None = None,
    *,
    modes: Sequence[str] = MODES,
    store_dir: Path | None = None,
    progress: Progress | None = None,
) -> RetrievalReport:
    """Index the corpus in a throwaway store and score every mode on the given queries.
    `progress` gets (done, total, message) for the indexing, then for the queries."""
    papers, untitled = beir_papers(data.corpus)
    overrides: dict[str, object] = {}
    if untitled * 2 > len(papers):
        overrides["title_weight"] = 0.0
    qrels = {qid: data.qrels[qid] for qid in query_ids}
    metrics: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    runs: dict[str, dict[str, list[str]]] = {}
    with EvalIndex(settings, store_dir) as index:
        started = time.perf_counter()
        index.ingest(papers, progress=progress)
        seconds["index"] = time.perf_counter() - started
        retriever = index.retriever(**overrides)
        vectors = embed_queries(index.library.embedder, data.queries, query_ids)
        total = len(query_ids) * len(modes)
        done = 0
        for mode in modes:

            def on_query(mode: str = mode) -> None:
                nonlocal done
                done += 1
                report(progress, done, total, f"queries ({mode})")

            started = time.perf_counter()
            runs[mode] = run_queries(retriever, data.queries, query_ids, mode, on_query=on_query, vectors=vectors)
            seconds[mode] = time.perf_counter() - started
            metrics[mode] = evaluate_run(runs[mode], qrels)
        used = retriever.settings
    return RetrievalReport(
        metrics=metrics,
        queries=len(query_ids),
        documents=len(papers),
        untitled=untitled,
        settings={
            name: getattr(used, name)
            for name in ("fusion", "candidates", "rrf_k", "dense_weight", "bm25_weight", "title_weight")
        },
        seconds=seconds,
        runs=runs,
    )
