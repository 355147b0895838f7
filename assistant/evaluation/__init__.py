"""Retrieval and answer evaluation: BEIR loading, IR metrics, and the two harnesses.

- :mod:`.metrics`: nDCG / Recall / MRR at k (BEIR / trec_eval definitions), percentile.
- :mod:`.beir`: BEIR corpus, queries and qrels; papers from BEIR documents; query splits.
- :mod:`.retrieval`: the retrieval harness (a throwaway index, every mode scored).
- :mod:`.answers`: question sets and the answer harness over the real answer pipeline.

Every name other code imports is re-exported here, so ``from assistant.evaluation
import ...`` keeps working.
"""

from __future__ import annotations

from .answers import (
    KINDS,
    AnswerCase,
    AnswerOutcome,
    evaluate_answers,
    infer_kind,
    load_questions,
    search_ids,
    summarize_answers,
)
from .beir import BeirData, beir_papers, load_beir, read_qrels, select_queries, split_first_sentence, split_queries
from .jsonl import read_jsonl
from .metrics import (
    METRICS,
    Qrels,
    dcg,
    evaluate_run,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    query_metrics,
    recall_at_k,
)
from .retrieval import DEEP_K, MODES, EvalIndex, RetrievalReport, embed_queries, evaluate_retrieval, run_queries

__all__ = [
    "DEEP_K",
    "KINDS",
    "METRICS",
    "MODES",
    "AnswerCase",
    "AnswerOutcome",
    "BeirData",
    "EvalIndex",
    "Qrels",
    "RetrievalReport",
    "beir_papers",
    "dcg",
    "embed_queries",
    "evaluate_answers",
    "evaluate_retrieval",
    "evaluate_run",
    "infer_kind",
    "load_beir",
    "load_questions",
    "mean_metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "percentile",
    "query_metrics",
    "read_jsonl",
    "read_qrels",
    "recall_at_k",
    "run_queries",
    "search_ids",
    "select_queries",
    "split_first_sentence",
    "split_queries",
    "summarize_answers",
]
