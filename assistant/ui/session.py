"""What every handler shares: the one Library, per-request Settings, Stop, errors, progress.

Stop is a flag (a threading.Event) that the running answer's generation checks between
tokens, not a Gradio cancel: the answer ends within a token, frees the model, keeps
what was verified and says "Stopped". Each question the browser asks carries a run id
(made by assets/ui.js), and Stop names the run it means, so that

- Stop pressed after Ask but before the server started that answer still stops it
  (the id is remembered until the answer starts), and
- Stop or Clear pressed with nothing running never affects a later question (a new
  question has a new id), even when the next question's request overtakes it on a busy
  server: a Stop naming an answer that has already ended stops nothing. API clients send
  no id: their Stop only stops what runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AssistantError, InputError
from ..library import Library
from ..settings import Settings

log = logging.getLogger("assistant.ui")

_PENDING_STOP_TTL = 60.0  # seconds a Stop for a not-yet-started answer is remembered
_ENDED_REMEMBERED = 8  # ended answers remembered per session (a late Stop names the last one)
_SESSIONS_REMEMBERED = 10_000  # sessions whose ended answers are remembered (least recently ended dropped)


@dataclass
class Run:
    """One running answer of one session."""

    id: str
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    cleared: bool = False  # Clear (not Stop) was pressed before it started: show nothing


class Runtime:
    """The Library behind every handler, and which answer of which session is running."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}  # session -> its running answer
        self._pending: dict[tuple[str, str], tuple[float, bool]] = {}  # (session, run id) -> (when, cleared)
        # session -> ids of its last answers that ended, for the sessions that ended one most recently
        self._ended: OrderedDict[str, deque[str]] = OrderedDict()

    @property
    def generation_slots(self) -> int:
        """Answers and summaries running at once (see :func:`generation_slots`)."""
        return generation_slots(self.library.settings)

    def start_run(self, session: str, run_id: str = "") -> Run:
        """Register the session's answer; its stop flag is already set when Stop (or
        Clear) named this run before it got going."""
        with self._lock:
            run = Run(run_id)
            pending = self._pending.pop((session, run_id), None) if run_id else None
            if pending is not None:
                run.stop.set()
                run.cleared = pending[1]
            self._runs[session] = run
            return run

    def request_stop(self, session: str, run_id: str = "", *, clear: bool = False) -> threading.Event | None:
        """Stop the session's running answer; returns an event set once it has ended
        (None when nothing was running). `run_id` names the answer the browser last
        asked: if it has not started yet, it will stop as soon as it does."""
        with self._lock:
            now = time.monotonic()
            for key, (when, _) in list(self._pending.items()):
                if now - when > _PENDING_STOP_TTL:
                    del self._pending[key]
            run = self._runs.get(session)
            if run_id and run_id in self._ended.get(session, ()):
                return None  # that answer is over; what runs now (if anything) was asked after it
            if run_id and (run is None or run.id != run_id):
                self._pending[(session, run_id)] = (now, clear)
            if run is None:
                return None
            run.stop.set()
            return run.ended

    def end_run(self, session: str, run: Run) -> None:
        with self._lock:
            if self._runs.get(session) is run:
                del self._runs[session]
            if run.id:
                self._ended.setdefault(session, deque(maxlen=_ENDED_REMEMBERED)).append(run.id)
                self._ended.move_to_end(session)
                while len(self._ended) > _SESSIONS_REMEMBERED:
                    self._ended.popitem(last=False)  # a server up for months keeps bounded memory
            run.ended.set()

    def settings_for(self, k=None, temperature=None, max_tokens=None, model=None, llm_url=None) -> Settings:
        """The library's settings with one request's values from the Settings tab."""
        base = self.library.settings
        update: dict[str, Any] = {
            "model": (str(model).strip() or None) if model is not None else base.model,
            "llm_url": (str(llm_url).strip() or None) if llm_url is not None else base.llm_url,
        }
        if k:
            update["k"] = int(k)
        if temperature is not None:
            update["temperature"] = float(temperature)
        if max_tokens:
            update["max_tokens"] = int(max_tokens)
        return Settings.validated({**base.model_dump(), **update})  # an API client cannot pass k=1000

    def model_refusal(self, model=None, llm_url=None) -> str | None:
        """Why a request may not use this model file or llama.cpp server (see guard.py)."""
        from .guard import model_refusal

        return model_refusal(self.library.settings, model, llm_url)

    def checked_settings(self, k=None, temperature=None, max_tokens=None, model=None, llm_url=None) -> Settings:
        """settings_for, refusing a model or server the operator did not allow at start-up
        (an InputError the handlers show readably), before anything is loaded or contacted."""
        problem = self.model_refusal(model, llm_url)
        if problem:
            raise InputError(problem)
        return self.settings_for(k, temperature, max_tokens, model, llm_url)


def generation_slots(settings: Settings) -> int:
    """How many answers and summaries (Gradio's "chat" concurrency group) run at once.

    An in-process GGUF has one llama.cpp context: it writes for one request at a time,
    so a second running answer would only wait on the model's lock while its page says
    "writing…". With one slot it waits in Gradio's queue instead, first come first
    served, and its page shows its place and ETA. A llama.cpp server (--llm-url) may
    serve several requests in parallel (llama-server --parallel), so it gets more."""
    return 4 if settings.llm_url else 1


def session_id(request: Any) -> str:
    """The browser tab (or API client) a request comes from."""
    return getattr(request, "session_hash", None) or "default"


def friendly_error(exc: BaseException) -> str:
    """A one-line message for the user. An AssistantError says what to fix; anything
    else is a bug: its traceback goes to the server log, the user gets its name."""
    if isinstance(exc, AssistantError):
        return str(exc) or type(exc).__name__
    log.error("unexpected error in the UI", exc_info=exc)
    return f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details"


def show_error(exc: BaseException, prefix: str = "") -> str:
    """friendly_error, also shown as a toast at once; returns the message."""
    import gradio as gr

    message = friendly_error(exc)
    gr.Warning(f"{prefix}{message}")
    return message


def gradio_progress(progress: Any) -> Callable[[int, int, str], None]:
    """Adapt the package's progress callbacks, ``(done, total, message)``, to a
    gr.Progress: counts give Gradio a bar and an ETA."""

    def report(done: int, total: int, message: str) -> None:
        try:
            progress((int(done), int(total) or None), desc=message or None, unit="")
        except Exception:  # noqa: BLE001 - the display must never break the work
            pass

    return report
