"""Readers: the shipped daily-papers dumps, crafted layouts and the structured formats.

No model and no store here: these run in well under a second. The "nothing is lost"
test re-splits every dump with its own, deliberately different rule (line length rather
than position) and checks every abstract lands in exactly one record.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.readers import (
    SUPPORTED_SUFFIXES,
    UnreadableFile,
    read_daily_papers_dump,
    read_file,
    read_paths,
)
from assistant.records import Paper, extract_urls, normalize_title, paper_id
from assistant.text import neutralize

from conftest import FIXTURE_PAPERS, FIXTURES, SHIPPED_CORPUS

FORMATS = FIXTURES / "formats"
DUMPS = sorted(SHIPPED_CORPUS.glob("*.txt"))
F000, F001, F002, F003, F004 = (path.name for path in DUMPS)


@pytest.fixture(scope="module")
def corpus():
    result = read_paths([SHIPPED_CORPUS])
    assert not result.errors and not result.problems
    return result


@pytest.fixture(scope="module")
def by_title(corpus) -> dict[str, Paper]:
    return {paper.title: paper for paper in corpus.papers}


# --- the shipped corpus --------------------------------------------------------------


def _independent_split(path: Path) -> list[tuple[str, str]]:
    """(title, abstract) pairs by a rule of its own: furniture dropped, then a line is an
    abstract when it is long. In the shipped dumps titles are at most ~160 characters and
    abstracts at least ~600, so the rule is unambiguous; the test asserts it alternates."""
    furniture = {"new", "Subscribe", "byAK and the research community"}
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = " ".join(raw.split())
        if not line or line in furniture or line.startswith("Get trending papers"):
            continue
        if re.fullmatch(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2}", line):
            continue
        if line.startswith("Subscribe"):
            line = line[len("Subscribe") :]
        lines.append(line)
    kinds = ["abstract" if len(line) > 400 else "title" for line in lines]
    assert kinds == ["title", "abstract"] * (len(lines) // 2), f"{path.name}: titles and abstracts do not alternate"
    # as every record is stored: the source's own "[4]" markers and prompt delimiters neutralized
    return [(neutralize(title), neutralize(abstract)) for title, abstract in zip(lines[0::2], lines[1::2])]


def test_corpus_reads_446_distinct_papers_from_five_dumps(corpus):
    assert [Path(f).name for f in corpus.files] == [p.name for p in DUMPS]
    assert len(corpus.papers) == 446
    assert len({p.id for p in corpus.papers}) == 446
    pairs = sum(len(_independent_split(path)) for path in DUMPS)
    assert pairs == 501  # 55 repeats across files merged away
    assert sum(len(p.sources) for p in corpus.papers) == pairs


@pytest.mark.parametrize("dump", DUMPS, ids=lambda p: p.name[:3])
def test_each_dump_parses_to_the_independent_split(dump: Path):
    papers, problems = read_file(dump)
    assert problems == []
    expected = _independent_split(dump)
    assert [(p.title, p.abstract) for p in papers] == expected
    assert all(p.sources == [dump.name] for p in papers)


def test_nothing_is_lost_every_abstract_is_in_exactly_one_record(corpus):
    matched: set[str] = set()
    for dump in DUMPS:
        for title, abstract in _independent_split(dump):
            owners = [p for p in corpus.papers if p.abstract == abstract]
            assert len(owners) == 1, f"{dump.name}: abstract of {title!r} is in {len(owners)} records"
            owner = owners[0]
            assert owner.title == title
            assert dump.name in owner.sources
            matched.add(owner.id)
    # ...and no record came from anywhere else (furniture, a merged paragraph, a glued title).
    assert matched == {p.id for p in corpus.papers}


def test_page_furniture_never_becomes_a_paper(corpus):
    for paper in corpus.papers:
        for text in (paper.title, paper.abstract):
            assert text.lower() not in {"new", "subscribe", "byak and the research community"}
            assert not text.startswith(("Get trending papers", "Subscribe", "byAK"))
            assert not re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", text)
        assert len(paper.title) < 200 and len(paper.abstract) > 400


def test_date_labels_per_dump(corpus):
    dates = {}
    for dump in DUMPS:
        papers, _ = read_file(dump)
        dates[dump.name] = {p.date for p in papers}
    assert dates == {F000: {"Mar 13"}, F001: {""}, F002: {"Mar 14"}, F003: {"Mar 11"}, F004: {"Mar 14"}}


def test_known_paper_in_three_files(by_title):
    paper = by_title["Hopfield Networks is All You Need"]
    assert paper.id == "p-07cd63e76ca0" == paper_id(paper.title)
    assert paper.sources == [F000, F003, F004]
    assert paper.date == "Mar 13"  # the first file's page label
    assert paper.abstract.startswith("We introduce a modern Hopfield network with continuous states")
    assert paper.abstract.endswith("The implementation is available at: https://github.com/ml-jku/hopfield-layers")
    assert paper.urls == ["https://github.com/ml-jku/hopfield-layers"]
    assert paper.code_url == "https://github.com/ml-jku/hopfield-layers"


def test_known_paper_with_github_url_in_parentheses_and_full_stop(by_title):
    paper = by_title["SineNet: Learning Temporal Dynamics in Time-Dependent Partial Differential Equations"]
    assert paper.id == "p-de7d188c80ce"
    assert paper.abstract.endswith("Our code is available as part of AIRS (https://github.com/divelab/AIRS).")
    assert paper.urls == ["https://github.com/divelab/AIRS"]  # not "AIRS)." nor "AIRS)"
    assert paper.sources == [F000, F001]
    assert paper.date == "Mar 13"


def test_known_paper_with_trailing_full_stop_in_two_files(by_title):
    paper = by_title["Forward Learning of Graph Neural Networks"]
    assert paper.id == paper_id("Forward Learning of Graph Neural Networks")
    assert paper.abstract.endswith("We release our code at https://github.com/facebookresearch/forwardgnn.")
    assert paper.urls == ["https://github.com/facebookresearch/forwardgnn"]
    assert paper.sources == [F000, F004]


def test_known_papers_from_file_001_alternate_layout(by_title):
    # The first title is glued to the page's "Subscribe" button text.
    first = by_title["Transformer Interpretability Beyond Attention Visualization"]
    assert first.id == "p-a8863a81016b"
    assert first.sources == [F001]
    assert first.date == ""  # file 001 has no date label
    assert first.abstract.startswith("Self-attention techniques, and specifically Transformers, are dominating")
    assert first.urls == [] and first.code_url == ""
    assert len(first.abstract) == 1010

    second = by_title["Optimal Brain Apoptosis"]
    assert second.sources == [F001]
    assert second.abstract.startswith("The increasing complexity and parameter count of Convolutional Neural Networks")
    assert second.urls == ["https://github.com/NEU-REAL/OBA"]  # the dump says "OBA."

    last = by_title["Neural Spline Flows"]  # the file's last line is an abstract with no trailing blank
    assert last.abstract.endswith("generative modeling of images.")


def test_known_paper_with_long_title_and_date_from_file_002(by_title):
    title = (
        "Galaxy Spectra neural Network (GaSNet). II. Using Deep Learning for Spectral "
        "Classification and Redshift Predictions"
    )
    paper = by_title[title]
    assert paper.id == paper_id(title)
    assert paper.sources == [F002]
    assert paper.date == "Mar 14"
    assert paper.urls == []
    assert paper.abstract.startswith("Large sky spectroscopic surveys have reached the scale of photometric surveys")


def test_repeated_paper_takes_the_first_dated_label(by_title):
    # Listed in 000 (Mar 13) and 001 (no label): one record, both sources.
    paper = by_title["Convergent Graph Solvers"]
    assert paper.sources == [F000, F001]
    assert paper.date == "Mar 13"


def test_every_url_in_the_dumps_is_extracted_without_trailing_punctuation(corpus):
    raw_urls = set()
    for dump in DUMPS:
        raw_urls |= set(re.findall(r"https?://\S+", dump.read_text(encoding="utf-8")))
    assert len(raw_urls) > 90
    extracted = {url for paper in corpus.papers for url in paper.urls}
    for url in extracted:
        assert not url.endswith((".", ",", ";", ":", ")", "]", "}")), url
    # Every raw link's cleaned form is somewhere (LaTeX-ish "{...}" suffixes are cut off).
    for raw in raw_urls:
        cleaned = re.split(r"[{}()\[\]]", raw)[0].rstrip(".,;:")
        assert cleaned in extracted, raw


# --- ids, URLs ----------------------------------------------------------------------------


def test_ids_are_stable_across_case_accents_punctuation_and_spacing():
    assert normalize_title("  Poincaré ResNet: A  Study! ") == "poincare resnet a study"
    assert paper_id("Poincaré ResNet: A Study") == paper_id("poincare resnet -- a study")
    assert paper_id("Hopfield Networks is All You Need") == "p-07cd63e76ca0"
    assert paper_id("A") != paper_id("B")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Code: https://github.com/a/repo.", ["https://github.com/a/repo"]),
        ("(see https://github.com/a/repo).", ["https://github.com/a/repo"]),
        ("at https://github.com/a/repo, and https://a.github.io/page/.", ["https://github.com/a/repo", "https://a.github.io/page/"]),
        ("https://github.com/a/repo{https://github.com/a/repo}.", ["https://github.com/a/repo"]),
        ("quoted 'https://example.org/x/y';", ["https://example.org/x/y"]),
        ("no link here, just https:// and http://x", []),
    ],
)
def test_url_trailing_punctuation_is_stripped(text, expected):
    assert extract_urls(text) == expected


# --- crafted dumps -------------------------------------------------------------------------

BLANK_LAYOUT = """new

Get trending papers in your email inbox!

Subscribe

byAK and the research community

Mar 13

Paper One: A Study

First abstract, code at https://github.com/one/repo).

Paper Two

Second abstract.
"""

ALTERNATE_LAYOUT = """Get trending papers in your email inbox once a day!
Get trending papers in your email inbox!
SubscribePaper Three
Third abstract.
Paper Four
Fourth abstract, see https://example.org/four.
"""


def test_blank_line_layout_with_furniture():
    papers, problems = read_daily_papers_dump(BLANK_LAYOUT, "blank.txt")
    assert problems == []
    assert [(p.title, p.abstract, p.date, p.sources) for p in papers] == [
        ("Paper One: A Study", "First abstract, code at https://github.com/one/repo).", "Mar 13", ["blank.txt"]),
        ("Paper Two", "Second abstract.", "Mar 13", ["blank.txt"]),
    ]
    assert papers[0].urls == ["https://github.com/one/repo"]
    assert papers[0].id == paper_id("paper one a study")


def test_alternate_line_layout_with_title_glued_to_subscribe():
    papers, problems = read_daily_papers_dump(ALTERNATE_LAYOUT, "alt.txt")
    assert problems == []
    assert [(p.title, p.abstract, p.date) for p in papers] == [
        ("Paper Three", "Third abstract.", ""),
        ("Paper Four", "Fourth abstract, see https://example.org/four.", ""),
    ]
    assert papers[1].urls == ["https://example.org/four"]


def test_crlf_bom_and_date_after_the_first_titles(tmp_path: Path):
    text = "\ufeffSubscribe\r\n\r\nPaper Five\r\n\r\nFifth abstract.\r\n\r\nDec 2\r\n\r\nPaper Six\r\n\r\nSixth abstract.\r\n"
    path = tmp_path / "crlf.txt"
    path.write_bytes(text.encode("utf-8"))
    papers, problems = read_file(path)
    assert problems == []
    assert [(p.title, p.abstract, p.date) for p in papers] == [
        ("Paper Five", "Fifth abstract.", "Dec 2"),
        ("Paper Six", "Sixth abstract.", "Dec 2"),
    ]


def test_title_without_abstract_is_reported_with_its_line():
    papers, problems = read_daily_papers_dump("Paper A\n\nAbstract A.\n\nDangling Title\n", "cut.txt")
    assert [p.title for p in papers] == ["Paper A"]
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == ("cut.txt", 5)
    assert "Dangling Title" in str(problems[0]) and str(problems[0]).startswith("cut.txt:5:")


def test_repeats_across_files_merge_into_one_record_listing_all_sources(tmp_path: Path):
    (tmp_path / "a.txt").write_text("Mar 1\n\nShared Paper\n\nShared abstract, https://github.com/s/r.\n\nOnly In A\n\nA abstract.\n")
    (tmp_path / "b.txt").write_text("SHARED paper!\nShared abstract, https://github.com/s/r.\nOnly In B\nB abstract.\n")
    result = read_paths([tmp_path])
    assert [p.title for p in result.papers] == ["Shared Paper", "Only In A", "Only In B"]
    shared = result.papers[0]
    assert shared.sources == ["a.txt", "b.txt"]
    assert shared.date == "Mar 1"
    assert shared.urls == ["https://github.com/s/r"]
    assert result.papers[2].date == ""


# --- structured formats ----------------------------------------------------------------


def test_jsonl_fixture_reads_33_papers():
    result = read_paths([FIXTURE_PAPERS])
    assert len(result.papers) == 33 and not result.problems and not result.errors
    assert all(p.sources == ["papers.jsonl"] and p.title and p.abstract for p in result.papers)


def test_jsonl_bad_lines_are_reported_and_the_rest_read():
    papers, problems = read_file(FORMATS / "papers_with_errors.jsonl")
    assert [p.title for p in papers] == ["Low-Rank Adapters for Speech Recognition", "Calibrated Uncertainty for Weather Nowcasting"]
    assert papers[0].year == "2024"
    assert papers[1].authors == "Lewis Fry Richardson"
    assert papers[1].urls == ["https://github.com/example/nowcast"]
    assert [(p.file, p.line) for p in problems] == [("papers_with_errors.jsonl", 2), ("papers_with_errors.jsonl", 3)]
    assert "invalid JSON" in problems[0].message
    assert "missing title" in problems[1].message


def test_json_array_with_optional_fields_and_bad_items():
    papers, problems = read_file(FORMATS / "papers.json")
    assert len(papers) == 1
    paper = papers[0]
    assert paper.id == "custom-1"  # an explicit id is kept
    assert paper.authors == "Emmy Noether; Sofia Kovalevskaya"
    assert (paper.year, paper.url, paper.sources) == ("2021", "https://example.org/rewire", ["papers.json"])
    # JSON arrays are reported by item position.
    assert [(p.file, p.line) for p in problems] == [("papers.json", 2), ("papers.json", 3)]
    assert "missing abstract" in problems[0].message


def test_json_object_with_papers_list(tmp_path: Path):
    path = tmp_path / "lib.json"
    path.write_text('{"papers": [{"title": "T", "abstract": "An abstract.", "year": 1999}]}')
    papers, problems = read_file(path)
    assert [(p.title, p.year) for p in papers] == [("T", "1999")] and problems == []


def test_csv_with_optional_columns_quoted_fields_and_a_bad_row():
    papers, problems = read_file(FORMATS / "papers.csv")
    assert [p.title for p in papers] == ["Sparse Mixture of Experts for Tabular Data", "Quoted, Comma Title"]
    assert papers[0].authors == "Ada Lovelace; Alan Turing"
    assert (papers[0].year, papers[0].url) == ("2023", "https://example.org/smoe")
    assert papers[1].abstract == "A multi-line abstract about contrastive pretraining for spreadsheets."
    assert [(p.file, p.line) for p in problems] == [("papers.csv", 3)]


def test_bibtex_entries_with_title_and_abstract():
    papers, problems = read_file(FORMATS / "nested" / "papers.bib")
    assert [p.title for p in papers] == ["Learning Orbital Dynamics with Symplectic Networks", "Active Learning for Materials Discovery"]
    first = papers[0]
    assert first.abstract.startswith("Symplectic neural integrators conserve energy")
    assert (first.year, first.url) == ("2020", "https://example.org/orbits")
    assert "Kepler" in first.authors
    assert [(p.file, p.line) for p in problems] == [("papers.bib", 10)]
    assert "missing abstract" in problems[0].message


def test_directory_walk_reads_every_supported_file_and_skips_others():
    result = read_paths([FORMATS])
    assert sorted(Path(f).name for f in result.files) == ["papers.bib", "papers.csv", "papers.json", "papers_with_errors.jsonl"]
    assert result.errors == []  # README.md inside the directory is not a paper file: skipped, not an error
    assert len(result.papers) == 7
    assert sorted(str(p) for p in result.problems) == sorted(
        [
            "papers.bib:10: missing abstract",
            "papers.csv:3: missing abstract",
            "papers.json:2: missing abstract",
            "papers.json:3: expected an object with title and abstract, got str",
            "papers_with_errors.jsonl:2: invalid JSON: Expecting value",
            "papers_with_errors.jsonl:3: missing title",
        ]
    )


# --- files that cannot be read at all -------------------------------------------------


def test_unknown_file_type_is_an_error_naming_it(tmp_path: Path):
    readme = FORMATS / "nested" / "README.md"
    with pytest.raises(UnreadableFile, match=r"README\.md: unknown file type \.md"):
        read_file(readme)
    result = read_paths([readme, FIXTURE_PAPERS])
    assert len(result.papers) == 33  # the good file still goes in
    assert len(result.errors) == 1 and "README.md" in result.errors[0]
    assert all(s in result.errors[0] for s in SUPPORTED_SUFFIXES)


def test_missing_undecodable_and_malformed_files_are_errors_naming_them(tmp_path: Path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Caf\xe9 Paper\n\nAbstract.\n".encode("latin-1"))
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('[{"title": "x", ')
    bad_csv = tmp_path / "nocols.csv"
    bad_csv.write_text("name,summary\na,b\n")
    missing = tmp_path / "missing.jsonl"
    result = read_paths([latin1, bad_json, bad_csv, missing])
    assert result.papers == [] and result.files == []
    assert len(result.errors) == 4
    for path, words in [(latin1, "not UTF-8"), (bad_json, "invalid JSON"), (bad_csv, "'title' and 'abstract'"), (missing, "no such file")]:
        assert any(str(path.name) in e and words in e for e in result.errors), (path, result.errors)


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_permissions_is_an_error_naming_the_file(tmp_path: Path):
    path = tmp_path / "secret.jsonl"
    path.write_text('{"title": "t", "abstract": "a"}\n')
    path.chmod(0)
    with pytest.raises(UnreadableFile, match="secret.jsonl: cannot read"):
        read_file(path)


def test_neutralizing_keeps_intervals_and_hashes_inside_words():
    # A reference list becomes inert; an interval keeps its brackets (full-width, not a marker),
    # because "(0,1)" would be an open interval; "F##" is a word, "### Answer" a delimiter.
    assert neutralize("as shown [4][5] and [7, 12]") == "as shown (4)(5) and (7, 12)"
    assert neutralize("x in [0,1]^d, y in [1, 2]_+, p in [0, 1]") == "x in ［0,1］^d, y in ［1, 2］_+, p in ［0, 1］"
    assert neutralize("written in F## ### Answer: yes") == "written in F## Answer: yes"
    # LaTeX's escapes from arXiv abstracts showed a backslash on screen
    assert neutralize(r"cuts GPU memory by more than 45\% in R\&D") == "cuts GPU memory by more than 45% in R&D"
