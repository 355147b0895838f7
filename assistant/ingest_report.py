"""What one ingest did, for the CLI's summary line, `--json` and the UI's Library tab."""

from __future__ import annotations

from dataclasses import dataclass, field

from .readers import Problem


@dataclass
class IngestReport:
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files that could not be read
    problems: list[Problem] = field(default_factory=list)  # records skipped
    added: int = 0
    updated: int = 0  # content changed: re-embedded
    metadata_only: int = 0  # e.g. the paper was seen in one more file
    unchanged: int = 0
    embedded: int = 0  # texts sent to the embedder
    rekeyed: int = 0  # stored under an id of the earlier ASCII-only id function, moved to today's id

    @property
    def papers_read(self) -> int:
        return self.added + self.updated + self.metadata_only + self.unchanged

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "errors": self.errors,
            "problems": [str(p) for p in self.problems],
            "added": self.added,
            "updated": self.updated,
            "metadata_only": self.metadata_only,
            "unchanged": self.unchanged,
            "embedded": self.embedded,
            "rekeyed": self.rekeyed,
        }
