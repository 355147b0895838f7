"""The Gradio research UI: chat with clickable citations, summaries, citation lookup, the
library and the settings, over one :class:`~assistant.library.Library`.

- :mod:`.app` assembles the page (header, five tabs), theme, CSS and JS, and serves it;
- one module per tab, each with ``create_ui`` (its components, as a small dataclass)
  and ``create_event_handlers`` (its handlers): :mod:`.chat`, :mod:`.summary`,
  :mod:`.lookup`, :mod:`.library`, :mod:`.settings`;
- :mod:`.render` turns plain data into HTML (pure functions, tested without a server);
- :mod:`.session` holds what handlers share: per-request Settings, Stop, readable
  errors, the progress adapter.

Gradio is imported only when the app is built, so importing the renderers is cheap.
"""

from .app import ASSETS, build_app, launch_options, serve
from .chat import cards_from_result, nearest_cards
from .library import LIBRARY_HEADERS, SUPPORTED_UPLOADS, catalog_rows, paper_row, rejected_message, split_uploads
from .render import (
    EMPTY_SOURCES,
    ChatEntry,
    SourceCard,
    chat_messages,
    esc,
    highlight,
    link_citations,
    markdown_text,
    paper_names,
    render_answer,
    render_card,
    render_cite_hits,
    render_paper,
    render_sources,
    safe_url,
)
from .session import Run, Runtime, friendly_error, gradio_progress, session_id
from .settings import check_model, describe_model, short_path
from .summary import slugify

__all__ = [
    "ASSETS",
    "EMPTY_SOURCES",
    "LIBRARY_HEADERS",
    "SUPPORTED_UPLOADS",
    "ChatEntry",
    "Run",
    "Runtime",
    "SourceCard",
    "build_app",
    "cards_from_result",
    "catalog_rows",
    "chat_messages",
    "check_model",
    "describe_model",
    "esc",
    "friendly_error",
    "gradio_progress",
    "highlight",
    "launch_options",
    "link_citations",
    "markdown_text",
    "paper_names",
    "nearest_cards",
    "paper_row",
    "rejected_message",
    "render_answer",
    "render_card",
    "render_cite_hits",
    "render_paper",
    "render_sources",
    "safe_url",
    "serve",
    "session_id",
    "short_path",
    "slugify",
    "split_uploads",
]
