"""Exceptions to exit codes, once for every command: :class:`TraceReplayGroup`.

Errors meant for the user print one line on stderr and exit with the codes of
:mod:`tracereplay.errors` (3 bad input, 2 usage, 1 a bug); signals exit
128 + the signal number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), a closed pipe
141. ``TRACEREPLAY_DEBUG=1`` shows the traceback of an internal error.
"""

from __future__ import annotations

import os
import select
import sys
from typing import Any, NoReturn

import click

from tracereplay.cli import signals
from tracereplay.cli.lazy import LazyGroup
from tracereplay.errors import EXIT_INPUT, EXIT_INTERNAL, TraceReplayError, first_line


class TraceReplayGroup(LazyGroup):
    """A click group whose subcommands' errors become one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM / SIGHUP (signals.Terminated)
            stopped(signals.signal_of(e))
        except TraceReplayError as e:
            fail(str(e), e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError as e:
            if not _stdout_closed():
                _internal_error(e)
            # the reader of our output went away (`| head`): stop quietly, as a
            # SIGPIPE-killed tool would; point stdout at /dev/null so the final flush cannot fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as e:
            if (signum := signals.interrupted()) is not None:
                # DuckDB turns the KeyboardInterrupt into "Query interrupted"; others wrap it too
                stopped(signum)
            # a file DuckDB reads or writes, not our SQL (no DuckDB error without DuckDB
            # imported: the CLI starts without it)
            duckdb = sys.modules.get("duckdb")
            if isinstance(e, getattr(duckdb, "IOException", ())):
                fail(f"DuckDB: {first_line(e)}", EXIT_INPUT)
            # any other DuckDB error comes from our own SQL (user SQL is UserSqlError): a bug
            _internal_error(e)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"tracereplay: error: {message}", err=True)
    sys.exit(code)


def stopped(signum: int) -> NoReturn:
    click.echo(signals.message(signum), err=True)
    sys.exit(signals.exit_status(signum))


def _internal_error(e: Exception) -> NoReturn:
    if os.environ.get("TRACEREPLAY_DEBUG"):
        raise e
    fail(
        f"internal error: {type(e).__name__}: {first_line(e)} "
        "(a bug; TRACEREPLAY_DEBUG=1 shows the traceback)",
        EXIT_INTERNAL,
    )


def _stdout_closed() -> bool:
    """Is our stdout a pipe whose reader has gone (rather than another broken socket)?"""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _fd, ev in poller.poll(0))


__all__ = ["TraceReplayGroup", "fail", "first_line", "stopped"]
