"""Room on the disk under a local store: checked before a batch is written, and kept for
its rollback, so a disk that fills up mid-write still leaves room to put the old rows back."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .chroma_client import free_bytes
from .errors import DiskFull

_MB = 1024 * 1024
RESERVE_NAME = ".rollback-reserve"  # in the store directory
LOW_SPACE = 8 * _MB  # a failed local write with less free than this ran out of disk


def full_error(store_dir: Path) -> DiskFull:
    return DiskFull(f"the disk holding {store_dir} is full: free space and run again; nothing was changed")


def nearly_full(store_dir: Path) -> bool:
    """Less free space than any write needs: a failure now most likely came from the disk
    (Chroma's own messages often hide it)."""
    free = free_bytes(store_dir)
    return free is not None and free < LOW_SPACE


@contextlib.contextmanager
def room_for(store_dir: Path, needed: int) -> Iterator[Callable[[], None]]:
    """Refuses up front (nothing written) when the disk has less free space than the batch
    needs (`needed`, an estimate); otherwise writes a reserve file beside the store, which
    a failed write deletes before its rollback. Yields the function that deletes it."""
    path = store_dir / RESERVE_NAME
    reserve = min(128 * _MB, max(8 * _MB, needed // 4))

    def release() -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    free = free_bytes(store_dir)
    held = path.stat().st_size if path.exists() else 0  # left by a killed write
    if free is not None and free + held < needed + reserve:
        raise DiskFull(
            f"the disk holding {store_dir} is full ({(free + held) // _MB} MB free, "
            f"this batch needs about {(needed + reserve) // _MB + 1} MB): free space and run again; nothing was changed"
        )
    try:
        with open(path, "wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, reserve)
    except OSError as exc:
        release()
        if exc.errno == errno.ENOSPC:
            raise full_error(store_dir) from exc
        # a file system without fallocate, say: write without the reserve
    try:
        yield release
    finally:
        release()
