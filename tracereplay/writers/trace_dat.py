"""Write any trace tracereplay reads as a trace-cmd ``trace.dat`` v7 (``tracereplay convert``).

Layout (trace-cmd Documentation/trace-cmd/trace-cmd.dat.v7.5.txt), zstd-compressed
as ``trace-cmd record`` writes it by default (or ``compression="none"``): the
header (magic, version 7, little-endian, 8-byte longs, 4 KiB pages, compression
name/version, offset of the first options section), then sections (u16 id, u16
flags, u32 description string, u64 size; compressed ones hold u32 compressed and
uncompressed sizes and a zstd frame):
header_page / header_event, ftrace event formats, event formats per system,
kallsyms, printk formats (empty), saved cmdlines; the flyrecord section holding
each CPU's ring-buffer pages (page-aligned; compressed: a chunk count, then
chunks of 10 pages), and last the options section (uncompressed)
(section offsets, trace clock, uname, trace-cmd version, CPU count, the
top-level BUFFER with each CPU's data offset and size).

Events are encoded from canonical rows: the known tracepoints with the 6.18
kernel's real format files (:mod:`tracereplay.writers.trace_dat_formats`), so
``trace-cmd report`` prints them as the kernel would; other events with a
format synthesized from their ``args`` (integers as ``long``/``unsigned long``,
strings as ``__data_loc char[]``). Pointer fields and stack frames point at
synthetic kallsyms entries named as in the source. Lost-event gaps start a
page flagged ``RB_MISSED_EVENTS`` with the count stored, as the kernel does.

What does not round-trip through the reader (documented, inherent to trace.dat):
``comm`` comes from saved cmdlines (one name per pid, the last seen); ``tgid``
is re-derived by the reader from fork/exec events (trace.dat has no tgid per
event and trace-cmd 3.1.6 no saved-tgids option); ``common_flags`` /
``common_preempt_count`` are 0 (not in the canonical rows); ``%pS`` offsets
(``+0x20/0x60``) are not kept by the canonical symbol names, so trace-cmd prints
``+0x0``; a lost-events gap of unknown size is stored as 0, one after a CPU's
last event is not written (warned); ``system`` of events without one becomes
``ftrace``; generic booleans read back as 0/1 and floats as integers; stacks not
carried by a ``kernel_stack`` event (e.g. from Perfetto attachments) are
dropped (warned). Known events whose source lacks a field of the 6.18 format
(an older kernel) get that format without the field, so it stays absent.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import polars as pl
import zstandard

from tracereplay.atomic import atomic_output, check_new_output
from tracereplay.errors import TraceReplayError
from tracereplay.formats.common.known_events import KNOWN_EVENTS, SYM, B, I, S, U, X
from tracereplay.formats.tracefs.format_file import TraceEventFormat, parse_format
from tracereplay.readers import Reader, open_trace
from tracereplay.readers.trace_dat import MAGIC
from tracereplay.tracemeta import TraceMeta
from tracereplay.writers.common import event_frames
from tracereplay.writers.perfetto import WriteResult
from tracereplay.writers.trace_dat_encode import Symbols, encode_records, pack_pages
from tracereplay.writers.trace_dat_formats import COMMON, FORMATS, HEADER_EVENT, HEADER_PAGE
from tracereplay.writers.trace_dat_synth import infer_args as _infer
from tracereplay.writers.trace_dat_synth import synth_body as _synth_body
from tracereplay.writers.trace_dat_synth import without_fields as _without_fields

__all__ = ["TraceDatWriteError", "write_trace_dat"]

CHUNK_EVENTS = 1 << 17
PAGE_SIZE = 4096
CHUNK_PAGES = 10  # pages per compressed chunk, as trace-cmd record writes them
DATA_OFFSET = 16  # header_page: u64 timestamp, local_t commit (8 bytes)
TRACE_CMD_VERSION = "3.1.6 tracereplay"
_STACK = "kernel_stack"
_DTYPE = {U: pl.UInt64, X: pl.UInt64, I: pl.Int64, B: pl.Boolean, S: pl.String, SYM: pl.String}
# option / section ids (trace-cmd include/trace-cmd/trace-cmd.h)
OPT_DONE, OPT_BUFFER, OPT_TRACECLOCK, OPT_UNAME, OPT_CPUCOUNT, OPT_VERSION = 0, 3, 4, 5, 8, 9
SEC_HEADER_INFO, SEC_FTRACE, SEC_EVENTS, SEC_KALLSYMS, SEC_PRINTK, SEC_CMDLINES = range(16, 22)


def write_trace_dat(
    source: str | Reader, out_path: str, *, force: bool = False, compression: str = "zstd"
) -> WriteResult:
    """Encode every event of ``source`` into a trace-cmd trace.dat v7 at ``out_path`` (atomic).

    ``compression``: ``"zstd"`` (what trace-cmd record writes by default: metadata sections
    and per-CPU data in chunks) or ``"none"``.
    """
    if compression not in ("zstd", "none"):
        raise ValueError(f"trace.dat compression must be zstd or none, not {compression!r}")
    reader = open_trace(source) if isinstance(source, str) else source
    check_new_output(out_path, force=force)
    directory = os.path.dirname(os.path.abspath(out_path))
    writer = _Writer(reader.meta, directory, compression == "zstd")
    try:
        with atomic_output(out_path, force=force, suffix=".dat") as tmp:
            for frame in event_frames(reader, CHUNK_EVENTS):
                writer.chunk(frame)
            with open(tmp, "wb") as out:
                writer.finish(out)
    finally:
        writer.close()
    return WriteResult(out_path, writer.events, writer.pages, reader.meta, writer.warnings)


class TraceDatWriteError(TraceReplayError):
    """An event that trace.dat cannot hold (e.g. a record larger than a page)."""


@dataclass
class _Event:
    fmt: TraceEventFormat
    text: str
    system: str  # section: "ftrace" for the ftrace formats
    kinds: dict[str, str] | None


class _Writer:
    def __init__(self, meta: TraceMeta, directory: str, zstd: bool) -> None:
        self.meta = meta
        self.zstd = zstd
        self.directory = directory
        self.events_by_key: dict[tuple[object, ...], _Event] = {}
        self.used_ids = {eid for _s, eid, _b in FORMATS.values()}
        self.next_id = 1000
        self.syms = Symbols()
        self.comms: dict[int, str] = {}
        self.spools: dict[int, BinaryIO] = {}
        self.spool_sizes: dict[int, int] = {}
        self.cpus: set[int] = set()
        self.lost_used = 0
        self.gap: dict[int, int] = {}  # cpu -> lost count waiting for its next event
        self.events = 0
        self.pages = 0
        self.warnings: list[str] = []
        self.dropped_stacks = 0

    def close(self) -> None:
        for f in self.spools.values():
            f.close()

    # ------------------------------------------------------------------ chunks

    def chunk(self, df: pl.DataFrame) -> None:
        n = df.height
        df = df.with_columns(cpu=pl.col("cpu").fill_null(0), pid=pl.col("pid").fill_null(0))
        self._names(df)
        lost = self._lost_rows(df)
        flat_parts: list[np.ndarray] = []
        lengths = np.zeros(n, dtype=np.int64)
        starts = np.zeros(n, dtype=np.int64)
        total = 0
        groups = (
            df.select(pl.int_range(0, n, dtype=pl.Int64).alias("r"), "name", "system")
            .group_by(["name", "system"], maintain_order=True)
            .agg("r")
        )
        for name, system, rows in groups.iter_rows():
            sel = np.array(rows, dtype=np.int64)
            flat, ln = self._encode(name, system, df[sel])
            starts[sel] = total + np.concatenate([[0], np.cumsum(ln)[:-1]])
            lengths[sel] = ln
            total += int(ln.sum())
            flat_parts.append(flat)
        flat_all = np.concatenate(flat_parts) if flat_parts else np.zeros(0, np.uint8)
        cpu = df["cpu"].to_numpy().astype(np.int64)
        ts = df["ts"].to_numpy().astype(np.int64)
        order = np.lexsort((np.arange(n), ts, cpu))
        self._count_dropped_stacks(df, order, cpu)
        bounds = [*np.searchsorted(cpu[order], np.unique(cpu), side="left").tolist(), n]
        for a, b in itertools.pairwise(bounds):
            idx = order[a:b]
            c = int(cpu[idx[0]])
            try:
                pages = pack_pages(
                    flat_all, starts[idx], lengths[idx], ts[idx], lost[idx], PAGE_SIZE, DATA_OFFSET
                )
            except ValueError as e:
                raise TraceDatWriteError(f"CPU {c}: {e}") from None
            self._spool(c).write(pages.tobytes())
            self.spool_sizes[c] = self.spool_sizes.get(c, 0) + len(pages)
            self.pages += len(pages) // PAGE_SIZE
        self.cpus.update(np.unique(cpu).tolist())
        self.events += n

    def _count_dropped_stacks(self, df: pl.DataFrame, order: np.ndarray, cpu: np.ndarray) -> None:
        """Stacks of events not followed by a kernel_stack event on their CPU (not written)."""
        is_stack = (df["name"] == _STACK).to_numpy()[order]
        has = df["stack"].is_not_null().to_numpy()[order] & ~is_stack
        c = cpu[order]
        followed = np.zeros(len(order), dtype=bool)
        followed[:-1] = is_stack[1:] & (c[1:] == c[:-1])
        self.dropped_stacks += int((has & ~followed).sum())

    def _spool(self, cpu: int) -> BinaryIO:
        f = self.spools.get(cpu)
        if f is None:
            f = self.spools[cpu] = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115
        return f

    def _names(self, df: pl.DataFrame) -> None:
        last = (
            df.filter(pl.col("comm").is_not_null() & (pl.col("pid") != 0))
            .filter(~pl.col("comm").is_in(["<...>", "<idle>"]))
            .group_by("pid")
            .agg(pl.col("comm").last())
        )
        self.comms.update(zip(last["pid"].to_list(), last["comm"].to_list(), strict=True))

    def _lost_rows(self, df: pl.DataFrame) -> np.ndarray:
        """Missed-event count to flag before each row (-1: none)."""
        n = df.height
        mark = np.full(n, -1, dtype=np.int64)
        seq = df["seq"].to_numpy()
        cpu = df["cpu"].to_numpy()
        lost = self.meta.lost
        last = int(seq[-1]) if n else -1
        while self.lost_used < len(lost) and lost[self.lost_used].seq <= last:
            gap = lost[self.lost_used]
            self.lost_used += 1
            c = gap.cpu if gap.cpu is not None else 0
            self.gap[c] = self.gap.get(c, 0) + (gap.count or 0)
        for c, count in list(self.gap.items()):
            after = np.flatnonzero(cpu == c)
            if self.lost_used and after.size:
                gseq = max(g.seq for g in lost[: self.lost_used] if (g.cpu or 0) == c)
                after = after[seq[after] > gseq]
            if after.size:
                mark[after[0]] = count
                del self.gap[c]
        return mark

    # ------------------------------------------------------------------ events

    def _event(self, name: str, system: str | None, args: pl.DataFrame) -> _Event:
        real = FORMATS.get(name)
        known = KNOWN_EVENTS.get(name)
        if real is not None and (system is None or system == real[0] or name == _STACK):
            sys_name, eid, body = real
            kinds = known.fields if known is not None and known.system == sys_name else None
            fields = _field_names(name)
            if kinds is not None:
                # fields the source's kernel does not have (null in every row): drop them
                absent = [
                    k for k in kinds if k in args.columns and args[k].null_count() == args.height
                ]
            elif name == _STACK or set(args.columns) <= set(fields):
                # a generic event of an older kernel: its format without the missing fields
                absent = [] if name == _STACK else [f for f in fields if f not in args.columns]
            else:
                # fields the 6.18 format lacks: describe the event as the source has it
                return self._synth(name, system, args)
            key: tuple[object, ...] = (name, system, tuple(absent))
            ev = self.events_by_key.get(key)
            if ev is not None:
                return ev
            if absent and args.height:
                body = _without_fields(body, absent)
                eid = self._new_id()
            return self._add(key, name, eid, body, sys_name, kinds)
        return self._synth(name, system, args)

    def _synth(self, name: str, system: str | None, args: pl.DataFrame) -> _Event:
        key = (name, system, tuple((c, str(t)) for c, t in args.schema.items()))
        ev = self.events_by_key.get(key)
        if ev is not None:
            return ev
        return self._add(key, name, self._new_id(), _synth_body(args), system or "ftrace", None)

    def _add(
        self,
        key: tuple[object, ...],
        name: str,
        eid: int,
        body: str,
        sys_name: str,
        kinds: dict[str, str] | None,
    ) -> _Event:
        text = f"name: {name}\nID: {eid}\nformat:\n{COMMON}{body}"
        ev = _Event(parse_format(text, sys_name), text, sys_name, kinds)
        self.events_by_key[key] = ev
        return ev

    def _new_id(self) -> int:
        while self.next_id in self.used_ids:
            self.next_id += 1
        self.used_ids.add(self.next_id)
        return self.next_id

    def _encode(self, name: str, system: str | None, sub: pl.DataFrame) -> tuple[Any, Any]:
        known = KNOWN_EVENTS.get(name)
        parsed: pl.DataFrame | None = None
        if known is not None and name in FORMATS:
            dtype = pl.Struct({k: _DTYPE[v] for k, v in known.fields.items()})
            with contextlib.suppress(pl.exceptions.PolarsError):
                parsed = sub.select(v=pl.col("args").str.json_decode(dtype)).unnest("v")
        if parsed is None:
            parsed = _infer(sub["args"])
        ev = self._event(name, system, parsed)
        stacks = sub["stack"] if name == _STACK else None
        pid = sub["pid"].to_numpy().astype(np.int64)
        try:
            return encode_records(ev.fmt, parsed, pid, ev.kinds, self.syms, stacks)
        except (ValueError, KeyError, TypeError) as e:
            raise TraceDatWriteError(f"cannot encode {name} events as trace.dat: {e}") from None

    # ------------------------------------------------------------------ file

    def finish(self, out: BinaryIO) -> None:
        if self.gap:
            self.warnings.append(
                f"lost-event gap(s) after the last event of CPU(s) {sorted(self.gap)} not written"
            )
        if self.dropped_stacks:
            self.warnings.append(
                f"{self.dropped_stacks} stack(s) not carried by a kernel_stack event dropped"
            )
        out.write(MAGIC + b"7\0" + bytes([0, 8]) + struct.pack("<I", PAGE_SIZE))
        if self.zstd:
            version = ".".join(str(v) for v in zstandard.ZSTD_VERSION)
            out.write(b"zstd\0" + version.encode() + b"\0")
        else:
            out.write(b"none\0\0")
        patch_at = out.tell()
        out.write(struct.pack("<Q", 0))
        sections: list[tuple[int, int]] = []
        header = (
            b"header_page\0" + _sized(HEADER_PAGE.encode(), 8)
            + b"header_event\0" + _sized(HEADER_EVENT.encode(), 8)
        )  # fmt: skip
        sections.append((SEC_HEADER_INFO, _section(out, SEC_HEADER_INFO, header, self.zstd)))
        by_system: dict[str, list[str]] = {}
        for ev in sorted(self.events_by_key.values(), key=lambda e: e.fmt.id):
            by_system.setdefault(ev.system, []).append(ev.text)
        ftrace = by_system.pop("ftrace", [])
        body = struct.pack("<I", len(ftrace)) + b"".join(_sized(t.encode(), 8) for t in ftrace)
        sections.append((SEC_FTRACE, _section(out, SEC_FTRACE, body, self.zstd)))
        body = struct.pack("<I", len(by_system))
        for system, texts in sorted(by_system.items()):
            body += system.encode() + b"\0" + struct.pack("<I", len(texts))
            body += b"".join(_sized(t.encode(), 8) for t in texts)
        sections.append((SEC_EVENTS, _section(out, SEC_EVENTS, body, self.zstd)))
        kallsyms = self.syms.kallsyms().encode()
        sections.append((SEC_KALLSYMS, _section(out, SEC_KALLSYMS, _sized(kallsyms, 4), self.zstd)))
        sections.append((SEC_PRINTK, _section(out, SEC_PRINTK, _sized(b"", 4), self.zstd)))
        cmdlines = "".join(f"{p} {c}\n" for p, c in sorted(self.comms.items())).encode()
        sections.append((SEC_CMDLINES, _section(out, SEC_CMDLINES, _sized(cmdlines, 8), self.zstd)))
        ncpu = max(self.meta.cpus or 0, max(self.cpus, default=0) + 1)
        clock = self.meta.clock or "local"
        cpu_data, flyrecord = self._flyrecord(out, ncpu)
        opts = b"".join(_option(sid, struct.pack("<Q", at)) for sid, at in sections)
        opts += _option(OPT_TRACECLOCK, f"[{clock}]\n".encode() + b"\0")
        if self.meta.kernel_release:
            # no uname without a release: a made-up one would hide the manifest's kernel
            opts += _option(
                OPT_UNAME,
                f"Linux tracereplay {self.meta.kernel_release} x86_64".encode() + b"\0",
            )
        opts += _option(OPT_VERSION, TRACE_CMD_VERSION.encode() + b"\0")
        opts += _option(OPT_CPUCOUNT, struct.pack("<I", ncpu))
        buf = struct.pack("<Q", flyrecord) + b"\0" + clock.encode() + b"\0"
        buf += struct.pack("<II", PAGE_SIZE, len(cpu_data))
        buf += b"".join(struct.pack("<IQQ", c, o, s) for c, o, s in cpu_data)
        opts += _option(OPT_BUFFER, buf)
        opts += _option(OPT_DONE, struct.pack("<Q", 0))
        options_at = _section(out, 0, opts, False)
        out.seek(patch_at)
        out.write(struct.pack("<Q", options_at))

    def _flyrecord(self, out: BinaryIO, ncpu: int) -> tuple[list[tuple[int, int, int]], int]:
        at = out.tell()
        out.write(struct.pack("<HHIQ", OPT_BUFFER, int(self.zstd), 0, 0))
        pad = -out.tell() % PAGE_SIZE
        out.write(b"\0" * pad)
        cpu_data = []
        for c in range(ncpu):
            start = out.tell()
            f = self.spools.get(c)
            if f is not None:
                f.seek(0)
                if self.zstd:
                    _compressed_chunks(f, self.spool_sizes.get(c, 0), out)
                else:
                    shutil.copyfileobj(f, out, 1 << 20)
            cpu_data.append((c, start, out.tell() - start))
        end = out.tell()
        out.seek(at + 8)
        out.write(struct.pack("<Q", end - at - 16))
        out.seek(end)
        return cpu_data, at


def _sized(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "little") + data


def _option(oid: int, data: bytes) -> bytes:
    return struct.pack("<HI", oid, len(data)) + data


def _section(out: BinaryIO, sid: int, body: bytes, zstd: bool) -> int:
    at = out.tell()
    if zstd:
        packed = zstandard.ZstdCompressor().compress(body)
        body = struct.pack("<II", len(packed), len(body)) + packed
    out.write(struct.pack("<HHIQ", sid, int(zstd), 0, len(body)) + body)
    return at


def _compressed_chunks(spool: BinaryIO, size: int, out: BinaryIO) -> None:
    """A CPU's pages as trace-cmd writes them compressed: u32 chunk count, then per chunk
    u32 compressed size, u32 size and the zstd frame."""
    chunk = CHUNK_PAGES * PAGE_SIZE
    out.write(struct.pack("<I", -(-size // chunk)))
    cctx = zstandard.ZstdCompressor()
    while data := spool.read(chunk):
        packed = cctx.compress(data)
        out.write(struct.pack("<II", len(packed), len(data)) + packed)


@functools.cache
def _field_names(name: str) -> tuple[str, ...]:
    """Fields of the real 6.18 format of ``name`` (without the common ones)."""
    sys_name, eid, body = FORMATS[name]
    return tuple(f.name for f in parse_format(f"name: {name}\nID: {eid}\nformat:\n{COMMON}{body}", sys_name).fields)
