"""JSONL reading shared by the BEIR loader and the question loader."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError


def read_jsonl(path: Path) -> list[dict]:
    """One JSON value a line; blank lines skipped; a bad line is an InputError naming it."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON: {exc.msg}") from exc
    return rows
