"""Reader for ``perf.data`` tracepoint recordings, file and pipe mode.

Layout (perf's tools/perf/Documentation/perf.data-file-format.txt): a
``PERFILE2`` header (104 bytes in file mode, 16 in pipe mode), the event
attributes, a data section of records ``{u32 type, u16 misc, u16 size}`` and,
in file mode, feature sections after the data (HEADER_TRACING_DATA embeds the
tracefs format files, same layout as trace.dat v6's header). Pipe mode carries
attributes and tracing data as synthesized records in the stream instead.

Records are 8-byte aligned and chained by their size; a compiled loop
(:func:`~tracereplay.formats.perf.records.chain_records`) follows the chain through a 32 MiB window, then SAMPLE fields
are gathered per column and the raw tracepoint records decoded by
:class:`~tracereplay.formats.tracefs.event_decoder.EventDecoder`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tracereplay.formats.common.binfile import BinFile
from tracereplay.formats.common.columns import StringPool, factorize
from tracereplay.formats.common.jit import announce_compile, int64, readonly
from tracereplay.formats.perf import records
from tracereplay.formats.perf.records import (
    SampleLayout,
    chain_records,
    record_headers,
    sample_fields,
)
from tracereplay.formats.tracefs.batches import elided_order, number_schema
from tracereplay.formats.tracefs.event_decoder import COMPILED, EventDecoder, NumberSpec
from tracereplay.formats.tracefs.format_file import FormatError, parse_header_page
from tracereplay.formats.tracefs.ring_buffer import read_ints
from tracereplay.tracemeta import LostEvents, TraceMeta

MAGIC = b"PERFILE2"
WINDOW = 32 << 20  # bytes of records decoded per step (bounds memory)
MAX_RECORD = 1 << 16
MAX_CPUS = 1 << 16  # CONFIG_NR_CPUS is at most 8192: more is a damaged field

# record types (include/uapi/linux/perf_event.h, tools/perf/util/event.h)
REC_LOST, REC_COMM, REC_SAMPLE = 2, 3, 9
REC_HEADER_ATTR, REC_TRACING_DATA, REC_FINISHED_ROUND, REC_COMPRESSED = 64, 66, 68, 81
HEADER_TRACING_DATA = 1  # feature bit
# sample_type bits
S_IP, S_TID, S_TIME, S_ADDR, S_READ, S_CALLCHAIN, S_ID, S_CPU = 1, 2, 4, 8, 16, 32, 64, 128
S_PERIOD, S_STREAM_ID, S_RAW, S_IDENTIFIER = 256, 512, 1024, 1 << 16
SAMPLE_ID_ALL = 1 << 18  # attr flags bit
PERF_CONTEXT_MAX = np.uint64(0xFFFFFFFFFFFFF001)  # callchain context markers are >= this
# a cold first read compiles the decoder for about this long (docs/BENCHMARKS.md, First run)
COMPILE_SECONDS = 11


@dataclass
class _Attr:
    sample_type: int
    read_format: int
    sample_id_all: bool
    config: int
    ids: list[int]


class PerfDataReader:
    """perf.data with tracepoint samples; see the module docstring."""

    format_name: ClassVar[str] = "perf-data"

    def __init__(self, path: str) -> None:
        self.path = path
        self.meta = TraceMeta(path=path, format=self.format_name)
        self._f = BinFile(path)
        self.decoder = EventDecoder(path)
        self.attrs: list[_Attr] = []
        self.data_start = 0
        self.data_end = 0
        self.pipe = False
        self._comm_names: dict[int, str] = {}
        self._array: npt.NDArray[np.uint8] | None = None
        self._words_array: npt.NDArray[np.uint64] | None = None
        self._seq = 0
        self._skipped: Counter[str] = Counter()
        self._first_bad: int | None = None
        self._last_type: int | None = None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC)

    # --- header -------------------------------------------------------------------------

    def parse(self) -> None:
        f = self._f
        if f.bytes(0, 8, "magic") != MAGIC:
            raise f.error("not a perf.data file (bad magic)", 0)
        hsize = f.u(8, 8, "header size")
        if hsize == 16:
            self.pipe = True
            self.data_start, self.data_end = 16, f.size
            self.meta.recorder_options["perf_mode"] = "pipe"
            return
        if hsize < 104:
            raise f.error(f"bad perf.data header size {hsize}", 8)
        attr_size = f.u(16, 8, "attr size")
        a_off, a_size = f.u(24, 8), f.u(32, 8)
        d_off, d_size = f.u(40, 8), f.u(48, 8)
        self.meta.recorder_options["perf_mode"] = "file"
        if attr_size < 72 or a_size % attr_size:
            raise f.error(f"bad attr section (entry size {attr_size})", 16)
        for k in range(a_size // attr_size):
            at = a_off + k * attr_size
            ids_off, ids_size = f.u(at + attr_size - 16, 8), f.u(at + attr_size - 8, 8)
            f.need(ids_off, ids_size, "attr ids")
            ids = np.frombuffer(f.data, dtype="<u8", count=ids_size // 8, offset=ids_off)
            self._add_attr(at, ids.tolist())
        self.data_start, self.data_end = d_off, d_off + d_size
        if d_off < hsize or d_off > f.size:
            raise f.error(f"data section offset {d_off} outside the file ({f.size} bytes)", 40)
        if self.data_end > f.size:
            self.meta.warn(
                f"{self.path} @ byte {f.size}: data section truncated "
                f"({f.size - d_off} of {d_size} bytes)",
                partial=True,
            )
            self.data_end = f.size
        features = f.u(72, 8)
        self._check_features(features, d_off + d_size)
        if features & (1 << HEADER_TRACING_DATA):
            # one (offset, size) per set feature bit, in bit order, after the data
            index = bin(features & ((1 << HEADER_TRACING_DATA) - 1)).count("1")
            sec = d_off + d_size + 16 * index
            t_off, t_size = f.u(sec, 8, "feature index"), f.u(sec + 8, 8, "feature index")
            self._tracing_data(t_off, t_size)

    def _check_features(self, features: int, index: int) -> None:
        """A file cut inside the feature sections after the data says so (their index has
        one (offset, size) per feature bit, HEADER_FEAT_BITS = 256 of them)."""
        f = self._f
        for k in range(bin(features).count("1")):
            at = index + 16 * k
            if at + 16 > f.size or f.u(at, 8) + f.u(at + 8, 8) > f.size:
                self.meta.warn(
                    f"{self.path} @ byte {min(at, f.size)}: feature sections after the data "
                    "are cut short (truncated file)",
                    partial=True,
                )
                return

    def _add_attr(self, at: int, ids: list[int]) -> None:
        f = self._f
        flags = f.u(at + 40, 8, "attr flags")
        self.attrs.append(
            _Attr(
                sample_type=f.u(at + 24, 8),
                read_format=f.u(at + 32, 8),
                sample_id_all=bool(flags & SAMPLE_ID_ALL),
                config=f.u(at + 8, 8),
                ids=ids,
            )
        )

    def _tracing_data(self, off: int, size: int) -> int:
        """Parse perf's tracing data (util/trace-event-read.c layout); returns its end."""
        f = self._f
        dec = self.decoder
        if f.bytes(off, 10, "tracing data magic") != b"\x17\x08\x44tracing":
            raise f.error("bad tracing data magic", off)
        version, pos = f.cstr(off + 10, "tracing data version")
        pos += 6  # endianness, long size, page size
        for name in ("header_page", "header_event"):
            _n, pos = f.cstr(pos, name)
            n = f.u(pos, 8, name)
            text = f.bytes(pos + 8, n, name).decode("utf-8", "replace")
            if name == "header_page":
                try:
                    dec.data_offset, dec.commit_size = parse_header_page(text)
                except FormatError as e:
                    raise f.error(f"header_page does not parse: {e}", pos) from None
            pos += 8 + n
        pos = self._formats(pos, "ftrace")
        nsys = f.u(pos, 4, "system count")
        pos += 4
        for _ in range(nsys):
            system, pos = f.cstr(pos, "system name")
            pos = self._formats(pos, system)
        n = f.u(pos, 4, "kallsyms size")
        dec.set_kallsyms(f.bytes(pos + 4, n, "kallsyms").decode("utf-8", "replace"))
        pos += 4 + n
        n = f.u(pos, 4, "printk size")
        pos += 4 + n
        if version >= "0.6":
            n = f.u(pos, 8, "cmdlines size")
            dec.load_cmdlines(f.bytes(pos + 8, n, "cmdlines").decode("utf-8", "replace"))
            pos += 8 + n
        dec.finish_formats()
        return pos

    def _formats(self, pos: int, system: str) -> int:
        f = self._f
        count = f.u(pos, 4, "format count")
        pos += 4
        for _ in range(count):
            n = f.u(pos, 8, "format size")
            self.decoder.add_format(
                f.bytes(pos + 8, n, "format file").decode("utf-8", "replace"), system
            )
            pos += 8 + n
        return pos

    # --- records ------------------------------------------------------------------------

    def _pipe_prologue(self) -> int:
        """Read pipe-mode setup records one by one until the first sample; returns its offset."""
        f = self._f
        pos = self.data_start
        while pos + 8 <= f.size:
            rtype, size = f.u(pos, 4), f.u(pos + 6, 2)
            if size < 8:
                raise f.error(f"bad record size {size}", pos)
            self._last_type = rtype
            if rtype == REC_HEADER_ATTR:
                attr_size = f.u(pos + 8 + 4, 4)
                if not 72 <= attr_size <= size - 8:
                    raise f.error(f"bad attr size {attr_size} in a {size}-byte record", pos)
                raw_ids = f.bytes(pos + 8 + attr_size, size - 8 - attr_size)
                ids = np.frombuffer(raw_ids[: len(raw_ids) // 8 * 8], dtype="<u8").tolist()
                self._add_attr(pos + 8, ids)
            elif rtype == REC_TRACING_DATA:
                tsize = f.u(pos + 8, 4)
                end = self._tracing_data(pos + size, tsize)
                # the data is padded to 8 bytes; a size that disagrees with the content is
                # damaged: the content's own end is where the next record starts
                stated = pos + size + tsize + (-(pos + size + tsize) % 8)
                if stated != end + (-end % 8):
                    self.meta.warn(
                        f"{self.path} @ byte {pos}: tracing data record states {tsize} bytes, "
                        f"its content has {end - pos - size} (the content is used)"
                    )
                pos = end + (-end % 8)
                continue
            elif rtype == REC_COMM:
                buf = np.frombuffer(f.data, dtype=np.uint8)
                self._comm_records(buf, np.array([pos]), np.array([size]))
            elif rtype in (REC_SAMPLE, REC_LOST):
                return pos
            pos += size
        return pos

    def _walk(self, lo: int, hi: int, start: int) -> tuple[npt.NDArray[np.int64], int]:
        """Offsets of the records chained from ``start`` inside [lo, hi); and the next start."""
        end = min(hi + MAX_RECORD, self.data_end)
        offs, chain_end = chain_records(self._buf(), start, end)
        last_end = int(chain_end)
        inside = offs < hi
        if (~inside).any():
            return offs[inside], int(offs[~inside][0])
        if last_end < self.data_end:
            self.meta.warn(
                f"{self.path} @ byte {last_end}: record chain broken (truncated or corrupt "
                "record); the rest of the data is skipped",
                partial=True,
            )
            return offs, self.data_end
        return offs, last_end

    def _words(self) -> npt.NDArray[np.uint64]:
        """The file as little-endian u64 words (the mapping is page-aligned)."""
        if self._words_array is None:
            self._words_array = np.frombuffer(self._f.data, dtype="<u8", count=self._f.size // 8)
        return self._words_array

    def _buf(self) -> npt.NDArray[np.uint8]:
        if self._array is None:
            self._array = np.frombuffer(self._f.data, dtype=np.uint8)
        return self._array

    def bytes_progress(self) -> tuple[int, int]:
        """(bytes of the (decompressed) file decoded so far, its size), for progress bars."""
        return self._f.released, self._f.size

    def numbers_only(self, events: dict[str, NumberSpec]) -> None:
        """For the store: these events' fields as columns, not JSON (see
        :meth:`~tracereplay.formats.tracefs.event_decoder.EventDecoder.numbers`)."""
        self.decoder.numbers_only(events)

    def batches(self) -> Iterator[pa.RecordBatch]:
        # one batch per 32 MiB window (~300 k rows here): already large enough for
        # DuckDB's insert, re-chunking measured slower (see common.columns.BATCH_ROWS)
        self.parse()
        pos = self._pipe_prologue() if self.pipe else self.data_start
        if not self.attrs:
            raise self._f.error("no event attributes", 8)
        if _read_words(self.attrs[0].read_format) < 0:
            raise self._f.error("group read format (PERF_FORMAT_GROUP) is not supported", 16)
        if not self.decoder._raw_formats and not self.decoder.formats:
            raise self._f.error("no tracing data (not a tracepoint recording)", 0)
        announce_compile("perf.data decoder", (*records.COMPILED, *COMPILED), COMPILE_SECONDS)
        while pos + 8 <= self.data_end:
            hi = min(pos + WINDOW, self.data_end)
            recs, nxt = self._walk(pos, hi, pos)
            batch = self._decode(recs)
            if batch is not None and batch.num_rows:
                self.meta.event_count += batch.num_rows
                yield batch
            if nxt <= pos:
                break
            self._f.release(pos, nxt)
            pos = nxt
        self._report_end(pos)
        self.decoder.report(self.meta)

    def _report_end(self, pos: int) -> None:
        """Skipped samples, and a pipe-mode stream cut at a record boundary."""
        where = f"{self.path} @ byte {self._first_bad}: " if self._first_bad is not None else ""
        for what, count in self._skipped.items():
            self.meta.warn(f"{where}{count} {what} skipped", partial=True)
            where = ""
        # perf ends a pipe-mode stream with a FINISHED_ROUND record (it also writes them
        # between rounds, so a cut right after one goes unnoticed)
        if self.pipe and self._last_type not in (REC_FINISHED_ROUND, None):
            self.meta.warn(
                f"{self.path} @ byte {pos}: pipe-mode stream does not end with a "
                "FINISHED_ROUND record: the recording is probably cut short",
                partial=True,
            )
    def _decode(self, recs: npt.NDArray[np.int64]) -> pa.RecordBatch | None:
        buf = self._buf()
        rtype, size = record_headers(buf, self._words(), recs)
        if len(rtype):
            self._last_type = int(rtype[-1])
        attr = self.attrs[0]
        st = attr.sample_type
        self._comm_records(buf, recs[rtype == REC_COMM], size[rtype == REC_COMM])
        self._lost_records(buf, recs[rtype == REC_LOST], size[rtype == REC_LOST], attr)
        s = recs[rtype == REC_SAMPLE]
        ssize = size[rtype == REC_SAMPLE]
        # byte offsets of the fields in a sample (-1: absent), in perf_event.h order
        at = 8
        off: dict[int, int] = {}
        for bit, width in (
            (S_IDENTIFIER, 8), (S_IP, 8), (S_TID, 8), (S_TIME, 8), (S_ADDR, 8), (S_ID, 8),
            (S_STREAM_ID, 8), (S_CPU, 8), (S_PERIOD, 8),
            (S_READ, 8 * _read_words(attr.read_format)),
        ):  # fmt: skip
            if st & bit:
                off[bit] = at
                at += width
        if not st & S_RAW:
            self._skipped["samples without raw tracepoint data (PERF_SAMPLE_RAW)"] += len(s)
            return None
        # one pass over the samples for every field (each pass streams the window once)
        layout = SampleLayout(
            off.get(S_TID, -1), off.get(S_TIME, -1), off.get(S_CPU, -1), at, bool(st & S_CALLCHAIN)
        )
        pid, tid, time, cpu, cc_nr, raw_len = sample_fields(buf, self._words(), s, ssize, layout)
        end = s + ssize
        p = s + at
        stacks = None
        if st & S_CALLCHAIN:
            stacks = self._callchains(buf, p + 8, cc_nr)
            p = p + 8 + 8 * cc_nr
        raw = p + 4
        ok = (raw + raw_len <= end) & (raw_len >= 8)
        if st & S_CPU:
            ok &= (cpu >= 0) & (cpu < MAX_CPUS)
        if not ok.all():
            self._skipped["malformed sample(s) (sizes or cpu out of range)"] += int((~ok).sum())
            if self._first_bad is None:
                self._first_bad = int(s[np.argmin(ok)])
        idx = np.flatnonzero(ok)
        dec = self.decoder
        slot, rec_pid, keep = dec.classify(buf, raw[idx], raw_len[idx])
        idx = idx[keep]
        n = len(idx)
        ts = time[idx] if st & S_TIME else np.zeros(n, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        idx, slot, ts = idx[order], slot[keep][order], ts[order]
        rec, rec_len = raw[idx], raw_len[idx]
        slot, numbers = dec.numbers(buf, rec, rec_len, slot)
        # the events given as numbers last, each together (formats.tracefs.batches)
        grouped, ranges = elided_order(n, numbers)
        seqs = np.arange(self._seq, self._seq + n, dtype=np.int64)
        own_pid = None if st & S_TID else rec_pid[keep][order]  # no tid: the record's pid
        if grouped is not None:
            idx, slot, ts, rec, rec_len, seqs = (
                a[grouped] for a in (idx, slot, ts, rec, rec_len, seqs)
            )
            own_pid = own_pid[grouped] if own_pid is not None else None
        task = (tid[idx] if own_pid is None else own_pid).astype(np.int32)
        codes, uniq = factorize(task.astype(np.int64))
        pids = uniq.tolist()
        names = dec.comm_names(pids)
        comm = StringPool(
            [self._comm_names.get(q, c) for q, c in zip(pids, names, strict=True)]
        ).take(codes)
        tgid = (
            pa.array(pid[idx].astype(np.int32), mask=task == 0)
            if st & S_TID
            else pa.nulls(n, pa.int32())
        )
        system, name = dec.names(slot)
        if stacks is not None:
            stack = stacks.take(pa.array(idx))
        elif dec.stack_flags()[slot].any():
            own = np.flatnonzero(dec.stack_flags()[slot])
            pos = np.zeros(n, np.int64)
            pos[own] = np.arange(len(own))
            stack = dec.stacks(buf, rec[own], rec_len[own]).take(
                pa.array(pos, mask=~dec.stack_flags()[slot])
            )
        else:
            stack = pa.nulls(n, type=pa.large_list(pa.large_string()))
        self._seq += n
        return pa.RecordBatch.from_arrays(
            [
                pa.array(seqs),
                pa.array(ts),
                pa.array(cpu[idx] if st & S_CPU else np.full(n, -1, dtype=np.int32)),
                pa.array(task),
                tgid,
                comm,
                system,
                name,
                dec.args(buf, rec, rec_len, slot),
                stack,
                *dec.number_arrays(numbers, ranges, n),
            ],
            schema=number_schema(dec.number_fields(ranges), ranges),
        )

    def _comm_records(
        self, buf: npt.NDArray[np.uint8], recs: npt.NDArray[np.int64], size: npt.NDArray[np.int64]
    ) -> None:
        if not len(recs):
            return
        names = self._comm_names
        for r, n in zip(recs.tolist(), size.tolist(), strict=True):
            tid = int.from_bytes(buf[r + 12 : r + 16].tobytes(), "little")
            raw = buf[r + 16 : r + n].tobytes().split(b"\0", 1)[0]
            names[tid] = raw.decode("utf-8", "replace")

    def _lost_records(
        self,
        buf: npt.NDArray[np.uint8],
        recs: npt.NDArray[np.int64],
        size: npt.NDArray[np.int64],
        attr: _Attr,
    ) -> None:
        st = attr.sample_type
        # trailer: tid, time, id, stream_id, cpu, identifier (in that order)
        fields = [b for b in (S_TID, S_TIME, S_ID, S_STREAM_ID, S_CPU, S_IDENTIFIER) if st & b]
        for r, n in zip(recs.tolist(), size.tolist(), strict=True):
            # {header, u64 id, u64 lost}, then the trailer
            if n < 24 + (8 * len(fields) if attr.sample_id_all else 0):
                self._skipped["LOST record(s) too short to read"] += 1
                continue
            count: int | None = int.from_bytes(buf[r + 16 : r + 24].tobytes(), "little")
            cpu = ts = None
            if attr.sample_id_all:
                at = r + n - 8 * len(fields)
                for b in fields:
                    if b == S_TIME:
                        ts = int.from_bytes(buf[at : at + 8].tobytes(), "little")
                    elif b == S_CPU:
                        cpu = int.from_bytes(buf[at : at + 4].tobytes(), "little")
                    at += 8
            # out of their columns' range: damaged, kept as unknown (the gap itself is real)
            if cpu is not None and cpu >= MAX_CPUS:
                cpu = None
            if ts is not None and ts >= 1 << 63:
                ts = None
            if count is not None and count >= 1 << 63:
                count = None
            self.meta.lost.append(
                LostEvents(cpu=cpu, ts=ts, count=count, seq=self.meta.event_count)
            )

    def _callchains(
        self, buf: npt.NDArray[np.uint8], start: npt.NDArray[np.int64], nr: npt.NDArray[np.int64]
    ) -> pa.Array:
        if not len(start):
            return pa.array([], type=pa.large_list(pa.large_string()))
        nr = np.clip(nr, 0, None)
        total = int(nr.sum())
        seg = np.repeat(np.arange(len(start)), nr)
        first = np.concatenate([[0], np.cumsum(nr)[:-1]]).astype(np.int64)
        local = np.arange(total, dtype=np.int64) - np.repeat(first, nr)
        at = int64(np.repeat(start, nr) + 8 * local)
        ips = read_ints(readonly(buf), at, 0, 8, False).view(np.uint64)
        # context markers (PERF_CONTEXT_KERNEL / USER) are not frames
        keep = ips < PERF_CONTEXT_MAX
        ips, seg = ips[keep], seg[keep]
        counts = np.bincount(seg, minlength=len(start))
        syms = self.decoder.symbols
        names = (
            syms.names(ips) if syms is not None and len(syms) else [f"{a:#x}" for a in ips.tolist()]
        )
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return pa.LargeListArray.from_arrays(
            pa.array(offsets), pa.array(names, type=pa.large_string())
        )


def _read_words(read_format: int) -> int:
    # PERF_FORMAT_TOTAL_TIME_ENABLED 1, _RUNNING 2, _ID 4, _GROUP 8, _LOST 16
    extra = bin(read_format & 0x3).count("1")
    per = 1 + bool(read_format & 4) + bool(read_format & 16)
    if read_format & 8:
        return -1  # group reads vary per sample: not supported for tracepoints
    return extra + per


__all__ = ["MAGIC", "PerfDataReader"]
