"""Markdown for summaries: the cited text, and the reference list in a chosen format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..records import Paper
from ..references import format_references, markdown_escape
from ..retrieval import Hit
from ..text import with_markers

if TYPE_CHECKING:
    from .paper import PaperSummary
    from .topic import TopicSummary


def abstention_markdown(topic: str, hits: list[Hit]) -> str:
    """No paper is relevant: say so and name the nearest titles."""
    nearest = "; ".join(f"{h.paper.title} ({h.similarity:.2f})" for h in hits[:3])
    return (
        f"# Summary: {markdown_escape(topic)}\n\nThe corpus has no paper on this topic."
        + (f" Nearest titles: {markdown_escape(nearest)}." if nearest else "")
        + "\n"
    )


def references_block(papers: list[Paper], fmt: str) -> str:
    if not papers:
        return ""
    body = format_references(papers, fmt)
    if fmt == "bibtex":
        return f"## References\n\n```bibtex\n{body}\n```\n"
    if fmt == "text":
        return "## References\n\n" + "\n".join(line + "  " for line in body.splitlines()) + "\n"
    return f"## References\n\n{body}\n"


def topic_markdown(summary: TopicSummary, fmt: str) -> str:
    if summary.abstained:
        return summary.markdown
    lines = [f"# Summary: {markdown_escape(summary.topic)}", ""]
    count = len(summary.hits)
    themes = len(summary.themes)
    lines.append(
        f"*{count} paper{'s' if count != 1 else ''} read on this topic, "
        f"{len(summary.references)} cited, in {themes} theme{'s' if themes != 1 else ''}.*"
    )
    lines.append("")
    if summary.overview:
        lines += ["## Overview", "", " ".join(with_markers(t, c) for t, c in summary.overview), ""]
    if summary.themes:
        lines += ["## Themes", ""]
        for theme in summary.themes:
            lines += [f"### {markdown_escape(theme.heading)}", ""]
            lines += [f"- {with_markers(t, c)}" for t, c in theme.sentences]
            lines.append("")
    block = references_block(summary.papers, fmt)
    if block:
        lines.append(block)
    return "\n".join(lines).rstrip() + "\n"


def paper_markdown(summary: PaperSummary, fmt: str) -> str:
    paper = summary.paper
    lines = [f"# {markdown_escape(paper.title)}", ""]
    lines += ["**TL;DR**", ""]
    for role in ("problem", "method", "result"):
        if role in summary.statements:
            lines.append(f"- **{role.capitalize()}:** {with_markers(summary.statements[role], [1])}")
    lines.append("")
    if summary.tldr_generated and summary.tldr:
        lines += [f"**In one line (the model's, verified):** {with_markers(summary.tldr, [1])}", ""]
    lines.append(f"**Code:** <{paper.code_url}>" if paper.code_url else "**Code:** no code link in the abstract")
    listing = ", ".join(paper.sources)
    meta = f"**Id:** `{paper.id}`"
    if paper.date:
        meta += f" · **Listed:** {markdown_escape(paper.date)}"
    if listing:
        meta += f" ({markdown_escape(listing)})"
    lines += ["", meta, ""]
    if summary.related:
        lines += ["## Related papers", ""]
        for hit in summary.related:
            code = f" — code: <{hit.paper.code_url}>" if hit.paper.code_url else ""
            lines.append(f"{hit.rank}. **{markdown_escape(hit.paper.title)}** (similarity {hit.similarity:.2f}) — id: `{hit.paper.id}`{code}")
        lines.append("")
    block = references_block(summary.papers, fmt)
    if block:
        lines.append(block)
    return "\n".join(lines).rstrip() + "\n"
