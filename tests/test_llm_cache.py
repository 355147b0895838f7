"""Models tried one after another (the UI's Settings tab) do not pile up in memory: only
`loaded_models` stay loaded. Real llama.cpp loads of the packaged GGUF, told apart by n_ctx."""

from __future__ import annotations

from assistant import llm
from assistant.settings import Settings


def test_only_the_most_recently_used_models_stay_loaded():
    base = Settings(loaded_models=2)
    first = llm.get_llm(base.model_copy(update={"n_ctx": 512}))
    second = llm.get_llm(base.model_copy(update={"n_ctx": 640}))
    assert llm.get_llm(base.model_copy(update={"n_ctx": 512})) is first  # reused, and now the most recent
    third = llm.get_llm(base.model_copy(update={"n_ctx": 768}))
    loaded = list(llm._models.values())
    assert len(loaded) == 2 and first in loaded and third in loaded and second not in loaded
    assert llm.get_llm(base.model_copy(update={"n_ctx": 512})) is first
