"""Does what a researcher reads make sense? Answers, topic summaries and literature tables.

    .venv/bin/python benchmarks/readability.py [--store DIR] [--questions F] [--topics-file F] [--limit N] [--json]

Without --store it indexes the shipped corpus into a temporary directory first (not timed).
Runs the default model (Gemma 3 270M) unless --model/--llm-url say otherwise. Prints:

answers (benchmarks/questions_natural.jsonl: questions in users' words)
- multi_two_plus_rate       questions with 2+ expected papers whose answer cites 2+ papers
- dangling_opening_rate     displayed sentences opening with "This/However/To this end/…" (target 0)
- named_share               composed answers naming every paper they cite (target 1)
- scene                     answer sentences whose evidence is an abstract's scene-setting opening (target 0)
- answer_s p50 / p95        time per answer, end to end
summaries (benchmarks/topics.txt: a dozen topics worded as a researcher would)
- headings_phrase_share     theme headings that are multi-word phrases present in their papers (target 1)
- dangling_share            displayed summary sentences with a dangling opening (target 0)
- background_share          displayed summary sentences about the field, not the cited paper (target 0)
- scene                     displayed summary sentences whose evidence is an abstract's scene-setting opening (target 0)
- misplaced                 theme sentences citing a paper outside their theme, all topics (target 0)
- off_topic_kept            cited papers whose best sentence is below answer_relevance (summed)
- judged_off_topic          cited papers judged off topic in benchmarks/topic_judgements.jsonl, of those judged
- summary_s p50 / max       time per summary (model included)
tables (the same topics, 12 papers each)
- cells_verbatim_share      filled text cells occurring verbatim in the cited abstract (must be 1)
- judged_off_topic          rows judged off topic in benchmarks/topic_judgements.jsonl, of those judged
- table_s p50 / max         time per table (target < 20 s for 12 papers on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answer import answer_question  # noqa: E402
from assistant.evaluation.answers import evaluate_answers, load_questions  # noqa: E402
from assistant.evaluation.readability import scene_sentences, topic_summary_figures  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.rewrite import short_name  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.summarize import summarize_topic  # noqa: E402
from assistant.table import build_table  # noqa: E402


JUDGEMENTS = ROOT / "benchmarks" / "topic_judgements.jsonl"


def judged_off_topic(topic: str, paper_ids: list[str], labels: dict) -> tuple[int, int]:
    """(papers judged off topic, papers judged at all) among these, for this topic."""
    judged = [labels[(topic, pid)] for pid in paper_ids if (topic, pid) in labels]
    return sum(label == 0 for label in judged), len(judged)


def named_share(results: list) -> float | None:
    """Composed answers that name every paper they cite (by its short name, in italics)."""
    composed = [r for r in results if r.mode == "composed"]
    if not composed:
        return None
    return sum(all(f"*{short_name(ref.title)}*" in r.answer for ref in r.references) for r in composed) / len(composed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="store directory (default: index the shipped corpus into a temp dir)")
    parser.add_argument("--questions", type=Path, default=ROOT / "benchmarks" / "questions_natural.jsonl")
    parser.add_argument("--topics-file", type=Path, default=ROOT / "benchmarks" / "topics.txt")
    parser.add_argument("--limit", type=int, help="only the first N questions and topics")
    parser.add_argument("--model", help="GGUF file (default: the packaged Gemma 3 270M)")
    parser.add_argument("--llm-url", help="OpenAI-compatible llama.cpp server")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    temp = None
    store = args.store
    if store is None:
        temp = tempfile.TemporaryDirectory(prefix="readability-")
        store = Path(temp.name)
    library = Library(Settings(store_dir=store, model=args.model, llm_url=args.llm_url))
    if library.count() == 0:
        library.ingest([ROOT / "store" / "corpus"])
    library.llm  # load and warm the model before timing
    library.search("warm up", 3)

    cases = load_questions(args.questions)[: args.limit]
    topics = [line.strip() for line in args.topics_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    topics = topics[: args.limit]
    figures: dict[str, object] = {}

    results = []

    def answer(library: Library, question: str, history=None):
        results.append(answer_question(library, question, history))
        return results[-1]

    answers, _ = evaluate_answers(library, cases, answer=answer)
    figures["answers"] = {
        "questions": answers["questions"],
        "multi_two_plus_rate": answers["multi_two_plus_rate"],
        "dangling_opening_rate": answers["dangling_opening_rate"],
        "modes": answers["modes"],
        "named_share": named_share(results),
        "scene": sum(len(scene_sentences(r.citations, [s.paper for s in r.sources.sources.values()])) for r in results if r.sources),
        "answer_s_p50": answers["latency_p50"],
        "answer_s_p95": answers["latency_p95"],
    }

    labels = {(r["topic"], r["id"]): r["label"] for r in map(json.loads, JUDGEMENTS.read_text(encoding="utf-8").splitlines())}
    totals = {"headings": 0, "headings_phrases": 0, "sentences": 0, "dangling": 0, "background": 0, "misplaced": 0, "scene": 0, "off_topic_kept": 0, "judged_off": 0, "judged": 0}
    summary_seconds = []
    for topic in topics:
        started = time.perf_counter()
        summary = summarize_topic(library, topic)
        summary_seconds.append(time.perf_counter() - started)
        for key, value in topic_summary_figures(summary, library).items():
            if key in totals:
                totals[key] += value
        off, judged = judged_off_topic(topic, [] if summary.abstained else [p.id for p in summary.papers], labels)
        totals["judged_off"] += off
        totals["judged"] += judged
    figures["summaries"] = {
        "topics": len(topics),
        "headings_phrase_share": totals["headings_phrases"] / totals["headings"] if totals["headings"] else None,
        "dangling_share": totals["dangling"] / totals["sentences"] if totals["sentences"] else None,
        "background_share": totals["background"] / totals["sentences"] if totals["sentences"] else None,
        "misplaced": totals["misplaced"],
        "scene": totals["scene"],
        "off_topic_kept": totals["off_topic_kept"],
        "judged_off_topic": f"{totals['judged_off']} of {totals['judged']}",
        "summary_s_p50": statistics.median(summary_seconds) if summary_seconds else None,
        "summary_s_max": max(summary_seconds, default=None),
    }

    table_seconds, filled, verbatim, rows_off, rows_judged = [], 0, 0, 0, 0
    for topic in topics:
        started = time.perf_counter()
        table = build_table(library, topic, n=12)
        table_seconds.append(time.perf_counter() - started)
        off, judged = judged_off_topic(topic, [row.paper.id for row in table.rows], labels)
        rows_off, rows_judged = rows_off + off, rows_judged + judged
        for row in table.rows:
            abstract = " ".join(row.paper.abstract.split())
            for column, cell in row.cells.items():
                if column == "code" or not cell.text:
                    continue
                filled += 1
                verbatim += " ".join(cell.text.split()) in abstract
    figures["tables"] = {
        "topics": len(topics),
        "cells_filled": filled,
        "cells_verbatim_share": verbatim / filled if filled else None,
        "judged_off_topic": f"{rows_off} of {rows_judged}",
        "table_s_p50": statistics.median(table_seconds) if table_seconds else None,
        "table_s_max": max(table_seconds, default=None),
    }

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for part, values in figures.items():
            print(part)
            for key, value in values.items():
                shown = f"{value:.3f}" if isinstance(value, float) else value
                print(f"  {key:<24}{shown}")
    if temp is not None:
        temp.cleanup()


if __name__ == "__main__":
    main()
