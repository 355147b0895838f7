"""The Gradio research UI, tested as it runs: `assistant serve` in a subprocess on a free
loopback port, over a copy of the 33-paper fixture store, with the real default model.

- The HTML renderers, Stop bookkeeping and upload and model checks are unit-tested
  directly (fast, no server).
- Every tab's main action is driven through gradio_client (the app's API endpoints are
  the same functions the buttons call).
- A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) asks a
  question, clicks a citation and checks the abstract opens in the sources panel with
  the supporting sentence highlighted, and that the page makes no request that leaves
  the machine; a second page checks the Settings tab, the Library table's sorting and
  paper view, and mixed uploads. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from assistant.errors import InputError
from assistant.records import Paper
from assistant.settings import Settings
from assistant.ui import (
    ChatEntry,
    Runtime,
    SourceCard,
    catalog_rows,
    chat_messages,
    check_model,
    friendly_error,
    highlight,
    link_citations,
    render_answer,
    render_cite_hits,
    render_paper,
    render_sources,
    split_uploads,
)
from servers import assistant_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CGS_QUESTION = "What is a convergent graph solver?"
OBA_QUESTION = "What is Optimal Brain Apoptosis?"


# --- pure renderers ------------------------------------------------------------------------


def _card(n=1, **kw) -> SourceCard:
    defaults = dict(
        id="p-1",
        title="Convergent Graph Solvers",
        abstract="We propose CGS. It finds fixed points <fast>. Results are good.",
        code_url="https://github.com/x/cgs",
        date="Mar 13",
        sources=["a.txt"],
        score=0.91,
        evidence=["It finds fixed points <fast>."],
        claims=[("CGS finds fixed points.", 0.91)],
    )
    defaults.update(kw)
    return SourceCard(n=n, **defaults)


def test_link_citations_escapes_text_and_links_each_marker():
    html = link_citations("a < b [1][2].", 3, {1: 'T "one"'})
    assert "a &lt; b" in html
    assert '<a class="cite" href="#src-3-1" title="T &quot;one&quot;">[1]</a>' in html
    assert 'href="#src-3-2"' in html


def test_highlight_marks_supporting_sentences_and_escapes():
    html = highlight("First one. Second <b>bold</b> one. Third.", ["Second <b>bold</b> one.", "Missing."])
    assert html == "First one. <mark>Second &lt;b&gt;bold&lt;/b&gt; one.</mark> Third."
    # whitespace differences do not prevent the match
    assert "<mark>" in highlight("A  long\nsentence here.", ["A long sentence here."])


def test_answer_bubble_and_sources_panel():
    entry = ChatEntry(question="what is <CGS>?", answer="CGS finds fixed points [1].", status="done", mode="generated", cards=[_card()], seconds=1.5)
    bubble = render_answer(entry, 0)
    assert "\n" not in bubble  # one HTML block: Markdown leaves it alone
    assert 'href="#src-0-1"' in bubble and "[1] Convergent Graph Solvers" in bubble and "1.5 s" in bubble
    assert 'href="#copy-0"' in bubble
    messages = chat_messages([entry])
    assert messages[0] == {"role": "user", "content": "what is &lt;CGS&gt;?"}
    panel = render_sources([entry])
    assert 'id="src-0-1" open' in panel
    assert "<mark>It finds fixed points &lt;fast&gt;.</mark>" in panel
    assert 'href="https://github.com/x/cgs"' in panel and "support 0.91" in panel
    # an earlier exchange folds below the latest one; ids stay unique per exchange
    later = ChatEntry(question="next", answer="More [1].", status="done", cards=[_card(title="Other")])
    panel = render_sources([entry, later])
    assert panel.index('id="src-1-1"') < panel.index('id="src-0-1"')
    assert '<details class="turn" id="turn-0">' in panel


def test_abstention_error_and_pending_states():
    nearest = [_card(n=1, title="Nearest paper", score=0.21)]
    abstained = ChatEntry(question="bread?", status="abstained", mode="abstained", nearest=nearest)
    bubble = render_answer(abstained, 2)
    assert "No relevant paper" in bubble and "Nearest paper" in bubble and 'href="#src-2-1"' in bubble
    assert "similarity 0.21" in render_sources([abstained])
    error = ChatEntry(question="q", status="error", message="model file not found: /x.gguf")
    assert "Could not answer: model file not found: /x.gguf" in render_answer(error, 0)
    assert "Searching the papers" in render_answer(ChatEntry(question="q"), 0)
    assert "Reading 5 abstracts" in render_answer(ChatEntry(question="q", status="writing", papers_read=5), 0)


def test_paper_view_lookup_hits_and_catalog_filter():
    paper = Paper(title="Optimal Brain Apoptosis", abstract="Pruning with Hessians. Code: https://github.com/NEU-REAL/OBA.", sources=["f.jsonl"])
    other = Paper(title="Convergent Graph Solvers", abstract="Fixed points.", sources=["g.csv"])

    class Hit:
        def __init__(self, paper, similarity=0.5, support=0.8, sentence="Pruning with Hessians.", kind="claim"):
            self.paper, self.similarity, self.support, self.sentence, self.kind = paper, similarity, support, sentence, kind

    view = render_paper(paper, [Hit(other)])
    assert "Optimal Brain Apoptosis" in view and "https://github.com/NEU-REAL/OBA" in view
    assert f'data-paper="{other.id}"' in view and "Related papers" in view
    hits = render_cite_hits([Hit(paper)])
    assert "“Pruning with Hessians.”" in hits and "support 0.80" in hits and "supports the claim" in hits
    assert "No paper in the library" in render_cite_hits([])
    assert [row[0] for row in catalog_rows([paper, other], "hessian pruning")] == ["Optimal Brain Apoptosis"]
    assert [row[0] for row in catalog_rows([paper, other], "", source="g.csv")] == ["Convergent Graph Solvers"]
    assert [row[0] for row in catalog_rows([paper, other], "", has_code=True)] == ["Optimal Brain Apoptosis"]


def test_runtime_applies_settings_per_request_without_reopening_the_store(fixture_library):
    runtime = Runtime(fixture_library)
    settings = runtime.settings_for(3, 0.5, 96, "", "")
    assert (settings.k, settings.temperature, settings.max_tokens) == (3, 0.5, 96)
    assert settings.model is None and settings.llm_url is None
    assert runtime.library is fixture_library  # one Library (one open store) for every request
    other = runtime.settings_for(3, 0.5, 96, "/models/x.gguf", "")
    assert other is not settings and other.model == "/models/x.gguf"
    assert fixture_library.settings.k == 5  # the base settings are untouched


def test_friendly_error_never_a_traceback():
    assert friendly_error(InputError("the question is empty")) == "the question is empty"
    message = friendly_error(RuntimeError("boom"))
    assert "RuntimeError" in message and "Traceback" not in message


def test_stop_or_clear_with_nothing_running_never_stops_a_later_question():
    """Bug: Stop or Clear with nothing running set an "early stop" that cancelled the
    next question asked within 3 s."""
    runtime = Runtime(object())  # the stop bookkeeping needs no library
    assert runtime.request_stop("s") is None
    assert runtime.request_stop("s", clear=True) is None
    assert not runtime.start_run("s").stop.is_set()
    runtime.end_run("s", runtime.start_run("s", "run-1"))
    runtime.request_stop("s", "run-1")  # the page's last question, already answered
    second = runtime.start_run("s", "run-2")
    assert not second.stop.is_set()
    # On a busy server the next question's request can overtake that Stop: it still stops nothing.
    runtime.end_run("s", second)
    overtaken = runtime.start_run("s", "run-3")
    assert runtime.request_stop("s", "run-2") is None and not overtaken.stop.is_set()
    runtime.end_run("s", overtaken)


def test_ended_answers_are_remembered_for_a_bounded_number_of_sessions(monkeypatch):
    """A long-running server must not keep one entry per browser session it ever served."""
    from assistant.ui import session as session_module

    monkeypatch.setattr(session_module, "_SESSIONS_REMEMBERED", 3)
    runtime = Runtime(object())
    for name in ("a", "b", "c", "d"):
        runtime.end_run(name, runtime.start_run(name, f"{name}-1"))
    runtime.end_run("b", runtime.start_run("b", "b-2"))  # b ended one recently: kept
    runtime.end_run("e", runtime.start_run("e", "e-1"))
    assert list(runtime._ended) == ["d", "b", "e"]
    assert runtime.request_stop("b", "b-1") is None and ("b", "b-1") not in runtime._pending


def test_stop_before_the_answer_starts_stops_that_answer_only():
    runtime = Runtime(object())
    assert runtime.request_stop("s", "run-1") is None  # asked, not started yet
    early = runtime.start_run("s", "run-1")
    assert early.stop.is_set() and not early.cleared
    runtime.end_run("s", early)
    assert early.ended.is_set()
    assert not runtime.start_run("s", "run-2").stop.is_set()
    assert not runtime.start_run("other", "run-1").stop.is_set()  # another tab's run
    runtime.request_stop("t", "run-3", clear=True)
    assert runtime.start_run("t", "run-3").cleared
    running = runtime.start_run("u", "run-4")
    ended = runtime.request_stop("u", "run-4")
    assert running.stop.is_set() and ended is running.ended


def test_model_setting_is_checked_as_entered(tmp_path: Path):
    assert check_model("", "") is None  # the packaged default
    assert "not found" in check_model(str(tmp_path / "missing.gguf"), "")
    assert "not a file" in check_model(str(tmp_path), "")
    text = tmp_path / "notes.gguf"
    text.write_text("hello", encoding="utf-8")
    assert "not a GGUF model file" in check_model(str(text), "")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert check_model(str(gguf), "") is None
    assert check_model(str(tmp_path / "missing.gguf"), "http://127.0.0.1:8080/v1") is None  # the server wins
    assert "http://" in check_model("", "localhost:8080")


def test_mixed_uploads_keep_the_supported_files():
    accepted, rejected = split_uploads(["/t/a.JSONL", "/t/b.pdf", "/t/c.bib", "/t/d"])
    assert accepted == ["/t/a.JSONL", "/t/c.bib"] and rejected == ["/t/b.pdf", "/t/d"]


def test_sliders_take_their_range_from_settings(fixture_library):
    from assistant.ui import build_app

    app = build_app(fixture_library)
    sliders = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None) in ("k", "temperature", "max-tokens")}
    for elem_id, field in (("k", "k"), ("temperature", "temperature"), ("max-tokens", "max_tokens")):
        assert (sliders[elem_id].minimum, sliders[elem_id].maximum) == Settings.bounds(field)


def test_the_server_forgets_the_least_recent_sessions_beyond_ui_sessions(fixture_store_dir: Path):
    """Gradio keeps every visitor's session (~0.2 MB) until its capacity (10,000 by default)
    is reached: a long-running server's memory grows with every new visitor. `ui_sessions`
    bounds it; the newest sessions keep their state and a new one is still served."""
    from gradio_client import Client

    from assistant.library import Library
    from assistant.ui.app import serve
    from conftest import free_port

    library = Library(Settings(store_dir=fixture_store_dir, ui_sessions=2))
    app, url = serve(library, port=free_port(), block=False, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=False)
        for _ in range(5):  # five visitors, one after another
            client.reset_session()
            client.predict(None, api_name="/stop")
        assert len(app.state_holder.session_data) == 2
        assert client.session_hash in app.state_holder.session_data  # the latest kept its state
    finally:
        app.close()


# --- the running app ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(fixture_store_dir: Path, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path):
    """`assistant serve` over a private copy of the fixture store (uploads write to it)."""
    store = tmp_path_factory.mktemp("ui") / "store"
    shutil.copytree(fixture_store_dir, store)
    log_path = artifacts_dir / "ui-server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_STORE_DIR=str(store), ASSISTANT_N_THREADS=os.environ.get("ASSISTANT_N_THREADS", "2"), NO_COLOR="1")
    with assistant_server([], env, log_path) as running:
        yield {"url": running.url, "store": store, "log": log_path}


def test_serve_binds_loopback_and_prints_the_url(server):
    text = server["log"].read_text()
    assert f"running at {server['url']}" in text
    assert urlparse(server["url"]).hostname == "127.0.0.1"


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def test_chat_two_sessions_at_once_both_get_cited_answers_and_follow_ups_work(server, client):
    from gradio_client import Client

    other = Client(server["url"], verbose=False)
    first = client.submit(CGS_QUESTION, api_name="/ask")
    second = other.submit(OBA_QUESTION, api_name="/ask")
    results = [first.result(timeout=240), second.result(timeout=240)]
    for result, title in zip(results, ["Convergent Graph Solvers", "Optimal Brain Apoptosis"]):
        _, messages, panel, info = result
        answer = _text(messages[-1])
        assert messages[-1]["role"] == "assistant"
        assert 'class="cite" href="#src-0-1"' in answer, answer
        assert title in answer and title in panel
        assert 'id="src-0-1" open' in panel and "<mark>" in panel
        assert "Last answer by" in info
    # the follow-up in the first session is the second exchange (ids src-1-n) and the
    # earlier answer stays in the conversation
    _, messages, panel, _ = client.predict("How is it trained?", api_name="/ask")
    assert len(messages) == 4 and _text(messages[0]) == CGS_QUESTION
    assert 'id="turn-0"' in panel and ("src-1-1" in panel or "No relevant paper" in _text(messages[-1]))


def test_chat_abstains_with_nearest_titles_and_shows_errors_inline(server):
    from gradio_client import Client

    session = Client(server["url"], verbose=False)
    _, messages, panel, _ = session.predict("How do I bake sourdough bread at home?", api_name="/ask")
    answer = _text(messages[-1])
    assert "No relevant paper" in answer and "Nearest titles" in answer
    assert "similarity" in panel
    missing = str(server["store"] / "no-such-model.gguf")
    _, messages, _, _ = session.predict(CGS_QUESTION, model=missing, api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer: model file not found" in answer and "Traceback" not in answer


def _download(server, update) -> tuple[str, str]:
    """(file name, text) of a DownloadButton's file, fetched from the app as a browser would."""
    path = update["value"] if isinstance(update, dict) else update
    assert update.get("interactive", True) if isinstance(update, dict) else True
    with urllib.request.urlopen(f"{server['url']}gradio_api/file={path}", timeout=10) as response:
        return Path(path).name, response.read().decode("utf-8")


def test_summary_topic_and_paper_with_downloads(server, client):
    markdown, md_button, bib_button = client.predict("pruning neural networks", n=5, api_name="/summarize_topic")
    assert "Could not summarize" not in markdown, markdown
    assert "Optimal Brain Apoptosis" in markdown and "[1]" in markdown
    name, text = _download(server, md_button)
    assert name == "summary-pruning-neural-networks.md" and text.strip() == markdown.strip()
    name, text = _download(server, bib_button)
    assert name.endswith(".bib") and text.lstrip().startswith("@") and "Optimal Brain Apoptosis" in text
    paper_id = Paper(title="Convergent Graph Solvers", abstract="x").id
    markdown, md_button, _ = client.predict(paper_id, api_name="/summarize_paper")
    assert "Could not summarize" not in markdown, markdown
    assert "Convergent Graph Solvers" in markdown
    assert _download(server, md_button)[0] == "summary-convergent-graph-solvers.md"


def test_citation_lookup_quotes_the_support_and_formats_references(client):
    html, bibtex, markdown = client.predict(
        "a deep learning method that learns iterative mappings with guaranteed convergence", k=3, api_name="/cite"
    )
    assert "Could not look this up" not in html, html
    assert "Convergent Graph Solvers" in html and 'class="quote"' in html
    assert "@" in bibtex and "Convergent Graph Solvers" in bibtex
    assert "Convergent Graph Solvers" in markdown


def test_library_search_select_and_upload(client, tmp_path: Path):
    from gradio_client import handle_file

    table, note = client.predict("apoptosis", api_name="/library_search")
    assert [row[0] for row in table["data"]] == ["Optimal Brain Apoptosis"] and "1 of 33" in note
    paper_id = Paper(title="Optimal Brain Apoptosis", abstract="x").id
    view = client.predict(paper_id, api_name="/paper")
    assert "Optimal Brain Apoptosis" in view and "Related papers" in view and "data-paper=" in view

    good = tmp_path / "new.jsonl"
    good.write_text(
        '{"title": "Tidal Lemmas for Sparse Octopus Networks", "abstract": "We prove tidal lemmas for sparse octopus networks and '
        'show that octopus routing converges in logarithmic time on tidal graphs."}\n',
        encoding="utf-8",
    )
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    outputs = client.predict([handle_file(good), handle_file(bad)], "octopus", api_name="/ingest")
    report, table = outputs[0], outputs[1]
    assert "1 added" in report and "34 papers" in report, report
    assert "broken.json" in report and "/tmp/gradio" not in report  # errors name the uploaded file
    assert [row[0] for row in table["data"]] == ["Tidal Lemmas for Sparse Octopus Networks"]


def test_mixed_upload_ingests_the_supported_files_and_names_the_others(client, tmp_path: Path):
    """Bug: one unsupported file made Gradio reject the whole upload (and cover the
    accepted files with an error in the browser)."""
    from gradio_client import handle_file

    good = tmp_path / "more.jsonl"
    good.write_text(
        '{"title": "Lunar Sheaves for Dense Walrus Graphs", "abstract": "We define lunar sheaves on dense walrus graphs and '
        'prove that walrus colourings extend along every lunar sheaf."}\n',
        encoding="utf-8",
    )
    pdf = tmp_path / "notes.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a supported format")
    outputs = client.predict([handle_file(good), handle_file(pdf)], "walrus", api_name="/ingest")
    report, table = outputs[0], outputs[1]
    assert "1 added" in report and "Not a supported file type" in report and "notes.pdf" in report, report
    assert "/tmp/gradio" not in report
    assert [row[0] for row in table["data"]] == ["Lunar Sheaves for Dense Walrus Graphs"]


def test_stop_or_clear_with_nothing_running_do_not_stop_the_next_question(server):
    """Bug: Stop (or Clear) with nothing running cancelled the next question asked within 3 s."""
    from gradio_client import Client

    session = Client(server["url"], verbose=False)
    session.predict(api_name="/stop")
    _, messages, _, _ = session.predict(OBA_QUESTION, api_name="/ask")
    answer = _text(messages[-1])
    assert "Stopped" not in answer and 'class="cite"' in answer, answer
    session.predict(api_name="/clear")
    _, messages, _, _ = session.predict(CGS_QUESTION, api_name="/ask")
    answer = _text(messages[-1])
    assert len(messages) == 2 and "Stopped" not in answer and 'class="cite"' in answer, answer


# --- a real browser --------------------------------------------------------------------------


@contextmanager
def _browser_page(server, **context_options):
    """A page of headless Chromium at 1366x768 on the app; fails the test if the page
    made a request that leaves the machine."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    offsite: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768}, **context_options)
            page = context.new_page()
            page.set_default_timeout(30_000)

            def record(request) -> None:
                host = urlparse(request.url).hostname
                if request.url.startswith(("http://", "https://", "ws://", "wss://")) and host not in ("127.0.0.1", "localhost"):
                    offsite.append(request.url)

            page.on("request", record)
            page.goto(server["url"])
            yield page
        finally:
            browser.close()
    assert not offsite, f"the page made requests off the machine: {offsite}"


_STOP_LOOK = """() => {
  const stop = document.getElementById('stop');
  const style = getComputedStyle(stop);
  return {busy: document.body.dataset.chat, disabled: stop.disabled, opacity: parseFloat(style.opacity), background: style.backgroundColor};
}"""


def test_browser_ask_click_citation_and_see_the_abstract(server, artifacts_dir: Path):
    from playwright.sync_api import expect

    with _browser_page(server, permissions=["clipboard-read", "clipboard-write"]) as page:
        box = page.locator("#question textarea")
        # Settings live in their own tab: at 1366x768 the chat input is on screen.
        expect(box).to_be_in_viewport()
        page.screenshot(path=str(artifacts_dir / "ui-chat-1366x768.png"))
        # While the answer runs, Stop looks clickable: enabled, opaque, red (checked at
        # rest: without Gradio's fade, which could otherwise outlast a quick answer).
        page.add_style_tag(content="#stop, #ask { transition: none !important; }")
        box.fill(OBA_QUESTION)
        box.press("Enter")
        page.wait_for_function("document.body.dataset.chat === 'busy'")
        look = page.evaluate(_STOP_LOOK)
        red, green, blue = (int(v) for v in re.findall(r"\d+", look["background"])[:3])
        assert not look["disabled"] and look["opacity"] > 0.95 and red > 180 and green < 120 and blue < 120, look
        page.screenshot(path=str(artifacts_dir / "ui-chat-busy.png"))
        citation = page.locator("#chat a.cite").first
        expect(citation).to_be_visible(timeout=240_000)
        expect(page.locator("#chat .answer:not(.pending)")).to_have_count(1, timeout=240_000)
        expect(box).to_be_in_viewport()
        page.screenshot(path=str(artifacts_dir / "ui-chat-answer.png"))

        # open a card other than the default one, then click the citation: it opens
        page.locator("#sources details.src summary").first.click()
        expect(page.locator("#sources details.src[open]")).to_have_count(0)
        citation.click()
        card = page.locator("#sources details.src.active[open]")
        expect(card).to_have_count(1)
        expect(card.locator(".title")).to_contain_text("Optimal Brain Apoptosis")
        expect(card.locator(".abstract mark").first).to_be_visible()
        assert len(card.locator(".abstract").inner_text()) > 300  # the whole abstract
        page.screenshot(path=str(artifacts_dir / "ui-chat-citation-clicked.png"))

        # "Copy" puts the answer and its references on the clipboard as plain text
        page.locator("#chat a.copy").first.click()
        copied = page.evaluate("() => navigator.clipboard.readText()")
        assert "[1]" in copied and "\nReferences\n[1] Optimal Brain Apoptosis" in copied and "<" not in copied, copied

        # Stop right after asking: whether it lands before or during the answer, the
        # answer ends (nothing left pending) and the next question is answered, so the
        # model was not left locked by the stopped generation.
        idle = "document.body.dataset.chat === 'idle'"
        box.fill(CGS_QUESTION)
        box.press("Enter")
        page.locator("#stop").click()
        page.wait_for_function(idle, timeout=60_000)
        expect(page.locator("#chat .answer.pending")).to_have_count(0)
        expect(page.locator("#chat .answer")).to_have_count(2)
        box.fill(OBA_QUESTION)
        box.press("Enter")
        expect(page.locator("#chat .answer")).to_have_count(3)
        page.wait_for_function(idle, timeout=240_000)
        expect(page.locator("#chat .answer.pending")).to_have_count(0)
        expect(page.locator("#chat .answer").last.locator("a.cite").first).to_be_visible()
        page.screenshot(path=str(artifacts_dir / "ui-chat-after-stop.png"))

        # Stop with nothing running, then ask at once: the answer is not stopped.
        page.locator("#stop").click()
        box.fill(CGS_QUESTION)
        box.press("Enter")
        expect(page.locator("#chat .answer")).to_have_count(4)
        expect(page.locator("#chat .answer").last.locator("a.cite").first).to_be_visible(timeout=240_000)
        page.wait_for_function(idle, timeout=240_000)
        assert "Stopped" not in page.locator("#chat .answer").last.inner_text()

        page.get_by_role("tab", name="Library").click()
        page.locator("#library-table [data-testid='cell-0-0']").click()
        expect(page.locator("#paper-view h3")).to_be_visible()
        expect(page.locator("#paper-view .related li").first).to_be_visible()
        page.screenshot(path=str(artifacts_dir / "ui-library.png"))


_COLUMN = """(column) => Array.from(document.querySelectorAll(`#library-table [role="gridcell"][data-testid$="-${column}"]`))
  .map((cell) => cell.innerText.trim())"""
_PAPER_VIEW = """() => {
  const view = document.querySelector('#paper-view .paper-view');
  return {id: view.id, top: view.scrollTop, scrollable: view.scrollHeight > view.clientHeight};
}"""


def _date_key(date: str) -> tuple[int, int]:
    """'Mar 13' -> sortable; the fixture's dates are all in one month, so text order is
    day order, and undated papers ('') come first."""
    return (0, 0) if not date else (1, int(date.split()[-1]))


def test_browser_settings_tab_library_sort_related_papers_and_mixed_uploads(server, artifacts_dir: Path, tmp_path: Path):
    from playwright.sync_api import expect

    with _browser_page(server) as page:
        # A bad model path is reported as soon as it is entered: in the panel and as a toast.
        page.get_by_role("tab", name="Settings").click()
        model = page.locator("#model textarea, #model input").first
        model.fill(str(tmp_path / "no-such-model.gguf"))
        model.press("Tab")
        expect(page.locator(".toast-body").filter(has_text="model file not found")).to_be_visible()
        expect(page.locator("#settings-status")).to_contain_text("model file not found")
        page.screenshot(path=str(artifacts_dir / "ui-settings-bad-model.png"))
        model.fill("")
        model.press("Tab")
        expect(page.locator("#settings-status")).not_to_contain_text("not found")

        # Clicking a header sorts by that column; a second click reverses it.
        page.get_by_role("tab", name="Library").click()
        table = page.locator("#library-table")
        expect(table.locator("[data-testid='cell-0-0']")).to_be_visible()
        unsorted = page.evaluate(_COLUMN, 1)
        table.locator("[data-testid='header-1']").click()
        expect(table.locator("[data-testid='header-1'] .sort-indicator")).to_have_attribute("aria-label", re.compile("ascending"))
        dates = page.evaluate(_COLUMN, 1)
        assert dates == sorted(dates, key=_date_key) and dates != unsorted, dates
        table.locator("[data-testid='header-1']").click()
        expect(table.locator("[data-testid='header-1'] .sort-indicator")).to_have_attribute("aria-label", re.compile("descending"))
        dates = page.evaluate(_COLUMN, 1)
        assert dates == sorted(dates, key=_date_key, reverse=True) and dates[0], dates
        table.locator("[data-testid='header-0']").click()  # another column: sorted by it alone
        expect(table.locator("[data-testid='header-0'] .sort-indicator")).to_have_attribute("aria-label", re.compile("ascending"))
        expect(table.locator("th.sorted")).to_have_count(1)
        table.locator("[data-testid='header-0']").click()
        expect(table.locator("[data-testid='header-0'] .sort-indicator")).to_have_attribute("aria-label", re.compile("descending"))
        titles = page.evaluate(_COLUMN, 0)
        assert titles == sorted(titles, key=str.casefold, reverse=True), titles
        page.screenshot(path=str(artifacts_dir / "ui-library-sorted.png"))

        # A sorted table's rows still open their own paper.
        table.locator('[role="gridcell"]').first.click()
        expect(page.locator("#paper-view h3")).to_have_text(titles[0])
        # A related paper opens at its top, however far the previous one was scrolled.
        related = page.locator("#paper-view .related li a")
        expect(related.first).to_be_visible()
        page.evaluate("() => { const v = document.querySelector('#paper-view .paper-view'); v.scrollTop = v.scrollHeight; }")
        before = page.evaluate(_PAPER_VIEW)
        title = related.last.inner_text()
        related.last.click()
        expect(page.locator("#paper-view h3")).to_have_text(title)
        after = page.evaluate(_PAPER_VIEW)
        assert after["id"] != before["id"] and after["top"] == 0, (before, after)
        expect(page.locator("#paper-view h3")).to_be_in_viewport()
        page.screenshot(path=str(artifacts_dir / "ui-library-related.png"))

        # Mixed uploads: the supported file stays listed and is ingested; the other is named.
        good = tmp_path / "browser.jsonl"
        good.write_text(
            '{"title": "Velvet Lattices for Quiet Heron Routing", "abstract": "We route quiet herons over velvet lattices '
            'and show that heron routing on velvet lattices needs linear memory."}\n',
            encoding="utf-8",
        )
        pdf = tmp_path / "slides.pdf"
        pdf.write_bytes(b"%PDF-1.4 not a supported format")
        page.locator("#add-papers").click()
        page.locator("#uploads input[type=file]").set_input_files([str(good), str(pdf)])
        report = page.locator("#ingest-report")
        expect(report).to_contain_text("slides.pdf")
        expect(page.locator("#uploads")).to_contain_text("browser")
        expect(page.locator("#uploads")).not_to_contain_text("Error")
        page.screenshot(path=str(artifacts_dir / "ui-library-mixed-upload.png"))
        page.locator("#ingest").click()
        expect(report).to_contain_text("1 added", timeout=120_000)
        expect(report).to_contain_text("slides.pdf")
