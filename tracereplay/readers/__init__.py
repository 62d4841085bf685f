"""Input formats behind one protocol; :func:`open_trace` picks the reader.

The format is sniffed from the first decompressed bytes, never guessed from the
file name; ``path:format`` forces one (``trace.log:ftrace-text``).
"""

from __future__ import annotations

import os

from tracereplay.errors import TraceFormatError
from tracereplay.formats.compression import read_head
from tracereplay.readers.base import LostEvents, Reader, TraceMeta
from tracereplay.readers.ftrace_text import FtraceTextReader
from tracereplay.readers.perf_data import PerfDataReader
from tracereplay.readers.perfetto import PerfettoReader
from tracereplay.readers.trace_dat import TraceDatReader

# Readers available in this version, by format name (one line per reader module).
READERS: dict[str, type[Reader]] = {
    FtraceTextReader.format_name: FtraceTextReader,
    TraceDatReader.format_name: TraceDatReader,
    PerfDataReader.format_name: PerfDataReader,
    PerfettoReader.format_name: PerfettoReader,
}

# Formats recognized by their magic whose reader is not in this version yet.
_RECOGNIZED: dict[str, tuple[bytes, str]] = {}
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
    for name, (magic, _label) in _RECOGNIZED.items():
        if head.startswith(magic):
            return name
    if _looks_like_perfetto(head):
        return "perfetto"
    for name, reader in READERS.items():
        if reader.sniff(head):
            return name
    shown = head[:16].hex(" ")
    raise TraceFormatError(
        path,
        f"not a recognized trace format (first bytes: {shown}); "
        f"force one with PATH:FORMAT, FORMAT one of {', '.join(KNOWN_FORMATS)}",
        offset=0,
    )


def _looks_like_perfetto(head: bytes) -> bool:
    # Trace.packet is field 1, length-delimited: tag 0x0a, then a varint length,
    # then a TracePacket whose first tag is a plausible field/wire-type pair.
    if len(head) < 4 or head[0] != 0x0A:
        return False
    i, length, shift = 1, 0, 0
    while i < len(head) and i < 6:
        b = head[i]
        length |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    return 0 < length < (1 << 26) and i < len(head) and head[i] & 0x07 in (0, 1, 2, 5)


def open_trace(spec: str) -> Reader:
    """A reader for the trace at ``spec`` (``path`` or ``path:format``)."""
    path, forced = split_spec(spec)
    if not os.path.exists(path):
        raise TraceFormatError(path, "no such file")
    fmt = forced or sniff(path, read_head(path))
    reader = READERS.get(fmt)
    if reader is None:
        label = _RECOGNIZED.get(fmt, (b"", fmt))[1]
        raise TraceFormatError(
            path,
            f"this is a {label} file; its reader is not available in this version "
            "(convert it to text with `trace-cmd report` or `perf script` meanwhile)",
        )
    return reader(path)


__all__ = ["KNOWN_FORMATS", "READERS", "LostEvents", "Reader", "TraceMeta", "open_trace", "sniff"]
