"""rich progress bars behind :class:`tracereplay.progress.Progress` (see :mod:`.progress_bars`).

rich draws them (thread-safe, redraws in place, bytes and rates formatted);
they are transient, so the output that follows is not interleaved with bars.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBars
from rich.progress import Task as RichTask
from rich.text import Text

from tracereplay.progress import Task

__all__ = ["RichProgress"]


class _Amount(ProgressColumn):
    """``12.3/45.6 MB`` for bytes, ``3/6 VMs`` for counts, nothing when the total is unknown."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()
        self._count = MofNCompleteColumn()

    def render(self, task: RichTask) -> Text:
        if task.total is None:
            return Text("")
        unit = task.fields.get("unit", "")
        if unit == "bytes":
            return self._bytes.render(task)
        out = self._count.render(task)
        out.append(f" {unit}" if unit else "")
        return out


class _RichTask:
    def __init__(self, bars: RichBars, task_id: Any) -> None:
        self._bars, self._id = bars, task_id

    def advance(self, n: float = 1) -> None:
        self._bars.advance(self._id, n)

    def update(
        self, *, completed: float | None = None, total: float | None = None, note: str = ""
    ) -> None:
        fields: dict[str, Any] = {"note": note} if note else {}
        self._bars.update(self._id, completed=completed, total=total, **fields)


class RichProgress:
    """A :class:`tracereplay.progress.Progress` drawing rich bars on ``console``.

    The display runs while at least one task is open (tasks may open and close
    in any thread: the reader's prefetch thread reports the bytes it read).
    """

    def __init__(self, console: Console) -> None:
        self._bars = RichBars(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            _Amount(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._open = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def task(self, description: str, *, total: float | None = None, unit: str = "") -> Iterator[Task]:
        with self._lock:
            if self._open == 0:
                self._bars.start()
            self._open += 1
            task_id = self._bars.add_task(description, total=total, unit=unit, note="")
            self._bars.refresh()  # drawn at once, even if it ends before the next redraw
        try:
            yield _RichTask(self._bars, task_id)
        finally:
            with self._lock:
                self._bars.remove_task(task_id)
                self._open -= 1
                if self._open == 0:
                    self._bars.stop()
