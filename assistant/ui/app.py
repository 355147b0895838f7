"""The page: a header and five tabs (Chat, Summary, Citation lookup, Library, Settings)
over one :class:`~assistant.library.Library`, plus the theme, CSS and JS, the queue and
:func:`serve`.

Each tab module builds its components (``create_ui``, returning a small dataclass) and
wires its handlers (``create_event_handlers``) once every tab exists, since handlers use
components of other tabs (every generating tab reads the Settings tab).

Nothing here sends a request off the machine: no share link, no analytics, local fonts.
"""

from __future__ import annotations

import logging

from pathlib import Path
from typing import Any

from ..library import Library
from . import chat, library as library_tab, lookup, settings as settings_tab, summary
from .library import header_text
from .guard import max_file_size
from .render import header_html
from .session import Runtime

ASSETS = Path(__file__).parent / "assets"



log = logging.getLogger(__name__)

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

    runtime = Runtime(library)
    try:
        papers = library.catalog()
    except Exception:  # noqa: BLE001 - shown on page load, readably
        log.exception("the library could not be read while building the UI")
        papers = []

    # delete_cache: uploads and downloads leave Gradio's cache after a day.
    with gr.Blocks(title="Research assistant", analytics_enabled=False, fill_width=True, delete_cache=(3600, 86400)) as app:
        header = gr.HTML(header_html(header_text(runtime)), js_on_load=None, elem_id="app-header")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat-tab"):
                chat_ui = chat.create_ui()
            with gr.Tab("Summary", id="summary-tab"):
                summary_ui = summary.create_ui([(p.title, p.id) for p in papers])
            with gr.Tab("Citation lookup", id="cite-tab"):
                lookup_ui = lookup.create_ui()
            with gr.Tab("Library", id="library-tab"):
                library_ui = library_tab.create_ui(library_tab.source_choices(papers))
            with gr.Tab("Settings", id="settings-tab"):
                settings_ui = settings_tab.create_ui(runtime)

        chat.create_event_handlers(chat_ui, settings_ui, runtime)
        summary.create_event_handlers(summary_ui, settings_ui, runtime)
        lookup.create_event_handlers(lookup_ui, runtime)
        library_tab.create_event_handlers(library_ui, runtime, app=app, header=header, paper_picker=summary_ui.paper_picker)
        settings_tab.create_event_handlers(settings_ui, runtime)

    # Answers and summaries share the "chat" group (session.generation_slots: one at a
    # time with an in-process model), so a waiting user sees "queue: 2/5" and an ETA;
    # Gradio updates positions whenever a job ends. Beyond 64 waiting requests a new one
    # is refused at once ("Queue is full") rather than left waiting for minutes.
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
        max_file_size=max_file_size(library.settings),  # uploads larger than max_upload_mb are refused
        state_session_capacity=library.settings.ui_sessions,  # bounded memory: see Settings.ui_sessions
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
