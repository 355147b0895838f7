"""What a caller of the UI (a browser or any HTTP client of the Gradio API) may make the
server do, beyond what the operator chose at start-up:

- Ingest reads only files Gradio received as uploads: a path must lie inside Gradio's
  upload/cache folder once symlinks are resolved, and be no larger than the
  ``max_upload_mb`` setting (Gradio enforces the same limit on the upload itself, see
  :func:`max_file_size`). Any other server path is refused by name.
- Answers and summaries use only the start-up model or llama.cpp server, the packaged
  default model, or what the operator allowed with ``assistant serve --allow-model PATH``
  / ``--allow-llm-url URL`` (settings ``allow_models`` / ``allow_llm_urls``). Nothing else
  is opened or contacted: the check runs before any file is read or URL is requested.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..settings import Settings

MB = 1024 * 1024


# --- uploads ---------------------------------------------------------------------------------


def upload_folder() -> Path:
    """Where Gradio keeps the files it received (GRADIO_TEMP_DIR, else <tmp>/gradio), resolved."""
    from gradio import utils

    return Path(utils.get_upload_folder()).resolve()


def max_file_size(settings: Settings) -> int:
    """The upload limit in bytes, for Blocks.launch(max_file_size=...)."""
    return int(settings.max_upload_mb * MB)


def _mb(size: float) -> str:
    return f"{size / MB:.3g} MB"


def uploaded_files(paths: Sequence[str], settings: Settings, folder: Path | None = None) -> tuple[list[str], list[str]]:
    """(paths to ingest, one message per refused path): only regular files inside Gradio's
    upload folder after resolving symlinks, and within the upload size limit."""
    folder = (folder or upload_folder()).resolve()
    limit = max_file_size(settings)
    accepted: list[str] = []
    refused: list[str] = []
    for path in paths:
        name = Path(path).name or str(path)
        try:
            real = Path(path).resolve(strict=True)
            inside = real.is_relative_to(folder) and real != folder and real.is_file()
            size = real.stat().st_size if inside else 0
        except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a bad name
            inside, size = False, 0
        if not inside:
            refused.append(
                f"Not uploaded through this page, left out: {name} (the library adds only files uploaded here)."
            )
        elif size > limit:
            refused.append(
                f"Too large, left out: {name} ({_mb(size)}; uploads are limited to {_mb(limit)}, "
                "the max_upload_mb setting)."
            )
        else:
            accepted.append(str(path))
    return accepted, refused


# --- model and LLM server ----------------------------------------------------------------------


def _same_path(a: str, b: str) -> bool:
    def norm(p: str) -> str:
        return os.path.realpath(os.path.expanduser(p.strip()))

    return norm(a) == norm(b)


def _url_key(url: str) -> tuple:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number
        return ("invalid", url.strip())
    return (scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/"), parts.query, parts.username, parts.password)


def allowed_models(base: Settings) -> list[str]:
    return list(dict.fromkeys(m for m in [base.model, *base.allow_models] if m))


def allowed_llm_urls(base: Settings) -> list[str]:
    return list(dict.fromkeys(u for u in [base.llm_url, *base.allow_llm_urls] if u))


def model_refusal(base: Settings, model: str | None, llm_url: str | None) -> str | None:
    """Why a request may not use this model or server (None when it may). `base` is the
    server's start-up settings: its model and server, and the operator's allow lists."""
    url = (llm_url or "").strip()
    if url:
        allowed = allowed_llm_urls(base)
        if any(_url_key(url) == _url_key(a) for a in allowed):
            return None
        listed = ", ".join(allowed) if allowed else "none"
        return (
            f"llama.cpp server URL not allowed: {url}. This server may use: {listed} "
            "(an operator allows another with `assistant serve --allow-llm-url URL`)"
        )
    model = (model or "").strip()
    if not model:
        return None  # the packaged default
    allowed = allowed_models(base)
    if any(_same_path(model, a) for a in allowed):
        return None
    listed = ", ".join(["the packaged default (leave the box empty)", *allowed])
    return (
        f"model file not found among the models this server allows: {model}. Allowed: {listed} "
        "(an operator allows another with `assistant serve --allow-model PATH`)"
    )
