"""Load on the real web server: concurrent chats through Gradio's API, latency and memory.

    .venv/bin/python benchmarks/load.py [--store DIR] [--requests 200] [--levels 1,4,8,16]

Starts `assistant serve` as a subprocess on a free loopback port over `--store` (default:
the clone's store/; when that store holds no papers, the shipped corpus is indexed into a
temporary store first), asks one warm-up question, then for each concurrency level N runs N simulated
users at once, each asking questions one after another through `gradio_client` (one new
chat per question: a fresh session, as a new visitor), until the level's share of
`--requests` is done. Questions cycle through benchmarks/questions*.jsonl.

Printed, one `name value` per line:

- N<n>.requests / .success_rate / .abstained   per level; a success is an answer shown in
                                               the chat (an abstention counts: the server
                                               answered), not an error bubble or a refusal
                                               such as "Queue is full"
- N<n>.p50_s / .p95_s                          latency a user sees: submit to final answer,
                                               queue wait included
- N<n>.throughput_rps                          answers per second at that level
- rss_start_mb                                 the server's resident memory after warm-up
- rss_after_20_mb / rss_after_<total>_mb       after 20 and after all requests completed
- rssanon_* / rssfile_*                        the same two readings split into anonymous memory (heap)
                                               and file-backed pages (mapped model and index files)
- rss_ratio                                    rss_after_<total> / rss_after_20 (target <= 1.10)

RSS is VmRSS from /proc/<pid>/status of the server process (Linux). Generation is serialized
on one llama.cpp context, so latency at N users is about N answer times: on 2 cores (answers
~2-4 s) the full 200 requests take 10-15 minutes; `--requests 24 --levels 1,4` is a quick check.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION_FILES = ("questions.jsonl", "questions_natural.jsonl")
RSS_EARLY = 20  # requests after which the baseline RSS is read


def emit(name: str, value: object, digits: int = 3) -> None:
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    print(f"{name} {text}", flush=True)


def assistant_command() -> list[str]:
    return [sys.executable, "-m", "assistant.cli"]


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of one process in MB: VmRSS, and its anonymous (heap) and file-backed
    (mapped model files: pages the kernel can drop and re-read) parts."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0]) / 1024
    if "VmRSS" not in found:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return found


def rss_mb(pid: int) -> float:
    return memory_mb(pid)["VmRSS"]


def questions() -> list[str]:
    found = []
    for name in QUESTION_FILES:
        path = ROOT / "benchmarks" / name
        if path.exists():
            found += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not found:
        raise SystemExit("no questions in benchmarks/questions*.jsonl")
    return found


def store_is_empty(store: Path) -> bool:
    """True when `store` holds no papers (checked in a subprocess: this one stays light)."""
    result = subprocess.run(
        assistant_command() + ["stats", "--store", str(store), "--json"], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        return True
    return json.loads(result.stdout).get("papers", 0) == 0


def build_store(store: Path) -> None:
    print(f"# indexing the shipped corpus into {store} ...", file=sys.stderr, flush=True)
    subprocess.run(
        assistant_command() + ["ingest", str(ROOT / "store" / "corpus"), "--store", str(store), "--json"],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(store: Path, port: int, log_path: Path) -> subprocess.Popen:
    """`assistant serve` on 127.0.0.1:port; returns once the page loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}
    env["NO_COLOR"] = "1"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            assistant_command() + ["serve", "--store", str(store), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise SystemExit(f"`assistant serve` exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if "running at" in log_path.read_text():
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise SystemExit(f"the server did not come up in 300 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def answer_text(messages: object) -> str:
    """The last chat bubble's text (the assistant's answer) from /ask's chatbot output."""
    if not isinstance(messages, list) or not messages:
        return ""
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else messages[-1]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


@dataclass
class Outcome:
    seconds: float
    ok: bool
    abstained: bool = False
    error: str = ""


@dataclass
class Tracker:
    """Completed requests across levels, and the RSS read after the 20th."""

    pid: int
    done: int = 0
    rss_early: float | None = None
    memory_early: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def completed(self) -> None:
        with self.lock:
            self.done += 1
            if self.done == RSS_EARLY:
                self.memory_early = memory_mb(self.pid)
                self.rss_early = self.memory_early["VmRSS"]


def ask_once(client, question: str) -> Outcome:
    """One new chat (a fresh session) with one question, timed from submit to the answer."""
    client.reset_session()
    started = time.perf_counter()
    try:
        _, messages, _, _ = client.predict(question, api_name="/ask")
    except Exception as exc:  # noqa: BLE001 - "Queue is full" and the like: a failed request
        return Outcome(time.perf_counter() - started, False, error=f"{type(exc).__name__}: {exc}"[:200])
    seconds = time.perf_counter() - started
    text = answer_text(messages)
    if "Could not answer" in text or not text:
        return Outcome(seconds, False, error=text[:200])
    return Outcome(seconds, True, abstained="No relevant paper" in text)


def run_level(url: str, users: int, count: int, source: Iterator[str], tracker: Tracker) -> list[Outcome]:
    """`count` questions by `users` simultaneous users, each asking one after another."""
    from gradio_client import Client

    source_lock = threading.Lock()
    remaining = [count]
    outcomes: list[Outcome] = []

    def user() -> None:
        client = Client(url, verbose=False, download_files=False)
        while True:
            with source_lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
                question = next(source)
            outcome = ask_once(client, question)
            outcomes.append(outcome)
            tracker.completed()
            if not outcome.ok:
                print(f"# N={users} failed: {outcome.error}", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(max_workers=users) as pool:
        for future in [pool.submit(user) for _ in range(users)]:
            future.result()
    return outcomes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def split(total: int, levels: list[int]) -> list[int]:
    """Requests per level: an even share each, the remainder to the last levels."""
    base, extra = divmod(total, len(levels))
    return [base + (1 if i >= len(levels) - extra else 0) for i in range(len(levels))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--store", type=Path, default=ROOT / "store",
        help="the store to serve (default: the clone's store/; when it holds no papers, the shipped corpus is indexed into a temp dir)",
    )
    parser.add_argument("--requests", type=int, default=200, help="questions in all, shared among the levels")
    parser.add_argument("--levels", default="1,4,8,16", help="comma-separated numbers of simultaneous users")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log", type=Path, default=None, help="the server's log (default: in the temp dir)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if not levels or min(levels) < 1 or args.requests < len(levels):
        raise SystemExit("--levels must be positive and --requests at least one per level")

    with tempfile.TemporaryDirectory(prefix="assistant-load-") as tmp:
        store = args.store
        if not (store / "chroma").exists() or store_is_empty(store):
            store = Path(tmp) / "store"
            build_store(store)
        port = args.port or free_port()
        log = args.log or Path(tmp) / "serve.log"
        server = start_server(store, port, log)
        url = f"http://127.0.0.1:{port}/"
        try:
            from gradio_client import Client

            source = itertools.cycle(questions())
            warm = ask_once(Client(url, verbose=False, download_files=False), next(source))
            if not warm.ok:
                raise SystemExit(f"the warm-up question failed: {warm.error}")
            rss_start = rss_mb(server.pid)
            tracker = Tracker(server.pid)
            emit("requests", args.requests)
            emit("levels", ",".join(map(str, levels)))
            for users, count in zip(levels, split(args.requests, levels)):
                started = time.perf_counter()
                outcomes = run_level(url, users, count, source, tracker)
                wall = time.perf_counter() - started
                seconds = [o.seconds for o in outcomes]
                emit(f"N{users}.requests", len(outcomes))
                emit(f"N{users}.success_rate", sum(o.ok for o in outcomes) / len(outcomes))
                emit(f"N{users}.abstained", sum(o.abstained for o in outcomes))
                emit(f"N{users}.p50_s", statistics.median(seconds))
                emit(f"N{users}.p95_s", percentile(seconds, 0.95))
                emit(f"N{users}.throughput_rps", len(outcomes) / wall)
            memory_end = memory_mb(server.pid)
            rss_end = memory_end["VmRSS"]
            emit("rss_start_mb", rss_start, 1)
            if tracker.rss_early is not None:
                emit(f"rss_after_{RSS_EARLY}_mb", tracker.rss_early, 1)
            emit(f"rss_after_{tracker.done}_mb", rss_end, 1)
            for part in ("RssAnon", "RssFile"):
                if part in memory_end and part in tracker.memory_early:
                    emit(f"{part.lower()}_after_{RSS_EARLY}_mb", tracker.memory_early[part], 1)
                    emit(f"{part.lower()}_after_{tracker.done}_mb", memory_end[part], 1)
            if tracker.rss_early:
                emit("rss_ratio", rss_end / tracker.rss_early, 3)
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
