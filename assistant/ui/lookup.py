"""The Citation lookup tab: a claim or a title -> papers with the quoted supporting
sentence and copyable BibTeX / Markdown references (:func:`assistant.lookup.cite`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lookup import cite
from ..references import format_references
from .render import esc, render_cite_hits
from .session import Runtime, show_error


@dataclass
class LookupUI:
    claim: Any
    k: Any
    button: Any
    results: Any
    bibtex: Any
    markdown: Any


def create_ui() -> LookupUI:
    import gradio as gr

    with gr.Row():
        claim = gr.Textbox(
            label="Claim or title",
            placeholder="Paste a claim to find the paper that supports it, or a (partial) title",
            scale=5,
            lines=2,
            elem_id="claim",
        )
        with gr.Column(scale=1, min_width=160):
            k = gr.Slider(1, 10, value=5, step=1, label="Results")
            button = gr.Button("Look up", variant="primary", size="md")
    results = gr.HTML('<div class="muted">Results show the sentence that supports the claim and its score.</div>', js_on_load=None)
    with gr.Row():
        bibtex = gr.Code(
            label="BibTeX", language=None, lines=6, max_lines=20, buttons=["copy", "download"], interactive=False, wrap_lines=True
        )
        markdown = gr.Code(
            label="Markdown", language="markdown", lines=6, max_lines=20, buttons=["copy"], interactive=False, wrap_lines=True
        )
    return LookupUI(claim, k, button, results, bibtex, markdown)


def create_event_handlers(ui: LookupUI, runtime: Runtime) -> None:
    import gradio as gr

    def lookup(text, k):
        """No model involved: the Settings tab's values do not apply here."""
        text = (text or "").strip()
        if not text:
            gr.Warning("Paste a claim or a title first.")
            return gr.skip(), gr.skip(), gr.skip()
        try:
            hits = cite(runtime.library, text, k=int(k), settings=runtime.settings_for())
            papers = [h.paper for h in hits]
            bibtex = format_references(papers, "bibtex") if papers else ""
            markdown = format_references(papers, "markdown") if papers else ""
            return render_cite_hits(hits), bibtex, markdown
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            return f'<div class="notice warn">Could not look this up: {esc(show_error(exc))}</div>', "", ""

    outputs = [ui.results, ui.bibtex, ui.markdown]
    ui.claim.submit(lookup, [ui.claim, ui.k], outputs, api_visibility="private")
    ui.button.click(lookup, [ui.claim, ui.k], outputs, api_name="cite")
