"""Shared fixtures: real components everywhere, built once per session where they are costly.

- `fixture_library`: a real Chroma store in a temporary directory, filled from
  tests/fixtures/papers.jsonl (33 papers) with the real all-MiniLM-L6-v2 embedder.
  Read-only for tests: tests that write make their own store with `make_library`.
- The real default LLM (Gemma 3 270M through llama-cpp-python) loads lazily through
  `fixture_library.llm`, once per session.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from assistant.library import Library
from assistant.settings import PROJECT_ROOT, Settings

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_PAPERS = FIXTURES / "papers.jsonl"
SHIPPED_CORPUS = PROJECT_ROOT / "store" / "corpus"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def venv_executable(name: str, why: str) -> str:
    """A console script installed beside this Python (the project's .venv), else on PATH."""
    import shutil
    import sys

    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.skip(why)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def make_library(tmp_path: Path):
    """A fresh, empty library in its own temporary store."""

    def make(**overrides) -> Library:
        settings = Settings(store_dir=tmp_path / "store", **overrides)
        return Library(settings)

    return make


@pytest.fixture(scope="session")
def fixture_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store_dir = tmp_path_factory.mktemp("fixture-store")
    library = Library(Settings(store_dir=store_dir))
    report = library.ingest([FIXTURE_PAPERS])
    assert report.added == 33, report
    return store_dir


@pytest.fixture(scope="session")
def fixture_library(fixture_store_dir: Path) -> Library:
    return Library(Settings(store_dir=fixture_store_dir))


@pytest.fixture(scope="session")
def corpus_library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """The whole shipped corpus (446 papers) in a temporary store: about 20 s to build."""
    library = Library(Settings(store_dir=tmp_path_factory.mktemp("corpus-store")))
    library.ingest([SHIPPED_CORPUS])
    return library


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("ASSISTANT_N_THREADS", str(os.cpu_count() or 2))
