"""Options shared by every command, and the error handling that turns known failures
into one readable line instead of a traceback."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from ..settings import Settings

app = typer.Typer(
    help="A local research assistant over paper abstracts: search, cited answers, summaries, citation lookup.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store directory (env ASSISTANT_STORE_DIR).")]
ChromaUrlOpt = Annotated[
    str | None, typer.Option("--chroma-url", help="Chroma server, e.g. http://127.0.0.1:8000 (env ASSISTANT_CHROMA_URL).")
]
EmbeddingOpt = Annotated[
    str | None, typer.Option("--embedding-model", help="sentence-transformers model path (env ASSISTANT_EMBEDDING_MODEL).")
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="GGUF file to answer with (env ASSISTANT_MODEL).")]
LlmUrlOpt = Annotated[
    str | None,
    typer.Option("--llm-url", help="OpenAI-compatible llama.cpp server, e.g. http://127.0.0.1:8080/v1 (env ASSISTANT_LLM_URL)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
KOpt = Annotated[int | None, typer.Option("-k", "--k", help="Number of papers to retrieve.", min=1)]


def make_settings(**overrides: Any) -> Settings:
    """Defaults < environment < flags: flags left unset (None) do not override."""
    renames = {"store": "store_dir"}
    return Settings().with_overrides(**{renames.get(key, key): value for key, value in overrides.items()})


def open_library(**overrides: Any):
    from ..library import Library

    return Library(make_settings(**overrides))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def friendly_errors(func: Callable) -> Callable:
    """Known failures become `error: ...` and exit 1; Ctrl-C exits 130 quietly."""
    from ..embeddings import ModelNotFound
    from ..library import EmptyStore
    from ..store import StoreError

    known: tuple[type[BaseException], ...] = (EmptyStore, StoreError, ModelNotFound, ValueError, FileNotFoundError)
    try:
        from ..llm import LLMError

        known += (LLMError,)
    except ImportError:  # pragma: no cover - during early development only
        pass

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except known as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper
