"""One progress-callback signature for every long job (ingest, summaries, evaluation).

A callback receives ``(done, total, message)``: ``done`` and ``total`` are counts of
whatever the job processes (papers embedded, summary steps, questions asked), so a
front end can show a bar and an ETA (gr.Progress, tqdm) without knowing the job.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]


def report(progress: Progress | None, done: int, total: int, message: str) -> None:
    """Call the callback if there is one; a broken display never breaks the work."""
    if progress is None:
        return
    try:
        progress(int(done), int(total), message)
    except Exception:  # noqa: BLE001 - progress is cosmetic
        pass
