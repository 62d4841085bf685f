"""Errors the library raises; the CLI turns each into one line and an exit code.

Exit codes (documented in the README):

* 0 success
* 1 internal error (a bug: please report it), including an error in the
  tool's own SQL (named queries, table building, reconstruction)
* 2 usage error: click's own code for bad options, and ours for unknown
  policies, parameters, formats and query names (:class:`UsageError`)
* 3 input error: missing file, unreadable or malformed trace, bad manifest or
  cost file, an error in SQL the user gave to ``query``; and output paths that
  cannot be used (exists without ``--force``, missing or unwritable directory)
* 4 the result is partial (lost events, skipped lines) and ``--strict`` was given
* 5 ``tracereplay check``: an expectation did not hold (the analysis ran; its
  result differs from the expectation file)
* 130 interrupted (Ctrl-C; 128 + the signal: 143 SIGTERM, 129 SIGHUP)
* 141 the reader of our output went away (``| head``)
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_PARTIAL = 4
EXIT_EXPECTATION_FAILED = 5


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class TraceReplayError(Exception):
    """Base class of every error meant for the user, not a traceback."""

    exit_code = EXIT_INPUT


class UsageError(TraceReplayError):
    """The command line names something that does not exist (a policy, format, query, ...)."""

    exit_code = EXIT_USAGE


class UserSqlError(TraceReplayError):
    """SQL the user wrote failed (bad input, exit 3); our own SQL failing is a bug (exit 1)."""


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
