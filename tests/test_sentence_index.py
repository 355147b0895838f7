"""The sentence index (natural-question retrieval): every abstract sentence embedded at
ingest in a second Chroma collection, kept in sync by incremental and failed ingests,
used as a ranker, as evidence, and to decide whether a quote answers the question.

Real parts throughout: Chroma in a temporary directory, the real embedder, the real
default GGUF where an answer is generated. The fixture (tests/fixtures/sentence_ranker.jsonl)
has one paper about district heating whose abstract says, in one sentence only, that its
model fits on a 32-kilobyte controller chip, beside papers about tiny embedded devices
that match a question about that as a whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant import relevance
from assistant.answer import AnswerPipeline
from assistant.citations import CheckedSentence
from assistant.errors import StoreError
from assistant.evidence import SourceSet
from assistant.library import Library
from assistant.readers import read_paths
from assistant.records import Paper
from assistant.settings import Settings
from assistant.text import evidence_sentences

FIXTURE = Path(__file__).parent / "fixtures" / "sentence_ranker.jsonl"
THERMAL = "Thermal Storage Scheduling for District Heating Networks"
QUESTION = "which paper fits a learned model onto a 32 KB controller chip with no cloud connection"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    library = Library(Settings(store_dir=tmp_path_factory.mktemp("sentences")))
    library.ingest([FIXTURE])
    return library


def _sentence_state(library: Library) -> dict[str, list[str]]:
    """Every stored sentence row, found by the paper-id filter (not by the ids the paper
    rows' counts name): a stale sentence left behind must show up here."""
    rows = library.store.sentence_rows([p.id for p in library.catalog()])
    state: dict[str, list[tuple[int, str]]] = {}
    for document, meta in zip(rows.documents, rows.metadatas):
        state.setdefault(meta["paper_id"], []).append((meta["position"], document))
    return {paper_id: [text for _, text in sorted(items)] for paper_id, items in state.items()}


def test_every_abstract_sentence_is_indexed_beside_its_paper(library: Library):
    papers = library.catalog()
    state = _sentence_state(library)
    assert set(state) == {p.id for p in papers}
    for paper in papers:
        assert state[paper.id] == evidence_sentences(paper.abstract)
    assert library.store.sentence_count() == sum(len(v) for v in state.values())


def test_sentences_read_by_their_ids_equal_those_found_by_paper_filter(library: Library):
    """Papers record their sentence count, so search reads sentences by id (a primary-key
    lookup); what it reads must be exactly what the paper-id filter finds."""
    ids = [p.id for p in library.catalog()]
    counts = library.store.sentence_counts(ids)
    assert set(counts) == set(ids)
    by_id, filtered = library.store.sentences(ids), library.store.sentences(ids, counts={})
    assert set(by_id) == set(filtered) == set(ids)
    for paper_id, (texts, vectors) in filtered.items():
        assert by_id[paper_id][0] == texts and len(texts) == counts[paper_id]
        assert np.array_equal(by_id[paper_id][1], vectors)
    vectors_only = library.store.sentence_vectors(counts)  # what search re-ranks with
    assert set(vectors_only) == set(ids)
    for paper_id, (_, vectors) in filtered.items():
        assert np.array_equal(vectors_only[paper_id], vectors)


def test_text_is_kept_out_of_chromas_full_text_index_and_older_stores_read_the_same(tmp_path: Path):
    """Chroma indexes documents for a full-text search we never use (1.5 GB at 100,000
    papers), so rows are written with empty documents: a paper's text comes from its
    record, a sentence's from its metadata. A store written before (text in documents)
    must read exactly as it did."""
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE])
    papers, sentences = library.store._collection, library.store._sentences
    raw_papers = papers.get(include=["documents", "metadatas"])
    raw_sentences = sentences.get(include=["documents", "metadatas"])
    assert set(raw_papers["documents"]) == {""} and set(raw_sentences["documents"]) == {""}
    catalog = {p.id: p for p in library.catalog()}
    state = _sentence_state(library)
    assert all(state[p.id] == evidence_sentences(p.abstract) for p in catalog.values())
    assert library.store.get(list(catalog)).documents == [catalog[id].document for id in library.store.get(list(catalog)).ids]
    question = "how do I keep a district heating network's storage schedule cheap"
    before = [(h.paper.id, h.score, h.sentences) for h in library.search(question, 3)]

    # The same rows the way earlier versions wrote them.
    papers.upsert(
        ids=raw_papers["ids"],
        embeddings=papers.get(ids=raw_papers["ids"], include=["embeddings"])["embeddings"],
        documents=[catalog[id].document for id in raw_papers["ids"]],
        metadatas=raw_papers["metadatas"],
    )
    sentences.upsert(
        ids=raw_sentences["ids"],
        embeddings=sentences.get(ids=raw_sentences["ids"], include=["embeddings"])["embeddings"],
        documents=[meta["text"] for meta in raw_sentences["metadatas"]],
        metadatas=[{**meta, "text": None} for meta in raw_sentences["metadatas"]],
    )
    assert all("text" not in meta for meta in sentences.get(include=["metadatas"])["metadatas"])
    reopened = Library(Settings(store_dir=tmp_path / "store"))
    assert _sentence_state(reopened) == state
    assert [(h.paper.id, h.score, h.sentences) for h in reopened.search(question, 3)] == before


def test_nearest_sentences_name_their_paper_even_when_its_id_looks_like_a_sentence_id(tmp_path: Path):
    odd = Paper(id="doi:s10.1000:s7", title="Quokka sleep telemetry", abstract="We track quokka sleep with collars. Quokkas nap at noon.")
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest_papers([odd])
    found = library.store.nearest_sentences(library.embedder.embed_one("when do quokkas nap"), 5)
    assert [(paper_id, sentence_id) for paper_id, sentence_id, _ in found][:1] == [("doi:s10.1000:s7", "doi:s10.1000:s7:s1")]
    assert library.search("when do quokkas nap", 1)[0].sentences == ["We track quokka sleep with collars.", "Quokkas nap at noon."]


def test_a_paraphrase_of_one_sentence_is_found_through_the_sentence_ranker(library: Library):
    dense = library.search(QUESTION, 3, mode="dense")
    assert dense[0].paper.title != THERMAL  # the abstract as a whole is about heating networks
    by_sentence = library.search(QUESTION, 3, mode="sentence")
    assert by_sentence[0].paper.title == THERMAL
    assert "32-kilobyte controller chip" in by_sentence[0].sentences[int(np.argmax(by_sentence[0].sentence_vectors @ library.embedder.embed_one(QUESTION)))]
    # Dense plus the sentence ranker (no BM25): the sentence decides.
    settings = library.settings.model_copy(update={"bm25_weight": 0.0, "title_weight": 0.0})
    assert library.search(QUESTION, 3, settings=settings)[0].paper.title == THERMAL
    # Narrow paper-level candidate lists: the paper still enters through its sentence.
    narrow = library.settings.model_copy(update={"candidates": 1, "rerank_depth": 1, "bm25_weight": 0.0, "title_weight": 0.0})
    assert THERMAL in [h.paper.title for h in library.search(QUESTION, 3, settings=narrow)]


def test_evidence_vectors_come_from_the_index_not_from_re_embedding(library: Library):
    hits = library.search(QUESTION, 3)
    calls = library.embedder.calls
    sources = SourceSet.from_hits(hits, library.embedder)
    assert library.embedder.calls == calls  # nothing embedded: stored sentence vectors reused
    assert sources[1].paper.id == hits[0].paper.id and sources[1].similarity == 1.0  # fused order, top = 1


def test_the_answer_cites_the_paper_search_ranks_first(library: Library):
    pipeline = AnswerPipeline(library)
    settings = pipeline.settings  # the thresholds of this store's vector family
    result = pipeline.answer(QUESTION)
    assert not result.abstained
    assert result.references[0].id == result.hits[0].paper.id
    first = result.hits[0].paper.id
    for citation in result.citations:
        assert citation.relevance is not None and citation.strength in ("strong", "weak")
        assert citation.label.startswith(("quoted from", "supported by"))
        # The label's rule: search's first paper is strong from strong_top_relevance, the rest
        # only from strong_relevance (benchmarks/calibrate_labels.py).
        floor = settings.strong_top_relevance if citation.id == first else settings.strong_relevance
        assert citation.strength == ("strong" if citation.relevance >= floor else "weak")
    top = next(c for c in result.citations if c.id == first)
    assert top.relevance >= settings.strong_top_relevance and top.strength == "strong"
    # Between the two floors, a sentence of the first paper reads "strong", any other "weak".
    scorer = relevance.RelevanceScorer(QUESTION, library.embedder.embed_one(QUESTION), library.term_weights(), settings)
    between = (settings.strong_top_relevance + settings.strong_relevance) / 2
    assert scorer.strength(between, first_paper=True) == "strong" and scorer.strength(between) == "weak"


def test_word_weights_from_the_bm25_index_equal_those_counted_over_the_catalog(library: Library):
    """Answers read word weights from the BM25 index (no pass over a 100,000-paper catalog);
    they must be the numbers a count over every paper gives, for every word and an unknown one."""
    from assistant.lexical import tokenize

    counted = relevance.TermWeights(library.catalog())
    indexed = library.term_weights()
    assert isinstance(indexed, relevance.IndexTermWeights)
    terms = {t for tokens in tokenize([p.document for p in library.catalog()]) for t in tokens} | {"zzyzxquokka"}
    assert terms and all(indexed.idf(t) == pytest.approx(counted.idf(t), abs=1e-12) for t in terms)


def test_a_faithful_quote_that_does_not_answer_is_not_shown(library: Library):
    pipeline = AnswerPipeline(library)
    hits = library.search(QUESTION, 3)
    sources = SourceSet.from_hits(hits, library.embedder)
    weights = library.term_weights()
    scorer = relevance.RelevanceScorer(QUESTION, library.embedder.embed_one(QUESTION), weights, pipeline.settings)
    thermal = next(n for n, s in sources.sources.items() if s.paper.title == THERMAL)
    off_point = "We release the simulation model and the city data."  # true, and beside the point
    on_point = next(s for s in sources[thermal].sentences if "controller chip" in s)
    checked = [
        CheckedSentence(off_point, [thermal], {thermal: (1.0, off_point)}),
        CheckedSentence(on_point, [thermal], {thermal: (1.0, on_point)}),
    ]
    from assistant.answer import AnswerResult

    result = AnswerResult(QUESTION, QUESTION)
    pipeline._publish(result, checked, sources, scorer)
    assert off_point not in result.answer and off_point in result.cited.dropped
    assert on_point.rstrip(".") in result.answer
    assert pipeline._relevance(sources, thermal, off_point, scorer) < pipeline.settings.answer_relevance


def test_updates_replace_sentences_and_unchanged_papers_are_not_re_embedded(tmp_path: Path):
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE])
    papers = read_paths([FIXTURE]).papers
    calls = library.embedder.calls
    assert library.ingest_papers(papers).unchanged == len(papers)
    assert library.embedder.calls == calls
    changed = papers[0]
    changed.abstract = "A much shorter abstract. It has two sentences."
    report = library.ingest_papers([changed])
    assert report.updated == 1
    assert _sentence_state(library)[changed.id] == ["A much shorter abstract.", "It has two sentences."]


def test_a_store_without_sentences_is_backfilled_on_the_next_ingest(tmp_path: Path, library: Library):
    """A store written before the sentence index existed gets its sentences on the next
    ingest, without re-embedding the papers themselves."""
    old = Library(Settings(store_dir=tmp_path / "old"))
    rows = library.store.get([p.id for p in library.catalog()], with_embeddings=True)
    old.store.write(rows)  # papers only, as an older version wrote them
    assert old.store.sentence_count() == 0
    report = old.ingest([FIXTURE])
    assert report.unchanged == len(rows.ids) and report.embedded == 0
    assert _sentence_state(old) == _sentence_state(library)


class FailingSentenceUpserts:
    """The real sentence collection, except that its second upsert fails (fault injection)."""

    def __init__(self, collection) -> None:
        self._collection = collection
        self.upserts = 0

    def upsert(self, **kwargs):
        self.upserts += 1
        if self.upserts == 2:
            raise RuntimeError("disk full")
        return self._collection.upsert(**kwargs)

    def __getattr__(self, name):
        return getattr(self._collection, name)


def test_a_failed_ingest_leaves_papers_and_sentences_as_they_were(tmp_path: Path, monkeypatch):
    library = Library(Settings(store_dir=tmp_path / "store"))
    library.ingest([FIXTURE])
    before_papers = {p.id: p.abstract for p in library.catalog()}
    before_sentences = _sentence_state(library)
    generation = library.store.generation

    papers = read_paths([FIXTURE]).papers
    papers[0].abstract = "Rewritten, and this must not survive. " + papers[0].abstract
    new = [Paper(title=f"Filler paper number {i}", abstract=" ".join(f"Sentence {j} of filler {i}." for j in range(30))) for i in range(12)]
    faulty = FailingSentenceUpserts(library.store._sentences)
    monkeypatch.setattr(library.store, "_sentences", faulty)
    with pytest.raises(StoreError, match="nothing was changed"):
        library.ingest_papers(papers + new)
    monkeypatch.undo()

    assert faulty.upserts >= 2
    assert {p.id: p.abstract for p in library.catalog()} == before_papers
    assert _sentence_state(library) == before_sentences
    assert library.store.generation == generation


OFFLINE_RL = "Can I learn a good control policy purely from a fixed log of past interactions, without any further exploration?"
SEPSIS = "predicting sepsis hours before onset from intensive care records"


def test_a_question_no_paper_stands_out_for_is_not_answered(corpus_library: Library):
    """Offline RL sounds in-domain: reinforcement-learning papers are loosely near and one
    sentence clears the sentence threshold, but no paper stands out from the crowd, so the
    corpus has nothing on it. The sepsis question has a paper far ahead of the crowd."""
    pipeline = AnswerPipeline(corpus_library)
    settings = pipeline.settings  # the thresholds of this store's vector family
    query, hits, scorer, _ = pipeline._retrieve(OFFLINE_RL, None, None, None)
    assert scorer.lead is not None and scorer.best(hits) >= settings.answer_relevance  # the older rules would answer
    assert scorer.best(hits) + settings.standout_weight * scorer.lead < settings.answer_standout
    result = pipeline.answer(OFFLINE_RL)
    assert result.abstained and result.answer.startswith("The corpus has no paper on this.")

    query, hits, scorer, _ = pipeline._retrieve(SEPSIS, None, None, None)
    assert relevance.answerable(scorer, query, hits)
    assert scorer.lead > relevance.nearest_lead(corpus_library.store.nearest(pipeline.library.embedder.embed_one(OFFLINE_RL), 30))
