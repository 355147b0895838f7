"""Topic summaries and paper TL;DRs with the real default model (Gemma 3 270M) on a real store.

Model-written text is never asserted word for word. The tests check what the pipeline
guarantees whatever the model writes: the summary cites only retrieved papers, every
[n] resolves to the reference of the paper that supports the sentence (also when the
evidence is forced through several map and reduce steps), the references export, theme
headings are multi-word phrases found in their theme's papers, no displayed sentence
opens by pointing back at an unseen one, and off-topic retrievals are left out.
"""

from __future__ import annotations

import json
import re
import threading

import bibtexparser
import numpy as np
import pytest
from typer.testing import CliRunner

from assistant.citations import parse_cited_sentences
from assistant.cli import app
from assistant.evaluation.readability import (
    dangling_share,
    heading_is_phrase,
    off_topic_kept,
    paper_summary_sentences,
    summary_sentences,
    theme_papers,
)
from assistant.rewrite import has_dangling_opening, short_name
from assistant.records import Paper, normalize_title, paper_id
from assistant.summarize import (
    cluster_papers,
    complete_sentences,
    drop_unfinished,
    grounded,
    summarize_paper,
    summarize_topic,
    theme_count,
    theme_headings,
    word_stats,
)

CGS = paper_id("Convergent Graph Solvers")
OBA = paper_id("Optimal Brain Apoptosis")
GASNET = paper_id("Galaxy Spectra neural Network (GaSNet). II. Using Deep Learning for Spectral Classification and Redshift Predictions")
TOPIC = "training and generalization of deep neural networks"
_MARKER = re.compile(r"\[(\d+)\]")


def body_and_references(markdown: str) -> tuple[str, str]:
    body, _, references = markdown.partition("## References")
    return body, references


def assert_readable(library, summary) -> None:
    """Headings are phrases from their papers; every displayed sentence reads on its own."""
    for heading, papers in theme_papers(summary):
        assert papers and heading_is_phrase(heading, papers), (heading, [p.title for p in papers])
    sentences = summary_sentences(summary)
    assert sentences and dangling_share(sentences) == 0.0, [s for s in sentences if has_dangling_opening(s)]
    assert off_topic_kept(summary, library) == []


def assert_citations_sound(library, summary) -> None:
    """The guarantees of a topic summary, whatever the model wrote."""
    retrieved = {h.paper.id for h in summary.hits}
    references = summary.references
    assert references, summary.markdown
    # Only retrieved papers are cited; papers[i] is reference i + 1.
    assert {r.id for r in references} <= retrieved
    assert [r.n for r in references] == list(range(1, len(references) + 1))
    assert [p.id for p in summary.papers] == [r.id for r in references]
    # Every [n] in the text resolves to a reference, and every reference is cited.
    body, reference_block = body_and_references(summary.markdown)
    markers = {int(n) for n in _MARKER.findall(body)}
    assert markers == {r.n for r in references}, summary.markdown
    for reference in references:
        assert f"[{reference.n}]" in reference_block and reference.title.split()[0] in reference_block
    # Every sentence of the overview and the themes cites something.
    sentences = summary.overview + [s for theme in summary.themes for s in theme.sentences]
    assert sentences and all(numbers for _, numbers in sentences)
    assert len({normalize_title(t) for t, _ in sentences}) == len(sentences)  # no sentence twice
    # Each citation points at the paper whose abstract holds the supporting sentence,
    # and the support is real: recomputed here, independently of the pipeline.
    embedder = library.embedder
    threshold = library.settings.support_threshold
    by_n = {r.n: r for r in references}
    for citation in summary.citations:
        paper = summary.papers[citation.n - 1]
        assert paper.id == citation.id == by_n[citation.n].id
        assert citation.evidence in paper.abstract
        quoted = normalize_title(citation.sentence) in normalize_title(paper.abstract)
        similarity = float(embedder.embed_one(citation.sentence) @ embedder.embed_one(citation.evidence))
        assert quoted or similarity >= threshold - 1e-3, (citation, similarity)


def test_topic_summary_cites_only_retrieved_papers(fixture_library):
    progress: list[tuple[float, str]] = []
    summary = summarize_topic(fixture_library, TOPIC, 6, progress=lambda done, total, m: progress.append((done / total, m)))
    assert not summary.abstained
    assert 2 <= len(summary.hits) <= 6
    assert_citations_sound(fixture_library, summary)
    assert_readable(fixture_library, summary)
    assert_themes_hold_their_papers(summary)
    assert_each_paper_named(summary)  # the model's key points too, not only composed statements
    assert summary.markdown.startswith("# Summary: ")
    assert "## Overview" in summary.markdown and "## Themes" in summary.markdown
    assert all(theme.heading.strip() for theme in summary.themes)
    assert summary.stats["llm_calls"] >= 1 and summary.model
    assert {"retrieval_s", "map_s", "reduce_s", "total_s"} <= set(summary.timings)
    assert progress[0][0] == 0.0 and progress[-1][0] == 1.0
    assert all(a[0] <= b[0] for a, b in zip(progress, progress[1:]))
    # The reference list exports in every format, numbered as in the text.
    bib = bibtexparser.parse_string(summary.references_text("bibtex"))
    assert not bib.failed_blocks and len(bib.entries) == len(summary.references)
    rendered = summary.render("bibtex")
    assert "```bibtex" in rendered and _MARKER.findall(rendered)
    data = summary.to_dict()
    json.dumps(data)
    assert [r["id"] for r in data["references"]] == [p.id for p in summary.papers]


def test_map_reduce_keeps_citations_when_forced_to_split(fixture_library):
    """A tiny context budget forces several map parts per theme and several reduce rounds;
    numbers must still point at the right papers after every step."""
    summary = summarize_topic(fixture_library, TOPIC, 6, max_context_tokens=200)
    stats = summary.stats
    assert stats["map_parts"] > stats["themes"] >= 1, stats
    if stats.get("reduce_inputs", 0) >= 3:  # more verified key points than one reduce prompt holds
        assert stats["reduce_rounds"] >= 2 and stats["reduce_calls"] >= 3, stats
    assert_citations_sound(fixture_library, summary)


def test_stopped_summary_is_quoted_evidence(fixture_library):
    stop = threading.Event()
    stop.set()
    summary = summarize_topic(fixture_library, TOPIC, 6, stop=stop)
    assert summary.mode == "extractive" and summary.stats.get("llm_calls", 0) == 0
    assert_citations_sound(fixture_library, summary)
    assert_readable(fixture_library, summary)
    assert_themes_hold_their_papers(summary)  # the overview quotes a paper that a theme states too
    # Composed statements name their paper: each sentence carries the cited paper's name.
    for text, numbers in summary_sentences_with_numbers(summary):
        assert len(numbers) == 1
        name = summary.papers[numbers[0] - 1].title.split(":")[0].strip()
        assert name.lower() in text.lower(), (text, name)


def assert_each_paper_named(summary) -> None:
    """A sentence about one paper names it: a bullet saying "we can achieve …" or "The
    authors support their theory …" tells the reader nothing of whose work it is."""
    for text, numbers in summary_sentences_with_numbers(summary):
        if len(numbers) == 1:
            name = short_name(summary.papers[numbers[0] - 1].title)
            assert name.lower() in text.lower(), (text, name)


def summary_sentences_with_numbers(summary):
    return summary.overview + [s for theme in summary.themes for s in theme.sentences]


def assert_themes_hold_their_papers(summary) -> None:
    """Each theme's sentences cite only that theme's papers: a statement worded like the
    overview (which render drops as a repeat) must not shift later sentences under the
    wrong heading."""
    for theme in summary.themes:
        members = {summary.hits[n - 1].paper.id for n in theme.numbers}
        cited = {summary.references[k - 1].id for _, numbers in theme.sentences for k in numbers}
        assert cited <= members, (theme.heading, theme.sentences)


def test_off_topic_retrieval_is_left_out(fixture_library):
    """A galaxy-spectra paper is retrieved for a topic on CNNs for image classification
    (it is a deep network that classifies), but none of its sentences addresses the topic:
    it is left out, the CNN papers stay."""
    stop = threading.Event()
    stop.set()  # the filter runs before any generation
    summary = summarize_topic(fixture_library, "convolutional neural networks for image classification", 8, stop=stop)  # GaSNet: 8th
    assert not summary.abstained
    assert GASNET in {h.paper.id for h, _ in summary.left_out}
    assert GASNET not in {h.paper.id for h in summary.hits} and GASNET not in {p.id for p in summary.papers}
    assert any("Convolutional" in p.title or "CNN" in p.title for p in summary.papers)
    assert GASNET in {item["id"] for item in summary.to_dict()["left_out"]}
    assert_citations_sound(fixture_library, summary)
    assert_readable(fixture_library, summary)


def test_off_topic_papers_do_not_take_the_places_of_on_topic_ones(corpus_library):
    """A summary reads search's first papers, less the off-topic ones. MMR over the raw
    candidates took certified training, deep hedging and flow-model papers (unlike
    everything chosen) over the two papers most on this topic (like the memory-efficient
    training paper already chosen), and the summary left them out."""
    stop = threading.Event()
    stop.set()  # retrieval and the filter run before any generation
    summary = summarize_topic(corpus_library, "ways to train neural networks when memory is tight", stop=stop)
    titles = {h.paper.title for h in summary.hits}
    assert "On-Device Training Under 256KB Memory" in titles
    assert any(title.startswith("DIVISION: Memory Efficient Training") for title in titles)
    assert {h.paper.id for h in summary.hits} == {r.id for r in summary.references}
    assert len({h.paper.id for h in summary.hits}) == len(summary.hits) <= 12


def test_summary_abstains_when_nothing_is_relevant(fixture_library):
    summary = summarize_topic(fixture_library, "medieval troubadour poetry in Occitan courts", 6)
    assert summary.abstained and summary.mode == "abstained"
    assert summary.references == [] and summary.papers == []
    assert "no paper" in summary.markdown
    with pytest.raises(ValueError):
        summarize_topic(fixture_library, "  ")


def test_paper_summary(fixture_library):
    summary = summarize_paper(fixture_library, OBA)
    paper = summary.paper
    assert paper.id == OBA
    assert [p.id for p in summary.papers] == [OBA] and [r.id for r in summary.references] == [OBA]
    # Problem, method and result come from distinct sentences of the abstract ...
    assert set(summary.roles) == {"problem", "method", "result"}
    assert len(set(summary.roles.values())) == 3
    assert all(sentence in paper.abstract for sentence in summary.roles.values())
    # ... and are displayed as three self-contained sentences, each verbatim from the
    # abstract or verified against it (support recomputed here), each cited [1].
    assert set(summary.statements) == {"problem", "method", "result"}
    embedder = fixture_library.embedder
    for role, text in summary.statements.items():
        assert not has_dangling_opening(text), text
        quoted = normalize_title(text) in normalize_title(paper.abstract)
        support = float(embedder.embed_one(text) @ embedder.embed_one(summary.roles[role]))
        assert quoted or (support >= fixture_library.settings.support_threshold - 1e-3 and grounded(text, [paper])), (role, text)
    assert dangling_share(paper_summary_sentences(summary)) == 0.0
    # The model's one-line TL;DR is shown only when verified.
    assert summary.tldr
    if summary.tldr_generated:
        assert grounded(summary.tldr, [paper]) and not has_dangling_opening(summary.tldr)
    # A citation says "quoted from [1]" only beside a quote, and shows a sentence of the abstract.
    for citation in summary.cited.citations:
        assert citation.evidence in paper.abstract, citation
        quoted = normalize_title(citation.sentence) in normalize_title(paper.abstract)
        assert quoted or citation.support < 0.999, citation
    markdown = summary.markdown
    assert paper.title in markdown and "TL;DR" in markdown
    for role in ("Problem", "Method", "Result"):
        assert f"**{role}:**" in markdown
    assert paper.code_url and paper.code_url in markdown
    # The 5 most related papers, not the paper itself.
    assert len(summary.related) == 5 and OBA not in {h.paper.id for h in summary.related}
    assert all(h.paper.title in markdown for h in summary.related)
    body, _ = body_and_references(markdown)
    assert set(_MARKER.findall(body)) == {"1"}
    with pytest.raises(ValueError, match="no paper"):
        summarize_paper(fixture_library, "p-000000000000")
    assert summarize_paper(fixture_library, "Optimal Brain Apoptsis").paper.id == OBA  # a title, with a typo


def test_a_generated_tldr_is_cited_as_verified_not_as_a_quote(fixture_library):
    """The model's TL;DR rewords the abstract: its citation carries the support it was
    verified with and the abstract sentence behind it, never "quoted from [1]" with
    itself as the evidence (as it did before)."""
    paper_id = "p-2e00b964f5b8"  # Benign Overfitting…: the packaged model's TL;DR passes verification
    summary = summarize_paper(fixture_library, paper_id)
    assert summary.tldr_generated, "the model's TL;DR no longer passes here; pick another fixture paper"
    paper = summary.paper
    tldr = next(c for c in summary.cited.citations if c.sentence == summary.tldr)
    assert tldr.evidence in paper.abstract and tldr.evidence != tldr.sentence
    if normalize_title(tldr.sentence) not in normalize_title(paper.abstract):
        assert fixture_library.settings.support_threshold <= tldr.support < 0.999
        assert tldr.label.startswith("supported by [1]")


def test_cli_summarize_topic_json_and_exports(fixture_store_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    out, bib = tmp_path / "summary.md", tmp_path / "refs.bib"
    outcome = CliRunner().invoke(
        app, ["summarize", "graph neural networks and fixed points", "-n", "4", "--json", "--out", str(out), "--export", str(bib)]
    )
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.stdout)
    retrieved = {h["id"] for h in data["retrieved"]}
    assert data["references"] and {r["id"] for r in data["references"]} <= retrieved
    assert out.read_text(encoding="utf-8") == data["markdown"]
    body, _ = body_and_references(data["markdown"])
    assert {int(n) for n in _MARKER.findall(body)} == {r["n"] for r in data["references"]}
    parsed = bibtexparser.parse_string(bib.read_text(encoding="utf-8"))
    assert not parsed.failed_blocks and len(parsed.entries) == len(data["references"])


def test_cli_summarize_paper_text_and_errors(fixture_store_dir, monkeypatch):
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    runner = CliRunner()
    outcome = runner.invoke(app, ["summarize", "--paper", CGS, "--format", "bibtex"])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout.startswith("# Convergent Graph Solvers")
    assert "## Related papers" in outcome.stdout and "@misc{convergent_" in outcome.stdout
    neither = runner.invoke(app, ["summarize"])
    assert neither.exit_code == 1 and "--paper" in neither.output
    unknown = runner.invoke(app, ["summarize", "--paper", "p-000000000000"])
    assert unknown.exit_code == 1 and "no paper with id" in unknown.output
    bad_format = runner.invoke(app, ["summarize", "--paper", CGS, "--format", "docx"])
    assert bad_format.exit_code == 1 and "bibtex" in bad_format.output


# --- model-free pieces --------------------------------------------------------------------------


def test_clusters_are_deterministic_and_never_singletons():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(4, 16)) for c in centers])
    vectors = rng.permutation(vectors)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first = cluster_papers(vectors, 3)
    assert first == cluster_papers(vectors, 3)
    assert sorted(i for group in first for i in group) == list(range(12))
    assert all(len(group) >= 2 for group in first) and len(first) == 3
    assert [sorted(g) for g in first] == first and [g[0] for g in first] == sorted(g[0] for g in first)
    assert cluster_papers(vectors[:3], 2) == [[0, 1, 2]]  # too few papers to split without a singleton
    assert theme_count(3) == 1 and theme_count(10) == 2 and theme_count(12) == 3 and theme_count(40) == 4


def test_theme_headings_name_shared_terms(fixture_library):
    catalog = {p.title: p for p in fixture_library.catalog()}
    convolution = [p for t, p in catalog.items() if "Convolutional" in t or "CNN" in t]
    transformers = [p for t, p in catalog.items() if "Transformer" in t]
    assert len(convolution) >= 2 and len(transformers) >= 2
    headings = theme_headings([convolution, transformers], word_stats(fixture_library))
    assert len(headings) == 2 and headings[0] != headings[1]
    # Multi-word phrases written in the group's own papers, not lists of single words.
    assert heading_is_phrase(headings[0], convolution) and heading_is_phrase(headings[1], transformers), headings
    assert "conv" in headings[0].lower() or "cnn" in headings[0].lower(), headings
    assert "transformer" in headings[1].lower(), headings
    assert not heading_is_phrase("LLMs, rank, single", convolution + transformers)


def test_grounding_and_sentence_helpers():
    paper = Paper(
        "Stabilizing the Lottery Ticket Hypothesis",
        "Iterative magnitude pruning finds sparse subnetworks on small vision tasks. It fails on deeper networks.",
    )
    assert grounded("Iterative magnitude pruning finds sparse subnetworks on vision tasks.", [paper])
    # A detail spliced in from elsewhere (here: the few-shot example) is caught.
    assert not grounded("Iterative magnitude pruning cuts training memory by 30% on ImageNet.", [paper])
    assert complete_sentences("A full sentence about pruning here. And a cut-off one that") == ["A full sentence about pruning here."]
    assert drop_unfinished("Pruning works [1]. It also") == "Pruning works [1]."
    assert drop_unfinished("Pruning works [1].") == "Pruning works [1]."
    assert parse_cited_sentences(drop_unfinished("No end at all")) == []


def test_a_paper_is_summarized_by_what_it_does_not_by_the_field_it_is_in(fixture_library):
    """The sentence closest to a topic is often the field's scene-setting ("GNNs are highly
    sensitive to …"); it tells the reader nothing about the paper, so a statement of what
    the paper does comes first, however much closer the background sentence is."""
    from assistant.summarize import statements
    from assistant.text import is_background

    topic = "graph neural networks"
    background = "Graph neural networks have recently gained popularity for learning on graphs."
    contribution = "We propose a message-passing scheme whose aggregation is learned from data."
    embedder = fixture_library.embedder
    topic_vector = embedder.embed_one(topic)
    vectors = embedder.embed([background, contribution])
    closeness = lambda sentence, vector: float(vector @ topic_vector)  # noqa: E731
    assert closeness(background, vectors[0]) > closeness(contribution, vectors[1]) + 0.1
    assert is_background(background) and not is_background(contribution)
    ranked = statements.candidates(1, [background, contribution], vectors, closeness)
    assert [c.sentence for c in ranked] == [contribution, background]
    # What a field "has provided" is scene-setting too; what "we have provided" is not.
    assert is_background("Deep learning approaches have provided state-of-the-art performance in many applications.")
    assert not is_background("We have provided a benchmark of 40 tasks for on-device training.")
    assert is_background("The growing computational demands posed by neural networks necessitate low-memory training.")
    # What is "the most common choice" is the field's practice, not the cited paper's idea.
    assert is_background(
        "Cross-entropy loss and focal loss are the most common choices when training deep neural networks for classification problems."
    )
    assert not is_background("Our loss is the most common choice among practitioners we surveyed.")
    assert not is_background("The standard deviation of the error is 0.3.")
    assert is_background("Memory footprint is one of the main limiting factors for large neural network training.")
    assert is_background(
        "As the size of deep learning models continues to grow, finding optimal training strategies becomes increasingly more important."
    )
    assert not is_background("We show that memory footprint is one of the main limiting factors in our setting.")


def test_an_opening_the_next_sentence_turns_on_is_the_field_not_the_paper(fixture_library):
    """DIVISION's abstract opens with the approach it departs from, worded like a
    contribution: "Activation compressed training provides a solution …". The next sentence
    turns on it ("However, …"). Summaries showed "In *DIVISION*, activation compressed
    training provides a solution …", crediting the paper with prior work. A paper's own
    sentence comes first, in summaries and in composed answers."""
    from assistant.compose import _candidates
    from assistant.summarize import statements
    from assistant.text import background_flags

    abstract = [
        "Activation compressed training provides a solution towards reducing the memory cost of training deep neural networks.",
        "However, state-of-the-art work combines a search of quantization bit-width with the training, which makes the procedure complicated.",
        "To this end, we propose a simple and effective method to compress DNN training.",
        "During the training, DIVISION preserves the high-precision copy of the low-frequency component and compresses the rest.",
    ]
    assert background_flags(abstract) == [True, False, False, False]
    # With "we" it is the paper's own; late in an abstract, a result may precede "In contrast".
    assert background_flags(["We compress activations to save memory.", "However, this costs accuracy."]) == [False, False]
    late = ["We study video codecs.", "We propose NIRVANA.", "It uses patches.", "It is adaptive.", "NIRVANA speeds encoding by 12X.", "In contrast, prior works struggle."]
    assert background_flags(late) == [False] * len(late)

    topic_vector = fixture_library.embedder.embed_one("reducing the memory cost of training neural networks")
    vectors = fixture_library.embedder.embed(abstract)
    closeness = lambda sentence, vector: float(vector @ topic_vector)  # noqa: E731
    assert max(range(4), key=lambda i: closeness(abstract[i], vectors[i])) == 0
    assert statements.candidates(1, abstract, vectors, closeness)[-1].sentence == abstract[0]
    assert _candidates(1, abstract, vectors, closeness)[-1].sentence == abstract[0]
    # benchmarks/readability.py counts such sentences when they are shown anyway.
    from assistant.citations import Citation
    from assistant.evaluation.readability import scene_sentences
    from assistant.records import Paper

    paper = Paper("DIVISION: Memory Efficient Training via Dual Activation Precision", " ".join(abstract), id="division")
    shown = [
        Citation(1, "division", paper.title, "In *DIVISION*, activation compressed training provides a solution …", abstract[0], 0.9),
        Citation(1, "division", paper.title, "DIVISION compresses the high-frequency component.", abstract[3], 0.9),
    ]
    assert scene_sentences(shown, [paper]) == [shown[0].sentence]


def test_a_key_point_about_one_paper_is_shown_only_named(fixture_library):
    """The model copied "We support our theory with experiments in practical deep learning
    settings." as a key point. Framed with this paper's long title it falls below the support
    threshold; unnamed ("The authors support their theory …") a bullet says nothing of whose
    work it is. It is not shown: the paper gets a composed, named statement instead."""
    from assistant.citations import CheckedSentence, Verifier
    from assistant.evidence import SourceSet
    from assistant.summarize import statements

    paper = fixture_library.store.papers([paper_id("Perturbation Analysis of Neural Collapse")])
    paper = next(iter(paper.values()))
    sources = SourceSet([paper], fixture_library.embedder)
    verifier = Verifier(sources, fixture_library.settings.support_threshold)
    copied = "We support our theory with experiments in practical deep learning settings."
    assert copied in paper.abstract
    item = CheckedSentence(copied, [1], {1: (1.0, copied)})
    unnamed = statements.verified(copied, 1, sources, verifier)
    assert unnamed is not None and "Perturbation" not in unnamed.text  # the unnamed wording verifies...
    polished = statements.polish(item, sources, verifier)
    assert polished is None or short_name(paper.title) in polished.text  # ...but is not shown


def test_a_summing_up_connective_is_dropped_before_the_paper_is_named():
    from assistant.rewrite import self_contained

    rewritten = self_contained("In sum, our results enable DNNs for resource-constrained environments to use these advances.", "*X*")
    assert rewritten is not None and rewritten.startswith("The authors' results enable")
    assert self_contained("We next prove a lower bound on the width.", "*X*") == "The authors prove a lower bound on the width."


def test_every_theme_sentence_sits_under_its_own_theme(corpus_library):
    """On the shipped corpus this topic's overview quotes a paper whose theme statement came
    out worded the same; render dropped that repeat and every later sentence slid under the
    previous theme's heading (two themes wrong before the fix)."""
    summary = summarize_topic(corpus_library, "adversarial robustness of image classifiers")
    assert not summary.abstained and len(summary.themes) >= 2
    assert_themes_hold_their_papers(summary)
    assert {h.paper.id for h in summary.hits} == {r.id for r in summary.references}  # every paper read is cited
