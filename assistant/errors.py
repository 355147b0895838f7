"""The one family of errors the CLI and the UI show as a single readable line.

Anything raised from inside the package that the user can fix (an empty query, an
empty store, a missing model, an unreachable server, an unreadable file) is an
:class:`AssistantError`. Everything else is a bug: the CLI prints its traceback with
``--debug`` and the UI logs it, so a user-facing message never hides a defect.
"""

from __future__ import annotations


class AssistantError(Exception):
    """A failure the user can fix; ``str(error)`` says what happened and how to fix it."""


class InputError(AssistantError, ValueError):
    """The request itself is unusable: an empty question, an unknown format or paper id."""


class EmptyStore(AssistantError):
    """Searching before anything was ingested: tell the user how to fix it."""


class StoreError(AssistantError):
    """The store cannot be opened, read or written (path, permissions, server)."""


class DiskFull(StoreError):
    """The disk holding a local store has no room for a write. Its own class so that a
    caller running several batches can say which of them were kept."""


class ModelNotFound(AssistantError):
    """A configured embedding model path or name cannot be loaded offline."""


class LLMError(AssistantError):
    """The model cannot be loaded or reached; the message says which and how to fix it."""


class UnreadableFile(AssistantError):
    """A file given to ingest cannot be read or parsed as any supported format."""
