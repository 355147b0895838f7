"""A real Chroma server (`chroma run`) on loopback: ingest and search through HttpClient.

The server is started from the venv's `chroma` executable with the same telemetry-off
environment the assistant sets, and stopped at the end of the module.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from assistant.library import EmptyStore, Library
from assistant.settings import Settings
from assistant.store import StoreError

from conftest import FIXTURE_PAPERS, free_port, venv_executable


def _chroma_executable() -> str:
    return venv_executable("chroma", "no `chroma` executable (it comes with the chromadb package)")


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = (data / "server.log").open("w")
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False", DO_NOT_TRACK="1")
    server = subprocess.Popen(
        [_chroma_executable(), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"chroma run exited with {server.returncode}: {(data / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer within 60 s: {(data / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


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
