"""Bounds-checked little/big-endian reads from a memory-mapped binary trace.

Every read names the file and byte offset when it runs past the end, so a
truncated trace.dat / perf.data gives one clear :class:`TraceFormatError`.
A compressed file (``trace.dat.zst``, ``perf.data.xz``) is decompressed, with
the bounded decoders of :mod:`tracereplay.formats.common.compression`, into an
unlinked temporary file that is mapped instead: offsets in errors are then
offsets in the decompressed data, and nothing is left behind even after a kill.
"""

from __future__ import annotations

import contextlib
import mmap
import shutil
import struct
import tempfile

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.compression import (
    TruncatedStream,
    compression_of,
    open_decompressed,
)
from tracereplay.formats.common.inflate import CorruptData, DecompressionLimit, inflate

__all__ = ["BinFile", "decompress"]


class BinFile:
    """A read-only mapping of a file (or bytes) with checked reads."""

    def __init__(self, path: str, data: bytes | mmap.mmap | None = None) -> None:
        self.path = path
        self.decompressed = False
        if data is None:
            with open(path, "rb") as f:
                head = f.read(8)
                if compression_of(head) is not None:
                    data = self._decompressed(path)
                else:
                    try:
                        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    except ValueError:  # empty file
                        data = b""
        self.data = data
        self.size = len(data)
        self.endian = "<"
        self.released = 0  # bytes handed to release(): how far the reader got, for progress

    def _decompressed(self, path: str) -> bytes | mmap.mmap:
        """The content of a compressed file, in an unlinked temporary file, mapped."""
        self.decompressed = True
        with tempfile.TemporaryFile(prefix="tracereplay-") as tmp:
            # a cut stream is a cut file: the reader reports what is missing
            with open_decompressed(path) as src, contextlib.suppress(TruncatedStream):
                shutil.copyfileobj(src, tmp, 1 << 20)
            tmp.flush()
            if tmp.tell() == 0:
                return b""
            return mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ)

    def error(self, message: str, offset: int) -> TraceFormatError:
        return TraceFormatError(self.path, message, offset=offset)

    def need(self, offset: int, n: int, what: str) -> None:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise self.error(f"truncated: {what} needs {n} bytes, file has {self.size}", offset)

    def bytes(self, offset: int, n: int, what: str = "data") -> bytes:
        self.need(offset, n, what)
        return bytes(self.data[offset : offset + n])

    def u(self, offset: int, size: int, what: str = "integer") -> int:
        self.need(offset, size, what)
        code = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
        value: int = struct.unpack_from(self.endian + code, self.data, offset)[0]
        return value

    def release(self, start: int, end: int) -> None:
        """Drop the mapped pages of [start, end) from memory (read again if touched).

        Readers call it behind their cursor, so the resident size of a large
        file does not grow with the file.
        """
        self.released += max(0, min(end, self.size) - start)
        if not isinstance(self.data, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
            return
        lo = start - start % mmap.PAGESIZE
        hi = min(end, self.size)
        hi -= hi % mmap.PAGESIZE
        if hi > lo:
            self.data.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def cstr(self, offset: int, what: str = "string", limit: int = 4096) -> tuple[str, int]:
        """NUL-terminated string at ``offset`` and the offset after its NUL."""
        end = self.data.find(b"\0", offset, min(self.size, offset + limit))
        if end < 0:
            raise self.error(f"truncated or unterminated {what}", offset)
        return bytes(self.data[offset:end]).decode("utf-8", "replace"), end + 1


def decompress(algo: str, blob: bytes, expected: int, where: str) -> bytes:
    """Decompress one trace-cmd chunk or section (bounded: :mod:`tracereplay.formats.common.inflate`).

    ``where`` names file and offset for errors; ValueError when the data is corrupt,
    does not give ``expected`` bytes, or passes the decompression limits.
    """
    if algo not in ("zlib", "zstd"):
        raise ValueError(f"unsupported compression {algo!r}")
    try:
        return inflate(algo, blob, expected=expected, what=f"{where}: {algo} data")
    except (CorruptData, DecompressionLimit) as e:
        raise ValueError(str(e)) from None
