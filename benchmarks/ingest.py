"""Ingest and search speed on the shipped corpus, against a raw sentence-transformers baseline.

    .venv/bin/python benchmarks/ingest.py [--corpus store/corpus] [--queries 100] [--runs 1]

Prints one `name value` line per figure:

- model_load_s                  loading the embedding model (once per process)
- raw_embed_papers_per_s        SentenceTransformer.encode of the same texts, same batch size:
                                the floor any ingest pays
- ingest_cold_papers_per_s      read + parse + embed + write Chroma + build BM25, empty store
- ingest_vs_raw_ratio           ours / raw: 1.0 would mean ingest costs nothing beyond embedding
- reingest_unchanged_s          the same corpus again: nothing is embedded
- search_p50_ms / search_p95_ms hybrid Library.search (dense + BM25 body + BM25 title, RRF), k=5
- search_hit_at_1               queries whose source paper ranks first (titles and first sentences)

Every run uses a fresh temporary store; the model is loaded before timing the ingest.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.embeddings import default_embedding_model, get_embedder  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.readers import read_paths  # noqa: E402
from assistant.settings import PROJECT_ROOT, Settings  # noqa: E402


def emit(name: str, value: float, digits: int = 3) -> None:
    print(f"{name} {value:.{digits}f}", flush=True)


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]


def make_queries(papers, count: int) -> list[tuple[str, str]]:
    """Alternately a title and an abstract's first sentence, spread over the corpus."""
    step = max(1, len(papers) // count)
    chosen = papers[::step][:count]
    return [(p.title if i % 2 == 0 else first_sentence(p.abstract), p.id) for i, p in enumerate(chosen)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=PROJECT_ROOT / "store" / "corpus")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1, help="cold ingests to time (best is reported)")
    args = parser.parse_args()

    settings = Settings()
    papers = read_paths([args.corpus]).papers
    texts = [p.document for p in papers]
    emit("corpus_papers", len(papers), 0)

    start = time.perf_counter()
    embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
    embedder.embed(["warm-up"])
    emit("model_load_s", time.perf_counter() - start)

    # Raw baseline: sentence-transformers directly, same model, texts and batch size.
    from sentence_transformers import SentenceTransformer

    raw_model = SentenceTransformer(settings.embedding_model or default_embedding_model(), device="cpu")
    raw_model.encode(["warm-up"], normalize_embeddings=True)
    start = time.perf_counter()
    raw_model.encode(texts, batch_size=settings.embedding_batch_size, normalize_embeddings=True, convert_to_numpy=True)
    raw_s = time.perf_counter() - start
    raw_rate = len(texts) / raw_s
    del raw_model
    emit("raw_embed_s", raw_s)
    emit("raw_embed_papers_per_s", raw_rate, 1)

    with tempfile.TemporaryDirectory(prefix="assistant-bench-") as tmp:
        cold_times = []
        for run in range(args.runs):
            library = Library(Settings(store_dir=Path(tmp) / f"store-{run}"))
            start = time.perf_counter()
            report = library.ingest([args.corpus])
            cold_times.append(time.perf_counter() - start)
            assert report.added == len(papers) and report.embedded == len(papers), report.to_dict()
        cold_s = min(cold_times)
        ours_rate = len(papers) / cold_s
        emit("ingest_cold_s", cold_s)
        emit("ingest_cold_papers_per_s", ours_rate, 1)
        emit("ingest_vs_raw_ratio", ours_rate / raw_rate, 2)

        calls = embedder.calls
        start = time.perf_counter()
        again = library.ingest([args.corpus])
        emit("reingest_unchanged_s", time.perf_counter() - start)
        assert again.embedded == 0 and embedder.calls == calls, again.to_dict()

        queries = make_queries(papers, args.queries)
        library.search("warm-up query", k=5)
        latencies = []
        top1 = 0
        for query, expected in queries:
            start = time.perf_counter()
            hits = library.search(query, k=5)
            latencies.append((time.perf_counter() - start) * 1000)
            top1 += bool(hits) and hits[0].paper.id == expected
        emit("search_queries", len(queries), 0)
        emit("search_p50_ms", statistics.median(latencies), 1)
        emit("search_p95_ms", percentile(latencies, 95), 1)
        emit("search_hit_at_1", top1 / len(queries))


if __name__ == "__main__":
    main()
