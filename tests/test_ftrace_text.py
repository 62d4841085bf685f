"""Golden tests of the ftrace text reader: every layout, stacks, lost events, args."""

from __future__ import annotations

import gzip
import lzma
import random

import pytest
import zstandard
from conftest import args_of
from traces import PERF_SCRIPT, TRACE_CMD_REPORT, TRACEFS_FULL, TRACEFS_PLAIN

from tracereplay.readers import open_trace
from tracereplay.readers.ftrace_text import FtraceTextReader, _newlines


def rows(con, sql):
    return con.execute(sql).fetchall()


def test_tracefs_full_layout_header_fields(write, db_of):
    con = db_of(write("t.txt", TRACEFS_FULL))
    got = rows(
        con, "SELECT seq, ts, cpu, pid, tgid, comm, system, name FROM events ORDER BY seq LIMIT 3"
    )
    assert got == [
        (13, 1234567890000, 1, 4243, 4242, "qemu-system-x86", "kvm", "kvm_unmap_hva_range"),
        (14, 1234567891000, 1, 4243, 4242, "qemu-system-x86", "ftrace", "kernel_stack"),
        (22, 1234567900000, 0, 0, None, "<idle>", "tlb", "tlb_flush"),
    ]
    assert rows(con, "SELECT count(*) FROM events") == [(15,)]
    info = rows(con, "SELECT format, cpus, lost_event_count, lost_gaps, partial FROM trace_info")
    assert info == [("ftrace-text", 2, 42, 1, True)]
    assert rows(con, "SELECT cpu, count, seq FROM lost_events") == [(1, 42, 26)]


def test_tracefs_stack_attached_and_cause(write, db_of):
    con = db_of(write("t.txt", TRACEFS_FULL))
    (stack,) = rows(con, "SELECT stack FROM events WHERE name = 'kvm_unmap_hva_range'")[0]
    assert stack[0] == "trace_event_raw_event_kvm_unmap_hva_range"
    assert stack[-2:] == ["task_numa_work", "task_work_run"]
    assert rows(con, "SELECT hva_start, hva_end, cause, cause_evidence, tgid FROM kvm_unmaps") == [
        (0x7F0000000000, 0x7F0010000000, "numa_scan", "stack", 4242)
    ]


def test_known_event_args_are_normalized(write, db_of):
    con = db_of(write("t.txt", TRACEFS_FULL))
    a: dict = {}
    for n, x in _named_args(con):
        a.setdefault(n, dict(x, _name=n))  # first event of each name
    assert a["tlb_flush"] == {"_name": "tlb_flush", "reason": 0, "pages": 18446744073709551615}
    assert a["ipi_send_cpumask"]["cpumask"] == "0-1,3"
    assert a["ipi_send_cpumask"]["callback"] == "flush_tlb_func"
    assert a["ipi_send_cpumask"]["callsite"] == "on_each_cpu_cond_mask"
    assert a["page_fault_user"]["address"] == 0x7F0000001000
    assert a["page_fault_user"]["error_code"] == 6
    assert a["sched_skip_vma_numa"]["vm_end"] == 0x7F0010000000
    assert a["sched_skip_vma_numa"]["reason"] == "scan_delay"
    assert a["mm_migrate_pages"]["succeeded"] == 3
    assert a["mm_migrate_pages"]["large_folio_split"] == 0
    assert a["mm_migrate_pages"]["reason"] == "numa_misplaced"
    assert a["sched_swap_numa"]["dst_pid"] == 4244
    assert a["kvm_page_fault"] == {
        "_name": "kvm_page_fault",
        "vcpu_id": 0,
        "guest_rip": 0xFFF0,
        "fault_address": 0x100000,
        "error_code": 0x181,
    }
    assert a["sched_switch"]["prev_comm"] == "Web Content"
    assert a["sched_switch"]["next_comm"] == "swapper/1"
    assert a["sched_switch"]["prev_state"] == "S"
    assert a["my_custom_event"] == {"_name": "my_custom_event", "foo": "1", "bar": '"baz"'}
    assert a["my_free_text"] == {"_name": "my_free_text", "_text": "something happened: x -- y"}


def _named_args(con):
    import json

    return [
        (n, json.loads(a))
        for n, a in con.execute("SELECT name, args FROM events ORDER BY seq").fetchall()
    ]


def test_typed_tables(write, db_of):
    con = db_of(write("t.txt", TRACEFS_FULL))
    assert rows(con, "SELECT reason, reason_code, pages, tgid FROM tlb_flushes ORDER BY seq") == [
        ("flush on task switch", 0, -1, None),
        ("local mm shootdown", 3, 1, 4242),
    ]
    assert rows(con, "SELECT n_targets, targets, callback FROM ipis ORDER BY seq") == [
        (3, [0, 1, 3], "flush_tlb_func"),
        (1, [1], "ack_kick"),
    ]
    assert rows(con, "SELECT vm_start, vm_end, reason FROM numa_vma_skips") == [
        (0x7F0000000000, 0x7F0010000000, "scan_delay")
    ]
    assert rows(con, "SELECT address, ip, error_code FROM page_faults") == [
        (0x7F0000001000, 0x55D000001234, 6)
    ]
    assert rows(con, "SELECT succeeded, failed, mode, reason FROM migrations") == [
        (3, 1, "MIGRATE_ASYNC", "numa_misplaced")
    ]
    assert rows(
        con, "SELECT kind, pid, tgid, src_nid, dst_nid, dst_pid FROM task_numa ORDER BY seq"
    ) == [
        ("move", 4243, 4242, 0, 1, None),
        ("swap", 4243, 4242, 0, 1, 4244),
    ]
    assert rows(con, "SELECT kind, vcpu, gpa, error_code FROM kvm_faults") == [
        ("page_fault", 0, 0x100000, 0x181)
    ]


def test_tracefs_without_tgid_and_irq_info(write, db_of):
    con = db_of(write("t.txt", TRACEFS_PLAIN))
    assert rows(con, "SELECT ts, cpu, pid, tgid, comm, name FROM events ORDER BY seq") == [
        (5678000001000, 3, 1234, None, "bash", "tlb_flush"),
        (5678000123000, 0, 77, None, "kworker/u8:2-ev", "page_fault_user"),
    ]
    assert rows(con, "SELECT cpus, partial FROM trace_info") == [(4, False)]


def test_trace_cmd_report_layout(write, db_of):
    con = db_of(write("r.txt", TRACE_CMD_REPORT))
    assert rows(con, "SELECT name, pid, cpu FROM events ORDER BY seq") == [
        ("kvm_unmap_hva_range", 4243, 1),
        ("kernel_stack", 4243, 1),
        ("tlb_flush", 4244, 0),
        ("ipi_send_cpu", 4244, 0),
        ("page_fault_user", 4244, 0),
    ]
    assert rows(con, "SELECT stack FROM events WHERE name = 'kvm_unmap_hva_range'") == [
        (["trace_event_raw_event_kvm_unmap_hva_range", "change_prot_numa", "task_numa_work"],)
    ]
    assert rows(con, "SELECT reason, pages FROM tlb_flushes") == [("local mm shootdown", 1)]
    assert rows(con, "SELECT callback, callsite FROM ipis") == [
        ("generic_smp_call_function_single_interrupt", "ttwu_queue_wakelist")
    ]
    assert rows(con, "SELECT cpu, count FROM lost_events") == [(0, 3)]
    assert rows(con, "SELECT cpus FROM trace_info") == [(2,)]


def test_perf_script_layout_with_callchain(write, db_of):
    con = db_of(write("p.txt", PERF_SCRIPT))
    assert rows(con, "SELECT system, name, comm, pid, tgid FROM events ORDER BY seq") == [
        ("kvm", "kvm_unmap_hva_range", "qemu-system-x86", 4243, None),
        ("tlb", "tlb_flush", "qemu-system-x86", 4244, 4242),
    ]
    assert rows(con, "SELECT cause, cause_evidence FROM kvm_unmaps") == [("numa_scan", "stack")]
    (stack,) = rows(con, "SELECT stack FROM events WHERE name = 'kvm_unmap_hva_range'")[0]
    assert stack == [
        "trace_event_raw_event_kvm_unmap_hva_range",
        "change_prot_numa",
        "task_numa_work",
    ]


@pytest.mark.parametrize("block_size", [64, 300, 1000, 1 << 20])
def test_block_boundaries_do_not_change_the_result(write, block_size):
    path = write("t.txt", TRACEFS_FULL)
    whole = FtraceTextReader(path, block_size=1 << 24)
    small = FtraceTextReader(path, block_size=block_size)
    a = [b.to_pylist() for b in whole.batches()]
    b = [b.to_pylist() for b in small.batches()]
    flat = lambda xs: [r for batch in xs for r in batch]  # noqa: E731
    assert flat(a) == flat(b)
    assert [x.count for x in small.meta.lost] == [42]


def test_newline_count_matches_bytes_count():
    """The compiled count that numbers each block's lines (the vectorized loop must not
    miss the tail of a buffer whose length is not a multiple of the vector width)."""
    rng = random.Random(7)
    for n in (0, 1, 15, 16, 17, 63, 1000, 100_003):
        data = bytes(rng.choice(b"ab\n\r ") for _ in range(n))
        assert _newlines(data) == data.count(b"\n")
        stop = n // 3
        assert _newlines(data, stop) == data.count(b"\n", 0, stop)


@pytest.mark.parametrize(
    "compress", [gzip.compress, lzma.compress, lambda d: zstandard.ZstdCompressor().compress(d)]
)
def test_compressed_inputs_read_transparently(write, compress):
    plain = write("t.txt", TRACEFS_FULL)
    packed = write("t.txt.any", compress(TRACEFS_FULL.encode()))
    a = [r for b in open_trace(plain).batches() for r in b.to_pylist()]
    b = [r for b in open_trace(packed).batches() for r in b.to_pylist()]
    assert a == b and len(a) == 15


def test_args_of_helper_reads_json(write, db_of):
    con = db_of(write("t.txt", TRACEFS_PLAIN))
    assert args_of(con) == [
        {"reason": 1, "pages": 1},
        {"address": 0x7F0000002000, "ip": 0x7F0000002000, "error_code": 0x14},
    ]
