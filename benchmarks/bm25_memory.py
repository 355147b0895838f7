"""Memory of the BM25 side of a long ingest: what the index holds and what its merges add.

    .venv/bin/python benchmarks/bm25_memory.py --papers 100000 [--batch-size 1000] [--package DIR]

Replays what `assistant ingest` does to BM25 for each committed batch of the scale corpus
(benchmarks/scale.py's, without embedding anything): add the batch as a segment (merging
segments when there are too many), save, then bring the index up to date the way the
Library does after a commit (`LexicalIndex.load_newer` where the package has it, else a
full load, as before it). Memory is tracemalloc's count of Python and NumPy allocations:

- index_mb             the index after the last batch
- peak_mb              the most held at once, the index included
- worst_batch_extra_mb the most one batch held above the index it started from (a merge)
- replay_s             wall time (tracemalloc slows the tokenizer: compare runs, not products)

--package DIR runs another checkout's `assistant` (e.g. a `git worktree` of an earlier
commit) through this same script, for a before/after in one session.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--package", type=Path, default=HERE.parent, help="checkout whose assistant package to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(args.package.resolve()))
    sys.path.insert(1, str(HERE))
    from assistant.lexical import LexicalIndex

    import scale  # the corpus builder; it imports the package found first on sys.path

    records, real, synthetic = scale.build_corpus(args.papers, 0)
    print(f"# {args.package.resolve()}: {real} SciFact + {synthetic} synthetic abstracts, batches of {args.batch_size}")
    directory = Path(tempfile.mkdtemp(prefix="bench-bm25-"))
    index = LexicalIndex([], "g0", 0)
    tracemalloc.start()
    worst = peak = 0
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(records), args.batch_size), start=1):
        batch = records[start : start + args.batch_size]
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        index.add([r["id"] for r in batch], [r["abstract"] for r in batch], [r["title"] for r in batch])
        index.generation, index.seq = f"g{number}", number
        index.save(directory)
        if hasattr(LexicalIndex, "load_newer"):
            LexicalIndex.load_newer(directory, index, f"g{number}")
        else:
            LexicalIndex.load(directory)  # what Library did after every commit before load_newer
        batch_peak = tracemalloc.get_traced_memory()[1]
        worst, peak = max(worst, batch_peak - before), max(peak, batch_peak)
    elapsed = time.perf_counter() - started
    current = tracemalloc.get_traced_memory()[0]
    index_mb = current / 2**20  # the records list was made before tracing began
    print(f"papers {len(records)}")
    print(f"segments {len(index.segments)}")
    print(f"index_mb {index_mb:.1f}")
    print(f"peak_mb {peak / 2**20:.1f}")
    print(f"worst_batch_extra_mb {worst / 2**20:.1f}")
    print(f"replay_s {elapsed:.1f}")


if __name__ == "__main__":
    main()
