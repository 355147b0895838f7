"""Evaluation commands: `assistant eval retrieval` and `assistant eval answers`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    ChromaUrlOpt,
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
    mode: Annotated[list[str] | None, typer.Option(help="Only these modes (repeatable): dense, bm25, hybrid.")] = None,
    embedding_model: EmbeddingOpt = None,
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
    settings = make_settings(embedding_model=embedding_model)
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
    questions: Annotated[Path, typer.Option(help='JSONL: {"question": ..., "expected_ids": [...]} a line ("ids" also accepted).')],
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.", min=1)] = None,
    details: Annotated[bool, typer.Option(help="Also list every question's outcome.")] = False,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    model: ModelOpt = None,
    llm_url: LlmUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the answer pipeline on a question set against your store.

    Reports the share of questions handled correctly (an expected paper cited; for
    questions with no expected ids, an abstention), citation precision (cited sentences
    the validator judged supported), abstention rate and latency p50/p95.
    """
    from ..evaluation import evaluate_answers, load_questions

    cases = load_questions(questions)[:limit] if limit else load_questions(questions)
    if not cases:
        fail(f"{questions} holds no question")
    library = open_library(store=store, chroma_url=chroma_url, embedding_model=embedding_model, model=model, llm_url=llm_url)
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
        for outcome in outcomes:
            mark = "ok " if outcome.correct else "BAD"
            what = "abstained" if outcome.abstained else f"cited {', '.join(outcome.cited_ids) or 'nothing'}"
            if outcome.error:
                what = f"error: {outcome.error}"
            typer.echo(f"[{mark}] {outcome.question}\n      {what} ({outcome.seconds:.1f} s)")

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    typer.echo(f"questions:            {summary['questions']} ({summary['on_topic']} on topic, {summary['off_topic']} off topic)")
    typer.echo(f"correct paper cited:  {pct(summary['correct_paper_rate'])}  (off-topic: abstention counts as correct)")
    support = "" if summary["mean_support"] is None else f", mean support {summary['mean_support']:.2f}"
    typer.echo(f"citation precision:   {pct(summary['citation_precision'])}  ({summary['citations']} citations{support})")
    typer.echo(f"abstention rate:      {pct(summary['abstention_rate'])}")
    typer.echo(f"latency p50 / p95:    {summary['latency_p50']:.2f} s / {summary['latency_p95']:.2f} s")
    if summary["errors"]:
        typer.secho(f"{summary['errors']} question(s) failed with an error; --details shows them", fg=typer.colors.YELLOW, err=True)


__all__ = ["eval_app"]
