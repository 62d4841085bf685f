"""The compiled tracepoint renderer on hostile input: the busy-host SIGSEGV of issue 12 and
every record shape the renderer must survive (run these with NUMBA_BOUNDSCHECK=1 too).

The crash: a dictionary field (``__print_symbolic`` / kernel symbol) of an event type
first seen after the dictionary tables were built and cached read past the end of
those tables. On a busy host's trace.dat, ``sched_skip_vma_numa`` / ``mm_migrate_pages``
first appear windows after the IPI events whose symbol dictionary was built first.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from conftest import run_cli

from tracereplay.formats.common.args_json import cpulist
from tracereplay.formats.tracefs import cpu_merge, record_args
from tracereplay.formats.tracefs.batches import BatchBuilder
from tracereplay.formats.tracefs.event_decoder import EventDecoder
from tracereplay.readers import trace_dat
from tracereplay.readers.trace_dat import TraceDatReader

# format files as this machine's 6.18 kernel prints them (events/*/format)
COMMON = """\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
"""
IPI_SEND_CPU = f"""name: ipi_send_cpu
ID: 31
format:
{COMMON}
\tfield:unsigned int cpu;\toffset:8;\tsize:4;\tsigned:0;
\tfield:void * callsite;\toffset:16;\tsize:8;\tsigned:0;
\tfield:void * callback;\toffset:24;\tsize:8;\tsigned:0;

print fmt: "cpu=%u callsite=%pS callback=%pS", REC->cpu, REC->callsite, REC->callback
"""
MIGRATE = (
    "name: mm_migrate_pages\nID: 713\nformat:\n"
    + COMMON
    + """
\tfield:unsigned long succeeded;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned long failed;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_succeeded;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_failed;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_split;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long large_folio_split;\toffset:48;\tsize:8;\tsigned:0;
\tfield:enum migrate_mode mode;\toffset:56;\tsize:4;\tsigned:0;
\tfield:int reason;\toffset:60;\tsize:4;\tsigned:1;

print fmt: "nr_succeeded=%lu nr_failed=%lu nr_thp_succeeded=%lu nr_thp_failed=%lu \
nr_thp_split=%lu nr_split=%lu mode=%s reason=%s", REC->succeeded, REC->failed, \
REC->thp_succeeded, REC->thp_failed, REC->thp_split, REC->large_folio_split, \
__print_symbolic(REC->mode, {0, "MIGRATE_ASYNC"}, {1, "MIGRATE_SYNC_LIGHT"}, \
{2, "MIGRATE_SYNC"}), __print_symbolic(REC->reason, {0, "compaction"}, \
{1, "memory_failure"}, {2, "memory_hotplug"}, {3, "syscall_or_cpuset"}, \
{4, "mempolicy_mbind"}, {5, "numa_misplaced"}, {6, "contig_range"}, \
{7, "longterm_pin"}, {8, "demotion"}, {9, "damon"})
""".replace("\\\n", "")
)
# a hostile format: two bitmaps, two strings and a u8 array over the whole record
MANY_DYN = f"""name: many_dyn
ID: 900
format:
{COMMON}
\tfield:__data_loc cpumask_t[] a;\toffset:8;\tsize:4;\tsigned:0;
\tfield:__data_loc cpumask_t[] b;\toffset:12;\tsize:4;\tsigned:0;
\tfield:__data_loc char[] s;\toffset:16;\tsize:4;\tsigned:0;
\tfield:__data_loc char[] t;\toffset:20;\tsize:4;\tsigned:0;
\tfield:__data_loc s8[] u;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char name[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:unsigned long far;\toffset:44;\tsize:8;\tsigned:0;

print fmt: "a=%s", __get_str(s)
"""


_SYSTEM = {"ipi_send_cpu": "ipi", "mm_migrate_pages": "migrate", "many_dyn": "crafted"}


def _decoder(*formats: str) -> EventDecoder:
    dec = EventDecoder("crafted.dat")
    for text in formats:
        dec.add_format(text, _SYSTEM[text.split("\n")[0].split()[1]])
    dec.finish_formats()
    return dec


def _record(eid: int, body: bytes, size: int) -> bytes:
    head = struct.pack("<HBBi", eid, 0, 0, 42) + body
    return head + b"\0" * (size - len(head))


def _render(dec: EventDecoder, records: list[bytes], builder: BatchBuilder) -> None:
    buf = np.frombuffer(b"".join(records), np.uint8)
    off = np.cumsum([0] + [len(r) for r in records[:-1]]).astype(np.int64)
    ln = np.array([len(r) for r in records], np.int64)
    slot, pid, keep = dec.classify(buf, off, ln)
    assert len(keep) == len(records)
    zeros = np.zeros(len(records), np.int64)
    cols = {"slot": slot, "ts": zeros, "cpu": zeros, "pid": pid, "tgid": pid, "null": zeros}
    builder.add(buf, off, ln, cols, None)


def test_dictionary_added_after_the_tables_were_cached_is_rendered():
    """The issue-12 crash, on the decoder: symbol dictionary first, then two new ones."""
    dec = _decoder(IPI_SEND_CPU, MIGRATE)
    builder = BatchBuilder(dec, rows=16)
    ipi = _record(31, struct.pack("<I4xQQ", 1, 0xFFFFFFFF81000010, 0xFFFFFFFF81000020), 32)
    mig = _record(713, struct.pack("<QQQQQQIi", 3, 1, 0, 0, 0, 0, 1, 5), 64)
    _render(dec, [ipi, ipi], builder)  # builds and caches the tables with one dictionary
    _render(dec, [mig, mig], builder)  # two dictionaries the cached tables do not cover
    rows = [json.loads(a) for a in builder.finish(0).column("args").to_pylist()]
    assert rows[0]["callsite"] == "0xffffffff81000010"
    assert [(r["mode"], r["reason"]) for r in rows[2:]] == [("MIGRATE_SYNC_LIGHT", "numa_misplaced")] * 2


def test_dictionary_tables_cover_every_id_handed_out():
    dec = _decoder(IPI_SEND_CPU, MIGRATE)
    dicts = dec._dicts
    dicts.add("sym", lambda v: [str(x) for x in v])
    assert dicts.arrays().lo.shape[0] == 1
    new = dicts.add(("x", "mode"), lambda v: [str(x) for x in v])
    assert dicts.arrays().lo.shape[0] > new


def test_value_missing_from_an_empty_dictionary_is_not_taken_from_the_next_one():
    dec = _decoder(MIGRATE)
    builder = BatchBuilder(dec, rows=4)
    mig = _record(713, struct.pack("<QQQQQQIi", 1, 0, 0, 0, 0, 0, 0, 0), 64)
    _render(dec, [mig], builder)
    rows = [json.loads(a) for a in builder.finish(0).column("args").to_pylist()]
    assert (rows[0]["mode"], rows[0]["reason"]) == ("MIGRATE_ASYNC", "compaction")


def _late_dictionary_text(n_ipi: int) -> str:
    head = "# tracer: nop\n#\n"
    lines = []
    ts = 1000.0
    for k in range(n_ipi):
        ts += 0.00001
        lines.append(
            f"          python-{500 + k % 7} [00{k % 2}] ..... {ts:.6f}: ipi_send_cpu: "
            f"cpu={1 - k % 2} callsite=flush_tlb_mm_range+0x1a/0x120 callback=flush_tlb_func+0x0/0x1d0"
        )
    for k in range(40):
        ts += 0.00001
        lines.append(
            f"          python-{500 + k % 7} [00{k % 2}] ..... {ts:.6f}: sched_skip_vma_numa: "
            "numa_scan_offset=7F0000000000 vm_start=7F0000000000 vm_end=7F0010000000 "
            f"reason={('scan_delay', 'unsuitable', 'shared_ro')[k % 3]}"
        )
    for k in range(40):
        ts += 0.00001
        lines.append(
            f"          python-{500 + k % 7} [00{k % 2}] ..... {ts:.6f}: mm_migrate_pages: "
            "nr_succeeded=3 nr_failed=1 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 "
            "nr_split=0 mode=MIGRATE_ASYNC reason=numa_misplaced"
        )
    return head + "\n".join(lines) + "\n"


def test_trace_dat_whose_dictionary_events_come_windows_later(tmp_path, monkeypatch):
    """End to end: IPIs fill several merge windows before the first skip / migrate event."""
    text = tmp_path / "late.txt"
    text.write_text(_late_dictionary_text(30_000))
    dat = tmp_path / "late.dat"
    assert run_cli("convert", str(text), "-o", str(dat)).exit_code == 0
    # small windows and batches: the dictionary events arrive many renders later
    monkeypatch.setattr(cpu_merge, "BATCH_PAGES", 8)
    monkeypatch.setattr(trace_dat, "BatchBuilder", lambda dec: BatchBuilder(dec, rows=1000))
    reader = TraceDatReader(str(dat))
    skip: list[str] = []
    migrate: list[tuple[str, str]] = []
    for batch in reader.batches():
        names, rows = batch.column("name").to_pylist(), batch.column("args").to_pylist()
        for name, args in zip(names, rows, strict=True):
            a = json.loads(args)
            if name == "sched_skip_vma_numa":
                skip.append(a["reason"])
            elif name == "mm_migrate_pages":
                migrate.append((a["mode"], a["reason"]))
    assert skip == [("scan_delay", "unsuitable", "shared_ro")[k % 3] for k in range(40)]
    assert migrate == [("MIGRATE_ASYNC", "numa_misplaced")] * 40
    assert reader.meta.event_count == 30_080


# --- render_args fed directly with hostile records ------------------------------------------


def _render_direct(dec: EventDecoder, raw: bytes, rec_len: int | None = None) -> dict:
    buf = np.frombuffer(raw, np.uint8)
    off = np.zeros(1, np.int64)
    ln = np.array([len(raw) if rec_len is None else rec_len], np.int64)
    slot, _pid, keep = dec.classify(buf, off, ln)
    assert len(keep) == 1
    # a deliberately tiny output buffer: the renderer must grow it
    out, end = dec.args_into(np.empty(1, np.uint8), 0, np.empty(2, np.int64), buf, off, ln, slot)
    return json.loads(out[:end].tobytes())


def test_dynamic_fields_spanning_the_whole_record_fit():
    """Two bitmaps, two strings and an array, each claiming the whole record: more output per
    record byte than any single field (the old fixed 48-bytes-per-byte bound)."""
    dec = _decoder(MANY_DYN)
    size = 4096
    whole = (size << 16) | 0  # every __data_loc: offset 0, length = the record
    body = struct.pack("<IIIII", whole, whole, whole, whole, whole)
    raw = bytearray(_record(900, body, size))
    # 0b11011011...: runs of two bits, the longest %*pbl text per byte
    for k in range(52, size):
        raw[k] = (0xDB, 0x6D, 0xB6)[k % 3]
    args = _render_direct(dec, bytes(raw))
    assert args["a"] == args["b"] == cpulist(bytes(raw))
    assert args["u"] == np.frombuffer(bytes(raw), np.int8).tolist()


@pytest.mark.parametrize("rec_len", [0, 3, 8, 20, 30, 46, 51])
def test_fields_past_the_end_of_a_short_record_are_null_or_cut(rec_len):
    dec = _decoder(MANY_DYN)
    # data_loc offsets / lengths pointing far beyond the record, garbage after it
    body = struct.pack("<IIIII", 0xFFFF_FFF0, 0x0400_0000, 0x0010_0030, 0x7FFF_0000, 0x0200_0010)
    raw = _record(900, body + b"abcdefghijklmnop" + b"\xff" * 8, 52) + b"\xee" * 64
    if rec_len < 8:
        buf = np.frombuffer(raw, np.uint8)
        _slot, _pid, keep = dec.classify(buf, np.zeros(1, np.int64), np.array([rec_len]))
        assert len(keep) == 0  # too short for common_pid: counted as an unknown record
        return
    args = _render_direct(dec, raw, rec_len)
    assert args["far"] is None or rec_len >= 52
    assert set(args) == {"a", "b", "s", "t", "u", "name", "far"}
    assert len(args["name"]) <= max(rec_len - 28, 0)


def test_record_offsets_outside_the_buffer_render_nulls():
    dec = _decoder(MIGRATE)
    raw = _record(713, struct.pack("<QQQQQQIi", 1, 0, 0, 0, 0, 0, 0, 0), 64)
    buf = np.frombuffer(raw, np.uint8)
    slot, _pid, _keep = dec.classify(buf, np.zeros(1, np.int64), np.array([64]))
    for at, length in [(10_000, 64), (-5, 64), (40, 1 << 40), (0, -7)]:
        out, end = dec.args_into(
            np.empty(8, np.uint8),
            0,
            np.empty(2, np.int64),
            buf,
            np.array([at], np.int64),
            np.array([length], np.int64),
            slot,
        )
        args = json.loads(out[:end].tobytes())
        assert set(args) >= {"succeeded", "mode"}


def test_render_args_refuses_an_inconsistent_program():
    dec = _decoder(MIGRATE)
    raw = _record(713, b"\0" * 56, 64)
    buf = np.frombuffer(raw, np.uint8)
    slot, _pid, _keep = dec.classify(buf, np.zeros(1, np.int64), np.array([64]))
    prog = dec.program()
    dicts = dec._dicts.arrays()
    start = (np.empty(64, np.uint8), 0, np.empty(2, np.int64))
    recs = record_args.Records(buf, np.zeros(1, np.int64), np.array([64]), slot)
    bad_keys = prog.key_off.copy()
    bad_keys[0] = 1 << 40  # key literal far outside the literal table
    with pytest.raises(ValueError, match="literal"):
        record_args.render_args(*start, recs, prog._replace(key_off=bad_keys), dicts)
    with pytest.raises(ValueError, match="slot"):
        record_args.render_args(*start, recs._replace(slot=np.array([5], np.int64)), prog, dicts)
    with pytest.raises(ValueError, match="match"):
        record_args.render_args(*start, recs._replace(length=np.array([64, 1])), prog, dicts)
    with pytest.raises(ValueError, match="differ"):
        record_args.render_args(*start, recs, prog._replace(size=prog.size[:0]), dicts)
