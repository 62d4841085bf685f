"""Transparent decompression of trace files, chosen by magic bytes, never by extension.

Every codec decodes through :mod:`tracereplay.formats.common.inflate` (bounded pieces,
expansion-ratio limit). A stream whose end marker is missing (a truncated
``.gz`` / ``.zst`` / ``.xz`` / ``.bz2``) yields everything decodable, then raises
:class:`TruncatedStream`: readers that can keep the sound part catch it and flag
a partial result (``iter_blocks(..., on_truncated=...)``), others report it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.inflate import (
    CorruptData,
    DecompressionLimit,
    Progress,
    Truncated,
    pieces,
)

__all__ = [
    "DecodedStream",
    "TruncatedStream",
    "compression_of",
    "file_size",
    "iter_blocks",
    "open_decompressed",
    "read_head",
]

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
}
_READ = 1 << 20


class TruncatedStream(TraceFormatError):
    """A compressed file ends inside its stream: ``decoded`` bytes came out before the cut."""

    def __init__(self, path: str, message: str, *, offset: int, decoded: int) -> None:
        super().__init__(path, message, offset=offset)
        self.decoded = decoded


def compression_of(head: bytes) -> str | None:
    """Name of the compression whose magic starts ``head``, else None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


class DecodedStream(io.RawIOBase):
    """Read-only binary stream of a compressed file's content (``read(n)`` only)."""

    def __init__(self, path: str, raw: BinaryIO, codec: str) -> None:
        super().__init__()
        self.path = path
        self.codec = codec
        self._raw = raw
        self._progress = Progress()
        self._pieces = pieces(
            codec, self._chunks(), limit=0, what=f"{codec} stream", progress=self._progress
        )
        self._buf = bytearray()
        self._error: TraceFormatError | None = None
        self._done = False

    def _chunks(self) -> Iterator[bytes]:
        while chunk := self._raw.read(_READ):
            yield chunk

    def _fill(self, n: int) -> None:
        while not self._done and (n < 0 or len(self._buf) < n):
            try:
                self._buf += next(self._pieces)
            except StopIteration:
                self._done = True
            except Truncated as e:
                self._done = True
                self._error = TruncatedStream(
                    self.path,
                    f"compressed ({self.codec}) stream cut short after {e.consumed} bytes: "
                    f"{e.decoded} bytes decoded, the rest of the trace is missing",
                    offset=e.consumed,
                    decoded=e.decoded,
                )
            except (CorruptData, DecompressionLimit) as e:
                self._done = True
                self._error = TraceFormatError(
                    self.path, str(e), offset=self._progress.consumed
                )

    def read(self, n: int | None = -1) -> bytes:
        n = -1 if n is None else n
        self._fill(n)
        if not self._buf and self._error is not None:
            raise self._error
        take = len(self._buf) if n < 0 else min(n, len(self._buf))
        out = bytes(self._buf[:take])
        del self._buf[:take]
        return out

    def readable(self) -> bool:
        return True

    @property
    def consumed(self) -> int:
        """Compressed bytes read from the file so far."""
        return self._progress.consumed

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_decompressed(path: str) -> BinaryIO | DecodedStream:
    """Open ``path`` for binary reading, decompressing gzip / zstd / xz / bzip2 on the fly."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise TraceFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise TraceFormatError(path, "is a directory, not a trace file") from None
    except PermissionError:
        raise TraceFormatError(path, "permission denied") from None
    kind = compression_of(raw.read(8))
    raw.seek(0)
    if kind is None:
        return raw
    return DecodedStream(path, raw, kind)


def read_head(path: str, size: int = 65536) -> bytes:
    """Up to ``size`` decompressed bytes from the start of ``path`` (for sniffing).

    A compressed file cut before anything decodes is an error saying so (not
    an empty file); one cut later gives its first bytes (the reader reports the cut).
    """
    with open_decompressed(path) as f:
        try:
            return f.read(size)
        except TruncatedStream as e:
            raise TraceFormatError(
                path,
                f"compressed stream cut short after {e.offset} bytes, before any data "
                "could be decoded (truncated file)",
                offset=e.offset,
            ) from None


def iter_blocks(
    path: str,
    block_size: int,
    on_truncated: Callable[[TruncatedStream], None] | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """Yield decompressed blocks of about ``block_size`` bytes; clear errors on corrupt data.

    A compressed stream cut short yields every byte decoded before the cut, then
    raises :class:`TruncatedStream`, or, with ``on_truncated``, hands it over and ends.
    ``on_read`` gets the bytes of the file on disk read so far (compressed ones for a
    compressed file) after each block, for progress.
    """
    with open_decompressed(path) as f:
        while True:
            try:
                block = f.read(block_size)
            except TruncatedStream as e:
                if on_truncated is None:
                    raise
                on_truncated(e)
                return
            if not block:
                return
            if on_read is not None:
                on_read(f.consumed if isinstance(f, DecodedStream) else f.tell())
            yield block


def file_size(path: str) -> int:
    return os.stat(path).st_size
