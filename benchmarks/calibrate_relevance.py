"""Calibrate question relevance on questions written the way people ask.

    .venv/bin/python benchmarks/calibrate_relevance.py [--store DIR] [--questions FILE]

Relevance of a sentence to a question (assistant/relevance.py) is its cosine plus
`relevance_lexical_weight` x the IDF share of the question's terms it contains; the
assistant abstains when no retrieved sentence reaches `answer_relevance`. For every
question of the calibration set (benchmarks/questions_calibration.jsonl, kept apart from
the evaluation set benchmarks/questions_natural.jsonl) the real search retrieves the top
k papers of the shipped corpus, and for each lexical weight of a small grid:

- `answer_relevance` is the highest threshold that wrongly abstains on at most 5% of the
  answerable questions (the ceiling the product accepts), beside the paper-level rule
  (no retrieved paper with a cosine of `relevance_threshold` or more: abstain);
- the weight kept is the one that, so constrained, abstains on the most unanswerable
  questions (ties: the smaller weight);
- `strong_relevance` sits just above the best score any unanswerable question reached;
- `standout_weight` and `answer_standout` (best sentence relevance + weight x the nearest
  paper's cosine lead over the `standout_rank`-th) are calibrated the same way, the
  thresholds above fixed.

The store is built in a temporary directory unless --store names one to reuse.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.library import Library  # noqa: E402
from assistant.relevance import IndexTermWeights, RelevanceScorer, TermWeights, names_every_term, nearest_lead  # noqa: E402
from assistant.settings import Settings  # noqa: E402

FALSE_ABSTENTION_CEILING = 0.05
LEXICAL_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="Store of the shipped corpus to reuse (built if empty).")
    parser.add_argument("--questions", type=Path, default=ROOT / "benchmarks" / "questions_calibration.jsonl")
    args = parser.parse_args()
    library = Library(Settings(store_dir=args.store or Path(tempfile.mkdtemp(prefix="relevance-"))))
    if library.count() == 0:
        library.ingest([ROOT / "store" / "corpus"])
    weights = library.term_weights()
    rows = [json.loads(line) for line in args.questions.open(encoding="utf-8") if line.strip()]
    retrieved = []
    for row in rows:
        hits = library.search(row["question"], library.settings.k)
        retrieved.append((row, hits, library.embedder.embed_one(row["question"])))

    results = []
    for lexical_weight in LEXICAL_WEIGHTS:
        settings = library.settings.model_copy(update={"relevance_lexical_weight": lexical_weight})
        answerable, unanswerable = [], []
        for row, hits, vector in retrieved:
            score = RelevanceScorer(row["question"], vector, weights, settings).best(hits)
            # As assistant.relevance.answerable: a paper naming every term answers; no paper
            # on the topic as a whole (cosine below relevance_threshold) abstains whatever the score.
            named = names_every_term(row["question"], hits, settings)
            if max(h.similarity for h in hits) < settings.relevance_threshold and not named:
                score = 0.0
            (answerable if row["expected_ids"] else unanswerable).append((score, named, row["question"]))
        threshold, wrong, right = 0.0, 0.0, 0.0
        for step in range(200, 1000):
            candidate = step / 1000
            w = sum(s < candidate and not n for s, n, _ in answerable) / len(answerable)
            if w > FALSE_ABSTENTION_CEILING:
                break
            threshold, wrong = candidate, w
            right = sum(s < candidate and not n for s, n, _ in unanswerable) / len(unanswerable)
        strong = max(s for s, _, _ in unanswerable) + 0.01
        results.append((right, -lexical_weight, lexical_weight, threshold, wrong, strong, unanswerable))
        print(f"lexical weight {lexical_weight:.1f}: answer_relevance {threshold:.3f}  wrongly abstains {wrong:.1%}  "
              f"abstains on unanswerable {right:.1%}  strong from {strong:.3f}")
    right, _, lexical_weight, threshold, wrong, strong, unanswerable = max(results)
    print(f"\n{len(rows)} calibration questions; unanswerable ones by relevance (weight {lexical_weight}):")
    for score, named, question in sorted(unanswerable, reverse=True):
        print(f"  {score:.3f}{' (a paper names every term)' if named else ''}  {question}")
    print(f"\nrelevance_lexical_weight = {lexical_weight}")
    print(f"answer_relevance = {threshold:.3f}   (wrongly abstains on {wrong:.1%} of answerable, abstains on {right:.1%} of unanswerable)")
    print(f"strong_relevance = {max(strong, threshold):.3f}")
    calibrate_standout(library, retrieved, weights, lexical_weight, threshold)


STANDOUT_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)


def calibrate_standout(library: Library, retrieved: list, weights: TermWeights | IndexTermWeights, lexical_weight: float, threshold: float) -> None:
    """`standout_weight` and `answer_standout`, with the thresholds above fixed: for each
    weight, the highest threshold that keeps wrong abstentions within the ceiling; the
    weight kept abstains on the most unanswerable questions (ties: the smaller weight)."""
    settings = library.settings.model_copy(update={"relevance_lexical_weight": lexical_weight, "answer_relevance": threshold})
    rows = []
    for row, hits, vector in retrieved:
        best = RelevanceScorer(row["question"], vector, weights, settings).best(hits)
        lead = nearest_lead(library.store.nearest(vector, settings.standout_rank)) or 0.0
        named = names_every_term(row["question"], hits, settings)
        passes = max(h.similarity for h in hits) >= settings.relevance_threshold and best >= threshold
        rows.append((bool(row["expected_ids"]), best, lead, passes, named))
    answerable = [r for r in rows if r[0]]
    unanswerable = [r for r in rows if not r[0]]

    def abstains(group: list, weight: float, cut: float) -> int:
        return sum(not named and (not passes or best + weight * lead < cut) for _, best, lead, passes, named in group)

    ceiling = int(FALSE_ABSTENTION_CEILING * len(answerable))
    choices = []
    for weight in STANDOUT_WEIGHTS:
        cut = 0.0
        for step in range(0, 3000):
            if abstains(answerable, weight, step / 1000) > max(ceiling, abstains(answerable, weight, 0.0)):
                break
            cut = step / 1000
        right = abstains(unanswerable, weight, cut)
        choices.append((right, -weight, weight, cut))
        print(f"standout weight {weight:.2f}: answer_standout {cut:.3f}  wrongly abstains {abstains(answerable, weight, cut)}/{len(answerable)}"
              f"  abstains on unanswerable {right}/{len(unanswerable)} ({abstains(unanswerable, weight, 0.0)} without it)")
    _, _, weight, cut = max(choices)
    print(f"standout_weight = {weight}\nanswer_standout = {cut:.3f}")


if __name__ == "__main__":
    main()
