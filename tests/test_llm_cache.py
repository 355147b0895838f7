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


def test_output_printed_while_a_model_loads_in_the_background_is_not_lost():
    """A fresh `ask` loads the model in a background thread while it retrieves; an answer
    that needs no model (an abstention) or an error message is printed meanwhile.
    llama-cpp-python points file descriptors 1 and 2 at /dev/null while it loads, which
    swallowed those lines. A real subprocess prints numbered lines through a real load."""
    import subprocess
    import sys

    script = (
        "import threading, time\n"
        "from assistant import llm\n"
        "from assistant.settings import Settings\n"
        "settings = Settings(n_ctx=512)\n"
        "loader = threading.Thread(target=lambda: llm.get_llm(settings))\n"
        "loader.start()\n"
        "n = 0\n"
        "while loader.is_alive() or n < 50:\n"
        "    print(f'line {n}', flush=True); n += 1; time.sleep(0.002)\n"
        "loader.join()\n"
        "print(f'printed {n}', flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    printed = int(lines[-1].split()[1])
    assert printed > 50, "the load was too quick to overlap the printing"
    assert lines[:-1] == [f"line {i}" for i in range(printed)]
