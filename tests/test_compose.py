"""Composed answers and self-contained sentences, on the real fixture store.

The rewrite rules are checked on sentences of the kind abstracts are made of; composed
answers on real retrieval (real Chroma, real embedder), and through the whole pipeline
with the real default model: whatever it writes, what is displayed names its papers,
cites each, never opens by pointing back at an unseen abstract, and is verified.
"""

from __future__ import annotations

import pytest

from assistant import relevance
from assistant.answer import AnswerPipeline
from assistant.citations import parse_cited_sentences
from assistant.compose import compose_answer, wants_several
from assistant.evidence import SourceSet
from assistant.records import normalize_title, paper_id
from assistant.rewrite import has_dangling_opening, lower_first, refers_back, self_contained, short_name

OBA = paper_id("Optimal Brain Apoptosis")
KDE = paper_id("KDEformer: Accelerating Transformers via Kernel Density Estimation")


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("We propose a framework that trains under 256KB.", "The authors propose a framework that trains under 256KB."),
        ("However, existing methods fail on small devices.", "Existing methods fail on small devices."),
        ("To this end, we validate our models on ImageNet.", "The authors validate their models on ImageNet."),
        ("In this paper, we show that our method is faster.", "The authors show that their method is faster."),
        ("This paper proposes two compression methods.", "*X* proposes two compression methods."),
        ("Our approach achieves a 2x speedup.", "The approach of *X* achieves a 2x speedup."),
        ("To address these limitations, we introduce QLoRA.", "The authors introduce QLoRA."),
        ("Here we present MiniCPM, a small model.", "The authors present MiniCPM, a small model."),
        ("For example, Mish beats ReLU by 1%.", "Mish beats ReLU by 1%."),
    ],
)
def test_sentences_are_made_self_contained(sentence, expected):
    assert self_contained(sentence, "*X*") == expected
    assert not has_dangling_opening(expected)


@pytest.mark.parametrize("sentence", ["This is hard because memory is scarce.", "These results suggest scaling helps.", "It also works on video.", "They report gains."])
def test_sentences_that_point_back_are_refused(sentence):
    assert self_contained(sentence, "*X*") is None


def test_names_and_capitals():
    assert short_name("MiniCPM: Unveiling the Potential of Small Language Models") == "MiniCPM"
    assert short_name("On-Device Training Under 256KB Memory") == "On-Device Training Under 256KB Memory"
    abstract = "Mish is a new activation. We find that Mish beats ReLU. Beginning with x, we go on."
    assert lower_first("Beginning with x, we go on.", abstract) == "beginning with x, we go on."
    assert lower_first("Mish beats ReLU.", abstract) == "Mish beats ReLU."  # a name: capitalized mid-sentence too
    assert lower_first("BERT is strong.", abstract) == "BERT is strong."
    assert refers_back("Despite their power, these models often fail.")
    assert not refers_back("Methods such as pruning help.")
    assert wants_several("Which approaches speed up attention?") and not wants_several("How does PolyLoss weight the terms?")
    # A plural that is only named, not asked for, does not make a survey question.
    assert not wants_several("How can I make diffusion models generate images faster?")
    assert wants_several("what models are there for predicting clicks?") and wants_several("How do people split training across GPUs?")
    for pointed in ("What loss do diffusion models use?", "Why do some models overfit?", "What are the main ideas of PolyLoss?"):
        assert not wants_several(pointed), pointed
    for survey in ("Papers on graph neural networks for chemistry", "Find papers about network pruning", "state-of-the-art in NAS"):
        assert wants_several(survey), survey


def _sources_for(library, question: str):
    pipeline = AnswerPipeline(library)
    query, hits, scorer, _ = pipeline._retrieve(question, None, None, None)
    assert relevance.answerable(scorer, query, hits)
    return SourceSet.from_hits(hits, library.embedder), scorer


def _assert_readable(cited, sources) -> None:
    """Named papers, each cited; no dangling openings; every sentence verified against
    the source it cites, whose original quote is the citation's evidence."""
    assert cited.citations
    named = {r.n: r.title for r in cited.references}
    mentioned = set()
    for sentence, numbers in cited.sentences:
        assert not has_dangling_opening(sentence), sentence
        for n in numbers:
            if f"*{short_name(named[n])}*" in sentence:
                mentioned.add(n)
    assert mentioned == set(named), (cited.text, named)  # every cited paper is named somewhere
    for citation in cited.citations:
        source = next(s for s in sources.sources.values() if s.paper.id == citation.id)
        assert citation.evidence in source.sentences  # the original quote, verbatim
        assert citation.support >= 0.0


def test_a_pointed_question_gets_one_named_paper(fixture_library):
    question = "Which pruning method computes the Hessian-vector product directly for each parameter?"
    sources, scorer = _sources_for(fixture_library, question)
    cited = compose_answer(question, sources, scorer.score, fixture_library.settings)
    _assert_readable(cited, sources)
    assert [r.id for r in cited.references] == [OBA]
    first_sentence = cited.sentences[0][0]
    assert "*Optimal Brain Apoptosis*" in first_sentence  # leads with the paper, named


def test_composed_sentences_pass_the_verifier(fixture_library):
    from assistant.citations import Verifier

    question = "How can attention in transformers be computed faster than quadratic time?"
    sources, scorer = _sources_for(fixture_library, question)
    cited = compose_answer(question, sources, scorer.score, fixture_library.settings)
    _assert_readable(cited, sources)
    assert KDE in {r.id for r in cited.references}
    verifier = Verifier(sources, fixture_library.settings.support_threshold)
    by_id = {s.paper.id: n for n, s in sources.sources.items()}
    for citation in cited.citations:
        vector = fixture_library.embedder.embed_one(citation.sentence)
        score, _ = verifier.support(citation.sentence, vector, by_id[citation.id])
        verbatim = normalize_title(citation.sentence) == normalize_title(citation.evidence)
        assert verbatim or score >= fixture_library.settings.support_threshold


@pytest.mark.parametrize(
    "question",
    [
        "Which pruning method computes the Hessian-vector product directly for each parameter?",
        "Which papers study how deep networks generalize in the lazy training or mean-field regime?",
        "how do you reconstruct super-resolution microscopy images with a neural network",
    ],
)
def test_pipeline_answers_read_as_composed_text(fixture_library, question):
    """Through the real default model: whatever it writes, the displayed answer has no
    dangling openings and every [n] resolves; when composed, every paper is named."""
    result = AnswerPipeline(fixture_library).answer(question)
    assert not result.abstained
    assert result.mode in {"generated", "composed", "extractive"}
    markers = {n for _, numbers in parse_cited_sentences(result.answer) for n in numbers}
    assert markers == {r.n for r in result.references}
    for sentence, _ in result.cited.sentences:
        assert not has_dangling_opening(sentence), result.answer
    if result.mode == "composed":
        _assert_readable(result.cited, result.sources)


def test_a_sentence_that_only_sets_the_scene_neither_leads_nor_follows(fixture_library):
    """"KV caches have become the main memory cost …" is close to a question about KV-cache
    memory and true, but it answers nothing: neither the lead nor a second sentence."""
    from assistant.records import Paper
    from assistant.text import is_background

    background = "Key-value caches have become the main memory cost of large language model inference."
    answer = "We project cached keys and values onto fewer feature dimensions, halving cache memory during inference."
    paper = Paper(title="KVSqueeze: Smaller Caches for Language Model Inference", abstract=f"{background} {answer}")
    sources = SourceSet([paper], fixture_library.embedder)
    question = "How can I cut the memory of cached keys and values during large language model inference?"
    settings = fixture_library.settings
    scorer = relevance.RelevanceScorer(question, fixture_library.embedder.embed_one(question), fixture_library.term_weights(), settings)
    vectors = dict(zip(sources[1].sentences, sources[1].vectors))
    # It is closer to the question than the answer is: only what it says keeps it from
    # leading the answer, or following it.
    assert is_background(background) and scorer.score(background, vectors[background]) > scorer.score(answer, vectors[answer])
    cited = compose_answer(question, sources, scorer.score, settings)
    assert len(cited.sentences) == 1 and "feature dimensions" in cited.sentences[0][0], cited.text
