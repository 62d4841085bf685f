"""Byte-level surgery on trace.dat v7 files, for tests that build hostile inputs from the
recorded fixtures. Written from trace-cmd's Documentation/trace-cmd/trace-cmd.dat.v7.5.txt,
independently of the reader under test: the header, then sections
``{u16 id, u16 flags, u32 string id, u64 size}`` (flag 1: the content is
``{u32 compressed size, u32 size}`` + data), options ``{u16 id, u32 size, data}``
chained by the DONE option's u64 offset; per-CPU data of a compressed file is
``u32 chunk count`` + ``{u32 compressed size, u32 size, data}`` per chunk.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import zstandard

OPT_DONE, OPT_BUFFER, OPT_CPUCOUNT = 0, 3, 8
SEC_KALLSYMS = 19


@dataclass
class Option:
    oid: int
    at: int  # offset of the option's data
    size: int


def _cstr_end(data: bytes, at: int) -> int:
    return data.index(b"\0", at) + 1


def header(data: bytes) -> tuple[str, int]:
    """(compression name, offset of the u64 first-options offset)."""
    pos = _cstr_end(data, 10) + 6  # version, endianness, long size, page size
    comp_end = _cstr_end(data, pos)
    return data[pos : comp_end - 1].decode(), _cstr_end(data, comp_end)


def options(data: bytes) -> list[Option]:
    """Every option of every (uncompressed) options section, in file order."""
    _comp, at = header(data)
    nxt = struct.unpack_from("<Q", data, at)[0]
    out: list[Option] = []
    while nxt:
        sid, flags, _s, size = struct.unpack_from("<HHIQ", data, nxt)
        assert sid == 0 and flags == 0, "options sections of the fixtures are not compressed"
        p, end, nxt = nxt + 16, nxt + 16 + size, 0
        while p + 6 <= end:
            oid, osize = struct.unpack_from("<HI", data, p)
            out.append(Option(oid, p + 6, osize))
            if oid == OPT_DONE:
                nxt = struct.unpack_from("<Q", data, p + 6)[0] if osize >= 8 else 0
                break
            p += 6 + osize
    return out


def option(data: bytes, oid: int) -> Option:
    return next(o for o in options(data) if o.oid == oid)


@dataclass
class BufferCpu:
    cpu_at: int
    offset_at: int
    size_at: int


def buffer_layout(data: bytes) -> tuple[int, list[BufferCpu]]:
    """(offset of the page size, per-CPU field offsets) of the first BUFFER option."""
    opt = option(data, OPT_BUFFER)
    p = _cstr_end(data, opt.at + 8)  # u64 offset, name
    p = _cstr_end(data, p)  # clock
    page_at = p
    ncpu = struct.unpack_from("<I", data, p + 4)[0]
    cpus = [BufferCpu(p + 8 + 20 * k, p + 12 + 20 * k, p + 20 + 20 * k) for k in range(ncpu)]
    return page_at, cpus


def put(data: bytearray, at: int, fmt: str, *values: int) -> None:
    struct.pack_into("<" + fmt, data, at, *values)


def get(data: bytes, at: int, fmt: str) -> int:
    return int(struct.unpack_from("<" + fmt, data, at)[0])


def section_body(data: bytes, at: int) -> bytes:
    """Uncompressed content of the section at ``at`` (zstd or zlib file)."""
    comp, _ = header(data)
    _sid, flags, _s, size = struct.unpack_from("<HHIQ", data, at)
    if not flags & 1:
        return data[at + 16 : at + 16 + size]
    csize, usize = struct.unpack_from("<II", data, at + 16)
    blob = data[at + 24 : at + 24 + csize]
    if comp == "zstd":
        return zstandard.ZstdDecompressor().decompress(blob, max_output_size=usize)
    return zlib.decompress(blob)


def compress(comp: str, body: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(body) if comp == "zstd" else zlib.compress(body)


def append_section(data: bytearray, sid: int, body: bytes, comp: str) -> int:
    """Append a compressed section; returns its offset (point an option at it)."""
    blob = compress(comp, body)
    at = len(data)
    data += struct.pack("<HHIQ", sid, 1, 0, 8 + len(blob)) + struct.pack("<II", len(blob), len(body))
    data += blob
    return at


def append_cpu_data(data: bytearray, chunks: list[tuple[bytes, int]]) -> tuple[int, int]:
    """Append per-CPU data made of (compressed chunk, stated size) pairs: (offset, size)."""
    at = len(data)
    data += struct.pack("<I", len(chunks))
    for blob, usize in chunks:
        data += struct.pack("<II", len(blob), usize) + blob
    return at, len(data) - at


def cpu_chunks(data: bytes, offset: int) -> list[tuple[bytes, int]]:
    n = get(data, offset, "I")
    p = offset + 4
    out = []
    for _ in range(n):
        csize, usize = struct.unpack_from("<II", data, p)
        out.append((data[p + 8 : p + 8 + csize], usize))
        p += 8 + csize
    return out


def to_zlib(data: bytes) -> bytes:
    """The same zstd trace.dat, every compressed section and chunk re-made with zlib.

    The header keeps its length ("zstd" and "zlib" are both four letters); the new
    sections and CPU data are appended and the options are pointed at them.
    """
    comp, _ = header(data)
    assert comp == "zstd"
    out = bytearray(data)
    pos = _cstr_end(data, 10) + 6
    out[pos : pos + 4] = b"zlib"
    for opt in options(data):
        if 16 <= opt.oid <= 21:  # metadata sections, located by their options
            at = get(data, opt.at, "Q")
            body = section_body(data, at)
            put(out, opt.at, "Q", append_section(out, get(data, at, "H"), body, "zlib"))
    _page_at, cpus = buffer_layout(data)
    for c in cpus:
        off, size = get(data, c.offset_at, "Q"), get(data, c.size_at, "Q")
        if not size:
            continue
        dctx = zstandard.ZstdDecompressor()
        chunks = [
            (zlib.compress(dctx.decompress(blob, max_output_size=usize)), usize)
            for blob, usize in cpu_chunks(data, off)
        ]
        new_off, new_size = append_cpu_data(out, chunks)
        put(out, c.offset_at, "Q", new_off)
        put(out, c.size_at, "Q", new_size)
    return bytes(out)


def to_v6(data: bytes) -> bytes:
    """The same trace as an uncompressed v6 file (trace-cmd.dat.v6.5.txt): the v7 metadata
    sections have the v6 layout, so their contents are laid out one after the other, then
    the CPU count, an empty options list, ``flyrecord`` and the per-CPU (offset, size) table
    in front of the decompressed pages. Returns the file; CPU data offsets are page-aligned."""
    comp, _ = header(data)
    assert comp == "zstd"
    page_size = get(data, _cstr_end(data, 10) + 2, "I")
    sections = {
        o.oid: section_body(data, get(data, o.at, "Q")) for o in options(data) if 16 <= o.oid <= 21
    }
    _page_at, cpus = buffer_layout(data)
    dctx = zstandard.ZstdDecompressor()
    pages = []
    for c in cpus:
        off, size = get(data, c.offset_at, "Q"), get(data, c.size_at, "Q")
        chunks = cpu_chunks(data, off) if size else []
        pages.append(b"".join(dctx.decompress(b, max_output_size=u) for b, u in chunks))
    out = bytearray(data[:10] + b"6\0" + data[_cstr_end(data, 10) : _cstr_end(data, 10) + 6])
    for sid in range(16, 22):
        out += sections[sid]
    out += struct.pack("<I", len(cpus)) + b"options  \0" + struct.pack("<H", OPT_DONE)
    out += b"flyrecord\0"
    table_at = len(out)
    out += b"\0" * (16 * len(cpus))
    for k, body in enumerate(pages):
        out += b"\0" * (-len(out) % page_size)
        put(out, table_at + 16 * k, "QQ", len(out), len(body))
        out += body
    return bytes(out)
