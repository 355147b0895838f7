"""`assistant serve`: the Gradio research UI on a loopback port."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from .common import ChromaUrlOpt, EmbeddingBackendOpt, EmbeddingOpt, LlmUrlOpt, ModelOpt, StoreOpt, app, friendly_errors, open_library, progress_bar


@app.command()
@friendly_errors
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (default 127.0.0.1, this machine only). 0.0.0.0 exposes the UI to your network."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7860; env ASSISTANT_PORT).", min=1, max=65535)] = None,
    ingest_if_empty: Annotated[
        bool, typer.Option("--ingest-if-empty", help="Index the shipped corpus first when the store is empty.")
    ] = False,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    embedding_model: EmbeddingOpt = None,
    embedding_backend: EmbeddingBackendOpt = None,
    model: ModelOpt = None,
    llm_url: LlmUrlOpt = None,
    allow_model: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-model",
            help="Another GGUF file UI users may switch to (repeatable; env ASSISTANT_ALLOW_MODELS as a JSON list). "
            "The start-up model and the packaged default are always allowed; no other path is ever opened.",
        ),
    ] = None,
    allow_llm_url: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-llm-url",
            help="Another llama.cpp server URL UI users may switch to (repeatable; env ASSISTANT_ALLOW_LLM_URLS). "
            "The start-up --llm-url is always allowed; no other URL is ever contacted.",
        ),
    ] = None,
    max_upload_mb: Annotated[
        float | None, typer.Option(help="Largest upload the UI accepts, per file, in MB (default 100; env ASSISTANT_MAX_UPLOAD_MB).")
    ] = None,
    ui_sessions: Annotated[
        int | None,
        typer.Option(help="Browser sessions whose state the server keeps; the least recently used beyond this are forgotten (default 64; env ASSISTANT_UI_SESSIONS)."),
    ] = None,
) -> None:
    """Start the web UI: chat with cited answers, summaries, citation lookup, the library."""
    from ..settings import Settings

    environment = Settings.validated()  # flags add to the allow lists the environment gives
    library = open_library(
        store=store, chroma_url=chroma_url, embedding_model=embedding_model, embedding_backend=embedding_backend, model=model, llm_url=llm_url, host=host, port=port,
        allow_models=list(dict.fromkeys([*environment.allow_models, *allow_model])) if allow_model else None,
        allow_llm_urls=list(dict.fromkeys([*environment.allow_llm_urls, *allow_llm_url])) if allow_llm_url else None,
        max_upload_mb=max_upload_mb, ui_sessions=ui_sessions,
    )
    for allowed in library.settings.allow_models:
        if not Path(allowed).expanduser().is_file():
            typer.secho(f"warning: --allow-model {allowed}: no such file (allowed anyway; it will fail until it exists).", fg=typer.colors.YELLOW, err=True)
    for allowed in library.settings.allow_llm_urls:
        if not allowed.lower().startswith(("http://", "https://")):
            raise InputError(f"--allow-llm-url {allowed!r} is not an http:// or https:// URL")
    settings = library.settings
    if ingest_if_empty and library.count() == 0:
        corpus = settings.corpus_dir
        if not corpus.exists():
            raise InputError(f"the store is empty and there is no corpus at {corpus} to index")
        typer.echo(f"The store is empty: indexing {corpus} (once; later starts reuse the index).")
        bar = progress_bar("Indexing", "paper")
        try:
            report = library.ingest([corpus], progress=bar)
        finally:
            bar.close()
        for error in report.errors:
            typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        typer.echo(f"Indexed {report.added} papers from {len(report.files)} file(s) into {library.store.location}.")
    elif library.count() and not library.store.sentence_count():
        typer.echo("This store predates the sentence index: indexing the abstracts' sentences (once).")
        bar = progress_bar("Indexing sentences", "paper")
        try:
            library.ingest_papers(library.catalog(), progress=bar)  # unchanged papers: sentences only
        finally:
            bar.close()
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"warning: binding {settings.host}: the UI is reachable from other machines on your network.",
            fg=typer.colors.YELLOW,
            err=True,
        )

    def warm_up() -> None:
        """Load the embedder and the LLM now, so the first question does not wait for them."""
        try:
            library.embedder.embed_one("warm up")
            library.llm
        except Exception as exc:  # reported again, readably, when a question needs the model
            typer.secho(f"warning: {exc}", fg=typer.colors.YELLOW, err=True)

    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()

    from ..ui import serve as serve_ui

    serve_ui(library, settings.host, settings.port)
