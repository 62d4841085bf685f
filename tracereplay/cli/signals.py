"""Signals and temporary files of the ``tracereplay`` process.

SIGINT raises KeyboardInterrupt and SIGTERM / SIGHUP raise :class:`Terminated`
(a KeyboardInterrupt, so every ``finally`` and ``except KeyboardInterrupt``
cleanup runs, as for Ctrl-C) in the main thread, which alone runs Python
signal handlers; worker threads (the reader prefetch, DuckDB's, numba's)
never see them and are stopped by the main thread's cleanup. The first
signal is remembered: DuckDB turns a KeyboardInterrupt raised while it
executes into its own ``Query interrupted`` error, and other libraries wrap it
too, so whatever exception then escapes a command means "interrupted" and
exits 128 + the signal number (130 for SIGINT, 143 for SIGTERM, 129 for
SIGHUP) with one line on stderr. A signal that was ignored when the process
started (``nohup``, a background job of a non-interactive shell) stays ignored.

Temporary files the command makes through :mod:`tempfile` go into a private,
pid-tagged scratch directory (:func:`tracereplay.atomic.scratch_dir`), removed
on exit and, after a SIGKILL, by the next run.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from tracereplay.atomic import scratch_dir

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # signals received since command_process() began, in order


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C so the same cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def interrupted() -> int | None:
    """The first signal received by this command, None when none was."""
    return _received[0] if _received else None


def exit_status(signum: int) -> int:
    """Exit status of a command stopped by ``signum``: 128 + the signal number (shell convention)."""
    return 128 + signum


def message(signum: int) -> str:
    if signum == signal.SIGINT:
        return "tracereplay: interrupted"
    return f"tracereplay: terminated ({signal.Signals(signum).name})"


def signal_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (SIGINT unless it is a :class:`Terminated`)."""
    return exc.signum if isinstance(exc, Terminated) else interrupted() or signal.SIGINT


@contextlib.contextmanager
def command_process() -> Iterator[None]:
    """Install the handlers and the scratch directory around one command; restore both after."""
    _received.clear()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN:
                continue
            previous[sig] = old
            signal.signal(sig, _handler)
    old_tempdir = tempfile.tempdir
    try:
        with contextlib.ExitStack() as stack:
            with contextlib.suppress(OSError):  # no usable temp dir: commands report it themselves
                tempfile.tempdir = stack.enter_context(scratch_dir())
            try:
                yield
            finally:
                tempfile.tempdir = old_tempdir
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)


__all__ = ["Terminated", "command_process", "exit_status", "interrupted", "message", "signal_of"]
