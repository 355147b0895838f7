"""Citation lookup (claims and titles) and reference export, on the real 33-paper store."""

from __future__ import annotations

import json

import bibtexparser
import pytest
from bibtexparser.middlewares import LatexDecodingMiddleware
from typer.testing import CliRunner

from assistant.cli import app
from assistant.lookup import NO_SUPPORT, cite, match_titles, title_score
from assistant.records import Paper, paper_id
from assistant.references import bibtex_entry, bibtex_key, format_references, latex_escape
from assistant.text import split_sentences

CGS = paper_id("Convergent Graph Solvers")
TIBAV = paper_id("Transformer Interpretability Beyond Attention Visualization")
BANANAS = "Bananas ripen faster when stored next to apples."


def _paper(library, pid: str) -> Paper:
    paper = library.get(pid)
    assert paper is not None
    return paper


@pytest.mark.parametrize(
    "title",
    [
        "Convergent Graph Solvers",
        "Optimal Brain Apoptosis",
        "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions",
    ],
)
def test_claim_lifted_from_an_abstract_finds_that_paper_first(fixture_library, title):
    paper = _paper(fixture_library, paper_id(title))
    sentences = split_sentences(paper.abstract)
    claim = sentences[len(sentences) // 2]
    hits = cite(fixture_library, claim)
    assert hits and hits[0].paper.id == paper.id
    assert hits[0].kind == "claim" and hits[0].sentence in paper.abstract
    assert hits[0].support >= fixture_library.settings.support_threshold
    supports = [h.support for h in hits]
    assert supports == sorted(supports, reverse=True)


def test_paraphrased_claim_is_supported_with_its_sentence(fixture_library):
    hits = cite(fixture_library, "A graph solver learns iterative mappings that converge to a fixed point of the graph system.")
    assert hits and hits[0].paper.id == CGS and hits[0].kind == "claim"
    assert hits[0].sentence in hits[0].paper.abstract


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Convergnt Graph Solver", CGS),  # typos
        ("Transformer Interpretabilty Beyond Attention", TIBAV),  # typo and a missing word
        ("transformer interpretability beyond attention visualization", TIBAV),  # exact, other case
    ],
)
def test_misspelled_title_finds_its_paper(fixture_library, query, expected):
    hits = cite(fixture_library, query)
    assert hits and hits[0].paper.id == expected and hits[0].kind == "title"
    assert 0.85 <= hits[0].support <= 1.0
    assert hits[0].to_dict()["id"] == expected


def test_titles_and_claims_are_told_apart(fixture_library):
    # generic phrases share words with titles but do not name one
    assert match_titles(fixture_library, "neural networks") == []
    assert match_titles(fixture_library, "graph neural networks") == []
    assert title_score("Convergent Graph Solvers", "Convergent Graph Solvers") == 100.0
    # a sentence from an abstract is a claim even when it mentions the method's name
    paper = _paper(fixture_library, CGS)
    first = split_sentences(paper.abstract)[0]
    assert all(h.kind == "claim" for h in cite(fixture_library, first))


def test_unsupported_claim_gets_no_supporting_paper(fixture_library, fixture_store_dir, monkeypatch):
    assert cite(fixture_library, BANANAS) == []
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    runner = CliRunner()
    outcome = runner.invoke(app, ["cite", BANANAS])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout.strip() == NO_SUPPORT
    as_json = runner.invoke(app, ["cite", BANANAS, "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []
    with pytest.raises(ValueError):
        cite(fixture_library, "   ")


def test_cli_cite_json_and_formats(fixture_store_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_STORE_DIR", str(fixture_store_dir))
    runner = CliRunner()
    claim = "Polynomial expansions of the classification loss generalize cross-entropy and focal loss."
    outcome = runner.invoke(app, ["cite", claim, "--json"])
    assert outcome.exit_code == 0, outcome.output
    hits = json.loads(outcome.stdout)
    assert hits and all(set(h) == {"id", "title", "support", "sentence", "kind"} for h in hits)
    assert hits[0]["title"].startswith("PolyLoss")
    assert [h["support"] for h in hits] == sorted((h["support"] for h in hits), reverse=True)

    bib = runner.invoke(app, ["cite", claim, "--format", "bibtex"])
    assert bib.exit_code == 0, bib.output
    parsed = bibtexparser.parse_string(bib.stdout)
    assert not parsed.failed_blocks and [e.key for e in parsed.entries][0].startswith("polyloss_")

    markdown = runner.invoke(app, ["cite", "Convergnt Graph Solver", "--format", "markdown"])
    assert markdown.exit_code == 0 and markdown.stdout.startswith("- [1] **Convergent Graph Solvers**")
    text = runner.invoke(app, ["cite", claim, "--format", "text", "--export", str(tmp_path / "refs.bib")])
    assert text.exit_code == 0 and text.stdout.startswith("[1] PolyLoss")
    exported = bibtexparser.parse_string((tmp_path / "refs.bib").read_text(encoding="utf-8"))
    assert len(exported.entries) == len(hits) and not exported.failed_blocks


# --- references ---------------------------------------------------------------------------------


def test_bibtex_round_trips_for_the_whole_store(fixture_library):
    papers = fixture_library.catalog()
    text = format_references(papers, "bibtex")
    parsed = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    assert not parsed.failed_blocks
    assert len(parsed.entries) == len(papers)
    keys = [entry.key for entry in parsed.entries]
    assert keys == [bibtex_key(p) for p in papers] and len(set(keys)) == len(keys)
    for paper, entry in zip(papers, parsed.entries):
        fields = entry.fields_dict
        assert entry.entry_type == "misc"
        assert fields["title"].value == paper.title
        assert "papers.jsonl" in fields["note"].value and paper.id in fields["note"].value
        if paper.date:
            assert paper.date in fields["note"].value
        if paper.code_url:
            assert fields["url"].value == paper.code_url
        else:
            assert "url" not in fields


def test_bibtex_keys_are_stable_and_special_characters_escaped():
    paper = Paper(
        "50% {Faster} Nets & $x_1$ #1 ~ back\\slash: A Study",
        "We study things. Code: https://github.com/example/fast_nets.",
        date="Mar 13",
        sources=["000_abc.txt", "002_def.txt"],
    )
    again = Paper(**{k: v for k, v in paper.to_dict().items() if k != "code_url"})
    assert bibtex_key(paper) == bibtex_key(again) == "faster_mar13_" + bibtex_key(paper).rsplit("_", 1)[1]
    assert bibtex_key(Paper("A Survey on Things", "x.")).startswith("survey_")
    entry = bibtex_entry(paper)
    parsed = bibtexparser.parse_string(entry, append_middleware=[LatexDecodingMiddleware()])
    assert not parsed.failed_blocks and len(parsed.entries) == 1
    fields = parsed.entries[0].fields_dict
    assert fields["title"].value == paper.title
    assert fields["url"].value == "https://github.com/example/fast_nets"
    assert "000_abc.txt, 002_def.txt" in fields["note"].value and "Mar 13" in fields["note"].value
    # unbalanced braces still give a parseable, brace-balanced field
    lone = bibtex_entry(Paper("Half {open title", "x."))
    assert not bibtexparser.parse_string(lone).failed_blocks
    assert latex_escape("a } b").count("{") == latex_escape("a } b").count("}")


def test_markdown_and_text_references_are_numbered(fixture_library):
    papers = fixture_library.catalog()[:3]
    markdown = format_references(papers, "markdown").splitlines()
    text = format_references(papers, "text").splitlines()
    assert [line.split("]")[0] for line in markdown] == ["- [1", "- [2", "- [3"]
    assert [line.split("]")[0] for line in text] == ["[1", "[2", "[3"]
    assert all(p.id in line for p, line in zip(papers, text))
    with pytest.raises(ValueError, match="bibtex"):
        format_references(papers, "docx")
