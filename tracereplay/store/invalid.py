"""Warnings for the rows the typed tables left out (see ``invalid_ranges`` in store/schema.py).

Every input format fills the same typed tables, so the check lives here, after
``queries/_typed_tables.sql`` ran: an address range no kernel can produce
(``kvm_unmap_hva_range`` or ``sched_skip_vma_numa`` ending before it starts,
ending above the largest user address space, or unreadable) is kept in
``events`` but excluded from the replay, and the trace is flagged partial with
the file and the first such event named (its line for text, its record number
otherwise).
"""

from __future__ import annotations

import duckdb

from tracereplay.tracemeta import TraceMeta

_TABLE_OF = {"kvm_unmap_hva_range": "kvm_unmaps", "sched_skip_vma_numa": "numa_vma_skips"}


def flag_invalid_ranges(con: duckdb.DuckDBPyConnection, meta: TraceMeta) -> None:
    """One partial warning per event name with rows in ``invalid_ranges``."""
    rows = con.execute(
        """
        SELECT name, count(*), arg_min(seq, seq), arg_min(reason, seq),
               arg_min(range_start, seq), arg_min(range_end, seq)
        FROM invalid_ranges GROUP BY name ORDER BY name
        """
    ).fetchall()
    for name, count, seq, reason, start, end in rows:
        where = (
            f"{meta.path}:{seq}" if meta.format == "ftrace-text" else f"{meta.path} record {seq}"
        )
        shown = "unreadable" if start is None or end is None else f"{start:#x} -- {end:#x}"
        meta.warn(
            f"{where}: {count} {name} event(s) with an impossible address range "
            f"(first: {shown}, {reason}): kept in events, left out of "
            f"{_TABLE_OF.get(name, 'the typed tables')} and the replay",
            partial=True,
        )


__all__ = ["flag_invalid_ranges"]
