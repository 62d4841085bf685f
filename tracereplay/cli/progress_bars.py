"""Progress bars on a terminal's stderr for the library's :mod:`tracereplay.progress` reports.

Nothing is drawn when stderr is not a terminal or ``--quiet`` is given: the
group installs :func:`terminal_progress` for every command and
:func:`quiet_option` turns it off for one. The bars themselves
(:mod:`tracereplay.cli.rich_bars`) import rich only when a terminal will show them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tracereplay import progress
from tracereplay.progress import NO_PROGRESS, Progress

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["quiet_option", "terminal_progress"]


def terminal_progress(stream: Any = None) -> Progress:
    """Bars on ``stream`` (default stderr) when it is a terminal, else :data:`NO_PROGRESS`."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return NO_PROGRESS
    from rich.console import Console

    from tracereplay.cli.rich_bars import RichProgress

    return RichProgress(Console(file=stream))


def _quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:  # for this command: no bars, whatever the terminal
        ctx.with_resource(progress.using(NO_PROGRESS))
    return value


def quiet_option(fn: F) -> F:
    """``--quiet``: no progress bars (they are drawn only on a terminal's stderr anyway)."""
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_quiet,
        help="No progress bars (drawn only when stderr is a terminal).",
    )(fn)
