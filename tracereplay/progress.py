"""Progress of long work, reported through a small protocol; silent unless a front end listens.

The library (readers' batches in :mod:`tracereplay.store`, reconstruction, replay,
synth, the writers) reports progress to :func:`current`, a :class:`Progress`
that does nothing by default. A front end installs its own for the duration of
a command with :func:`using`; the CLI's draws rich bars on a terminal's stderr
(:mod:`tracereplay.cli.progress_bars`). Library code that hands work to other
threads takes the :class:`Progress` object along (``current()`` in the calling
thread), as context variables do not follow work into threads::

    with current().task("replaying numa-protect", total=len(vms), unit="VMs") as t:
        for vm in vms:
            ...
            t.advance()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Task(Protocol):
    """One piece of work being tracked (a bar)."""

    def advance(self, n: float = 1) -> None:
        """``n`` more units done."""

    def update(
        self, *, completed: float | None = None, total: float | None = None, note: str = ""
    ) -> None:
        """Set the units done or the total; ``note`` is shown beside the bar (e.g. events so far)."""


class Progress(Protocol):
    """Hands out :class:`Task` objects; ``unit`` is ``bytes`` or what ``total`` counts."""

    def task(
        self, description: str, *, total: float | None = None, unit: str = ""
    ) -> contextlib.AbstractContextManager[Task]: ...


class _NoTask:
    def advance(self, n: float = 1) -> None:
        pass

    def update(
        self, *, completed: float | None = None, total: float | None = None, note: str = ""
    ) -> None:
        pass


class NoProgress:
    """The default: reports nothing, costs nothing."""

    def task(
        self, description: str, *, total: float | None = None, unit: str = ""
    ) -> contextlib.AbstractContextManager[Task]:
        return contextlib.nullcontext(_NoTask())


NO_PROGRESS: Progress = NoProgress()
_current: ContextVar[Progress] = ContextVar("tracereplay_progress", default=NO_PROGRESS)


def current() -> Progress:
    """The progress reporter installed by the front end (:data:`NO_PROGRESS` if none)."""
    return _current.get()


@contextlib.contextmanager
def using(progress: Progress) -> Iterator[Progress]:
    """Report the progress of the work in this block (this thread) to ``progress``."""
    token = _current.set(progress)
    try:
        yield progress
    finally:
        _current.reset(token)


def track_batches(
    batches: Iterable[T], reader: Any, description: str, progress: Progress | None = None
) -> Iterator[T]:
    """Yield ``batches`` (Arrow record batches of ``reader``), reporting events and bytes read.

    Bytes come from the reader's optional ``bytes_progress() -> (done, total) | None``
    (position in the input, its size); without it the bar counts events only.
    """
    progress = progress or current()
    position = getattr(reader, "bytes_progress", None)
    first = position() if position is not None else None
    total = first[1] if first else None
    events = 0
    with progress.task(description, total=total, unit="bytes" if total else "events") as t:
        for batch in batches:
            events += getattr(batch, "num_rows", 0)
            at = position() if total and position is not None else None
            t.update(completed=at[0] if at else events, note=f"{events:,} events")
            yield batch
        if total:
            t.update(completed=total)


__all__ = ["NO_PROGRESS", "NoProgress", "Progress", "Task", "current", "track_batches", "using"]
