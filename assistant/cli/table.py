"""The literature table: `assistant table "topic"`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..settings import Settings
from .common import ChromaUrlOpt, EmbeddingBackendOpt, EmbeddingOpt, StoreOpt, app, fail, friendly_errors, open_library

_N_MIN, _N_MAX = Settings.bounds("table_papers")
_N_DEFAULT = Settings.model_fields["table_papers"].default
_FORMATS = ("markdown", "csv", "json")


@app.command()
@friendly_errors
def table(
    topic: Annotated[str, typer.Argument(help="A topic or question, e.g. \"quantization of large language models\".")],
    n: Annotated[
        int | None,
        typer.Option("-n", "--n", help=f"Papers (rows) at most (default {_N_DEFAULT}, env ASSISTANT_TABLE_PAPERS).", min=_N_MIN, max=_N_MAX),
    ] = None,
    columns: Annotated[
        str, typer.Option("--columns", help="Comma-separated columns: problem, method, data, result, code.")
    ] = "problem,method,data,result,code",
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown, csv or json.")] = "markdown",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the table to this file instead of printing it.")] = None,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
) -> None:
    """A literature table: one row per relevant paper, each cell quoted from its abstract (empty when the abstract does not say)."""
    from ..table import build_table, parse_columns

    chosen_format = (fmt or "").strip().lower()
    if chosen_format not in _FORMATS:
        fail(f"unknown format {fmt!r}: choose markdown, csv or json")
    chosen_columns = parse_columns(columns)  # an unknown column is one line, before any model loads
    library = open_library(store=store, chroma_url=chroma_url, embedding_model=embedding_model, embedding_backend=embedding_backend, table_papers=n)
    result = build_table(library, topic, columns=chosen_columns)
    if result.abstained:
        fail(result.message)
    if chosen_format == "json":
        import json

        text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    elif chosen_format == "csv":
        text = result.to_csv()
    else:
        text = result.to_markdown()
    if output is not None:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"table of {len(result.rows)} paper(s) written to {output}", err=True)
    else:
        typer.echo(text, nl=False)
