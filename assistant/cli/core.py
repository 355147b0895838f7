"""Library commands: ingest, search, stats, show, repair."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    ChromaUrlOpt,
    EmbeddingBackendOpt,
    EmbeddingOpt,
    JsonOpt,
    StoreOpt,
    app,
    fail,
    friendly_errors,
    make_settings,
    open_library,
    print_json,
    progress_bar,
)


@app.command()
@friendly_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories: .txt page dumps, .jsonl, .json, .csv, .bib.")],
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add papers to the store. Unchanged papers are not re-embedded."""
    # A process that ends: ONNX Runtime's memory arena is worth its ~20% here (Settings.embedding_memory_arena).
    library = open_library(
        store=store, chroma_url=chroma_url, embedding_model=embedding_model, embedding_backend=embedding_backend,
        embedding_memory_arena=True,
    )
    bar = progress_bar("Ingesting", "paper", enabled=not as_json)
    stopped_by: list[str] = []

    def terminate(number: int, frame) -> None:
        stopped_by.append("SIGTERM")
        raise KeyboardInterrupt  # SIGTERM stops an ingest exactly as Ctrl-C does: the batch in flight is rolled back

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        report = library.ingest(paths, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        fail(
            f"ingest stopped ({stopped_by[0] if stopped_by else 'Ctrl-C'}): the batch in progress was rolled back, "
            "batches committed before it are kept; run the same command again to finish",
            code=143 if stopped_by else 130,
        )
        return
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        print_json(report.to_dict())
    else:
        for error in report.errors:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        for problem in report.problems:
            typer.secho(f"skipped: {problem}", fg=typer.colors.YELLOW, err=True)
        typer.echo(
            f"{len(report.files)} file(s) read: {report.added} added, {report.updated} updated, "
            f"{report.metadata_only} with new sources, {report.unchanged} unchanged "
            f"({report.embedded} embedded{f', {report.rekeyed} moved to new ids' if report.rekeyed else ''}). "
            f"Store: {library.store.location} ({library.count()} papers)."
        )
    if not report.files:
        raise typer.Exit(1)  # nothing could be read at all


def _interrupt(number: int, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a repair as Ctrl-C does


@app.command()
@friendly_errors
def repair(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a local store whose vector index is damaged (Chroma stopped while saving it),
    from the papers its database holds. Every committed paper is kept; papers and sentences
    are embedded again. Stop `assistant serve` on the store first."""
    from ..repair import repair_store

    settings = make_settings(store=store, embedding_memory_arena=True)
    bar = progress_bar("Rebuilding", "paper", enabled=not as_json)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = repair_store(settings, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        fail("repair stopped before the rebuilt store replaced the damaged one, which is left as it was; run the same command again", code=130)
        return
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        print_json({"papers": report.papers, "undone": report.undone, "damaged_copy": str(report.damaged_copy), "seconds": round(report.seconds, 1)})
        return
    undone = f" ({report.undone} paper(s) of an unfinished batch undone: run that ingest again)" if report.undone else ""
    typer.echo(
        f"Rebuilt {settings.chroma_dir} from its {report.papers} committed papers in {report.seconds:.0f} s{undone}. "
        f"The damaged copy is kept at {report.damaged_copy}: delete it once searches work."
    )


@app.command()
@friendly_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results.", min=1, max=1000)] = 10,
    source: Annotated[str | None, typer.Option(help="Only papers from this source file.")] = None,
    date: Annotated[str | None, typer.Option(help="Only papers with this page date label, e.g. 'Mar 13'.")] = None,
    has_code: Annotated[bool | None, typer.Option("--has-code/--no-code", help="Only papers with (or without) a code link.")] = None,
    mmr: Annotated[bool, typer.Option(help="Diversify results (maximal marginal relevance).")] = False,
    mode: Annotated[str, typer.Option(help="hybrid, dense, bm25 or sentence (best matching abstract sentence).")] = "hybrid",
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ranked papers for a query (hybrid dense + BM25)."""
    if mode not in ("hybrid", "dense", "bm25", "sentence"):
        fail(f"--mode must be hybrid, dense, bm25 or sentence, not {mode!r}")
    from ..retrieval import Filters

    library = open_library(store=store, chroma_url=chroma_url, embedding_model=embedding_model, embedding_backend=embedding_backend)
    hits = library.search(query, k, filters=Filters(source, date, has_code), mmr=mmr, mode=mode)  # type: ignore[arg-type]
    if as_json:
        print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        typer.echo("No paper matches.")
    for hit in hits:
        link = f"\n      code: {hit.paper.code_url}" if hit.paper.code_url else ""
        typer.echo(f"{hit.rank:>3}. [{hit.similarity:.3f}] {hit.paper.title}\n      id: {hit.paper.id}{link}")


@app.command()
@friendly_errors
def stats(store: StoreOpt = None, chroma_url: ChromaUrlOpt = None, as_json: JsonOpt = False) -> None:
    """Counts of papers, sources and code links; where the store is."""
    library = open_library(store=store, chroma_url=chroma_url)
    data = library.stats()
    if as_json:
        print_json(data)
        return
    typer.echo(f"papers:          {data['papers']}")
    typer.echo(f"with code:       {data['with_code']}")
    typer.echo(f"source files:    {data['sources']}")
    typer.echo(f"store:           {data['store']}")
    typer.echo(f"embedding model: {data['embedding_model']}")
    typer.echo(f"embedding backend: {data['embedding_backend']}")
    if data["papers"] == 0:
        typer.echo("The store is empty: run `assistant ingest PATH`.")


@app.command()
@friendly_errors
def show(
    paper_id: Annotated[str, typer.Argument(help="Paper id, as printed by search.")],
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print one paper."""
    library = open_library(store=store, chroma_url=chroma_url)
    paper = library.get(paper_id)
    if paper is None:
        fail(f"no paper with id {paper_id!r}; `assistant search` prints ids")
        return
    if as_json:
        print_json(paper.to_dict())
        return
    typer.echo(paper.title)
    typer.echo(f"id: {paper.id}   date: {paper.date or '-'}   sources: {', '.join(paper.sources)}")
    if paper.urls:
        typer.echo("links: " + "  ".join(paper.urls))
    typer.echo("")
    typer.echo(paper.abstract)
