"""Hostile content: a real store filled from tests/fixtures/hostile/ (25+ files of bad,
tricky and adversarial input), real embedder, real default model.

What must hold whatever the files contain: garbage is reported per record (file and
line) and never becomes a paper; titles in any script get distinct ids; a reused id
is reported, not merged; citation markers and prompt delimiters inside abstracts never
reach the model as structure nor the screen as citations; no input length breaks a job.

The reliability issue's other items run real subprocesses and servers and live beside the
parts they exercise:
- one writer at a time, a server reading other processes' ingests: test_faults.py
  (two ingests at once), test_security.py (a running server answers from what another
  process ingested); ids moved from earlier id functions: test_faults.py;
- SIGTERM, SIGKILL at five points, resume: test_faults.py, test_batched_ingest.py;
- faults in real parts: test_faults.py (read-only store, full disk, FIFO and unreadable
  paths, a frozen or killed Chroma server, in the CLI and the chat), test_llm_faults.py
  (a llama.cpp server down, frozen or silent, in the CLI and the chat);
- security: test_security.py; memory under load: benchmarks/load.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assistant.answer import AnswerPipeline
from assistant.citations import parse_cited_sentences
from assistant.library import Library
from assistant.lookup import cite
from assistant.readers import read_paths
from assistant.records import paper_id
from assistant.settings import Settings
from assistant.summarize import summarize_topic
from assistant.table import build_table
from assistant.text import ELLIPSIS, MAX_SENTENCE_CHARS

from conftest import FIXTURES

HOSTILE = FIXTURES / "hostile"
_MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def hostile_library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    library = Library(Settings(store_dir=tmp_path_factory.mktemp("hostile-store")))
    report = library.ingest([HOSTILE])
    assert report.added >= 15, report
    return library


def _assert_markers_resolve(text: str, references) -> None:
    """Every [n] shown resolves to the reference list; nothing else looks like a marker."""
    shown = {int(n) for n in _MARKER.findall(text)}
    assert shown <= {r.n for r in references}, text


def test_there_are_enough_hostile_files():
    assert len([p for p in HOSTILE.iterdir() if p.is_file()]) >= 20


def test_garbage_is_reported_per_record_and_never_becomes_a_paper():
    result = read_paths([HOSTILE])
    titles = {p.title for p in result.papers}
    problems = [str(p) for p in result.problems]
    for name in ("nul-bytes.txt", "random-unicode.txt", "no-letters.jsonl", "mostly-symbols.jsonl", "control-characters.jsonl"):
        assert any(name in p for p in problems), (name, problems)
    assert any(re.search(r"nul-bytes\.txt:\d+: .*control character", p) for p in problems)  # file and line
    assert not any("\x00" in t or "\x01" in t for t in titles)
    assert not any(t.startswith("☃") or t.startswith("1234") for t in titles)
    # the good record beside a bad one in the same file is still read
    assert "A Normal Paper About River Flood Forecasting" in titles
    assert "Hail Detection from Dual-Polarization Radar" in titles
    # unreadable files are named, the others still read
    assert any("binary-named.csv" in e for e in result.errors)


def test_titles_in_any_script_get_distinct_ids(hostile_library):
    ids = {paper_id(t) for t in ("深度学习的量化方法研究", "量子计算中的纠错码", "Квантование нейронных сетей", "Распознавание речи на малых устройствах")}
    assert len(ids) == 4
    assert paper_id("α-Net: Sparse Attention for Protein Folding") != paper_id("β-Net: Sparse Attention for Protein Folding")
    # ASCII ids are what they always were (existing stores keep their ids)
    assert paper_id("Optimal Brain Apoptosis") == "p-" + __import__("hashlib").sha1(b"optimal brain apoptosis").hexdigest()[:12]
    # Marks that make letters in other scripts count: a Japanese voicing mark, a Devanagari virama.
    marked = ("かきの栽培と病害の予測", "かぎの栽培と病害の予測", "क्षमता योजना के लिए मॉडल", "कषमता योजना के लिए मॉडल")
    assert len({paper_id(t) for t in marked}) == 4
    assert paper_id("Poincaré ResNet") == paper_id("Poincare ResNet")  # accents on Latin letters still do not
    for title in ("深度学习的量化方法研究", "量子计算中的纠错码", "α-Net: Sparse Attention for Protein Folding", "β-Net: Sparse Attention for Protein Folding", *marked):
        paper = hostile_library.get(paper_id(title))
        assert paper is not None and paper.title == title


def test_a_reused_id_is_reported_not_merged(hostile_library):
    result = read_paths([HOSTILE / "same-id-different-papers.jsonl"])
    assert [p.title for p in result.papers] == ["Glacier Retreat Measured from Satellite Altimetry"]
    assert any("paper-1" in str(p) and "Coral Bleaching" in str(p) for p in result.problems)
    stored = hostile_library.get("paper-1")
    assert stored.title.startswith("Glacier") and "coral" not in stored.abstract.lower()


def test_one_title_with_two_different_abstracts_is_reported_not_merged(hostile_library):
    result = read_paths([HOSTILE / "same-title-different-abstracts.jsonl"])
    assert len(result.papers) == 1 and "precipitation" in result.papers[0].abstract
    assert any("appears again with a different abstract" in str(p) for p in result.problems)
    stored = hostile_library.get(paper_id("Deep Learning for Weather Nowcasting"))
    assert "precipitation" in stored.abstract and "wheat" not in stored.abstract


def test_an_explicit_id_reused_by_a_later_ingest_is_reported_not_overwritten(tmp_path: Path):
    library = Library(Settings(store_dir=tmp_path / "store"))

    def write(name: str, record: dict) -> Path:
        (tmp_path / name).write_text(json.dumps(record) + "\n")
        return tmp_path / name

    glacier = {"id": "paper-1", "title": "Glacier Retreat Measured from Satellite Altimetry",
               "abstract": "We measure glacier retreat in the Alps from satellite altimetry between 2000 and 2020 and find an average thinning of one metre per year."}
    library.ingest([write("a.jsonl", glacier)])
    coral = {"id": "paper-1", "title": "Coral Bleaching Forecasts from Sea Surface Temperature",
             "abstract": "We forecast coral bleaching events from sea surface temperature anomalies with a gradient boosted model trained on 30 years of reef surveys."}
    report = library.ingest([write("b.jsonl", coral)])
    assert (report.added, report.updated) == (0, 0)
    assert any("paper-1" in str(p) and "different paper" in str(p) and "b.jsonl" in str(p) for p in report.problems)
    stored = library.get("paper-1")
    assert stored.title.startswith("Glacier") and "coral" not in stored.abstract.lower() and stored.sources == ["a.jsonl"]
    # A new version of the same paper under its id is an update: an edited abstract, or a corrected title.
    edited = {**glacier, "abstract": glacier["abstract"].replace("one metre", "1.2 metres")}
    assert library.ingest([write("a.jsonl", edited)]).updated == 1
    retitled = {**edited, "title": "Glacier Retreat in the Alps Measured from Satellite Altimetry"}
    report = library.ingest([write("a.jsonl", retitled)])
    assert report.metadata_only + report.updated == 1 and not report.problems
    assert library.get("paper-1").title == retitled["title"] and "1.2 metres" in library.get("paper-1").abstract


def test_source_markers_never_reach_the_screen_or_the_prompt(hostile_library):
    paper = hostile_library.get(paper_id("Electroreception in the Platypus Bill"))
    assert "[4]" not in paper.abstract and "(4)(5)(6)(8)" in paper.abstract  # the source's own references, neutralized
    result = AnswerPipeline(hostile_library).answer("How does the platypus find its prey underwater?")
    assert not result.abstained
    _assert_markers_resolve(result.answer, result.references)
    prompt = result.request.prompt or "\n".join(m["content"] for m in result.request.messages)
    evidence = prompt.split("### Evidence")[-1] if result.request.prompt else prompt
    quoted = re.findall(r'"((?:[^"\\]|\\.)*)"', evidence)  # the quoted source sentences
    assert quoted and not any(_MARKER.search(q) for q in quoted), evidence


def test_prompt_delimiters_in_an_abstract_are_data(hostile_library):
    paper = hostile_library.get(paper_id("Population Decline of Wild Dingoes in Australia"))
    assert "###" not in paper.abstract
    result = AnswerPipeline(hostile_library).answer("How have dingo numbers changed in Australia?")
    assert "###" not in result.answer
    _assert_markers_resolve(result.answer, result.references)
    if result.request is not None and result.request.prompt:
        # the prompt's own structure appears exactly as the template writes it, once per section
        last = result.request.prompt.rsplit("### Evidence", 1)[-1]
        assert last.count("### Question") == 1 and last.count("### Answer") == 1
    tags = hostile_library.get(paper_id("Soil Moisture Estimation from Radar Backscatter")).abstract
    assert not re.search(r"<\|im_start\|>|<start_of_turn>|\[INST\]|</evidence>", tags)


def test_a_one_sentence_abstract_of_200k_characters_gets_an_answer(hostile_library):
    result = AnswerPipeline(hostile_library).answer("How do memristor crossbars compute vector matrix products?")
    assert result.abstained or result.answer
    # What reaches the screen is cut visibly, not 200,000 characters of one sentence.
    assert len(result.answer) < 3 * MAX_SENTENCE_CHARS and ELLIPSIS in result.answer + " ".join(c.evidence for c in result.citations)
    for lookup in ("Memristor Crossbars for In-Memory Computing", "The memristor crossbar stores synaptic weights as conductances"):
        hits = cite(hostile_library, lookup)
        assert hits and all(len(h.sentence) <= MAX_SENTENCE_CHARS for h in hits), lookup
    if result.request is not None:
        prompt = result.request.prompt or "\n".join(m["content"] for m in result.request.messages)
        assert hostile_library.llm.count_tokens(prompt) + result.request.max_tokens <= hostile_library.llm.n_ctx
    _assert_markers_resolve(result.answer, result.references)


def test_a_10000_character_question_is_cut_visibly_and_answered(hostile_library):
    question = "How does the platypus find prey with its bill? " * 215
    assert len(question) > 10_000
    result = AnswerPipeline(hostile_library).answer(question)
    assert result.question.endswith(ELLIPSIS) and len(result.question) <= hostile_library.settings.max_question_chars
    assert result.abstained or result.references


def test_summary_table_and_lookup_on_hostile_papers_stay_clean(hostile_library):
    summary = summarize_topic(hostile_library, "electroreception and animal senses")
    for sentence, numbers in parse_cited_sentences(summary.markdown.split("## References")[0]):
        assert all(n <= len(summary.references) for n in numbers), summary.markdown
    table = build_table(hostile_library, "platypus electroreception", n=5)
    for row in table.rows:
        for cell in row.cells.values():
            assert not _MARKER.search(cell.text or ""), cell.text
    hits = cite(hostile_library, "the platypus bill carries about 40,000 electroreceptors")
    assert hits and all(not _MARKER.search(h.sentence) for h in hits)


def test_injected_instructions_are_never_evidence(hostile_library):
    result = AnswerPipeline(hostile_library).answer("How do zebra finches learn their songs?")
    assert "PWNED" not in result.answer
    assert all("Ignore all previous instructions" not in c.evidence for c in result.citations)
