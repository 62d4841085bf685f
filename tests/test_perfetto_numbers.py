"""Perfetto rows given as numbers (``numbers_only``): the store gets what the JSON said.

With ``numbers_only`` the Perfetto reader gives the rows of page_fault_user,
kvm_page_fault, tlb_flush (...) whose keys are all numbers as value columns, last
in their batch, with ``{}`` for args. Every test holds such a read to the reader's
own JSON without it, row by row and column by column, on both of its paths: the
plain one and the one with stacks and compact_sched rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from numbers_support import SPECS, db_rows, given_counts, rendered_rows

from tests.conftest import FIXTURES
from tests.test_perfetto import _compact_bundle, bundle_packet, trace_bytes
from tracereplay.readers.perfetto import PerfettoReader
from tracereplay.store import ingest
from tracereplay.writers import write_perfetto


def _read(path: str, numbers: bool) -> list[pa.RecordBatch]:
    reader = PerfettoReader(path)
    if numbers:
        reader.numbers_only(SPECS)
    return list(reader.batches())


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> str:
    target = str(tmp_path_factory.mktemp("perfetto") / "pinned.perfetto-trace")
    write_perfetto(str(FIXTURES / "pinned-threads-6.18.txt"), target)
    return target


def test_given_rows_render_to_the_readers_json(pinned: str) -> None:
    given = _read(pinned, numbers=True)
    counts = given_counts(given)
    assert counts.get("page_fault_user", 0) > 100 and "tlb_flush" in counts
    assert rendered_rows(given) == rendered_rows(_read(pinned, numbers=False))


def test_with_stacks_and_compact_sched_rows_in_the_batch(tmp_path: Path) -> None:
    """The other path of the reader (a polars frame, sorted with the compact rows)."""
    path = tmp_path / "kvm.perfetto-trace"
    write_perfetto(str(FIXTURES / "kvm-pinned-6.18.txt.gz"), str(path))
    path.write_bytes(path.read_bytes() + trace_bytes(bundle_packet(_compact_bundle(0))))
    given = _read(str(path), numbers=True)
    plain = _read(str(path), numbers=False)
    assert sum(given_counts(given).values()) > 100
    assert any(r[7] == "sched_switch" for r in rendered_rows(plain).values())
    assert any(r[9] is not None for r in rendered_rows(plain).values())  # stacks
    assert rendered_rows(given) == rendered_rows(plain)


def test_an_ingest_lists_the_readers_events(pinned: str, tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    ingest(pinned, db)
    got = db_rows(db)
    con = duckdb.connect(db, read_only=True)
    rows_kept = con.execute("SELECT count(*) FROM event_rows WHERE name = 'page_fault_user'")
    assert rows_kept.fetchone() == (0,)
    con.close()
    assert got == rendered_rows(_read(pinned, numbers=False))


def test_damaged_traces_give_the_same_rows_either_way(pinned: str, tmp_path: Path) -> None:
    """Byte flips (a damaged bundle is decoded again in halves, without numbers): a read
    with numbers_only gives what the JSON read gives, or fails the same way."""
    from tracereplay.errors import TraceFormatError

    data = Path(pinned).read_bytes()
    bad = tmp_path / "flip.perfetto-trace"
    given_any = 0
    for k in range(40):
        mutated = bytearray(data)
        mutated[(k * 104_729 + 17) % len(data)] ^= 0xFF if k % 2 else 0x80
        bad.write_bytes(bytes(mutated))
        try:
            plain = rendered_rows(_read(str(bad), numbers=False))
        except TraceFormatError as e:
            with pytest.raises(TraceFormatError) as again:
                _read(str(bad), numbers=True)
            assert str(again.value) == str(e)
            continue
        given = _read(str(bad), numbers=True)
        given_any += sum(given_counts(given).values())
        assert rendered_rows(given) == plain, k
    assert given_any


def test_two_types_of_one_event_are_both_given(tmp_path: Path) -> None:
    """Legacy generic events of one name with two field signatures are two types of the
    args builder: the rows of both are given (the second once replaced the first's)."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    from tests.test_perfetto import tree

    events = []
    for i in range(4):
        ev = pb.FtraceEvent(timestamp=1_000 + i, pid=42)
        ev.generic.event_name = "page_fault_user"
        if i % 2:
            ev.generic.field.add(name="address", int_value=0x1000 * (i + 1))
        else:
            ev.generic.field.add(name="address", uint_value=0x1000 * (i + 1))
        ev.generic.field.add(name="ip", uint_value=0x400000 + i)
        ev.generic.field.add(name="error_code", uint_value=6)
        events.append(ev)
    bundle = pb.FtraceEventBundle(cpu=0, event=events)
    path = tmp_path / "t.pftrace"
    path.write_bytes(trace_bytes(tree((42, 42, "a")), bundle_packet(bundle)))
    given = _read(str(path), numbers=True)
    assert given_counts(given) == {"page_fault_user": 4}
    assert rendered_rows(given) == rendered_rows(_read(str(path), numbers=False))
