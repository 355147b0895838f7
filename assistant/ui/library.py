"""The Library tab: the catalog as a paged table with a search box; selecting a row (or a
related paper) shows the paper and its related papers; uploads are ingested with progress.

- Paging and search happen on the server, one page (`PAGE_SIZE` rows) at a time: the
  store's own order through Chroma `get(limit=, offset=, where=)` (source and code
  filters are Chroma metadata filters), and word search through the BM25 index's
  postings (papers whose title or abstract holds every word, stemmed, best first). No
  request sends the whole catalog to the browser, at 100,000 papers or at 30.

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
from .guard import uploaded_files
from .render import esc, markdown_text, render_paper
from .session import Runtime, friendly_error, gradio_progress, show_error

SUPPORTED_UPLOADS = [".txt", ".jsonl", ".json", ".csv", ".bib"]
LIBRARY_HEADERS = ["Title", "Date", "Code", "Sources"]
ALL_SOURCES = "All sources"
PAGE_SIZE = 50
PICKER_LIMIT = 500  # the Summary tab's paper picker lists at most this many titles

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
    previous: Any = None
    next: Any = None
    view: Any = None  # {"page", "ids"}: the page shown and its paper ids, per browser tab


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


@dataclass
class Page:
    rows: list[list[str]]
    ids: list[str]
    page: int
    pages: int
    total: int  # papers matching (the whole store without a search or filter)
    note: str = ""


def _where(source: str | None, has_code: bool) -> dict | None:
    from ..retrieval import Filters

    return Filters(source=source or None, has_code=True if has_code else None).chroma_where()


def catalog_page(library, query: str = "", source: str | None = None, has_code: bool = False, page: int = 1) -> Page:
    """One page of the library table, computed on the server.

    Without words: the store's rows in its own order, `PAGE_SIZE` at a time (Chroma
    get with limit/offset and the filters as a where clause). With words: the papers
    whose title or abstract contains every word (BM25 postings, stemmed), best first,
    filtered; when none does, the closest papers by meaning (hybrid search)."""
    store = library.store
    where = _where(source, has_code)
    words = (query or "").strip()
    note = ""
    if not words:
        total = store.count() if where is None else len(store.ids(where))
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        rows = store.page((page - 1) * PAGE_SIZE, PAGE_SIZE, where)
        papers = [Paper.from_metadata(meta) for meta in rows.metadatas]
    else:
        lexical = library._lexical_index()
        ids = lexical.matching(words) if lexical is not None else []
        if not ids and words.startswith("p-"):
            ids = [id for id in [words] if library.get(id) is not None]
        if ids and where is not None:
            allowed: set[str] = set()
            for start in range(0, len(ids), 500):
                allowed.update(store._collection.get(ids=ids[start : start + 500], where=where, include=[])["ids"])
            ids = [id for id in ids if id in allowed]
        if ids:
            total = len(ids)
            pages = max(1, -(-total // PAGE_SIZE))
            page = min(max(1, int(page or 1)), pages)
            chosen = ids[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            found = store.papers(chosen)
            papers = [found[id] for id in chosen if id in found]
        else:
            papers, total, pages, page = [], 0, 1, 1
            if store.count():
                hits = library.search(words, 15)
                hits = [h for h in hits if (not source or source in h.paper.sources) and (not has_code or h.paper.code_url)]
                papers = [h.paper for h in hits]
                note = "No paper contains all these words; showing the closest papers by meaning." if papers else "No paper matches."
    if not note:
        matched = f"{total:,} of {store.count():,} papers match" if (words or where is not None) else f"{total:,} papers"
        note = f"{matched} · page {page} of {pages}" if pages > 1 or not (words or where is not None) else f"{matched}."
    return Page([paper_row(p) for p in papers], [p.id for p in papers], page, pages, total, note)


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
                label="Papers (one page; click a header to sort it, a row to open)",
            )
            with gr.Row():
                previous = gr.Button("← Previous page", size="sm", elem_id="library-previous")
                next_ = gr.Button("Next page →", size="sm", elem_id="library-next")
        with gr.Column(scale=2, min_width=320):
            paper_view = gr.HTML(render_paper(None), elem_id="paper-view", js_on_load=PAPER_VIEW_JS)
    view = gr.State({"page": 1, "ids": []})
    return LibraryUI(
        stats, uploads, left_out, ingest, report, search, source, code_only, note, table, paper_view, previous, next_, view
    )


def create_event_handlers(ui: LibraryUI, runtime: Runtime, *, app: Any, header: Any, paper_picker: Any) -> None:
    """Wires this tab, and the page load that fills it (and the Summary tab's paper
    picker and the header) from the store."""
    import gradio as gr
    import pandas as pd

    from .render import header_html

    library = runtime.library

    def frame(rows):
        return pd.DataFrame(rows, columns=LIBRARY_HEADERS)

    def table_page(text, source, code, page=1):
        """(table, note, view) for one page of the library table."""
        try:
            chosen = None if not source or source == ALL_SOURCES else source
            result = catalog_page(library, text, chosen, bool(code), int(page or 1))
            return frame(result.rows), result.note, {"page": result.page, "ids": result.ids}
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            return frame([]), f"**Could not search:** {markdown_text(show_error(exc))}", {"page": 1, "ids": []}

    def library_table(text, source, code):
        return table_page(text, source, code, 1)

    def turn_page(text, source, code, view, step):
        return table_page(text, source, code, int((view or {}).get("page", 1)) + step)

    def library_page(query: str, source: str, has_code: bool, page: int) -> dict:
        """One page of the library, as data: {rows, ids, page, pages, total, note}."""
        chosen = None if not source or source == ALL_SOURCES else source
        result = catalog_page(library, query or "", chosen, bool(has_code), int(page or 1))
        return {"rows": result.rows, "ids": result.ids, "page": result.page, "pages": result.pages, "total": result.total, "note": result.note}

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

    def select_row(table, view, evt: gr.SelectData):
        row = evt.row_value
        if not row and evt.index is not None and table is not None:
            try:
                row = list(table.iloc[evt.index[0]])
            except Exception:  # noqa: BLE001 - a click outside the rows
                row = None
        if not row:
            return gr.skip()
        title = str(row[0])
        # The page's ids, matched by title: the browser may have re-sorted the rows.
        page_ids = list((view or {}).get("ids", []))
        found = library.store.papers(page_ids) if page_ids else {}
        ids = {p.title: p.id for p in found.values()}
        return show_paper(ids.get(title) or make_paper_id(title))

    def open_related(evt: gr.EventData):
        data = getattr(evt, "_data", None) or {}
        paper_id = data.get("paper") if isinstance(data, dict) else None
        return show_paper(paper_id) if paper_id else gr.skip()

    inputs = [ui.search, ui.source, ui.code_only]
    table_outputs = [ui.table, ui.note, ui.view]
    ui.search.input(library_table, inputs, table_outputs, api_visibility="private", trigger_mode="always_last", show_progress="hidden")
    ui.search.submit(library_table, inputs, table_outputs, api_name="library_search", show_progress="hidden")
    ui.source.input(library_table, inputs, table_outputs, api_visibility="private", show_progress="hidden")
    ui.code_only.input(library_table, inputs, table_outputs, api_visibility="private", show_progress="hidden")
    ui.previous.click(
        lambda t, s, c, v: turn_page(t, s, c, v, -1), [*inputs, ui.view], table_outputs, api_visibility="private", show_progress="hidden"
    )
    ui.next.click(
        lambda t, s, c, v: turn_page(t, s, c, v, 1), [*inputs, ui.view], table_outputs, api_visibility="private", show_progress="hidden"
    )
    ui.table.select(select_row, [ui.table, ui.view], [ui.paper_view], api_visibility="private", show_progress="hidden")
    ui.paper_view.click(open_related, None, [ui.paper_view], api_visibility="private", show_progress="hidden")
    gr.api(show_paper, api_name="paper")
    gr.api(library_page, api_name="library_page")

    def library_state():
        papers = library.catalog()  # cached on the server per store generation; not sent whole
        stats = library.stats()
        stats_md = (
            f"**{stats['papers']} papers** · {stats['with_code']} with code · {stats['sources']} source files · "
            f"store `{stats['store']}`"
        )
        return stats_md, [(p.title, p.id) for p in papers[:PICKER_LIMIT]], source_choices(papers)

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
            return (gr.skip(),) * 10
        accepted, rejected = split_uploads(paths)
        rejected += [name for name in left_out or [] if name not in rejected]
        # Only files Gradio received as uploads, within the size limit (see guard.py).
        accepted, refused = uploaded_files(accepted, library.settings)
        names = {p: Path(p).name for p in paths}
        # Messages quote file names and records: shown as text, never as Markdown.
        skipped = [f"- ✗ {markdown_text(rejected_message(rejected))}"] if rejected else []
        skipped += [f"- ✗ {markdown_text(message)}" for message in refused]
        if rejected:
            gr.Warning(rejected_message(rejected))
        for message in refused:
            gr.Warning(message)
        if not accepted:
            return ("**Nothing was added.**\n" + "\n".join(skipped),) + (gr.skip(),) * 7 + ([], gr.skip())
        try:
            progress(0, desc="Reading files")
            report = library.ingest(accepted, progress=gradio_progress(progress))
        except Exception as exc:  # noqa: BLE001 - shown readably (see session.friendly_error)
            message = show_error(exc)
            return (f"**Nothing was added:** {markdown_text(display_name(message, names))}",) + (gr.skip(),) * 9
        lines = [
            f"**{len(report.files)} of {len(accepted) + len(rejected) + len(refused)} file(s) read:** {report.added} added, {report.updated} updated, "
            f"{report.metadata_only} with new sources, {report.unchanged} unchanged. The library now has {library.count()} papers.",
            *skipped,
        ]
        lines += [f"- ✗ {markdown_text(display_name(error, names))}" for error in report.errors]
        lines += [f"- skipped: {markdown_text(display_name(str(problem), names))}" for problem in report.problems[:20]]
        if len(report.problems) > 20:
            lines.append(f"- … and {len(report.problems) - 20} more skipped records")
        if report.errors:
            gr.Warning(f"{len(report.errors)} file(s) could not be read; see the report.")
        table, note, view = library_table(text, source, code)
        stats_md, choices, sources = library_state()
        pickers = gr.Dropdown(choices=choices), gr.Dropdown(choices=sources)
        return "\n".join(lines), table, note, stats_md, *pickers, None, header_html(header_text(runtime)), [], view

    ui.ingest.click(
        ingest,
        [ui.uploads, *inputs, ui.left_out],
        [ui.report, ui.table, ui.note, ui.stats, paper_picker, ui.source, ui.uploads, header, ui.left_out, ui.view],
        api_name="ingest",
        concurrency_limit=1,
        concurrency_id="ingest",
    )

    def on_load():
        try:
            stats_md, choices, sources = library_state()
            table, note, view = library_table("", None, False)
        except Exception as exc:  # noqa: BLE001
            return f"**Library unavailable:** {markdown_text(friendly_error(exc))}", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (
            stats_md, gr.Dropdown(choices=choices), gr.Dropdown(choices=sources, value=ALL_SOURCES), table,
            header_html(header_text(runtime)), note, view,
        )

    app.load(on_load, None, [ui.stats, paper_picker, ui.source, ui.table, header, ui.note, ui.view], api_visibility="private")
