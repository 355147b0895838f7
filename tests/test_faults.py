"""Faults in the real parts under the store, end to end: nothing already stored is lost,
every failure is one `error:` line naming the part and the fix, nothing hangs.

Real everything: Chroma stores in temporary directories and on real tmpfs mounts (a
read-only one, small full ones), real `assistant ingest` subprocesses killed with
SIGKILL/SIGTERM at chosen points, a real `chroma run` server frozen with SIGSTOP and
killed, a real FIFO, the real embedder. Subprocesses that must stop at a point print a
marker from a hook (the progress callback, or a wrapper around one Chroma or BM25 call)
and wait there; the test acts on the marker. Tests that mount tmpfs skip, saying why,
where mounting is not permitted. No timing assertions: a subprocess timeout only keeps
a hang from stalling the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assistant.errors import StoreError
from assistant.library import Library
from assistant.readers import read_paths
from assistant.records import Paper, earlier_paper_ids, legacy_paper_id, paper_id
from assistant.settings import Settings
from assistant.store import PaperStore
from assistant.text import evidence_sentences

from conftest import FIXTURE_PAPERS, FIXTURES, SHIPPED_CORPUS, free_port
from servers import assistant_server, start_chroma, stop
from test_batched_ingest import BATCH, _consistent

HANG_GUARD = 900  # seconds: only so that a hang fails the test instead of stalling the suite


def _env(store_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_STORE_DIR=str(store_dir), NO_COLOR="1", ASSISTANT_N_THREADS=os.environ.get("ASSISTANT_N_THREADS", "2"))
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, env=env, timeout=HANG_GUARD
    )


def _one_error_line(stderr: str) -> str:
    """The single `error: ...` line of a failed command, and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# --- tmpfs mounts -------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path):
    """mount(size) -> a fresh tmpfs of that size; unmounted afterwards (lazily: this
    process may still hold Chroma files there)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _remount(point: Path, options: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{options}", str(point)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _fill(point: Path) -> Path:
    """Write zeros to a file on `point` until the file system is full."""
    filler = point / "filler"
    with open(filler, "wb", buffering=0) as out:
        block = b"\0" * (1 << 20)
        try:
            while True:
                out.write(block)
        except OSError:
            pass
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


# --- subprocesses that stop at a chosen point ---------------------------------------------

# The real CLI, with one Chroma upsert (the Nth into PAUSE_COLLECTION) stopping to print
# PAUSED and wait for PAUSE_GO_FILE (or a signal) before going on.
_PAUSING_CLI = textwrap.dedent(
    """
    import os, sys, time
    import chromadb.api.models.Collection as chroma_collection

    collection, nth, go = os.environ["PAUSE_COLLECTION"], int(os.environ["PAUSE_ON_UPSERT"]), os.environ.get("PAUSE_GO_FILE", "")
    real_upsert = chroma_collection.Collection.upsert
    calls = {"n": 0}

    def upsert(self, *args, **kwargs):
        if self.name == collection:
            calls["n"] += 1
            if calls["n"] == nth:
                print("PAUSED", flush=True)
                while not (go and os.path.exists(go)):
                    time.sleep(0.1)
        return real_upsert(self, *args, **kwargs)

    chroma_collection.Collection.upsert = upsert
    from assistant.cli import main
    sys.argv = ["assistant", *sys.argv[1:]]
    main()
    """
)


def _start_paused_cli(args: list[str], env: dict[str, str], collection: str, nth: int, go: Path | None = None) -> subprocess.Popen:
    env = dict(env, PAUSE_COLLECTION=collection, PAUSE_ON_UPSERT=str(nth), PAUSE_GO_FILE=str(go or ""))
    process = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    _wait_for(process, "PAUSED")
    return process


def _wait_for(process: subprocess.Popen, marker: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    for line in process.stdout:
        if line.startswith(marker):
            return
        assert time.monotonic() < deadline
    process.wait()
    pytest.fail(f"the subprocess exited ({process.returncode}) before {marker}: {process.stderr.read()[-3000:]}")


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=HANG_GUARD)
    return process.returncode, out, err


# A Library-level ingest (batches of BATCH) that stops at one of five points, prints its
# marker and waits to be killed.
_KILL_CHILD = textwrap.dedent(
    """
    import sys, tempfile, time
    import assistant.lexical as lexical
    import assistant.readers as readers
    from assistant.library import Library
    from assistant.settings import Settings

    point, path = sys.argv[1], sys.argv[2]

    def stop(marker):
        print(marker, flush=True)
        time.sleep(600)

    library = Library(Settings())
    store = library.store

    if point == "reading":  # files being read: nothing written yet
        real_read = readers.read_file
        readers.read_file = lambda *a, **k: stop("STOP") or real_read(*a, **k)

    if point == "mid-write":  # the second batch's sentences are written, its papers not yet
        collection, calls = store._collection, {"n": 0}

        class Pausing:
            def upsert(self, **kwargs):
                calls["n"] += 1
                if calls["n"] == 2:
                    stop("STOP")
                return collection.upsert(**kwargs)

            def __getattr__(self, name):
                return getattr(collection, name)

        store._collection = Pausing()

    if point == "written-not-committed":  # every row of batch 2 is in Chroma; the pending mark is not cleared
        real_set_state = store._set_state

        def set_state(generation, seq, pending):
            if seq == 2 and not pending:
                stop("STOP")
            return real_set_state(generation, seq, pending)

        store._set_state = set_state

    if point == "bm25-save":  # batch 2 committed; its BM25 segment written, the manifest not yet swapped in
        real_mkstemp, saves = tempfile.mkstemp, {"n": 0}

        def mkstemp(*args, **kwargs):
            if kwargs.get("prefix") == ".manifest-":
                saves["n"] += 1
                if saves["n"] == 2:
                    stop("STOP")
            return real_mkstemp(*args, **kwargs)

        lexical.tempfile.mkstemp = mkstemp

    def progress(done, total, message):
        if point == "embed-first-batch" and message.startswith("embedding") and "batch 1 of" in message:
            stop("STOP")

    library.ingest([path], progress=progress)
    print("DONE", flush=True)
    """
)

# point -> papers committed when the ingest is killed there
_KILL_POINTS = {
    "reading": 0,
    "embed-first-batch": 0,
    "mid-write": BATCH,
    "written-not-committed": BATCH,
    "bm25-save": 2 * BATCH,
}


@pytest.mark.parametrize("point", list(_KILL_POINTS))
def test_sigkill_at_five_points_keeps_whole_batches_and_resumes(tmp_path: Path, point: str):
    store_dir = tmp_path / "store"
    env = _env(store_dir, ASSISTANT_INGEST_BATCH_SIZE=str(BATCH))
    process = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, point, str(FIXTURE_PAPERS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        _wait_for(process, "STOP")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=HANG_GUARD)
    assert process.returncode == -signal.SIGKILL

    settings = Settings(store_dir=store_dir, ingest_batch_size=BATCH)
    library = Library(settings)
    committed = _consistent(library)  # papers = sentence owners = BM25 ids, no pending mark: no half batch
    assert len(committed) == _KILL_POINTS[point]
    if committed:
        assert library.search("learning", 3, mode="bm25")

    # Re-run: committed papers are "unchanged" and not embedded again; the rest are added once.
    papers = read_paths([FIXTURE_PAPERS]).papers
    rest = [p for p in papers if p.id not in committed]
    calls = library.embedder.calls
    report = library.ingest([FIXTURE_PAPERS])
    assert (report.unchanged, report.added, report.embedded) == (len(committed), len(rest), len(rest))
    assert library.embedder.calls - calls == len(rest) + sum(len(evidence_sentences(p.abstract)) for p in rest)
    assert _consistent(Library(settings)) == {p.id for p in papers}
    assert library.count() == len(papers)  # no duplicates
    assert not (store_dir / ".rollback-reserve").exists()


def test_sigterm_during_the_write_rolls_back_like_ctrl_c(tmp_path: Path):
    store_dir = tmp_path / "store"
    env = _env(store_dir, ASSISTANT_INGEST_BATCH_SIZE=str(BATCH))
    # Stopped inside batch 2's write: its sentences are in Chroma, its papers not yet.
    process = _start_paused_cli(["ingest", str(FIXTURE_PAPERS)], env, "papers", nth=2)
    process.send_signal(signal.SIGTERM)
    code, _, err = _finish(process)
    assert code == 143
    line = _one_error_line(err)
    assert "ingest stopped (SIGTERM)" in line and "rolled back" in line and "run the same command again" in line

    # Rolled back by the process itself: no pending mark is left for the next reader.
    settings = Settings(store_dir=store_dir, ingest_batch_size=BATCH)
    assert PaperStore(settings).state().pending == ""
    assert len(_consistent(Library(settings))) == BATCH
    again = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert again.returncode == 0, again.stderr
    assert "8 unchanged" in again.stdout and "25 added" in again.stdout
    assert len(_consistent(Library(settings))) == 33


# --- two writers ---------------------------------------------------------------------------


def test_two_ingests_at_once_one_is_told_to_wait_and_the_store_stays_whole(tmp_path: Path):
    store_dir = tmp_path / "store"
    env = _env(store_dir, ASSISTANT_INGEST_BATCH_SIZE="16")
    big = tmp_path / "corpus-part.jsonl"
    corpus = read_paths([SHIPPED_CORPUS]).papers[:120]
    big.write_text("".join(json.dumps({"title": p.title, "abstract": p.abstract}) + "\n" for p in corpus))

    log = tmp_path / "first.log"
    with open(log, "w") as out:  # a file, not a pipe nobody reads while it runs
        first = subprocess.Popen([sys.executable, "-m", "assistant.cli", "ingest", str(big)], stdout=out, stderr=out, env=env, text=True)
    lock = store_dir / "ingest.lock"
    deadline = time.monotonic() + HANG_GUARD
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):  # the first holds the lock
        assert first.poll() is None, log.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert first.wait(timeout=HANG_GUARD) == 0, log.read_text()[-3000:]

    assert second.returncode != 0
    line = _one_error_line(second.stderr)
    assert f"another ingest is writing to {store_dir}" in line and f"process {first.pid}" in line
    settings = Settings(store_dir=store_dir)
    library = Library(settings)
    assert _consistent(library) == {p.id for p in corpus}
    assert library.search(corpus[7].title, k=1)[0].paper.id == corpus[7].id

    # Once the first is done, the second goes through.
    again = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert again.returncode == 0, again.stderr
    every = {p.id for p in corpus} | {p.id for p in read_paths([FIXTURE_PAPERS]).papers}
    assert _consistent(Library(settings)) == every
    search = _cli("search", "radio-frequency fingerprints of wireless devices", "-k", "1", env=env)
    assert search.returncode == 0 and "Disentangled Representation Learning for RF Fingerprint" in search.stdout


# --- read-only stores ------------------------------------------------------------------------


def _assert_reads_work_and_ingest_is_one_line(store_dir: Path, env: dict[str, str], prefix: tuple[str, ...] = ()) -> None:
    search = _cli("search", "radio-frequency fingerprints of wireless devices", "-k", "2", env=env, prefix=prefix)
    assert search.returncode == 0, search.stderr
    assert "Disentangled Representation Learning for RF Fingerprint" in search.stdout
    stats = _cli("stats", "--json", env=env, prefix=prefix)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["papers"] == 33
    ingest = _cli("ingest", str(FIXTURES / "hostile" / "greek-letter-titles.jsonl"), env=env, prefix=prefix)
    assert ingest.returncode == 1
    line = _one_error_line(ingest.stderr)
    assert f"cannot open the store at {store_dir} for writing" in line and "make it writable" in line
    if not prefix:  # in this process too
        library = Library(Settings(store_dir=store_dir))
        assert library.search("graph neural networks", k=3)
        assert library.catalog() and library.count() == 33


def test_store_on_a_read_only_mount_is_searched_and_ingest_says_why_not(tmpfs, tmp_path: Path):
    point = tmpfs("64m")
    store_dir = point / "store"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = _env(store_dir, TMPDIR=str(scratch))
    built = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert built.returncode == 0, built.stderr
    _remount(point, "ro")
    try:
        _assert_reads_work_and_ingest_is_one_line(store_dir, env)
        assert not list(scratch.glob("assistant-read-only-store-*"))  # the subprocesses' private copies are gone
    finally:
        _remount(point, "rw")


def test_store_made_read_only_by_permissions_is_searched(tmp_path: Path):
    """File modes: as root, the commands run without the capability that lets root
    ignore them (setpriv), so the modes bind there too."""
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        import shutil

        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file modes do not stop root writing (the tmpfs test covers it)")
        caps = "-dac_override,-dac_read_search"
        prefix = (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}")
    store_dir = tmp_path / "store"
    env = _env(store_dir)
    assert _cli("ingest", str(FIXTURE_PAPERS), env=env).returncode == 0
    paths = [store_dir, *store_dir.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        _assert_reads_work_and_ingest_is_one_line(store_dir, env, prefix)
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | 0o200)


# --- a full disk ---------------------------------------------------------------------------


def test_ingest_that_cannot_fit_is_refused_before_writing(tmpfs):
    point = tmpfs("8m")
    store_dir = point / "store"
    env = _env(store_dir)
    full = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert full.returncode == 1
    line = _one_error_line(full.stderr)
    assert f"the disk holding {store_dir} is full" in line and "free space and run again; nothing was changed" in line
    stats = _cli("stats", "--json", env=env)
    assert stats.returncode == 0 and json.loads(stats.stdout)["papers"] == 0

    _remount(point, "size=64m")  # space freed: the same command goes through
    again = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert again.returncode == 0, again.stderr
    assert len(_consistent(Library(Settings(store_dir=store_dir)))) == 33


def test_disk_filling_up_during_the_write_rolls_back_and_the_store_stays_readable(tmpfs, tmp_path: Path):
    point = tmpfs("64m")
    store_dir = point / "store"
    env = _env(store_dir, ASSISTANT_INGEST_BATCH_SIZE=str(BATCH))
    go = tmp_path / "go"
    # Inside batch 2's write (its sentences written), the disk is filled to the last byte.
    process = _start_paused_cli(["ingest", str(FIXTURE_PAPERS)], env, "papers", nth=2, go=go)
    filler = _fill(point)
    go.touch()
    code, _, err = _finish(process)
    assert code == 1
    line = _one_error_line(err)
    assert f"the disk holding {store_dir} is full: free space and run again" in line
    assert "batch 1 (8 papers) committed before it filled up are kept, nothing of batch 2 was written" in line

    # With the disk still full: batch 1 whole, batch 2 gone, searches work.
    settings = Settings(store_dir=store_dir, ingest_batch_size=BATCH)
    library = Library(settings)
    assert len(_consistent(library)) == BATCH
    assert library.search("learning", k=3)
    assert _cli("search", "learning", "-k", "1", env=env).returncode == 0

    filler.unlink()
    again = _cli("ingest", str(FIXTURE_PAPERS), env=env)
    assert again.returncode == 0, again.stderr
    assert len(_consistent(Library(settings))) == 33


# --- FIFOs and unreadable paths ------------------------------------------------------------------


def test_fifo_and_unreadable_paths_are_skipped_and_the_rest_is_ingested(tmp_path: Path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "inner-pipe.jsonl")
    (folder / "one.jsonl").write_text(json.dumps({"title": "Walrus Haul-Out Counts", "abstract": "We count walruses on ice."}) + "\n")
    locked = tmp_path / "locked.jsonl"
    if os.geteuid() == 0:
        locked.symlink_to("/proc/self/mem")  # a regular file that cannot be read, even by root (EIO)
    else:
        locked.write_text("{}\n")
        locked.chmod(0)
    env = _env(tmp_path / "store")
    done = _cli("ingest", str(fifo), str(locked), str(folder), str(FIXTURE_PAPERS), env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert any(f"{fifo}: not a regular file" in e for e in errors), errors
    assert any("inner-pipe.jsonl: not a regular file" in e for e in errors), errors
    assert any(f"{locked}: cannot read" in e for e in errors), errors
    assert len(errors) == 3
    assert "2 file(s) read: 34 added" in done.stdout


# --- a Chroma server that freezes or dies ------------------------------------------------------


@pytest.fixture
def chroma_server(tmp_path: Path):
    """A real `chroma run` of our own (this module freezes and kills it): url, process,
    and a function restarting it on the same data and port."""
    port = free_port()
    data = tmp_path / "chroma-server"
    data.mkdir()
    state: dict = {}

    def start() -> subprocess.Popen:
        state["server"] = start_chroma(data, port)
        state["process"] = state["server"].process
        return state["process"]

    start()
    yield {"url": state["server"].url, "state": state, "start": start}
    stop(state["server"])


def _each_command_fails_in_one_line(tmp_path: Path, url: str, *fragments: str) -> None:
    """search, stats and ingest against the Chroma server at `url` each exit 1 with one
    error line holding every fragment."""
    env = _env(tmp_path / "cli", ASSISTANT_CHROMA_URL=url, ASSISTANT_CHROMA_TIMEOUT_S="2")
    for command in (["search", "graph neural networks"], ["stats"], ["ingest", str(FIXTURE_PAPERS)]):
        done = _cli(*command, env=env)
        assert done.returncode == 1
        line = _one_error_line(done.stderr)
        assert all(fragment in line for fragment in fragments), line


def test_frozen_chroma_server_times_out_with_one_line_and_loses_nothing(chroma_server, tmp_path: Path):
    url, server = chroma_server["url"], chroma_server["state"]["process"]
    settings = Settings(store_dir=tmp_path / "local", chroma_url=url, chroma_timeout_s=2, ingest_batch_size=BATCH)
    library = Library(settings)
    library.ingest([FIXTURE_PAPERS])
    assert library.search("graph neural networks", k=3)

    server.send_signal(signal.SIGSTOP)  # frozen mid-session
    try:
        with pytest.raises(StoreError, match=rf"the Chroma server at {url} did not answer within 2 s"):
            library.search("graph neural networks", k=3)
        _each_command_fails_in_one_line(tmp_path, url, url, "ASSISTANT_CHROMA_TIMEOUT_S")
    finally:
        server.send_signal(signal.SIGCONT)
    assert library.count() == 33 and library.search("graph neural networks", k=3)

    # Frozen in the middle of an ingest's write: one line; once it runs again, the next
    # client rolls the half batch back and every committed paper is there.
    env = _env(tmp_path / "cli", ASSISTANT_CHROMA_URL=url, ASSISTANT_CHROMA_TIMEOUT_S="2", ASSISTANT_COLLECTION="frozen-mid-write",
               ASSISTANT_INGEST_BATCH_SIZE=str(BATCH))
    go = tmp_path / "go"
    process = _start_paused_cli(["ingest", str(FIXTURE_PAPERS)], env, "frozen-mid-write", nth=2, go=go)
    server.send_signal(signal.SIGSTOP)
    try:
        go.touch()
        code, _, err = _finish(process)
    finally:
        server.send_signal(signal.SIGCONT)
    assert code == 1
    line = _one_error_line(err)
    assert f"the Chroma server at {url} did not answer within 2 s" in line and "rolls the unfinished batch back" in line
    other = Library(Settings(store_dir=tmp_path / "other", chroma_url=url, collection="frozen-mid-write", ingest_batch_size=BATCH))
    assert len(_consistent(other)) == BATCH
    assert len(_consistent(Library(settings))) == 33  # the first collection untouched


def test_the_chat_shows_a_frozen_chroma_server_as_a_message_and_recovers(chroma_server, tmp_path: Path):
    """The UI over a Chroma server that freezes mid-session: the chat says which part failed
    and how to fix it, within the timeout, and answers again once the server runs."""
    from gradio_client import Client

    url, server = chroma_server["url"], chroma_server["state"]["process"]
    Library(Settings(store_dir=tmp_path / "local", chroma_url=url)).ingest([FIXTURE_PAPERS])
    env = _env(tmp_path / "local", ASSISTANT_CHROMA_URL=url, ASSISTANT_CHROMA_TIMEOUT_S="2")
    question = "How can a graph solver guarantee that its iterations converge to a unique fixed point?"
    with assistant_server([], env, tmp_path / "serve.log") as ui:
        session = Client(ui.url, verbose=False)
        assert "[1]" in _chat_text(session.predict(question, api_name="/ask")[1][-1])
        server.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            answer = _chat_text(session.predict(question, api_name="/ask")[1][-1])
            assert time.monotonic() - started < 60  # a few 2 s timeouts, not a hang
        finally:
            server.send_signal(signal.SIGCONT)
        assert f"the Chroma server at {url} did not answer within 2 s" in answer and "Traceback" not in answer, answer
        assert "[1]" in _chat_text(session.predict(question, api_name="/ask")[1][-1])


def _chat_text(message) -> str:
    content = message["content"] if isinstance(message, dict) else message
    return content if isinstance(content, str) else json.dumps(content)


def test_killed_chroma_server_is_one_line_and_a_restart_has_everything(chroma_server, tmp_path: Path):
    url, server = chroma_server["url"], chroma_server["state"]["process"]
    settings = Settings(store_dir=tmp_path / "local", chroma_url=url, chroma_timeout_s=2)
    library = Library(settings)
    library.ingest([FIXTURE_PAPERS])
    assert library.search("graph neural networks", k=3)

    server.kill()  # gone mid-session
    server.wait()
    with pytest.raises(StoreError, match=rf"the Chroma server at {url}"):
        library.search("graph neural networks", k=3)
    _each_command_fails_in_one_line(tmp_path, url, f"cannot reach the Chroma server at {url}", "chroma run")

    chroma_server["start"]()  # same data, same port
    assert len(_consistent(Library(settings))) == 33


# --- ids from the earlier ASCII-only id function ---------------------------------------------------


def test_papers_stored_under_legacy_ascii_ids_are_moved_not_duplicated(tmp_path: Path):
    files = [FIXTURES / "hostile" / "chinese-titles.jsonl", FIXTURES / "hostile" / "greek-letter-titles.jsonl"]
    papers = read_paths(files).papers
    assert len(papers) == 4
    chinese, alpha = papers[0], papers[2]
    assert legacy_paper_id(chinese.title) == legacy_paper_id(papers[1].title)  # the old collisions
    assert legacy_paper_id(alpha.title) == legacy_paper_id(papers[3].title)

    # An old store: what the earlier id function left (one paper per colliding id).
    settings = Settings(store_dir=tmp_path / "store")
    old = Library(settings)
    legacy = [
        Paper(title=p.title, abstract=p.abstract, id=legacy_paper_id(p.title), sources=[p.sources[0]]) for p in (chinese, alpha)
    ]
    old.ingest_papers(legacy)
    assert old.store.ids() and set(old.store.ids()) == {p.id for p in legacy}

    library = Library(settings)
    calls = library.embedder.calls
    report = library.ingest(files)
    assert report.rekeyed == 2 and report.unchanged == 2 and report.added == 2
    new = [p for p in papers if p.id not in (chinese.id, alpha.id)]
    assert library.embedder.calls - calls == len(new) + sum(len(evidence_sentences(p.abstract)) for p in new)  # moved, not re-embedded
    stored = _consistent(Library(settings))
    assert stored == {paper_id(p.title) for p in papers}  # today's ids, no leftover legacy id, no duplicate
    assert library.get(chinese.id).title == chinese.title and library.get(alpha.id).title == alpha.title
    assert library.search(alpha.title, k=1, mode="bm25")[0].paper.id == alpha.id

    again = library.ingest(files)
    assert (again.rekeyed, again.unchanged, again.added) == (0, 4, 0)


def test_papers_stored_under_ids_that_dropped_combining_marks_are_moved(tmp_path: Path):
    """The id function before 2026-11-24 dropped every combining mark, so かき and かぎ shared
    an id; a store keeping one of them under it gets today's id on the next ingest."""
    file = FIXTURES / "hostile" / "marked-script-titles.jsonl"
    papers = read_paths([file]).papers
    kaki, kagi = papers[0], papers[1]
    old_id = next(i for i in earlier_paper_ids(kagi.title) if not i.startswith("p-da39"))  # not the ASCII-only one
    assert old_id == kaki.id  # the mark-free title's id is unchanged, and was also かぎ's
    settings = Settings(store_dir=tmp_path / "store")
    Library(settings).ingest_papers([Paper(title=kagi.title, abstract=kagi.abstract, id=old_id, sources=[kagi.sources[0]])])

    library = Library(settings)
    report = library.ingest([file])
    assert report.rekeyed == 1 and report.unchanged == 1 and report.added == len(papers) - 1
    assert _consistent(Library(settings)) == {p.id for p in papers}  # no leftover old id
    assert library.get(kaki.id).abstract == kaki.abstract and library.get(kagi.id).abstract == kagi.abstract


# --- a vector index Chroma left half-saved ----------------------------------------------------


def test_a_half_saved_vector_index_is_one_line_and_repair_rebuilds_every_paper(tmp_path: Path):
    """Chroma 1.5 saves a collection's HNSW index in place, without fsync, every 1,000 rows,
    and purges its log up to the save: a kill during the save (seen at 18,000 papers) leaves
    an index it can neither load nor rebuild. The papers are still in its database, so every
    command names `assistant repair`, and repair rebuilds the store with every paper intact."""
    store_dir = tmp_path / "store"
    papers = read_paths([SHIPPED_CORPUS]).papers[:150]  # > 1,000 sentences: Chroma has saved the index
    library = Library(Settings(store_dir=store_dir))
    library.ingest_papers(papers)
    before = {id: paper.to_dict() for id, paper in library.store.papers(library.store.ids()).items()}
    assert len(before) == 150 and library.store.sentence_count() > 1000
    del library
    # The save cut short: the id map truncated mid-write (as in chroma-core/chroma#4218).
    maps = sorted((store_dir / "chroma").glob("*/index_metadata.pickle"), key=lambda p: p.stat().st_size)
    assert maps, "Chroma saved no index: the store is too small for this test"
    biggest = maps[-1]
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])

    env = _env(store_dir)
    broken = _cli("search", "network pruning", env=env)
    assert broken.returncode == 1
    line = _one_error_line(broken.stderr)
    assert "is damaged" in line and f"assistant repair --store {store_dir}" in line and "no committed paper is lost" in line

    # A repair killed while it rebuilds (beside the store) leaves the store as it was.
    killed = subprocess.Popen([sys.executable, "-m", "assistant.cli", "repair"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + HANG_GUARD
    while not (store_dir / ".repair" / "chroma").exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.communicate(timeout=HANG_GUARD)
    assert not list(store_dir.glob("chroma.damaged-*"))
    assert "is damaged" in _one_error_line(_cli("search", "network pruning", env=env).stderr)

    repaired = _cli("repair", env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert "from its 150 committed papers" in repaired.stdout
    assert not (store_dir / ".repair").exists()
    assert list(store_dir.glob("chroma.damaged-*")), "the damaged directory is kept for the user"
    library = Library(Settings(store_dir=store_dir))
    assert {id: paper.to_dict() for id, paper in library.store.papers(library.store.ids()).items()} == before
    assert len(_consistent(library)) == 150
    assert library.search("network pruning", 3)
    assert _cli("search", "network pruning", env=env).returncode == 0


def test_repair_leaves_out_the_batch_a_killed_ingest_left_unfinished(tmp_path: Path):
    """Repair reads the papers straight from Chroma's database, so it must undo an unfinished
    batch itself, from the journal, as the next reader would: killed after batch 2's rows
    were written but before its commit, the rebuilt store holds batch 1 alone."""
    from assistant.repair import committed_papers

    store_dir = tmp_path / "store"
    env = _env(store_dir, ASSISTANT_INGEST_BATCH_SIZE=str(BATCH))
    process = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, "written-not-committed", str(FIXTURE_PAPERS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        _wait_for(process, "STOP")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=HANG_GUARD)
    papers, undone, _ = committed_papers(store_dir / "chroma" / "chroma.sqlite3", "papers")
    assert len(papers) == BATCH and undone == BATCH  # batch 2's rows are in the database, but not committed

    repaired = _cli("repair", env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert f"{BATCH} paper(s) of an unfinished batch undone" in repaired.stdout
    library = Library(Settings(store_dir=store_dir, ingest_batch_size=BATCH))
    assert _consistent(library) == {p.id for p in papers}
    assert _cli("ingest", str(FIXTURE_PAPERS), env=env).returncode == 0  # and the ingest completes on it
    assert len(_consistent(Library(Settings(store_dir=store_dir)))) == 33


def test_local_chroma_reads_run_on_one_thread_and_keep_their_errors(tmp_path: Path):
    """A local store's reads all run on one worker thread (Chroma keeps native memory per
    calling thread); a read made from that thread runs in place, and a failure reaches the
    caller as the same one-line StoreError."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from assistant.chroma_client import LOCAL_CHROMA_THREAD

    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE_PAPERS])
    seen = []
    real_get = library.store._collection._target.get

    def get(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real_get(*args, **kwargs)

    library.store._collection._target.get = get
    with ThreadPoolExecutor(4) as pool:
        assert all(len(found) == 3 for found in pool.map(lambda _: library.store.papers(library.store.ids()[:3]), range(8)))
    assert set(seen) == {"chroma-local"}
    assert LOCAL_CHROMA_THREAD.run(lambda: LOCAL_CHROMA_THREAD.run(threading.current_thread)).name == "chroma-local"  # re-entrant

    def fail(*args, **kwargs):
        raise RuntimeError("Error executing plan: Error deserializing pickle file: eval error at offset 3: EOF")

    library.store._collection._target.get = fail
    with pytest.raises(StoreError, match="is damaged.*assistant repair"):
        library.store.papers(["p-1"])
