"""Input formats behind one protocol; :func:`open_trace` picks the reader.

The format is sniffed from the first decompressed bytes, never guessed from the
file name; ``path:format`` forces one (``trace.log:ftrace-text``).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping

from tracereplay.errors import TraceFormatError, UsageError
from tracereplay.formats.common.compression import read_head
from tracereplay.readers.base import LostEvents, Reader, TraceMeta

# Reader of each format: (module, class), imported only when that format is
# read, so a text ingest does not pay for the binary readers' imports.
_READER_MODULES: dict[str, tuple[str, str]] = {
    "ftrace-text": ("tracereplay.readers.ftrace_text", "FtraceTextReader"),
    "trace-dat": ("tracereplay.readers.trace_dat", "TraceDatReader"),
    "perf-data": ("tracereplay.readers.perf_data", "PerfDataReader"),
    "perfetto": ("tracereplay.readers.perfetto", "PerfettoReader"),
}
# Sniffing order: exact magics first, then text, then the protobuf heuristics.
_SNIFF_ORDER = ("trace-dat", "perf-data", "ftrace-text", "perfetto")


def reader_class(name: str) -> type[Reader]:
    """The reader class of format ``name`` (imports its module on first use)."""
    module, cls = _READER_MODULES[name]
    reader: type[Reader] = getattr(importlib.import_module(module), cls)
    return reader


class _Readers(Mapping[str, "type[Reader]"]):
    """``READERS[name]``: the reader classes by format name, imported lazily."""

    def __getitem__(self, name: str) -> type[Reader]:
        if name not in _READER_MODULES:
            raise KeyError(name)
        return reader_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_READER_MODULES)

    def __len__(self) -> int:
        return len(_READER_MODULES)


READERS: Mapping[str, type[Reader]] = _Readers()

KNOWN_FORMATS = ("ftrace-text", "trace-dat", "perf-data", "perfetto")


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"path:format"`` -> (path, format); a plain path -> (path, None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in KNOWN_FORMATS and not os.path.exists(spec):
        return head, tail
    return spec, None


def sniff(path: str, head: bytes) -> str:
    """Format name of the trace whose first bytes are ``head``."""
    if not head:
        raise TraceFormatError(path, "empty file")
    for name in _SNIFF_ORDER:
        if reader_class(name).sniff(head):
            return name
    shown = head[:16].hex(" ")
    raise TraceFormatError(
        path,
        f"not a recognized trace format (first bytes: {shown}); "
        f"force one with PATH:FORMAT, FORMAT one of {', '.join(KNOWN_FORMATS)}",
        offset=0,
    )


def open_trace(spec: str) -> Reader:
    """A reader for the trace at ``spec`` (``path`` or ``path:format``)."""
    path, forced = split_spec(spec)
    if not os.path.exists(path):
        head, sep, tail = spec.rpartition(":")
        if sep and os.path.exists(head) and re.fullmatch(r"[\w.-]+", tail):
            raise UsageError(
                f"{spec}: unknown format {tail!r} (known: {', '.join(KNOWN_FORMATS)})"
            )
        raise TraceFormatError(path, "no such file")
    fmt = forced or sniff(path, read_head(path))
    return reader_class(fmt)(path)


__all__ = [
    "KNOWN_FORMATS",
    "READERS",
    "LostEvents",
    "Reader",
    "TraceMeta",
    "open_trace",
    "reader_class",
    "sniff",
]
