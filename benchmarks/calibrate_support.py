"""Calibrate the citation support threshold on SciFact (training split, ../shared/eval/scifact).

Positive pairs: a claim and the abstract its annotators marked SUPPORT (score = best
sentence similarity, as the verifier computes it). Negative pairs: the same claim and
the most similar *other* abstract that is not relevant to it (hard negatives). Prints the
threshold that maximizes accuracy and the precision/recall at a few thresholds.

    .venv/bin/python benchmarks/calibrate_support.py [--claims 300]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from assistant.embeddings import BACKENDS, get_embedder
from assistant.settings import Settings
from assistant.text import split_sentences

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--data", type=Path, default=SCIFACT)
    parser.add_argument(
        "--backend", choices=BACKENDS, default=Settings().embedding_backend,
        help="Embedding backend (default: the configured one): calibrate on the vectors a store of that backend holds.",
    )
    args = parser.parse_args()
    corpus = {d["_id"]: d for d in map(json.loads, (args.data / "corpus.jsonl").open())}
    claims = [q for q in map(json.loads, (args.data / "queries.jsonl").open()) if q.get("metadata")]
    random.Random(0).shuffle(claims)
    claims = claims[: args.claims]
    embedder = get_embedder(backend=args.backend)
    print(f"backend {args.backend}")
    doc_ids = list(corpus)
    doc_vectors = embedder.embed([corpus[d]["text"] for d in doc_ids])
    positives, negatives = [], []
    for claim in claims:
        vector = embedder.embed_one(claim["text"])
        relevant = {d for d, ev in claim["metadata"].items() if any(e["label"] == "SUPPORT" for e in ev)}
        if not relevant:
            continue
        order = np.argsort(-(doc_vectors @ vector))
        negative = next(doc_ids[i] for i in order if doc_ids[i] not in claim["metadata"])
        for doc_id, bucket in [(d, positives) for d in relevant] + [(negative, negatives)]:
            sentences = split_sentences(corpus[doc_id]["text"])
            bucket.append(float((embedder.embed(sentences) @ vector).max()))
    pos, neg = np.array(positives), np.array(negatives)
    print(f"pairs: {len(pos)} supported, {len(neg)} hard negatives")
    best = max(np.arange(0.3, 0.9, 0.01), key=lambda t: ((pos >= t).sum() + (neg < t).sum()))
    for t in sorted({0.5, 0.55, 0.6, 0.65, 0.7, round(float(best), 2)}):
        precision = (pos >= t).sum() / max(1, (pos >= t).sum() + (neg >= t).sum())
        print(f"threshold {t:.2f}: recall {np.mean(pos >= t):.3f}  precision {precision:.3f}  false-accept {np.mean(neg >= t):.3f}")
    print(f"best_accuracy_threshold {best:.2f}")


if __name__ == "__main__":
    main()
