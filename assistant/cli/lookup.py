"""Summaries and citation lookup: `assistant summarize` and `assistant cite`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..references import format_for_path, format_reference, format_references, normalize_format
from ..settings import Settings
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
    open_library,
    print_json,
    progress_bar,
)

FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Reference format: markdown, bibtex or text."),
]
ExportOpt = Annotated[
    Path | None,
    typer.Option("--export", help="Also write the references to this file: .bib → BibTeX, .md → Markdown, .txt → text, other names → --format (default text)."),
]
_N_MIN, _N_MAX = Settings.bounds("summary_papers")
_N_DEFAULT = Settings.model_fields["summary_papers"].default


def _export(path: Path, papers, fmt: str | None) -> None:
    chosen = format_for_path(str(path), fmt)
    text = format_references(papers, chosen)
    path.write_text(text + ("\n" if text else ""), encoding="utf-8")
    typer.echo(f"{len(papers)} reference(s) written to {path} ({chosen})", err=True)


@app.command()
@friendly_errors
def summarize(
    topic: Annotated[str | None, typer.Argument(help="The topic to summarize, e.g. \"diffusion models for video\".")] = None,
    n: Annotated[
        int | None,
        typer.Option("-n", "--n", help=f"Number of papers to summarize (default {_N_DEFAULT}, env ASSISTANT_SUMMARY_PAPERS).", min=_N_MIN, max=_N_MAX),
    ] = None,
    paper: Annotated[str | None, typer.Option("--paper", help="Summarize one paper (TL;DR) by its id (or title) instead of a topic.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the Markdown summary to this file.")] = None,
    fmt: FormatOpt = None,
    export: ExportOpt = None,
    max_context_tokens: Annotated[
        int | None,
        typer.Option("--max-context-tokens", help="Cap on prompt tokens; evidence beyond it is summarized in parts and merged.", min=64),
    ] = None,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    model: ModelOpt = None,
    llm_url: LlmUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A cited Markdown summary of a topic (overview, themes, references), or a paper's TL;DR."""
    if (topic is None) == (paper is None):
        fail('give either a topic (`assistant summarize "topic"`) or --paper ID, not both')
    ref_format = normalize_format(fmt) if fmt else "markdown"
    library = open_library(
        needs_model=True, store=store, chroma_url=chroma_url, embedding_model=embedding_model,
        embedding_backend=embedding_backend, model=model, llm_url=llm_url,
    )
    from ..summarize import summarize_paper, summarize_topic

    if paper is not None:
        result = summarize_paper(library, paper)
    else:
        bar = progress_bar("Summarizing", "step", enabled=not as_json and sys.stderr.isatty())
        try:
            result = summarize_topic(library, topic or "", n, max_context_tokens=max_context_tokens, progress=bar)
        finally:
            bar.close()
    markdown = result.render(ref_format)
    if export is not None:
        _export(export, result.papers, fmt)
    if out is not None:
        out.write_text(markdown, encoding="utf-8")
        typer.echo(f"summary written to {out}", err=True)
    if as_json:
        data = result.to_dict()
        data["markdown"] = markdown
        print_json(data)
    elif out is None:
        typer.echo(markdown.rstrip("\n"))


@app.command()
@friendly_errors
def cite(
    text: Annotated[str, typer.Argument(help="A claim to find support for, or a paper title (typos are fine).")],
    k: Annotated[int, typer.Option("-k", "--k", help="At most this many papers.", min=1, max=50)] = 5,
    fmt: FormatOpt = None,
    export: ExportOpt = None,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Papers whose abstracts support a claim (with the supporting sentence), or the paper a title names."""
    from ..lookup import NO_SUPPORT, cite as lookup

    chosen = normalize_format(fmt) if fmt else None
    library = open_library(store=store, chroma_url=chroma_url, embedding_model=embedding_model, embedding_backend=embedding_backend)
    hits = lookup(library, text, k)
    if export is not None:
        _export(export, [hit.paper for hit in hits], fmt)
    if as_json:
        print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        typer.echo(NO_SUPPORT)
        return
    if chosen == "bibtex":
        typer.echo("\n\n".join(format_reference(hit.paper, "bibtex") for hit in hits))
        return
    for n, hit in enumerate(hits, start=1):
        what = "title match" if hit.kind == "title" else "support"
        if chosen == "markdown":
            typer.echo(format_reference(hit.paper, "markdown", n))
            if hit.kind == "claim":
                typer.echo(f"  > {hit.sentence} ({what} {hit.support:.2f})")
            else:
                typer.echo(f"  ({what} {hit.support:.2f})")
        elif chosen == "text":
            typer.echo(format_reference(hit.paper, "text", n))
            typer.echo(f"    \"{hit.sentence}\" ({what} {hit.support:.2f})" if hit.kind == "claim" else f"    ({what} {hit.support:.2f})")
        else:
            code = f"\n      code: {hit.paper.code_url}" if hit.paper.code_url else ""
            quote = f"\n      \"{hit.sentence}\"" if hit.kind == "claim" else ""
            typer.echo(f"{n:>3}. [{what} {hit.support:.2f}] {hit.paper.title}\n      id: {hit.paper.id}{code}{quote}")
