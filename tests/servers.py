"""Real servers for tests: `assistant serve` and `python -m llama_cpp.server` as
subprocesses on free loopback ports, started, waited for and stopped the same way
everywhere, so a test only says what it runs them with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from conftest import free_port


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def port(self) -> int:
        return int(urlparse(self.url).port or 0)


def _wait_until_up(server: Server, ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `ready()`; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"{what} exited with {server.process.returncode}:\n{server.log_path.read_text()[-3000:]}")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        if time.monotonic() > deadline:
            _kill(server.process)
            pytest.fail(f"{what} did not come up in {timeout:.0f} s:\n{server.log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole process group, SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGCONT)  # a test may have frozen it
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        _kill(process)
        process.wait(timeout=15)


@contextmanager
def assistant_server(
    args: list[str], env: dict[str, str], log_path: Path, *, timeout: float = 180, clean_log: bool = True
) -> Iterator[Server]:
    """`assistant serve --port P ARGS` with `env`; yields once the page answers, and on exit
    stops it and (unless the test sends hostile requests Gradio itself logs tracebacks
    for: clean_log=False) checks that its log holds no traceback."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}/", process, log_path)
    try:
        _wait_until_up(
            server, lambda: "running at" in log_path.read_text() and httpx.get(server.url, timeout=5).status_code == 200, timeout, "`assistant serve`"
        )
        yield server
    finally:
        _stop(process)
    log_text = log_path.read_text()
    assert not clean_log or "Traceback" not in log_text, log_text[-3000:]


@contextmanager
def llama_server(model: Path, log_path: Path, *, timeout: float = 180) -> Iterator[Server]:
    """A real OpenAI-compatible `python -m llama_cpp.server` for `model`; its url ends in /v1."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}/v1", process, log_path)
    try:
        _wait_until_up(server, lambda: httpx.get(f"{server.url}/models", timeout=2).status_code == 200, timeout, "llama_cpp.server")
        yield server
    finally:
        _stop(process)


def start_chroma(data: Path, port: int, *, timeout: float = 120) -> Server:
    """A real `chroma run` on `data` (its database in data/db, its log appended to
    data/server.log) at `port`, once its heartbeat answers. Restarting on the same data
    and port is calling this again."""
    from conftest import venv_executable

    chroma = venv_executable("chroma", "no `chroma` executable (it comes with the chromadb package)")
    log_path = data / "server.log"
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False", DO_NOT_TRACK="1")
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [chroma, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    _wait_until_up(server, lambda: httpx.get(f"{server.url}/api/v2/heartbeat", timeout=1).status_code == 200, timeout, "chroma run")
    return server


def stop(server: Server) -> None:
    """Stop a server started by this module (thawed first if a test froze it)."""
    _stop(server.process)
