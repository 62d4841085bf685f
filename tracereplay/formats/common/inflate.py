"""One bounded decompression path for every codec a trace can carry (issue 13).

Whole-file streams (``.gz``, ``.zst``, ``.xz``, ``.bz2``), the zlib / zstd
sections and per-CPU chunks of trace.dat v7 and Perfetto's ``compressed_packets``
(deflate) / ``zstd_compressed_packets`` all decode through :func:`pieces`:

* output is produced in bounded pieces (zlib, xz and bzip2 cap each call's
  output; zstd, whose Python binding cannot, is fed 256 input bytes at a time,
  at most 8 MiB of output per call), so nothing is ever preallocated from a
  size the file states;
* a **size limit** caps what one unit held in memory (a chunk, a section, a
  packet) may expand to, and an **expansion ratio** limit applies to every
  decompression, streams included, once its output passes 16 MiB;
* a stream or unit that ends before its end marker raises :class:`Truncated`
  with what was decoded before, so readers can keep the sound part and flag it.

Limits come from the environment, read at each use:

``TRACEREPLAY_MAX_DECOMPRESSED``
    bytes one compressed unit held in memory may expand to (default 256M;
    suffixes K, M, G; 0 = no limit);
``TRACEREPLAY_MAX_RATIO``
    largest decompressed / compressed size ratio (default 500; 0 = no limit).
"""

from __future__ import annotations

import bz2
import lzma
import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import zstandard

from tracereplay.errors import EXIT_USAGE, TraceReplayError

__all__ = [
    "ENV_MAX",
    "ENV_RATIO",
    "CorruptData",
    "DecompressionLimit",
    "LimitSettingError",
    "Limits",
    "Truncated",
    "inflate",
    "limits",
    "pieces",
]

ENV_MAX = "TRACEREPLAY_MAX_DECOMPRESSED"
ENV_RATIO = "TRACEREPLAY_MAX_RATIO"
DEFAULT_MAX = 256 << 20
# deflate cannot pass 1032:1, zstd reaches 32768:1; text traces compress 10-50:1
DEFAULT_RATIO = 500
# below this much output the ratio is not checked: a few empty ring-buffer pages
# compress 1000:1 and more, a bomb has to pass it to hurt
RATIO_FLOOR = 16 << 20
# output cap of one call (zlib, xz, bzip2) and input fed per call to zstd
STEP = 1 << 20
ZSTD_STEP = 256
# a zstd unit that states at most this size decodes in one call into a buffer of that
# size (trace.dat chunks: 256 KiB; feeding them 256 bytes at a time cost 15% of ingest)
ONE_SHOT = 8 << 20
_local = threading.local()
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
CODECS = ("gzip", "zlib", "deflate", "zlib-or-deflate", "zstd", "xz", "bzip2")


class CorruptData(ValueError):
    """The compressed data does not decode."""


class Truncated(CorruptData):
    """The compressed data ends before its end marker; ``decoded`` bytes came out before."""

    def __init__(self, message: str, decoded: int, consumed: int) -> None:
        super().__init__(message)
        self.decoded = decoded
        self.consumed = consumed


class DecompressionLimit(ValueError):
    """Decompression stopped at the size or ratio limit (a bomb, or a limit set too low)."""

    def __init__(self, message: str, kind: str = "size") -> None:
        super().__init__(message)
        self.kind = kind  # "size" or "ratio"


class LimitSettingError(TraceReplayError):
    """A limit variable that is not a size (a usage error, exit 2)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # 0: none
    max_ratio: int  # 0: none


def _size(text: str, name: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)] if unit else t)
    except ValueError:
        raise LimitSettingError(f"{name}={text!r} is not a size (e.g. 512M, 4G, 0)") from None
    if value < 0:
        raise LimitSettingError(f"{name}={text!r} is negative")
    return int(value * _UNITS[unit])


def limits() -> Limits:
    """The limits in force (environment, else the defaults)."""
    raw_max = os.environ.get(ENV_MAX)
    raw_ratio = os.environ.get(ENV_RATIO)
    return Limits(
        _size(raw_max, ENV_MAX) if raw_max else DEFAULT_MAX,
        int(_size(raw_ratio, ENV_RATIO)) if raw_ratio else DEFAULT_RATIO,
    )


class _Decoder(Protocol):
    eof: bool
    busy: bool  # output may be pending without new input: call step again

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        """(output, input not consumed yet) of one bounded call."""
        ...

    def leftover(self) -> bytes:
        """Input after the end of the stream (eof only)."""
        ...


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self.eof = self.busy = False

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        out = self._d.decompress(data, STEP)
        self.eof = self._d.eof
        self.busy = len(out) == STEP and not self.eof
        return out, self._d.unconsumed_tail

    def leftover(self) -> bytes:
        return self._d.unused_data


class _Buffered:
    """xz and bzip2: the decoder keeps the input it has not consumed itself."""

    def __init__(self, d: lzma.LZMADecompressor | bz2.BZ2Decompressor) -> None:
        self._d = d
        self.eof = self.busy = False

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        out = self._d.decompress(data, STEP)
        self.eof = self._d.eof
        self.busy = not self.eof and not self._d.needs_input
        return out, b""

    def leftover(self) -> bytes:
        return self._d.unused_data


class _Zstd:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self.eof = self.busy = False

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        # the binding has no output cap: a few input bytes can expand 32768-fold
        out = self._d.decompress(data[:ZSTD_STEP])
        self.eof = self._d.eof
        return out, data[ZSTD_STEP:]

    def leftover(self) -> bytes:
        return self._d.unused_data


def _decoder(codec: str) -> _Decoder:
    if codec == "gzip":
        return _Zlib(31)
    if codec == "zlib":
        return _Zlib(15)
    if codec == "deflate":
        return _Zlib(-15)
    if codec == "zlib-or-deflate":
        return _Zlib(47)
    if codec == "zstd":
        return _Zstd()
    if codec == "xz":
        return _Buffered(lzma.LZMADecompressor())
    if codec == "bzip2":
        return _Buffered(bz2.BZ2Decompressor())
    raise ValueError(f"unknown codec {codec!r}")


_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, zstandard.ZstdError, ValueError)
_MEMBER_MAGIC = {
    "gzip": b"\x1f\x8b",
    "zstd": b"\x28\xb5\x2f\xfd",
    "xz": b"\xfd7zXZ\x00",
    "bzip2": b"BZh",
}


@dataclass
class Progress:
    """What :func:`pieces` has read and written so far."""

    consumed: int = 0
    decoded: int = 0


def pieces(
    codec: str,
    chunks: Iterable[bytes],
    *,
    limit: int | None = None,
    what: str = "compressed data",
    multi: bool = True,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """Decoded pieces of the compressed ``chunks`` (each piece at most a few MiB).

    ``limit``: bytes the whole output may reach (None: the environment's limit
    for units held in memory; 0: none). ``multi``: concatenated members /
    frames / streams continue the output (whole files); zero padding after the
    last one is ignored. Raises :class:`CorruptData`, :class:`Truncated` (the
    input ended inside a stream) or :class:`DecompressionLimit`.
    """
    lim = limits()
    cap = lim.max_bytes if limit is None else limit
    prog = progress if progress is not None else Progress()
    feed = iter(chunks)

    def next_input() -> bytes | None:
        nxt = next(feed, None)
        if nxt is not None:
            prog.consumed += len(nxt)
        return None if nxt is None else bytes(nxt)

    dec = _decoder(codec)
    pending = b""
    started = False
    while True:
        if dec.eof:
            # after a member / frame / stream: zero padding, then the end or another one
            rest = (dec.leftover() + pending).lstrip(b"\0")
            while not rest:
                nxt = next_input()
                if nxt is None:
                    return
                rest = nxt.lstrip(b"\0")
            magic = _MEMBER_MAGIC.get(codec)
            if not multi or magic is None or not rest.startswith(magic):
                raise CorruptData(f"{what}: unexpected data after the end of the compressed stream")
            dec, pending = _decoder(codec), rest
        if not pending and not dec.busy:
            nxt = next_input()
            if nxt is None:
                raise Truncated(
                    f"{what} ends early: {prog.decoded} bytes decoded, the end of the "
                    "compressed stream is missing (truncated file?)"
                    if started
                    else f"{what} is empty",
                    prog.decoded,
                    prog.consumed,
                )
            pending = nxt
            continue
        started = True
        try:
            out, pending = dec.step(pending)
        except _ERRORS as e:
            raise CorruptData(f"{what}: corrupt {codec} data ({e})") from None
        if not out:
            continue
        prog.decoded += len(out)
        if cap and prog.decoded > cap:
            raise DecompressionLimit(
                f"{what} expands past the limit of {cap} bytes (a decompression bomb?); "
                f"set {ENV_MAX} to raise it"
            )
        if (
            lim.max_ratio
            and prog.decoded > RATIO_FLOOR
            and prog.decoded > lim.max_ratio * max(prog.consumed - len(pending), 1)
        ):
            raise DecompressionLimit(
                f"{what} expands more than {lim.max_ratio}-fold (a decompression bomb?); "
                f"set {ENV_RATIO} to raise the limit",
                "ratio",
            )
        yield out


def inflate(codec: str, data: bytes, *, expected: int | None = None, what: str = "data") -> bytes:
    """Decompress one unit held in memory (chunk, section, packet).

    With ``expected`` (the size the container states), more output than that is
    an error as soon as it appears and less is an error at the end.
    """
    lim = limits().max_bytes
    if expected is not None:
        if lim and expected > lim:
            raise DecompressionLimit(
                f"{what} claims {expected} bytes uncompressed, past the limit of {lim} bytes; "
                f"set {ENV_MAX} to raise it"
            )
        cap = expected
    else:
        cap = lim
    if codec == "zstd" and expected is not None and expected <= ONE_SHOT:
        return _zstd_small(data, expected, what)
    try:
        out = b"".join(pieces(codec, (data,), limit=cap, what=what, multi=False))
    except DecompressionLimit as e:
        if e.kind == "size" and expected is not None and (not lim or expected < lim):
            raise CorruptData(f"{what}: decodes to more than the {expected} bytes stated") from None
        raise
    if expected is not None and len(out) != expected:
        raise CorruptData(f"{what}: decodes to {len(out)} bytes, {expected} stated")
    return out


def _zstd_small(data: bytes, expected: int, what: str) -> bytes:
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise CorruptData(f"{what}: corrupt zstd data ({e})") from None
    if params.content_size not in (zstandard.CONTENTSIZE_UNKNOWN, expected):
        raise CorruptData(f"{what}: zstd frame states {params.content_size} bytes, {expected} stated")
    dctx = getattr(_local, "zstd", None)
    if dctx is None:
        dctx = _local.zstd = zstandard.ZstdDecompressor()
    try:
        # the output buffer is ``expected`` bytes at most (checked against the limits)
        out = dctx.decompress(data, max_output_size=max(expected, 1))
    except zstandard.ZstdError as e:
        raise CorruptData(f"{what}: corrupt zstd data ({e})") from None
    if len(out) != expected:
        raise CorruptData(f"{what}: decodes to {len(out)} bytes, {expected} stated")
    return out
