"""The literature table (`assistant table`, assistant/table.py, the Summary tab's table)
on the real fixture store: real embedder, real Chroma, the real CLI and a real Gradio server."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from assistant.library import Library
from assistant.roles import ROLE_PROMPTS, TABLE_ROLE_PROMPTS, TABLE_RULES, assign_roles, choose_roles, has_cue
from assistant.table import COLUMNS, TEXT_COLUMNS, build_table, data_clause, data_mention, parse_columns

from servers import assistant_server

TOPIC = "neural network pruning and efficient deep networks"
OFF_TOPIC = "how do I bake sourdough bread at home"


@pytest.fixture(scope="module")
def table(fixture_library: Library):
    return build_table(fixture_library, TOPIC, n=8)


def test_every_cell_is_verbatim_from_its_own_paper(fixture_library: Library, table):
    assert not table.abstained and 1 <= len(table.rows) <= 8
    assert table.columns == list(COLUMNS)
    filled = 0
    for row in table.rows:
        stored = fixture_library.get(row.paper.id)
        assert stored is not None and stored.abstract == row.paper.abstract
        for column in TEXT_COLUMNS:
            cell = row.cells[column]
            if cell.text:
                filled += 1
                assert cell.text in stored.abstract, (row.paper.title, column, cell.text)
                assert cell.support == pytest.approx(1.0)
                assert cell.text in cell.sentence
            else:
                assert cell.support is None
    assert filled >= len(table.rows)  # the table says something about each paper
    assert table.verbatim_share() == 1.0
    for row in table.rows:  # a row never shows one text twice
        texts = [row.cells[c].text for c in TEXT_COLUMNS if row.cells[c].text]
        assert len(texts) == len(set(texts)), row.paper.title


def test_code_cell_comes_from_metadata(table):
    with_code = [row for row in table.rows if row.paper.code_url]
    assert with_code, "the pruning topic should include Optimal Brain Apoptosis (code on GitHub)"
    for row in table.rows:
        assert row.cells["code"].text == row.paper.code_url
        assert row.cells["code"].support is None


def test_rows_are_on_topic(table):
    titles = [row.paper.title for row in table.rows]
    assert "Optimal Brain Apoptosis" in titles
    assert not any("Tidal Energy" in t or "Steganography" in t for t in titles)


def test_papers_near_the_topic_words_but_not_on_it_are_not_rows(fixture_library: Library):
    """Neural-network papers are near "training neural ODEs quickly" in words; only the one
    about training neural ODEs faster (and its close neighbours) belongs in the table. The
    rule before topic_paper_score kept a continual-learning and a Lipschitz-bound paper."""
    titles = [row.paper.title for row in build_table(fixture_library, "training neural ODEs quickly", n=8).rows]
    assert any(t.startswith("Continuous Deep Equilibrium Models") for t in titles)
    assert not any(t.startswith(("Statistical mechanics of continual learning", "Efficiently Computing Local Lipschitz")) for t in titles)


def test_a_column_the_abstract_does_not_fill_stays_empty(fixture_library: Library):
    """The tidal membrane abstract names no dataset (and states no problem): those cells
    stay empty; its method sentence and its code link (metadata) are filled."""
    result = build_table(fixture_library, "energy harvesting from tidal currents with piezoelectric membranes", n=3)
    rows = {row.paper.title: row for row in result.rows}
    row = rows["Tidal Energy Harvesting with Flexible Piezoelectric Membranes"]
    assert row.cells["data"].text == "" and row.cells["data"].support is None
    assert row.cells["problem"].text == ""
    assert row.cells["method"].text.startswith("We present a flexible piezoelectric membrane")
    assert row.cells["code"].text == "https://github.com/example/tidal-membrane"
    # the instruction planted in that abstract is never quoted
    assert all("PWNED" not in cell.text for cell in row.cells.values())


def test_no_dataset_named_means_no_data_cell(fixture_library: Library):
    """Every fixture abstract without a data cue gets an empty data cell, and a filled data
    cell always names its data (a dataset word or name)."""
    papers = fixture_library.catalog()
    stored = fixture_library.store.sentences([p.id for p in papers])
    role_vectors = fixture_library.embedder.embed(list(TABLE_ROLE_PROMPTS.values()))
    empty = 0
    for paper in papers:
        sentences, vectors = stored[paper.id]
        chosen = choose_roles(sentences, vectors, role_vectors, roles=list(TABLE_ROLE_PROMPTS), rules=TABLE_RULES, shared=("data",))
        if "data" in chosen:
            assert has_cue("data", chosen["data"].sentence)
        else:
            empty += 1
            assert not any(has_cue("data", s) for s in sentences)
    assert empty >= 5  # theory papers such as "Benign Overfitting …" name no dataset


def test_assign_roles_keeps_its_tldr_behaviour(fixture_library: Library):
    paper = next(p for p in fixture_library.catalog() if p.title == "Convergent Graph Solvers")
    sentences, vectors = fixture_library.store.sentences([paper.id])[paper.id]
    roles = assign_roles(sentences, vectors, fixture_library.embedder.embed(list(ROLE_PROMPTS.values())))
    assert set(roles) == {"problem", "method", "result"} and len(set(roles.values())) == 3


def test_data_clause_is_a_verbatim_part_of_the_sentence():
    sentence = "Our method reduces the memory by 4x on ResNet-50, while on ImageNet it keeps the accuracy of the full model."
    clause = data_clause(sentence)
    assert clause in sentence and clause.startswith("while on ImageNet") and clause != sentence


def test_a_data_sentence_another_cell_quotes_is_shown_by_its_data_words():
    # The sentence states the result and names the data: the Result cell has it whole, the
    # Data cell only the part that says what the data is (verbatim).
    for sentence, mention in [
        ("Experiments on CIFAR-10, CIFAR-100 and ImageNet demonstrate the effectiveness of our method.", "CIFAR-10, CIFAR-100 and ImageNet"),
        ("We confirm the memory reduction and the same convergence on several open benchmarks.", "several open benchmarks"),
        ("Experiments on real-world benchmark datasets demonstrate that our architecture achieves the best accuracy.",
         "Experiments on real-world benchmark datasets"),
        ("First, we conduct experiments on two different datasets (CIFAR10, CIFAR100), exploring various techniques.", "CIFAR10, CIFAR100"),
    ]:
        assert data_mention(sentence) == mention and mention in sentence


def test_table_roles_refuse_what_belongs_to_another_column():
    result, data = TABLE_RULES["result"], TABLE_RULES["data"]
    assert not result.accepts(0.9, False, "Many deep pruning algorithms have been proposed with impressive empirical success.")
    assert not result.accepts(0.9, False, "Third, we introduce a novel gradient update definition to enable a proximal search.")
    assert result.accepts(0.9, True, "We introduce a gradient update that reduces the error by 12%.")  # says what it achieved
    assert not data.accepts(0.9, True, "However, existing pruning approaches rely on training data over confidential datasets.")
    assert data.accepts(0.9, True, "When compared with previous works on the benchmark UVG dataset, NIRVANA improves quality.")


def test_json_shape(table):
    data = json.loads(json.dumps(table.to_dict()))
    assert set(data) == {"topic", "columns", "rows"}
    assert data["topic"] == TOPIC and data["columns"] == list(COLUMNS)
    for row in data["rows"]:
        assert set(row) == {"id", "title", "cells"}
        assert set(row["cells"]) == set(COLUMNS)
        for cell in row["cells"].values():
            assert set(cell) == {"text", "support"}
            assert isinstance(cell["text"], str) and (cell["support"] is None or isinstance(cell["support"], float))


def test_csv_and_markdown_round_trip(table):
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert len(rows) == len(table.rows)
    for parsed, row in zip(rows, table.rows):
        assert parsed["id"] == row.paper.id and parsed["title"] == row.paper.title
        for column in COLUMNS:
            assert parsed[column] == row.cells[column].text
            support = row.cells[column].support
            assert parsed[f"{column}_support"] == ("" if support is None else f"{support:.4f}")
    markdown = table.to_markdown()
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert lines[0] == "| Paper | Problem | Method | Data | Result | Code |"
    assert len(lines) == len(table.rows) + 2
    for line, row in zip(lines[2:], table.rows):
        assert line.count(" | ") == len(COLUMNS)  # no pipe inside a cell breaks the row
        assert row.paper.title in line


def test_columns_are_chosen_and_checked(fixture_library: Library):
    assert parse_columns("method, data") == ["method", "data"]
    from assistant.errors import InputError

    with pytest.raises(InputError, match="unknown column"):
        parse_columns("method,novelty")
    small = build_table(fixture_library, TOPIC, n=3, columns=["method", "code"])
    assert small.columns == ["method", "code"] and len(small.rows) <= 3
    assert set(small.to_dict()["rows"][0]["cells"]) == {"method", "code"}


def test_off_topic_abstains_with_nearest_titles(fixture_library: Library):
    result = build_table(fixture_library, OFF_TOPIC)
    assert result.abstained and result.rows == []
    assert result.message.startswith("No paper in the library is on this topic") and "Nearest titles" in result.message


# --- the CLI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(fixture_store_dir: Path):
    from typer.testing import CliRunner

    from assistant.cli import app

    runner = CliRunner()
    env = {"ASSISTANT_STORE_DIR": str(fixture_store_dir), "NO_COLOR": "1"}

    def run(*args: str):
        return runner.invoke(app, ["table", *args], env=env)

    return run


def test_cli_json_markdown_csv_and_output_file(cli, tmp_path: Path):
    result = cli(TOPIC, "-n", "4", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"topic", "columns", "rows"} and 1 <= len(data["rows"]) <= 4
    result = cli(TOPIC, "-n", "4", "--columns", "method,code")
    assert result.exit_code == 0, result.output
    assert "| Paper | Method | Code |" in result.stdout
    out = tmp_path / "table.csv"
    result = cli(TOPIC, "-n", "4", "--format", "csv", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert next(csv.reader(io.StringIO(out.read_text())))[:4] == ["id", "title", "problem", "problem_support"]


def test_cli_errors_are_one_line(cli):
    result = cli(OFF_TOPIC)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: No paper in the library is on this topic") and result.stderr.count("\n") == 1
    result = cli(TOPIC, "--columns", "method,novelty")
    assert result.exit_code == 1 and "error: unknown column(s) novelty" in result.stderr
    result = cli(TOPIC, "--format", "xlsx")
    assert result.exit_code == 1 and "unknown format" in result.stderr
    result = cli(TOPIC, "-n", "99")
    assert result.exit_code == 2  # out of Settings.bounds("table_papers")


# --- the UI ------------------------------------------------------------------------------


def test_ui_cell_view_highlights_the_cell_in_its_abstract(table):
    from assistant.ui.summary import render_table_cell, table_note, write_table_downloads

    assert "paper(s)" in table_note(table)
    row = next(i for i, r in enumerate(table.rows) if r.cells["method"].text)
    column = table.columns.index("method") + 1
    html = render_table_cell(table, row, column)
    text = table.rows[row].cells["method"].text
    assert f"<mark>{text[:30]}" in html.replace("&#x27;", "'") or "<mark>" in html
    assert table.rows[row].paper.title.split(":")[0] in html
    csv_path, md_path = write_table_downloads(table, "table-test")
    assert Path(csv_path).read_text() == table.to_csv() and Path(md_path).read_text() == table.to_markdown()


def test_ui_table_over_http(fixture_store_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real call to a real `assistant serve`: the Build button's API returns the
    table, its note and both downloads, fetched as a browser would."""
    from gradio_client import Client

    store = tmp_path_factory.mktemp("table-ui") / "store"
    shutil.copytree(fixture_store_dir, store)
    log_path = store.parent / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_STORE_DIR=str(store), NO_COLOR="1")
    with assistant_server([], env, log_path) as server:
        url = server.url
        client = Client(url, verbose=False)
        note, frame, cell_view, csv_button, md_button = client.predict(TOPIC, 4, ["method", "data", "code"], api_name="/literature_table")
        assert "Click a cell" in cell_view
        assert "paper(s)" in note and "Could not" not in note
        headers = frame["headers"] if isinstance(frame, dict) else list(frame.columns)
        assert list(headers) == ["Paper", "Method", "Data", "Code"]
        rows = frame["data"] if isinstance(frame, dict) else frame.values.tolist()
        assert any(row[0] == "Optimal Brain Apoptosis" for row in rows)
        texts = {}
        for button in (csv_button, md_button):
            path = button["value"] if isinstance(button, dict) else button
            with urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10) as response:
                texts[Path(path).suffix] = response.read().decode("utf-8")
        assert texts[".csv"].startswith("id,title,method,method_support,data,data_support,code,code_support")
        assert "| Paper | Method | Data | Code |" in texts[".md"]
        note, frame, _, _, _ = client.predict(OFF_TOPIC, 4, ["method"], api_name="/literature_table")
        assert "No paper in the library is on this topic" in note
