"""Batched, resumable ingest; incremental BM25; the Library tab's server-side paging.

Real everything: Chroma stores in temporary directories (and a real `chroma run` server),
the real embedder, ingest subprocesses really killed with SIGKILL, the real Gradio app
over HTTP. A small `ingest_batch_size` gives the 33-paper fixture several batches.
No timing assertions: embedding work is counted with the embedder's `calls`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bm25s
import numpy as np
import pytest

from assistant.lexical import MAX_SEGMENTS, LexicalIndex, index_dir, tokenize
from assistant.library import Library
from assistant.readers import read_paths
from assistant.records import Paper
from assistant.settings import Settings
from assistant.text import evidence_sentences

from conftest import FIXTURE_PAPERS
from servers import assistant_server
from test_chroma_server import chroma_url  # noqa: F401 - the real `chroma run` fixture

BATCH = 8  # 33 fixture papers -> 5 committed batches


def _consistent(library: Library) -> set[str]:
    """Papers = sentence owners = BM25 ids (after whatever recovery opening the index does);
    returns the paper ids."""
    lexical = library._lexical_index()
    store = library.store
    papers = set(store.ids())
    owners = {meta["paper_id"] for meta in store._sentences.get(include=["metadatas"])["metadatas"]}
    assert owners == papers, (sorted(owners - papers), sorted(papers - owners))
    bm25 = set(lexical.ids) if lexical is not None else set()
    assert bm25 == papers, (sorted(bm25 - papers), sorted(papers - bm25))
    assert len(lexical.ids if lexical else []) == len(papers)
    # Every stored sentence belongs to a stored paper, and each paper has all of its sentences.
    stored = store.papers(sorted(papers))
    sentences = store.sentences(sorted(papers))
    for id, paper in stored.items():
        assert sentences[id][0] == evidence_sentences(paper.abstract), id
    assert not store.state().pending
    return papers


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from assistant.library import Library
    from assistant.settings import Settings

    mode = sys.argv[1]
    library = Library(Settings())
    store = library.store

    if mode == "write":  # stop (and wait to be killed) inside the second batch's write
        collection = store._collection
        commits = {"n": 0}
        real_upsert = collection.upsert

        class Pausing:
            def upsert(self, **kwargs):
                if commits["n"] == 1:
                    print("IN-WRITE", flush=True)
                    time.sleep(600)
                return real_upsert(**kwargs)

            def __getattr__(self, name):
                return getattr(collection, name)

        store._collection = Pausing()

    def progress(done, total, message):
        if message.startswith("committed"):
            if mode == "write":
                commits["n"] += 1
            print("COMMITTED", done, flush=True)
            if mode == "embed":
                time.sleep(0.2)  # let the parent kill us while the next batch embeds

    library.ingest([sys.argv[2]], progress=progress)
    print("DONE", flush=True)
    """
)


def _kill_after(store_dir: Path, mode: str, marker: str) -> None:
    env = dict(os.environ, ASSISTANT_STORE_DIR=str(store_dir), ASSISTANT_INGEST_BATCH_SIZE=str(BATCH))
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode, str(FIXTURE_PAPERS)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    try:
        deadline = time.monotonic() + 600
        for line in process.stdout:
            if line.startswith(marker):
                break
            assert not line.startswith("DONE"), "the ingest finished before it could be killed"
            assert time.monotonic() < deadline
        else:
            pytest.fail(f"the ingest subprocess exited ({process.wait()}) before {marker}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode, marker", [("embed", "COMMITTED"), ("write", "IN-WRITE")], ids=["while-embedding", "mid-write"])
def test_killed_ingest_keeps_committed_batches_and_resumes_without_re_embedding(tmp_path: Path, mode: str, marker: str):
    store_dir = tmp_path / "store"
    _kill_after(store_dir, mode, marker)
    settings = Settings(store_dir=store_dir, ingest_batch_size=BATCH)

    # After the kill: exactly the first batch, whole (the half-written second one rolled back).
    library = Library(settings)
    committed = _consistent(library)
    assert len(committed) == BATCH
    hits = library.search("learning", 3, mode="bm25")
    assert hits and all(h.paper.id in committed for h in hits)

    # Re-run: committed papers are unchanged and not embedded again; the rest are.
    papers = read_paths([FIXTURE_PAPERS]).papers
    rest = [p for p in papers if p.id not in committed]
    calls = library.embedder.calls
    report = library.ingest([FIXTURE_PAPERS])
    assert (report.unchanged, report.added, report.embedded) == (BATCH, len(rest), len(rest))
    assert library.embedder.calls - calls == len(rest) + sum(len(evidence_sentences(p.abstract)) for p in rest)
    assert _consistent(Library(settings)) == {p.id for p in papers}
    hits = library.search("deep learning on radio-frequency fingerprints of wireless devices", k=1)
    assert hits[0].paper.title.startswith("Disentangled Representation Learning for RF Fingerprint Extraction")


def test_small_ingest_is_one_batch_and_progress_counts_every_paper(tmp_path: Path):
    library = Library(Settings(store_dir=tmp_path / "store"))  # default batch size: one batch
    seen: list[tuple[int, int, str]] = []
    library.ingest([FIXTURE_PAPERS], progress=lambda d, t, m: seen.append((d, t, m)))
    assert library.store.state().seq == 1  # one commit
    assert seen[-1][:2] == (33, 33) and seen[-1][2] == "committed"
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)  # monotonic: a bar never jumps back
    _consistent(library)


def test_batches_commit_in_turn_and_progress_names_them(tmp_path: Path):
    library = Library(Settings(store_dir=tmp_path / "store", ingest_batch_size=BATCH))
    seen: list[tuple[int, int, str]] = []
    library.ingest([FIXTURE_PAPERS], progress=lambda d, t, m: seen.append((d, t, m)))
    commits = [(d, m) for d, _, m in seen if m.startswith("committed")]
    assert commits == [(min(BATCH * i, 33), f"committed batch {i} of 5") for i in range(1, 6)]
    assert all(t == 33 for _, t, _ in seen)
    assert library.store.state().seq == 5
    lexical = library._lexical_index()
    assert len(lexical.segments) == 5  # BM25 grew by one segment per batch, never rebuilt
    _consistent(library)


# --- BM25 in segments ---------------------------------------------------------------------------


def _fixture_rows():
    papers = read_paths([FIXTURE_PAPERS]).papers
    return [p.id for p in papers], [p.document for p in papers], [p.title for p in papers]


def test_one_segment_scores_exactly_like_bm25s():
    ids, documents, titles = _fixture_rows()
    index = LexicalIndex.build(ids, documents, titles, "g")
    reference = bm25s.BM25()
    reference.index(tokenize(documents), show_progress=False)
    for query in ("graph neural networks", "pruning the hessian of deep networks", "radio frequency fingerprint"):
        ours = dict(index.search(query, len(ids)))
        terms = [t for t in tokenize([query])[0] if t in reference.vocab_dict]
        theirs = reference.get_scores(terms)
        for row, id in enumerate(ids):
            assert ours.get(id, 0.0) == pytest.approx(float(theirs[row]), abs=1e-4), (query, id)


def test_segments_and_compaction_score_like_one_index():
    """Papers added in many small segments (some re-added with new text) score exactly as
    one index over the final texts would: global statistics, newest version wins."""
    ids, documents, titles = _fixture_rows()
    final_docs = list(documents)
    final_docs[3] = "Zanzibarian quokka telemetry replaces this abstract entirely."
    whole = LexicalIndex.build(ids, final_docs, titles, "g")
    grown = LexicalIndex.build(ids[:5], documents[:5], titles[:5], "g")
    for start in range(5, len(ids), 3):
        grown.add(ids[start : start + 3], documents[start : start + 3], titles[start : start + 3])
        assert len(grown.segments) <= MAX_SEGMENTS
    grown.add([ids[3]], [final_docs[3]], [titles[3]])
    assert sorted(grown.ids) == sorted(ids)
    for query in ("quokka telemetry", "graph neural networks", "pruning networks", "spectral clustering of graphs"):
        expected = whole.search(query, 10)
        got = grown.search(query, 10)
        assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-5), query
        assert grown.ceiling(query) == pytest.approx(whole.ceiling(query), abs=1e-5)
        assert grown.title_ceiling(query) == pytest.approx(whole.title_ceiling(query), abs=1e-5)
    assert grown.search("quokka", 1)[0][0] == ids[3]


@pytest.mark.parametrize("slice_postings", [1, 5, 1 << 20])
def test_merged_postings_equal_postings_built_from_the_kept_rows(monkeypatch, slice_postings: int):
    """The in-place merge (in slices, to bound its memory) gives each term the column a
    fresh build over the kept rows, in part order, would give it."""
    import random

    from assistant import postings

    monkeypatch.setattr(postings, "MERGE_SLICE", slice_postings)
    rng = random.Random(slice_postings)
    words = [f"w{i}" for i in range(60)]
    for _ in range(20):
        parts = [[[rng.choice(words) for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(1, 4))]
        keeps = [np.array([rng.random() < 0.7 for _ in part], dtype=bool) for part in parts]
        merged = postings.Postings.merge([(postings.Postings.build(part), keep) for part, keep in zip(parts, keeps)])
        kept = [tokens for part, keep in zip(parts, keeps) for tokens, alive in zip(part, keep) if alive]
        reference = postings.Postings.build(kept)
        assert np.array_equal(merged.lengths, reference.lengths)
        for term in merged.vocab:
            got, want = merged.column(term), reference.column(term)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), term


def test_ingest_batches_do_not_reload_the_bm25_index_they_keep_in_memory(tmp_path: Path, monkeypatch):
    """Reading the whole index back from disk after each committed batch, only to keep the
    one in memory, held two copies of it (150 MB at 100,000 papers) for nothing."""
    loads = []
    real_load = LexicalIndex.load.__func__
    monkeypatch.setattr(LexicalIndex, "load", classmethod(lambda cls, directory: loads.append(directory) or real_load(cls, directory)))
    library = Library(Settings(store_dir=tmp_path / "store", ingest_batch_size=BATCH))
    library.ingest([FIXTURE_PAPERS])
    assert len(loads) <= 1  # the first batch may find an index on disk; none after it
    assert sorted(library._lexical_index().ids) == sorted(library.store.ids())
    fresh = Library(Settings(store_dir=tmp_path / "store"))  # another process reads what was saved
    assert sorted(fresh._lexical_index().ids) == sorted(library.store.ids())


def test_a_search_in_a_fresh_process_does_not_rewrite_the_saved_bm25_index(tmp_path: Path):
    """Every fresh `assistant search` rewrote the manifest (every id: 3 MB at 100,000
    papers) though nothing had changed, and could put back an older one over a writer's."""
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE_PAPERS])
    manifest = index_dir(tmp_path / "store", library.store.location, library.settings.collection) / "manifest.json"
    saved = (manifest.stat().st_ino, manifest.stat().st_mtime_ns)
    reader = Library(Settings(store_dir=tmp_path / "store"))
    assert reader.search("network pruning", 1, mode="bm25")
    assert (manifest.stat().st_ino, manifest.stat().st_mtime_ns) == saved
    library.ingest_papers([Paper(title="Marsupial rest cycles", abstract="Collars logged quokka sleep telemetry.", sources=["d.txt"])])
    assert (manifest.stat().st_ino, manifest.stat().st_mtime_ns) != saved  # a commit still saves it


def test_a_store_directory_moved_elsewhere_keeps_its_bm25_index(tmp_path: Path, monkeypatch):
    """The index was named after the store's absolute path: a store moved to another disk
    rebuilt it from every row (a minute at 100,000 papers) and left the old one behind."""
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE_PAPERS])
    shutil.move(tmp_path / "store", tmp_path / "moved")
    rebuilt = []
    real_build = LexicalIndex.build.__func__
    monkeypatch.setattr(LexicalIndex, "build", classmethod(lambda cls, *a: rebuilt.append(1) or real_build(cls, *a)))
    moved = Library(Settings(store_dir=tmp_path / "moved"))
    assert moved.search("network pruning", 1, mode="bm25")
    assert not rebuilt
    assert len(list((tmp_path / "moved" / "bm25").iterdir())) == 1


def test_a_small_ingest_adds_a_segment_findable_at_once_with_comparable_scores(tmp_path: Path):
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE_PAPERS])
    before = library._lexical_index()
    segments = len(before.segments)
    quokka = Paper(
        title="Marsupial rest cycles", abstract="Collars logged quokka sleep telemetry and graph neural networks on Rottnest Island.",
        sources=["d.txt"],
    )
    library.ingest_papers([quokka])
    lexical = library._lexical_index()
    assert len(lexical.segments) == segments + 1  # extended, not rebuilt
    assert library.search("quokka sleep telemetry", 1, mode="bm25")[0].paper.id == quokka.id
    assert library.search("quokka sleep telemetry", 1)[0].paper.id == quokka.id
    # Scores on the same scale as one index built from scratch over every row.
    rows = library.store.all_rows()
    scratch = LexicalIndex.build(rows.ids, rows.documents, [m["title"] for m in rows.metadatas], "x")
    for query in ("quokka sleep telemetry", "graph neural networks", "network pruning"):
        assert np.allclose([s for _, s in lexical.search(query, 10)], [s for _, s in scratch.search(query, 10)], atol=1e-5)
        assert lexical.ceiling(query) == pytest.approx(scratch.ceiling(query), abs=1e-5)
    # Another process loads the persisted segments as they are.
    reopened = Library(Settings(store_dir=tmp_path / "store"))
    loaded = reopened._lexical_index()
    assert len(loaded.segments) == segments + 1 and sorted(loaded.ids) == sorted(lexical.ids)


def test_several_clients_of_one_chroma_server_keep_bm25_in_step(chroma_url: str, tmp_path: Path):  # noqa: F811
    papers = read_paths([FIXTURE_PAPERS]).papers
    settings = dict(chroma_url=chroma_url, collection="batched-papers", ingest_batch_size=BATCH)
    first = Library(Settings(store_dir=tmp_path / "one", **settings))
    second = Library(Settings(store_dir=tmp_path / "two", **settings))
    first.ingest_papers(papers[:20])
    assert first.search("learning", 1, mode="bm25")
    second.ingest_papers(papers[20:])  # the other client: first's BM25 must catch up
    late = papers[25]
    assert first.search(late.title, 1, mode="bm25")[0].paper.id == late.id
    assert _consistent(first) == {p.id for p in papers}
    assert _consistent(second) == {p.id for p in papers}
    # first caught up by reading the rows committed since its last batch, not everything.
    assert len(first._lexical_index().segments) > 1


def test_killed_ingest_through_a_chroma_server_is_rolled_back_by_another_client(chroma_url: str, tmp_path: Path):  # noqa: F811
    env = dict(
        os.environ, ASSISTANT_STORE_DIR=str(tmp_path / "child"), ASSISTANT_CHROMA_URL=chroma_url,
        ASSISTANT_COLLECTION="killed-papers", ASSISTANT_INGEST_BATCH_SIZE=str(BATCH),
    )
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "write", str(FIXTURE_PAPERS)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    try:
        for line in process.stdout:
            if line.startswith("IN-WRITE"):
                break
        else:
            pytest.fail("the ingest subprocess exited before its second write")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    other = Library(Settings(store_dir=tmp_path / "other", chroma_url=chroma_url, collection="killed-papers", ingest_batch_size=BATCH))
    assert other.store.state().pending  # the dead writer's mark...
    assert len(_consistent(other)) == BATCH  # ...and its half batch are gone once a client opens the index
    report = other.ingest([FIXTURE_PAPERS])
    assert (report.unchanged, report.added) == (BATCH, 33 - BATCH)
    assert len(_consistent(other)) == 33


# --- the Library tab, paged on the server ----------------------------------------------------------


@pytest.fixture(scope="module")
def paged_server(fixture_store_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`assistant serve` over a copy of the fixture store plus 40 more papers (2 pages)."""
    store = tmp_path_factory.mktemp("paged") / "store"
    shutil.copytree(fixture_store_dir, store)
    extra = [
        Paper(title=f"Synthetic survey number {i} of walrus colonies", abstract=f"We count walrus colony {i} from aerial images.",
              sources=["extra.jsonl"])
        for i in range(40)
    ]
    Library(Settings(store_dir=store)).ingest_papers(extra)
    log_path = store.parent / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_STORE_DIR=str(store), NO_COLOR="1")
    with assistant_server([], env, log_path, timeout=240) as server:
        yield {"url": server.url, "store": store, "extra": extra}


def test_library_tab_pages_and_searches_on_the_server(paged_server):
    from gradio_client import Client

    from assistant.ui.library import PAGE_SIZE

    client = Client(paged_server["url"], verbose=False)
    first = client.predict("", "All sources", False, 1, api_name="/library_page")
    assert (first["page"], first["pages"], first["total"]) == (1, 2, 73)
    assert len(first["rows"]) == len(first["ids"]) == PAGE_SIZE == 50
    second = client.predict("", "All sources", False, 2, api_name="/library_page")
    assert len(second["rows"]) == 23 and "page 2 of 2" in second["note"]
    every = set(first["ids"]) | set(second["ids"])
    assert len(every) == 73  # the two pages cover the store once, no overlap
    beyond = client.predict("", "All sources", False, 9, api_name="/library_page")
    assert beyond["page"] == 2  # clamped to the last page

    # Search: papers holding every word (stemmed), found through BM25's postings.
    walrus = client.predict("walrus colonies", "All sources", False, 1, api_name="/library_page")
    assert walrus["total"] == 40 and len(walrus["rows"]) == 40
    assert all("walrus" in row[0].lower() for row in walrus["rows"])
    one = client.predict("colony 17", "All sources", False, 1, api_name="/library_page")
    assert one["rows"][0][0] == "Synthetic survey number 17 of walrus colonies"
    # Filters are Chroma where clauses: a source, code links.
    source = client.predict("", "extra.jsonl", False, 1, api_name="/library_page")
    assert source["total"] == 40 and {r[3] for r in source["rows"]} == {"extra.jsonl"}
    coded = client.predict("", "All sources", True, 1, api_name="/library_page")
    assert coded["total"] > 0 and all(r[2] == "yes" for r in coded["rows"])
    # Nothing contains the words: the closest papers by meaning instead.
    near = client.predict("marine mammals counted from planes", "All sources", False, 1, api_name="/library_page")
    assert "closest papers by meaning" in near["note"] and near["rows"]
    # The search box's own endpoint answers with the first page, too.
    table, note = client.predict("walrus", api_name="/library_search")
    assert len(table["data"]) == 40 and "40 of 73" in note
