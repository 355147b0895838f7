"""The evaluation harness: IR metrics on hand-computed cases, BEIR loading and splitting,
`assistant eval retrieval` end to end on a tiny BEIR fixture (real embedder, real Chroma,
throwaway store), and the answer-level summary."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.cli.evaluate import answer_table, outcome_lines
from assistant.evaluation import (
    AnswerCase,
    AnswerOutcome,
    beir_papers,
    evaluate_answers,
    evaluate_retrieval,
    evaluate_run,
    load_beir,
    load_questions,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    read_qrels,
    recall_at_k,
    select_queries,
    split_first_sentence,
    split_queries,
    summarize_answers,
)
from assistant.settings import Settings

from conftest import FIXTURES

BEIR_TINY = FIXTURES / "beir_tiny"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = PROJECT_ROOT / "benchmarks" / "questions.jsonl"
NATURAL_QUESTIONS = PROJECT_ROOT / "benchmarks" / "questions_natural.jsonl"
CALIBRATION_QUESTIONS = PROJECT_ROOT / "benchmarks" / "questions_calibration.jsonl"


def log2(x: float) -> float:
    return math.log(x, 2)


# --- metrics -----------------------------------------------------------------------------


def test_ndcg_graded_gains_hand_computed():
    qrels = {"d2": 2, "d3": 1, "d4": 1}
    ranked = ["d1", "d2", "d3"]
    dcg = 0 / log2(2) + 2 / log2(3) + 1 / log2(4)
    ideal = 2 / log2(2) + 1 / log2(3) + 1 / log2(4)  # d4 was never retrieved but counts in the ideal
    assert ndcg_at_k(ranked, qrels, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(ranked, qrels, 10) == pytest.approx(0.56273, abs=1e-5)


def test_ndcg_perfect_empty_and_cutoff():
    qrels = {"a": 3, "b": 1}
    assert ndcg_at_k(["a", "b", "x"], qrels, 10) == pytest.approx(1.0)
    # Swapped: DCG = 1 + 3/log2(3); ideal = 3 + 1/log2(3).
    assert ndcg_at_k(["b", "a"], qrels, 10) == pytest.approx((1 + 3 / log2(3)) / (3 + 1 / log2(3)))
    assert ndcg_at_k([], qrels, 10) == 0.0
    assert ndcg_at_k(["a"], {}, 10) == 0.0
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0  # judged non-relevant
    # Only the top k count; the ideal is cut at k too.
    ranked = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at_k(ranked, {"a": 1}, 10) == 0.0
    assert ndcg_at_k(["x", "a"], {"a": 1, "b": 1, "c": 1}, 1) == 0.0
    assert ndcg_at_k(["a", "x"], {"a": 1, "b": 1, "c": 1}, 1) == pytest.approx(1.0)


def test_recall_and_mrr_hand_computed():
    qrels = {"a": 1, "b": 2, "c": 1, "z": 0}
    ranked = ["x", "b", "z", "a"] + [f"y{i}" for i in range(10)] + ["c"]
    assert recall_at_k(ranked, qrels, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, qrels, 100) == pytest.approx(1.0)
    assert recall_at_k(ranked, qrels, 1) == 0.0
    assert mrr_at_k(ranked, qrels, 10) == pytest.approx(1 / 2)
    assert mrr_at_k(["z", "x"], qrels, 10) == 0.0  # a score-0 judgement is not relevant
    assert mrr_at_k(["x", "y", "w", "a"], qrels, 3) == 0.0
    assert recall_at_k(["a"], {}, 10) == 0.0


def test_a_document_counts_once():
    qrels = {"a": 1, "b": 1}
    assert recall_at_k(["a", "a", "a"], qrels, 10) == pytest.approx(0.5)
    assert ndcg_at_k(["a", "a", "b"], qrels, 10) == pytest.approx(1.0)


def test_evaluate_run_averages_over_judged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has no relevant doc: not scored
    run = {"q1": ["a"], "q3": ["c"]}  # q2 missing from the run: scores 0
    metrics = evaluate_run(run, qrels)
    assert metrics == {"ndcg@10": 0.5, "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


# --- BEIR loading and splitting ----------------------------------------------------------


def test_load_beir_tiny_fixture():
    data = load_beir(BEIR_TINY / "corpus.jsonl", BEIR_TINY / "queries.jsonl", BEIR_TINY / "qrels" / "test.tsv")
    assert len(data.corpus) == 26
    assert data.qrels["q1"] == {"d01": 1, "d02": 1}
    # q7 has no judgement; q6's second judgement is 0 but it has a relevant doc.
    assert data.judged_query_ids == ["q1", "q2", "q3", "q4", "q5", "q6"]
    papers, untitled = beir_papers(data.corpus)
    assert untitled == 0 and [p.id for p in papers][:2] == ["d01", "d02"]


def test_read_qrels_with_and_without_header(tmp_path: Path):
    with_header = tmp_path / "a.tsv"
    with_header.write_text("query-id\tcorpus-id\tscore\n1\t10\t1\n1\t11\t2\n2\t10\t0\n")
    without = tmp_path / "b.tsv"
    without.write_text("1\t10\t1\n1\t11\t2\n2\t10\t0\n")
    assert read_qrels(with_header) == read_qrels(without) == {"1": {"10": 1, "11": 2}, "2": {"10": 0}}
    bad = tmp_path / "c.tsv"
    bad.write_text("1\t10\t1\n1\t11\n")
    with pytest.raises(ValueError, match="c.tsv:2"):
        read_qrels(bad)


def test_untitled_documents_use_their_first_sentence_once():
    first, rest = split_first_sentence("Mice lacking X live longer. The effect needs Y. It is large.")
    assert (first, rest) == ("Mice lacking X live longer", "The effect needs Y. It is large.")
    papers, untitled = beir_papers([
        {"_id": "7", "title": "", "text": "Mice lacking X live longer. The effect needs Y."},
        {"_id": "8", "title": "", "text": ""},
    ])
    assert untitled == 2
    assert papers[0].id == "7" and papers[0].title == "Mice lacking X live longer"
    assert papers[0].document == "Mice lacking X live longer. The effect needs Y."  # each sentence once
    assert papers[1].title == "8"


def test_split_is_deterministic_disjoint_and_balanced():
    ids = [str(i) for i in range(101)]
    tune, held = split_queries(ids, seed=0)
    assert set(tune).isdisjoint(held) and set(tune) | set(held) == set(ids)
    assert (len(tune), len(held)) == (51, 50)
    assert tune == sorted(tune, key=int)  # file order kept inside each half
    assert split_queries(ids, seed=0) == (tune, held)
    assert split_queries(ids, seed=1)[0] != tune
    # Membership does not depend on the order the ids come in.
    shuffled_tune, _ = split_queries(ids[::-1], seed=0)
    assert set(shuffled_tune) == set(tune)


def test_select_queries_split_and_limit():
    data = load_beir(BEIR_TINY / "corpus.jsonl", BEIR_TINY / "queries.jsonl", BEIR_TINY / "qrels" / "test.tsv")
    tune = select_queries(data, "tune")
    held = select_queries(data, "heldout")
    assert sorted(tune + held) == sorted(data.judged_query_ids)
    assert select_queries(data, limit=2) == ["q1", "q2"]
    with pytest.raises(ValueError, match="--split"):
        select_queries(data, "everything")


# --- the harness end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_json_run(tmp_path_factory: pytest.TempPathFactory):
    """`assistant eval retrieval --json` on the tiny fixture, with the user's store pointed
    at a directory that must stay untouched and temporary files kept in a known place."""
    base = tmp_path_factory.mktemp("eval-cli")
    user_store = base / "user-store"
    scratch = base / "tmp"
    scratch.mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("ASSISTANT_STORE_DIR", str(user_store))
    mp.setattr(tempfile, "tempdir", str(scratch))
    try:
        result = CliRunner().invoke(
            app,
            [
                "eval", "retrieval",
                "--corpus", str(BEIR_TINY / "corpus.jsonl"),
                "--queries", str(BEIR_TINY / "queries.jsonl"),
                "--qrels", str(BEIR_TINY / "qrels" / "test.tsv"),
                "--json",
            ],
        )
    finally:
        mp.undo()
    return result, user_store, scratch


def test_cli_eval_retrieval_json(cli_json_run):
    result, user_store, scratch = cli_json_run
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"dense", "bm25", "sentence", "hybrid"}  # sentence: the sentence index ranker alone
    for mode, metrics in data.items():
        assert set(metrics) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}, mode
        assert all(0.0 <= value <= 1.0 for value in metrics.values()), (mode, metrics)
    # Six judged queries over 26 documents: dense ranks every document, so it recalls all.
    assert data["dense"]["recall@100"] == 1.0
    assert data["hybrid"]["recall@100"] == 1.0
    # The throwaway index is gone and the user's store was never created.
    assert not user_store.exists()
    assert list(scratch.iterdir()) == []


def test_cli_eval_retrieval_table_and_limit():
    result = CliRunner().invoke(
        app,
        [
            "eval", "retrieval",
            "--corpus", str(BEIR_TINY / "corpus.jsonl"),
            "--queries", str(BEIR_TINY / "queries.jsonl"),
            "--qrels", str(BEIR_TINY / "qrels" / "test.tsv"),
            "--limit", "2", "--mode", "bm25",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.stdout and "MRR@10" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith(("dense", "bm25", "hybrid"))]
    assert len(rows) == 1 and rows[0].startswith("bm25")
    assert "2 queries, 26 documents" in result.stdout


def test_cli_eval_retrieval_errors(tmp_path: Path):
    runner = CliRunner()
    missing = runner.invoke(
        app,
        ["eval", "retrieval", "--corpus", str(tmp_path / "nope.jsonl"), "--queries", str(BEIR_TINY / "queries.jsonl"),
         "--qrels", str(BEIR_TINY / "qrels" / "test.tsv")],
    )
    assert missing.exit_code == 1 and "no such file" in missing.output
    bad_mode = runner.invoke(
        app,
        ["eval", "retrieval", "--corpus", str(BEIR_TINY / "corpus.jsonl"), "--queries", str(BEIR_TINY / "queries.jsonl"),
         "--qrels", str(BEIR_TINY / "qrels" / "test.tsv"), "--mode", "sparse"],
    )
    assert bad_mode.exit_code == 1 and "--mode" in bad_mode.output
    unjudged = tmp_path / "qrels.tsv"
    unjudged.write_text("q9\td01\t1\n")
    nothing = runner.invoke(
        app,
        ["eval", "retrieval", "--corpus", str(BEIR_TINY / "corpus.jsonl"), "--queries", str(BEIR_TINY / "queries.jsonl"),
         "--qrels", str(unjudged)],
    )
    assert nothing.exit_code == 1 and "no query" in nothing.output


def test_untitled_corpus_switches_the_title_ranking_off(tmp_path: Path):
    data = load_beir(BEIR_TINY / "corpus.jsonl", BEIR_TINY / "queries.jsonl", BEIR_TINY / "qrels" / "test.tsv")
    for doc in data.corpus:
        doc["title"] = ""
    report = evaluate_retrieval(data, ["q5"], Settings(), modes=("hybrid",), store_dir=tmp_path / "store")
    assert report.untitled == 26
    assert report.settings["title_weight"] == 0.0
    assert report.metrics["hybrid"]["ndcg@10"] == 1.0  # the detector code is still found first


# --- answer-level evaluation (unit level: a stand-in pipeline) ------------------------------


def test_load_questions_accepts_ids_and_expected_ids(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "What is A?", "expected_ids": ["p-1"]}\n'
        '{"question": "What is B?", "ids": ["p-2", "p-3"]}\n'
        "\n"
        '{"question": "Off topic?", "expected_ids": []}\n'
    )
    cases = load_questions(path)
    assert [(c.question, c.expected_ids) for c in cases] == [
        ("What is A?", ["p-1"]),
        ("What is B?", ["p-2", "p-3"]),
        ("Off topic?", []),
    ]
    (tmp_path / "bad.jsonl").write_text('{"expected_ids": []}\n')
    with pytest.raises(ValueError, match="no `question`"):
        load_questions(tmp_path / "bad.jsonl")


def test_shipped_question_file_is_well_formed():
    cases = load_questions(QUESTIONS)
    assert 12 <= len(cases) <= 20
    assert sum(1 for c in cases if not c.expected_ids) >= 2
    assert all(all(i.startswith("p-") for i in c.expected_ids) for c in cases)


def test_percentile_matches_linear_interpolation():
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 21)), 95) == pytest.approx(19.05)


def _citation(paper_id: str, supported: bool):
    return SimpleNamespace(paper_id=paper_id, supported=supported, support=0.9 if supported else 0.1)


def test_evaluate_answers_scores_citations_abstentions_and_errors():
    scripted = {
        "on topic, right paper": SimpleNamespace(abstained=False, citations=[_citation("p-1", True), _citation("p-9", False)], timings={}),
        "on topic, wrong paper": SimpleNamespace(abstained=False, citations=[_citation("p-9", True)], timings={}),
        "on topic, abstained": SimpleNamespace(abstained=True, citations=[], timings={}),
        "off topic, abstained": SimpleNamespace(abstained=True, citations=[], timings={}),
        "off topic, answered": SimpleNamespace(abstained=False, citations=[_citation("p-4", True)], timings={}),
    }
    calls = []

    def answer(library, question, history=None):
        calls.append((library, question, history))
        if question == "crashes":
            raise RuntimeError("model fell over")
        return scripted[question]

    cases = [
        AnswerCase("on topic, right paper", ["p-1", "p-2"]),
        AnswerCase("on topic, wrong paper", ["p-1"]),
        AnswerCase("on topic, abstained", ["p-1"]),
        AnswerCase("off topic, abstained", []),
        AnswerCase("off topic, answered", []),
        AnswerCase("crashes", ["p-1"]),
    ]
    library = object()
    summary, outcomes = evaluate_answers(library, cases, answer=answer)
    assert [c[0] for c in calls] == [library] * 6 and all(c[2] is None for c in calls)
    assert [o.correct for o in outcomes] == [True, False, False, True, False, False]
    assert outcomes[-1].error == "RuntimeError: model fell over"
    assert summary["questions"] == 6 and summary["on_topic"] == 4 and summary["off_topic"] == 2
    assert summary["correct_paper_rate"] == pytest.approx(2 / 6, abs=1e-4)
    assert summary["on_topic_correct_rate"] == 0.25
    assert summary["off_topic_abstained_rate"] == 0.5
    # Citations of answered questions: supported, unsupported, supported, supported.
    assert summary["citations"] == 4 and summary["citation_precision"] == 0.75
    assert summary["mean_support"] == pytest.approx((0.9 + 0.1 + 0.9 + 0.9) / 4, abs=1e-4)
    assert summary["abstention_rate"] == pytest.approx(2 / 6, abs=1e-4)
    assert summary["errors"] == 1
    assert 0 <= summary["latency_p50"] <= summary["latency_p95"]


def test_summary_of_nothing_answered():
    outcome = AnswerOutcome("q", [], True, [], [], 1.0)
    summary = summarize_answers([outcome])
    assert summary["citation_precision"] is None and summary["on_topic_correct_rate"] is None
    assert summary["correct_paper_rate"] == 1.0 and summary["abstention_rate"] == 1.0


def test_load_questions_reads_or_infers_the_kind(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "A?", "expected_ids": ["p-1"], "kind": "single", "note": "paper A"}\n'
        '{"question": "B?", "expected_ids": ["p-2", "p-3"], "kind": "multi"}\n'
        '{"question": "C?", "expected_ids": [], "kind": "unanswerable"}\n'
        '{"question": "D?", "expected_ids": ["p-4"]}\n'
        '{"question": "E?", "ids": ["p-5", "p-6"]}\n'
        '{"question": "F?", "expected_ids": []}\n'
    )
    cases = load_questions(path)
    assert [c.kind for c in cases] == ["single", "multi", "unanswerable", "single", "multi", "unanswerable"]
    assert cases[0].note == "paper A"
    assert AnswerCase("G?", ["p-1", "p-2"]).kind == "multi" and AnswerOutcome("q", [], True, [], [], 1.0).kind == "unanswerable"
    for bad, message in [
        ('{"question": "X?", "expected_ids": ["p-1"], "kind": "easy"}\n', "kind must be one of"),
        ('{"question": "X?", "expected_ids": ["p-1"], "kind": "unanswerable"}\n', "needs no expected ids"),
        ('{"question": "X?", "expected_ids": [], "kind": "single"}\n', "needs at least one expected id"),
    ]:
        (tmp_path / "bad.jsonl").write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_questions(tmp_path / "bad.jsonl")


def test_shipped_natural_question_files_are_well_formed():
    for path in (NATURAL_QUESTIONS, CALIBRATION_QUESTIONS):
        cases = load_questions(path)
        kinds = {c.kind for c in cases}
        assert kinds == {"single", "multi", "unanswerable"}, path
        assert all(len(c.expected_ids) >= 2 for c in cases if c.kind == "multi"), path
    older = load_questions(QUESTIONS)  # no `kind`: inferred
    assert {c.kind for c in older} == {"single", "multi", "unanswerable"}


def _hits(*ids: str) -> list:
    return [SimpleNamespace(paper=SimpleNamespace(id=pid), rank=rank) for rank, pid in enumerate(ids, start=1)]


def _answered(cited: list[str], hits: list) -> SimpleNamespace:
    return SimpleNamespace(abstained=False, citations=[_citation(pid, True) for pid in cited], hits=hits, timings={})


def _scripted_natural_run():
    """Outcomes covering every new figure, through the harness's `answer=` hook."""
    # An abstaining answer lists its hits by similarity; their ranks give the search order back.
    by_similarity = [SimpleNamespace(paper=SimpleNamespace(id="p-4"), rank=2), SimpleNamespace(paper=SimpleNamespace(id="p-5"), rank=1)]
    scripted = {
        "search first, cited": _answered(["p-1"], _hits("p-1", "p-2", "p-3")),
        "search third, wrong cited": _answered(["p-7"], _hits("p-7", "p-8", "p-1")),
        "search sixth, cited": _answered(["p-1"], _hits("p-2", "p-3", "p-4", "p-5", "p-6", "p-1")),
        "multi, one paper twice": _answered(["p-3", "p-3"], _hits("p-3", "p-9")),
        "multi, both expected": _answered(["p-2", "p-3"], _hits("p-2", "p-3")),
        "multi, one expected one other": _answered(["p-3", "p-9"], _hits("p-9", "p-3")),
        "wrongly abstained": SimpleNamespace(abstained=True, citations=[], hits=by_similarity, timings={}),
        "unanswerable, abstained": SimpleNamespace(abstained=True, citations=[], hits=_hits("p-4"), timings={}),
        "unanswerable, answered": _answered(["p-4"], _hits("p-4")),
    }

    def answer(library, question, history=None):
        if question == "crashes":
            raise RuntimeError("model fell over")
        return scripted[question]

    cases = [
        AnswerCase("search first, cited", ["p-1"]),
        AnswerCase("search third, wrong cited", ["p-1"]),
        AnswerCase("search sixth, cited", ["p-1"], "single"),
        AnswerCase("multi, one paper twice", ["p-2", "p-3"], "multi"),
        AnswerCase("multi, both expected", ["p-2", "p-3"]),
        AnswerCase("multi, one expected one other", ["p-2", "p-3"]),
        AnswerCase("wrongly abstained", ["p-5"]),
        AnswerCase("unanswerable, abstained", [], "unanswerable"),
        AnswerCase("unanswerable, answered", []),
        AnswerCase("crashes", ["p-1"]),
    ]
    return evaluate_answers(object(), cases, answer=answer)


def test_evaluate_answers_search_versus_citation_figures():
    summary, outcomes = _scripted_natural_run()
    assert summary["kinds"] == {"single": 5, "multi": 3, "unanswerable": 2}
    assert (summary["on_topic"], summary["off_topic"], summary["multi_questions"]) == (8, 2, 3)
    # Answerable: 8 (the crash counts as a miss everywhere).
    assert summary["search_recall@1"] == 0.5  # search first, both multi ones led by an expected paper, restored order
    assert summary["search_recall@5"] == 0.75
    assert summary["expected_cited_rate"] == 0.625  # the sixth-ranked paper is still cited
    assert summary["answerable_wrongly_abstained_rate"] == 0.125
    assert summary["unanswerable_abstained_rate"] == 0.5 == summary["off_topic_abstained_rate"]
    assert summary["multi_two_plus_rate"] == pytest.approx(2 / 3, abs=1e-4)  # a paper cited twice counts once
    assert summary["multi_two_plus_expected_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["correct_paper_rate"] == 0.6 and summary["errors"] == 1
    assert 0 <= summary["latency_p50"] <= summary["latency_p95"]

    by_question = {o.question: o for o in outcomes}
    assert by_question["wrongly abstained"].search_ids == ["p-5", "p-4"]
    assert by_question["wrongly abstained"].search_rank == 1
    assert by_question["search sixth, cited"].search_rank == 6
    assert by_question["crashes"].search_ids == [] and by_question["crashes"].kind == "single"
    row = by_question["search sixth, cited"].to_dict()
    assert row["kind"] == "single" and row["search_ids"] == ["p-2", "p-3", "p-4", "p-5", "p-6"]
    assert row["cited_ids"] == ["p-1"]


def test_answer_table_and_details_text():
    summary, outcomes = _scripted_natural_run()
    lines = answer_table(summary)
    assert lines[0] == "questions: 10 (5 single, 3 multi, 2 unanswerable)"
    text = "\n".join(lines)
    search1, search5, cited = (next(i for i, line in enumerate(lines) if line.startswith(label)) for label in (
        "search: expected paper at rank 1", "search: expected paper in top 5", "answer cites an expected paper"))
    assert (search5, cited) == (search1 + 1, search1 + 2)  # side by side
    assert "50%  4/8 answerable" in lines[search1] and "62%  5/8 answerable" in lines[cited]
    assert "67%  2/3 with 2+ expected" in text and "50%  1/2 unanswerable" in text
    assert "latency p50" in text and "latency p95" in text
    share = f"{summary['cited_expected_share']:.0%}  of papers cited on answerable questions"
    assert any(line.startswith("cited papers that were expected") and line.endswith(share) for line in lines)
    details = "\n".join(outcome_lines(outcomes))
    assert "[BAD] single       search sixth, cited" not in details
    assert "[ok ] single       search sixth, cited" in details
    assert "search p-2, p-3, p-4, p-5, p-6 | cited p-1*" in details
    assert "expected p-1" in details  # the expected paper was not in the top 5
    assert "search p-5*, p-4 | abstained" in details
    assert "error: RuntimeError: model fell over" in details


def test_cli_eval_answers_end_to_end(fixture_store_dir: Path, tmp_path: Path):
    """The real pipeline (default GGUF model) over the 33-paper fixture store."""
    from assistant.records import paper_id

    questions = tmp_path / "questions.jsonl"
    bayes = paper_id("Transformers Can Do Bayesian Inference")
    questions.write_text(
        json.dumps({"question": "Can transformers approximate Bayesian posterior predictive distributions?", "ids": [bayes]}) + "\n"
        + json.dumps({"question": "What is a good recipe for sourdough bread?", "expected_ids": []}) + "\n"
    )
    result = CliRunner().invoke(
        app, ["eval", "answers", "--questions", str(questions), "--store", str(fixture_store_dir), "--json", "--details"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["questions"], data["on_topic"], data["off_topic"]) == (2, 1, 1)
    assert data["errors"] == 0
    assert data["off_topic_abstained_rate"] == 1.0
    assert data["latency_p95"] >= data["latency_p50"] > 0
    on_topic = data["outcomes"][0]
    assert on_topic["abstained"] or on_topic["cited_ids"], on_topic


def test_cli_eval_answers_refuses_an_empty_store(tmp_path: Path):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "anything?", "expected_ids": []}\n')
    result = CliRunner().invoke(app, ["eval", "answers", "--questions", str(questions), "--store", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "empty" in result.output


def test_follow_ups_are_asked_after_their_history(tmp_path: Path):
    path = tmp_path / "f.jsonl"
    path.write_text(
        '{"history": ["First?"], "question": "And its cost?", "expected_ids": ["p-1"], "kind": "focus", "split": "evaluate"}\n'
        '{"history": ["First?"], "question": "And weight decay?", "expected_ids": [], "kind": "none", "split": "evaluate"}\n'
        '{"history": ["Other?"], "question": "And for GNNs?", "expected_ids": ["p-2"], "kind": "other", "split": "calibrate"}\n'
    )
    assert [c.kind for c in load_questions(path)] == ["single", "unanswerable", "single"]
    cases = load_questions(path, "evaluate")
    assert [(c.history, c.follow_up) for c in cases] == [(["First?"], "focus"), (["First?"], "none")]
    for bad, message in [
        ('{"history": ["A?"], "question": "X?", "expected_ids": [], "kind": "focus"}\n', "needs at least one expected id"),
        ('{"history": ["A?"], "question": "X?", "expected_ids": ["p-1"], "kind": "none"}\n', "needs no expected ids"),
        ('{"question": "X?", "expected_ids": ["p-1"], "kind": "focus"}\n', "kind must be one of"),
    ]:
        (tmp_path / "bad.jsonl").write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_questions(tmp_path / "bad.jsonl")

    calls = []

    def answer(library, question, history=None):
        calls.append((question, history))
        cited = {"And its cost?": [_citation("p-1", True)], "And weight decay?": [_citation("p-1", True)]}.get(question, [])
        turn = SimpleNamespace(question=question)
        return SimpleNamespace(abstained=not cited, citations=cited, timings={}, to_turn=lambda: turn)

    summary, outcomes = evaluate_answers(object(), cases, answer=answer)
    # Each follow-up is asked after its own history, with that history's real turn.
    assert [q for q, _ in calls] == ["First?", "And its cost?", "First?", "And weight decay?"]
    assert calls[0][1] is None
    assert [h[0].question for _, h in calls[1::2]] == ["First?", "First?"]
    assert [o.correct for o in outcomes] == [True, False]
    assert summary["follow_up_correct"] == {"focus": {"rate": 1.0, "of": 1}, "none": {"rate": 0.0, "of": 1}}
