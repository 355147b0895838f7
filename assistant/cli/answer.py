"""Chat commands: `assistant ask` (one question) and `assistant chat` (follow-ups)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import AssistantError
from ..settings import Settings
from .common import (
    ChromaUrlOpt,
    JsonOpt,
    KOpt,
    LlmUrlOpt,
    ModelOpt,
    StoreOpt,
    app,
    friendly_errors,
    open_library,
    print_json,
)

FormatOpt = Annotated[
    str, typer.Option("--format", help="Reference list format: text, markdown or bibtex.")
]
TemperatureOpt = Annotated[
    float | None, typer.Option(help="Sampling temperature.", min=Settings.bounds("temperature")[0], max=Settings.bounds("temperature")[1])
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option("--max-tokens", help="Most tokens the model may write.", min=Settings.bounds("max_tokens")[0], max=Settings.bounds("max_tokens")[1]),
]


def _print_streamed(pipeline, question: str, history) -> object:
    """Show the answer as it grows, then the references.

    The answer can change as a whole at the end: with a base model the final answer is
    usually composed from the abstracts and replaces the sentences streamed so far. On a
    terminal those are redrawn in place (rich's Live), so the screen never holds a stale
    first answer above the real one; piped output gets only the final answer."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()
    result = None
    if not console.is_terminal:
        for result in pipeline.stream(question, history):
            pass
        if result is not None:
            typer.echo(result.answer)
    else:
        with Live(Text(""), console=console, auto_refresh=False, vertical_overflow="visible") as live:
            for result in pipeline.stream(question, history):
                live.update(Text(result.answer), refresh=True)
    if result is not None and result.notice:
        typer.secho(result.notice, err=True, fg="yellow")
    return result


def _print_references(result, fmt: str) -> None:
    from ..references import format_references

    if result.references:
        typer.echo("\nReferences")
        typer.echo(format_references(result.cited_papers(), fmt))
        labels = list(dict.fromkeys(c.label for c in result.citations if c.relevance is not None))
        if labels:
            typer.secho("Checked: " + " · ".join(labels), dim=True)


@app.command()
@friendly_errors
def ask(
    question: Annotated[str, typer.Argument(help="A question about the papers.")],
    k: KOpt = None,
    model: ModelOpt = None,
    llm_url: LlmUrlOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
    fmt: FormatOpt = "text",
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the abstracts, with verified citations."""
    from ..answer import AnswerPipeline

    library = open_library(
        needs_model=True,
        store=store, chroma_url=chroma_url, model=model, llm_url=llm_url, k=k, temperature=temperature, max_tokens=max_tokens,
    )
    pipeline = AnswerPipeline(library)
    if as_json:
        print_json(pipeline.answer(question).to_dict())
        return
    result = _print_streamed(pipeline, question, None)
    _print_references(result, fmt)


@app.command()
@friendly_errors
def chat(
    k: KOpt = None,
    model: ModelOpt = None,
    llm_url: LlmUrlOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    store: StoreOpt = None,
    chroma_url: ChromaUrlOpt = None,
) -> None:
    """Interactive questions with follow-ups ("what about its memory cost?"). /clear, /quit."""
    from ..answer import AnswerPipeline

    library = open_library(
        needs_model=True,
        store=store, chroma_url=chroma_url, model=model, llm_url=llm_url, k=k, temperature=temperature, max_tokens=max_tokens,
    )
    pipeline = AnswerPipeline(library)
    history = []
    typer.echo(f"Asking {library.count()} papers. Type a question; /clear forgets the conversation, /quit ends.")
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            typer.echo("")
            return
        if question in ("/quit", "/exit"):
            return
        if question == "/clear":
            history.clear()
            typer.echo("(conversation cleared)")
            continue
        if not question:
            continue
        try:
            result = _print_streamed(pipeline, question, history)
        except AssistantError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            continue
        _print_references(result, "text")
        history.append(result.to_turn())
