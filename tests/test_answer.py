"""The answer pipeline with the real default model (Gemma 3 270M via llama.cpp) on a real store.

Model-written text is never asserted word for word: tests check what the pipeline
guarantees whatever the model writes (citations resolve, are supported, abstain when
nothing is relevant, injected instructions have no effect).
"""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from assistant import generation, prompts
from assistant.answer import ANSWER_PROMPT, AnswerPipeline, Turn, answer_question, standalone_query
from assistant.citations import Verifier, parse_cited_sentences, render
from assistant.cli import app
from assistant.evidence import EvidenceSentence, SourceSet
from assistant.llm import default_model_path
from assistant.records import paper_id

from servers import llama_server

OBA = paper_id("Optimal Brain Apoptosis")
CGS = paper_id("Convergent Graph Solvers")
POLY = paper_id("PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions")
TIDAL = paper_id("Tidal Energy Harvesting with Flexible Piezoelectric Membranes")


def assert_well_cited(result) -> None:
    """Every [n] in the answer resolves to a reference, and only cited papers are listed."""
    markers = {n for _, numbers in parse_cited_sentences(result.answer) for n in numbers}
    assert markers, result.answer
    assert markers == {r.n for r in result.references}
    assert all(c.support >= 0.0 for c in result.citations)
    given = {h.paper.id for h in result.hits}
    assert {r.id for r in result.references} <= given


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which pruning method computes the Hessian-vector product directly for each parameter?", OBA),
        ("How can a graph neural network compute fixed points with guaranteed convergence?", CGS),
        ("Which loss function treats cross-entropy and focal loss as special cases of a polynomial expansion?", POLY),
    ],
)
def test_answer_cites_the_paper_that_contains_the_answer(fixture_library, question, expected):
    result = answer_question(fixture_library, question)
    assert not result.abstained
    assert expected in {r.id for r in result.references}, result.to_dict()
    assert_well_cited(result)
    # Each citation carries the source sentence that supports it, quoted from that abstract.
    for citation in result.citations:
        paper = fixture_library.get(citation.id)
        assert citation.evidence in paper.abstract


def test_off_topic_question_abstains_and_names_nearest_titles(fixture_library):
    result = answer_question(fixture_library, "What is a good recipe for sourdough bread with rye flour?")
    assert result.abstained
    assert result.citations == [] and result.references == []
    assert "no paper" in result.answer
    assert result.hits, "the nearest titles are shown"


def test_injected_instruction_in_an_abstract_is_ignored(fixture_library):
    result = answer_question(fixture_library, "How much power does the flexible piezoelectric membrane harvest from tidal currents?")
    assert not result.abstained
    assert TIDAL in {r.id for r in result.references}
    assert "PWNED" not in result.answer
    for source in result.sources.sources.values():
        assert not any("Ignore previous instructions" in s for s in source.sentences)


def test_fabricated_and_unsupported_citations_are_removed(fixture_library):
    hits = fixture_library.search("Optimal Brain Apoptosis pruning Hessian", 3)
    sources = SourceSet([h.paper for h in hits], fixture_library.embedder)
    oba_n = next(n for n, s in sources.sources.items() if s.paper.id == OBA)
    other_n = next(n for n in sources.numbers() if n != oba_n)
    text = (
        f"Optimal Brain Apoptosis computes the Hessian-vector product directly for each parameter [{oba_n}]. "
        "Bananas are a good source of potassium [9]. "
        f"OBA is a pruning method based on the Hessian [{other_n}]."
    )
    checked = Verifier(sources, fixture_library.settings.support_threshold).check(text)
    cited = render(checked, sources)
    assert cited.removed_citations >= 1
    assert "Bananas are a good source of potassium." in cited.dropped
    assert "[9]" not in cited.text
    assert [r.id for r in cited.references][0] == OBA
    # The wrongly cited OBA sentence was re-attributed to OBA, the paper that supports it.
    assert all(c.id == OBA for c in cited.citations)
    assert {n for _, numbers in cited.sentences for n in numbers} == {r.n for r in cited.references}


def test_a_sentence_naming_a_paper_it_does_not_cite_is_dropped(fixture_library):
    """A claim that names PolyLoss but cites Optimal Brain Apoptosis credits PolyLoss with
    something nobody checked against its abstract, however well OBA supports the rest."""
    hits = fixture_library.search("Optimal Brain Apoptosis pruning Hessian PolyLoss classification loss", 5)
    sources = SourceSet([h.paper for h in hits], fixture_library.embedder)
    numbers = {s.paper.id: n for n, s in sources.sources.items()}
    assert {OBA, POLY} <= set(numbers), "both papers are given"
    claim = "Optimal Brain Apoptosis computes the Hessian-vector product directly for each parameter"
    verifier = Verifier(sources, fixture_library.settings.support_threshold)
    honest, naming = verifier.check(f"{claim} [{numbers[OBA]}]. {claim}, as PolyLoss does [{numbers[OBA]}].")
    assert honest.cited == [numbers[OBA]]
    assert naming.cited == [] and numbers[OBA] in naming.removed
    assert verifier.names_uncited(f"{claim}, as PolyLoss does", [numbers[OBA]]) == [numbers[POLY]]


def test_a_name_moved_into_another_sentence_s_claim_is_dropped(fixture_library):
    """A small model rewords "By decomposing the Hessian …, we propose a highly efficient
    technique …" into "…, ViT-B proposes …": the abstract has every word of it (ViT-B is one
    of its test models) and the meaning is close, but the claim is now about something else."""
    hits = fixture_library.search("Optimal Brain Apoptosis pruning Hessian", 3)
    sources = SourceSet([h.paper for h in hits], fixture_library.embedder)
    n = next(n for n, s in sources.sources.items() if s.paper.id == OBA)
    start = "By decomposing the Hessian matrix across network layers,"
    claim = "a highly efficient technique for computing the second-order Taylor expansion of parameters"
    verifier = Verifier(sources, fixture_library.settings.support_threshold)
    honest, moved = verifier.check(f"{start} the authors propose {claim} [{n}]. {start} ViT-B proposes {claim} [{n}].")
    assert honest.cited == [n]
    assert moved.support[n][0] >= verifier.threshold  # as close in meaning as the honest one
    assert moved.cited == [] and n in moved.removed


def test_follow_up_is_resolved_against_the_conversation(fixture_library):
    pipeline = AnswerPipeline(fixture_library)
    first = pipeline.answer("Which pruning method computes the Hessian-vector product directly?")
    assert OBA in {r.id for r in first.references}
    history = [first.to_turn()]
    assert "Optimal Brain Apoptosis" in standalone_query("What datasets was it validated on?", history)
    follow_up = pipeline.answer("What datasets was it validated on?", history)
    assert not follow_up.abstained
    assert [r.id for r in follow_up.references] == [OBA]
    # A question that is not a follow-up is left alone.
    assert standalone_query("What is PolyLoss?", [Turn("q", "a", ["Some title"])]) == "What is PolyLoss?"


def test_a_follow_up_asking_for_other_work_gets_the_paper_that_answers_it(fixture_library):
    """"What about …, anything there?" after a pruning answer asks for other work: the paper
    that answers those words is cited, not the pruning paper again; a follow-up about the
    pruning paper itself stays with it."""
    pipeline = AnswerPipeline(fixture_library)
    first = pipeline.answer("Which pruning method computes the Hessian-vector product directly?")
    assert [r.id for r in first.references] == [OBA]
    history = [first.to_turn()]
    for question, expected in [
        ("and what about choosing the learning rate schedule, anything there?", "When, Why and How Much?"),
        ("how about reconstructing microscopy images, anything on that?", "ML-SIM"),
    ]:
        follow_up = pipeline.answer(question, history)
        assert not follow_up.abstained and follow_up.references, question
        assert follow_up.references[0].title.startswith(expected) and OBA not in {r.id for r in follow_up.references}, question
    assert [r.id for r in pipeline.answer("What datasets was it validated on?", history).references] == [OBA]


def test_a_follow_up_is_answered_by_the_sentence_its_own_words_ask_for(corpus_library):
    """A follow-up is retrieved with the cited paper's title added. The title's words fit
    every sentence of that paper, and alone they chose "One of the key components within
    diffusion models is the UNet for noise prediction" for "how much faster is it?". The
    follow-up's own words, and the figure a "how much" question asks for, choose the
    sentence that answers (on benchmarks/followups.jsonl the answering sentence is cited
    in 9 of 12 calibration and 8 of 13 evaluation follow-ups, against 6 and 4)."""
    pipeline = AnswerPipeline(corpus_library)
    first = pipeline.answer("is there anything on making image generation with diffusion models faster?")
    assert first.references[0].title.startswith("Faster Diffusion")
    follow_up = pipeline.answer("how much faster is it?", [first.to_turn()])
    assert [r.title.split(":")[0] for r in follow_up.references] == ["Faster Diffusion"]
    assert "41%" in follow_up.citations[0].evidence, follow_up.answer


def test_evidence_for_the_model_is_ranked_by_the_follow_up_order_and_keeps_its_relevance(fixture_library):
    """An instruct model's follow-up reads the evidence the follow-up's own words choose
    (`order_by`), as a composed answer does; each sentence still carries the relevance the
    extractive fallback's floor was calibrated on, not the ranking score."""
    query = "What does PolyLoss propose for classification losses?"
    vector = fixture_library.embedder.embed_one(query)
    sources = SourceSet.from_hits(fixture_library.search(query, 2), fixture_library.embedder)

    def relevance(sentence, sentence_vector):
        return float(sentence_vector @ vector)

    by_relevance = sources.select_evidence(vector, 1, relevance)
    lowest = sources.ranked_sentences(vector, relevance)[-1]
    by_order = sources.select_evidence(vector, 1, relevance, order_by=lambda sentence, _: float(sentence == lowest.text))
    assert by_relevance[0].text != lowest.text
    assert [e.text for e in by_order] == [lowest.text]
    assert by_order[0].relevance == pytest.approx(lowest.relevance) and by_order[0].relevance < by_relevance[0].relevance


def test_streaming_yields_verified_text_and_timings(fixture_library):
    results = list(AnswerPipeline(fixture_library).stream("What does PolyLoss propose for classification losses?"))
    final = results[-1]
    assert {"retrieval_s", "total_s"} <= set(final.timings)
    assert_well_cited(final)


def _evidence_values(kept: list[EvidenceSentence]) -> dict:
    lines = "\n".join(f"[{e.n}] {prompts.quote(e.text)}" for e in kept)
    return {"evidence": lines, "question": "What do these papers propose?"}


def test_generation_fits_the_prompt_by_dropping_the_least_relevant_evidence(fixture_library):
    """With a 1024-token generation limit only about 1000 of Gemma's 2048 context tokens are
    left for the prompt: the lowest-scored evidence goes first, the rest keeps its order."""
    llm = fixture_library.llm
    settings = fixture_library.settings.with_overrides(max_tokens=1024)
    sentences = [s for paper in fixture_library.catalog() for s in paper.abstract.split(". ") if len(s) > 40][:60]
    # every item numbered apart, from 101 (so its line is found, not the few-shot example's); scores shuffled
    evidence = [EvidenceSentence(101 + i, text, ((i * 37) % 60) / 60) for i, text in enumerate(sentences)]
    budget = generation.prompt_budget(llm, 1024)
    assert budget == llm.n_ctx - 1024 - generation.MARGIN_TOKENS
    assert generation.prompt_tokens(llm, generation.build(llm, settings, ANSWER_PROMPT, _evidence_values(evidence))) > budget

    request = generation.fit(llm, settings, ANSWER_PROMPT, evidence, _evidence_values, priority=lambda e: e.score)
    assert generation.prompt_tokens(llm, request) <= budget
    assert request.max_tokens == 1024 and request.stop == ["###", "\n"] and request.seed == settings.seed
    shown = [e for e in evidence if f"[{e.n}] " in request.prompt]
    dropped = [e for e in evidence if e not in shown]
    assert shown and dropped
    assert min(e.score for e in shown) > max(e.score for e in dropped)
    positions = [request.prompt.index(f"[{e.n}] ") for e in shown]
    assert positions == sorted(positions)  # kept evidence stays in its order
    # A cap no evidence fits still keeps the best item.
    tiny = generation.fit(llm, settings, ANSWER_PROMPT, evidence, _evidence_values, priority=lambda e: e.score, cap=10)
    assert [e for e in evidence if f"[{e.n}] " in tiny.prompt] == [max(evidence, key=lambda e: e.score)]
    # Without a priority the last items go first.
    ordered = generation.fit(llm, settings, ANSWER_PROMPT, evidence, _evidence_values, cap=budget // 2)
    kept = [e.n for e in evidence if f"[{e.n}] " in ordered.prompt]
    assert kept == list(range(101, 101 + len(kept))) and len(kept) < len(shown)


def test_stop_event_ends_the_stream_and_frees_the_model(fixture_library):
    llm = fixture_library.llm
    settings = fixture_library.settings.with_overrides(max_tokens=48)
    unstopped = generation.Prompt("answer_system.txt", "answer_user.txt", "answer_completion.txt")  # no stop words
    request = generation.build(llm, settings, unstopped, _evidence_values([EvidenceSentence(1, "PolyLoss views losses as polynomial expansions.", 1.0)]))
    assert len(list(generation.stream(llm, request))) > 3

    stop = threading.Event()
    tokens = []
    for token in generation.stream(llm, request, stop):
        tokens.append(token)
        stop.set()
    assert len(tokens) == 1
    assert not llm._lock.locked()  # the model is free at once, not after max_tokens
    assert generation.generate(llm, request, stop) == ""  # already stopped: nothing is generated

    # The answer pipeline stops the same way and keeps a verified answer, composed from the abstracts.
    result = AnswerPipeline(fixture_library).answer("What does PolyLoss propose?", stop=stop)
    assert result.raw == "" and result.mode == "composed"
    assert_well_cited(result)


def test_empty_question_is_a_clear_error(fixture_library):
    with pytest.raises(ValueError, match="empty"):
        answer_question(fixture_library, "   ")


def test_cli_ask_json(fixture_store_dir, monkeypatch):
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    outcome = CliRunner().invoke(app, ["ask", "--json", "What does PolyLoss propose?"])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.output)
    assert {"answer", "abstained", "citations", "references", "timings"} <= set(data)
    assert all({"n", "id", "title", "sentence", "support"} <= set(c) for c in data["citations"])
    assert POLY in {r["id"] for r in data["references"]}


def test_cli_ask_prints_the_final_answer_once_then_references(fixture_store_dir, monkeypatch):
    """Piped output holds the final answer only: with the base model the streamed sentences
    are usually replaced by a composed answer, and a reader must not get both."""
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    outcome = CliRunner().invoke(app, ["ask", "What does PolyLoss propose?"])
    assert outcome.exit_code == 0, outcome.output
    assert "References" in outcome.output and "[1] PolyLoss" in outcome.output
    final = json.loads(CliRunner().invoke(app, ["ask", "--json", "What does PolyLoss propose?"]).output)["answer"]
    shown = outcome.output.split("\nReferences\n")[0].strip()
    assert shown == final.strip()


def test_cli_shows_only_the_answer_that_replaced_the_streamed_one(capsys):
    """The printing alone, fed a stream whose last answer replaces what streamed before (a
    base model's sentences, then the composed answer): piped output must hold the final
    answer once, not the abandoned sentences above it."""
    from types import SimpleNamespace

    from assistant.cli.answer import _print_streamed

    class Replacing:
        def stream(self, question, history):
            yield SimpleNamespace(answer="Streamed first sentence [1].", notice="")
            yield SimpleNamespace(answer="Streamed first sentence [1]. And a second [2].", notice="")
            yield SimpleNamespace(answer="The composed answer [1].", notice="")

    final = _print_streamed(Replacing(), "q", None)
    assert final.answer == "The composed answer [1]."
    assert capsys.readouterr().out == "The composed answer [1].\n"


def test_missing_model_file_is_a_clear_error(fixture_store_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    outcome = CliRunner().invoke(app, ["ask", "--model", str(tmp_path / "nope.gguf"), "What does PolyLoss propose?"])
    assert outcome.exit_code == 1
    assert "model file not found" in outcome.output


def test_http_backend_against_a_real_llama_cpp_server(fixture_store_dir, tmp_path):
    """The same pipeline through `python -m llama_cpp.server` over its OpenAI-compatible API."""
    from assistant.library import Library
    from assistant.settings import Settings

    model = default_model_path(Settings().model_cache_dir)
    with llama_server(model, tmp_path / "server.log") as server:
        library = Library(Settings(store_dir=fixture_store_dir, llm_url=server.url))
        assert "127.0.0.1" in library.llm.name and not library.llm.chat
        result = answer_question(library, "Which pruning method computes the Hessian-vector product directly?")
        assert not result.abstained
        assert OBA in {r.id for r in result.references}
        assert result.raw, "the server generated text"
        assert_well_cited(result)


def test_a_new_question_that_merely_says_it_is_not_bound_to_the_last_papers(fixture_library):
    """'... so it rises well' sounds like a follow-up; the papers just cited do not answer
    it, so it is asked on its own: abstained on with the nearest titles of a fresh search."""
    pipeline = AnswerPipeline(fixture_library)
    first = pipeline.answer("Which pruning method computes the Hessian-vector product directly?")
    assert OBA in {r.id for r in first.references}
    question = "What is a good recipe for sourdough bread so it rises well?"
    result = pipeline.answer(question, [first.to_turn()])
    assert result.abstained
    assert result.query == question  # not rewritten around the previous answer's paper
    assert len(result.hits) > 1
