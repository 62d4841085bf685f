"""Outputs written atomically, and temporary files that never outlive their writer.

Every file tracereplay writes (databases, converted traces, synthetic traces,
manifests) is built under a temporary name in the destination's directory and
renamed over the destination only when complete (:func:`atomic_output`), so a
crash, Ctrl-C or SIGKILL never leaves a half-written file where the user
expects an output, and ``--force`` never destroys the old file before the new
one is whole.

Temporary names carry the writer's pid and host
(``.tracereplay-<pid>.<host>.<token><suffix>.tmp``). A process killed with
SIGKILL cannot remove its own, so the next writer in the same directory removes
those whose writer is gone (:func:`sweep_stale`), as ``record`` does for the
tracefs instances of killed recorders. :func:`scratch_dir` gives a process a
private directory under the system temp directory that is swept the same way.

Example::

    with atomic_output("trace.duckdb", force=False, suffix=".duckdb") as tmp:
        con = duckdb.connect(tmp)   # or open(tmp, "wb"), gzip.open(tmp, "wt"), ...
        ...
        con.close()
    # trace.duckdb now exists, complete; on an exception nothing was written
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator

from tracereplay.errors import TraceReplayError

PREFIX = "tracereplay-"
# [.]tracereplay-<pid>.<host>.<token>...: hidden in output directories, visible in /tmp
_TEMP_NAME = re.compile(r"^\.?tracereplay-(\d+)\.([A-Za-z0-9-]+)\.[0-9a-f]{12}")
# writes to an output fail with these for reasons of the output, not the input
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


class OutputExistsError(TraceReplayError):
    """The output exists and the caller did not ask to replace it."""


class OutputError(TraceReplayError):
    """The output cannot be written (missing directory, disk full, read-only, ...)."""


def check_new_output(*paths: str | None, force: bool = False) -> None:
    """The one overwrite guard: refuse an existing output unless ``force``, or a missing directory.

    Also removes the temporary files that killed writers left next to each
    output (:func:`sweep_stale`), so the next run cleans up even when it fails.
    """
    for p in paths:
        if p is None:
            continue
        directory = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(directory):
            what = "is not a directory" if os.path.exists(directory) else "does not exist"
            raise OutputError(f"{p}: directory {directory} {what}")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OutputError(f"{p}: directory {directory} is not writable")
        sweep_stale(directory)
        if not force and os.path.lexists(p):
            raise OutputExistsError(f"{p}: already exists (use --force to replace it)")


def _host_tag() -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24]
    return host or "host"


def temp_name(suffix: str = "", *, hidden: bool = True) -> str:
    """A fresh temporary file name naming this process and host, ending in ``.tmp``."""
    dot = "." if hidden else ""
    return f"{dot}{PREFIX}{os.getpid()}.{_host_tag()}.{secrets.token_hex(6)}{suffix}.tmp"


@contextlib.contextmanager
def atomic_output(path: str, *, force: bool = False, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to ``path``; once the block succeeds it becomes ``path``.

    The temporary file does not exist yet: the caller creates it (``open(tmp,
    "wb")``, ``duckdb.connect(tmp)``, a writer taking a path) and closes it
    before the block ends. Then it is fsynced and renamed over ``path`` (never
    replacing a file that appeared meanwhile unless ``force``). On any
    exception, or KeyboardInterrupt, the temporary file and its companions
    (DuckDB's ``.wal`` and spill directory) are removed and ``path`` is untouched.
    Stale temporary files of dead writers in the same directory go first
    (:func:`check_new_output`).
    """
    check_new_output(path, force=force)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a directory")
    tmp = os.path.join(directory, temp_name(suffix))
    try:
        try:
            yield tmp
        except OSError as e:
            # a permission error on the temporary file itself is the output's, not the input's
            ours = isinstance(e.filename, str) and e.filename.startswith(tmp)
            if e.errno in _OUTPUT_ERRNOS or ours:
                raise OutputError(f"{path}: cannot write: {e.strerror}") from None
            raise
        publish(tmp, path, force=force)
    finally:
        remove_temp(tmp)


def publish(tmp: str, path: str, *, force: bool) -> None:
    """fsync the finished ``tmp`` and rename it to ``path`` (refusing to replace unless ``force``)."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except FileNotFoundError:
        raise OutputError(f"{path}: the writer produced no file") from None
    try:
        os.fsync(fd)  # the data is on disk before the name points at it
    finally:
        os.close(fd)
    try:
        if force:
            os.replace(tmp, path)
        else:
            _rename_no_replace(tmp, path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror}") from None
    with contextlib.suppress(OSError):  # the rename itself is durable once the directory is
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _rename_no_replace(tmp: str, path: str) -> None:
    """Rename unless ``path`` appeared since the guard ran (a hard link fails if it exists)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path}: already exists (use --force to replace it)") from None
    except OSError:  # no hard links on this file system: check, then rename
        check_new_output(path)
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_directory(path: str, *, force: bool = False) -> Iterator[str]:
    """Like :func:`atomic_output` for a directory: yield a new empty directory next to ``path``.

    Once the block succeeds it is renamed to ``path``; with ``force`` an existing
    ``path`` is first renamed aside under a temporary name (swept if we die), so
    ``path`` is always either the old directory or the complete new one. On any
    exception the new directory is removed and ``path`` is untouched.
    """
    check_new_output(path, force=force)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{path}: exists and is not a directory")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, temp_name(".d"))
    old = os.path.join(directory, temp_name(".old"))
    try:
        try:
            os.mkdir(tmp)
            yield tmp
        except OSError as e:
            if e.errno in _OUTPUT_ERRNOS:
                raise OutputError(f"{path}: cannot write: {e.strerror}") from None
            raise
        try:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if os.path.lexists(path):
                if not force:
                    raise OutputExistsError(f"{path}: already exists (use --force to replace it)")
                os.rename(path, old)
            os.rename(tmp, path)
        except OSError as e:
            raise OutputError(f"{path}: cannot write: {e.strerror}") from None
    finally:
        remove_temp(tmp)
        remove_temp(old)


def remove_temp(tmp: str) -> None:
    """Remove ``tmp`` and every companion whose name starts with it (``.wal``, ``.tmp/``)."""
    directory, base = os.path.split(tmp)
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.startswith(base):
                _remove(entry.path)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def sweep_stale(directory: str) -> list[str]:
    """Remove temporary files and directories in ``directory`` whose writer process is gone.

    Only names this module makes are considered, and only those written on this
    host (on a shared file system another host's pids mean nothing here).
    Returns the names removed.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    host = _host_tag()
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None or m.group(2) != host:
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if writer_gone(int(m.group(1)), mtime):
            _remove(entry.path)
            removed.append(entry.name)
    return removed


def writer_gone(pid: int, written_at: float) -> bool:
    """Is process ``pid``, which last wrote a file at ``written_at`` (epoch s), gone?

    A live process with that pid which started after the file was written is a
    reused pid, not the writer.
    """
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    except OverflowError:
        return True  # no such pid can exist
    started = _process_start(pid)
    return started is not None and started > written_at + 2  # /proc/stat btime is whole seconds


def _process_start(pid: int) -> float | None:
    """Start time of ``pid`` in epoch seconds (Linux /proc), None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # field 22 (starttime, clock ticks since boot) counted after the ")" ending comm
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def scratch_dir(parent: str | None = None) -> Iterator[str]:
    """A private directory for this process's temporary files, removed afterwards.

    Made under ``parent`` (default: the system temp directory) with a
    pid-tagged name, after sweeping the directories of killed processes there.
    """
    base = parent or tempfile.gettempdir()
    sweep_stale(base)
    path = os.path.join(base, temp_name(hidden=False)[: -len(".tmp")])
    os.mkdir(path, 0o700)
    try:
        yield path
    finally:
        _remove(path)


__all__ = [
    "OutputError",
    "OutputExistsError",
    "atomic_directory",
    "atomic_output",
    "check_new_output",
    "publish",
    "remove_temp",
    "scratch_dir",
    "sweep_stale",
    "temp_name",
    "writer_gone",
]
