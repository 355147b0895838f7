"""The sentence-transformers model run through ONNX Runtime, without torch at query time.

``onnx`` runs the model exported once from the shipped weights (fp32), its graph fused by
onnxruntime's transformer optimizer (one Attention, SkipLayerNorm and BiasGelu kernel where
the export has a dozen small ops: the same vectors, 1.3x faster on abstract-length texts,
no faster on single sentences); ``onnx-int8``
runs the same export after onnxruntime's dynamic int8 quantization of its weights. Both are
written to the model cache (``Settings.model_cache_dir``/onnx/...) the first time they are
needed, offline, from the local model directory: only that export imports torch and
transformers, once. Every later process loads the ``.onnx`` file, the fast tokenizer from
the model's ``tokenizer.json`` (the ``tokenizers`` package) and does the pooling itself in
numpy, exactly as sentence-transformers does: tokens truncated to the model's
``max_seq_length``, mean pooling over the attention mask, L2 normalization.

Writing an export is atomic (a temporary file in the same directory, then ``os.replace``)
and serialized between processes by a lock file, so two processes that need it at the
same moment export it once and never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ModelNotFound

# Bumped when the export procedure changes, so stale exports are not reused.
EXPORT_VERSION = 2  # 2: fused transformer graph
_OPSET = 17
# Model calls from which an embed() is bulk work for the parallel sessions: below it, thread
# start-up costs more than they save (12 sentences: 26 ms on two sessions, 21 ms on one).
BULK_CALLS = 16
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_settings(model_dir: Path) -> tuple[int, str]:
    """(max_seq_length, pooling) as sentence-transformers reads them from the model directory."""
    config = _read_json(model_dir / "sentence_bert_config.json")
    max_len = int(config.get("max_seq_length") or 0)
    if not max_len:  # sentence-transformers falls back to the tokenizer's limit
        max_len = int(_read_json(model_dir / "tokenizer_config.json").get("model_max_length") or 512)
        max_len = min(max_len, int(_read_json(model_dir / "config.json").get("max_position_embeddings") or 512))
    pooling = "mean"
    for module in _read_json(model_dir / "modules.json") or []:
        if isinstance(module, dict) and module.get("type", "").endswith("Pooling"):
            pool = _read_json(model_dir / module.get("path", "") / "config.json")
            if pool.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif pool and not pool.get("pooling_mode_mean_tokens", True):
                pooling = "unsupported"
    return max_len, pooling


def _fingerprint(model_dir: Path) -> str:
    """Names the export after the weights it came from (path, size and mtime of each
    weight/config file: cheap, and changes when the model is replaced)."""
    digest = hashlib.sha256(f"v{EXPORT_VERSION}|{model_dir.resolve()}".encode())
    for name in sorted(os.listdir(model_dir)):
        if name.endswith((".safetensors", ".bin", ".json")):
            stat = (model_dir / name).stat()
            digest.update(f"|{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def export_dir(model_dir: Path, cache_dir: Path) -> Path:
    return Path(cache_dir) / "onnx" / f"{model_dir.resolve().name}-{_fingerprint(model_dir)}"


@contextmanager
def _export_lock(directory: Path):
    """An exclusive lock between processes (fcntl on POSIX; elsewhere the atomic rename
    alone keeps files whole, two processes may then both export)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(directory / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_target(final: Path):
    """A temporary path beside `final` (same file system, so os.replace is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.chmod(name, 0o644)  # mkstemp makes it private; the cache is readable like any other
    return Path(name)


def _sample_batch() -> dict[str, np.ndarray]:
    """Two short sequences, one padded: traces the export's dynamic axes and checks the
    fused graph against the unfused one where padding matters."""
    ids = np.array([[101, 7592, 2088, 102, 0, 0], [101, 7592, 2088, 2088, 1010, 102]], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}


def _export_fp32(model_dir: Path, target: Path) -> None:
    """torch.onnx.export (TorchScript exporter) of the transformer: token ids in, last
    hidden state out, dynamic batch and sequence axes. The only place torch is imported."""
    import warnings

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = {name: torch.from_numpy(value) for name, value in _sample_batch().items()}
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            tuple(sample[name] for name in _INPUTS),
            str(target),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


@contextmanager
def _root_logging_at_error() -> Iterator[None]:
    """onnxruntime's offline tools log advice at WARNING through the root logger; the
    export is not the user's business."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _fuse_transformer(model_dir: Path, source: Path, target: Path) -> bool:
    """Write `source` with its BERT blocks fused (onnxruntime.transformers.optimizer) to
    `target` when the fused graph gives the unfused one's output on a padded sample batch;
    False (nothing written) for another architecture or any doubt: the unfused graph is
    slower, never wrong."""
    import onnxruntime
    from onnxruntime.transformers.optimizer import optimize_model

    config = _read_json(model_dir / "config.json")
    if config.get("model_type") != "bert" or not config.get("num_attention_heads") or not config.get("hidden_size"):
        return False
    try:
        with _root_logging_at_error():
            fused = optimize_model(
                str(source), model_type="bert", num_heads=int(config["num_attention_heads"]),
                hidden_size=int(config["hidden_size"]), opt_level=1,
            )
        fused.save_model_to_file(str(target))
        sample = _sample_batch()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        outputs = [
            onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, sample)[0]
            for path in (source, target)
        ]
        mask = sample["attention_mask"][..., None].astype(bool)
        return bool(np.allclose(outputs[0] * mask, outputs[1] * mask, atol=1e-3))
    except Exception:  # noqa: BLE001 - an optimizer that cannot handle the graph: keep it unfused
        return False


def _quantize_int8(source: Path, target: Path) -> None:
    """onnxruntime's dynamic quantization: int8 weights (per output channel: per-tensor scales
    cost this model ~0.07 mean cosine to torch), activations quantized per call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # (it logs a "consider pre-processing" advice at WARNING)
    with _root_logging_at_error():
        # The fused graph's contrib ops (Attention, SkipLayerNorm) carry no inferred output
        # types; every tensor here is float.
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def ensure_export(model_dir: str | Path, cache_dir: str | Path, quantized: bool) -> tuple[Path, bool]:
    """The .onnx file for `model_dir` (fp32, or int8 when `quantized`), exported into the
    cache on first use. Returns (path, exported_now)."""
    model_dir = Path(model_dir)
    directory = export_dir(model_dir, Path(cache_dir))
    fp32 = directory / "model.onnx"
    int8 = directory / "model_int8.onnx"
    wanted = int8 if quantized else fp32
    if wanted.is_file():
        return wanted, False
    with _export_lock(directory):
        if wanted.is_file():  # another process exported it while we waited
            return wanted, False
        if not fp32.is_file():
            exported, fused = _atomic_target(fp32), _atomic_target(fp32)
            try:
                _export_fp32(model_dir, exported)
                os.replace(fused if _fuse_transformer(model_dir, exported, fused) else exported, fp32)
            finally:
                exported.unlink(missing_ok=True)
                fused.unlink(missing_ok=True)
        if quantized:
            temporary = _atomic_target(int8)
            try:
                _quantize_int8(fp32, temporary)
                os.replace(temporary, int8)
            finally:
                temporary.unlink(missing_ok=True)
        (directory / "source.json").write_text(
            json.dumps({"model": str(model_dir.resolve()), "export_version": EXPORT_VERSION}), encoding="utf-8"
        )
    return wanted, True


class OnnxEmbedder:
    """Same interface and (up to float rounding / int8 error) same vectors as the torch
    :class:`assistant.embeddings.Embedder`."""

    def __init__(
        self,
        model_path: str | Path,
        cache_dir: str | Path,
        quantized: bool = False,
        batch_size: int = 32,
        name: str | None = None,
        memory_arena: bool = False,
        workers: int = 1,
    ) -> None:
        model_dir = Path(model_path)
        self.name = name or str(model_path)
        self.backend = "onnx-int8" if quantized else "onnx"
        self.batch_size = batch_size
        if not (model_dir / "tokenizer.json").is_file():
            raise ModelNotFound(
                f"the {self.backend} embedding backend needs a local model directory with tokenizer.json; "
                f"{self.name!r} is not one (use ASSISTANT_EMBEDDING_BACKEND=torch for it)"
            )
        self.max_seq_length, self.pooling = model_settings(model_dir)
        if self.pooling == "unsupported":
            raise ModelNotFound(
                f"{self.name!r} uses a pooling the {self.backend} backend does not implement (mean and CLS only); "
                "use ASSISTANT_EMBEDDING_BACKEND=torch"
            )
        try:
            self.model_file, self.exported = ensure_export(model_dir, cache_dir, quantized)
        except ModelNotFound:
            raise
        except Exception as exc:
            raise ModelNotFound(f"cannot export {self.name!r} to ONNX into {cache_dir}: {exc}") from exc

        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json may carry its own fixed padding / truncation (128 here); use
        # sentence-transformers' instead: truncate to max_seq_length, pad to the longest.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer = tokenizer
        self._pad_id = int(tokenizer.token_to_id("[PAD]") or 0)
        self._onnxruntime = onnxruntime
        self._memory_arena = memory_arena
        self.workers = max(1, workers)
        self._session = self._new_session(threads=0)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._dimension = int(self._session.get_outputs()[0].shape[-1] or 0) or None
        self._lock = threading.Lock()
        self._bulk_sessions: list = []
        self.calls = 0

    def _new_session(self, threads: int):
        """A session on `threads` cores (0: ONNX Runtime's default, all of them)."""
        options = self._onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Every new batch shape (texts of another length) grows ONNX Runtime's arena and
        # memory-pattern caches for good: a long-running server's memory must not creep, so
        # only a bulk job that ends (ingest) takes the arena's ~25% speed. Memory patterns
        # stay off even there: measured on 800 abstracts and their sentences (int8), they
        # added 145 MB to the peak and no speed (26.1-27.6 papers/s with, 25.2-26.9 without).
        options.enable_cpu_mem_arena = self._memory_arena
        options.enable_mem_pattern = False
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        return self._onnxruntime.InferenceSession(
            str(self.model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def _sessions_for_bulk(self) -> list:
        """`workers` sessions side by side, each on its share of the cores: a BERT block's
        small ops (layer norms, GELU, attention over ~40 tokens) are too short to split
        across threads well (on 2 cores, the shipped corpus's int8 ingest: 19.8 papers/s against
        17.9 on one session using both, medians of five runs each). Made on the first bulk call, so a server that only embeds queries and a few
        sentences at a time (all on the first session, whose threads serve one short call
        best) never holds them."""
        with self._lock:
            threads = max(1, available_cores() // self.workers)
            while len(self._bulk_sessions) < self.workers:
                self._bulk_sessions.append(self._new_session(threads))
            return list(self._bulk_sessions)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._encode_batch(["x"]).shape[1])
        return self._dimension

    def _encode_batch(self, texts: list[str], session=None) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        types = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = encoding.attention_mask
            types[row, :n] = encoding.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        session = session or self._session
        hidden = session.run(None, {k: v for k, v in feeds.items() if k in self._input_names})[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers batches: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        chunks = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        with self._lock:
            self.calls += len(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if self.workers == 1 or len(chunks) < BULK_CALLS:
            for chunk in chunks:
                out[chunk] = self._encode_batch([texts[i] for i in chunk])
            return out
        # Each worker thread takes the next chunk and runs it on its own session (ONNX
        # Runtime releases the GIL while it runs); longest-first order keeps them even.
        pending = iter(chunks)
        taking = threading.Lock()

        def work(session) -> None:
            while True:
                with taking:
                    chunk = next(pending, None)
                if chunk is None:
                    return
                out[chunk] = self._encode_batch([texts[i] for i in chunk], session)

        sessions = self._sessions_for_bulk()
        with ThreadPoolExecutor(len(sessions), thread_name_prefix="embed") as pool:
            for future in [pool.submit(work, session) for session in sessions]:
                future.result()
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
