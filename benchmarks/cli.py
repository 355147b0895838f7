"""Fresh-process CLI latency: `assistant search` and `assistant ask` per embedding backend,
against `assistant --help` (Python + CLI start-up alone) in the same run.

    .venv/bin/python benchmarks/cli.py [--store DIR] [--runs 5] [--backends torch,onnx]

Every figure is a whole new process, start-up, imports and model loading included, as a
user typing the command sees it. Commands run in turn (help, then each backend's search and
ask, round after round), so a busy machine slows them alike; medians of --runs rounds are
printed, with the ratio to `--help` of the same run.

- search_s          `assistant search QUERY`: process start to exit
- ask_first_s       `assistant ask QUESTION` on a pseudo-terminal: process start to the first
                    answer text on screen (answers stream verified sentences to a terminal;
                    with the base model the last of them is often a composed answer that
                    redraws what streamed)
- ask_total_s       `assistant ask`: process start to exit
- torch_imported    whether the search process imported torch (checked once per backend,
                    by running the same command under `python -X importtime`)

Without --store the shipped corpus is indexed into a temporary store first (with the torch
backend: its vectors are fp32, which torch and onnx share; onnx-int8 on such a store embeds
with onnx, see README "Embedding backends", so give an int8-built --store to time it).
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "quantization of large language models"
QUESTION = "How can large language models be quantized to low bit widths?"


def assistant_command() -> list[str]:
    script = Path(sys.executable).parent / "assistant"
    return [str(script)] if script.exists() else [sys.executable, "-m", "assistant.cli"]


def run(args: list[str], env: dict, terminal: bool = False) -> tuple[float, float]:
    """(seconds to the first visible stdout text, seconds to exit) of one fresh process.
    With `terminal`, stdout is a pseudo-terminal, as for a user typing the command: `ask`
    streams its answer to a terminal and prints only the final answer into a pipe."""
    if terminal:
        return _run_on_terminal(args, env)
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT, bufsize=0)
    assert proc.stdout is not None
    first = None
    while True:
        chunk = proc.stdout.read(1) if first is None else proc.stdout.read(65536)
        if not chunk:
            break
        if first is None and chunk.strip():
            first = time.perf_counter() - started
    code = proc.wait()
    total = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(args)} exited {code}")
    return first if first is not None else total, total


_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _run_on_terminal(args: list[str], env: dict) -> tuple[float, float]:
    master, slave = pty.openpty()
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(slave)
    first = None
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        if first is None and _ESCAPES.sub(b"", chunk).strip():
            first = time.perf_counter() - started
    os.close(master)
    code = proc.wait()
    total = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(args)} exited {code}")
    return first if first is not None else total, total


def imports_torch(command: list[str], env: dict) -> bool:
    """Did the process import torch? -X importtime lists every module it imported."""
    python_args = [sys.executable, "-X", "importtime", "-m", "assistant.cli"] + command[len(assistant_command()) :]
    result = subprocess.run(python_args, capture_output=True, text=True, env=env, cwd=ROOT)
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in result.stderr.splitlines() if "|" in line)


def build_store(directory: Path) -> None:
    env = {**os.environ, "ASSISTANT_EMBEDDING_BACKEND": "torch"}
    print(f"# indexing the shipped corpus into {directory} (torch backend) ...", file=sys.stderr, flush=True)
    subprocess.run(assistant_command() + ["ingest", str(ROOT / "store" / "corpus"), "--store", str(directory), "--json"],
                   check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


def emit(name: str, value: float, digits: int = 3) -> None:
    print(f"{name} {value:.{digits}f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="an existing store (default: index the shipped corpus into a temp dir)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="torch,onnx", help="comma-separated: torch, onnx, onnx-int8")
    parser.add_argument("--no-ask", action="store_true", help="time search only")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    with tempfile.TemporaryDirectory(prefix="assistant-cli-bench-") as tmp:
        store = args.store
        if store is None:
            store = Path(tmp) / "store"
            build_store(store)
        base = assistant_command()
        envs = {b: {**os.environ, "ASSISTANT_EMBEDDING_BACKEND": b, "PYTHONUNBUFFERED": "1"} for b in backends}
        search = base + ["search", QUERY, "--store", str(store), "-k", "5"]
        ask = base + ["ask", QUESTION, "--store", str(store)]
        help_env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        # Warm-up round (page cache, ONNX export on first use), not counted.
        run(base + ["--help"], help_env)
        for backend in backends:
            run(search, envs[backend])
            if not args.no_ask:
                run(ask, envs[backend], terminal=True)

        times: dict[str, list[float]] = {"help": []}
        for _ in range(args.runs):
            times["help"].append(run(base + ["--help"], help_env)[1])
            for backend in backends:
                times.setdefault(f"{backend}.search", []).append(run(search, envs[backend])[1])
                if not args.no_ask:
                    first, total = run(ask, envs[backend], terminal=True)
                    times.setdefault(f"{backend}.ask_first", []).append(first)
                    times.setdefault(f"{backend}.ask_total", []).append(total)

        emit("runs", args.runs, 0)
        help_s = statistics.median(times["help"])
        emit("help_s", help_s)
        for backend in backends:
            for name in ("search", "ask_first", "ask_total"):
                values = times.get(f"{backend}.{name}")
                if values:
                    median = statistics.median(values)
                    emit(f"{backend}.{name}_s", median)
                    emit(f"{backend}.{name}_vs_help", median / help_s, 2)
            print(f"{backend}.torch_imported {imports_torch(search, envs[backend])}", flush=True)


if __name__ == "__main__":
    main()
