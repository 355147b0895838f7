"""The `assistant` command: a thin layer over :class:`assistant.library.Library`.

Each job's commands live in their own module and register on the one Typer app here.
"""

from __future__ import annotations

import sys

from .common import app

# Importing the command modules registers their commands on `app`.
from . import core as _core  # noqa: E402,F401
from . import answer as _answer  # noqa: E402,F401
from . import lookup as _lookup  # noqa: E402,F401
from . import serve as _serve  # noqa: E402,F401
from . import evaluate as _evaluate  # noqa: E402,F401
from . import table as _table  # noqa: E402,F401


def main() -> None:
    app(prog_name="assistant")


if __name__ == "__main__":
    sys.exit(main())
