"""Errors raised for bad input data, and the one place scripts turn them into an exit code.

Expected problems with a user's files (a missing column, a label outside the
vocabulary, bad encoding...) raise :class:`DataError`. Scripts print it as ONE
line, ``error: <file>:<line>: <what is wrong>``, and exit with status 2; no
traceback, since the traceback would only point at our code, not at the file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from data_utils.cli import ConfigError
from data_utils.task_def import TaskDefError

EXIT_DATA_ERROR = 2


class DataError(ValueError):
    """A data file is malformed. ``line`` is 1-based (None when it concerns the whole file)."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


def run_script(main: Callable[[Sequence[str] | None], object], argv=None) -> int:
    """Run a script's ``main(argv)``; expected input errors (a bad data file, task
    definition or flag value) become one stderr line and exit 2."""
    try:
        main(argv)
    except (DataError, TaskDefError, ConfigError) as exc:
        # One line: flatten any newline a message may carry (e.g. YAML parser output).
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_DATA_ERROR
    return 0
