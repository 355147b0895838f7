"""Calibrate the "answers the question: strong / weak" label on questions in users' words.

    .venv/bin/python benchmarks/calibrate_labels.py [--store DIR]

Every question of the calibration set (benchmarks/questions_calibration.jsonl) is answered
by the real pipeline on the shipped corpus; each citation is right when it cites one of the
question's expected papers (a citation in the answer to an unanswerable question is wrong).
The label says "strong" when the cited sentence's relevance reaches `strong_relevance`, or,
for a sentence of search's first paper, `strong_top_relevance`. The threshold kept is the
one that labels the most citations correctly (strong when right, weak when wrong) on the
calibration set; the evaluation set (benchmarks/questions_natural.jsonl) is then reported
with it, held out, beside the cosine-only label.

Prints, per set: citations, the share labelled strong that are right (precision) and the
share of right citations labelled strong (recall), for the cosine-only rule and the kept one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answer import AnswerPipeline  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.settings import Settings  # noqa: E402

CALIBRATION = ROOT / "benchmarks" / "questions_calibration.jsonl"
EVALUATION = ROOT / "benchmarks" / "questions_natural.jsonl"
GRID = [round(0.40 + 0.01 * i, 2) for i in range(21)]  # 0.40 .. 0.60


def citations(pipeline: AnswerPipeline, path: Path) -> list[tuple[float, bool, bool]]:
    """(relevance, cites search's first paper, right) for every citation of every answer."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        expected = set(question.get("expected_ids") or [])
        result = pipeline.answer(question["question"])
        if result.abstained or result.sources is None or not result.sources.sources:
            continue
        first = result.sources[min(result.sources.sources)].paper.id
        for citation in result.cited.citations if result.cited else []:
            rows.append((citation.relevance, citation.id == first, citation.id in expected))
    return rows


def strong(row: tuple[float, bool, bool], top: float, settings: Settings) -> bool:
    relevance, first, _ = row
    return relevance >= (min(top, settings.strong_relevance) if first else settings.strong_relevance)


def report(name: str, rows: list, top: float, settings: Settings) -> None:
    right = sum(r[2] for r in rows)
    for label, threshold in (("cosine only", settings.strong_relevance), (f"first paper from {top:.2f}", top)):
        labelled = [r for r in rows if strong(r, threshold, settings)]
        hits = sum(r[2] for r in labelled)
        accuracy = (hits + sum(1 for r in rows if not r[2] and not strong(r, threshold, settings))) / len(rows)
        print(
            f"{name}: {len(rows)} citations ({right} right) | {label}: strong {len(labelled)}, "
            f"of them right {hits / max(1, len(labelled)):.0%}; right ones labelled strong {hits / max(1, right):.0%}; "
            f"label accuracy {accuracy:.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(store_dir=args.store or Path(tmp) / "store")
        library = Library(settings)
        if args.store is None or not library.count():
            library.ingest([settings.corpus_dir])
        pipeline = AnswerPipeline(library)
        settings = library.calibrated()  # the thresholds of this store's vectors (int8 or fp32)
        calibration = citations(pipeline, CALIBRATION)

        def accuracy(top: float) -> float:
            return sum(strong(r, top, settings) == r[2] for r in calibration) / len(calibration)

        top = max(GRID, key=lambda t: (accuracy(t), t))  # ties: the higher (stricter) threshold
        print(f"strong_top_relevance = {top:.2f}  (label accuracy {accuracy(top):.1%} on the calibration set)")
        report("calibration", calibration, top, settings)
        report("evaluation (held out)", citations(pipeline, EVALUATION), top, settings)


if __name__ == "__main__":
    main()
