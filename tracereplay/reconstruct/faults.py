"""A VM's guest-RAM ``kvm_page_fault`` events, in blocks of whole guest pages.

The page model (:mod:`tracereplay.reconstruct.pages`) replays each guest page
independently of every other, so it never needs all faults at once: a
:class:`FaultSource` yields them sorted by (unit, time) in blocks that never
split one unit's faults. :class:`TableFaults` keeps them in a DuckDB temporary
table (sorted once, spilled to disk by DuckDB when large) and streams one
block at a time, so replay memory stays flat however long the trace is;
:class:`ArrayFaults` holds small in-memory arrays (tests, notebooks).

A *unit* is a guest page in the layout of :func:`slot_layout`: the memslots in
HVA order, 4 KiB pages, or 2 MiB PMDs in a THP memslot.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import duckdb
import numpy as np

from tracereplay.errors import TraceReplayError

HUGE_SHIFT, PAGE_SHIFT = 21, 12
BLOCK_FAULTS = 1 << 20  # faults per block: ~40 MB of arrays


@contextlib.contextmanager
def bounded_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Cap DuckDB's memory (TRACEREPLAY_RECONSTRUCT_MEMORY, default 256MB) for a block of work.

    DuckDB's default limit is 80% of RAM and it keeps sorted or temporary data
    cached up to it; with a cap it spills to its temp directory instead, so
    reconstruction and replay memory stays flat as traces grow. Insertion order
    is kept on: :class:`TableFaults` reads its table in the order it was written.
    """
    value = os.environ.get("TRACEREPLAY_RECONSTRUCT_MEMORY", "256MB")
    saved = {k: _setting(con, k) for k in ("memory_limit", "preserve_insertion_order")}
    try:
        try:
            con.execute(f"SET memory_limit = '{value.replace(chr(39), '')}'")
        except duckdb.Error:
            raise TraceReplayError(
                f"TRACEREPLAY_RECONSTRUCT_MEMORY={value!r}: expected a size such as 256MB"
            ) from None
        con.execute("SET preserve_insertion_order = true")
        yield
    finally:
        for key, (old, default) in saved.items():
            # RESET when it was the default: the displayed value is rounded
            con.execute(f"RESET {key}" if old == default else f"SET {key} = '{old}'")


def _setting(con: duckdb.DuckDBPyConnection, key: str) -> tuple[str, str]:
    """(current, default) value of a DuckDB setting, as displayed."""
    old = str(con.execute(f"SELECT current_setting('{key}')").fetchall()[0][0])
    con.execute(f"RESET {key}")
    default = str(con.execute(f"SELECT current_setting('{key}')").fetchall()[0][0])
    if old != default:
        con.execute(f"SET {key} = '{old}'")
    return old, default


class Slot(NamedTuple):
    hva_start: int
    hva_end: int
    gpa_start: int
    shared: bool
    thp: bool
    shift: int  # unit size: PAGE_SHIFT, or HUGE_SHIFT for a THP memslot
    base: int  # first unit
    units: int


def slot_layout(slots: list[tuple[int, int, int, bool, bool]]) -> list[Slot]:
    """Units of each memslot ``(hva_start, hva_end, gpa_start, shared, thp)``, in HVA order."""
    out = []
    base = 0
    for hs, he, gs, shared, thp in sorted(slots):
        shift = HUGE_SHIFT if thp else PAGE_SHIFT
        n = -(-(he - hs) >> shift) if thp else (he - hs) >> shift
        out.append(Slot(hs, he, gs, shared, thp, shift, base, n))
        base += n
    return out


def gpa_units(layout: list[Slot], gpa: np.ndarray) -> np.ndarray:
    """Unit of each guest physical address; -1 outside every memslot."""
    units = np.full(len(gpa), -1, np.int64)
    g = gpa.astype(np.int64)
    for s in layout:
        m = (g >= s.gpa_start) & (g < s.gpa_start + (s.hva_end - s.hva_start))
        units[m] = s.base + ((g[m] - s.gpa_start) >> s.shift)
    return units


def gpa_unit_sql(layout: list[Slot], gpa: str) -> str:
    """SQL expression of :func:`gpa_units` over column ``gpa`` (NULL outside the memslots).

    Slots are tested last first: where GPA ranges overlap the later slot wins, as
    in :func:`gpa_units`.
    """
    whens = " ".join(
        f"WHEN {gpa} >= {s.gpa_start} AND {gpa} < {s.gpa_start + s.hva_end - s.hva_start} "
        f"THEN {s.base} + (({gpa} - {s.gpa_start}) >> {s.shift})"
        for s in reversed(layout)
    )
    return f"(CASE {whens} END)" if whens else "NULL::BIGINT"


@dataclass
class FaultBlock:
    """Faults of a run of whole units, sorted by (unit, ts)."""

    unit: np.ndarray  # int64
    ts: np.ndarray  # int64
    mig: np.ndarray  # (n, 3) int64: NUMA migration calls ok, failed, pages migrated


class FaultSource(Protocol):
    def blocks(self) -> Iterator[FaultBlock]: ...

    def migration_totals(self) -> np.ndarray:
        """NUMA migrations (calls ok, failed, pages) tied to a guest-RAM fault."""
        ...


class ArrayFaults:
    """Faults held in memory, re-cut into blocks of about ``block`` faults."""

    def __init__(
        self, unit: np.ndarray, ts: np.ndarray, mig: np.ndarray, block: int = BLOCK_FAULTS
    ):
        keep = unit >= 0
        order = np.lexsort((ts[keep], unit[keep]))  # stable: event order breaks ties
        self.unit = unit[keep][order].astype(np.int64)
        self.ts = ts[keep][order].astype(np.int64)
        self.mig = mig[keep][order].astype(np.int64).reshape(-1, 3)
        self.block = block

    def blocks(self) -> Iterator[FaultBlock]:
        n, i = len(self.unit), 0
        while i < n:
            # extend the cut to the end of the unit it lands in
            j = min(i + self.block, n)
            if j < n:
                j = int(np.searchsorted(self.unit, self.unit[j - 1], side="right"))
            yield FaultBlock(self.unit[i:j], self.ts[i:j], self.mig[i:j])
            i = j

    def migration_totals(self) -> np.ndarray:
        return self.mig.sum(axis=0).astype(np.int64)


class TableFaults:
    """Faults in DuckDB temporary table ``table`` (unit, ts, ok, fail, pages), stored sorted.

    The table lives as long as the connection: replay must run while it is open.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, block: int = BLOCK_FAULTS):
        self.con, self.table, self.block = con, table, block
        row = con.execute(
            f"SELECT coalesce(sum(ok), 0), coalesce(sum(fail), 0), coalesce(sum(pages), 0) FROM {table}"
        ).fetchall()[0]
        self._totals = np.array([int(x) for x in row], np.int64)

    def migration_totals(self) -> np.ndarray:
        return self._totals.copy()

    def blocks(self) -> Iterator[FaultBlock]:
        with bounded_memory(self.con):
            yield from self._stream()

    def _stream(self) -> Iterator[FaultBlock]:
        # a plain scan returns the rows in insertion order (preserve_insertion_order,
        # DuckDB's default), which the CREATE ... ORDER BY made (unit, ts) order
        reader = self.con.sql(
            f"SELECT unit, ts, ok, fail, pages FROM {self.table}"
        ).to_arrow_reader(self.block)
        carry: list[np.ndarray] | None = None
        for batch in itertools.chain(reader, [None]):
            if batch is None:
                cols = carry
                carry = None
                if cols is None or len(cols[0]) == 0:
                    return
            else:
                new = [batch.column(k).to_numpy().astype(np.int64) for k in range(5)]
                cols = (
                    new
                    if carry is None
                    else [np.concatenate(p) for p in zip(carry, new, strict=True)]
                )
                # keep the last unit's faults for the next block: it may continue there
                cut = int(np.searchsorted(cols[0], cols[0][-1], side="left"))
                carry = [c[cut:] for c in cols]
                cols = [c[:cut] for c in cols]
                if cut == 0:
                    continue
            yield FaultBlock(cols[0], cols[1], np.stack(cols[2:], axis=1))


def create_fault_table(
    con: duckdb.DuckDBPyConnection,
    tgid: int,
    layout: list[Slot],
    table: str,
    *,
    user: bool = False,
) -> TableFaults:
    """Sort one VM's guest-RAM faults into ``table``, each with the NUMA migrations it caused.

    Every NUMA migration is attributed to the fault that triggered it: the latest
    kvm_page_fault of the same vCPU thread before it in event order (the hint
    fault's GUP calls migrate_misplaced_folio before the vCPU re-enters the guest).

    ``user=True``: a non-VM process's not-present user page faults
    (``page_fault_user``, error code bit 0 clear: a PROT_NONE PTE is not present
    to the hardware) inside its regions, whose layout has ``gpa_start`` =
    ``hva_start``; the NUMA migration follows the hint fault the same way.
    """
    source = (
        f"SELECT seq, pid, ts, {gpa_unit_sql(layout, 'address')} AS unit FROM page_faults "
        "WHERE tgid = $tgid AND error_code & 1 = 0"
        if user
        else f"SELECT seq, pid, ts, {gpa_unit_sql(layout, 'gpa::BIGINT')} AS unit FROM kvm_faults "
        "WHERE tgid = $tgid AND kind = 'page_fault' AND gpa IS NOT NULL"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH f AS ({source}),
        mg AS (
            SELECT seq AS mseq, pid, failed, succeeded FROM migrations
            WHERE tgid = $tgid AND reason = 'numa_misplaced'
        ),
        att AS (
            SELECT f.seq AS fseq,
                   count(*) FILTER (WHERE mg.failed = 0) AS ok,
                   count(*) FILTER (WHERE mg.failed > 0) AS fail,
                   coalesce(sum(mg.succeeded), 0) AS pages
            FROM mg ASOF JOIN f ON mg.pid = f.pid AND f.seq < mg.mseq
            WHERE f.unit IS NOT NULL
            GROUP BY f.seq
        )
        SELECT f.unit::BIGINT AS unit, f.ts::BIGINT AS ts,
               coalesce(att.ok, 0)::BIGINT AS ok, coalesce(att.fail, 0)::BIGINT AS fail,
               coalesce(att.pages, 0)::BIGINT AS pages
        FROM f LEFT JOIN att ON att.fseq = f.seq
        WHERE f.unit IS NOT NULL
        ORDER BY f.unit, f.ts, f.seq
        """,
        {"tgid": tgid},
    )
    return TableFaults(con, table)


__all__ = [
    "ArrayFaults",
    "FaultBlock",
    "FaultSource",
    "Slot",
    "TableFaults",
    "create_fault_table",
    "gpa_unit_sql",
    "gpa_units",
    "slot_layout",
]
