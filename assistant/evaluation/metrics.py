"""IR metrics, following the BEIR / trec_eval definitions, and a percentile.

- nDCG@k: gain = the graded relevance from the qrels (trec_eval's linear gain, as BEIR
  reports it), discount 1/log2(rank + 1), normalised by the ideal DCG of the query's
  judged documents sorted by relevance.
- Recall@k: relevant documents (relevance > 0) in the top k / all relevant documents.
- MRR@k: 1 / rank of the first relevant document in the top k, 0 if none.

A document counts once, at its best rank. Queries without any relevant document in the
qrels are not scored (BEIR does the same).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

Qrels = dict[str, dict[str, int]]  # query id -> {doc id: relevance}


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


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
