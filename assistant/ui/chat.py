"""The Chat tab: answers stream from :class:`~assistant.answer.AnswerPipeline` into the
chat, their sources into the panel beside it.

The conversation (questions, verified answers, their source cards and the
:class:`~assistant.answer.Turn` history for follow-ups) lives in a per-session gr.State.
Enter and the Ask button are one event, so a second question waits for the first.

While an answer runs the page says so (``data-chat="busy"`` on <body> and on the input
row, set by assets/ui.js): the CSS dims Ask and lights Stop. The attribute must sit
inside Gradio's container too, because Gradio prefixes every custom CSS rule with
``.gradio-container … .contain``, so a ``body[…]`` selector would never match.
"""

# No `from __future__ import annotations` here: Gradio finds gr.Request / gr.SelectData
# parameters by evaluating handler annotations, and gradio is imported inside functions.

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..answer import AnswerPipeline, Turn
from ..records import Paper
from .render import EMPTY_SOURCES, ChatEntry, SourceCard, chat_messages, render_sources
from .session import Runtime, session_id, show_error
from .settings import SettingsUI, settings_markdown


def ask_js(inputs: int) -> str:
    """The browser makes the run id (see session.py): the last of ask's inputs. Gradio
    passes a js function the inputs (then the outputs) and sends what it returns as the
    inputs."""
    return (
        f"(...args) => {{ const values = args.slice(0, {inputs}); "
        f"values[{inputs - 1}] = window.assistantChatStart ? window.assistantChatStart() : ''; return values; }}"
    )


# Stop and Clear send the id of the question the page asked last (their only input).
STOP_JS = "(...args) => [window.assistantChatRun ? window.assistantChatRun() : '']"
IDLE_JS = "() => { if (window.assistantChatIdle) window.assistantChatIdle(); }"


@dataclass
class ChatUI:
    conversation: Any
    chatbot: Any
    question: Any
    ask: Any
    stop: Any
    clear: Any
    sources: Any
    run_id: Any  # hidden: the browser's id for the question being asked


def cards_from_result(result, lookup: Callable[[str], Paper | None]) -> list[SourceCard]:
    """Source cards for a (partial or final) AnswerResult's references."""
    papers = {h.paper.id: h.paper for h in getattr(result, "hits", [])}
    cards = []
    for ref in result.references:
        paper = papers.get(ref.id) or lookup(ref.id)
        card = SourceCard(
            n=ref.n,
            id=ref.id,
            title=ref.title,
            abstract=paper.abstract if paper else "",
            code_url=ref.code_url,
            date=ref.date,
            sources=list(ref.sources),
        )
        for citation in result.citations:
            if citation.n != ref.n:
                continue
            card.score = max(card.score, citation.support)
            if citation.relevance is not None and (card.relevance is None or citation.relevance > card.relevance):
                card.relevance, card.label = citation.relevance, citation.label
            if citation.evidence and citation.evidence not in card.evidence:
                card.evidence.append(citation.evidence)
            card.claims.append((citation.sentence, citation.support))
        cards.append(card)
    return cards


def nearest_cards(hits: Sequence, count: int = 3) -> list[SourceCard]:
    return [
        SourceCard(
            n=i + 1,
            id=h.paper.id,
            title=h.paper.title,
            abstract=h.paper.abstract,
            code_url=h.paper.code_url,
            date=h.paper.date,
            sources=list(h.paper.sources),
            score=h.similarity,
        )
        for i, h in enumerate(list(hits)[:count])
    ]


def create_ui() -> ChatUI:
    import gradio as gr

    conversation = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            chatbot = gr.Chatbot(
                elem_id="chat",
                label="Conversation",
                show_label=False,
                height="calc(100vh - 230px)",
                min_height=360,
                # No Gradio copy/share buttons: they copy the bubble's HTML (and "share"
                # posts to Hugging Face); each answer has its own Copy link.
                buttons=[],
                feedback_options=None,
                # An answer shows the text verified against the abstracts: "$$…$$" in an
                # abstract stays as written, like every other sign (render.py).
                latex_delimiters=[],
                placeholder="Ask about the papers in the library, e.g. *What is a convergent graph solver?* "
                "Answers cite the abstracts they come from.",
            )
            with gr.Row(elem_classes="chat-input-row", elem_id="chat-input-row", equal_height=True):
                question = gr.Textbox(
                    show_label=False,
                    placeholder="Ask a question about the papers… (Enter to send)",
                    scale=1,
                    lines=1,
                    max_lines=4,
                    autofocus=True,
                    container=False,
                    elem_id="question",
                )
                ask = gr.Button("Ask", variant="primary", scale=0, min_width=76, size="md", elem_id="ask")
                stop = gr.Button("Stop", variant="stop", scale=0, min_width=76, size="md", elem_id="stop")
                clear = gr.Button("Clear", scale=0, min_width=76, size="md", elem_id="clear")
            run_id = gr.Textbox("", visible=False)
        with gr.Column(scale=2, min_width=320, elem_id="sources-col"):
            sources = gr.HTML(EMPTY_SOURCES, elem_id="sources", js_on_load=None)
    return ChatUI(conversation, chatbot, question, ask, stop, clear, sources, run_id)


def create_event_handlers(ui: ChatUI, settings_ui: SettingsUI, runtime: Runtime) -> None:
    import gradio as gr

    library = runtime.library

    def ask(text, entries, k, temperature, max_tokens, model, llm_url, run_id, request: gr.Request):
        text = (text or "").strip()
        entries = list(entries or [])
        if not text:
            gr.Warning("Type a question first.")
            yield gr.skip(), chat_messages(entries), entries, render_sources(entries), gr.skip()
            return
        session = session_id(request)
        run = runtime.start_run(session, run_id or "")
        try:
            if run.cleared:  # Clear came before this answer started: it must not reappear
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            for earlier in entries:  # an answer cut off before it could say so
                if not earlier.finished:
                    earlier.status = "stopped"
            entry = ChatEntry(question=text)
            entries.append(entry)
            yield "", chat_messages(entries), entries, render_sources(entries), gr.skip()
            started = time.perf_counter()
            for _ in _answer(entry, entries, run, (k, temperature, max_tokens, model, llm_url)):
                yield gr.skip(), chat_messages(entries), entries, render_sources(entries), gr.skip()
            entry.seconds = time.perf_counter() - started
            info = settings_markdown(runtime, model, llm_url)
            if entry.model:
                info += f"  \nLast answer by **{entry.model}**"
            yield gr.skip(), chat_messages(entries), entries, render_sources(entries), info
        finally:
            runtime.end_run(session, run)  # after the last update: Stop and Clear wait for it

    def _answer(entry: ChatEntry, entries: list[ChatEntry], run, values: tuple):
        """Fill `entry` from the answer stream; yields after each visible change.
        `values` are the Settings tab's (k, temperature, max_tokens, model, llm_url)."""
        stop = run.stop
        result = None
        try:
            if not stop.is_set():
                settings = runtime.checked_settings(*values)  # only what the operator allowed
                history = [e.turn for e in entries[:-1] if e.turn is not None]
                pipeline = AnswerPipeline(library, settings=settings)
                stream = pipeline.stream(entry.question, history, k=settings.k, stop=stop)
                try:
                    for result in stream:
                        if stop.is_set():
                            break  # keep what was shown when Stop was pressed
                        entry.papers_read = len(result.hits)
                        entry.answer = result.answer
                        entry.mode = result.mode
                        entry.model = result.model or entry.model
                        entry.message = result.notice
                        if result.abstained:
                            entry.status = "abstained"
                            entry.nearest = nearest_cards(result.hits)
                        else:
                            entry.status = "writing"
                            entry.cards = cards_from_result(result, library.get)
                        yield
                finally:
                    stream.close()  # frees the model now, whatever ended the loop
            if stop.is_set():
                entry.status = "stopped"
                if entry.answer:
                    entry.turn = Turn(entry.question, entry.answer, [c.title for c in entry.cards], cited_ids=[c.id for c in entry.cards])
            elif result is not None:
                if not result.abstained:
                    entry.status = "done"
                entry.turn = result.to_turn()
        except Exception as exc:  # noqa: BLE001 - shown in the chat; never a traceback
            entry.status = "error"
            entry.message = show_error(exc)

    chat_outputs = [ui.question, ui.chatbot, ui.conversation, ui.sources, settings_ui.info]
    chat_inputs = [ui.question, ui.conversation, *settings_ui.inputs, ui.run_id]
    ask_event = gr.on(
        [ui.question.submit, ui.ask.click],
        ask,
        chat_inputs,
        chat_outputs,
        js=ask_js(len(chat_inputs)),
        api_name="ask",
        # While the question waits its turn, the chat's corner shows Gradio's "queue: 2/5 |
        # 3.1/9.0s" (position and ETA); once the answer starts, its own bubble says what runs.
        show_progress="minimal",
        show_progress_on=[ui.chatbot],
        concurrency_id="chat",
        concurrency_limit=runtime.generation_slots,
        trigger_mode="once",
    )
    ask_event.then(None, None, None, js=IDLE_JS, api_visibility="private", queue=False)

    def stopped(run_id, request: gr.Request):
        """Stop the running answer: it ends at the next token, keeps what it had and
        says so itself. Returns once it has ended, so the next question can go."""
        ended = runtime.request_stop(session_id(request), run_id or "")
        if ended is not None:
            ended.wait(timeout=15)

    ui.stop.click(stopped, [ui.run_id], None, js=STOP_JS, api_name="stop", queue=False, show_progress="hidden")

    def clear(run_id, request: gr.Request):
        ended = runtime.request_stop(session_id(request), run_id or "", clear=True)
        if ended is not None:
            ended.wait(timeout=15)  # its last update must not come after the clearing
        return [], [], EMPTY_SOURCES, ""

    cleared = [ui.chatbot, ui.conversation, ui.sources, ui.question]
    ui.clear.click(clear, [ui.run_id], cleared, js=STOP_JS, api_name="clear", queue=False, show_progress="hidden")
    ui.chatbot.clear(clear, [ui.run_id], cleared, js=STOP_JS, api_visibility="private", queue=False, show_progress="hidden")
