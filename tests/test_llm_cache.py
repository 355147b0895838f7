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


def test_every_generation_frees_its_native_sampler_chain():
    """llama-cpp-python leaves each generation's native sampler (~1.3 MB) in a reference
    cycle: without a full garbage collection a server grew ~130 MB per 100 answers. With
    the collector off, no sampler may still hold native memory after its generation, even
    one whose reader stopped after the first token."""
    import gc

    from llama_cpp._internals import LlamaSampler

    model = llm.get_llm(Settings(loaded_models=2, n_ctx=512))
    gc.collect()
    gc.disable()
    try:
        for i in range(4):
            assert "".join(model.stream(llm.Request(prompt=f"Question {i}: what is a neural network?\nAnswer:", max_tokens=8)))
        stopped = model.stream(llm.Request(prompt="A list of fruits: apple,", max_tokens=32))
        next(stopped)
        stopped.close()
        holding = [o for o in gc.get_objects() if isinstance(o, LlamaSampler) and o.sampler is not None]
    finally:
        gc.enable()
    assert holding == []
