"""Perfetto's top-level framing: ``Trace.packet`` entries, compressed packets, process trees.

A trace is a stream of ``Trace.packet`` (field 1, length-delimited) read in
bounded chunks; packets may wrap more packets compressed with deflate
(``compressed_packets``) or zstd (``zstd_compressed_packets``), inflated within
the decompression limits. Process trees and interned strings are small
messages walked field by field.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.compression import (
    TruncatedStream,
    compression_of,
    open_decompressed,
)
from tracereplay.formats.common.inflate import ENV_MAX, CorruptData, inflate, limits
from tracereplay.formats.common.inflate import Truncated as InflateTruncated
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto.protowire import WireError, iter_fields, read_varint

__all__ = [
    "MAX_PACKET",
    "Corrupt",
    "Truncated",
    "inner_packets",
    "interned_string",
    "iter_packets",
    "process_tree",
    "strings",
]

_READ = 16 << 20
MAX_PACKET = 1 << 30  # no real packet comes near this: a bigger length is corruption


def iter_packets(path: str) -> Iterator[tuple[memoryview, int]]:
    """(packet bytes, byte offset) of each top-level ``Trace.packet`` of the file.

    Raises :class:`Truncated` (the file ends inside a packet, or a packet is over the
    size limit) and :class:`Corrupt` (framing that no Perfetto trace has).
    """
    size = os.path.getsize(path)
    max_packet = limits().max_bytes or MAX_PACKET
    with open_decompressed(path) as f:
        buf = b""
        base = 0  # file offset of buf[0]
        pos = 0
        eof = False
        while True:
            if len(buf) - pos < 16 and not eof:
                more = _read(path, f, base + len(buf))
                eof = not more
                buf, base, pos = buf[pos:] + more, base + pos, 0
            if pos >= len(buf):
                return
            try:
                tag, p = read_varint(buf, pos, len(buf))
                fno, wt = tag >> 3, tag & 7
                if wt == 2:
                    n, p = read_varint(buf, p, len(buf))
                elif wt == 0:
                    _, p = read_varint(buf, p, len(buf))
                    n = 0
                else:
                    raise WireError(f"wire type {wt} at the top level (not a Trace)", pos)
            except WireError as e:
                if eof:
                    raise Truncated(base + pos, "truncated packet header") from None
                if len(buf) - pos > 32:
                    raise Corrupt(base + pos, e.detail) from None
                more = _read(path, f, base + len(buf))
                eof = not more
                buf, base, pos = buf[pos:] + more, base + pos, 0
                continue
            if fno == 0 or (
                wt == 2 and (n > MAX_PACKET or (base + p + n > size and not _compressed(path)))
            ):
                raise Corrupt(base + pos, f"absurd packet length {n} (field {fno})")
            if wt == 2 and n > max_packet:
                # held in memory whole: the limit on what one unit may expand to
                raise Truncated(
                    base + pos,
                    f"packet of {n} bytes is larger than the limit of {max_packet} bytes "
                    f"(set {ENV_MAX} to raise it)",
                )
            if p + n > len(buf) and not eof:
                # the packet runs past the buffer: drop what was consumed, read the rest
                parts, have = [buf[pos:]], len(buf) - pos
                base, p, pos = base + pos, p - pos, 0
                while p + n > have and not eof:
                    more = _read(path, f, base + have, max(_READ, p + n - have))
                    eof = not more
                    parts.append(more)
                    have += len(more)
                buf = b"".join(parts)
            if p + n > len(buf):
                raise Truncated(base + pos, f"packet of {n} bytes cut short by the end of the file")
            if fno == 1 and wt == 2:
                yield memoryview(buf)[p : p + n], base + pos
            pos = p + n


def _read(path: str, f: object, offset: int, size: int = _READ) -> bytes:
    try:
        return f.read(size)  # type: ignore[attr-defined]
    except TruncatedStream as e:
        # everything before the cut was read: keep it, flag the missing end
        raise Truncated(offset, e.detail) from None
    except OSError as e:
        raise TraceFormatError(path, f"read error: {e}", offset=offset) from None


def inner_packets(packet: memoryview) -> Iterator[memoryview]:
    """The packet itself, or the packets inside a compressed one."""
    for fno, wt, val, pos in iter_fields(packet):
        if wt == 2 and fno in (ps.PKT_COMPRESSED, ps.PKT_ZSTD_COMPRESSED):
            data = inflate_packet(bytes(packet[pos : pos + val]), fno == ps.PKT_ZSTD_COMPRESSED)
            view = memoryview(data)
            for ifno, iwt, ival, ipos in iter_fields(view):
                if ifno == 1 and iwt == 2:
                    yield view[ipos : ipos + ival]
            return
    yield packet


class Truncated(Exception):
    """The file ends inside a packet (``offset``: where that packet starts)."""

    def __init__(self, offset: int, msg: str) -> None:
        self.offset, self.msg = offset, msg


class Corrupt(Truncated):
    """Framing no Perfetto trace has."""


def _compressed(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return compression_of(head) is not None


def inflate_packet(data: bytes, zstd: bool) -> bytes:
    """A compressed packet's content (bounded; ValueError when corrupt or past the limits)."""
    if zstd:
        return inflate("zstd", data, what="zstd_compressed_packets")
    try:
        return inflate("zlib-or-deflate", data, what="compressed_packets")
    except InflateTruncated:
        raise
    except CorruptData:
        return inflate("deflate", data, what="compressed_packets (raw deflate)")


def strings(body: memoryview) -> Iterator[tuple[int, str]]:
    for fno, wt, val, pos in iter_fields(body):
        if wt == 2:
            yield fno, bytes(body[pos : pos + val]).decode("utf-8", "replace")


def interned_string(body: memoryview) -> tuple[int, str]:
    iid, text = 0, ""
    for fno, wt, val, pos in iter_fields(body):
        if fno == 1 and wt == 0:
            iid = val
        elif fno == 2 and wt == 2:
            text = bytes(body[pos : pos + val]).decode("utf-8", "replace")
    return iid, text


def process_tree(
    body: memoryview,
    names: dict[int, tuple[str | None, int | None]],
    *,
    first: bool,
    peek: bool = False,
) -> bool:
    """Apply a ProcessTree to ``names`` (pid -> (comm, tgid)); True when an entry changed."""
    changed = False
    for fno, wt, val, pos in iter_fields(body):
        if wt != 2 or fno not in (1, 2):
            continue
        sub = body[pos : pos + val]
        ident, tgid, name = None, None, None
        cmdline: list[str] = []
        is_comm = False
        for sfno, swt, sval, spos in iter_fields(sub):
            if sfno == 1 and swt == 0:
                ident = _int32(sval)
            elif fno == 2 and sfno == 3 and swt == 0:
                tgid = _int32(sval)
            elif fno == 2 and sfno == 2 and swt == 2:
                name = bytes(sub[spos : spos + sval]).decode("utf-8", "replace")
            elif fno == 1 and sfno == 3 and swt == 2:
                cmdline.append(bytes(sub[spos : spos + sval]).decode("utf-8", "replace"))
            elif fno == 1 and sfno == 9 and swt == 0:
                is_comm = bool(sval)
        if ident is None:
            continue
        if fno == 1:  # a process: fills in only what no thread entry said
            if ident in names:
                continue
            comm = (
                cmdline[0]
                if is_comm and cmdline
                else (os.path.basename(cmdline[0])[:15] if cmdline else None)
            )
            value: tuple[str | None, int | None] = (comm, ident)
        else:
            value = (name, tgid)
        if first:
            names.setdefault(ident, value)
        elif names.get(ident, value) != value:
            changed = True
            if not peek:
                names[ident] = value
        elif not peek:
            names[ident] = value
    return changed


def _int32(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v
