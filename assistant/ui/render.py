"""HTML for the UI, as pure functions of plain data (no Gradio, no Library), so every
renderer is unit-tested without a server.

Answers are one line of HTML per chat bubble (Markdown leaves it alone). Each ``[n]``
in an answer links to ``#src-T-N``, the id of a source card in the sources panel
(``T`` is the exchange, so ids stay unique across a conversation); assets/ui.js opens
the card on click. Everything user- or corpus-provided goes through :func:`esc`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..records import Paper

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
    relevance: float | None = None  # best question relevance of the cited evidence (answers only)
    label: str = ""  # support and relevance in plain words: "quoted from [1]; answers the question: strong"


@dataclass
class ChatEntry:
    """One exchange of the conversation, enough to re-render it and to continue it."""

    question: str
    answer: str = ""  # verified text with [n] markers
    status: str = "searching"  # searching | writing | done | abstained | stopped | error
    mode: str = ""  # generated | composed | extractive | abstained
    cards: list[SourceCard] = field(default_factory=list)
    nearest: list[SourceCard] = field(default_factory=list)
    papers_read: int = 0
    message: str = ""  # the error, for status == "error"; otherwise how the answer was made (e.g. the model server failed)
    seconds: float | None = None
    model: str = ""
    turn: Any = None  # answer.Turn, for follow-up questions

    @property
    def finished(self) -> bool:
        return self.status in ("done", "abstained", "stopped", "error")


# --- small helpers ---------------------------------------------------------------------------


def esc(text: object) -> str:
    return html.escape(str(text or ""), quote=True)


_RAW_HTML = re.compile(r"(\\*)<(?!https?://[^\s<>]*>)")


def escape_markdown_html(markdown: str) -> str:
    """Markdown with raw HTML neutralized: every "<" that does not open an http(s)
    autolink (``<https://…>``) becomes ``&lt;``, so a title or abstract holding tags (or a
    ``<javascript:…>`` link) shows as text in the UI and in exported .md files. A "<"
    already escaped with a backslash (``\\<``) is text already and stays as it is."""

    def repl(match: re.Match) -> str:
        slashes = match.group(1)
        return match.group(0) if len(slashes) % 2 else f"{slashes}&lt;"

    return _RAW_HTML.sub(repl, markdown or "")


def safe_url(url: str) -> str:
    """Only http(s) links become clickable."""
    url = (url or "").strip()
    return url if url.lower().startswith(("http://", "https://")) else ""


def paper_names(titles: Iterable[str]) -> list[str]:
    """How answers and summaries name these papers in italics (``*MiniCPM*``): the
    composer writes ``*<short name>*`` (assistant/rewrite.py), nothing else is markup."""
    from ..rewrite import short_name

    return list(dict.fromkeys(short_name(t) for t in titles if t and t.strip()))


def _names_pattern(names: Iterable[str], escape) -> re.Pattern | None:
    """``*name*`` for the given names (not inside ``**…**``), longest name first."""
    wanted = sorted({escape(n) for n in names if n and n.strip()}, key=len, reverse=True)
    if not wanted:
        return None
    return re.compile(r"(?<!\*)\*(" + "|".join(map(re.escape, wanted)) + r")\*(?!\*)")


def link_citations(text: str, turn: int, titles: dict[int, str] | None = None) -> str:
    """Escape text and turn each [n] into a link to source card src-<turn>-<n>; the
    cited papers' names in ``*…*`` become italics (see :func:`emphasize`)."""
    titles = titles or {}

    def repl(match: re.Match) -> str:
        n = int(match.group(1))
        tip = f' title="{esc(titles[n])}"' if n in titles else ""
        return f'<a class="cite" href="#src-{turn}-{n}"{tip}>[{n}]</a>'

    return emphasize(_MARKERS.sub(repl, esc(text)), paper_names(titles.values()))


def emphasize(html: str, names: Iterable[str] = ()) -> str:
    """*Paper name* (how composed answers name papers) in italics, for the `names` of
    the papers shown only: asterisks that come from an abstract or from the model
    (``**bold**``, ``*x*``) stay text, like every other Markdown sign in evidence."""
    pattern = _names_pattern(names, esc)
    return pattern.sub(r"<em>\1</em>", html) if pattern else html


# Signs Markdown reads as emphasis, code, links/images, table cells, strikethrough, raw
# HTML or entities anywhere in a line; and what opens a heading, quote, list or
# setext underline at a line's start ("1." and "1)" get the backslash after the digits).
_MD_INLINE = re.compile(r"([\\`*_\[\]<>|~&!])")
_MD_LINE_SIGN = re.compile(r"^([ \t]*)([#>+=-])", re.MULTILINE)
_MD_LINE_NUMBER = re.compile(r"^([ \t]*\d+)([.)])", re.MULTILINE)


def _md_escape(text: str) -> str:
    escaped = _MD_INLINE.sub(r"\\\1", text)
    escaped = _MD_LINE_SIGN.sub(r"\1\\\2", escaped)
    return _MD_LINE_NUMBER.sub(r"\1\\\2", escaped)


def markdown_text(text: str, names: Iterable[str] = ()) -> str:
    """Corpus or model text (an abstract's sentence, a title, a message) for a Markdown
    view (summaries, reports), shown as exactly the text it is: ``**bold**``, ``_x_``,
    `` `code` ``, ``[link](javascript:…)``, ``<b>`` and ``&amp;`` are backslash-escaped,
    as is a line start that would open a heading, quote or list. `names` are the paper
    names the composer puts in italics (``*MiniCPM*``): those alone stay emphasis."""
    text = text or ""
    pattern = _names_pattern(names, lambda n: n)
    if pattern is None:
        return _md_escape(text)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(_md_escape(text[last : match.start()]))
        out.append("*" + _MD_INLINE.sub(r"\\\1", match.group(1)) + "*")
        last = match.end()
    out.append(_md_escape(text[last:]))
    return "".join(out)


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


def meta_line(date: str, sources: Sequence[str], code_url: str, paper_id: str) -> str:
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


def notice(message: str, kind: str = "warn") -> str:
    """A one-line message box (errors, validation) inside a panel."""
    return f'<div class="notice {esc(kind)}">{esc(message)}</div>'


def header_html(subtitle: str) -> str:
    return f'<div class="app-header"><h1>Research assistant</h1><span class="sub">{esc(subtitle)}</span></div>'


# --- chat --------------------------------------------------------------------------------------


def render_card(
    card: SourceCard, turn: int, *, open_: bool = False, score_label: str = "support", names: Iterable[str] | None = None
) -> str:
    """One source card; `names`: the answer's paper names its claims may italicize
    (default: this card's own)."""
    claims = ""
    if card.claims:
        names = paper_names([card.title]) if names is None else names
        items = "".join(
            f'<div class="claim">“{emphasize(esc(sentence), names)}” — <b>{score:.2f}</b></div>' for sentence, score in card.claims
        )
        claims = f'<div class="claims"><div class="claim">Supports in the answer:</div>{items}</div>'
    abstract = highlight(card.abstract, card.evidence) if card.abstract else '<span class="muted">(abstract unavailable)</span>'
    relevance = f" · relevance {card.relevance:.2f}" if card.relevance is not None else ""
    label = f'<div class="src-label">{esc(card.label)}</div>' if card.label else ""
    return (
        f'<details class="src" id="src-{turn}-{card.n}"{" open" if open_ else ""}>'
        f'<summary><span class="n">[{card.n}]</span><span class="title">{esc(card.title)}</span>'
        f'<span class="score">{score_label} {card.score:.2f}{relevance}</span></summary>'
        f'<div class="src-body">{meta_line(card.date, card.sources, card.code_url, card.id)}{label}'
        f'<p class="abstract">{abstract}</p>{claims}</div></details>'
    )


def _seconds(entry: ChatEntry) -> str:
    return f" · {entry.seconds:.1f} s" if entry.seconds is not None else ""


def _references(entry: ChatEntry, turn: int) -> str:
    if not entry.cards:
        return ""
    items = []
    for c in entry.cards:
        code = safe_url(c.code_url)
        link = f' · <a href="{esc(code)}" target="_blank" rel="noopener noreferrer">code</a>' if code else ""
        items.append(f'<li><a class="ref" href="#src-{turn}-{c.n}">[{c.n}] {esc(c.title)}</a>{link}</li>')
    return f'<div class="refs"><span class="refs-label">Sources</span><ol>{"".join(items)}</ol></div>'


def render_answer(entry: ChatEntry, turn: int) -> str:
    """The assistant's chat bubble: one line of HTML (so Markdown leaves it alone)."""
    if entry.status == "error":
        return (
            f'<div class="answer error"><p class="headline">Could not answer: {esc(entry.message)}</p>'
            f'<div class="meta">The library is unchanged; fix the problem and ask again.</div></div>'
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
    if entry.status == "stopped":
        meta = "Stopped before the end."
    elif not entry.finished:
        meta = "Writing… each sentence is checked against the abstract it cites."
    elif entry.mode == "composed":
        meta = "Composed from the abstracts (the model's wording could not be verified): each sentence was checked against the abstract it cites."
    elif entry.mode == "extractive":
        meta = "Quoted from the abstracts: the model's own wording could not be verified against them."
    else:
        meta = "Each sentence was checked against the abstract it cites."
    if entry.message:
        meta = f"{entry.message} {meta}"
    meta += _seconds(entry) if entry.finished else ""
    pending = " pending" if not entry.finished else ""
    copy = f' · <a class="copy" href="#copy-{turn}" title="Copy the answer and its references as text">Copy</a>' if entry.finished else ""
    return f'<div class="answer{pending}">{body}{_references(entry, turn)}<div class="meta">{esc(meta)}{copy}</div></div>'


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
    names = paper_names(c.title for c in entry.cards)
    return "".join(render_card(c, turn, open_=latest and i == 0, names=names) for i, c in enumerate(entry.cards))


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


# --- library and citation lookup ---------------------------------------------------------------


def render_paper(paper: Paper | None, related: Sequence = ()) -> str:
    """A paper in the Library tab, with its related papers (clickable)."""
    if paper is None:
        return '<div class="paper-view muted">Select a row of the table to see the paper and its related papers.</div>'
    links = [u for u in (safe_url(u) for u in paper.urls) if u]
    links_html = ""
    if links:
        anchors = " · ".join(f'<a href="{esc(u)}" target="_blank" rel="noopener noreferrer">{esc(u)}</a>' for u in links)
        links_html = f'<div class="paper-links">Links: {anchors}</div>'
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
        f"{meta_line(paper.date, paper.sources, paper.code_url, paper.id)}{links_html}"
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
        badge_html = f'<span class="badge">{esc(badge)}</span>' if badge else ""
        parts.append(
            f'<div class="hit"><div class="hit-head"><span class="hit-title">{i}. {esc(paper.title)}</span>{badge_html}'
            f'<span class="score">{label} {support:.2f}</span></div>{quote}'
            f"{meta_line(paper.date, paper.sources, paper.code_url, paper.id)}</div>"
        )
    return f'<div class="hits">{"".join(parts)}</div>'
