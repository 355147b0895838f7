"""The Library tab: the catalog as a table with a search box; selecting a row (or a
related paper) shows the paper and its related papers; uploads are ingested with progress.

- Sorting: a click on a column header sorts by it (assets/ui.js drives the table's own
  sort, which Gradio only offers from each header's ⋮ menu).
- Uploads are checked here, not by gr.File(file_types=...): Gradio's check rejects a
  whole mixed selection server-side and covers the accepted files with an "Error"
  overlay in the browser. Here the supported files stay listed and are ingested, and the
  others are named in a message.
"""

# No `from __future__ import annotations` here: Gradio finds gr.Request / gr.SelectData
# parameters by evaluating handler annotations, and gradio is imported inside functions.

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import Paper
from ..records import paper_id as make_paper_id
from .render import esc, render_paper
from .session import Runtime, friendly_error, gradio_progress, show_error

SUPPORTED_UPLOADS = [".txt", ".jsonl", ".json", ".csv", ".bib"]
LIBRARY_HEADERS = ["Title", "Date", "Code", "Sources"]
ALL_SOURCES = "All sources"

# The paper view: related-paper links open that paper; a newly shown paper starts at its
# top (the view keeps its scroll position across updates otherwise) and in sight.
PAPER_VIEW_JS = """
element.addEventListener('click', (event) => {
  const link = event.target.closest && event.target.closest('[data-paper]');
  if (!link) return;
  event.preventDefault();
  trigger('click', {paper: link.dataset.paper});
});
watch('value', () => {
  const view = element.querySelector('.paper-view');
  if (view) view.scrollTop = 0;
  if (element.getBoundingClientRect().top < 0) element.scrollIntoView({block: 'start'});
});
"""


@dataclass
class LibraryUI:
    stats: Any
    uploads: Any
    left_out: Any  # names of the files the last upload left out, for the ingest report
    ingest: Any
    report: Any
    search: Any
    source: Any
    code_only: Any
    note: Any
    table: Any
    paper_view: Any


# --- plain data ---------------------------------------------------------------------------


def paper_row(paper: Paper) -> list[str]:
    return [paper.title, paper.date or "", "yes" if paper.code_url else "", ", ".join(paper.sources)]


def catalog_rows(
    papers: list[Paper], query: str = "", source: str | None = None, has_code: bool = False
) -> list[list[str]]:
    """Library table rows, filtered: every word of the query must occur in title, abstract or id."""
    words = [w for w in (query or "").lower().split() if w]
    rows = []
    for paper in papers:
        if source and source not in paper.sources:
            continue
        if has_code and not paper.code_url:
            continue
        if words:
            text = f"{paper.title} {paper.abstract} {paper.id}".lower()
            if not all(w in text for w in words):
                continue
        rows.append(paper_row(paper))
    return rows


def split_uploads(paths: list[str]) -> tuple[list[str], list[str]]:
    """(supported, unsupported) file paths, by extension."""
    accepted = [p for p in paths if Path(p).suffix.lower() in SUPPORTED_UPLOADS]
    return accepted, [p for p in paths if p not in accepted]


def rejected_message(rejected: list[str]) -> str:
    names = ", ".join(dict.fromkeys(Path(p).name for p in rejected))
    kinds = ", ".join(SUPPORTED_UPLOADS)
    return f"Not a supported file type, left out: {names} (the library reads {kinds})."


def display_name(text: str, names: dict[str, str]) -> str:
    """Uploaded files by the name the user gave them, not Gradio's cache path."""
    for full, short in names.items():
        text = text.replace(full, short)
    return text


def header_text(runtime: Runtime) -> str:
    try:
        stats = runtime.library.stats()
        return f"{stats['papers']} papers · {stats['with_code']} with code · {stats['sources']} source files · answers cite and quote their sources"
    except Exception as exc:  # noqa: BLE001 - shown in the header, readably
        return f"store unavailable: {friendly_error(exc)}"


def source_choices(papers: list[Paper]) -> list[str]:
    return [ALL_SOURCES] + sorted({s for p in papers for s in p.sources})


# --- the tab --------------------------------------------------------------------------------


def create_ui(initial_sources: list[str]) -> LibraryUI:
    import gradio as gr

    stats = gr.Markdown("")
    with gr.Accordion("Add papers (.txt, .jsonl, .json, .csv, .bib)", open=False, elem_id="add-papers"):
        uploads = gr.File(
            file_count="multiple",
            type="filepath",
            label="Files: .txt page dumps, .jsonl, .json, .csv, .bib",
            elem_id="uploads",
            height=150,
        )
        left_out = gr.State([])
        ingest = gr.Button("Add to the library", variant="primary", size="md", elem_id="ingest")
        report = gr.Markdown("", elem_id="ingest-report")
    with gr.Row():
        search = gr.Textbox(label="Search", placeholder="words in the title or abstract", scale=4, elem_id="library-search")
        source = gr.Dropdown(choices=initial_sources, value=ALL_SOURCES, label="Source", scale=2, allow_custom_value=True)
        code_only = gr.Checkbox(label="With code only", value=False, scale=1)
    note = gr.Markdown("")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            table = gr.Dataframe(
                headers=LIBRARY_HEADERS,
                datatype=["str"] * len(LIBRARY_HEADERS),
                interactive=False,
                wrap=True,
                max_height=520,
                column_widths=["62%", "10%", "8%", "20%"],
                elem_id="library-table",
                label="Papers (click a header to sort, a row to open)",
            )
        with gr.Column(scale=2, min_width=320):
            paper_view = gr.HTML(render_paper(None), elem_id="paper-view", js_on_load=PAPER_VIEW_JS)
    return LibraryUI(stats, uploads, left_out, ingest, report, search, source, code_only, note, table, paper_view)


def create_event_handlers(ui: LibraryUI, runtime: Runtime, *, app: Any, header: Any, paper_picker: Any) -> None:
    """Wires this tab, and the page load that fills it (and the Summary tab's paper
    picker and the header) from the store."""
    import gradio as gr
    import pandas as pd

    from .render import header_html

    library = runtime.library

    def frame(rows):
        return pd.DataFrame(rows, columns=LIBRARY_HEADERS)

    def library_table(text, source, code):
        try:
            papers = library.catalog()
            chosen = None if not source or source == ALL_SOURCES else source
            rows = catalog_rows(papers, text, chosen, bool(code))
            note = ""
            if (text or "").strip() and not rows and papers:
                hits = library.search(text, 15)
                hits = [h for h in hits if (not chosen or chosen in h.paper.sources) and (not code or h.paper.code_url)]
                rows = [paper_row(h.paper) for h in hits]
                note = "No paper contains all these words; showing the closest papers by meaning." if rows else "No paper matches."
            elif (text or "").strip() or chosen or code:
                note = f"{len(rows)} of {len(papers)} papers match."
            return frame(rows), note
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            return frame([]), f"**Could not search:** {show_error(exc)}"

    def show_paper(paper_id: str) -> str:
        """A paper and its related papers, as HTML (the Library tab's paper view)."""
        paper_id = (paper_id or "").strip()
        if not paper_id:
            return render_paper(None)
        try:
            paper = library.get(paper_id)
            if paper is None:
                return f'<div class="notice warn">No paper with id {esc(paper_id)}.</div>'
            return render_paper(paper, library.related(paper_id, 5))
        except Exception as exc:  # noqa: BLE001
            return f'<div class="notice warn">Could not open the paper: {esc(show_error(exc))}</div>'

    def select_row(table, evt: gr.SelectData):
        row = evt.row_value
        if not row and evt.index is not None and table is not None:
            try:
                row = list(table.iloc[evt.index[0]])
            except Exception:  # noqa: BLE001 - a click outside the rows
                row = None
        if not row:
            return gr.skip()
        title = str(row[0])
        ids = {p.title: p.id for p in library.catalog()}
        return show_paper(ids.get(title) or make_paper_id(title))

    def open_related(evt: gr.EventData):
        data = getattr(evt, "_data", None) or {}
        paper_id = data.get("paper") if isinstance(data, dict) else None
        return show_paper(paper_id) if paper_id else gr.skip()

    inputs = [ui.search, ui.source, ui.code_only]
    table_outputs = [ui.table, ui.note]
    ui.search.input(library_table, inputs, table_outputs, api_visibility="private", trigger_mode="always_last", show_progress="hidden")
    ui.search.submit(library_table, inputs, table_outputs, api_name="library_search", show_progress="hidden")
    ui.source.input(library_table, inputs, table_outputs, api_visibility="private", show_progress="hidden")
    ui.code_only.input(library_table, inputs, table_outputs, api_visibility="private", show_progress="hidden")
    ui.table.select(select_row, [ui.table], [ui.paper_view], api_visibility="private", show_progress="hidden")
    ui.paper_view.click(open_related, None, [ui.paper_view], api_visibility="private", show_progress="hidden")
    gr.api(show_paper, api_name="paper")

    def library_state():
        papers = library.catalog()
        stats = library.stats()
        stats_md = (
            f"**{stats['papers']} papers** · {stats['with_code']} with code · {stats['sources']} source files · "
            f"store `{stats['store']}`"
        )
        return stats_md, [(p.title, p.id) for p in papers], source_choices(papers)

    def on_upload(files):
        """Keep the supported files listed; name the others."""
        paths = [str(f) for f in (files or [])]
        accepted, rejected = split_uploads(paths)
        if not rejected:
            return gr.skip(), "", []
        message = rejected_message(rejected)
        gr.Warning(message)
        return (accepted or None), f"⚠ {message}", [Path(p).name for p in rejected]

    ui.uploads.upload(
        on_upload, [ui.uploads], [ui.uploads, ui.report, ui.left_out], api_visibility="private", show_progress="hidden"
    )

    def ingest(files, text, source, code, left_out, progress=gr.Progress()):
        paths = [str(f) for f in (files or [])]
        if not paths and not left_out:
            gr.Warning("Choose one or more files first.")
            return (gr.skip(),) * 9
        accepted, rejected = split_uploads(paths)
        rejected += [name for name in left_out or [] if name not in rejected]
        names = {p: Path(p).name for p in paths}
        skipped = [f"- ✗ {rejected_message(rejected)}"] if rejected else []
        if rejected:
            gr.Warning(rejected_message(rejected))
        if not accepted:
            return ("**Nothing was added.**\n" + "\n".join(skipped),) + (gr.skip(),) * 7 + ([],)
        try:
            progress(0, desc="Reading files")
            report = library.ingest(accepted, progress=gradio_progress(progress))
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            message = show_error(exc)
            return (f"**Nothing was added:** {display_name(message, names)}",) + (gr.skip(),) * 8
        lines = [
            f"**{len(report.files)} of {len(accepted) + len(rejected)} file(s) read:** {report.added} added, {report.updated} updated, "
            f"{report.metadata_only} with new sources, {report.unchanged} unchanged. The library now has {library.count()} papers.",
            *skipped,
        ]
        lines += [f"- ✗ {display_name(error, names)}" for error in report.errors]
        lines += [f"- skipped: {display_name(str(problem), names)}" for problem in report.problems[:20]]
        if len(report.problems) > 20:
            lines.append(f"- … and {len(report.problems) - 20} more skipped records")
        if report.errors:
            gr.Warning(f"{len(report.errors)} file(s) could not be read; see the report.")
        table, note = library_table(text, source, code)
        stats_md, choices, sources = library_state()
        pickers = gr.Dropdown(choices=choices), gr.Dropdown(choices=sources)
        return "\n".join(lines), table, note, stats_md, *pickers, None, header_html(header_text(runtime)), []

    ui.ingest.click(
        ingest,
        [ui.uploads, *inputs, ui.left_out],
        [ui.report, ui.table, ui.note, ui.stats, paper_picker, ui.source, ui.uploads, header, ui.left_out],
        api_name="ingest",
        concurrency_limit=1,
        concurrency_id="ingest",
    )

    def on_load():
        try:
            stats_md, choices, sources = library_state()
            table, _ = library_table("", None, False)
        except Exception as exc:  # noqa: BLE001
            return f"**Library unavailable:** {friendly_error(exc)}", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return stats_md, gr.Dropdown(choices=choices), gr.Dropdown(choices=sources, value=ALL_SOURCES), table, header_html(header_text(runtime))

    app.load(on_load, None, [ui.stats, paper_picker, ui.source, ui.table, header], api_visibility="private")
