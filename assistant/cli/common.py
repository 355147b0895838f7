"""Options shared by every command, and the error handling that turns known failures
into one readable line instead of a traceback."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from ..settings import Settings

app = typer.Typer(
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
EmbeddingBackendOpt = Annotated[
    str | None,
    typer.Option(
        "--embedding-backend",
        help="torch, onnx or onnx-int8: how the embedding model runs (env ASSISTANT_EMBEDDING_BACKEND).",
    ),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="GGUF file to answer with (env ASSISTANT_MODEL).")]
LlmUrlOpt = Annotated[
    str | None,
    typer.Option("--llm-url", help="OpenAI-compatible llama.cpp server, e.g. http://127.0.0.1:8080/v1 (env ASSISTANT_LLM_URL)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
_K_MIN, _K_MAX = Settings.bounds("k")
KOpt = Annotated[
    int | None, typer.Option("-k", "--k", help="Number of papers to give the model as evidence.", min=_K_MIN, max=_K_MAX)
]


def make_settings(**overrides: Any) -> Settings:
    """Defaults < environment < flags: flags left unset (None) do not override."""
    renames = {"store": "store_dir"}
    return Settings.validated().with_overrides(**{renames.get(key, key): value for key, value in overrides.items()})


def open_library(*, needs_model: bool = False, **overrides: Any):
    """The library for a command. A command that will run the model (`needs_model`)
    starts loading it first, so the load overlaps the imports and the store's opening
    (about 0.5 s of a fresh `ask`) instead of waiting for them."""
    settings = make_settings(**overrides)
    if needs_model:
        from ..llm import load_in_background

        load_in_background(settings)
    from ..library import Library

    return Library(settings)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class _Options:
    """Process-wide flags given before the command (`assistant --debug ask ...`)."""

    debug = False


options = _Options()


@app.callback()
def global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for every error.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show llama.cpp's log and Python warnings (env ASSISTANT_VERBOSE=1).")
    ] = False,
) -> None:
    """A local research assistant over paper abstracts: search, cited answers, summaries, citation lookup."""
    from ..quiet import quiet_terminal

    options.debug = debug
    if verbose:
        os.environ["ASSISTANT_VERBOSE"] = "1"  # every Settings() of this process sees it
    quiet_terminal(verbose or os.environ.get("ASSISTANT_VERBOSE", "").lower() in ("1", "true", "yes"))


def friendly_errors(func: Callable) -> Callable:
    """An AssistantError (something the user can fix) becomes one `error: ...` line and
    exit 1; anything else is a bug: one line naming it, the traceback with --debug.
    Ctrl-C exits 130 quietly, a closed pipe (`| head`) 141."""
    from ..errors import AssistantError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # `assistant search … | head`: the reader has what it wanted. Point stdout at
            # devnull so the interpreter's final flush does not raise again (Python docs'
            # advice for SIGPIPE), and exit like other tools cut short by a pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except AssistantError as exc:
            if options.debug:
                traceback.print_exc()
            fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: say so, traceback on request
            if options.debug:
                traceback.print_exc()
                fail(f"unexpected error ({type(exc).__name__}: {exc})")
            fail(f"unexpected error ({type(exc).__name__}: {exc}); run with --debug for the traceback")

    return wrapper


def progress_bar(description: str, unit: str, enabled: bool = True):
    """A tqdm bar behind the one progress signature (done, total, message): counts, rate
    and ETA on stderr. Nothing is drawn until there is work (or ever, when disabled:
    --json, pipes), so an error stays the first line the user reads."""
    from tqdm import tqdm

    bars: list = []

    def update(done: int, total: int, message: str) -> None:
        if not enabled or not total:
            return
        if not bars:
            bars.append(tqdm(desc=description, unit=unit, total=total, dynamic_ncols=True))
        bar = bars[0]
        if done < bar.n:  # a new phase (indexing, then queries): start the bar again
            bar.reset(total=total)
        elif bar.total != total:
            bar.total = total
        bar.set_postfix_str(message, refresh=False)
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars:
            bar.close()

    update.close = close  # type: ignore[attr-defined]
    return update
