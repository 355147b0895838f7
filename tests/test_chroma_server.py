"""A real Chroma server (`chroma run`) on loopback: ingest and search through HttpClient.

The server is started from the venv's `chroma` executable with the same telemetry-off
environment the assistant sets, and stopped at the end of the module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.library import EmptyStore, Library
from assistant.settings import Settings
from assistant.store import StoreError

from conftest import FIXTURE_PAPERS, free_port
from servers import start_chroma, stop


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    server = start_chroma(tmp_path_factory.mktemp("chroma-server"), free_port(), timeout=60)
    try:
        yield server.url
    finally:
        stop(server)


def test_ingest_and_search_through_a_chroma_server(chroma_url: str, tmp_path: Path):
    settings = Settings(store_dir=tmp_path / "local", chroma_url=chroma_url, collection="server-papers")
    library = Library(settings)

    # Telemetry is off on the client we talk through, and that does not stop it working.
    assert library.store._client.get_settings().anonymized_telemetry is False
    assert os.environ["ANONYMIZED_TELEMETRY"] == "False"

    with pytest.raises(EmptyStore, match="assistant ingest"):
        library.search("radio fingerprints")

    report = library.ingest([FIXTURE_PAPERS])
    assert (report.added, report.embedded) == (33, 33)
    assert library.count() == 33
    assert library.store.location == chroma_url
    assert not (tmp_path / "local" / "chroma").exists()  # nothing went to the local store

    hits = library.search("deep learning on radio-frequency fingerprints of wireless devices", k=3)
    assert hits[0].paper.title.startswith("Disentangled Representation Learning for RF Fingerprint Extraction")
    assert hits[0].paper.sources == ["papers.jsonl"]

    again = library.ingest([FIXTURE_PAPERS])
    assert again.embedded == 0 and again.unchanged == 33

    # Another client (another process, say) sees the same collection and rebuilds BM25 from it.
    other = Library(Settings(store_dir=tmp_path / "other", chroma_url=chroma_url, collection="server-papers"))
    assert other.count() == 33
    assert other.stats()["papers"] == 33
    bm25 = other.search("radio-frequency fingerprint channel statistics", k=1, mode="bm25")
    assert bm25[0].paper.id == hits[0].paper.id


def test_unreachable_server_is_a_store_error():
    port = free_port()  # nothing listens there
    library = Library(Settings(chroma_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        library.count()


def test_malformed_url_is_a_store_error():
    with pytest.raises(StoreError, match="is not a URL"):
        Library(Settings(chroma_url="localhost-without-scheme")).count()
