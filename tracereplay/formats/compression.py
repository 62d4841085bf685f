"""Transparent decompression of trace files, chosen by magic bytes, never by extension."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from tracereplay.errors import TraceFormatError

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
}


def compression_of(head: bytes) -> str | None:
    """Name of the compression whose magic starts ``head``, else None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_decompressed(path: str) -> BinaryIO:
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
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def read_head(path: str, size: int = 65536) -> bytes:
    """Up to ``size`` decompressed bytes from the start of ``path`` (for sniffing)."""
    with open_decompressed(path) as f:
        try:
            return f.read(size)
        except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as e:
            raise TraceFormatError(path, f"corrupt compressed data: {e}", offset=0) from None


def iter_blocks(path: str, block_size: int) -> Iterator[bytes]:
    """Yield decompressed blocks of about ``block_size`` bytes; clear errors on corrupt data."""
    done = 0
    with open_decompressed(path) as f:
        while True:
            try:
                block = f.read(block_size)
            except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as e:
                raise TraceFormatError(
                    path, f"corrupt or truncated compressed data: {e}", offset=done
                ) from None
            if not block:
                return
            done += len(block)
            yield block


def file_size(path: str) -> int:
    return os.stat(path).st_size
