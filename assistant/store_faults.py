"""Failures of the parts under the store (a Chroma server, the disk, a read-only
directory) as one-line errors that name the part and the fix.

Chroma reports these in its own words (an httpx timeout, "attempt to write a readonly
database", "Failed to apply logs to the metadata segment" for a full disk, "… hnsw segment
…" for a vector index a kill left half-saved: see repair.py); the store's
callers see :class:`StoreError` / :class:`DiskFull` instead, and nothing else changes.
"""

from __future__ import annotations

import errno

from .chroma_client import reason, server_timeout_message
from .disk import nearly_full
from .errors import AssistantError, DiskFull, StoreError
from .settings import Settings


# What Chroma 1.5 says when it cannot load or replay into a half-saved HNSW index (seen after
# kills: a truncated id map, index files out of step with it); its other "hnsw segment"
# errors (a locked database, a failed save) are not damage and pass through.
_HALF_SAVED_INDEX = (
    "Error deserializing pickle file",
    "Failed to apply logs to the hnsw segment writer",
    "Error loading hnsw index",
)


def translate(settings: Settings, location: str, exc: Exception) -> StoreError | None:
    """The one-line error for a failure of the parts underneath, None for anything else."""
    if settings.chroma_url:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return StoreError(server_timeout_message(settings))
        if isinstance(exc, httpx.TransportError):
            return StoreError(
                f"lost the Chroma server at {location} ({reason(exc)}): start it again "
                "(`chroma run --path DIR --port PORT`) or fix --chroma-url; what it stored is kept"
            )
        return None
    if "readonly database" in str(exc) or getattr(exc, "errno", None) == errno.EROFS:
        return StoreError(f"the store at {location} is read-only: make it writable, or ingest into another --store")
    if caused_by_full_disk(settings, exc):
        return DiskFull(f"the disk holding {settings.store_dir} is full, so the store cannot be read or written: free space and run again")
    if any(sign in str(exc) for sign in _HALF_SAVED_INDEX):
        return StoreError(
            f"the vector index of the store at {location} is damaged, most likely because Chroma was stopped while "
            f"saving it (a kill, crash or power loss; Chroma said: {reason(exc)}): run `assistant repair --store "
            f"{settings.store_dir}` to rebuild it from the papers its database holds; no committed paper is lost"
        )
    return None


def caused_by_full_disk(settings: Settings, exc: BaseException) -> bool:
    """Did this failure come from a full disk? Chroma's own messages often hide it
    ("Failed to apply logs to the metadata segment"), so a local store's free space
    is asked as well."""
    if isinstance(exc, DiskFull):
        return True
    if settings.chroma_url or isinstance(exc, (KeyboardInterrupt, AssistantError)):
        return False
    text = str(exc).lower()
    if getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in text or "no space left" in text:
        return True
    return nearly_full(settings.store_dir)


def unrestored(settings: Settings, location: str, failure: BaseException, restore_failure: Exception, full: bool) -> StoreError:
    """A write failed and so did putting the old rows back: say what happens next."""
    later = "the next ingest or search of this store rolls the unfinished batch back"
    if full:
        return DiskFull(
            f"the disk holding {settings.store_dir} is full, too full even to put the old rows back: "
            f"free space, then {later}"
        )
    if isinstance(restore_failure, StoreError):  # the part's own message (server gone, ...)
        return StoreError(f"{restore_failure}; {later} once it works again")
    return StoreError(
        f"writing to {location} failed ({reason(failure)}) and so did putting the old rows back "
        f"({reason(restore_failure)}): {later}"
    )
