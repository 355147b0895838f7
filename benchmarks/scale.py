"""Scale benchmark: an N-abstract store built from real text, ingested, searched, asked, evaluated.

    .venv/bin/python benchmarks/scale.py --papers 20000 [--chroma-url http://127.0.0.1:8000]
        [--store DIR [--measure-only]] [--server-data DIR] [--batch-size 1000] [--queries 100] [--answers 5]

The corpus is the 5,183 SciFact abstracts (../shared/eval/scifact/) plus N - 5,183
synthetic abstracts, each made by recombining 5-9 real sentences drawn at random from
SciFact abstracts (and a title made of a real SciFact title's first words and another's
last words); it says so in its output. The synthetic abstracts are distractors for the
SciFact training queries: their sentences are real biomedical text, often the very
sentences of the relevant abstracts, so the nDCG@10 they cost is a pessimistic figure.

Prints one `name value` line per figure:

- corpus_*                      what was built (SciFact and synthetic counts, seed)
- ingest_papers_per_s           read + embed (papers and sentences) + write + BM25, in committed batches
- ingest_s, ingest_batches
- ingest_10_into_store_s        ingest of 10 new papers into the full store (BM25 incremental)
- store_size_mb                 the store directory on disk (for a server: --server-data's)
- peak_rss_mb                   this process, model and everything (ru_maxrss)
- search_p50_ms / search_p95_ms hybrid Library.search, k=5, over --queries queries (warm)
- answer_p50_s                  AnswerPipeline.answer on --answers SciFact claims (warm; first answer timed apart)
- scifact_ndcg10                SciFact training queries, hybrid, with the N - 5,183 distractors present
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.evaluation.beir import beir_papers, load_beir  # noqa: E402
from assistant.evaluation.metrics import evaluate_run  # noqa: E402
from assistant.evaluation.retrieval import embed_queries, run_queries  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.records import Paper  # noqa: E402
from assistant.settings import PROJECT_ROOT, Settings  # noqa: E402
from assistant.text import evidence_sentences  # noqa: E402

SCIFACT = PROJECT_ROOT.parent / "shared" / "eval" / "scifact"


def emit(name: str, value, digits: int = 3) -> None:
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    print(f"{name} {text}", flush=True)


def build_corpus(papers: int, seed: int) -> tuple[list[dict], int, int]:
    """JSONL records: SciFact as is, then synthetic recombinations up to `papers`."""
    data = load_beir(SCIFACT / "corpus.jsonl", SCIFACT / "queries.jsonl", SCIFACT / "qrels" / "train.tsv")
    real, _ = beir_papers(data.corpus)
    records = [{"id": p.id, "title": p.title, "abstract": p.abstract} for p in real]
    rng = random.Random(seed)
    sentences = [s for p in real for s in evidence_sentences(p.abstract) if len(s) > 40]
    titles = [p.title.split() for p in real if len(p.title.split()) >= 4]
    synthetic = max(0, papers - len(records))
    for index in range(synthetic):
        a, b = rng.choice(titles), rng.choice(titles)
        title = " ".join(a[: len(a) // 2] + b[len(b) // 2 :])
        abstract = " ".join(rng.sample(sentences, rng.randint(5, 9)))
        records.append({"id": f"syn-{index:06d}", "title": title, "abstract": abstract})
    return records[:papers] if papers < len(records) else records, len(real), synthetic


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def search_queries(records: list[dict], count: int) -> list[str]:
    """Titles and first sentences spread over the corpus."""
    step = max(1, len(records) // count)
    chosen = records[::step][:count]
    return [(r["title"] if i % 2 == 0 else evidence_sentences(r["abstract"])[0]) for i, r in enumerate(chosen)]


def probe_papers(records: list[dict], seed: int) -> list[Paper]:
    """10 new papers for the ingest-into-a-full-store probe, made from the corpus's text."""
    rng = random.Random(seed + 1)
    return [
        Paper(title=f"Scale probe paper {i} on {r['title'][:60]}", abstract=" ".join(rng.sample(records, 1)[0]["abstract"].split()[:80]),
              sources=["probe.jsonl"])
        for i, r in enumerate(rng.sample(records, 10))
    ]


def ingest_and_probe(args, library: Library, settings: Settings, store: Path, records: list[dict], probe: list[Paper]) -> None:
    """Ingest the corpus in committed batches, then 10 more papers into the full store.

    The corpus goes to a file and the benchmark's own copy is dropped before `assistant
    ingest` would run (the queries and probe papers were picked beforehand), so the peak
    RSS is the product's, not this script's."""
    corpus_file = store / "scale-corpus" / "scale.jsonl"
    corpus_file.parent.mkdir(parents=True, exist_ok=True)
    with corpus_file.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    records.clear()
    gc.collect()
    library.embedder.embed(["warm up"])  # model load is not ingest

    bar = None
    if not args.no_progress:
        from assistant.cli.common import progress_bar

        bar = progress_bar("Ingesting", "paper")
    started = time.perf_counter()
    report = library.ingest([corpus_file], progress=bar)
    ingest_s = time.perf_counter() - started
    if bar is not None:
        bar.close()
    emit("ingest_added", report.added)
    emit("ingest_unchanged_skipped", report.unchanged)
    emit("ingest_s", ingest_s, 1)
    emit("ingest_papers_per_s", report.embedded / ingest_s if report.embedded else 0.0, 2)
    emit("ingest_batches", -(-max(report.embedded, 1) // settings.ingest_batch_size))
    emit("store_papers", library.count())
    emit("store_sentences", library.store.sentence_count())

    # 10 new papers into the full store: BM25 is extended by a segment, not rebuilt.
    started = time.perf_counter()
    library.ingest_papers(probe)
    emit("ingest_10_into_store_s", time.perf_counter() - started, 2)
    lexical = library._lexical_index()
    emit("bm25_segments", len(lexical.segments) if lexical else 0)
    emit("bm25_ids_equal_store_ids", sorted(lexical.ids) == sorted(library.store.ids()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, required=True)
    parser.add_argument("--chroma-url", default=None)
    parser.add_argument("--server-data", type=Path, default=None, help="the Chroma server's --path, for the size on disk")
    parser.add_argument("--store", type=Path, default=None, help="store directory (default: a temporary one, removed)")
    parser.add_argument("--collection", default="scale")
    parser.add_argument("--batch-size", type=int, default=None, help="papers per committed batch (ingest_batch_size)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--answers", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--measure-only", action="store_true",
        help="--store already holds this corpus: skip ingest and the 10-paper probe, measure search, nDCG and answers",
    )
    args = parser.parse_args()

    records, real, synthetic = build_corpus(args.papers, args.seed)
    emit("corpus_papers", len(records))
    emit("corpus_scifact_abstracts", min(real, len(records)))
    emit("corpus_synthetic_abstracts", synthetic)
    print(f"# corpus: {min(real, len(records))} real SciFact abstracts + {synthetic} synthetic abstracts, each recombined "
          f"from 5-9 real SciFact sentences (seed {args.seed})", flush=True)
    queries = search_queries(records, args.queries)
    probe = probe_papers(records, args.seed)

    temporary = args.store is None
    store = args.store or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    overrides: dict = {"store_dir": store, "collection": args.collection, "chroma_url": args.chroma_url}
    if args.batch_size:
        overrides["ingest_batch_size"] = args.batch_size
    settings = Settings.validated().with_overrides(**overrides)
    library = Library(settings)
    emit("store", library.store.location)
    emit("embedding_backend", getattr(settings, "embedding_backend", "torch"))
    if args.measure_only:
        if args.store is None or not library.count():
            raise SystemExit("--measure-only needs --store holding a built corpus")
        records.clear()
        gc.collect()
        emit("store_papers", library.count())
    else:
        ingest_and_probe(args, library, settings, store, records, probe)

    size_dir = args.server_data if args.chroma_url else store
    if size_dir is not None:
        emit("store_size_mb", directory_size(size_dir) / 1e6, 1)
    if args.chroma_url:
        emit("local_bm25_size_mb", directory_size(store / "bm25") / 1e6, 1)

    # Search latency (warm).
    library.search(queries[0], 5)
    times = []
    for query in queries:
        started = time.perf_counter()
        library.search(query, 5)
        times.append((time.perf_counter() - started) * 1000)
    emit("search_p50_ms", float(np.percentile(times, 50)), 1)
    emit("search_p95_ms", float(np.percentile(times, 95)), 1)

    # nDCG@10 on the SciFact training queries with the distractors present.
    data = load_beir(SCIFACT / "corpus.jsonl", SCIFACT / "queries.jsonl", SCIFACT / "qrels" / "train.tsv")
    query_ids = data.judged_query_ids
    retriever = library.retriever()
    vectors = embed_queries(library.embedder, data.queries, query_ids)
    started = time.perf_counter()
    run = run_queries(retriever, data.queries, query_ids, "hybrid", vectors=vectors)
    metrics = evaluate_run(run, {qid: data.qrels[qid] for qid in query_ids})
    emit("scifact_train_queries", len(query_ids))
    emit("scifact_ndcg10", metrics.get("ndcg@10", metrics.get("nDCG@10", float("nan"))), 4)
    emit("scifact_recall100", metrics.get("recall@100", float("nan")), 4)
    emit("scifact_eval_s", time.perf_counter() - started, 1)

    if args.answers:
        from assistant.answer import AnswerPipeline

        pipeline = AnswerPipeline(library)
        claims = [data.queries[qid] for qid in query_ids[: args.answers + 1]]
        started = time.perf_counter()
        pipeline.answer(claims[0])  # loads the LLM and builds the catalog-wide caches
        emit("answer_first_s", time.perf_counter() - started, 2)
        answer_times = []
        for claim in claims[1:]:
            started = time.perf_counter()
            pipeline.answer(claim)
            answer_times.append(time.perf_counter() - started)
        emit("answer_p50_s", statistics.median(answer_times), 2)

    emit("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    if temporary:
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
