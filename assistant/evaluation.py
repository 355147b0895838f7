"""Retrieval and answer evaluation: BEIR loading, IR metrics, and the two harnesses.

Retrieval evaluation builds a throwaway index (a temporary store directory, deleted
afterwards) from a BEIR-layout corpus and runs every query through the one retrieval
path, :meth:`assistant.retrieval.Retriever.search`, in each mode (dense, bm25, hybrid).

Metrics follow the BEIR / trec_eval definitions:

- nDCG@k: gain = the graded relevance from the qrels (trec_eval's linear gain, as BEIR
  reports it), discount 1/log2(rank + 1), normalised by the ideal DCG of the query's
  judged documents sorted by relevance.
- Recall@k: relevant documents (relevance > 0) in the top k / all relevant documents.
- MRR@k: 1 / rank of the first relevant document in the top k, 0 if none.

Queries without any relevant document in the qrels are not scored (BEIR does the same).

Documents without a title (some SciFact exports strip them) get their first sentence as
title and the remaining sentences as abstract, so the embedded and BM25-indexed body holds
every sentence exactly once. The title BM25 field would still see that first sentence a
second time, so when most of a corpus lacks titles the title ranking is switched off for
the run (``title_weight = 0``) instead of counting the lead sentence twice.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .progress import Progress, report
from .records import Paper
from .settings import Settings

MODES = ("dense", "bm25", "hybrid")
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
DEEP_K = 100  # depth retrieved for Recall@100

Qrels = dict[str, dict[str, int]]  # query id -> {doc id: relevance}


# --- metrics ---------------------------------------------------------------------------


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: gain at rank r (1-based) divided by log2(r + 1)."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int) -> float:
    """nDCG@k with graded gains; 0 when the query has no relevant document."""
    ideal = dcg(sorted((r for r in relevance.values() if r > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    gains = [max(relevance.get(doc, 0), 0) for doc in _unique(ranked)[:k]]
    return dcg(gains) / ideal


def recall_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int) -> float:
    relevant = {doc for doc, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_unique(ranked)[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int) -> float:
    for rank, doc in enumerate(_unique(ranked)[:k], start=1):
        if relevance.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def _unique(ranked: Sequence[str]) -> list[str]:
    """A document counts once, at its best rank."""
    seen: set[str] = set()
    out = []
    for doc in ranked:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def query_metrics(ranked: Sequence[str], relevance: dict[str, int]) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at_k(ranked, relevance, 10),
        "recall@10": recall_at_k(ranked, relevance, 10),
        "recall@100": recall_at_k(ranked, relevance, 100),
        "mrr@10": mrr_at_k(ranked, relevance, 10),
    }


def mean_metrics(per_query: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(per_query)
    if not rows:
        return {name: 0.0 for name in METRICS}
    return {name: sum(row[name] for row in rows) / len(rows) for name in METRICS}


def evaluate_run(run: dict[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Mean metrics over the judged queries (those with a relevant doc); a query missing
    from the run scores 0."""
    judged = [qid for qid, rel in qrels.items() if any(r > 0 for r in rel.values())]
    return mean_metrics(query_metrics(run.get(qid, []), qrels[qid]) for qid in judged)


# --- BEIR data -------------------------------------------------------------------------


@dataclass
class BeirData:
    corpus: list[dict]  # {"_id", "title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: Qrels

    @property
    def judged_query_ids(self) -> list[str]:
        """Queries that have text and at least one relevant document, in file order."""
        return [qid for qid in self.queries if any(r > 0 for r in self.qrels.get(qid, {}).values())]


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON: {exc.msg}") from exc
    return rows


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
    docs = _read_jsonl(Path(corpus))
    for number, doc in enumerate(docs, start=1):
        if "_id" not in doc:
            raise InputError(f"{corpus}: record {number} has no `_id`")
        doc["_id"] = str(doc["_id"])
        doc.setdefault("title", "")
        doc.setdefault("text", "")
    query_texts = {str(q["_id"]): str(q.get("text", "")) for q in _read_jsonl(Path(queries)) if "_id" in q}
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


# --- retrieval harness -----------------------------------------------------------------

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
        from .library import Library

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
        from .retrieval import Retriever

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


# --- answer harness --------------------------------------------------------------------


@dataclass
class AnswerCase:
    question: str
    expected_ids: list[str]


def load_questions(path: Path) -> list[AnswerCase]:
    """JSONL of {"question": ..., "expected_ids": [...]} ("ids" accepted too)."""
    if not Path(path).is_file():
        raise InputError(f"no such file: {path}")
    cases = []
    for number, row in enumerate(_read_jsonl(Path(path)), start=1):
        question = str(row.get("question") or "").strip()
        if not question:
            raise InputError(f"{path}: record {number} has no `question`")
        ids = row.get("expected_ids", row.get("ids", []))
        if isinstance(ids, str):
            ids = [ids]
        cases.append(AnswerCase(question, [str(i) for i in ids or []]))
    return cases


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class AnswerOutcome:
    question: str
    expected_ids: list[str]
    abstained: bool
    cited_ids: list[str]
    supported: list[bool]
    seconds: float
    error: str | None = None
    support: list[float] = field(default_factory=list)  # the verifier's score of each citation

    @property
    def off_topic(self) -> bool:
        return not self.expected_ids

    @property
    def correct(self) -> bool:
        """Off-topic: abstaining is correct. Otherwise: an answer citing an expected paper."""
        if self.error:
            return False
        if self.off_topic:
            return self.abstained
        return not self.abstained and bool(set(self.cited_ids) & set(self.expected_ids))

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "expected_ids": self.expected_ids,
            "abstained": self.abstained,
            "cited_ids": self.cited_ids,
            "supported": self.supported,
            "support": [round(s, 4) for s in self.support],
            "correct": self.correct,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def summarize_answers(outcomes: Sequence[AnswerOutcome]) -> dict:
    """The answer-level figures.

    - correct_paper_rate: share of questions handled correctly: on-topic ones answered
      with at least one expected paper cited, off-topic ones (no expected ids) abstained.
    - citation_precision: supported citations / all citations, over answered questions
      (with the current verifier, unsupported sentences are dropped before they are
      cited, so this is 1.0 unless that changes); mean_support: the verifier's mean score.
    - abstention_rate: share of all questions abstained on (with the on/off-topic split).
    - latency p50/p95 in seconds, per question, end to end.
    """
    on_topic = [o for o in outcomes if not o.off_topic]
    off_topic = [o for o in outcomes if o.off_topic]
    citations = [s for o in outcomes if not o.abstained for s in o.supported]
    supports = [s for o in outcomes if not o.abstained for s in o.support]
    latencies = [o.seconds for o in outcomes]

    def share(items: Sequence[AnswerOutcome], test: Callable[[AnswerOutcome], bool]) -> float | None:
        return round(sum(1 for o in items if test(o)) / len(items), 4) if items else None

    return {
        "questions": len(outcomes),
        "on_topic": len(on_topic),
        "off_topic": len(off_topic),
        "correct_paper_rate": share(outcomes, lambda o: o.correct),
        "on_topic_correct_rate": share(on_topic, lambda o: o.correct),
        "off_topic_abstained_rate": share(off_topic, lambda o: o.abstained),
        "citation_precision": round(sum(citations) / len(citations), 4) if citations else None,
        "citations": len(citations),
        "mean_support": round(sum(supports) / len(supports), 4) if supports else None,
        "abstention_rate": share(outcomes, lambda o: o.abstained),
        "errors": sum(1 for o in outcomes if o.error),
        "latency_p50": round(percentile(latencies, 50), 3),
        "latency_p95": round(percentile(latencies, 95), 3),
    }


def evaluate_answers(
    library, cases: Sequence[AnswerCase], progress: Progress | None = None, answer: Callable | None = None
) -> tuple[dict, list[AnswerOutcome]]:
    """Run every question through the answer pipeline (``answer_question`` by default).

    The pipeline's result must expose ``abstained``, ``citations`` (each with
    ``paper_id`` and ``supported``). A question that raises counts as wrong, not fatal.
    """
    if answer is None:
        from .answer import answer_question as answer  # imported late: the LLM stack is heavy

    outcomes = []
    for number, case in enumerate(cases, start=1):
        report(progress, number - 1, len(cases), "questions")
        started = time.perf_counter()
        try:
            result = answer(library, case.question, history=None)
        except Exception as exc:  # one failing question must not lose the others' figures
            outcomes.append(AnswerOutcome(case.question, case.expected_ids, False, [], [], time.perf_counter() - started, f"{type(exc).__name__}: {exc}"))
            continue
        elapsed = time.perf_counter() - started
        citations = list(getattr(result, "citations", []) or [])
        abstained = bool(getattr(result, "abstained", False))
        outcomes.append(
            AnswerOutcome(
                case.question,
                case.expected_ids,
                abstained,
                [str(c.paper_id) for c in citations],
                [bool(getattr(c, "supported", True)) for c in citations],  # verified citations are supported
                elapsed,
                support=[float(getattr(c, "support", 0.0) or 0.0) for c in citations],
            )
        )
    return summarize_answers(outcomes), outcomes


__all__ = [
    "BeirData",
    "EvalIndex",
    "METRICS",
    "MODES",
    "beir_papers",
    "evaluate_answers",
    "evaluate_retrieval",
    "evaluate_run",
    "load_beir",
    "load_questions",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "select_queries",
    "split_queries",
]
