"""Evaluation commands: `assistant eval retrieval` and `assistant eval answers`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    ChromaUrlOpt,
    EmbeddingBackendOpt,
    EmbeddingOpt,
    JsonOpt,
    LlmUrlOpt,
    ModelOpt,
    StoreOpt,
    app,
    fail,
    friendly_errors,
    make_settings,
    open_library,
    print_json,
    progress_bar,
)

eval_app = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
@friendly_errors
def retrieval(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl: {_id, title, text} a line.")],
    queries: Annotated[Path, typer.Option(help="BEIR queries.jsonl: {_id, text} a line.")],
    qrels: Annotated[Path, typer.Option(help="BEIR qrels .tsv: query-id, corpus-id, score.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N judged queries (after --split).", min=1)] = None,
    split: Annotated[str, typer.Option(help="all, tune or heldout: a deterministic half of the judged queries.")] = "all",
    split_seed: Annotated[int, typer.Option(help="Seed of the tune/heldout split.")] = 0,
    mode: Annotated[list[str] | None, typer.Option(help="Only these modes (repeatable): dense, bm25, sentence, hybrid.")] = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, Recall@10/@100 and MRR@10 of dense, BM25 and hybrid retrieval.

    Indexes the corpus in a temporary store (deleted afterwards; your store is never
    touched) and runs every judged query through the assistant's own retrieval path.
    Fusion settings come from the usual environment (ASSISTANT_RRF_K, ...).
    """
    from ..evaluation import MODES, evaluate_retrieval, load_beir, select_queries

    modes = tuple(mode or MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        fail(f"--mode must be one of {', '.join(MODES)}, not {', '.join(unknown)}")
    data = load_beir(corpus, queries, qrels)
    query_ids = select_queries(data, split, split_seed, limit)
    if not query_ids:
        fail(f"no query in {queries} has a relevant document in {qrels}")
    if not data.corpus:
        fail(f"{corpus} holds no documents")
    settings = make_settings(embedding_model=embedding_model, embedding_backend=embedding_backend)
    if not as_json:
        typer.echo(f"{len(data.corpus)} documents, {len(query_ids)} queries (split: {split}); indexing in a temporary store...", err=True)
    bar = progress_bar("Evaluating", "item", enabled=not as_json)
    try:
        report = evaluate_retrieval(data, query_ids, settings, modes=modes, progress=bar)
    finally:
        bar.close()
    if as_json:
        print_json(report.to_dict())
        return
    header = f"{'mode':<8}" + "".join(f"{name:>12}" for name in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10"))
    typer.echo(header)
    for name, values in report.metrics.items():
        typer.echo(f"{name:<8}" + "".join(f"{values[metric]:>12.4f}" for metric in ("ndcg@10", "recall@10", "recall@100", "mrr@10")))
    fusion = ", ".join(f"{key}={value}" for key, value in report.settings.items())
    typer.echo(f"{report.queries} queries, {report.documents} documents; fusion: {fusion}")
    if report.untitled:
        typer.echo(f"{report.untitled} documents had no title: first sentence used as title.")


@eval_app.command("answers")
@friendly_errors
def answers(
    questions: Annotated[Path, typer.Option(help='JSONL: {"question", "expected_ids" ("ids" also accepted), "kind", "note"} a line.')],
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.", min=1)] = None,
    split: Annotated[str | None, typer.Option(help='Only the lines whose "split" is this (e.g. evaluate).')] = None,
    details: Annotated[bool, typer.Option(help="Also list every question's outcome.")] = False,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    model: ModelOpt = None,
    llm_url: LlmUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the answer pipeline on a question set against your store.

    Reports, over answerable questions, how often the answer's own search ranks an
    expected paper first / in the top 5 next to how often the answer cites one, and how
    often it wrongly abstains; how often unanswerable questions (no expected ids) are
    abstained on; how often questions with 2+ expected papers get 2+ papers cited; the
    overall share handled correctly, citation precision and latency p50/p95.
    A line's "kind" (single, multi, unanswerable) is inferred from its ids when missing.
    A line with a "history" is a chat follow-up: its history is asked first, in one
    conversation; its kind says what answers it (focus, other or none).
    """
    from ..evaluation import evaluate_answers, load_questions

    cases = load_questions(questions, split)
    cases = cases[:limit] if limit else cases
    if not cases:
        fail(f"{questions} holds no question")
    library = open_library(store=store, chroma_url=chroma_url, embedding_model=embedding_model, embedding_backend=embedding_backend, model=model, llm_url=llm_url)
    if library.count() == 0:
        fail(f"the store at {library.store.location} is empty: run `assistant ingest PATH` first")
    bar = progress_bar("Questions", "question", enabled=not as_json)
    try:
        summary, outcomes = evaluate_answers(library, cases, progress=bar)
    finally:
        bar.close()
    if as_json:
        data = dict(summary)
        if details:
            data["outcomes"] = [o.to_dict() for o in outcomes]
        print_json(data)
        return
    if details:
        for line in outcome_lines(outcomes):
            typer.echo(line)
        typer.echo("")
    for line in answer_table(summary):
        typer.echo(line)
    if summary["errors"]:
        typer.secho(f"{summary['errors']} question(s) failed with an error; --details shows them", fg=typer.colors.YELLOW, err=True)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def answer_table(summary: dict) -> list[str]:
    """The answer figures as a short table: rate, then how many of which questions."""
    answerable, unanswerable, multi = summary["on_topic"], summary["off_topic"], summary["multi_questions"]
    kinds = summary.get("kinds") or {}
    mix = ", ".join(f"{kinds[kind]} {kind}" for kind in ("single", "multi", "unanswerable") if kinds.get(kind))
    rows = [
        ("search: expected paper at rank 1", "search_recall@1", answerable, "answerable"),
        ("search: expected paper in top 5", "search_recall@5", answerable, "answerable"),
        ("answer cites an expected paper", "expected_cited_rate", answerable, "answerable"),
        ("answerable, wrongly abstained", "answerable_wrongly_abstained_rate", answerable, "answerable"),
        ("2+ expected: cites 2+ papers", "multi_two_plus_rate", multi, "with 2+ expected"),
        ("unanswerable, abstained", "unanswerable_abstained_rate", unanswerable, "unanswerable"),
        ("correct overall", "correct_paper_rate", summary["questions"], "questions"),
    ]
    lines = [f"questions: {summary['questions']} ({mix})", "", f"{'':<34}{'rate':>6}  of"]
    for label, key, total, what in rows:
        value = summary[key]
        count = "" if value is None else f"{round(value * total)}/{total} {what}"
        lines.append(f"{label:<34}{_pct(value):>6}  {count}")
    support = "" if summary["mean_support"] is None else f", mean support {summary['mean_support']:.2f}"
    lines.append(f"{'citation precision':<34}{_pct(summary['citation_precision']):>6}  {summary['citations']} citations{support}")
    if summary.get("cited_expected_share") is not None:
        lines.append(f"{'cited papers that were expected':<34}{_pct(summary['cited_expected_share']):>6}  of papers cited on answerable questions")
    if summary.get("dangling_opening_rate") is not None:
        lines.append(f"{'sentences opening on a dangling ref':<34}{_pct(summary['dangling_opening_rate']):>6}  of displayed sentences")
    for kind, group in (summary.get("follow_up_correct") or {}).items():
        what = {"focus": "answered from the paper in focus", "other": "answered from another paper", "none": "abstained (no abstract answers)"}[kind]
        correct = round((group["rate"] or 0) * group["of"])
        lines.append(f"{'follow-ups, ' + kind + ': correct':<34}{_pct(group['rate']):>6}  {correct}/{group['of']} {what}")
    if summary.get("modes"):
        lines.append(f"{'answers by mode':<34}        " + ", ".join(f"{count} {mode}" for mode, count in sorted(summary["modes"].items())))
    for name in ("p50", "p95"):
        lines.append(f"{'latency ' + name:<34}{summary['latency_' + name]:>4.1f} s  per question, end to end")
    return lines


def outcome_lines(outcomes) -> list[str]:
    """One question a block: verdict, kind, question; search top 5 and citations, with
    the expected papers starred."""
    lines = []
    for outcome in outcomes:
        expected = set(outcome.expected_ids)

        def star(ids: list[str]) -> str:
            return ", ".join(f"{pid}*" if pid in expected else pid for pid in ids) or "nothing"

        mark = "ok " if outcome.correct else "BAD"
        kind = f"follow-up {outcome.follow_up}" if outcome.follow_up else outcome.kind
        lines.append(f"[{mark}] {kind:<12} {outcome.question}")
        if outcome.error:
            lines.append(f"      error: {outcome.error} ({outcome.seconds:.1f} s)")
            continue
        cited = "abstained" if outcome.abstained else f"cited {star(list(dict.fromkeys(outcome.cited_ids)))}"
        lines.append(f"      search {star(outcome.search_ids[:5])} | {cited} ({outcome.seconds:.1f} s)")
        if outcome.expected_ids and not expected & set(outcome.search_ids[:5]):
            lines.append(f"      expected {', '.join(outcome.expected_ids)}")
    return lines


__all__ = ["answer_table", "eval_app", "outcome_lines"]
