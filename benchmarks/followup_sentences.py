"""Does a follow-up's answer cite the sentence that answers it, not only the right paper?

    .venv/bin/python benchmarks/followup_sentences.py [--store DIR] [--verbose]

Each `focus` follow-up in benchmarks/followups.jsonl has a note naming the abstract sentence
that answers it ("Answering sentence: …"). The first question is asked for real, then the
follow-up with that answer as history; a hit is an answer one of whose citations has that
sentence as its evidence. Prints, per kind and split, the follow-ups, the hits, those
abstained and those citing an expected paper (`eval answers --questions
benchmarks/followups.jsonl` reports the rest).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answer import AnswerPipeline  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.records import normalize_title  # noqa: E402
from assistant.settings import Settings  # noqa: E402

MARK = "Answering sentence:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=ROOT / "store", help="store directory (default: the shipped one)")
    parser.add_argument("--verbose", action="store_true", help="print each focus follow-up and its answer")
    args = parser.parse_args()
    pipeline = AnswerPipeline(Library(Settings(store_dir=args.store)))
    rows = [json.loads(line) for line in (ROOT / "benchmarks" / "followups.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    figures: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        history = []
        for question in row["history"]:
            history.append(pipeline.answer(question, history).to_turn())
        answer = pipeline.answer(row["question"], history)
        counts = figures.setdefault((row["kind"], row.get("split", "")), {"n": 0, "hit": 0, "abstained": 0, "expected_cited": 0})
        counts["n"] += 1
        counts["abstained"] += answer.abstained
        counts["expected_cited"] += bool({c.id for c in answer.citations} & set(row["expected_ids"]))
        note = row.get("note", "")
        if MARK in note:
            wanted = normalize_title(note.split(MARK, 1)[1].strip())
            cited = [normalize_title(c.evidence) for c in answer.citations]
            hit = any(wanted[:80] in text or text[:80] in wanted for text in cited if text)
            counts["hit"] += hit
            if args.verbose:
                print(f"{'hit ' if hit else 'miss'} | {row['question'][:70]} | {answer.answer[:160]}", flush=True)
    for (kind, split), counts in sorted(figures.items()):
        print(f"{kind:6s} {split:10s} " + " ".join(f"{key} {value}" for key, value in counts.items()))


if __name__ == "__main__":
    main()
