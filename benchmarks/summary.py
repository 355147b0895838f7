"""Topic summaries: readability over a dozen topics, and latency vs raw llama-cpp-python.

Readability (always; topics from benchmarks/topics.txt, worded as a researcher would):

- headings_phrase_share      theme headings that are multi-word phrases present in their papers (target 1.0)
- dangling_share             displayed summary sentences with a dangling opening (target 0.0)
- off_topic_kept             cited papers whose best-sentence relevance is below answer_relevance (summed)
- left_out                   retrieved papers the summaries left out as off-topic (summed)
- summary_s_p50 / _max       time per summary
(`--extractive` runs without the model: quoted and composed statements only.)

Latency vs raw (`--compare-raw`, the three TOPICS below by default):

For each topic, `summarize_topic(library, topic, n=10)` is timed end to end (retrieval,
clustering, every map and reduce generation, verification, Markdown). Every request
the pipeline sent to the model is recorded and then replayed, in the same order, through
a bare `llama_cpp.Llama` with the same settings: the ratio ours / raw is the cost of
everything that is not generation.

    .venv/bin/python benchmarks/summary.py [--store DIR] [-n 10] [--extractive] [--topics-file F]
    .venv/bin/python benchmarks/summary.py --compare-raw [--topics "a" "b" "c"]

Without --store it indexes the shipped corpus into a temporary directory first (not
timed). Models are loaded and warmed before timing. Prints one `name value` line per figure:

- summary_s[<topic>]              seconds for one n-paper topic summary
- raw_llama_s[<topic>]            the same prompts through bare llama-cpp-python
- summary_10_papers_s_p50         median over the topics (the < 60 s target on 2 cores)
- raw_llama_s_p50
- ratio_ours_vs_raw_p50           median of per-topic ratios
- llm_calls_p50 / prompt_tokens_p50 / generated_tokens_p50   work per summary
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.generation import prompt_tokens  # noqa: E402
from assistant.library import Library  # noqa: E402
from assistant.llm import Request, default_model_path  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.evaluation.readability import topic_summary_figures  # noqa: E402
from assistant.summarize import summarize_topic  # noqa: E402

TOPICS_FILE = Path(__file__).resolve().parent / "topics.txt"

TOPICS = [
    "diffusion models for image and video generation",
    "graph neural networks",
    "pruning and compression of neural networks",
]


def emit(name: str, value: float, digits: int = 3) -> None:
    print(f"{name} {value:.{digits}f}", flush=True)


class Recorder:
    """Wraps the backend's stream() to keep every request and count generated tokens."""

    def __init__(self, llm) -> None:
        self.llm = llm
        self.original = llm.stream
        self.requests: list[Request] = []
        self.generated = 0
        llm.stream = self.stream  # instance attribute shadows the method

    def stream(self, request: Request):
        self.requests.append(request)
        for piece in self.original(request):
            self.generated += 1
            yield piece

    def reset(self) -> None:
        self.requests, self.generated = [], 0


def raw_replay(llama, requests: list[Request]) -> float:
    """Seconds for bare llama-cpp-python to run the same requests in the same order."""
    started = time.perf_counter()
    for request in requests:
        options = dict(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=request.stop or None,
            repeat_penalty=request.repeat_penalty,
            seed=request.seed,
        )
        if request.messages is not None and request.prompt is None:
            llama.create_chat_completion(messages=request.messages, **options)
        else:
            llama.create_completion(prompt=request.prompt or "", **options)
    return time.perf_counter() - started


def read_topics(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def readability(library: Library, topics: list[str], n: int | None = None, extractive: bool = False, show: bool = True) -> dict:
    """Readability figures and time per summary over `topics` (importable for other benchmarks)."""
    import threading

    stop = threading.Event()
    if extractive:
        stop.set()  # no generation: composed statements only
    totals = {"headings": 0, "headings_phrases": 0, "sentences": 0, "dangling": 0, "papers": 0, "off_topic_kept": 0, "left_out": 0}
    times = []
    for topic in topics:
        started = time.perf_counter()
        summary = summarize_topic(library, topic, n, stop=stop)
        times.append(time.perf_counter() - started)
        figures = topic_summary_figures(summary, library)
        for key in totals:
            totals[key] += figures[key]
        if show:
            headings = "; ".join(t.heading for t in summary.themes)
            left = "; ".join(f"{h.paper.title[:50]} ({score:.2f})" for h, score in getattr(summary, "left_out", []))
            print(f"# {topic!r}: {times[-1]:.1f} s, {figures}, headings: {headings}" + (f"; left out: {left}" if left else ""), flush=True)
    return {
        "topics": len(topics),
        "headings_phrase_share": totals["headings_phrases"] / max(totals["headings"], 1),
        "dangling_share": totals["dangling"] / max(totals["sentences"], 1),
        "off_topic_kept": totals["off_topic_kept"],
        "left_out": totals["left_out"],
        "papers_cited": totals["papers"],
        "summary_s_p50": statistics.median(times) if times else 0.0,
        "summary_s_max": max(times, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="an existing store (default: index the shipped corpus into a temp dir)")
    parser.add_argument("-n", type=int, default=None, help="papers per summary (default: the setting; 10 with --compare-raw)")
    parser.add_argument("--topics", nargs="+", default=None)
    parser.add_argument("--topics-file", type=Path, default=TOPICS_FILE)
    parser.add_argument("--extractive", action="store_true", help="readability without the model (fast)")
    parser.add_argument("--compare-raw", action="store_true", help="latency vs the same prompts through bare llama-cpp-python")
    args = parser.parse_args()

    store = args.store or Path(tempfile.mkdtemp(prefix="bench-summary-"))
    library = Library(Settings(store_dir=store))
    if library.count() == 0:
        started = time.perf_counter()
        library.ingest([library.settings.corpus_dir])
        print(f"# indexed the shipped corpus in {time.perf_counter() - started:.1f} s (not counted)", flush=True)
    settings = library.settings
    emit("corpus_papers", library.count(), 0)
    if not args.compare_raw:
        if not args.extractive:
            summarize_topic(library, "warm-up: neural network training", 4)  # load models, warm caches
        figures = readability(library, args.topics or read_topics(args.topics_file), args.n, args.extractive)
        for key, value in figures.items():
            emit(key, value, 3 if isinstance(value, float) else 0)
        return
    args.n = args.n or 10
    args.topics = args.topics or TOPICS

    llm = library.llm
    recorder = Recorder(llm)
    summarize_topic(library, "warm-up: neural network training", 4)  # load models, warm caches

    from llama_cpp import Llama

    raw = Llama(
        model_path=str(settings.model or default_model_path(settings.model_cache_dir)),
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads or os.cpu_count(),
        seed=settings.seed,
        verbose=False,
    )
    raw_replay(raw, recorder.requests[:1])  # warm the bare model too

    ours, raws, ratios, calls, prompt_sizes, generated = [], [], [], [], [], []
    for topic in args.topics:
        recorder.reset()
        started = time.perf_counter()
        summary = summarize_topic(library, topic, args.n)
        elapsed = time.perf_counter() - started
        requests = list(recorder.requests)
        raw_s = raw_replay(raw, requests) if requests else 0.0
        ours.append(elapsed)
        raws.append(raw_s)
        if raw_s > 0:
            ratios.append(elapsed / raw_s)
        calls.append(len(requests))
        prompt_sizes.append(sum(prompt_tokens(llm, r) for r in requests))
        generated.append(recorder.generated)
        label = topic.replace(" ", "_")
        emit(f"summary_s[{label}]", elapsed, 2)
        emit(f"raw_llama_s[{label}]", raw_s, 2)
        print(
            f"# {topic!r}: {len(summary.hits)} papers, {len(summary.references)} cited, {len(summary.themes)} themes, "
            f"mode {summary.mode}, stats {summary.stats}",
            flush=True,
        )
    median = statistics.median
    emit("summary_10_papers_s_p50" if args.n == 10 else f"summary_{args.n}_papers_s_p50", median(ours), 2)
    emit("raw_llama_s_p50", median(raws), 2)
    if ratios:
        emit("ratio_ours_vs_raw_p50", median(ratios), 2)
    emit("llm_calls_p50", median(calls), 0)
    emit("prompt_tokens_p50", median(prompt_sizes), 0)
    emit("generated_tokens_p50", median(generated), 0)


if __name__ == "__main__":
    main()
