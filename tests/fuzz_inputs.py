"""Fuzzing inputs: seed traces in every format, and the mutations applied to them.

Seeds are real traces (the shipped fixtures, the hand-written samples of
``traces.py``) and synthetic ones (a tiny ``synth`` scenario written as text,
trace.dat with and without zstd, Perfetto), each also gzip / zstd / xz / bzip2
compressed. A :class:`Mutation` is a pure function of the bytes: a cut, a bit
flip, an insertion, a deletion, a duplicated chunk, or an overwrite of a
header or size field (found by the small structure walkers below) with an
extreme value. Mutations of a compressed seed hit either the compressed bytes
or the content, which is then compressed again.

Used by tests/test_fuzz*.py and scripts/fuzz/ (which put this directory on sys.path).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

# layout -> reader format name
LAYOUTS = {
    "tracefs": "ftrace-text",
    "trace-cmd-report": "ftrace-text",
    "perf-script": "ftrace-text",
    "trace-dat": "trace-dat",
    "perf-file": "perf-data",
    "perf-pipe": "perf-data",
    "perfetto": "perfetto",
}
SUFFIX = {
    "tracefs": ".txt",
    "trace-cmd-report": ".report.txt",
    "perf-script": ".script.txt",
    "trace-dat": ".dat",
    "perf-file": ".data",
    "perf-pipe": ".data",
    "perfetto": ".perfetto-trace",
}
COMPRESSIONS = ("gz", "zst", "xz", "bz2")

# values a header or size field is overwritten with
EXTREMES = (
    0,
    1,
    0x7F,
    0xFF,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 62,
    1 << 63,
    (1 << 64) - 1,
)
# numbers written over numbers in text traces
TEXT_EXTREMES = (
    b"0",
    b"-1",
    b"99999999999",
    b"4294967296",
    b"18446744073709551616",
    b"99999999999999999999.207697",
    b"0x10000000000000000",
    b"0xfffffffffffff000",
    b"1e308",
    b"NaN",
)

# A scenario small enough to fuzz: ~50 events of the kinds the analysis reads. No lost
# events: a seed already flagged partial could not show that a cut went unnoticed.
TINY_SCENARIO = """\
name = "fuzz-tiny"
description = "a few dozen events of every kind the analysis reads, for fuzzing"
duration = 0.12
stacks = true
seed = 7
[host]
nodes = 2
cpus_per_node = 2
kernel = "6.18.44"
[numa_balancing]
scan_delay_ms = 5
scan_period_min_ms = 20
scan_size_mb = 4
[[vm]]
name = "qemu-system-x86"
ram = "8M"
pinned = 0.25
vcpus = 2
vcpu_nodes = [0, 1]
hot_fraction = 0.5
[[process]]
name = "tr-workload"
ram = "4M"
pinned = 0.5
threads = 2
hot_fraction = 1.0
"""


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if kind == "zst":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    raise ValueError(kind)


def decompress(data: bytes, kind: str | None) -> bytes:
    if kind is None:
        return data
    if kind == "gz":
        return gzip.decompress(data)
    if kind == "zst":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if kind == "xz":
        return lzma.decompress(data)
    return bz2.decompress(data)


@dataclass(frozen=True)
class Seed:
    """One intact trace: ``plain`` is its content, ``data`` the bytes on disk."""

    name: str
    layout: str
    plain: bytes
    compression: str | None = None
    data: bytes = b""  # default: ``plain``, compressed when ``compression``

    def __post_init__(self) -> None:
        if not self.data:
            packed = compress(self.plain, self.compression) if self.compression else self.plain
            object.__setattr__(self, "data", packed)

    @property
    def fmt(self) -> str:
        return LAYOUTS[self.layout]

    @property
    def suffix(self) -> str:
        return SUFFIX[self.layout] + (f".{self.compression}" if self.compression else "")

    @property
    def label(self) -> str:
        return self.layout + (f"+{self.compression}" if self.compression else "")

    def compressed(self, kind: str) -> Seed:
        return replace(self, name=f"{self.name}.{kind}", compression=kind, data=b"")


# --- structure walkers ------------------------------------------------------------------


def _u(data: bytes, at: int, width: int) -> int:
    return int.from_bytes(data[at : at + width], "little")


def perf_records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, size) of the records of a perf.data (pipe: the stream; file: data section)."""
    if not data.startswith(b"PERFILE2") or len(data) < 16:
        return []
    hsize = _u(data, 8, 8)
    if hsize == 16:
        pos, end = 16, len(data)
    elif len(data) >= 104:
        pos = _u(data, 40, 8)
        end = min(len(data), pos + _u(data, 48, 8))
    else:
        return []
    out = []
    while pos + 8 <= end:
        rtype, size = _u(data, pos, 4), _u(data, pos + 6, 2)
        if size < 8:
            break
        out.append((pos, rtype, size))
        pos += size
        if rtype == 66 and hsize == 16:  # pipe HEADER_TRACING_DATA: the data follows the record
            pos += (_u(data, pos - size + 8, 4) + 7) & ~7
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 70:
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if not b & 0x80:
            return value, pos
    raise ValueError("truncated varint")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def perfetto_packets(data: bytes) -> list[tuple[int, int, int]]:
    """(start, length-varint offset, end) of the top-level length-delimited fields of a trace."""
    out = []
    pos = 0
    try:
        while pos < len(data):
            start = pos
            tag, pos = _varint(data, pos)
            if tag & 7 != 2:
                break
            at = pos
            length, pos = _varint(data, pos)
            pos += length
            if pos > len(data):
                break
            out.append((start, at, pos))
    except ValueError:
        pass
    return out


def _trace_dat_header(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """(offset, width) of the header fields of a trace.dat, and the v7 options offset (0: v6)."""
    pos = data.index(b"\0", 10) + 1  # after the version string
    version = data[10 : pos - 1]
    fields = [(pos + 1, 1), (pos + 2, 4)]  # long size, page size
    pos += 6
    if version != b"7":
        return fields, 0
    for _ in range(2):  # compression name and version
        pos = data.index(b"\0", pos) + 1
    fields.append((pos, 8))
    return fields, _u(data, pos, 8)


def trace_dat_options(data: bytes) -> list[tuple[int, int, int]]:
    """(option id, data offset, size) of every option of a v7 trace.dat whose options
    sections are uncompressed (what ``write_trace_dat`` writes); the DONE options too."""
    if not data.startswith(b"\x17\x08\x44tracing"):
        return []
    _fields, at = _trace_dat_header(data)
    out: list[tuple[int, int, int]] = []
    seen = set()
    while 0 < at < len(data) - 16 and at not in seen and not _u(data, at + 2, 2) & 1:
        seen.add(at)
        p, end, at = at + 16, at + 16 + _u(data, at + 8, 8), 0
        while p + 6 <= min(end, len(data)):
            oid, size = _u(data, p, 2), _u(data, p + 2, 4)
            out.append((oid, p + 6, size))
            if oid == 0:  # DONE: the offset of the next options section
                at = _u(data, p + 6, 8)
                break
            p += 6 + size
    return out


def trace_dat_sections(data: bytes) -> list[tuple[int, int]]:
    """(section id, offset) of the v7 sections the options point at (and the options sections)."""
    if not data.startswith(b"\x17\x08\x44tracing"):
        return []
    _fields, first = _trace_dat_header(data)
    found = [(0, first)] if first else []
    for oid, d, _size in trace_dat_options(data):
        if oid == 0 and _u(data, d, 8):
            found.append((0, _u(data, d, 8)))
        elif 16 <= oid <= 21:
            found.append((oid, _u(data, d, 8)))
    return found


def trace_dat_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of header, section and option fields of a trace.dat."""
    if not data.startswith(b"\x17\x08\x44tracing"):
        return []
    fields, _opt = _trace_dat_header(data)
    for _sid, at in trace_dat_sections(data):
        if at + 24 <= len(data):
            fields += [(at, 2), (at + 2, 2), (at + 8, 8)]  # section id, flags, size
            if _u(data, at + 2, 2) & 1:
                fields += [(at + 16, 4), (at + 20, 4)]  # compressed and uncompressed sizes
    for oid, d, _size in trace_dat_options(data):
        fields.append((d - 4, 4))  # the option's size
        if oid in (0, *range(16, 22)):  # next options section / section offsets
            fields.append((d, 8))
        elif oid == 8:  # CPUCOUNT
            fields.append((d, 4))
        elif oid == 3:  # BUFFER: data offset, name, clock, page size, cpu count, cpus
            q = data.index(b"\0", d + 8) + 1
            q = data.index(b"\0", q) + 1
            fields += [(d, 8), (q, 4), (q + 4, 4)]
            for k in range(min(_u(data, q + 4, 4), 64)):
                c = q + 8 + 20 * k
                fields += [(c, 4), (c + 4, 8), (c + 12, 8)]
    return [(o, w) for o, w in fields if o + w <= len(data)]


def perf_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of perf.data header fields and of every record's type and size."""
    if not data.startswith(b"PERFILE2"):
        return []
    fields = [(8, 8)]
    if _u(data, 8, 8) != 16:
        fields += [(o, 8) for o in range(16, 80, 8)]
        attrs = _u(data, 24, 8)
        fields += [(attrs + 4, 4), (attrs + 8, 8)]  # attr.size, attr.config
    for pos, rtype, _size in perf_records(data):
        fields += [(pos, 4), (pos + 6, 2)]
        if rtype == 66:  # HEADER_TRACING_DATA: its size
            fields.append((pos + 8, 4))
    return fields


def binary_fields(seed: Seed, data: bytes) -> list[tuple[int, int]]:
    """Fields of ``data`` (a seed's content) worth overwriting with extreme values."""
    if seed.layout == "trace-dat":
        return trace_dat_fields(data)
    if seed.layout in ("perf-file", "perf-pipe"):
        return perf_fields(data)
    return []


def text_numbers(data: bytes, limit: int = 4000) -> list[tuple[int, int]]:
    """(offset, length) of numbers (decimal or hex) in the first ``limit`` bytes of a text trace."""
    return [
        (m.start(), m.end() - m.start()) for m in re.finditer(rb"(?:0x)?[0-9a-fA-F]+", data[:limit])
    ]


def cut_can_be_told(seed: Seed, offset: int) -> str | None:
    """Why a cut of the seed's content at ``offset`` must show (None: it may look complete).

    A cut through a compressed stream loses its end marker; text cut mid-line
    leaves an unterminated line; a tracefs header counts its entries; trace.dat
    and perf.data (file mode) headers give section sizes; perf pipe mode and
    Perfetto can tell a record cut in the middle (its size says so), not one
    cut between records.
    """
    plain = seed.plain
    if offset >= len(plain):
        return None
    if seed.fmt == "ftrace-text":
        if offset > 0 and plain[offset - 1 : offset] != b"\n":
            return "cut mid-line"
        if seed.layout == "tracefs" and re.search(
            rb"entries-in-buffer/entries-written: \d+", plain[:2000]
        ):
            return "the tracefs header counts the entries"
        return None
    if seed.layout in ("trace-dat", "perf-file"):
        return "the header gives the section sizes"
    if seed.layout == "perf-pipe":
        starts = {p for p, _t, _s in perf_records(plain)}
        return None if offset in starts or offset == 16 else "cut inside a record"
    if seed.layout == "perfetto":
        starts = {s for s, _a, _e in perfetto_packets(plain)}
        return None if offset in starts else "cut inside a packet"
    return None


# --- mutations --------------------------------------------------------------------------

KINDS = ("cut", "flip", "insert", "delete", "dup", "field", "number")


@dataclass(frozen=True)
class Mutation:
    """``kind`` at ``offset``: ``size`` bytes removed/replaced/duplicated, ``blob`` put in."""

    kind: str
    offset: int
    size: int = 0
    blob: bytes = b""
    inner: bool = False  # applied to the decompressed content of a compressed seed

    def apply(self, data: bytes) -> bytes:
        o = min(self.offset, len(data))
        if self.kind == "cut":
            return data[:o]
        if self.kind == "flip":
            if o >= len(data):
                return data
            return (
                data[:o] + bytes([data[o] ^ (self.blob[0] if self.blob else 0xFF)]) + data[o + 1 :]
            )
        if self.kind == "dup":
            return data[: o + self.size] + data[o : o + self.size] + data[o + self.size :]
        # insert / delete / field / number: replace `size` bytes at `offset` by `blob`
        return data[:o] + self.blob + data[o + self.size :]

    def label(self) -> str:
        where = "in" if self.inner else "at"
        extra = ""
        if self.kind == "flip":
            extra = "-x" + (self.blob or bytes([0xFF])).hex()
        elif self.kind in ("dup", "delete"):
            extra = f"-{self.size}"
        elif self.kind == "insert":
            extra = f"-{len(self.blob)}"
        elif self.kind == "field":
            extra = f"-w{self.size}-{int.from_bytes(self.blob, 'little'):x}"
        elif self.kind == "number":
            extra = "-" + re.sub(rb"[^0-9a-zA-Z]", b"_", self.blob).decode()[:24]
        return f"{self.kind}-{where}{self.offset}{extra}"


def mutate(seed: Seed, m: Mutation) -> bytes:
    """The bytes of the mutant (recompressed when the mutation hit the content)."""
    if m.inner and seed.compression:
        return compress(m.apply(seed.plain), seed.compression)
    return m.apply(seed.data)


def field_write(offset: int, width: int, value: int) -> Mutation:
    return Mutation(
        "field", offset, width, (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
    )


def random_mutation(rng: random.Random, seed: Seed) -> Mutation:
    """One mutation of ``seed``, every kind about equally likely (deterministic in ``rng``)."""
    inner = bool(seed.compression) and rng.random() < 0.5
    data = seed.plain if (inner or not seed.compression) else seed.data
    n = max(len(data), 1)
    kind = rng.choice(KINDS)
    offset = _biased_offset(rng, n)
    if kind == "cut":
        return Mutation("cut", offset, inner=inner)
    if kind == "flip":
        return Mutation("flip", offset, blob=bytes([1 << rng.randrange(8)]), inner=inner)
    if kind == "insert":
        blob = rng.choice(
            [b"\0" * rng.randrange(1, 9), b"\xff" * 4, rng.randbytes(rng.randrange(1, 17)), b"\n"]
        )
        return Mutation("insert", offset, 0, blob, inner=inner)
    if kind == "delete":
        return Mutation("delete", offset, rng.randrange(1, 65), inner=inner)
    if kind == "dup":
        return Mutation("dup", offset, rng.randrange(1, 4097), inner=inner)
    target = seed.plain if seed.compression is None or inner else b""
    if kind == "field" and (fields := binary_fields(seed, target)):
        at, width = rng.choice(fields)
        return replace(field_write(at, width, rng.choice(EXTREMES)), inner=inner)
    if seed.fmt == "ftrace-text" and (nums := text_numbers(target)):
        at, length = rng.choice(nums)
        return Mutation("number", at, length, rng.choice(TEXT_EXTREMES), inner=inner)
    # no known field here: overwrite 4 or 8 aligned bytes near the start
    width = rng.choice((4, 8))
    return replace(
        field_write(rng.randrange(0, min(n, 4096)) & ~(width - 1), width, rng.choice(EXTREMES)),
        inner=inner,
    )


def _biased_offset(rng: random.Random, n: int) -> int:
    """Headers hold most structure: half the offsets fall in the first 512 bytes."""
    return rng.randrange(min(n, 512)) if rng.random() < 0.5 else rng.randrange(n)


# --- seeds ------------------------------------------------------------------------------


def _text_samples() -> list[Seed]:
    import traces

    def whole(text: str) -> bytes:  # without its lost-event line: a cut must then show
        return re.sub(r"(?m)^CPU:\d+ \[(LOST \d+ EVENTS|\d+ EVENTS DROPPED)\]\n", "", text).encode()

    return [
        Seed("tracefs-sample", "tracefs", traces.TRACEFS_FULL.encode()),
        Seed("tracefs-sample-whole", "tracefs", whole(traces.TRACEFS_FULL)),
        Seed("trace-cmd-report-sample", "trace-cmd-report", whole(traces.TRACE_CMD_REPORT)),
        Seed("perf-script-sample", "perf-script", traces.PERF_SCRIPT.encode()),
    ]


def synth_seeds(workdir: Path) -> list[Seed]:
    """The tiny scenario as tracefs text, trace.dat (zstd and uncompressed) and Perfetto."""
    from tracereplay.synth import generate, load_scenario
    from tracereplay.writers.trace_dat import write_trace_dat

    workdir.mkdir(parents=True, exist_ok=True)
    toml = workdir / "tiny.toml"
    toml.write_text(TINY_SCENARIO)
    sc = load_scenario(str(toml))
    out = {}
    for name in ("tiny.txt", "tiny.dat", "tiny.perfetto-trace"):
        path = workdir / name
        if not path.exists():
            generate(sc, str(path), force=True)
        out[name] = path.read_bytes()
    raw = workdir / "tiny-none.dat"
    if not raw.exists():
        write_trace_dat(str(workdir / "tiny.txt"), str(raw), force=True, compression="none")
    return [
        Seed("synth-tiny", "tracefs", out["tiny.txt"]),
        Seed("synth-tiny-zstd", "trace-dat", out["tiny.dat"]),
        Seed("synth-tiny-none", "trace-dat", raw.read_bytes()),
        Seed("synth-tiny", "perfetto", out["tiny.perfetto-trace"]),
    ]


def small_seeds(workdir: Path) -> list[Seed]:
    """Seeds for the test suite: small, every layout, every compression."""
    base = [
        *_text_samples(),
        *synth_seeds(workdir),
        Seed("perf-pipe-fixture", "perf-pipe", (FIXTURES / "perf-tlb-pipe-6.18.data").read_bytes()),
        Seed(
            "perf-file-fixture",
            "perf-file",
            (FIXTURES / "perf-tlb-callchain-6.18.data").read_bytes(),
        ),
    ]
    text, perfetto = base[4], base[7]
    assert (text.layout, perfetto.layout) == ("tracefs", "perfetto")
    return [
        *base,
        *(text.compressed(k) for k in COMPRESSIONS),
        *(perfetto.compressed(k) for k in ("gz", "zst")),
    ]


def converted_seeds(workdir: Path) -> list[Seed]:
    """The fixtures through the writers: Perfetto and uncompressed trace.dat (campaign seeds)."""
    from tracereplay.writers.perfetto import write_perfetto
    from tracereplay.writers.trace_dat import write_trace_dat

    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, fixture, layout in (
        ("pinned-threads-6.18", "pinned-threads-6.18.txt", "perfetto"),
        ("kvm-pinned-6.18", "kvm-pinned-6.18.dat", "perfetto"),
        ("kvm-pinned-6.18-none", "kvm-pinned-6.18.txt.gz", "trace-dat"),
    ):
        path = workdir / f"{name}{SUFFIX[layout]}"
        if not path.exists():
            if layout == "perfetto":
                write_perfetto(str(FIXTURES / fixture), str(path), force=True)
            else:
                write_trace_dat(str(FIXTURES / fixture), str(path), force=True, compression="none")
        out.append(Seed(name, layout, path.read_bytes()))
    return out


def fixture_seeds() -> list[Seed]:
    """The shipped fixtures, whole (campaign seeds)."""
    return [
        Seed("pinned-threads-6.18", "tracefs", (FIXTURES / "pinned-threads-6.18.txt").read_bytes()),
        Seed(
            "kvm-pinned-6.18",
            "tracefs",
            gzip.decompress((FIXTURES / "kvm-pinned-6.18.txt.gz").read_bytes()),
            "gz",
            (FIXTURES / "kvm-pinned-6.18.txt.gz").read_bytes(),
        ),
        Seed(
            "pinned-threads-6.18", "trace-dat", (FIXTURES / "pinned-threads-6.18.dat").read_bytes()
        ),
        Seed("kvm-pinned-6.18", "trace-dat", (FIXTURES / "kvm-pinned-6.18.dat").read_bytes()),
        Seed(
            "perf-tlb-pipe-6.18", "perf-pipe", (FIXTURES / "perf-tlb-pipe-6.18.data").read_bytes()
        ),
        Seed(
            "perf-tlb-callchain-6.18",
            "perf-file",
            (FIXTURES / "perf-tlb-callchain-6.18.data").read_bytes(),
        ),
    ]


__all__ = [
    "COMPRESSIONS",
    "EXTREMES",
    "LAYOUTS",
    "Mutation",
    "Seed",
    "compress",
    "converted_seeds",
    "cut_can_be_told",
    "encode_varint",
    "field_write",
    "fixture_seeds",
    "mutate",
    "perf_records",
    "perfetto_packets",
    "random_mutation",
    "small_seeds",
    "synth_seeds",
    "trace_dat_fields",
    "trace_dat_options",
    "trace_dat_sections",
]
