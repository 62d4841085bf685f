"""Events stored once: high-volume events whose typed table holds all their fields.

``exceptions:page_fault_user`` is most of a large recording (84-99% of the
events of the recordings in docs/BENCHMARKS.md), ``kvm:kvm_page_fault`` most of
a VM's; their fields are unsigned numbers that ``page_faults`` / ``kvm_faults``
hold anyway. Storing each of those events twice, as a row of ``events`` with its
JSON ``args`` and as a typed row, was about half of the ingest's CPU time (issue
17: the JSON insert, then ``json_transform`` over every row). So such an event
is written only to its typed table, with its comm and stack, and the ``events``
view renders its system, name and ``args`` back when a query reads them. The
physical table of every other event is ``event_rows``.

A row goes this way only when its ``args`` are byte for byte what rendering its
numbers gives (:mod:`tracereplay.formats.common.uint_objects`, or the numbers
the reader gives, ``numbers_only``); any other row (a text trace printing a
symbol for an address, a damaged line, another system) stays in ``event_rows``
with its ``args``, and ``queries/_typed_tables.sql`` fills the typed table from
its JSON as for every other event: nothing is lost or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tracereplay.formats.common.uint_objects import UintObject
from tracereplay.formats.tracefs.batches import elided_ranges
from tracereplay.formats.tracefs.event_decoder import NumberSpec
from tracereplay.schema import EVENT_SCHEMA

__all__ = [
    "ELIDED",
    "USER_SPACE_END",
    "ElidedEvent",
    "SplitBatch",
    "events_view_sql",
    "split_batches",
]

_COMMON = ("seq", "ts", "cpu", "pid", "tgid")
_CARRIED = ("comm", "stack")  # kept beside the typed columns for the view


# Exclusive end of the largest user address space: x86-64 with 5-level paging
# (TASK_SIZE_MAX = 2^56 - PAGE_SIZE, arch/x86/include/asm/page_64_types.h); arm64,
# ppc64 and riscv stop lower. hva ranges (kvm_unmap_hva_range) and VMAs
# (sched_skip_vma_numa) are user addresses.
USER_SPACE_END = 1 << 56
U64_MAX = (1 << 64) - 1
I32_MAX = (1 << 31) - 1
Values = dict[str, npt.NDArray[np.uint64]]


@dataclass(frozen=True)
class ElidedEvent:
    """An event of ``system`` kept only in ``table``, when its args are exactly ``keys``
    (in order), each an unsigned number at most its ``limits`` entry (the largest its
    column holds), or a text for the ``texts`` keys (a symbol, an enum name: the readers
    that give numbers only), a ``%p`` field for the ``pointers`` keys, and ``accept``
    (key -> values) passes them (an address range the typed table would refuse keeps its
    JSON).

    Its rows reach the table as a stream of ``seq, ts, cpu, pid, tgid``, the keys
    (uint64 or text, named ``arg_<key>``), ``comm`` and ``stack``, put in the table's
    columns by ``insert`` (a select list over the stream). Rows of another (or no)
    system stay in event_rows: a column of one value repeated for every event costs
    DuckDB as much as the comm column (0.3 CPU-s per 4.7 M rows); constants go in
    ``insert``. ``values``: SQL over the table's row of each key's JSON value, as the
    reader wrote it (the ``events`` view renders ``args`` from them). ``where``: the
    table's rows of this event; ``fills``: every event the typed statements also fill
    the table from (their rows stay in event_rows; default: this one). ``rare``: a
    small share of any recording, inserted a row group at a time by a statement of
    its own, not by a streaming INSERT that would hold one of DuckDB's threads
    waiting for its rows from the first batch to the last.
    """

    name: str
    system: str
    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    insert: str
    where: str = "true"
    limits: tuple[int, ...] = ()
    texts: tuple[str, ...] = ()
    accept: Callable[[Values], npt.NDArray[np.bool_]] | None = None
    fills: tuple[str, ...] = ()
    rare: bool = False
    pointers: tuple[str, ...] = ()

    @property
    def template(self) -> UintObject:
        return UintObject(self.keys)

    @property
    def maxima(self) -> tuple[int, ...]:
        return self.limits or (U64_MAX,) * len(self.keys)

    @property
    def number_spec(self) -> NumberSpec:
        """What the readers that give numbers are asked for (``numbers_only``)."""
        return NumberSpec(
            self.system, self.keys, self.maxima, self.texts, self.accept, self.pointers
        )

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of its stream."""
        fields = [EVENT_SCHEMA.field(c) for c in _COMMON]
        fields += [
            pa.field(f"arg_{k}", pa.large_string() if k in self.texts else pa.uint64())
            for k in self.keys
        ]
        fields += [EVENT_SCHEMA.field(c) for c in _CARRIED]
        return pa.schema(fields)

    def render_sql(self) -> str:
        """SQL of its ``args`` JSON from the typed columns (the writer's exact bytes)."""
        parts = []
        for i, (k, value) in enumerate(zip(self.keys, self.values, strict=True)):
            lead = "{" if i == 0 else ","
            parts.append(f"'{lead}\"{k}\":' || {value}")
        return " || ".join(parts) + " || '}'"

    def stored_sql(self) -> str:
        """WHERE condition of the rows of ``table`` kept only there (not in event_rows)."""
        names = ", ".join(f"'{n}'" for n in self.fills or (self.name,))
        return f"{self.where} AND seq NOT IN (SELECT seq FROM event_rows WHERE name IN ({names}))"


def _tlb_pages(v: Values) -> npt.NDArray[np.bool_]:
    """tlb_flushes.pages holds a count or -1 (TLB_FLUSH_ALL, ULONG_MAX): other values
    from 2^63 would not render back."""
    pages = v["pages"]
    return (pages < np.uint64(1 << 63)) | (pages == np.uint64(U64_MAX))


def _user_range(v: Values) -> npt.NDArray[np.bool_]:
    """A VMA numa_vma_skips keeps (range_problem of store/schema.py is NULL)."""
    return (v["vm_start"] <= v["vm_end"]) & (v["vm_end"] <= np.uint64(USER_SPACE_END))


def _quoted(column: str) -> str:
    """A text column's JSON value (the readers give only texts that need no escape)."""
    return f"'\"' || {column} || '\"'"


ELIDED = (
    ElidedEvent(
        "page_fault_user",
        "exceptions",
        "page_faults",
        ("address", "ip", "error_code"),
        ("address", "ip", "error_code"),
        "seq, ts, cpu, pid, tgid, arg_address, arg_ip, arg_error_code, comm, stack",
    ),
    # Linux 6.1+ (kvm_page_fault gained vcpu_id and guest_rip); older kernels' two-field
    # form keeps its JSON in event_rows
    ElidedEvent(
        "kvm_page_fault",
        "kvm",
        "kvm_faults",
        ("vcpu_id", "guest_rip", "fault_address", "error_code"),
        ("vcpu", "guest_rip", "gpa", "error_code"),
        "seq, ts, cpu, pid, tgid, 'page_fault', arg_vcpu_id, arg_fault_address, arg_error_code, "
        "NULL, NULL, NULL, arg_guest_rip, comm, stack",
        where="kind = 'page_fault'",
        limits=(I32_MAX, U64_MAX, U64_MAX, U64_MAX),
        fills=("kvm_page_fault", "kvm_tdp_mmu_spte_changed", "kvm_mmu_set_spte"),
    ),
    # the events below are a tenth of a recording's (issue 17: their JSON, stored then
    # parsed back by the typed statements, was a quarter of a 4 M-event ingest)
    ElidedEvent(
        "tlb_flush",
        "tlb",
        "tlb_flushes",
        ("reason", "pages"),
        ("reason_code", "CASE WHEN pages = -1 THEN '18446744073709551615' ELSE pages::VARCHAR END"),
        "seq, ts, cpu, pid, tgid, tlb_flush_reason(arg_reason), arg_reason, "
        "CASE WHEN arg_pages = 18446744073709551615 THEN -1 ELSE arg_pages::BIGINT END, "
        "comm, stack",
        limits=(I32_MAX, U64_MAX),
        accept=_tlb_pages,
        rare=True,
    ),
    ElidedEvent(
        "ipi_send_cpu",
        "ipi",
        "ipis",
        ("cpu", "callsite", "callback"),
        ("targets[1]", _quoted("callsite"), _quoted("callback")),
        "seq, ts, cpu, pid, tgid, 1, [arg_cpu::INTEGER], arg_callsite, arg_callback, comm, stack",
        limits=(I32_MAX, U64_MAX, U64_MAX),
        texts=("callsite", "callback"),
        fills=("ipi_send_cpu", "ipi_send_cpumask"),
        rare=True,
    ),
    ElidedEvent(
        "sched_skip_vma_numa",
        "sched",
        "numa_vma_skips",
        ("numa_scan_offset", "vm_start", "vm_end", "reason"),
        ("numa_scan_offset", "vm_start", "vm_end", _quoted("reason")),
        "seq, ts, cpu, pid, tgid, arg_vm_start, arg_vm_end, arg_numa_scan_offset, arg_reason, "
        "comm, stack",
        texts=("reason",),
        accept=_user_range,
        rare=True,
    ),
    # 6.6+: one per queued cross-CPU call (9% of a shootdown-heavy recording)
    ElidedEvent(
        "csd_queue_cpu",
        "csd",
        "csd_queues",
        ("cpu", "callsite", "func", "csd"),
        ("target_cpu", _quoted("callsite"), _quoted("func"), _quoted("printf('%016x', csd)")),
        "seq, ts, cpu, pid, tgid, arg_cpu, arg_callsite, arg_func, arg_csd, comm, stack",
        limits=(I32_MAX, U64_MAX, U64_MAX, U64_MAX),
        texts=("callsite", "func"),
        pointers=("csd",),
        rare=True,
    ),
)


_NAMES = frozenset(e.name for e in ELIDED)


def events_view_sql() -> str:
    """The ``events`` view: ``event_rows`` and the elided events with their args rendered.

    A typed row whose event stayed in ``event_rows`` (its args were not exactly the
    rendered form) is not listed twice.
    """
    cols = ", ".join(f.name for f in EVENT_SCHEMA)
    branches = [f"SELECT {cols} FROM event_rows"]
    for e in ELIDED:
        branches.append(
            f"SELECT seq, ts, cpu, pid, tgid, comm, '{e.system}' AS system, '{e.name}' AS name, "
            f"{e.render_sql()} AS args, stack FROM {e.table} WHERE {e.stored_sql()}"
        )
    return "CREATE VIEW events AS\n" + "\nUNION ALL\n".join(branches) + ";"


@dataclass
class SplitBatch:
    """One reader batch as stored: the ``event_rows`` part and each elided event's part
    (by event name)."""

    rows: pa.RecordBatch
    typed: dict[str, pa.RecordBatch]


def split_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[SplitBatch]:
    """Each batch as stored. A reader that gives an elided event's fields as numbers
    (``numbers_only``) puts those rows last, each event's together, with their ranges
    (:func:`~tracereplay.formats.tracefs.batches.elided_order`): they are taken by
    slicing, with no JSON written and parsed back; the rest from their JSON."""
    templates = [(e, e.template) for e in ELIDED]
    name_col = EVENT_SCHEMA.get_field_index("name")
    args_col = EVENT_SCHEMA.get_field_index("args")
    for batch in batches:
        typed: dict[str, pa.RecordBatch] = {}
        ranges = elided_ranges(batch)
        if ranges.keys() - _NAMES:
            # the reader was asked for ELIDED's events only (store_batches): a bug
            raise ValueError(f"reader batch lists events given as numbers {sorted(ranges)}")
        given = {
            e.name: _slice_given(batch, e, *ranges[e.name]) for e in ELIDED if e.name in ranges
        }
        whole = batch.num_rows
        if ranges:
            batch = batch.slice(0, min(start for start, _stop in ranges.values()))
        taken = np.zeros(batch.num_rows, np.bool_)
        for e, template in templates:
            # given as numbers, then the rest from their JSON (a reader that cannot give
            # numbers, or a record too short to hold every field)
            parts = [
                p
                for p in (
                    given.get(e.name),
                    _take_elided(batch, e, template, name_col, args_col, taken),
                )
                if p is not None
            ]
            if parts:
                typed[e.name] = parts[0] if len(parts) == 1 else pa.concat_batches(parts)
        if batch.num_columns > len(EVENT_SCHEMA) or batch.schema.metadata:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(c) for c in EVENT_SCHEMA.names], schema=EVENT_SCHEMA
            )
        # a few rows left copied, not sliced (+300 MiB peak on 4 M page faults otherwise);
        # most of the batch stays a slice (kmem-4m.txt: two thirds are mm_page_alloc /
        # mm_page_free, whose copy cost 0.2 CPU-s)
        rows = batch.filter(pa.array(~taken)) if taken.any() else _owned(batch, whole)
        yield SplitBatch(rows, typed)


def _owned(part: pa.RecordBatch, whole: int) -> pa.RecordBatch:
    """``part`` of a reader batch of ``whole`` rows: itself when it is most of that batch,
    else a copy (a slice keeps the whole batch's buffers alive while its stream gathers a
    row group: a rare event would hold hundreds of batches)."""
    if 2 * part.num_rows < whole:
        return part.take(pa.array(np.arange(part.num_rows)))
    return part


def _slice_given(batch: pa.RecordBatch, e: ElidedEvent, start: int, stop: int) -> pa.RecordBatch:
    """The stream batch of ``e``'s rows, ``start`` to ``stop`` in ``batch`` (:func:`_owned`)."""
    part = batch.slice(start, stop - start)
    out = _stream_batch(part, e, [part.column(f"{e.name}.{k}") for k in e.keys])
    return _owned(out, batch.num_rows)


def _take_elided(
    batch: pa.RecordBatch,
    e: ElidedEvent,
    template: UintObject,
    name_col: int,
    args_col: int,
    taken: np.ndarray,
) -> pa.RecordBatch | None:
    """``e``'s rows of ``batch`` not ``taken`` yet whose args render back exactly (then
    marked in ``taken``). Only events of numbers: a text key stays in event_rows here."""
    if e.texts:
        return None
    is_event = pc.and_(
        pc.equal(batch.column(name_col), e.name),
        pc.fill_null(pc.equal(batch.column("system"), e.system), False),
    )
    if not pc.any(is_event).as_py():
        return None
    args = batch.column(args_col)
    if args.null_count:
        is_event = pc.and_(is_event, pc.is_valid(args))
    rows = np.flatnonzero(is_event.to_numpy(zero_copy_only=False) & ~taken)
    if not len(rows):
        return None
    offsets, data = _string_buffers(args)
    values, ok = template.parse(offsets, data, rows)
    ok &= e.number_spec.fits(list(values))
    rows = rows[ok]
    if not len(rows):
        return None
    taken[rows] = True
    picked = batch.select([*_COMMON, *_CARRIED]).take(pa.array(rows))
    return _stream_batch(picked, e, [pa.array(v[ok]) for v in values])


def _stream_batch(rows: pa.RecordBatch, e: ElidedEvent, values: list[pa.Array]) -> pa.RecordBatch:
    """``e``'s stream batch: ``rows``' common and carried columns around ``values`` (one
    array per key)."""
    columns = [rows.column(c) for c in _COMMON]
    columns += [*values, *(rows.column(c) for c in _CARRIED)]
    return pa.RecordBatch.from_arrays(columns, schema=e.schema)


def _string_buffers(a: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets of ``a``'s rows, its data bytes) of a large_string array."""
    if a.type != pa.large_string():
        a = a.cast(pa.large_string())
    _, off_buf, data_buf = a.buffers()
    offsets = np.frombuffer(off_buf, np.int64)[a.offset : a.offset + len(a) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data
