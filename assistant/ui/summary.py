"""The Summary tab: a topic or one paper -> cited Markdown, downloadable as .md and .bib.

Summaries run in the chat's concurrency group: they use the same model, and the model
generates for one request at a time. Stop ends a topic summary's generation at the next
token; the papers not summarized yet are quoted, so the summary still comes back cited.
"""

# No `from __future__ import annotations` here: Gradio finds gr.Request / gr.SelectData
# parameters by evaluating handler annotations, and gradio is imported inside functions.

import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import Paper
from ..references import format_references
from ..settings import Settings
from .session import Runtime, gradio_progress, session_id, show_error
from .settings import SettingsUI

_DOWNLOADS = Path(tempfile.gettempdir()) / "assistant-downloads"


@dataclass
class SummaryUI:
    topic: Any
    n_papers: Any
    topic_btn: Any
    stop_btn: Any
    paper_picker: Any
    paper_btn: Any
    md_download: Any
    bib_download: Any
    output: Any


def slugify(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return slug[:limit].strip("-") or "summary"


def referenced_papers(summary) -> list[Paper]:
    """The papers the summary cites, in reference order (else every paper it read)."""
    papers = list(getattr(summary, "papers", []) or [])
    ids = [getattr(r, "id", None) for r in getattr(summary, "references", []) or []]
    ids = [i for i in ids if i]
    if ids:
        by_id = {p.id: p for p in papers}
        cited = [by_id[i] for i in ids if i in by_id]
        if cited:
            return cited
    return papers


def _download_folder(max_age_s: float = 3600.0) -> Path:
    """A fresh folder for one summary's files; folders older than an hour are removed
    (Gradio has copied them into its own cache by then)."""
    _DOWNLOADS.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in _DOWNLOADS.iterdir():
        try:
            if now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=_DOWNLOADS))


def write_downloads(markdown: str, papers: list[Paper], name: str) -> tuple[str, str | None]:
    """(summary .md path, references .bib path or None when nothing is cited)."""
    folder = _download_folder()
    md_path = folder / f"{name}.md"
    md_path.write_text(markdown, encoding="utf-8")
    bib_path = None
    if papers:
        bib_path = folder / f"{name}.bib"
        bib_path.write_text(format_references(papers, "bibtex"), encoding="utf-8")
    return str(md_path), str(bib_path) if bib_path else None


def create_ui(initial_choices: list[tuple[str, str]]) -> SummaryUI:
    import gradio as gr

    low, high = Settings.bounds("summary_papers")
    default_n = Settings.model_fields["summary_papers"].default
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            topic = gr.Textbox(label="Topic", placeholder="e.g. pruning neural networks", lines=1, elem_id="topic")
            n_papers = gr.Slider(low, high, value=default_n, step=1, label="Papers to read")
            with gr.Row():
                topic_btn = gr.Button("Summarize topic", variant="primary", size="md", scale=3)
                stop_btn = gr.Button("Stop", variant="stop", size="md", scale=1, min_width=70, elem_id="summary-stop")
            gr.Markdown("— or —", elem_classes="muted")
            paper_picker = gr.Dropdown(
                choices=initial_choices, value=None, label="One paper", filterable=True, allow_custom_value=True
            )
            paper_btn = gr.Button("Summarize paper", size="md")
            with gr.Row():
                md_download = gr.DownloadButton("Download .md", interactive=False, size="sm")
                bib_download = gr.DownloadButton("References .bib", interactive=False, size="sm")
        with gr.Column(scale=3):
            output = gr.Markdown(
                "Pick a topic or a paper: the summary cites the papers it draws on and lists them as references.",
                elem_id="summary-output",
            )
    return SummaryUI(topic, n_papers, topic_btn, stop_btn, paper_picker, paper_btn, md_download, bib_download, output)


def create_event_handlers(ui: SummaryUI, settings_ui: SettingsUI, runtime: Runtime) -> None:
    import gradio as gr

    from ..summarize import summarize_paper, summarize_topic

    library = runtime.library

    def off():
        """A disabled download button (an update: made in the handler, since a
        component made while the page is built would be placed on the page)."""
        return gr.DownloadButton(interactive=False)

    def outputs(summary, name: str):
        try:
            md_path, bib_path = write_downloads(summary.markdown, referenced_papers(summary), name)
        except Exception as exc:  # noqa: BLE001 - the summary itself is still shown
            show_error(exc, "Could not prepare the downloads: ")
            return summary.markdown, off(), off()
        return (
            summary.markdown,
            gr.DownloadButton(value=md_path, interactive=True),
            gr.DownloadButton(value=bib_path, interactive=bib_path is not None),
        )

    def failed(exc: BaseException):
        return f"**Could not summarize:** {show_error(exc)}", off(), off()

    def summarize_topic_ui(text, n, k, temperature, max_tokens, model, llm_url, request: gr.Request, progress=gr.Progress()):
        text = (text or "").strip()
        if not text:
            gr.Warning("Type a topic first.")
            return gr.skip(), gr.skip(), gr.skip()
        session = "summary:" + session_id(request)
        run = runtime.start_run(session)
        try:
            progress(0, desc="Finding papers")
            settings = runtime.settings_for(k, temperature, max_tokens, model, llm_url)
            summary = summarize_topic(
                library, text, n=int(n), settings=settings, progress=gradio_progress(progress), stop=run.stop
            )
            return outputs(summary, f"summary-{slugify(text)}")
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            return failed(exc)
        finally:
            runtime.end_run(session, run)

    def stop_summary(request: gr.Request):
        runtime.request_stop("summary:" + session_id(request))

    def summarize_paper_ui(paper_id, k, temperature, max_tokens, model, llm_url, progress=gr.Progress()):
        if not paper_id:
            gr.Warning("Pick a paper first.")
            return gr.skip(), gr.skip(), gr.skip()
        try:
            progress(0, desc="Reading the paper")
            settings = runtime.settings_for(k, temperature, max_tokens, model, llm_url)
            summary = summarize_paper(library, paper_id, settings=settings)
            title = summary.paper.title if getattr(summary, "paper", None) else paper_id
            return outputs(summary, f"summary-{slugify(title)}")
        except Exception as exc:  # noqa: BLE001
            return failed(exc)

    summary_outputs = [ui.output, ui.md_download, ui.bib_download]
    topic_inputs = [ui.topic, ui.n_papers, *settings_ui.inputs]
    ui.topic.submit(summarize_topic_ui, topic_inputs, summary_outputs, api_visibility="private", concurrency_id="chat")
    ui.topic_btn.click(summarize_topic_ui, topic_inputs, summary_outputs, api_name="summarize_topic", concurrency_id="chat")
    ui.stop_btn.click(stop_summary, None, None, api_name="stop_summary", queue=False, show_progress="hidden")
    ui.paper_btn.click(
        summarize_paper_ui, [ui.paper_picker, *settings_ui.inputs], summary_outputs, api_name="summarize_paper", concurrency_id="chat"
    )
