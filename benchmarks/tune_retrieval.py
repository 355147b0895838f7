"""Tune the hybrid fusion on SciFact: tuning half only, held-out half reported.

    .venv/bin/python benchmarks/tune_retrieval.py                  # grid search + held-out report
    .venv/bin/python benchmarks/tune_retrieval.py --report-only    # just score the current defaults

1. Indexes the SciFact training corpus once into --store (default /tmp/scifact-store;
   about 5-10 minutes on 2 cores the first time, reused afterwards).
2. Splits the judged training claims into two deterministic halves
   (assistant.evaluation.split_queries, --split-seed).
3. Fetches each ranker's candidates once per query (dense from Chroma, BM25 over bodies
   and over titles, the nearest abstract sentences from the sentence index, exact cosines
   of every candidate and its best sentence), then scores every grid point by fusing them
   with assistant.retrieval.fuse_candidates and re-ranking with
   assistant.retrieval.rerank_with_sentences, the functions Retriever.search itself
   calls: what is tuned here is what runs.
4. Picks the best configuration by mean nDCG@10 on the tuning half only, then reports
   dense, BM25 and hybrid (current defaults and tuned) on both halves through the real
   search path (Retriever.search, the same code `assistant eval retrieval` uses).

The held-out half is never looked at before the choice is made.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.evaluation import (  # noqa: E402
    EvalIndex,
    beir_papers,
    embed_queries,
    evaluate_run,
    load_beir,
    ndcg_at_k,
    run_queries,
    split_queries,
)
from assistant.retrieval import best_per_paper, fuse_candidates, rerank_with_sentences, sentence_pool  # noqa: E402
from assistant.settings import Settings  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "eval" / "scifact"
DEPTH = 100  # deepest candidate list any grid point uses

TUNED_KEYS = ("fusion", "candidates", "rrf_k", "dense_weight", "bm25_weight", "title_weight", "sentence_weight", "rerank_depth")
GRIDS = {
    "convex": {
        "candidates": [100],
        "bm25_weight": [1.0, 1.5, 1.75, 2.0, 2.5],
        "title_weight": [0.0, 0.1, 0.2],
        "sentence_weight": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
        "rerank_depth": [10, 30, 50, 100],
        "rrf_k": [60],  # unused by convex fusion
    },
}
SENTENCE_DEPTH = 100  # nearest sentences fetched per query (settings.sentence_candidates)


@dataclass
class Candidates:
    """One query's candidate lists at DEPTH, the exact cosine of every candidate, and
    the BM25 ceilings (LexicalIndex.ceiling) that scale BM25 scores."""

    lists: dict[str, list[tuple[str, float]]]
    similarity: dict[str, float]
    scales: dict[str, float]
    best_sentence: dict[str, float]  # best query-sentence cosine of every candidate

    def at(self, n: int, names: tuple[str, ...]) -> tuple[dict, dict]:
        """What Retriever.search would see with `candidates = n` (no filters)."""
        lists = {name: self.lists[name][:n] for name in names}
        pool = {id for items in lists.values() for id, _ in items}
        return lists, {id: s for id, s in self.similarity.items() if id in pool}


def collect(index: EvalIndex, queries: dict[str, str], query_ids: list[str]) -> dict[str, Candidates]:
    library = index.library
    lexical = library._lexical_index()
    vectors = library.embedder.embed([queries[q] for q in query_ids])
    out = {}
    for qid, vector in tqdm(list(zip(query_ids, vectors)), desc="Candidates", unit="query"):
        text = queries[qid]
        lists = {
            "dense": library.store.nearest(vector, DEPTH),
            "bm25": lexical.search(text, DEPTH),
            "title": lexical.search_titles(text, DEPTH),
        }
        sentence_list = best_per_paper(library.store.nearest_sentences(vector, SENTENCE_DEPTH))
        pool = list(dict.fromkeys([id for items in lists.values() for id, _ in items] + [id for id, _ in sentence_list]))
        rows = library.store.get(pool, with_embeddings=True)
        similarity = {id: float(np.asarray(v, dtype=np.float32) @ vector) for id, v in zip(rows.ids, rows.embeddings)}
        scales = {"bm25": lexical.ceiling(text), "title": lexical.title_ceiling(text)}
        best = {id: float((vecs @ vector).max()) for id, (texts, vecs) in library.store.sentences(pool).items() if texts}
        lists["sentence"] = sentence_list
        out[qid] = Candidates(lists, similarity, scales, best)
    return out


def mean_ndcg(
    cands: dict[str, Candidates], qrels, query_ids, method: str, n: int, weights: dict[str, float], rrf_k: int, depth: int
) -> float:
    names = tuple(name for name, w in weights.items() if w > 0 and name != "sentence")
    sentence_weight = weights.get("sentence", 0.0)
    total = 0.0
    for qid in query_ids:
        cand = cands[qid]
        lists, similarity = cand.at(n, names)
        if sentence_weight > 0:
            for id, _ in cand.lists["sentence"]:
                similarity.setdefault(id, cand.similarity.get(id, 0.0))
        fused = dict(fuse_candidates(lists, similarity, weights, method, rrf_k, cand.scales))
        if sentence_weight > 0:
            pool = sentence_pool(fused, cand.lists["sentence"], depth, similarity)
            fused = rerank_with_sentences(fused, pool, cand.best_sentence, similarity, sentence_weight)
        ranked = list(fused)[:10]
        total += ndcg_at_k(ranked, qrels[qid], 10)
    return total / len(query_ids)


def grid_search(cands, qrels, tune_ids) -> list[dict]:
    results = []
    points = [
        (method, dict(zip(grid, values)))
        for method, grid in GRIDS.items()
        for values in itertools.product(*grid.values())
    ]
    for method, point in tqdm(points, desc="Grid", unit="config"):
        weights = {"dense": 1.0, "bm25": point["bm25_weight"], "title": point["title_weight"], "sentence": point["sentence_weight"]}
        score = mean_ndcg(cands, qrels, tune_ids, method, point["candidates"], weights, point["rrf_k"], point["rerank_depth"])
        results.append({"fusion": method, **point, "dense_weight": 1.0, "tune_ndcg@10": score})
    # Best first; on a tie the cheaper (fewer candidates) configuration.
    results.sort(key=lambda r: (-round(r["tune_ndcg@10"], 6), r["candidates"]))
    return results


def report(index: EvalIndex, data, halves: dict[str, list[str]], configs: dict[str, Settings]) -> dict:
    """Every (configuration, mode) on every half through Retriever.search itself."""
    from assistant.retrieval import Retriever

    library = index.library
    lexical = library._lexical_index()
    vectors = {}
    for ids in halves.values():
        vectors.update(embed_queries(library.embedder, data.queries, ids))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, settings in configs.items():
        retriever = Retriever(settings, library.store, library.embedder, lexical)
        modes = ("dense", "bm25", "sentence", "hybrid") if label == "defaults" else ("hybrid",)
        for mode in modes:
            name = mode if mode != "hybrid" else f"hybrid ({label})"
            table[name] = {}
            for half, ids in halves.items():
                bar = tqdm(total=len(ids), desc=f"{name}, {half}", unit="query", leave=False)
                run = run_queries(retriever, data.queries, ids, mode, on_query=lambda: bar.update(1), vectors=vectors)
                bar.close()
                table[name][half] = evaluate_run(run, {q: data.qrels[q] for q in ids})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SciFact directory (BEIR layout).")
    parser.add_argument("--qrels", default="qrels/train.tsv", help="Qrels file inside --data.")
    parser.add_argument("--store", type=Path, default=Path("/tmp/scifact-store"), help="Reusable index directory.")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10, help="Grid results to print.")
    parser.add_argument("--report-only", action="store_true", help="Skip the grid; report the current defaults.")
    parser.add_argument("--json", type=Path, help="Also write all results to this JSON file.")
    args = parser.parse_args()

    data = load_beir(args.data / "corpus.jsonl", args.data / "queries.jsonl", args.data / args.qrels)
    tune_ids, held_ids = split_queries(data.judged_query_ids, args.split_seed)
    print(f"{len(data.corpus)} documents; {len(tune_ids)} tuning + {len(held_ids)} held-out queries (seed {args.split_seed})")

    index = EvalIndex(store_dir=args.store)
    started = time.perf_counter()
    papers, _ = beir_papers(data.corpus)
    index.ingest(papers)
    print(f"index ready in {time.perf_counter() - started:.0f} s at {args.store}")

    defaults = Settings()
    configs = {"defaults": defaults}
    if not args.report_only:
        # The settings this project shipped before tuning, for comparison.
        # The hybrid this project shipped before the sentence index, for comparison.
        configs["no sentences"] = defaults.model_copy(
            update={"fusion": "convex", "candidates": 100, "bm25_weight": 1.75, "title_weight": 0.1, "sentence_weight": 0.0}
        )
    results: list[dict] = []
    if not args.report_only:
        cands = collect(index, data.queries, tune_ids)  # the held-out half is not even fetched
        results = grid_search(cands, data.qrels, tune_ids)
        print(f"\nBest configurations on the tuning half (nDCG@10), of {len(results)}:")
        for row in results[: args.top]:
            print("  " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        for method in GRIDS:
            best_of = next(r for r in results if r["fusion"] == method)
            print(f"  best {method}: {best_of['tune_ndcg@10']:.4f}")
        best = results[0]
        tuned = {key: best[key] for key in TUNED_KEYS}
        print("\nTuned values (set these as the defaults in assistant/settings.py):")
        print("  " + json.dumps(tuned))
        if any(getattr(defaults, key) != value for key, value in tuned.items()):
            configs["tuned"] = defaults.model_copy(update=tuned)
        else:
            print("  (these are already the defaults)")

    halves = {"tune": tune_ids, "heldout": held_ids}
    table = report(index, data, halves, configs)
    print(f"\n{'':<22}{'half':<9}{'nDCG@10':>9}{'R@10':>8}{'R@100':>8}{'MRR@10':>8}")
    for name, by_half in table.items():
        for half, m in by_half.items():
            print(f"{name:<22}{half:<9}{m['ndcg@10']:>9.4f}{m['recall@10']:>8.4f}{m['recall@100']:>8.4f}{m['mrr@10']:>8.4f}")
    current = {k: getattr(defaults, k) for k in TUNED_KEYS}
    print(f"\ncurrent defaults: {json.dumps(current)}")
    if args.json:
        args.json.write_text(json.dumps({"grid": results, "report": table, "defaults": current}, indent=2))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
