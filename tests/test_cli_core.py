"""The `assistant` executable: ingest, search, stats, show, run as a user would run them.

Each test runs `.venv/bin/assistant` (or the `assistant` on PATH) in a subprocess with
ASSISTANT_STORE_DIR pointing at a temporary store. Only one of them embeds a corpus.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURE_PAPERS, FIXTURES, venv_executable

FORMATS = FIXTURES / "formats"


def _executable() -> str:
    return venv_executable("assistant", "the `assistant` console script is not installed (pip install -e .)")


def run_cli(store: Path, *args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_STORE_DIR"] = str(store)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [_executable(), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One store with the 33 fixture papers plus the crafted formats (7 papers, 6 bad
    records) and an unknown file: a partly failing ingest that must still succeed."""
    store = tmp_path_factory.mktemp("cli-store")
    result = run_cli(store, "ingest", FIXTURE_PAPERS, FORMATS, FORMATS / "nested" / "README.md")
    return store, result


def test_partly_failing_ingest_succeeds_and_reports_what_was_skipped(filled_store):
    _, result = filled_store
    assert result.returncode == 0, result.stderr
    assert "40 added" in result.stdout and "(40 papers)" in result.stdout
    assert "5 file(s) read" in result.stdout
    assert "error: " in result.stderr and "README.md: unknown file type .md" in result.stderr
    assert "skipped: papers.csv:3: missing abstract" in result.stderr
    assert "skipped: papers_with_errors.jsonl:2: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_cut_short_by_a_closed_pipe_exits_quietly(filled_store):
    """`assistant search … | head -1`: the reader closed the pipe, which is not an error."""
    store, _ = filled_store
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_STORE_DIR"] = str(store)
    proc = subprocess.Popen(
        [_executable(), "search", "loss function", "-k", "10"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # closed before the first line is written: every write gets EPIPE
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=240) == 141, stderr
    assert "error" not in stderr.lower() and "Traceback" not in stderr


def test_reingest_json_report_embeds_nothing(filled_store):
    store, _ = filled_store
    result = run_cli(store, "ingest", FIXTURE_PAPERS, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["embedded"] == 0 and report["unchanged"] == 33 and report["added"] == 0
    assert report["errors"] == [] and report["problems"] == []


def test_search_json_then_show(filled_store):
    store, _ = filled_store
    result = run_cli(store, "search", "deep learning on radio-frequency fingerprints of wireless devices", "--json", "-k", "3")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert isinstance(hits, list) and len(hits) == 3
    for hit in hits:
        assert {"id", "title", "score", "url"} <= hit.keys()
        assert isinstance(hit["score"], float)
    assert hits[0]["title"].startswith("Disentangled Representation Learning for RF Fingerprint Extraction")
    assert [h["rank"] for h in hits] == [1, 2, 3]

    shown = run_cli(store, "show", hits[0]["id"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == hits[0]["title"]
    assert f"id: {hits[0]['id']}" in lines[1] and "sources: papers.jsonl" in lines[1]
    assert "radio-frequency fingerprint" in shown.stdout  # the abstract

    as_json = run_cli(store, "show", hits[0]["id"], "--json")
    paper = json.loads(as_json.stdout)
    assert paper["id"] == hits[0]["id"] and paper["abstract"] and paper["sources"] == ["papers.jsonl"]


def test_search_text_output_and_filters_in_process(filled_store, monkeypatch):
    """The same commands in-process (Typer's runner), reusing this process's embedder."""
    from typer.testing import CliRunner

    from assistant.cli import app

    store, _ = filled_store
    for key in [k for k in os.environ if k.startswith("ASSISTANT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(store))
    runner = CliRunner()
    result = runner.invoke(app, ["search", "nowcasting precipitation", "--has-code", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("  1. [")
    assert "Calibrated Uncertainty for Weather Nowcasting" in result.stdout
    assert "code: https://github.com/example/nowcast" in result.stdout
    bad_mode = runner.invoke(app, ["search", "x", "--mode", "telepathy"])
    assert bad_mode.exit_code == 1 and "--mode must be hybrid, dense, bm25 or sentence" in bad_mode.stderr


def test_stats_json(filled_store):
    store, _ = filled_store
    result = run_cli(store, "stats", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["papers"] == 40
    assert sorted(stats["source_files"]) == ["papers.bib", "papers.csv", "papers.json", "papers.jsonl", "papers_with_errors.jsonl"]
    assert stats["with_code"] >= 1


def test_show_unknown_id_is_an_error(filled_store):
    store, _ = filled_store
    result = run_cli(store, "show", "p-000000000000")
    assert result.returncode == 1
    assert "error: no paper with id 'p-000000000000'" in result.stderr


def test_ingest_fails_only_when_nothing_could_be_read(tmp_path: Path):
    result = run_cli(tmp_path / "store", "ingest", FORMATS / "nested" / "README.md", tmp_path / "missing.jsonl")
    assert result.returncode != 0
    assert "README.md: unknown file type" in result.stderr
    assert "missing.jsonl: no such file or directory" in result.stderr
    assert "0 file(s) read" in result.stdout
    assert "Traceback" not in result.stderr


def test_empty_store(tmp_path: Path):
    store = tmp_path / "store"
    search = run_cli(store, "search", "graph neural networks")
    assert search.returncode == 1
    assert "is empty: run `assistant ingest" in search.stderr
    stats = run_cli(store, "stats")
    assert stats.returncode == 0 and "papers:          0" in stats.stdout
    assert "The store is empty: run `assistant ingest PATH`." in stats.stdout


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query(tmp_path: Path, query: str):
    result = run_cli(tmp_path / "store", "search", query)
    assert result.returncode == 1
    assert "error: the query is empty" in result.stderr


def test_store_that_cannot_be_opened_is_one_clear_line(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli(blocker, "ingest", FIXTURE_PAPERS)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open the store at")
    assert str(blocker) in result.stderr
    assert "Traceback" not in result.stderr
    via_flag = run_cli(tmp_path / "unused", "stats", "--store", blocker / "sub")
    assert via_flag.returncode == 1 and "error: cannot open the store at" in via_flag.stderr
