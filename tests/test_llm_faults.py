"""A llama.cpp server that is down, frozen or silent, and a queue of waiting chats.

Real parts throughout: a real `python -m llama_cpp.server` (frozen with SIGSTOP, then
thawed), real `assistant ask` and `assistant serve` subprocesses on loopback ports, real
HTTP through gradio_client. Where a server must misbehave in a way a real one only does
by chance (accept a request and then never write, write a few tokens then only
keep-alive pings, or write slowly until the test lets it finish), a tiny HTTP server in
this file plays it (:class:`_FakeLLMServer`): the client side, which is what is under
test, sees real sockets and real timeouts.

What must hold: after at most ``llm_timeout_s`` without a token, never a hang or a
traceback, the question is still answered, composed from the abstracts with verified
citations (grounding never depended on the model), with one readable line naming the
server URL and the fix (CLI stderr, the chat bubble, the result's ``notice``); a thawed
server answers again; and a chat waiting for the model sees its place in Gradio's queue.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from assistant.answer import answer_question
from assistant.library import Library
from assistant.llm import default_model_path
from assistant.settings import Settings
from servers import assistant_server, llama_server

QUESTION = "What does PolyLoss propose for classification losses?"
TIMEOUT_S = 3  # llm_timeout_s for everything here: short, so a frozen server is found fast
LIVENESS_S = 240  # generous bound on a call that must end after TIMEOUT_S (a hang guard, not a speed test)


# --- a llama.cpp server that misbehaves on purpose --------------------------------------------


class _FakeLLMHandler(BaseHTTPRequestHandler):
    """OpenAI-compatible enough for OpenAIHTTPBackend: /v1/models answers; the first path
    segment picks how /v1/completions behaves:

    - ``/silent``: accepts the request and never writes a byte (until the test ends);
    - ``/stall``: writes two tokens, then only SSE keep-alive comments, forever;
    - ``/trickle``: writes a token every 0.2 s until the test sets ``release``, then ends.
    """

    server: "_FakeLLMServer"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _mode(self) -> tuple[str, str]:
        mode, _, rest = self.path.lstrip("/").partition("/")
        return mode, "/" + rest

    def _json(self, status: int, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        mode, rest = self._mode()
        if rest == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": f"fake-{mode}", "object": "model"}]})
        else:
            self._json(404, {"error": "not found"})

    def _event(self, data: str) -> None:
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def do_POST(self) -> None:
        mode, rest = self._mode()
        self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if rest != "/v1/completions":
            self._json(404, {"error": "not found"})  # no tokenizer route: the client estimates
            return
        fake = self.server
        fake.arrived.set()
        if mode == "silent":
            fake.closing.wait()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if mode == "stall":
                for word in (" Poly", "Loss"):
                    self._event(json.dumps({"choices": [{"text": word, "index": 0}]}))
                while not fake.closing.wait(0.3):
                    self.wfile.write(b": ping\n\n")
                    self.wfile.flush()
            elif mode == "trickle":
                while not fake.release.wait(0.2) and not fake.closing.is_set():
                    self._event(json.dumps({"choices": [{"text": " a", "index": 0}]}))
                self._event("[DONE]")
        except OSError:  # the client gave up (its timeout): what the test expects
            pass


class _FakeLLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeLLMHandler)
        self.arrived = threading.Event()  # a completion request came in
        self.release = threading.Event()  # /trickle may finish
        self.closing = threading.Event()  # the test is over: every held request ends

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/v1"


@pytest.fixture(scope="module")
def fake_llm():
    server = _FakeLLMServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.closing.set()
    server.release.set()
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _env(store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    env.update(ASSISTANT_STORE_DIR=str(store), ASSISTANT_N_THREADS=os.environ.get("ASSISTANT_N_THREADS", "2"), NO_COLOR="1")
    env.update(extra)
    return env


def _cli_ask(store: Path, llm_url: str) -> subprocess.CompletedProcess:
    env = _env(store, ASSISTANT_LLM_TIMEOUT_S=str(TIMEOUT_S))
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", "ask", "--llm-url", llm_url, QUESTION],
        env=env, capture_output=True, text=True, timeout=LIVENESS_S,
    )


def _composed_with_a_notice(outcome: subprocess.CompletedProcess, url: str) -> str:
    """The CLI still answered, composed from the abstracts with citations (grounding never
    depended on the model), and said on stderr, in one line naming `url`, why."""
    assert outcome.returncode == 0, (outcome.stdout, outcome.stderr)
    assert "[1]" in outcome.stdout and "References" in outcome.stdout, outcome.stdout
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.stderr
    assert url in lines[0] and lines[0].endswith("composed from the abstracts without the model."), lines[0]
    assert "Traceback" not in outcome.stdout + outcome.stderr
    return lines[0]


def _in_thread(call) -> tuple[object, BaseException | None]:
    """Run `call` in a thread; fail (instead of hanging the suite) if it never returns."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(LIVENESS_S)
    assert not thread.is_alive(), f"still waiting after {LIVENESS_S} s: the timeout did not apply"
    return box.get("value"), box.get("error")  # type: ignore[return-value]


# --- CLI and library --------------------------------------------------------------------------


def test_cli_ask_names_a_down_server_and_how_to_start_it(fixture_store_dir: Path):
    url = closed_port_url()
    line = _composed_with_a_notice(_cli_ask(fixture_store_dir, url), url)
    assert "cannot reach the llama.cpp server" in line and "connection refused" in line
    assert "llama_cpp.server" in line and "--llm-url" in line  # the fix


def test_a_server_that_accepts_but_never_answers_times_out_with_a_message(fixture_store_dir: Path, fake_llm):
    """The request is accepted, then nothing: after llm_timeout_s a message, not a hang."""
    url = fake_llm.url("silent")
    line = _composed_with_a_notice(_cli_ask(fixture_store_dir, url), url)
    assert f"sent nothing for {TIMEOUT_S} s" in line and "ASSISTANT_LLM_TIMEOUT_S" in line, line


def test_a_server_that_stops_writing_tokens_mid_answer_times_out(fixture_library: Library, fake_llm):
    """Two tokens, then only keep-alive pings: httpx's read timeout alone would wait
    forever (every ping restarts it); the backend counts time since the last token."""
    url = fake_llm.url("stall")
    settings = fixture_library.settings.with_overrides(llm_url=url, llm_timeout_s=TIMEOUT_S)
    result, error = _in_thread(lambda: answer_question(fixture_library, QUESTION, settings=settings))
    assert error is None, error
    assert url in result.notice and f"sent nothing for {TIMEOUT_S} s" in result.notice
    assert result.mode == "composed" and result.references  # the answer, without the model


def test_a_frozen_llama_cpp_server_is_a_message_and_answers_again_once_thawed(fixture_store_dir: Path, tmp_path: Path):
    """A real `python -m llama_cpp.server`: it answers; frozen with SIGSTOP (the socket
    still accepts, nothing answers) the library and the CLI each end with one message
    after the timeout; after SIGCONT the same library answers again."""
    model = default_model_path(Settings().model_cache_dir)
    with llama_server(model, tmp_path / "llama-server.log") as server:
        url = server.url
        # Answering takes the real server longer than TIMEOUT_S on a busy machine (prompt
        # processing): it answers with the default timeout; a second client of the same
        # server, connected while it runs, waits only TIMEOUT_S once it is frozen.
        library = Library(Settings(store_dir=fixture_store_dir, llm_url=url))
        first = answer_question(library, QUESTION)
        assert first.raw and first.references, "the running server answers"
        impatient = Library(Settings(store_dir=fixture_store_dir, llm_url=url, llm_timeout_s=TIMEOUT_S))
        assert impatient.llm.name.endswith(url)  # connected before the freeze

        server.process.send_signal(signal.SIGSTOP)
        try:
            frozen, error = _in_thread(lambda: answer_question(impatient, QUESTION))
            assert error is None, error
            assert url in frozen.notice and f"sent nothing for {TIMEOUT_S} s" in frozen.notice, frozen.notice
            assert frozen.mode == "composed" and frozen.references
            line = _composed_with_a_notice(_cli_ask(fixture_store_dir, url), url)
            assert "frozen or overloaded" in line
        finally:
            server.process.send_signal(signal.SIGCONT)

        again, error = _in_thread(lambda: answer_question(library, QUESTION))
        assert error is None, error
        assert again.raw and again.references, "the thawed server answers again"


# --- the web UI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_server(fixture_store_dir: Path, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path, fake_llm):
    """`assistant serve` over a copy of the fixture store with the default in-process
    model, allowing the fake server's URLs and a down one; llm_timeout_s = TIMEOUT_S."""
    store = tmp_path_factory.mktemp("llm-faults") / "store"
    shutil.copytree(fixture_store_dir, store)
    down = closed_port_url()
    args = []
    for allowed in (fake_llm.url("silent"), fake_llm.url("trickle"), down):
        args += ["--allow-llm-url", allowed]
    log_path = artifacts_dir / "llm-faults-server.log"
    with assistant_server(args, _env(store, ASSISTANT_LLM_TIMEOUT_S=str(TIMEOUT_S)), log_path) as server:
        yield {"url": server.url, "down": down, "log": log_path}


def _answer_bubble(messages: list) -> str:
    content = messages[-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def test_ui_chat_shows_a_down_or_silent_server_as_a_readable_message(ui_server, fake_llm):
    from gradio_client import Client

    client = Client(ui_server["url"], verbose=False)
    for url, expected in ((ui_server["down"], "cannot reach the llama.cpp server"), (fake_llm.url("silent"), f"sent nothing for {TIMEOUT_S} s")):
        _, messages, _, _ = client.predict(QUESTION, llm_url=url, api_name="/ask")
        bubble = _answer_bubble(messages)
        assert "Could not answer" not in bubble and "Composed from the abstracts" in bubble, bubble  # still answered
        assert expected in bubble and url in bubble and "without the model" in bubble, bubble  # and says why
        assert "Traceback" not in bubble and "httpx" not in bubble
    _, messages, _, _ = client.predict(QUESTION, api_name="/ask")  # the start-up model still answers
    assert "Could not answer" not in _answer_bubble(messages)


def test_waiting_chats_see_their_place_in_the_queue(ui_server, fake_llm):
    """While one answer holds the model (a /trickle server writing until released),
    two more questions wait in Gradio's queue and each learns its place: rank 0 of 1,
    then rank 1 of 2 (the page shows "queue: 2/2"). Released, all three are answered."""
    from gradio_client import Client
    from gradio_client.utils import Status

    config = httpx.get(f"{ui_server['url']}config", timeout=30).json()
    ask = next(d for d in config["dependencies"] if d.get("api_name") == "ask")
    assert ask["show_progress"] != "hidden", "the chat would hide its queue position"

    fake_llm.arrived.clear()
    fake_llm.release.clear()
    holder = Client(ui_server["url"], verbose=False).submit(QUESTION, llm_url=fake_llm.url("trickle"), api_name="/ask")
    try:
        assert fake_llm.arrived.wait(LIVENESS_S), "the first answer never reached the model"
        second = Client(ui_server["url"], verbose=False).submit(QUESTION, api_name="/ask")
        _wait_for_rank(second, Status, rank=0, size=1)
        third = Client(ui_server["url"], verbose=False).submit(QUESTION, api_name="/ask")
        status = _wait_for_rank(third, Status, rank=1, size=2)
        assert status.eta is None or status.eta >= 0
        assert second.status().code == Status.IN_QUEUE, "the second is still waiting while the first holds the model"
    finally:
        fake_llm.release.set()
    for job in (holder, second, third):
        _, messages, _, _ = job.result(timeout=LIVENESS_S)
        bubble = _answer_bubble(messages)
        assert "Could not answer" not in bubble and "[1]" in bubble, bubble


def _wait_for_rank(job, Status, *, rank: int, size: int):
    """The job's queue status once Gradio has told it its place (polled: a hang guard only)."""
    deadline = time.monotonic() + LIVENESS_S
    while True:
        status = job.status()
        if status.code == Status.IN_QUEUE and status.rank is not None:
            assert (status.rank, status.queue_size) == (rank, size), status
            return status
        assert status.code not in (Status.PROCESSING, Status.ITERATING, Status.FINISHED), f"it never waited: {status}"
        assert time.monotonic() < deadline, f"no queue position after {LIVENESS_S} s: {status}"
        time.sleep(0.05)
