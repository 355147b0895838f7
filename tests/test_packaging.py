"""The package outside its clone: a non-editable wheel in a fresh virtual environment
finds its prompt templates and shipped corpus, keeps its store in the user's data
directory, and answers a question from another working directory.

The temporary venv reuses this environment's dependencies through a .pth line (the
torch/llama.cpp stack is gigabytes), but the `assistant` package itself comes only from
the built wheel: nothing of the clone is importable there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from string import Template

import pytest

from assistant import prompts
from assistant.settings import PROJECT_ROOT

from conftest import FIXTURE_PAPERS


def test_every_template_takes_exactly_the_placeholders_the_code_fills():
    files = {path.name for path in (PROJECT_ROOT / "prompts").glob("*.txt")}
    assert files == set(prompts.PLACEHOLDERS), "a template file without a contract, or a contract without a file"
    for name, expected in prompts.PLACEHOLDERS.items():
        template = Template((PROJECT_ROOT / "prompts" / name).read_text(encoding="utf-8"))
        assert prompts.placeholders(template) == set(expected), name


def test_render_refuses_missing_or_unexpected_values():
    with pytest.raises(prompts.TemplateError, match="question"):
        prompts.render("answer_user.txt", evidence="[1] x")
    with pytest.raises(prompts.TemplateError, match="topic"):
        prompts.render("answer_user.txt", evidence="[1] x", question="q", topic="t")


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding only the built wheel (dependencies borrowed)."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(PROJECT_ROOT)],
        check=True,
        capture_output=True,
        cwd=root,
    )
    wheel = next(dist.glob("assistant-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Dependencies from this environment, after the venv's own site-packages.
    (purelib / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "assistant"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_installed_wheel_answers_from_another_directory(installed_wheel: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_STORE")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env.pop("PYTHONPATH", None)

    where = subprocess.run(
        [
            str(installed_wheel / "python"),
            "-c",
            "import assistant, json; from assistant.settings import Settings; from assistant.prompts import templates_dir;"
            "s = Settings(); print(json.dumps({'package': assistant.__file__, 'store': str(s.store_dir),"
            " 'corpus': sorted(p.name for p in s.corpus_dir.glob('*.txt')), 'prompts': str(templates_dir())}))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(where.stdout)
    assert str(PROJECT_ROOT) not in found["package"], "the clone leaked into the installed environment"
    assert found["store"].startswith(str(tmp_path / "data")), found["store"]  # the user data dir, not a clone's store/
    assert len(found["corpus"]) == 5  # the shipped corpus travels inside the package
    assert str(PROJECT_ROOT) not in found["prompts"]

    ingest = _run(installed_wheel, "ingest", str(FIXTURE_PAPERS), cwd=elsewhere, env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert "33 added" in ingest.stdout

    ask = _run(installed_wheel, "ask", "How can deep unfolding networks for compressive sensing be made efficient?", "--json", cwd=elsewhere, env=env)
    assert ask.returncode == 0, ask.stderr
    result = json.loads(ask.stdout)
    assert not result["abstained"] and result["references"], result
    assert "llama_" not in ask.stderr and "Warning" not in ask.stderr, ask.stderr  # a quiet terminal
