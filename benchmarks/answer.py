"""Answer latency: our pipeline vs the same prompt straight through llama-cpp-python.

For each question, `ask` is timed (time to first token, total), then the exact prompt
the pipeline sent is run through a bare `llama_cpp.Llama` with the same sampling
settings. The ratio is our overhead: retrieval, evidence selection, verification.

    .venv/bin/python benchmarks/answer.py [--store DIR]

Without --store it indexes the shipped corpus into a temporary directory first.
Prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from assistant.answer import AnswerPipeline
from assistant.library import Library
from assistant.llm import default_model_path
from assistant.settings import Settings

QUESTIONS = [
    "Which pruning method computes the Hessian-vector product directly for each parameter?",
    "How can graph neural networks compute fixed points with guaranteed convergence?",
    "What loss function treats cross-entropy and focal loss as special cases?",
    "How do transformers perform Bayesian inference?",
    "How can deep equilibrium models be trained faster?",
    "Which method explains transformer predictions beyond attention maps?",
]


def raw_llama_timing(llama, prompt: str, settings: Settings) -> tuple[float, float, int]:
    """(time to first token, total, tokens) for the bare library on one prompt."""
    started = time.perf_counter()
    first = None
    tokens = 0
    for chunk in llama.create_completion(
        prompt=prompt,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        repeat_penalty=settings.repeat_penalty,
        seed=settings.seed,
        stop=["###", "\n"],
        stream=True,
    ):
        if chunk["choices"][0]["text"]:
            first = first or time.perf_counter() - started
            tokens += 1
    return first or 0.0, time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, help="an existing store (default: index the shipped corpus into a temp dir)")
    args = parser.parse_args()
    store = args.store or Path(tempfile.mkdtemp(prefix="bench-answer-"))
    library = Library(Settings(store_dir=store))
    if library.count() == 0:
        library.ingest([library.settings.corpus_dir])
    settings = library.settings
    pipeline = AnswerPipeline(library)
    pipeline.answer(QUESTIONS[0])  # load models and warm caches: we measure steady state

    from llama_cpp import Llama

    raw = Llama(
        model_path=str(settings.model or default_model_path(settings.model_cache_dir)),
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads or os.cpu_count(),
        seed=settings.seed,
        verbose=False,
    )
    ours_first, ours_total, raw_first, raw_total, raw_rates = [], [], [], [], []
    for question in QUESTIONS:
        result = pipeline.answer(question)
        if result.abstained:
            print(f"# abstained on {question!r}; skipped")
            continue
        ours_first.append(result.timings.get("first_token_s", result.timings["total_s"]))
        ours_total.append(result.timings["total_s"])
        prompt = result.request.prompt  # the identical prompt, straight to llama.cpp
        first, total, tokens = raw_llama_timing(raw, prompt, settings)
        raw_first.append(first)
        raw_total.append(total)
        raw_rates.append(tokens / max(total - first, 1e-6))
    median = statistics.median
    print(f"questions {len(ours_total)}")
    print(f"ask_first_token_s_p50 {median(ours_first):.3f}")
    print(f"raw_llama_first_token_s_p50 {median(raw_first):.3f}")
    print(f"first_token_ratio_ours_vs_raw {median(ours_first) / median(raw_first):.2f}")
    print(f"ask_total_s_p50 {median(ours_total):.3f}")
    print(f"raw_llama_total_s_p50 {median(raw_total):.3f}")
    print(f"total_ratio_ours_vs_raw {median(ours_total) / median(raw_total):.2f}")
    print(f"raw_generation_tokens_per_s_p50 {median(raw_rates):.1f}")


if __name__ == "__main__":
    main()
