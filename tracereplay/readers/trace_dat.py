"""Reader for trace-cmd ``trace.dat`` files, versions 6 and 7.

Layout (trace-cmd Documentation/trace-cmd/trace-cmd.dat.v6.5.txt and
trace-cmd.dat.v7.5.txt): a header (magic, version, endianness, long size, page
size), then either the v6 fixed sequence (header_page/header_event, ftrace and
event format files, kallsyms, printk formats, saved cmdlines, options, per-CPU
offsets) or v7 sections located by options (optionally zlib/zstd compressed;
per-CPU ring-buffer data compressed in chunks). Each buffer (the top instance
and every ``BUFFER`` option) holds per-CPU runs of ring-buffer pages that
:mod:`tracereplay.formats.tracefs.ring_buffer` walks with compiled loops. CPUs are
merged by timestamp in bounded windows (:mod:`tracereplay.formats.tracefs.cpu_merge`), so memory stays
bounded by the batch size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.binfile import BinFile, decompress
from tracereplay.formats.common.columns import factorize
from tracereplay.formats.common.jit import announce_compile
from tracereplay.formats.tracefs.batches import BatchBuilder
from tracereplay.formats.tracefs.cpu_merge import Merger, Recs
from tracereplay.formats.tracefs.event_decoder import COMPILED, EventDecoder, NumberSpec
from tracereplay.formats.tracefs.format_file import FormatError, parse_header_page
from tracereplay.formats.tracefs.ring_buffer import walk_pages
from tracereplay.formats.tracefs.tgids import TgidTracker
from tracereplay.tracemeta import LostEvents, TraceMeta

MAGIC = b"\x17\x08\x44tracing"
# CONFIG_NR_CPUS is at most 8192 (x86 MAXSMP); a count or id past 2^16 is corruption
MAX_CPUS = 1 << 16
# ring-buffer sub-buffers are 4 KiB pages, up to 1 MiB with buffer_subbuf_size_kb (6.8+)
MIN_PAGE, MAX_PAGE = 512, 1 << 20

# trace-cmd option ids (include/trace-cmd/trace-cmd.h, trace-cmd 3.2)
OPT_DONE, OPT_DATE, OPT_BUFFER, OPT_TRACECLOCK, OPT_UNAME = 0, 1, 3, 4, 5
OPT_OFFSET, OPT_CPUCOUNT, OPT_VERSION, OPT_TIME_SHIFT, OPT_GUEST = 7, 8, 9, 12, 13
OPT_TSC2NSEC, OPT_STRINGS, OPT_BUFFER_TEXT = 14, 15, 22
SEC_HEADER_INFO, SEC_FTRACE, SEC_EVENTS, SEC_KALLSYMS, SEC_PRINTK, SEC_CMDLINES = range(16, 22)

# a cold first read compiles the decoder for about this long (docs/BENCHMARKS.md, First run)
COMPILE_SECONDS = 10


@dataclass
class CpuData:
    cpu: int
    offset: int
    size: int


@dataclass
class Buffer:
    name: str
    clock: str | None
    page_size: int
    cpus: list[CpuData] = field(default_factory=list)


class TraceDatReader:
    """trace-cmd trace.dat v6 / v7; see the module docstring."""

    format_name: ClassVar[str] = "trace-dat"

    def __init__(self, path: str) -> None:
        self.path = path
        self.meta = TraceMeta(path=path, format=self.format_name)
        self._f = BinFile(path)
        self.compression = "none"
        self.page_size = 4096
        self.long_size = 8
        self.buffers: list[Buffer] = []
        self.decoder = EventDecoder(path)
        self.tsc2nsec: tuple[int, int, int] | None = None
        self.ts_offset = 0
        self._parsed = False

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC)

    # --- header and metadata ------------------------------------------------------------

    def parse(self) -> None:
        """Read everything but the event data (idempotent)."""
        if self._parsed:
            return
        f = self._f
        if f.bytes(0, 10, "magic")[:10] != MAGIC + b"\0"[:0] and f.bytes(0, 10) != MAGIC:
            raise f.error("not a trace-cmd trace.dat (bad magic)", 0)
        version_s, pos = f.cstr(10, "version")
        try:
            version = int(version_s)
        except ValueError:
            raise f.error(f"bad trace.dat version {version_s!r}", 10) from None
        endian = f.u(pos, 1, "endianness")
        if endian not in (0, 1):
            raise f.error(f"bad endianness byte {endian}", pos)
        f.endian = ">" if endian else "<"
        if endian:
            raise f.error("big-endian trace.dat files are not supported", pos)
        self.long_size = f.u(pos + 1, 1, "long size")
        self.page_size = f.u(pos + 2, 4, "page size")
        if not MIN_PAGE <= self.page_size <= MAX_PAGE:
            raise f.error(f"implausible page size {self.page_size}", pos + 2)
        pos += 6
        self.meta.recorder_options["trace_dat_version"] = version
        if version >= 7:
            self._parse_v7(pos)
        elif version >= 5:
            self._parse_v6(pos)
        else:
            raise f.error(f"trace.dat version {version} is not supported (6 and 7 are)", 10)
        self.decoder.finish_formats()
        self._parsed = True

    def _section(self, pos: int) -> tuple[int, bytes, int]:
        """(section id, uncompressed content, content file offset) of the v7 section at pos."""
        f = self._f
        sid = f.u(pos, 2, "section id")
        flags = f.u(pos + 2, 2, "section flags")
        size = f.u(pos + 8, 8, "section size")
        body = pos + 16
        if flags & 1:
            csize = f.u(body, 4, "compressed size")
            usize = f.u(body + 4, 4, "uncompressed size")
            blob = f.bytes(body + 8, csize, "compressed section")
            try:
                return sid, decompress(self.compression, blob, usize, f"section {sid}"), body
            except ValueError as e:
                raise f.error(str(e), body) from None
        return sid, f.bytes(body, size, f"section {sid}"), body

    def _parse_v7(self, pos: int) -> None:
        f = self._f
        self.compression, pos = f.cstr(pos, "compression name")
        comp_version, pos = f.cstr(pos, "compression version")
        if self.compression not in ("none", "zlib", "zstd"):
            raise f.error(f"unsupported compression {self.compression!r}", pos)
        self.meta.recorder_options["compression"] = (
            f"{self.compression} {comp_version}".strip() if self.compression != "none" else "none"
        )
        opt_at = f.u(pos, 8, "options offset")
        seen: set[int] = set()
        while opt_at and opt_at not in seen:
            seen.add(opt_at)
            sid, body, base = self._section(opt_at)
            if sid != 0:
                raise f.error(f"expected an options section, found section {sid}", opt_at)
            opt_at = self._options(body, base, v7=True)

    def _options(self, body: bytes, base: int, *, v7: bool) -> int:
        """Apply the options in ``body``; returns the next options section offset (v7)."""
        p = 0
        while p + 2 <= len(body):
            oid = int.from_bytes(body[p : p + 2], "little")
            if oid == OPT_DONE and not v7:
                return 0
            if p + 6 > len(body):
                break
            size = int.from_bytes(body[p + 2 : p + 6], "little")
            data = body[p + 6 : p + 6 + size]
            if len(data) < size:
                raise self._f.error(f"truncated option {oid}", base + p)
            p += 6 + size
            if oid == OPT_DONE:
                return int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
            try:
                self._option(oid, data, v7)
            except (IndexError, ValueError, UnicodeDecodeError) as e:
                raise self._f.error(f"malformed option {oid}: {e}", base + p - size) from None
        if v7:
            raise self._f.error("options section without DONE option", base)
        return 0

    def _option(self, oid: int, data: bytes, v7: bool) -> None:
        opts = self.meta.recorder_options

        def text(d: bytes) -> str:
            return d.split(b"\0", 1)[0].decode("utf-8", "replace")

        if oid == OPT_BUFFER:
            self._buffer_option(data, v7)
        elif oid == OPT_BUFFER_TEXT:
            self.meta.warn("latency (text) buffer in trace.dat skipped: not supported")
        elif oid == OPT_TRACECLOCK:
            clock = text(data)
            # the trace_clock file marks the selected clock with [brackets]
            sel = [c[1:-1] for c in clock.split() if c.startswith("[")]
            self.meta.clock = sel[0] if sel else clock.strip() or None
        elif oid == OPT_UNAME:
            uname = text(data)
            opts["uname"] = uname
            parts = uname.split()
            # "unknown": what tracereplay 0.2 and earlier wrote there when the source
            # had no release (the manifest's kernel is used then)
            if len(parts) >= 3 and parts[2] != "unknown":
                self.meta.kernel_release = parts[2]
        elif oid == OPT_CPUCOUNT:
            self.meta.cpus = _cpu_count(int.from_bytes(data[:4], "little"))
        elif oid == OPT_VERSION:
            opts["trace_cmd_version"] = text(data)
        elif oid == OPT_TSC2NSEC and len(data) >= 16:
            mult = int.from_bytes(data[0:4], "little")
            shift = int.from_bytes(data[4:8], "little")
            offset = int.from_bytes(data[8:16], "little")
            if mult == 0 or shift > 63:
                raise ValueError(f"implausible TSC conversion (mult {mult}, shift {shift})")
            self.tsc2nsec = (mult, shift, offset)
            opts["tsc2nsec"] = {"mult": mult, "shift": shift, "offset": offset}
        elif oid == OPT_OFFSET:
            self.ts_offset += int(text(data) or "0", 0)
            if abs(self.ts_offset) >= 1 << 62:
                raise ValueError(f"implausible timestamp offset {self.ts_offset}")
            opts["ts_offset"] = self.ts_offset
        elif oid == OPT_DATE:
            # trace-cmd report ignores DATE unless --date: so do we; keep it for the user
            opts["date_offset_us"] = text(data)
        elif oid == OPT_TIME_SHIFT and len(data) >= 16:
            opts["time_shift"] = {
                "peer_trace_id": int.from_bytes(data[0:8], "little"),
                "flags": int.from_bytes(data[8:12], "little"),
                "cpus": int.from_bytes(data[12:16], "little"),
            }
            self.meta.warn(
                "TIME_SHIFT option (guest/host sync) present: timestamps are the guest's own clock"
            )
        elif oid == OPT_GUEST:
            name, _, rest = data.partition(b"\0")
            guests = opts.setdefault("guests", [])
            guest: dict[str, object] = {"name": name.decode("utf-8", "replace")}
            if len(rest) >= 12:
                guest["trace_id"] = int.from_bytes(rest[0:8], "little")
                n = int.from_bytes(rest[8:12], "little")
                guest["vcpu_pids"] = [
                    int.from_bytes(rest[16 + 8 * k : 20 + 8 * k], "little")
                    for k in range(min(n, (len(rest) - 12) // 8))
                ]
            guests.append(guest)
        elif SEC_HEADER_INFO <= oid <= SEC_CMDLINES and v7:
            self._metadata_section(oid, int.from_bytes(data[:8], "little"))

    def _buffer_option(self, data: bytes, v7: bool) -> None:
        offset = int.from_bytes(data[:8], "little")
        name, _, rest = data[8:].partition(b"\0")
        buf = Buffer(name.decode("utf-8", "replace"), None, self.page_size)
        if v7:
            clock, _, rest = rest.partition(b"\0")
            buf.clock = clock.decode() or None
            buf.page_size = int.from_bytes(rest[0:4], "little")
            if not MIN_PAGE <= buf.page_size <= MAX_PAGE:
                raise ValueError(f"implausible page size {buf.page_size}")
            ncpu = int.from_bytes(rest[4:8], "little")
            if ncpu > MAX_CPUS or len(rest) < 8 + 20 * ncpu:
                raise ValueError(f"CPU list shorter than its count {ncpu}")
            for k in range(ncpu):
                rec = rest[8 + 20 * k : 28 + 20 * k]
                buf.cpus.append(
                    CpuData(
                        int.from_bytes(rec[0:4], "little"),
                        int.from_bytes(rec[4:12], "little"),
                        int.from_bytes(rec[12:20], "little"),
                    )
                )
        else:
            # v6: the offset points at the per-CPU (offset, size) table of this instance
            ncpu = self.meta.cpus or 0
            for k in range(ncpu):
                at = offset + 16 * k
                buf.cpus.append(CpuData(k, self._f.u(at, 8), self._f.u(at + 8, 8)))
        if buf.name and buf.clock is None:
            buf.clock = self.meta.clock
        self._check_cpus(buf)
        self.buffers.append(buf)

    def _check_cpus(self, buf: Buffer) -> None:
        """CPU ids in range and unique; data past the end of the file is a truncation."""
        seen: set[int] = set()
        for c in buf.cpus:
            if c.cpu >= MAX_CPUS or c.cpu in seen:
                raise ValueError(f"implausible or repeated CPU id {c.cpu}")
            seen.add(c.cpu)
            if c.size and c.offset + c.size > self._f.size:
                have = max(self._f.size - c.offset, 0)
                self.meta.warn(
                    f"{self.path} @ byte {self._f.size}: CPU {c.cpu} data of "
                    f"{buf.name or 'the top buffer'} truncated ({have} of {c.size} bytes)",
                    partial=True,
                )

    def _metadata_section(self, sid: int, at: int) -> None:
        got, body, base = self._section(at)
        if got != sid:
            raise self._f.error(f"expected section {sid}, found {got}", at)
        self._metadata(sid, body, base)

    def _metadata(self, sid: int, body: bytes, base: int) -> None:
        dec = self.decoder
        try:
            if sid == SEC_HEADER_INFO:
                hp, p = _sized(body, 0, b"header_page", 8)
                he, _p = _sized(body, p, b"header_event", 8)
                dec.data_offset, dec.commit_size = parse_header_page(hp.decode("utf-8", "replace"))
                dec.header_event = he.decode("utf-8", "replace")
            elif sid == SEC_FTRACE:
                _read_formats(dec, body, 0, "ftrace")
            elif sid == SEC_EVENTS:
                n = int.from_bytes(body[0:4], "little")
                p = 4
                for _ in range(n):
                    end = body.index(b"\0", p)
                    system = body[p:end].decode("utf-8", "replace")
                    p = _read_formats(dec, body, end + 1, system)
            elif sid == SEC_KALLSYMS:
                n = int.from_bytes(body[0:4], "little")
                dec.set_kallsyms(body[4 : 4 + n].decode("utf-8", "replace"))
            elif sid == SEC_PRINTK:
                n = int.from_bytes(body[0:4], "little")
                self.meta.recorder_options["printk_formats"] = body[4 : 4 + n].count(b"\n")
            elif sid == SEC_CMDLINES:
                n = int.from_bytes(body[0:8], "little")
                dec.load_cmdlines(body[8 : 8 + n].decode("utf-8", "replace"))
        except FormatError as e:
            raise self._f.error(f"event format does not parse: {e}", base) from None
        except (ValueError, IndexError) as e:
            raise self._f.error(f"malformed metadata section {sid}: {e}", base) from None

    def _parse_v6(self, pos: int) -> None:
        f = self._f
        # header_page and header_event: name\0, u64 size, data
        start = pos
        for _ in range(2):
            _name, pos = f.cstr(pos, "header name")
            size = f.u(pos, 8, "header size")
            pos += 8 + size
            f.need(pos - size, size, "header file")
        self._metadata(SEC_HEADER_INFO, f.bytes(start, pos - start), start)
        # ftrace formats: u32 count, then u64 size + text each
        at = pos
        pos = _skip_formats(f, pos)
        self._metadata(SEC_FTRACE, f.bytes(at, pos - at), at)
        at = pos
        nsys = f.u(pos, 4, "system count")
        pos += 4
        for _ in range(nsys):
            _sys, pos = f.cstr(pos, "system name")
            pos = _skip_formats(f, pos)
        self._metadata(SEC_EVENTS, f.bytes(at, pos - at), at)
        for sid, width in ((SEC_KALLSYMS, 4), (SEC_PRINTK, 4), (SEC_CMDLINES, 8)):
            size = f.u(pos, width, "size")
            self._metadata(sid, f.bytes(pos, width + size), pos)
            pos += width + size
        try:
            self.meta.cpus = _cpu_count(f.u(pos, 4, "cpu count"))
        except ValueError as e:
            raise f.error(str(e), pos) from None
        pos += 4
        kind = f.bytes(pos, 10, "data kind")
        pos += 10
        if kind.startswith(b"options"):
            end = pos
            while True:
                oid = f.u(end, 2, "option id")
                if oid == 0:
                    end += 2
                    break
                end += 6 + f.u(end + 2, 4, "option size")
            self._options(f.bytes(pos, end - pos), pos, v7=False)
            pos = end
            kind = f.bytes(pos, 10, "data kind")
            pos += 10
        if kind.startswith(b"latency"):
            raise f.error("latency (text) trace.dat files are not supported", pos)
        if not kind.startswith(b"flyrecord"):
            raise f.error(f"unknown data kind {kind!r}", pos - 10)
        top = Buffer("", self.meta.clock, self.page_size)
        for k in range(self.meta.cpus):
            top.cpus.append(CpuData(k, f.u(pos + 16 * k, 8), f.u(pos + 16 * k + 8, 8)))
        self._check_cpus(top)
        self.buffers.insert(0, top)

    # --- event data ---------------------------------------------------------------------

    def cpu_pages(
        self, buf: Buffer, cpu: CpuData, batch_pages: int
    ) -> Iterator[tuple[np.ndarray, int]]:
        """Whole pages of one CPU, in batches, with the file offset of each batch."""
        f = self._f
        ps = buf.page_size
        if cpu.size == 0:
            return
        if self.compression == "none" or self.meta.recorder_options.get("trace_dat_version", 7) < 7:
            # a short file was reported by _check_cpus
            end = min(cpu.offset + cpu.size, f.size)
            step = batch_pages * ps
            for at in range(cpu.offset, end, step):
                n = min(step, end - at) // ps * ps
                if n <= 0:
                    break
                yield np.frombuffer(f.data, dtype=np.uint8, count=n, offset=at), at
                f.release(at, at + n)  # copied into the merger's store by now
            return
        if cpu.offset + 4 > f.size:
            return  # reported by _check_cpus
        nchunks = f.u(cpu.offset, 4, "chunk count")
        pos = cpu.offset + 4
        pending: list[bytes] = []
        have = 0
        start = pos
        for k in range(nchunks):
            try:
                csize = f.u(pos, 4, "chunk size")
                usize = f.u(pos + 4, 4, "chunk size")
                blob = f.bytes(pos + 8, csize, "compressed chunk")
                pending.append(self._chunk(blob, usize, f"CPU {cpu.cpu} chunk {k}"))
            except (TraceFormatError, ValueError) as e:
                detail = e.detail if isinstance(e, TraceFormatError) else str(e)
                self.meta.warn(
                    f"{self.path} @ byte {pos}: {detail}; rest of CPU {cpu.cpu} skipped",
                    partial=True,
                )
                break
            pos += 8 + csize
            have += usize
            if have >= batch_pages * ps:
                data = b"".join(pending)
                yield np.frombuffer(data, dtype=np.uint8, count=len(data) // ps * ps), start
                pending, have, start = [], 0, pos
        if pending:
            data = b"".join(pending)
            yield np.frombuffer(data, dtype=np.uint8, count=len(data) // ps * ps), start

    def _chunk(self, blob: bytes, usize: int, where: str) -> bytes:
        """One decompressed chunk of per-CPU data (bounded, checked like binfile.decompress)."""
        return decompress(self.compression, blob, usize, where)

    def convert_ts(self, raw: np.ndarray) -> np.ndarray:
        ts = raw.astype(np.uint64)
        if self.tsc2nsec is not None:
            mult, shift, _off = self.tsc2nsec
            # mul_u64_u32_shr without 128-bit integers: split in 32-bit halves
            hi, lo = ts >> np.uint64(32), ts & np.uint64(0xFFFFFFFF)
            m = np.uint64(mult)
            high = (
                (hi * m) << np.uint64(32 - shift)
                if shift <= 32
                else (hi * m) >> np.uint64(shift - 32)
            )
            ts = high + ((lo * m) >> np.uint64(shift))
        return ts.view(np.int64) + np.int64(self.ts_offset)

    def bytes_progress(self) -> tuple[int, int]:
        """(bytes of the (decompressed) file decoded so far, its size), for progress bars."""
        return self._f.released, self._f.size

    def numbers_only(self, events: dict[str, NumberSpec]) -> None:
        """For the store: these events' fields as columns, not JSON (see
        :meth:`~tracereplay.formats.tracefs.event_decoder.EventDecoder.numbers`)."""
        self.decoder.numbers_only(events)

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            self.parse()
        except zlib.error as e:  # defensive: decompress() wraps these
            raise self._f.error(f"corrupt compressed data: {e}", 0) from None
        meta = self.meta
        if not self.buffers:
            raise self._f.error("no trace data (no flyrecord buffer)", 0)
        clocks = {b.clock for b in self.buffers if b.clock}
        if clocks and meta.clock is None:
            meta.clock = sorted(clocks)[0]
        meta.recorder_options["buffers"] = [b.name or "top" for b in self.buffers]
        announce_compile("trace.dat decoder", (walk_pages, *COMPILED), COMPILE_SECONDS)
        tgids = TgidTracker(self.decoder.tgids)
        # batches of exactly BATCH_ROWS rows, filled window by window (formats.tracefs.batches)
        builder = BatchBuilder(self.decoder)
        for buf in self.buffers:
            merger = Merger(self, buf)
            for recs, cpu in merger.windows():
                cols = self._columns(merger.flat, recs, cpu, tgids)
                stack = self._stacks(merger.flat, recs)
                start = 0
                while start < len(recs):
                    stop = start + min(builder.room, len(recs) - start)
                    part = slice(start, stop)
                    builder.add(
                        merger.flat,
                        recs.off[part],
                        recs.length[part],
                        {k: v[part] for k, v in cols.items()},
                        stack.slice(start, stop - start) if stack is not None else None,
                    )
                    start = stop
                    if not builder.room:
                        yield self._emit(builder)
            meta.lost.extend(
                LostEvents(cpu=c, ts=t, count=n, seq=0) for c, t, n in merger.lost
            )
        if builder.rows:
            yield self._emit(builder)
        self.decoder.report(meta)
        if tgids.assumed:
            meta.recorder_options["tgid_assumed_leader"] = len(tgids.assumed)
            meta.warn(
                f"trace.dat has no tgids: {len(tgids.assumed)} task(s) not created in the trace "
                "assumed to lead their own thread group (tgid = pid)"
            )
        if meta.lost:
            total = sum(x.count or 0 for x in meta.lost)
            meta.warn(
                f"the tracer lost events: {len(meta.lost)} gap(s), {total} event(s) counted",
                partial=True,
            )

    def _emit(self, builder: BatchBuilder) -> pa.RecordBatch:
        batch = builder.finish(self.meta.event_count)
        self.meta.event_count += batch.num_rows
        return batch

    def _columns(
        self, flat: np.ndarray, r: Recs, cpu: np.ndarray, tgids: TgidTracker
    ) -> dict[str, np.ndarray]:
        """Per-row columns of one merged window (tgids follow the window's fork/exec events)."""
        dec = self.decoder
        codes, uniq = factorize(r.pid)
        pids = uniq.astype(np.int32).tolist()
        hit_slots = [k for k, s in enumerate(dec.slots) if s.name in _TGID_EVENTS]
        hits = np.flatnonzero(np.isin(r.slot, hit_slots)) if hit_slots else np.zeros(0, np.int64)
        tgid_u, null_u = tgids.apply(
            pids,
            r.pid[hits],
            [dec.slots[k].name for k in r.slot[hits].tolist()],
            dec.args(flat, r.off[hits], r.length[hits], r.slot[hits]),
        )
        return {
            "ts": r.ts,
            "cpu": cpu,
            "pid": r.pid,
            "slot": r.slot,
            "tgid": tgid_u[codes],
            "null": null_u[codes],
        }

    def _stacks(self, flat: np.ndarray, r: Recs) -> pa.Array | None:
        """Stacks of the window's records (None when none has one)."""
        has = r.stk >= 0
        if not has.any():
            return None
        rows = np.flatnonzero(has)
        lists = self.decoder.stacks(flat, r.stk[rows], r.stk_len[rows])
        pos = np.zeros(len(r), np.int64)
        pos[rows] = np.arange(len(rows))
        return lists.take(pa.array(pos, mask=~has))


_TGID_EVENTS = ("task_newtask", "sched_process_exec")


def _cpu_count(n: int) -> int:
    if not 0 < n <= MAX_CPUS:
        raise ValueError(f"implausible CPU count {n}")
    return n


def _sized(body: bytes, p: int, name: bytes, width: int) -> tuple[bytes, int]:
    if body[p : p + len(name) + 1] != name + b"\0":
        raise ValueError(f"expected {name.decode()}")
    p += len(name) + 1
    size = int.from_bytes(body[p : p + width], "little")
    data = body[p + width : p + width + size]
    if len(data) < size:
        raise ValueError(f"truncated {name.decode()}")
    return data, p + width + size


def _read_formats(dec: EventDecoder, body: bytes, p: int, system: str) -> int:
    n = int.from_bytes(body[p : p + 4], "little")
    p += 4
    # every format file takes at least its 8-byte size: a larger count is damage
    if n > (len(body) - p) // 8:
        raise ValueError(f"{n} format files of system {system} claimed, the section cannot hold them")
    for _ in range(n):
        if p + 8 > len(body):
            raise ValueError(f"truncated format file of system {system}")
        size = int.from_bytes(body[p : p + 8], "little")
        text = body[p + 8 : p + 8 + size]
        if len(text) < size:
            raise ValueError(f"truncated format file of system {system}")
        dec.add_format(text.decode("utf-8", "replace"), system)
        p += 8 + size
    return p


def _skip_formats(f: BinFile, pos: int) -> int:
    n = f.u(pos, 4, "format count")
    pos += 4
    for _ in range(n):
        size = f.u(pos, 8, "format size")
        f.need(pos + 8, size, "format file")
        pos += 8 + size
    return pos


__all__ = ["MAGIC", "TraceDatReader"]
