"""Crafted hostile inputs: decompression bombs, huge claimed sizes, extreme values, injected text.

Each :class:`Hostile` names a file built from the fixtures or the tiny
synthetic seeds, and what must happen besides the general rule of
``fuzz_oracle`` (exit 0/3/4, one line, no traceback, < 1 GiB RSS):

* ``error-or-partial``: the damage must show (exit 3, or a result flagged partial);
* ``stored``: exit 0 and the text below stored verbatim as data (injection attempts);
* ``lost``: exit 0, flagged partial, the lost events counted;
* ``any``: only the general rule.

Bombs are built by concatenating compressed members (gzip, zstd frames, xz
and bzip2 streams all concatenate), so making a 2 GiB bomb costs one 64 MiB
compression. ``python scripts/fuzz/hostile.py DIR`` writes them all.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fuzz_inputs as F
import zstandard

GIB = 1 << 30
MEMBER = 64 << 20
INJECTED = "x'); DROP TABLE events; --$(touch /tmp/tracereplay-pwned)`id`"


@dataclass(frozen=True)
class Hostile:
    name: str
    suffix: str
    expect: str  # error-or-partial | warned | stored | lost | any
    build: Callable[[], bytes]
    stored: str = ""  # for expect == "stored": a comm that must be in events
    manifest: bool = False  # put the tiny scenario's manifest next to it
    slow: bool = False  # seconds to build (bombs): the campaign builds it, the tests do not

    @property
    def filename(self) -> str:
        return f"hostile-{self.name}{self.suffix}"


def _bomb(kind: str, unit: bytes, total: int, head: bytes = b"") -> bytes:
    """``head`` + ``total`` bytes of ``unit`` repeated, as concatenated ``kind`` members."""
    block = unit * (MEMBER // len(unit))
    one = {
        "gz": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
        "zst": lambda b: zstandard.ZstdCompressor(level=19).compress(b),
        "xz": lambda b: lzma.compress(b, preset=1),
        "bz2": lambda b: bz2.compress(b, 9),
    }[kind]
    first = one(head) if head else b""
    return first + one(block) * (total // len(block))


def _zlib_zeros(total: int) -> bytes:
    c = zlib.compressobj(9)
    chunk = bytes(16 << 20)
    return b"".join(c.compress(chunk) for _ in range(total // len(chunk))) + c.flush()


def _packet(fields: bytes) -> bytes:
    """A Trace.packet (field 1) holding ``fields``."""
    return b"\x0a" + F.encode_varint(len(fields)) + fields


def _bytes_field(number: int, payload: bytes) -> bytes:
    return F.encode_varint(number << 3 | 2) + F.encode_varint(len(payload)) + payload


def _u32(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def _patch(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _flip(data: bytes, at: int, mask: int) -> bytes:
    return _patch(data, at, bytes([data[at] ^ mask]))


def _replace_section(data: bytes, sid: int, change: Callable[[bytes], bytes]) -> bytes:
    """A v7 trace.dat whose zstd section ``sid`` holds ``change(content)``, appended at the
    end of the file (its option points there), so no other offset moves."""
    at = dict(F.trace_dat_sections(data))[sid]
    csize, usize = (
        int.from_bytes(data[at + 16 : at + 20], "little"),
        int.from_bytes(data[at + 20 : at + 24], "little"),
    )
    content = change(
        zstandard.ZstdDecompressor().decompress(
            data[at + 24 : at + 24 + csize], max_output_size=usize
        )
    )
    blob = zstandard.ZstdCompressor().compress(content)
    section = (
        data[at : at + 8]
        + (8 + len(blob)).to_bytes(8, "little")
        + _u32(len(blob))
        + _u32(len(content))
        + blob
    )
    option = next(d for oid, d, _size in F.trace_dat_options(data) if oid == sid)
    return _patch(data, option, len(data).to_bytes(8, "little")) + section


class Sources:
    """The seed bytes the crafted files start from, made on first use (synth seeds under ``work``)."""

    def __init__(self, work: Path) -> None:
        self.work = work

    @functools.cached_property
    def _synth(self) -> dict[str, F.Seed]:
        return {s.name + "/" + s.layout: s for s in F.synth_seeds(self.work / "seeds")}

    @functools.cached_property
    def manifest(self) -> str:
        self._synth  # noqa: B018 - writes the seeds and their manifests
        return (self.work / "seeds" / "tiny.txt.manifest.toml").read_text()

    @functools.cached_property
    def dat(self) -> bytes:  # uncompressed: the options are plain
        return self._synth["synth-tiny-none/trace-dat"].plain

    @functools.cached_property
    def dat_zstd(self) -> bytes:
        return self._synth["synth-tiny-zstd/trace-dat"].plain

    @functools.cached_property
    def text(self) -> bytes:
        return self._synth["synth-tiny/tracefs"].plain

    @functools.cached_property
    def pinned(self) -> bytes:
        return (F.FIXTURES / "pinned-threads-6.18.txt").read_bytes()

    @functools.cached_property
    def kvm_gz(self) -> bytes:
        return (F.FIXTURES / "kvm-pinned-6.18.txt.gz").read_bytes()

    @functools.cached_property
    def kvm_dat(self) -> bytes:
        return (F.FIXTURES / "kvm-pinned-6.18.dat").read_bytes()

    @functools.cached_property
    def pipe(self) -> bytes:
        return (F.FIXTURES / "perf-tlb-pipe-6.18.data").read_bytes()

    @functools.cached_property
    def perf(self) -> bytes:
        return (F.FIXTURES / "perf-tlb-callchain-6.18.data").read_bytes()

    @property
    def head(self) -> bytes:
        """The fixture's tracefs header."""
        return self.pinned[: self.pinned.index(b"\n", self.pinned.index(b"#              | |")) + 1]

    @property
    def body(self) -> bytes:
        return self.pinned[len(self.head) :]

    @property
    def fault(self) -> bytes:
        return self.line(self.body, b"page_fault_user:")

    @property
    def unmap(self) -> bytes:
        return self.line(self.text, b"kvm_unmap_hva_range:")

    def option(self, data: bytes, oid: int) -> tuple[int, int]:
        return next((d, size) for o, d, size in F.trace_dat_options(data) if o == oid)

    def buffer_fields(self, data: bytes) -> tuple[int, int]:
        """(page size offset, first cpu entry offset) of the BUFFER option."""
        d, _size = self.option(data, 3)
        q = data.index(b"\0", d + 8) + 1
        q = data.index(b"\0", q) + 1
        return q, q + 8

    def record(self, data: bytes, rtype: int) -> int:
        return next(p for p, t, _s in F.perf_records(data) if t == rtype)

    def line(self, text: bytes, needle: bytes) -> bytes:
        return next(ln for ln in text.splitlines(keepends=True) if needle in ln)


def hostiles(src: Sources) -> list[Hostile]:
    """Every crafted file; building one reads ``src`` (nothing is read before)."""

    def text_with(line: bytes) -> bytes:
        return src.head + src.body[:2000].rsplit(b"\n", 1)[0] + b"\n" + line

    def zstd_chunk_bomb(claimed: int, real: int) -> bytes:
        """trace.dat whose CPU 0 data is one zstd chunk of ``real`` zeros claiming ``claimed``."""
        blob = zstandard.ZstdCompressor(level=19).compress(bytes(real)) if real else b"\0" * 16
        chunk = _u32(1) + _u32(len(blob)) + _u32(claimed) + blob
        data = src.dat_zstd
        at = len(data)
        data = _patch(
            data,
            src.buffer_fields(data)[1] + 4,
            at.to_bytes(8, "little") + len(chunk).to_bytes(8, "little"),
        )
        return data + chunk

    def bad(name: str, suffix: str, build: Callable[[], bytes], **kw: bool) -> Hostile:
        return Hostile(name, suffix, "error-or-partial", build, **kw)

    out = [
        # --- decompression bombs and huge claimed sizes
        bad("zeros-2g", ".txt.gz", lambda: _bomb("gz", b"\0", 2 * GIB), slow=True),
        bad("newlines-2g", ".txt.gz", lambda: _bomb("gz", b"\n", 2 * GIB, src.head), slow=True),
        bad("one-line-2g", ".txt.zst", lambda: _bomb("zst", b"a", 2 * GIB, src.head), slow=True),
        bad("zeros-2g", ".txt.xz", lambda: _bomb("xz", b"\0", 2 * GIB), slow=True),
        bad("zeros-2g", ".txt.bz2", lambda: _bomb("bz2", b"\0", 2 * GIB), slow=True),
        bad("newlines-2g", ".txt.bz2", lambda: _bomb("bz2", b"\n", 2 * GIB, src.head), slow=True),
        bad(
            "perfetto-deflate-1g",
            ".perfetto-trace",
            lambda: _packet(_bytes_field(50, _zlib_zeros(GIB))),
            slow=True,
        ),
        Hostile(  # the same, small: a deflate stream of zeros compresses well again
            "perfetto-deflate-1g",
            ".perfetto-trace.gz",
            "error-or-partial",
            lambda: F.compress(_packet(_bytes_field(50, _zlib_zeros(GIB))), "gz"),
            slow=True,
        ),
        bad(
            "perfetto-zstd-2g",
            ".perfetto-trace",
            lambda: _packet(_bytes_field(133, _bomb("zst", b"\0", 2 * GIB))),
            slow=True,
        ),
        bad(
            "perfetto-packet-1g",
            ".perfetto-trace.gz",
            lambda: _bomb("gz", b"\0", GIB, b"\x0a" + F.encode_varint(GIB)),
            slow=True,
        ),
        bad(
            "perfetto-claims-2p62",
            ".perfetto-trace",
            lambda: b"\x0a" + F.encode_varint(1 << 62) + b"\x08\x01",
        ),
        bad(
            "perfetto-overlong-varint", ".perfetto-trace", lambda: b"\x0a" + b"\xff" * 11 + b"\x01"
        ),
        bad(
            "dat-zstd-chunk-2g",
            ".dat",
            lambda: zstd_chunk_bomb(2 * GIB - 4096, 2 * GIB - 4096),
            slow=True,
        ),
        bad("dat-zstd-chunk-claims-4g", ".dat", lambda: zstd_chunk_bomb(0xFFFFFFFF, 0)),
        # --- a flipped byte in the fixture's deflate block header (Huffman code lengths)
        bad("fixture-gz-flip-33", ".txt.gz", lambda: _flip(src.kvm_gz, 33, 0x04)),
        # --- trace.dat header, options and sections
        bad(
            "dat-kallsyms-17-digit-address",
            ".dat",
            lambda: _replace_section(src.kvm_dat, 19, lambda b: b.replace(b" ", b"0 ", 1)),
        ),
        bad(
            "dat-page-size-0",
            ".dat",
            lambda: _patch(src.dat, src.buffer_fields(src.dat)[0], _u32(0)),
        ),
        bad(
            "dat-page-size-2g",
            ".dat",
            lambda: _patch(src.dat, src.buffer_fields(src.dat)[0], _u32(0x80000000)),
        ),
        bad(
            "dat-cpucount-2p31",
            ".dat",
            lambda: _patch(src.dat, src.option(src.dat, 8)[0], _u32(0x7FFFFFFF)),
        ),
        bad(
            "dat-cpucount-ffffffff",
            ".dat",
            lambda: _patch(src.dat, src.option(src.dat, 8)[0], _u32(0xFFFFFFFF)),
        ),
        bad(
            "dat-cpu-id-2p31",
            ".dat",
            lambda: _patch(src.dat, src.buffer_fields(src.dat)[1], _u32(0x7FFFFFFF)),
        ),
        bad(
            "dat-cpu-size-2p62",
            ".dat",
            lambda: _patch(
                src.dat, src.buffer_fields(src.dat)[1] + 12, (1 << 62).to_bytes(8, "little")
            ),
        ),
        bad(
            "dat-zstd-page-size-0",
            ".dat",
            lambda: _patch(src.dat_zstd, src.buffer_fields(src.dat_zstd)[0], _u32(0)),
        ),
        # --- perf.data
        bad(
            "perf-pipe-sample-size-0",
            ".data",
            lambda: _patch(src.pipe, src.record(src.pipe, 9) + 6, b"\0\0"),
        ),
        bad(
            "perf-pipe-sample-size-ffff",
            ".data",
            lambda: _patch(src.pipe, src.record(src.pipe, 9) + 6, b"\xff\xff"),
        ),
        bad(
            "perf-file-sample-size-0",
            ".data",
            lambda: _patch(src.perf, src.record(src.perf, 9) + 6, b"\0\0"),
        ),
        Hostile(  # the content's own end is sound: every event is read, with a warning
            "perf-pipe-tracing-data-2g",
            ".data",
            "warned",
            lambda: _patch(src.pipe, src.record(src.pipe, 66) + 8, _u32(0x7FFFFFFF)),
        ),
        bad(
            "perf-file-data-size-2p63",
            ".data",
            lambda: _patch(src.perf, 48, (1 << 63).to_bytes(8, "little")),
        ),
        bad("perf-file-attr-size-0", ".data", lambda: _patch(src.perf, 16, bytes(8))),
        bad("perf-pipe-cut-mid-record", ".data", lambda: src.pipe[: src.record(src.pipe, 9) + 20]),
        # cut in a COMM record before the first sample: no event, and no sign of the cut
        bad("perf-pipe-cut-in-comm", ".data", lambda: src.pipe[: src.record(src.pipe, 3) + 28]),
        # --- text: values out of range, cuts, lost events, injected text
        bad(
            "text-cpu-99999999999",
            ".txt",
            lambda: text_with(src.fault.replace(b"[001]", b"[99999999999]", 1)),
        ),
        bad(
            "text-pid-99999999999",
            ".txt",
            lambda: text_with(_sub(rb"-\d+(\s+\()", rb"-99999999999\1", src.fault)),
        ),
        bad(
            "text-ts-1e20",
            ".txt",
            lambda: text_with(_set_ts(src.fault, b"99999999999999999999.207697")),
        ),
        bad(
            "text-address-65-bits",
            ".txt",
            lambda: text_with(_set_field(src.fault, b"address=", b"0x1fffffffffffffff0")),
        ),
        bad(
            "text-nr-cpus-99999999999",
            ".txt",
            lambda: src.pinned.replace(b"#P:2", b"#P:99999999999", 1),
        ),
        bad(
            "text-range-end-fffff000",
            ".txt",
            lambda: _tail(src.text, _set_field(src.unmap, b"-- ", b"0xfffffffffffff000")),
            manifest=True,
        ),
        bad(
            "text-range-reversed",
            ".txt",
            lambda: _tail(src.text, _reverse(src.unmap)),
            manifest=True,
        ),
        bad(
            "text-cut-mid-line",
            ".txt",
            lambda: src.pinned[: src.pinned.index(b"address=0x7f", 40000) + 16],  # in an address
        ),
        bad(
            "text-cut-at-line",
            ".txt",
            lambda: src.pinned[: src.pinned.index(b"\n", 40000) + 1],  # at a line's end
        ),
        bad("text-truncated", ".txt.zst", lambda: F.compress(src.pinned, "zst")[:-3000]),
        bad("text-truncated-early", ".txt.zst", lambda: F.compress(src.pinned, "zst")[:4000]),
        bad("text-truncated", ".txt.gz", lambda: F.compress(src.pinned, "gz")[:-3000]),
        Hostile(
            "text-injected-comm", ".txt", "stored", lambda: _inject(src.pinned), stored=INJECTED
        ),
        Hostile(
            "text-lost-events",
            ".txt",
            "lost",
            lambda: text_with(
                b"CPU:1 [LOST 42 EVENTS]\n" + src.fault + b"CPU:0 [LOST 7 EVENTS]\n" + src.fault
            ),
        ),
        bad(
            "text-lost-2p64",
            ".txt",
            lambda: text_with(b"CPU:0 [LOST 18446744073709551616 EVENTS]\n" + src.fault),
        ),
        Hostile(
            "text-nul-bytes",
            ".txt",
            "any",
            lambda: text_with(src.fault.replace(b"error_code", b"err\0r_code", 1)),
        ),
        bad("empty", ".txt.gz", lambda: gzip.compress(b"", mtime=0)),
        Hostile(
            "gzip-in-gzip",
            ".txt.gz",
            "any",
            lambda: gzip.compress(gzip.compress(src.text, mtime=0), mtime=0),
        ),
    ]
    return out


def _sub(pattern: bytes, repl: bytes, line: bytes) -> bytes:
    new = re.sub(pattern, repl, line, count=1)
    assert new != line, (pattern, line)
    return new


def _set_ts(line: bytes, ts: bytes) -> bytes:
    return _sub(rb"\d+\.\d{6}:", ts + b":", line)


def _set_field(line: bytes, key: bytes, value: bytes) -> bytes:
    return _sub(re.escape(key) + rb"\S+", key + value, line)


def _reverse(unmap: bytes) -> bytes:
    return _sub(rb"(0x[0-9a-f]+) -- (0x[0-9a-f]+)", rb"\2 -- \1", unmap)


def _tail(text: bytes, line: bytes) -> bytes:
    return text + line


def _inject(pinned: bytes) -> bytes:
    """The fixture's first ~60 KB with one task's comm replaced by SQL and shell text."""
    at = pinned.index(b"tr-touch-0-")
    return pinned[: pinned.index(b"\n", at + 60000) + 1].replace(
        b"tr-touch-0-", INJECTED.encode() + b"-"
    )


def write_all(out: Path, work: Path | None = None) -> list[tuple[Hostile, Path]]:
    """Build every hostile file into ``out`` (kept across runs: bombs take seconds to make)."""
    out.mkdir(parents=True, exist_ok=True)
    src = Sources(work or out / ".work")
    made = []
    for h in hostiles(src):
        path = out / h.filename
        if not path.exists():
            path.write_bytes(h.build())
        if h.manifest:
            Path(f"{path}.manifest.toml").write_text(src.manifest)
        made.append((h, path))
    return made


def expectation(h: Hostile, ingest: Any) -> list[str]:
    """Problems of an ``ingest`` run (tests/fuzz_oracle.Run) against what ``h`` expects."""
    if h.expect == "error-or-partial" and ingest.code == 0 and not ingest.partial:
        return [f"[{h.filename}] ingest: exit 0, not flagged partial ({ingest.events} events)"]
    if h.expect == "warned" and ingest.code == 0 and "warning" not in ingest.stderr:
        return [f"[{h.filename}] ingest: exit 0 without a warning ({ingest.events} events)"]
    return []
