"""Events kept only in their typed table (store/split.py): the events view is unchanged.

``page_fault_user`` rows are written to ``page_faults`` only and the ``events``
view renders their ``args``. These tests hold the view to what the readers
decoded, byte for byte, on real recordings of every format, and check the
rows that cannot be rendered back stay in ``event_rows`` untouched.
"""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from tracereplay.errors import TraceReplayError
from tracereplay.formats.common.uint_objects import UintObject
from tracereplay.readers import open_trace
from tracereplay.schema import EVENT_SCHEMA
from tracereplay.store import ingest
from tracereplay.store.fanout import insert_streams
from tracereplay.store.split import ELIDED

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
U64_MAX = (1 << 64) - 1


def _parse(texts: list[str | None], keys: tuple[str, ...] = ("address", "ip", "error_code")):
    arr = pa.array(texts, pa.large_string())
    _, off, data = arr.buffers()
    offsets = np.frombuffer(off, np.int64)[: len(arr) + 1]
    buf = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    values, ok = UintObject(keys).parse(offsets, buf, np.arange(len(arr), dtype=np.int64))
    return values, ok


def test_only_the_writers_exact_bytes_are_read_back():
    good = [
        '{"address":140177483086704,"ip":0,"error_code":20}',
        f'{{"address":{U64_MAX},"ip":1,"error_code":7}}',
    ]
    values, ok = _parse(good)
    assert ok.tolist() == [True, True]
    assert values[:, 0].tolist() == [140177483086704, 0, 20]
    assert int(values[0, 1]) == U64_MAX
    bad = [
        f'{{"address":{U64_MAX + 1},"ip":1,"error_code":7}}',  # does not fit in 64 bits
        '{"address":012,"ip":1,"error_code":7}',  # leading zero
        '{"address":-1,"ip":1,"error_code":7}',  # signed
        '{"address":1, "ip":1,"error_code":7}',  # a space the writer never writes
        '{"address":1,"ip":1}',  # a key missing
        '{"address":1,"ip":1,"error_code":7,"x":1}',  # one more
        '{"address":1,"ip":1,"error_code":7}x',  # trailing bytes
        '{"address":"0x1","ip":1,"error_code":7}',  # a string
        '{"address":,"ip":1,"error_code":7}',  # no digits
        '{"address":1,"ip":1,"error_code":7',  # cut
        "",
        '{"ip":1,"address":1,"error_code":7}',  # another order
    ]
    _, ok = _parse(bad)
    assert not ok.any()


def test_row_indices_outside_the_column_are_refused_not_read():
    arr = pa.array(['{"a":1}'], pa.large_string())
    _, off, data = arr.buffers()
    offsets = np.frombuffer(off, np.int64)[:2]
    rows = np.array([0, 1, -1, 1 << 40], np.int64)
    values, ok = UintObject(("a",)).parse(offsets, np.frombuffer(data, np.uint8), rows)
    assert ok.tolist() == [True, False, False, False] and int(values[0, 0]) == 1


def _reader_rows(path: str) -> dict[int, tuple[str, str | None]]:
    out: dict[int, tuple[str, str | None]] = {}
    for b in open_trace(path).batches():
        for seq, name, args in zip(
            b.column("seq").to_pylist(),
            b.column("name").to_pylist(),
            b.column("args").to_pylist(),
            strict=True,
        ):
            out[seq] = (name, args)
    return out


def _all_columns(path: str) -> list[tuple]:
    rows = []
    for b in open_trace(path).batches():
        rows += zip(*(b.column(f.name).to_pylist() for f in EVENT_SCHEMA), strict=True)
    return sorted(rows, key=lambda r: r[0])


@pytest.mark.parametrize(
    "fixture",
    [
        "pinned-threads-6.18.txt",
        "pinned-threads-6.18.dat",
        "busy-host-6.18.dat",
        "kvm-pinned-6.18.txt.gz",
        "kvm-pinned-6.18.dat",
        "perf-tlb-callchain-6.18.data",
    ],
)
def test_events_view_gives_back_what_the_reader_decoded(fixture, tmp_path):
    path = str(FIXTURES / fixture)
    want = _reader_rows(path)
    db = str(tmp_path / "t.duckdb")
    ingest(path, db)
    con = duckdb.connect(db, read_only=True)
    got = {
        s: (n, a) for s, n, a in con.execute("SELECT seq, name, args FROM events").fetchall()
    }
    assert got == want
    # every elided event of these recordings is kept only in its typed table (the text
    # readers give JSON: an event with a text key stays in event_rows there)
    numbers = fixture.endswith((".dat", ".data"))
    for e in ELIDED:
        n = sum(1 for name, _ in want.values() if name == e.name)
        split = con.execute(
            f"SELECT (SELECT count(*) FROM {e.table} WHERE {e.stored_sql()}), "
            f"(SELECT count(*) FROM event_rows WHERE name = '{e.name}')"
        ).fetchone()
        assert split == ((n, 0) if numbers or not e.texts else (0, n)), e.name
    # every column of the view is the reader's
    cols = ", ".join(f.name for f in EVENT_SCHEMA)
    assert con.execute(f"SELECT {cols} FROM events ORDER BY seq").fetchall() == _all_columns(path)
    con.close()


def test_a_fault_whose_args_do_not_render_back_stays_in_event_rows(tmp_path):
    # the second fault prints a symbol for its ip: the reader cannot make it a number
    lines = [
        "# tracer: nop",
        "            a.out-100   [000] .....   10.000001: page_fault_user: "
        "address=0x7f0000001000 ip=0x401000 error_code=0x6",
        "            a.out-100   [000] .....   10.000002: page_fault_user: "
        "address=0x7f0000002000 ip=main+0x10 error_code=0x6",
        "            a.out-100   [000] .....   10.000003: page_fault_user: "
        "address=0x7f0000003000 ip=0x401004 error_code=0x7",
    ]
    trace = tmp_path / "t.txt.gz"
    trace.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    want = _reader_rows(str(trace))
    db = str(tmp_path / "t.duckdb")
    ingest(str(trace), db)
    con = duckdb.connect(db, read_only=True)
    got = {s: (n, a) for s, n, a in con.execute("SELECT seq, name, args FROM events").fetchall()}
    assert got == want
    odd = con.execute("SELECT seq FROM event_rows WHERE name = 'page_fault_user'").fetchall()
    assert len(odd) == 1 and '"ip":null' in want[odd[0][0]][1]  # what the reader made of it
    # page_faults still has all three, the odd one with the fields its JSON gave
    assert con.execute("SELECT count(*), count(ip) FROM page_faults").fetchone() == (3, 2)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (3,)
    con.close()


class Boom(TraceReplayError):
    pass


def test_a_failing_reader_stops_every_stream_with_its_own_error(tmp_path):
    con = duckdb.connect(str(tmp_path / "f.duckdb"))
    con.execute("CREATE TABLE a (x BIGINT); CREATE TABLE b (x BIGINT)")
    schema = pa.schema([pa.field("x", pa.int64())])
    batch = pa.RecordBatch.from_arrays([pa.array(np.arange(10))], schema=schema)

    def parts():
        for _ in range(3):
            yield {"a": batch, "b": batch}
        raise Boom("t.dat @ byte 42: broken")

    before = threading.active_count()
    with pytest.raises(Boom, match="byte 42"):
        insert_streams(
            con,
            parts(),
            {t: (schema, f"INSERT INTO {t} SELECT * FROM _stream") for t in ("a", "b")},
        )
    assert threading.active_count() == before  # no stream left waiting


def test_events_is_a_view_with_the_documented_columns(tmp_path):
    db = str(tmp_path / "t.duckdb")
    ingest(str(FIXTURES / "pinned-threads-6.18.txt"), db)
    con = duckdb.connect(db, read_only=True)
    cols = [r[0] for r in con.execute("DESCRIBE events").fetchall()]
    assert cols == [f.name for f in EVENT_SCHEMA]
    assert con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'events' AND comment IS NOT NULL"
    ).fetchone() == (1,)
    con.close()
    assert os.path.getsize(db) > 0


def test_a_database_of_0_1_is_refused_with_what_to_do(tmp_path):
    from tracereplay.pipeline import open_session

    db = str(tmp_path / "old.duckdb")
    con = duckdb.connect(db)
    con.execute("CREATE TABLE trace_info (x INTEGER); CREATE TABLE events (seq BIGINT)")
    con.close()
    with pytest.raises(TraceReplayError, match="ingest the trace again"):
        open_session(db)


def _batch(systems: list[str | None], given: bool) -> pa.RecordBatch:
    n = len(systems)
    args = '{"address":4096,"ip":1,"error_code":6}'
    cols = {
        "seq": pa.array(range(n), pa.int64()),
        "ts": pa.array(range(n), pa.int64()),
        "cpu": pa.array([0] * n, pa.int32()),
        "pid": pa.array([7] * n, pa.int32()),
        "tgid": pa.array([7] * n, pa.int32()),
        "comm": pa.array(["a"] * n, pa.large_string()),
        "system": pa.array(systems, pa.large_string()),
        "name": pa.array(["page_fault_user"] * n, pa.large_string()),
        "args": pa.array(["{}" if given else args] * n, pa.large_string()),
        "stack": pa.nulls(n, pa.large_list(pa.large_string())),
    }
    fields = list(EVENT_SCHEMA)
    if given:
        for k, v in (("address", 4096), ("ip", 1), ("error_code", 6)):
            cols[f"page_fault_user.{k}"] = pa.array([v] * n, pa.uint64())
            fields.append(pa.field(f"page_fault_user.{k}", pa.uint64()))
    return pa.RecordBatch.from_arrays(list(cols.values()), schema=pa.schema(fields))


def test_a_fault_of_another_system_stays_in_event_rows():
    from tracereplay.store.split import split_batches

    (part,) = split_batches([_batch(["exceptions", None, "other", "exceptions"], False)])
    assert part.typed["page_fault_user"].column("seq").to_pylist() == [0, 3]
    assert part.rows.column("seq").to_pylist() == [1, 2]
    assert part.rows.schema == EVENT_SCHEMA


def test_faults_given_as_numbers_are_taken_as_given():
    from tracereplay.store.split import split_batches

    (part,) = split_batches([_laid_out(3, 3)])
    pf = part.typed["page_fault_user"]
    assert pf.column("seq").to_pylist() == [0, 1, 2] and part.rows.num_rows == 0
    assert pf.column("arg_address").to_pylist() == [4096] * 3
    assert part.rows.schema == EVENT_SCHEMA


def test_the_decoder_gives_numbers_only_for_the_wanted_system():
    from tracereplay.formats.tracefs.event_decoder import EventDecoder

    dec = EventDecoder("t.dat")
    dec.numbers_only(
        {"page_fault_user": ("exceptions", ("address", "ip", "error_code"), (1 << 64,) * 3)}
    )
    ops = [("address", (1, 8, 8, 0)), ("ip", (1, 16, 8, 0)), ("error_code", (1, 24, 8, 0))]
    assert dec._number_fields("page_fault_user", "exceptions", ops) == [
        (8, 8, 0, -1),
        (16, 8, 0, -1),
        (24, 8, 0, -1),
    ]
    assert dec._number_fields("page_fault_user", "other", ops) is None
    assert dec._number_fields("page_fault_user", "exceptions", ops[:2]) is None
    signed = [*ops[:2], ("error_code", (1, 24, 8, 1))]
    assert dec._number_fields("page_fault_user", "exceptions", signed) is None


def test_a_signed_field_is_given_as_a_number_only_below_its_sign_bit():
    from tracereplay.formats.tracefs.event_decoder import EventDecoder

    dec = EventDecoder("t.dat")
    dec.numbers_only({"tlb_flush": ("tlb", ("reason", "pages"), ((1 << 31) - 1, (1 << 64) - 1))})
    # tlb_flush: int reason (Op.INT 2), unsigned long pages
    ops = [("reason", (2, 8, 4, 1)), ("pages", (1, 16, 8, 0))]
    assert dec._number_fields("tlb_flush", "tlb", ops) == [(8, 4, 1, -1), (16, 8, 0, -1)]
    dec.numbers_only({"tlb_flush": ("tlb", ("reason", "pages"), (1 << 31, (1 << 64) - 1))})
    assert dec._number_fields("tlb_flush", "tlb", ops) is None  # -1 would pass as 2^32 - 1
    # a text key must be rendered through a dictionary
    dec.numbers_only({"tlb_flush": ("tlb", ("reason", "pages"), ((1 << 31) - 1,) * 2, ("pages",))})
    assert dec._number_fields("tlb_flush", "tlb", ops) is None
    ops = [("reason", (2, 8, 4, 1)), ("pages", (6, 16, 8, 0, 3))]
    assert dec._number_fields("tlb_flush", "tlb", ops) == [(8, 4, 1, -1), (16, 8, 0, 3)]


def test_a_vcpu_id_beyond_the_integer_column_keeps_its_json():
    from tracereplay.store.split import split_batches

    rows = [
        '{"vcpu_id":1,"guest_rip":2,"fault_address":4096,"error_code":6}',
        '{"vcpu_id":2147483648,"guest_rip":2,"fault_address":8192,"error_code":6}',
    ]
    n = len(rows)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(range(n), pa.int64()),
            pa.array(range(n), pa.int64()),
            pa.array([0] * n, pa.int32()),
            pa.array([7] * n, pa.int32()),
            pa.array([7] * n, pa.int32()),
            pa.array(["qemu"] * n, pa.large_string()),
            pa.array(["kvm"] * n, pa.large_string()),
            pa.array(["kvm_page_fault"] * n, pa.large_string()),
            pa.array(rows, pa.large_string()),
            pa.nulls(n, pa.large_list(pa.large_string())),
        ],
        schema=EVENT_SCHEMA,
    )
    (part,) = split_batches([batch])
    assert part.typed["kvm_page_fault"].column("seq").to_pylist() == [0]
    assert part.rows.column("args").to_pylist() == [rows[1]]



# the typed tables the statements alone fill (page_faults / kvm_faults also get streams)
_TYPED = (
    "kvm_unmaps",
    "tlb_flushes",
    "ipis",
    "csd_queues",
    "numa_vma_skips",
    "migrations",
    "task_numa",
    "invalid_ranges",
)


def _rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in _TYPED}


@pytest.mark.parametrize(
    "fixture", ["kvm-pinned-6.18.txt.gz", "kvm-pinned-6.18.dat", "busy-host-6.18.dat"]
)
def test_typed_tables_filled_in_small_chunks_are_the_same(fixture, tmp_path, monkeypatch):
    """store/typed.py runs the typed statements over chunks of event_rows as they stream:
    batches of 50 rows in chunks of 7 give every typed table the rows of the ingest. The
    rows are every event's, as the events view renders them: the statements fill the
    rows of the events written straight to their table (store/split.py) the same way."""
    import tracereplay.store.typed as typed
    from tracereplay.store.schema import ddl

    db = str(tmp_path / "whole.duckdb")
    ingest(str(FIXTURES / fixture), db)
    con = duckdb.connect(db, read_only=True)
    whole = _rows(con)
    rows = con.sql("SELECT * FROM events").to_arrow_table().cast(EVENT_SCHEMA)
    con.close()
    assert sum(len(v) for v in whole.values()) > 100
    monkeypatch.setattr(typed, "CHUNK_ROWS", 7)
    fresh = duckdb.connect(str(tmp_path / "chunked.duckdb"))
    fresh.execute(ddl())
    cur = fresh.cursor()
    typed.fill_typed_tables(cur, iter(rows.to_batches(max_chunksize=50)))
    cur.close()
    assert _rows(fresh) == whole
    fresh.close()


def test_every_typed_statement_is_a_per_row_projection_of_event_rows():
    """store/typed.py runs the statements over chunks of event_rows: one that groups,
    orders, windows or reads another table would not give the rows of one pass over
    the whole table."""
    import re

    from tracereplay.store.typed import _statements

    statements = _statements()
    assert len(statements) >= 8
    for q in statements:
        body = re.sub(r"--[^\n]*", "", q).upper()
        for word in ("GROUP BY", "DISTINCT", " OVER", "WINDOW", "JOIN", "LIMIT", "QUALIFY", "ORDER BY", "ASOF"):
            assert word not in body, (word, q[:120])
        assert set(re.findall(r"\bFROM\s+([A-Z_]+)", body)) == {"EVENT_ROWS"}, q[:120]


def _laid_out(n: int, given: int) -> pa.RecordBatch:
    """A reader batch whose last ``given`` rows are page faults given as numbers."""
    from tracereplay.formats.tracefs.batches import number_schema

    keys = [pa.field(f"page_fault_user.{k}", pa.uint64()) for k in ("address", "ip", "error_code")]
    valid = np.arange(n) >= n - given
    # args "{}": the rows not given as numbers are not read back as page faults
    base = _batch(["exceptions"] * n, True)
    numbers = [pa.array(np.full(n, 4096, np.uint64), mask=~valid) for _ in keys]
    return pa.RecordBatch.from_arrays(
        [*base.columns[: len(EVENT_SCHEMA)], *numbers],
        schema=number_schema(keys, {"page_fault_user": (n - given, n)}),
    )


def _shares(a: pa.Array, b: pa.Array) -> bool:
    lo, size = b.buffers()[1].address, b.buffers()[1].size
    return lo <= a.buffers()[1].address < lo + size


@pytest.mark.parametrize("given", [10, 900])
def test_rows_given_as_numbers_are_sliced_only_when_most_of_the_batch(given):
    """A slice keeps its whole reader batch alive while the stream gathers a row group:
    a rare event's few rows are copied, a common event's sliced (split.py); so are the
    rows left in event_rows."""
    from tracereplay.store.split import split_batches

    batch = _laid_out(1000, given)
    (part,) = split_batches([batch])
    pf = part.typed["page_fault_user"]
    assert pf.column("seq").to_pylist() == list(range(1000 - given, 1000))
    assert part.rows.num_rows == 1000 - given and part.rows.schema == EVENT_SCHEMA
    assert _shares(pf.column("seq"), batch.column("seq")) == (given == 900)
    assert _shares(part.rows.column("seq"), batch.column("seq")) == (given == 10)


_EDGES = [
    # kept only in their typed tables
    "tlb_flush: pages:1 reason:local mm shootdown (3)",
    "tlb_flush: pages:-1 reason:flush on task switch (0)",
    "ipi_send_cpu: cpu=1 callsite=native_flush_tlb_multi+0x10/0x80 callback=flush_tlb_func+0x0/0x150",
    "sched_skip_vma_numa: numa_scan_offset=0 vm_start=7f0000000000 vm_end=7f0000200000 reason=shared_ro",
    "csd_queue_cpu: cpu=1 callsite=smp_call_function_single+0x9b/0x150 func=flush_tlb_func csd=ffffffffffffffff",
    "csd_queue_cpu: cpu=0 callsite=generic_exec_single+0x31/0xc0 func=nohz_csd_func csd=0000000000000000",
    # what the typed table cannot hold as is: their JSON stays in event_rows
    "tlb_flush: pages:9223372036854775813 reason:local shootdown (2)",  # 2^63 + 5: not -1
    "sched_skip_vma_numa: numa_scan_offset=0 vm_start=7f0000200000 vm_end=7f0000000000 reason=shared_ro",
    "sched_skip_vma_numa: numa_scan_offset=0 vm_start=0 vm_end=200000000000000 reason=unsuitable",
    # a CPU number beyond the INTEGER column
    "csd_queue_cpu: cpu=4294967295 callsite=smp_call_function_single+0x9b/0x150 func=flush_tlb_func csd=ffff888102c24538",
]


def test_values_the_typed_tables_cannot_hold_keep_their_json_in_trace_dat(tmp_path):
    """tlb_flush, ipi_send_cpu, sched_skip_vma_numa and csd_queue_cpu given as numbers by
    the trace.dat reader: only rows the typed table renders back exactly skip event_rows; a range the
    typed table refuses is still listed in invalid_ranges."""
    from tracereplay.writers.trace_dat import write_trace_dat

    lines = ["# tracer: nop"] + [
        f"            a.out-100   [001] .....   10.{i + 1:06d}: {text}" for i, text in enumerate(_EDGES)
    ]
    text = tmp_path / "edges.txt"
    text.write_text("\n".join(lines) + "\n")
    dat = str(tmp_path / "edges.dat")
    write_trace_dat(str(text), dat)
    want = _reader_rows(dat)
    db = str(tmp_path / "t.duckdb")
    ingest(dat, db)
    con = duckdb.connect(db, read_only=True)
    assert {s: (n, a) for s, n, a in con.execute("SELECT seq, name, args FROM events").fetchall()} == want
    kept = con.execute("SELECT name, args FROM event_rows ORDER BY seq").fetchall()
    assert kept == [
        ("tlb_flush", '{"reason":2,"pages":9223372036854775813}'),
        (
            "sched_skip_vma_numa",
            f'{{"numa_scan_offset":0,"vm_start":{0x7F0000200000},"vm_end":{0x7F0000000000},'
            '"reason":"shared_ro"}',
        ),
        (
            "sched_skip_vma_numa",
            f'{{"numa_scan_offset":0,"vm_start":0,"vm_end":{0x200000000000000},"reason":"unsuitable"}}',
        ),
        (
            "csd_queue_cpu",
            '{"cpu":4294967295,"callsite":"smp_call_function_single","func":"flush_tlb_func",'
            '"csd":"ffff888102c24538"}',
        ),
    ]
    assert con.execute(
        "SELECT reason, reason_code, pages, comm FROM tlb_flushes ORDER BY seq"
    ).fetchall() == [
        ("local mm shootdown", 3, 1, "a.out"),
        ("flush on task switch", 0, -1, "a.out"),
        ("local shootdown", 2, -1, "a.out"),  # the typed table's TLB_FLUSH_ALL, as before
    ]
    assert con.execute("SELECT n_targets, targets, callsite, callback FROM ipis").fetchall() == [
        (1, [1], "native_flush_tlb_multi", "flush_tlb_func")
    ]
    assert con.execute("SELECT vm_start, vm_end, reason FROM numa_vma_skips").fetchall() == [
        (0x7F0000000000, 0x7F0000200000, "shared_ro")
    ]
    assert con.execute(
        "SELECT target_cpu, callsite, func, csd FROM csd_queues ORDER BY seq"
    ).fetchall() == [
        (1, "smp_call_function_single", "flush_tlb_func", (1 << 64) - 1),
        (0, "generic_exec_single", "nohz_csd_func", 0),
        (None, "smp_call_function_single", "flush_tlb_func", 0xFFFF888102C24538),
    ]
    assert con.execute("SELECT reason FROM invalid_ranges ORDER BY seq").fetchall() == [
        ("reversed",),
        ("beyond user space",),
    ]
    con.close()


def test_a_text_needing_a_json_escape_is_not_given_as_text():
    """A dictionary text is given as a column only when '"' || text || '"' is its JSON."""
    from tracereplay.formats.common.args_json import json_str
    from tracereplay.formats.tracefs.event_decoder import EventDecoder

    dec = EventDecoder("t.dat")
    names = {1: "flush_tlb_func", 2: 'odd"name', 3: "tab\there", 4: "ünïcode"}
    d = dec._dicts.add("sym", lambda vals: [json_str(names[v]) for v in vals])
    plain = dec._plain_texts(d, np.array([1, 2, 3, 4, 1], np.uint64))
    assert plain.tolist() == [True, False, False, True, True]
    offsets, data = dec._texts(d, np.array([4, 1], np.uint64), 2, 5)
    texts = pa.LargeStringArray.from_buffers(5, offsets, data)
    assert texts.to_pylist() == ["", "", "ünïcode", "flush_tlb_func", ""]


def test_a_rare_event_is_inserted_a_row_group_at_a_time(tmp_path):
    """store/fanout.py: chunked_insert runs its INSERT per ``rows`` rows gathered and once
    for the rest; beside a streaming INSERT, every row arrives once."""
    from tracereplay.store.fanout import chunked_insert

    schema = pa.schema([pa.field("x", pa.int64())])

    def batch(start: int, n: int) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pa.array(np.arange(start, start + n))], schema=schema)

    class Recorder:  # the connection calls a sink makes
        def __init__(self) -> None:
            self.inserted: list[int] = []
            self.table: pa.Table | None = None

        def register(self, name, table):
            self.table = table

        def execute(self, sql):
            self.inserted.append(self.table.num_rows)

        def unregister(self, name):
            self.table = None

    rec = Recorder()
    chunked_insert(schema, "INSERT INTO b SELECT x FROM _stream", rows=4)(
        rec, iter([batch(0, 3), batch(3, 3), batch(6, 1)])
    )
    assert rec.inserted == [6, 1]

    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    con.execute("CREATE TABLE a (x BIGINT); CREATE TABLE b (x BIGINT)")
    parts = [{"a": batch(k, 3), "b": batch(s, n)} for k, (s, n) in enumerate(((0, 3), (3, 3), (6, 1)))]
    sink = chunked_insert(schema, "INSERT INTO b SELECT x FROM _stream", rows=4)
    insert_streams(con, parts, {"a": (schema, "INSERT INTO a SELECT * FROM _stream"), "b": (schema, sink)})
    assert con.execute("SELECT count(*) FROM a").fetchone() == (9,)
    assert [r[0] for r in con.execute("SELECT x FROM b ORDER BY x").fetchall()] == list(range(7))
    con.close()
