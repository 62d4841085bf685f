"""Progress bars on a terminal's stderr for the library's :mod:`tracereplay.progress` reports.

Nothing is drawn when stderr is not a terminal or ``--quiet`` is given: the
group installs :func:`terminal_progress` for every command and
:func:`tracereplay.cli.options.quiet_option` turns it off for one. The bars themselves
(:mod:`tracereplay.cli.rich_bars`) import rich only when a terminal will show them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from tracereplay.progress import NO_PROGRESS, Progress

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["terminal_progress"]


def terminal_progress(stream: Any = None) -> Progress:
    """Bars on ``stream`` (default stderr) when it is a terminal, else :data:`NO_PROGRESS`."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return NO_PROGRESS
    from rich.console import Console

    from tracereplay.cli.rich_bars import RichProgress

    return RichProgress(Console(file=stream))
