"""Opening Chroma, and its failures as one-line StoreErrors.

Kept apart from the store's write protocol (store.py) because it is about the parts
underneath: a Chroma server that is gone or frozen (every request times out after
`chroma_timeout_s`; Chroma 1.x has no setting for it), a read-only local store (searched
from a private copy, since Chroma writes to its database on every open), and the Ctrl-C
and SIGTERM that must not cut a rollback short.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import queue
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from urllib.parse import urlparse

from .errors import AssistantError, StoreError
from .settings import Settings

_MB = 1024 * 1024
_SNAPSHOT_LIMIT = 256 * _MB  # largest read-only store searched from a private copy


def open_client(settings: Settings):
    """The Chroma client of the store, and whether it is a read-only store's copy."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        return http_client(settings, chroma_settings), False
    path = settings.chroma_dir
    if path.is_dir() and not os.access(path, os.W_OK):
        return read_only_copy(settings, chroma_settings), True
    from chromadb.api.shared_system_client import SharedSystemClient

    # Chroma hands every client of a path in one process the same system, whose vector
    # index does not see other processes' writes since it was loaded: a store opened now
    # must see the store as it is on disk now (an older PaperStore keeps its own system,
    # and follows commits itself, see PaperStore._follow). A system that failed to start
    # is dropped the same way.
    SharedSystemClient._identifier_to_system.pop(str(path), None)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings), False
    except Exception as exc:
        SharedSystemClient._identifier_to_system.pop(str(path), None)
        read_only = "readonly database" in str(exc) or getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES)
        if read_only and path.is_dir():
            return read_only_copy(settings, chroma_settings), True
        raise StoreError(f"cannot open the store at {path}: {exc}") from exc


def http_client(settings: Settings, chroma_settings):
    """An HttpClient whose every request gives up after `chroma_timeout_s`. Chroma 1.x
    builds its httpx session with no timeout and no setting for one, and its constructor
    already makes requests: it runs in a thread we stop waiting for, and the session's
    timeout is set before the client is handed out."""
    import chromadb
    import httpx

    url = urlparse(settings.chroma_url)
    if not url.hostname:
        raise StoreError(f"--chroma-url {settings.chroma_url!r} is not a URL like http://host:port")
    timeout = settings.chroma_timeout_s
    outcome: dict = {}

    def connect() -> None:
        try:
            outcome["client"] = chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:  # noqa: BLE001 - reported below, in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=connect, name="chroma-connect", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise StoreError(server_timeout_message(settings))
    if "error" in outcome:
        raise StoreError(
            f"cannot reach the Chroma server at {settings.chroma_url} ({reason(outcome['error'])}): "
            "start it (`chroma run --path DIR --port PORT`) or fix --chroma-url"
        ) from outcome["error"]
    client = outcome["client"]
    client._server._session.timeout = httpx.Timeout(timeout)
    return client


def server_timeout_message(settings: Settings) -> str:
    return (
        f"the Chroma server at {settings.chroma_url} did not answer within {settings.chroma_timeout_s:g} s "
        "(stopped, frozen or overloaded): restart it (`chroma run`) or raise ASSISTANT_CHROMA_TIMEOUT_S; "
        "what it stored is kept"
    )


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


def read_only_copy(settings: Settings, chroma_settings):
    """Open a read-only store through a private copy, removed at exit. Chroma 1.x
    writes to its sqlite database whenever it opens one (a row in `acquire_write`), and
    takes only a file name, not a read-only URI, so it cannot open a read-only store in
    place; a store too large to copy gets a message naming the fix instead."""
    import chromadb

    path = settings.chroma_dir
    fix = f"make {settings.store_dir} writable, or copy it somewhere writable and pass that as --store"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    if size > _SNAPSHOT_LIMIT:
        raise StoreError(
            f"the store at {path} is read-only and Chroma writes to its database even to read it; "
            f"it is too large ({size // _MB} MB) to copy aside: {fix}"
        )
    scratch = Path(tempfile.mkdtemp(prefix="assistant-read-only-store-"))
    atexit.register(remove_tree, scratch)
    try:
        shutil.copytree(path, scratch / "chroma")
        for copied in [scratch / "chroma", *(scratch / "chroma").rglob("*")]:  # the modes came along: the copy must be writable
            copied.chmod(copied.stat().st_mode | 0o700 if copied.is_dir() else copied.stat().st_mode | 0o600)
        return chromadb.PersistentClient(path=str(scratch / "chroma"), settings=chroma_settings)
    except Exception as exc:
        remove_tree(scratch)
        raise StoreError(f"the store at {path} is read-only and could not be copied aside to read it ({reason(exc)}): {fix}") from exc


def remove_tree(path: Path) -> None:
    """rmtree that also removes what a copied read-only directory holds (it made its
    parent writable first), and never raises: it runs at exit."""

    def retry(function, target, _) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), 0o700)
            function(target)

    with contextlib.suppress(OSError):
        shutil.rmtree(path, onerror=retry)


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class OneThread:
    """Runs calls on one long-lived worker thread. Chroma's local (Rust) backend keeps
    native memory per calling thread that it never gives back: a server whose chats run
    on a pool of worker threads grew ~200 MB under load where the same searches made from
    one thread grew ~100 MB (benchmarks/load.py; README, "Under load"). Calls made on the
    worker itself (a call inside a call) run in place."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, function: Callable, *args, **kwargs):
        if threading.current_thread() is self._thread:
            return function(*args, **kwargs)
        self._ensure_started()
        future: Future = Future()
        self._queue.put((future, function, args, kwargs))
        return future.result()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            future, function, args, kwargs = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                future.set_exception(exc)


LOCAL_CHROMA_THREAD = OneThread("chroma-local")


def in_place(function: Callable, *args, **kwargs):
    return function(*args, **kwargs)


def runner(settings: Settings) -> Callable:
    """Where a store's Chroma calls run (see Guarded)."""
    return in_place if settings.chroma_url else LOCAL_CHROMA_THREAD.run


class Guarded:
    """A Chroma client or collection whose failures that are the parts' fault (a Chroma
    server that is gone or frozen, a read-only or full disk) are raised as one-line
    StoreErrors; anything else passes through unchanged. Collections it hands out are
    guarded too. `run` is where reads run: a local store's all go to one thread
    (OneThread), a server's run in the caller's thread (each request has its own timeout
    and must not queue behind a frozen one). Writes always run in the caller's thread, so
    a signal that stops an ingest interrupts the write itself, as it did before."""

    WRITES = frozenset({"add", "upsert", "update", "delete", "modify", "create_collection", "delete_collection"})

    def __init__(self, target, translate: Callable[[Exception], StoreError | None], run: Callable = in_place) -> None:
        self._target = target
        self._translate = translate
        self._run = run

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            from chromadb.api.models.Collection import Collection

            try:
                result = value(*args, **kwargs) if name in self.WRITES else self._run(value, *args, **kwargs)
            except AssistantError:
                raise
            except Exception as exc:
                error = self._translate(exc)
                if error is None:
                    raise
                raise error from exc
            return Guarded(result, self._translate, self._run) if isinstance(result, Collection) else result

        return call


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while old rows are put back: a second interrupt must not
    cut the rollback short (the job is stopping anyway). Only the main thread has signal
    handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if handler is not None:
            previous[number] = signal.signal(number, lambda *_: None)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
