"""Calibrate which papers belong in a literature table or a topic summary.

    .venv/bin/python benchmarks/calibrate_topics.py [--store DIR] [--json]

benchmarks/topic_judgements.jsonl holds 660 judged papers: for 22 topics worded as a
researcher types them (the 12 of benchmarks/topics.txt and 10 more, two of which the
corpus has nothing on), the 30 papers hybrid search returns, each labelled by an annotator
who saw only the topic, title and abstract: 2 on the topic, 1 partly (a significant part
of it), 0 off topic (shares words or the broad area only). A row is right when its label
is 1 or 2.

For the papers a table considers (search's top 2 x table_papers), the script prints the
precision and recall of the rule in the code (assistant.table.relevant_hits), then sweeps
`topic_paper_score` (cosine of paper and topic + its best sentence's relevance) and
picks the threshold with the best F1 on each half of the topics (alternate topics),
reporting it on the other half, and on all topics. The store is built in a temporary
directory unless --store names one to reuse.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import relevance  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.table import relevant_hits  # noqa: E402

JUDGEMENTS = ROOT / "benchmarks" / "topic_judgements.jsonl"
THRESHOLDS = [round(0.70 + i / 100, 2) for i in range(41)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="Store of the shipped corpus to reuse (built if empty).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    library = Library(Settings(store_dir=args.store or Path(tempfile.mkdtemp(prefix="topics-"))))
    if library.count() == 0:
        library.ingest([ROOT / "store" / "corpus"])
    labels = {}
    for line in JUDGEMENTS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        labels[(record["topic"], record["id"])] = record["label"]
    topics = list(dict.fromkeys(topic for topic, _ in labels))
    papers = candidates(library, topics, labels)
    halves = [topics[0::2], topics[1::2]]
    report = {"papers": len(papers), "unjudged": sum(p["label"] is None for p in papers)}
    report["rule in the code"] = score(papers, topics, lambda p: p["kept"])
    report["per topic"] = {
        topic: "{} rows kept, {} of them right; {} right papers among the candidates".format(
            sum(p["kept"] for p in papers if p["topic"] == topic),
            sum(p["kept"] and p["right"] for p in papers if p["topic"] == topic),
            sum(p["right"] for p in papers if p["topic"] == topic),
        )
        for topic in topics
    }
    for index, half in enumerate(halves):
        best = max(THRESHOLDS, key=lambda t: score(papers, half, at(t))["f1"])
        report[f"tuned on half {index + 1}"] = {"topic_paper_score": best, "on the other half": score(papers, halves[1 - index], at(best))}
    best = max(THRESHOLDS, key=lambda t: score(papers, topics, at(t))["f1"])
    report["tuned on all topics"] = {"topic_paper_score": best, "all topics": score(papers, topics, at(best))}
    print(json.dumps(report, indent=None if args.json else 2))


def candidates(library: Library, topics: list[str], labels: dict) -> list[dict]:
    """Every paper a table on each topic considers, with its features, label and fate."""
    settings = library.calibrated()  # the thresholds of this store's vectors (int8 or fp32)
    weights = library.term_weights()
    papers = []
    for topic in topics:
        vector = library.embedder.embed_one(topic)
        hits = library.search(topic, 2 * settings.table_papers, query_vector=vector)
        scorer = relevance.RelevanceScorer(topic, vector, weights, settings)
        kept = {hit.paper.id for hit in relevant_hits(hits, scorer, topic, settings)}
        answerable = relevance.answerable(scorer, topic, hits)
        for hit in hits:
            label = labels.get((topic, hit.paper.id))
            papers.append(
                {
                    "topic": topic,
                    "label": label,
                    "right": (label or 0) >= 1,
                    "kept": hit.paper.id in kept,
                    "answerable": answerable,
                    "score": hit.similarity + scorer.best([hit]),
                }
            )
    return papers


def at(threshold: float):
    return lambda paper: paper["answerable"] and paper["score"] >= threshold


def score(papers: list[dict], topics: list[str], keep) -> dict:
    counts: dict[str, int] = defaultdict(int)
    chosen = set(topics)
    for paper in papers:
        if paper["topic"] not in chosen:
            continue
        kept = keep(paper)
        counts["tp"] += kept and paper["right"]
        counts["fp"] += kept and not paper["right"]
        counts["fn"] += not kept and paper["right"]
    precision = counts["tp"] / (counts["tp"] + counts["fp"]) if counts["tp"] + counts["fp"] else 1.0
    recall = counts["tp"] / (counts["tp"] + counts["fn"]) if counts["tp"] + counts["fn"] else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "rows kept": counts["tp"] + counts["fp"]}


if __name__ == "__main__":
    main()
