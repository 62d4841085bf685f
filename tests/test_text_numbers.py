"""Text rows given as numbers (formats/text/numbers.py): the store gets what the JSON said.

With ``numbers_only`` the text reader gives page_fault_user, kvm_page_fault and
tlb_flush rows as value columns, last in their batch, instead of JSON that the
store parses back. Every test here holds an ingest with it to the reader's own
JSON (read without it), row by row, on lines chosen to hit each rule.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from numbers_support import SPECS, db_rows, rendered_rows

import tracereplay.readers.ftrace_text as ftrace_text
from tracereplay.formats.tracefs.batches import elided_ranges
from tracereplay.readers import open_trace
from tracereplay.readers.ftrace_text import FtraceTextReader
from tracereplay.schema import EVENT_SCHEMA
from tracereplay.store import ingest

U64_MAX = (1 << 64) - 1

# (payload, whether it is given as numbers)
_LINES = [
    ("page_fault_user: address=0x7f0000001000 ip=0x401000 error_code=0x6", True),
    # a symbol for the ip: not a number
    ("page_fault_user: address=0x7f0000002000 ip=main+0x10 error_code=0x6", False),
    # wider than 64 bits: null, flagged, keeps its JSON
    ("page_fault_user: address=0x1ffff0000000000000 ip=0x401004 error_code=0x7", False),
    ("page_fault_user: address=0 ip=0 error_code=0x0", True),
    ("tlb_flush: pages:1 reason:local mm shootdown (3)", True),
    # unsigned -1 is the kernel's TLB_FLUSH_ALL (ULONG_MAX)
    ("tlb_flush: pages:-1 reason:flush on task switch (0)", True),
    # 2^63 + 5: the typed table's accept() refuses it, after build_args wrote "{}"
    ("tlb_flush: pages:9223372036854775813 reason:local shootdown (2)", False),
    # a negative signed reason renders as -2: not an unsigned value
    ("tlb_flush: pages:1 reason:odd (-2)", False),
    (
        "kvm_page_fault: vcpu 1 rip 0xffffffff81000000 address 0x7f0000004000 error_code 0x181",
        True,
    ),
    # a vCPU id beyond the INTEGER column
    (
        "kvm_page_fault: vcpu 4294967296 rip 0x1 address 0x7f0000005000 error_code 0x181",
        False,
    ),
    # before 6.1: no vcpu, no rip (nulls)
    ("kvm_page_fault: address 7f0000006000 error_code 181", False),
    (
        "sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b "
        "next_pid=2 next_prio=120",
        False,
    ),
]


def _write(tmp_path, lines: list[str], name: str = "t.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(["# tracer: nop", *lines]) + "\n")
    return str(path)


def _tracefs(i: int, payload: str, cpu: int = 0) -> str:
    return f"           a.out-100     [{cpu:03d}] .....    10.{i + 1:06d}: {payload}"


def _reader_rows(path: str) -> dict[int, tuple]:
    """Every column of every row the reader gives without numbers_only, by seq."""
    return rendered_rows(open_trace(path).batches())


def _given_batches(path: str, **kw) -> list[pa.RecordBatch]:
    reader = FtraceTextReader(path, **kw)
    reader.numbers_only(SPECS)
    return list(reader.batches())


def test_each_rule_gives_the_readers_json_back(tmp_path):
    path = _write(tmp_path, [_tracefs(i, p, cpu=i % 2) for i, (p, _) in enumerate(_LINES)])
    given_seqs = []
    for batch in _given_batches(path):
        ranges = elided_ranges(batch)
        start = min((a for a, _ in ranges.values()), default=batch.num_rows)
        # the rows given come last, with "{}" for args; the rest keep the reader's JSON
        assert set(batch.column("args").to_pylist()[start:]) <= {"{}"}
        assert "{}" not in batch.column("args").to_pylist()[:start]
        given_seqs += batch.column("seq").to_pylist()[start:]
    assert sorted(s - 2 for s in given_seqs) == [i for i, (_, n) in enumerate(_LINES) if n]
    db = str(tmp_path / "t.duckdb")
    ingest(path, db)
    assert db_rows(db) == _reader_rows(path)
    con = duckdb.connect(db, read_only=True)
    kept = con.execute("SELECT seq - 2 FROM event_rows ORDER BY seq").fetchall()
    assert [s for (s,) in kept] == [i for i, (_, n) in enumerate(_LINES) if not n]
    assert con.execute("SELECT reason_code, pages FROM tlb_flushes ORDER BY seq").fetchall() == [
        (3, 1),
        (0, -1),
        (2, -1),  # 2^63 + 5 read from its JSON, as before: the typed table's TLB_FLUSH_ALL
        (-2, 1),
    ]
    con.close()


def test_the_values_given_are_the_ones_in_the_line(tmp_path):
    path = _write(tmp_path, [_tracefs(i, p) for i, (p, _) in enumerate(_LINES)])
    batch = _given_batches(path)[0]
    ranges = elided_ranges(batch)
    start, stop = ranges["page_fault_user"]
    got = {
        k: batch.column(f"page_fault_user.{k}").to_pylist()[start:stop]
        for k in ("address", "ip", "error_code")
    }
    assert got == {"address": [0x7F0000001000, 0], "ip": [0x401000, 0], "error_code": [6, 0]}
    start, stop = ranges["tlb_flush"]
    assert batch.column("tlb_flush.pages").to_pylist()[start:stop] == [1, U64_MAX]
    assert batch.column("tlb_flush.reason").to_pylist()[start:stop] == [3, 0]
    start, stop = ranges["kvm_page_fault"]
    assert batch.column("kvm_page_fault.vcpu_id").to_pylist()[start:stop] == [1]
    # outside its range a value column is null
    assert batch.column("tlb_flush.pages").to_pylist()[:start].count(None) == start


def test_a_damaged_value_is_reported_at_its_own_line(tmp_path):
    # the damaged fault comes after a row that is given as numbers and moves last
    lines = [
        _tracefs(0, "tlb_flush: pages:1 reason:local mm shootdown (3)"),
        _tracefs(1, "page_fault_user: address=0x1 ip=0x2 error_code=0x6"),
        _tracefs(2, "sched_wakeup: comm=b pid=2 prio=120 target_cpu=001"),
        _tracefs(3, "page_fault_user: address=0x1ffff0000000000000 ip=0x2 error_code=0x6"),
    ]
    path = _write(tmp_path, lines)
    reader = FtraceTextReader(path)
    reader.numbers_only(SPECS)
    list(reader.batches())
    assert any(f"{path}:5: 1 field value(s)" in w for w in reader.meta.warnings)


def test_a_perf_script_event_of_another_system_keeps_its_json(tmp_path):
    lines = [
        "a.out   100 [000]    10.000001: exceptions:page_fault_user: address=0x1 ip=0x2 "
        "error_code=0x6",
        "a.out   100 [000]    10.000002: other:page_fault_user: address=0x1 ip=0x2 error_code=0x6",
    ]
    path = _write(tmp_path, lines)
    db = str(tmp_path / "t.duckdb")
    ingest(path, db)
    assert db_rows(db) == _reader_rows(path)
    con = duckdb.connect(db, read_only=True)
    assert con.execute("SELECT system FROM event_rows").fetchall() == [("other",)]
    con.close()


def test_a_stack_in_the_next_block_goes_to_the_last_event_by_seq(tmp_path, monkeypatch):
    """The rows given as numbers are moved last in their block: a stack entry that starts
    the next block belongs to its CPU's last event in line order, not in row order."""
    lines = [
        _tracefs(0, "tlb_flush: pages:1 reason:local mm shootdown (3)"),
        _tracefs(1, "page_fault_user: address=0x1 ip=0x2 error_code=0x6"),
        _tracefs(2, "sched_wakeup: comm=b pid=2 prio=120 target_cpu=001", cpu=1),
        _tracefs(3, "<stack trace>"),
        " => handle_mm_fault",
        " => exc_page_fault",
    ]
    path = _write(tmp_path, lines)
    plain = {s: (r[7], r[9]) for s, r in _reader_rows(path).items()}
    crossed = []  # stacks attached across a block boundary
    attach = ftrace_text._attach
    monkeypatch.setattr(ftrace_text, "_attach", lambda e, s: crossed.append(s) or attach(e, s))
    plain_args = {s: r[8] for s, r in _reader_rows(path).items()}
    for block_size in (120, 200, 300, 400, 600):
        # every row's args, those given as numbers rendered from their values
        got = rendered_rows(_given_batches(path, block_size=block_size))
        rows = {seq: (r[7], r[9]) for seq, r in got.items()}
        args = {seq: r[8] for seq, r in got.items()}
        assert rows[3] == ("page_fault_user", ["handle_mm_fault", "exc_page_fault"]), block_size
        assert rows == plain, block_size
        assert args == plain_args, block_size
    assert crossed  # at least one size reached the cross-block path


def test_without_numbers_only_the_batches_are_the_event_schema(tmp_path):
    path = _write(tmp_path, [_tracefs(i, p) for i, (p, _) in enumerate(_LINES)])
    batches = list(FtraceTextReader(path).batches())
    assert all(b.schema == EVENT_SCHEMA for b in batches)
    seqs = [s for b in batches for s in b.column("seq").to_pylist()]
    assert seqs == list(range(2, 2 + len(_LINES)))
    assert all("{}" not in b.column("args").to_pylist() for b in batches)


def test_damaged_lines_give_what_the_json_gives(tmp_path):
    """Random byte damage to the lines of every rule: a row given as numbers renders to the
    JSON the reader writes without numbers_only (also run with NUMBA_BOUNDSCHECK by CI)."""
    import random

    rng = random.Random(17)
    base = "\n".join(_tracefs(i, p, cpu=i % 3) for i, (p, _) in enumerate(_LINES * 4))
    alphabet = b"0123456789abcdefx-+ :=()\n"
    for case in range(60):
        data = bytearray(base.encode())
        for _ in range(rng.randint(1, 12)):
            at = rng.randrange(len(data))
            if rng.random() < 0.2:
                del data[at : at + rng.randint(1, 8)]
            else:
                data[at] = rng.choice(alphabet)
        path = tmp_path / f"d{case}.txt"
        path.write_bytes(b"# tracer: nop\n" + bytes(data) + b"\n")
        plain = rendered_rows(FtraceTextReader(str(path)).batches())
        assert rendered_rows(_given_batches(str(path))) == plain, case
