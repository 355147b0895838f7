"""The Summary tab: a topic or one paper -> cited Markdown, downloadable as .md and .bib;
and the literature table (assistant/table.py): one row per relevant paper, a click on a
cell shows that paper's abstract with the cell's text highlighted, CSV and Markdown download.

Summaries run in the chat's concurrency group: they use the same model, and the model
generates for one request at a time. Stop ends a topic summary's generation at the next
token; the papers not summarized yet are quoted, so the summary still comes back cited.
"""

# No `from __future__ import annotations` here: Gradio finds gr.Request / gr.SelectData
# parameters by evaluating handler annotations, and gradio is imported inside functions.

import copy
import dataclasses
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
from ..table import COLUMNS, COLUMN_TITLES, LiteratureTable, build_table
from .render import esc, escape_markdown_html, highlight, markdown_text, meta_line, notice, paper_names
from .session import Runtime, gradio_progress, session_id, show_error
from .settings import SettingsUI

_DOWNLOADS = Path(tempfile.gettempdir()) / "assistant-downloads"


@dataclass
class TableUI:
    """The literature table section of the Summary tab."""

    topic: Any
    n_papers: Any
    columns: Any
    build_btn: Any
    note: Any
    table: Any
    cell_view: Any
    csv_download: Any
    md_download: Any
    state: Any  # this browser tab's LiteratureTable, for cell clicks


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
    table: TableUI | None = None


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


def summary_markdown(summary) -> str:
    """The summary as the UI shows and exports it: the same Markdown the summarizer
    renders, with every sentence (quoted from an abstract or written by the model) shown
    as text, so ``**bold**``, ``[link](javascript:…)`` or backticks in an abstract are
    never formatting or links (render.markdown_text; titles and headings are escaped by
    the summarizer already). Only the papers' names stay in italics. The summary object
    itself is left as it is: this is a display copy."""
    if getattr(summary, "abstained", False) or not hasattr(summary, "render"):
        return summary.markdown  # the nearest titles only, escaped by the summarizer
    papers = list(getattr(summary, "papers", []) or [])
    if getattr(summary, "paper", None) is not None:
        papers.append(summary.paper)
    names = paper_names(p.title for p in papers)
    shown = copy.copy(summary)
    if hasattr(summary, "overview"):  # a topic summary
        shown.overview = [(markdown_text(text, names), numbers) for text, numbers in summary.overview]
        shown.themes = [
            dataclasses.replace(theme, sentences=[(markdown_text(text, names), numbers) for text, numbers in theme.sentences])
            for theme in summary.themes
        ]
    else:  # one paper's summary
        shown.statements = {role: markdown_text(text, names) for role, text in summary.statements.items()}
        shown.tldr = markdown_text(summary.tldr, names)
    return shown.render("markdown")


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


CELL_HINT = '<div class="paper-view muted">Click a cell of the table to read that paper\'s abstract with the quoted text highlighted.</div>'


def write_table_downloads(table: LiteratureTable, name: str) -> tuple[str, str]:
    """(table .csv path, table .md path)."""
    folder = _download_folder()
    csv_path, md_path = folder / f"{name}.csv", folder / f"{name}.md"
    csv_path.write_text(table.to_csv(), encoding="utf-8")
    md_path.write_text(escape_markdown_html(table.to_markdown()), encoding="utf-8")
    return str(csv_path), str(md_path)


def table_note(table: LiteratureTable) -> str:
    """The line above the table: what it holds, or why there is none."""
    if table.abstained:
        return notice(table.message)
    empty = sum(1 for row in table.rows for c in table.columns if c != "code" and not row.cells[c].text)
    seconds = table.timings.get("total_s")
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    return (
        f'<div class="muted">{len(table.rows)} paper(s){took}. Every cell is quoted from the paper\'s abstract '
        f"(support 1.00 = verbatim); — means the abstract does not say ({empty} such cell(s)). Click a cell to see it in its abstract.</div>"
    )


def render_table_cell(table: LiteratureTable | None, row: int, col: int) -> str:
    """The abstract of the clicked row's paper, with the clicked cell's text highlighted
    (column 0, the title, shows the abstract with every quoted cell highlighted)."""
    if table is None or not 0 <= row < len(table.rows):
        return CELL_HINT
    entry = table.rows[row]
    paper = entry.paper
    columns = table.columns
    if 1 <= col <= len(columns):
        column = columns[col - 1]
        cell = entry.cells[column]
        marked = [cell.text] if column != "code" and cell.text else []
        if column == "code":
            what = "Code link from the paper's metadata." if cell.text else "No code link in the paper's metadata."
        elif cell.text:
            what = f"{COLUMN_TITLES[column]}: quoted from the abstract (support {cell.support:.2f})." if cell.support is not None else ""
        else:
            what = f"{COLUMN_TITLES[column]}: the abstract does not say."
    else:
        marked = [entry.cells[c].text for c in columns if c != "code" and entry.cells[c].text]
        what = "Every quoted cell of this row is highlighted."
    return (
        f'<div class="paper-view" id="table-paper-{esc(paper.id)}"><h3>{esc(paper.title)}</h3>'
        f"{meta_line(paper.date, paper.sources, paper.code_url, paper.id)}"
        f'<div class="src-label">{esc(what)}</div><p class="abstract">{highlight(paper.abstract, marked)}</p></div>'
    )


def create_table_ui() -> TableUI:
    import gradio as gr

    low, high = Settings.bounds("table_papers")
    default_n = Settings.model_fields["table_papers"].default
    gr.Markdown("### Literature table", elem_id="table-heading")
    with gr.Row():
        topic = gr.Textbox(label="Topic or question", placeholder="e.g. quantization of large language models", lines=1, scale=3, elem_id="table-topic")
        n_papers = gr.Slider(low, high, value=default_n, step=1, label="Papers (rows)", scale=1, elem_id="table-n")
    with gr.Row():
        columns = gr.CheckboxGroup(
            choices=[(COLUMN_TITLES[c], c) for c in COLUMNS], value=list(COLUMNS), label="Columns", scale=3, elem_id="table-columns"
        )
        build_btn = gr.Button("Build table", variant="primary", size="md", scale=1, elem_id="table-build")
    note = gr.HTML("", elem_id="table-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            table = gr.Dataframe(
                headers=["Paper"] + [COLUMN_TITLES[c] for c in COLUMNS],
                datatype=["str"] * (len(COLUMNS) + 1),
                interactive=False,
                wrap=True,
                max_height=560,
                elem_id="literature-table",
                label="Papers (click a cell to see it in its abstract)",
            )
            with gr.Row():
                csv_download = gr.DownloadButton("Download .csv", interactive=False, size="sm", elem_id="table-csv")
                md_download = gr.DownloadButton("Download .md", interactive=False, size="sm", elem_id="table-md")
        with gr.Column(scale=2, min_width=320):
            cell_view = gr.HTML(CELL_HINT, elem_id="table-cell-view")
    state = gr.State(None)
    return TableUI(topic, n_papers, columns, build_btn, note, table, cell_view, csv_download, md_download, state)


def create_table_handlers(ui: TableUI, runtime: Runtime) -> None:
    """Build (model-free, so outside the chat's concurrency group) and cell clicks."""
    import gradio as gr
    import pandas as pd

    library = runtime.library

    def frame(table: LiteratureTable | None, columns=COLUMNS):
        header = table.header() if table is not None else ["Paper"] + [COLUMN_TITLES[c] for c in columns]
        return pd.DataFrame(table.display_rows() if table is not None else [], columns=header)

    def build(text, n, columns, progress=gr.Progress()):
        off = gr.DownloadButton(interactive=False)
        text = (text or "").strip()
        if not text:
            gr.Warning("Type a topic first.")
            return (gr.skip(),) * 6
        try:
            progress(0, desc="Finding papers")
            table = build_table(library, text, n=int(n), columns=list(columns or COLUMNS))
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            return notice(f"Could not build the table: {show_error(exc)}"), frame(None), None, CELL_HINT, off, off
        if table.abstained:
            return table_note(table), frame(None, table.columns), None, CELL_HINT, off, off
        try:
            csv_path, md_path = write_table_downloads(table, f"table-{slugify(text)}")
        except Exception as exc:  # noqa: BLE001 - the table itself is still shown
            show_error(exc, "Could not prepare the downloads: ")
            return table_note(table), frame(table), table, CELL_HINT, off, off
        return (
            table_note(table),
            frame(table),
            table,
            CELL_HINT,
            gr.DownloadButton(value=csv_path, interactive=True),
            gr.DownloadButton(value=md_path, interactive=True),
        )

    def open_cell(table, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, (list, tuple)) else None
        if table is None or not index or len(index) < 2:
            return gr.skip()
        return render_table_cell(table, int(index[0]), int(index[1]))

    outputs = [ui.note, ui.table, ui.state, ui.cell_view, ui.csv_download, ui.md_download]
    inputs = [ui.topic, ui.n_papers, ui.columns]
    ui.build_btn.click(build, inputs, outputs, api_name="literature_table")
    ui.topic.submit(build, inputs, outputs, api_visibility="private")
    ui.table.select(open_cell, [ui.state], [ui.cell_view], api_visibility="private", show_progress="hidden")


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
                latex_delimiters=[],  # quoted sentences show "$$…$$" as written (see summary_markdown)
            )
    table = create_table_ui()
    return SummaryUI(topic, n_papers, topic_btn, stop_btn, paper_picker, paper_btn, md_download, bib_download, output, table)


def create_event_handlers(ui: SummaryUI, settings_ui: SettingsUI, runtime: Runtime) -> None:
    import gradio as gr

    from ..summarize import summarize_paper, summarize_topic

    library = runtime.library

    def off():
        """A disabled download button (an update: made in the handler, since a
        component made while the page is built would be placed on the page)."""
        return gr.DownloadButton(interactive=False)

    def outputs(summary, name: str):
        markdown = escape_markdown_html(summary_markdown(summary))  # titles and abstracts are text, never markup
        try:
            md_path, bib_path = write_downloads(markdown, referenced_papers(summary), name)
        except Exception as exc:  # noqa: BLE001 - the summary itself is still shown
            show_error(exc, "Could not prepare the downloads: ")
            return markdown, off(), off()
        return (
            markdown,
            gr.DownloadButton(value=md_path, interactive=True),
            gr.DownloadButton(value=bib_path, interactive=bib_path is not None),
        )

    def failed(exc: BaseException):
        return f"**Could not summarize:** {markdown_text(show_error(exc))}", off(), off()

    def summarize_topic_ui(text, n, k, temperature, max_tokens, model, llm_url, request: gr.Request, progress=gr.Progress()):
        text = (text or "").strip()
        if not text:
            gr.Warning("Type a topic first.")
            return gr.skip(), gr.skip(), gr.skip()
        session = "summary:" + session_id(request)
        run = runtime.start_run(session)
        try:
            progress(0, desc="Finding papers")
            settings = runtime.checked_settings(k, temperature, max_tokens, model, llm_url)
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
            settings = runtime.checked_settings(k, temperature, max_tokens, model, llm_url)
            summary = summarize_paper(library, paper_id, settings=settings)
            title = summary.paper.title if getattr(summary, "paper", None) else paper_id
            return outputs(summary, f"summary-{slugify(title)}")
        except Exception as exc:  # noqa: BLE001
            return failed(exc)

    summary_outputs = [ui.output, ui.md_download, ui.bib_download]
    topic_inputs = [ui.topic, ui.n_papers, *settings_ui.inputs]
    group = dict(concurrency_id="chat", concurrency_limit=runtime.generation_slots)  # one model: queued with the chat
    ui.topic.submit(summarize_topic_ui, topic_inputs, summary_outputs, api_visibility="private", **group)
    ui.topic_btn.click(summarize_topic_ui, topic_inputs, summary_outputs, api_name="summarize_topic", **group)
    ui.stop_btn.click(stop_summary, None, None, api_name="stop_summary", queue=False, show_progress="hidden")
    ui.paper_btn.click(summarize_paper_ui, [ui.paper_picker, *settings_ui.inputs], summary_outputs, api_name="summarize_paper", **group)
    if ui.table is not None:
        create_table_handlers(ui.table, runtime)
