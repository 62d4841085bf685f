"""Errors the library raises; the CLI turns each into one line and an exit code.

Exit codes (documented in the README):

* 0 success
* 1 internal error (a bug: please report it)
* 2 usage error (click's own code for bad options)
* 3 input error: missing file, unreadable or malformed trace, bad manifest
* 4 the result is partial (lost events, skipped lines) and ``--strict`` was given
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_PARTIAL = 4


class TraceReplayError(Exception):
    """Base class of every error meant for the user, not a traceback."""

    exit_code = EXIT_INPUT


class TraceFormatError(TraceReplayError):
    """The input cannot be read. Names the file and, when known, line or byte offset."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.offset = offset
        self.detail = message
        where = path
        if line is not None:
            where += f":{line}"
        elif offset is not None:
            where += f" @ byte {offset}"
        super().__init__(f"{where}: {message}")


class ManifestError(TraceReplayError):
    """The VM manifest is missing, malformed or inconsistent."""
