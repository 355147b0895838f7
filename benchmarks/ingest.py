"""Ingest and search speed on the shipped corpus, per embedding backend, side by side.

    .venv/bin/python benchmarks/ingest.py [--corpus store/corpus] [--backends torch,onnx,onnx-int8]
                                          [--runs 1] [--queries 100] [--raw]

Prints one `name value` line per figure, `<backend>.` before each per-backend figure:

- <b>.model_load_s               loading the embedding model (once per process; the first
                                 ONNX use also exports the model into the cache: that is
                                 done before timing, in the warm-up)
- <b>.ingest_cold_papers_per_s   read + parse + embed papers AND every abstract sentence
                                 (sentence index) + write Chroma + build BM25, empty store
- <b>.ingest_vs_torch            this backend's cold ingest rate / torch's, same run
- <b>.search_p50_ms / _p95_ms    hybrid Library.search (query embedded by this backend), k=5
- <b>.search_hit_at_1            queries whose source paper ranks first
- reingest_unchanged_s           the same corpus again into the last store: nothing embedded
- raw_embed_papers_per_s         (--raw) SentenceTransformer.encode of the papers alone

Rounds interleave the backends (torch, onnx, onnx-int8, torch, ...) so a busy machine slows
them alike; the best of --runs cold ingests is reported per backend, and the ratio is taken
from those. Every cold ingest uses a fresh temporary store.
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
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1, help="cold ingests per backend (best is reported)")
    parser.add_argument("--raw", action="store_true", help="also time raw sentence-transformers on the papers alone")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    base = Settings(embedding_memory_arena=True)  # as `assistant ingest` runs
    papers = read_paths([args.corpus]).papers
    emit("corpus_papers", len(papers), 0)

    for backend in backends:
        start = time.perf_counter()
        embedder = get_embedder(
            base.embedding_model, base.embedding_batch_size, backend, base.model_cache_dir,
            base.embedding_memory_arena, base.embedding_workers,
        )
        embedder.embed(["warm-up"])
        emit(f"{backend}.model_load_s", time.perf_counter() - start)

    if args.raw:
        from sentence_transformers import SentenceTransformer

        texts = [p.document for p in papers]
        raw_model = SentenceTransformer(base.embedding_model or default_embedding_model(), device="cpu")
        raw_model.encode(["warm-up"], normalize_embeddings=True)
        start = time.perf_counter()
        raw_model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)  # its own default
        emit("raw_embed_papers_per_s", len(texts) / (time.perf_counter() - start), 1)
        del raw_model

    with tempfile.TemporaryDirectory(prefix="assistant-bench-") as tmp:
        cold: dict[str, list[float]] = {b: [] for b in backends}
        libraries: dict[str, Library] = {}
        for run in range(args.runs):
            for backend in backends:
                settings = base.with_overrides(store_dir=Path(tmp) / f"{backend}-{run}", embedding_backend=backend)
                library = Library(settings)
                start = time.perf_counter()
                report = library.ingest([args.corpus])
                cold[backend].append(time.perf_counter() - start)
                assert report.added == len(papers) and report.embedded == len(papers), report.to_dict()
                assert library.embedder.backend == backend, (library.embedder.backend, backend)
                libraries[backend] = library

        rates = {b: len(papers) / min(times) for b, times in cold.items()}
        for backend in backends:
            emit(f"{backend}.ingest_cold_s", min(cold[backend]))
            emit(f"{backend}.ingest_cold_papers_per_s", rates[backend], 1)
            if "torch" in rates:
                emit(f"{backend}.ingest_vs_torch", rates[backend] / rates["torch"], 2)

        queries = make_queries(papers, args.queries)
        for backend in backends:
            library = libraries[backend]
            library.search("warm-up query", k=5)
            latencies = []
            top1 = 0
            for query, expected in queries:
                start = time.perf_counter()
                hits = library.search(query, k=5)
                latencies.append((time.perf_counter() - start) * 1000)
                top1 += bool(hits) and hits[0].paper.id == expected
            emit(f"{backend}.search_p50_ms", statistics.median(latencies), 1)
            emit(f"{backend}.search_p95_ms", percentile(latencies, 95), 1)
            emit(f"{backend}.search_hit_at_1", top1 / len(queries))
        emit("search_queries", len(queries), 0)

        library = libraries[backends[-1]]
        calls = library.embedder.calls
        start = time.perf_counter()
        again = library.ingest([args.corpus])
        emit("reingest_unchanged_s", time.perf_counter() - start)
        assert again.embedded == 0 and library.embedder.calls == calls, again.to_dict()


if __name__ == "__main__":
    main()
