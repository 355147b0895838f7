"""Embedding backends: ONNX (fp32 and int8) against sentence-transformers on the same
weights, the ONNX query path without torch, the one-time export, and which backend a
store's vectors call for. Equivalence only: speed lives in benchmarks/ingest.py and
benchmarks/cli.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from assistant.embeddings import backend_for_store, default_embedding_model, get_embedder, store_family
from assistant.onnx_embeddings import BULK_CALLS, OnnxEmbedder, ensure_export, export_dir, model_settings
from assistant.readers import read_paths
from assistant.answer import AnswerPipeline
from assistant.library import Library
from assistant.settings import INT8_CALIBRATION, PROJECT_ROOT, Settings

from conftest import FIXTURE_PAPERS

TEXTS = [
    "Quantization of large language models to 4 bits.",
    "hello",
    "What is the effect of vitamin D supplementation on bone density in older adults?",
    "Diffusion models generate images by reversing a gradual noising process; we show they scale with compute.",
    "Ünïcödé, accents — and symbols: α-helix, β-sheet, 10^-3 M, C++ & Rust.",
    "  leading and trailing spaces  ",
    # longer than max_seq_length (256 tokens): both backends must truncate the same way
    " ".join(["Transformers attend to every token in the sequence, which costs quadratic time."] * 40),
]
# Measured on these texts and on 120 abstracts of the shipped corpus: fp32 ONNX agrees with
# torch to cosine 1.0000 (min 0.99999); int8 (per-channel dynamic quantization) min 0.981,
# mean 0.994 on the abstracts.
FP32_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.97


def _texts_from_fixture(count: int = 20) -> list[str]:
    rows = [json.loads(line) for line in FIXTURE_PAPERS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{row['title']}. {row['abstract']}" for row in rows[:count]]


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh XDG_CACHE_HOME: the model cache is <it>/assistant, as Settings.model_cache_dir says."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(scope="session")
def onnx_cache(cache_home: Path) -> Path:
    """Two processes export the same model into an empty cache at the same moment: the
    lock makes one export and the other reuse, and nothing half-written is left behind."""
    cache = cache_home / "assistant"
    script = textwrap.dedent(
        f"""
        import json
        from assistant.embeddings import default_embedding_model
        from assistant.onnx_embeddings import ensure_export
        path, exported = ensure_export(default_embedding_model(), {str(cache)!r}, quantized=True)
        print(json.dumps({{"path": str(path), "exported": exported}}))
        """
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["exported"] for r in results) == [False, True], results
    directory = export_dir(Path(default_embedding_model()), cache)
    assert (directory / "model.onnx").is_file() and (directory / "model_int8.onnx").is_file()
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    # The transformer blocks are fused (one Attention kernel per layer): the speed of every
    # ingest and query depends on it, and a failed fusion would fall back silently.
    import onnx

    for name in ("model.onnx", "model_int8.onnx"):
        ops = {node.op_type for node in onnx.load(str(directory / name), load_external_data=False).graph.node}
        assert "SkipLayerNormalization" in ops and ops & {"Attention", "QAttention"}, (name, sorted(ops))
    return cache


@pytest.fixture(scope="session")
def torch_vectors() -> np.ndarray:
    return get_embedder(backend="torch").embed(TEXTS + _texts_from_fixture())


def test_model_settings_match_sentence_transformers() -> None:
    max_len, pooling = model_settings(Path(default_embedding_model()))
    assert (max_len, pooling) == (256, "mean")
    torch_model = get_embedder(backend="torch")._model
    assert torch_model.max_seq_length == max_len


@pytest.mark.parametrize(("backend", "minimum"), [("onnx", FP32_MIN_COSINE), ("onnx-int8", INT8_MIN_COSINE)])
def test_onnx_vectors_match_torch(onnx_cache: Path, torch_vectors: np.ndarray, backend: str, minimum: float) -> None:
    embedder = get_embedder(backend=backend, cache_dir=onnx_cache)
    assert embedder.backend == backend
    vectors = embedder.embed(TEXTS + _texts_from_fixture())
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() >= minimum, (backend, cosines.min(), cosines.mean())
    # Batching does not change an fp32 text's vector. int8 quantizes activations with one
    # scale per batch, so a text's vector depends a little on its batch mates (0.995 measured).
    alone = embedder.embed_one(TEXTS[2])
    assert float(alone @ vectors[2]) > (0.9999 if backend == "onnx" else 0.99)
    assert embedder.embed([]).shape == (0, embedder.dimension) == (0, 384)


def test_sessions_side_by_side_give_each_text_its_own_vector(onnx_cache: Path) -> None:
    """Bulk embedding spreads calls over parallel sessions (Settings.embedding_workers): every
    vector must land at its text's row, as one session embedding them in turn gives."""
    model = default_embedding_model()
    texts = TEXTS + _texts_from_fixture()
    one = OnnxEmbedder(model, onnx_cache, quantized=True, batch_size=1, workers=1)
    side_by_side = OnnxEmbedder(model, onnx_cache, quantized=True, batch_size=1, workers=3)
    expected = np.stack([one.embed_one(text) for text in texts])
    assert len(texts) >= BULK_CALLS  # else it would not be spread over the sessions
    np.testing.assert_allclose(side_by_side.embed(texts), expected, atol=1e-6)
    assert len(side_by_side._bulk_sessions) == 3
    # several texts per call: the same calls as one session makes, int8 batch-mate effect included
    four = OnnxEmbedder(model, onnx_cache, quantized=True, batch_size=4, workers=2)
    four_texts = texts * 4  # enough calls of four to be bulk work
    reference = OnnxEmbedder(model, onnx_cache, quantized=True, batch_size=4, workers=1)
    np.testing.assert_allclose(four.embed(four_texts), reference.embed(four_texts), atol=1e-6)
    assert len(four._bulk_sessions) == 2


def test_export_is_reused(onnx_cache: Path) -> None:
    model = default_embedding_model()
    directory = export_dir(Path(model), onnx_cache)
    before = {name: (directory / name).stat().st_mtime_ns for name in ("model.onnx", "model_int8.onnx")}
    for quantized in (False, True):
        path, exported = ensure_export(model, onnx_cache, quantized=quantized)
        assert not exported and path.is_file()
        assert not OnnxEmbedder(model, onnx_cache, quantized=quantized).exported
    assert before == {name: (directory / name).stat().st_mtime_ns for name in before}


_SEARCH_WITHOUT_TORCH = """
import json, sys
from assistant.cli import app
try:
    app(["search", "how do large language models reason", "--store", sys.argv[1], "--embedding-backend", sys.argv[2], "--json"],
        prog_name="assistant", standalone_mode=False)
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = ["torch", "transformers", "sentence_transformers"]
print(json.dumps({"imported": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_search_with_onnx_does_not_import_torch(onnx_cache: Path, cache_home: Path, fixture_store_dir: Path, backend: str) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("ASSISTANT_EMBEDDING_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", _SEARCH_WITHOUT_TORCH, str(fixture_store_dir), backend],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    hits = json.loads("\n".join(lines[:-1]))
    assert hits and hits[0]["title"]
    assert json.loads(lines[-1]) == {"imported": []}


def _papers(count: int):
    return read_paths([FIXTURE_PAPERS]).papers[:count]


def test_store_records_its_backend_family(make_library, onnx_cache: Path, cache_home: Path, monkeypatch) -> None:
    """A store filled with int8 vectors is searched with int8 whatever is configured; a
    torch-built (fp32) store with fp32 vectors even when onnx-int8 is configured."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    library = make_library(embedding_backend="onnx-int8")
    assert store_family(library.store) is None  # empty: anything may fill it
    library.ingest_papers(_papers(4))
    assert store_family(library.store) == "int8"
    assert library.embedder.backend == "onnx-int8"
    assert backend_for_store("torch", library.store) == "onnx-int8"
    assert backend_for_store("onnx", library.store) == "onnx-int8"


def test_fp32_store_is_searched_with_fp32_vectors(make_library) -> None:
    library = make_library(embedding_backend="onnx")
    library.ingest_papers(_papers(4))
    assert store_family(library.store) == "fp32"
    assert backend_for_store("onnx-int8", library.store) == "onnx"
    assert backend_for_store("torch", library.store) == "torch"
    assert backend_for_store("onnx", library.store) == "onnx"
    # ...and judged by the thresholds calibrated on fp32 vectors, even with int8 configured.
    int8_configured = Library(library.settings.with_overrides(embedding_backend="onnx-int8"))
    assert int8_configured.calibrated().answer_relevance == Settings().answer_relevance != INT8_CALIBRATION["answer_relevance"]


def test_default_store_is_int8_and_judged_by_int8_thresholds(fixture_library) -> None:
    """The default backend fills int8 stores; every job resolves its settings through
    Library.calibrated, which gives an int8 store the thresholds calibrated on int8 vectors."""
    assert store_family(fixture_library.store) == "int8"
    calibrated = fixture_library.calibrated()
    for name, value in INT8_CALIBRATION.items():
        assert getattr(calibrated, name) == value, name
    assert AnswerPipeline(fixture_library).settings.answer_relevance == INT8_CALIBRATION["answer_relevance"]


def test_a_threshold_the_user_set_wins_over_the_int8_calibration() -> None:
    """A value changed from its default (argument, ASSISTANT_* variable, flag) stays as given;
    the others take the int8 calibration; fp32 leaves everything alone."""
    default = Settings()
    assert default.answer_relevance != INT8_CALIBRATION["answer_relevance"]  # otherwise nothing here is tested
    chosen = Settings(answer_relevance=0.5).calibrated("int8")
    assert chosen.answer_relevance == 0.5
    assert chosen.answer_standout == INT8_CALIBRATION["answer_standout"]
    assert default.calibrated("fp32") == default
    assert default.calibrated("int8").calibrated("int8") == default.calibrated("int8")
