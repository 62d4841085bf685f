"""Measure the stack-less cause rules against a stack-recorded trace.

:func:`check_causes` takes an ingested database whose KVM invalidations carry
symbolized stacks, classifies them from the stacks (the truth), strips the
stacks (and, with ``drop_syscalls``, the syscall enter/exit events), classifies
again by rule (:mod:`tracereplay.reconstruct.causes`) and returns the confusion
matrix, cause by stack against cause by inference, with the pages at stake::

    con = duckdb.connect("trace.duckdb")        # tracereplay ingest trace.dat -o ...
    check = check_causes(con)                    # the database is changed: a scratch copy
    check.numa("stack"), check.numa("inferred")  # (invalidations, touching guest RAM, pages)

Pages are 4 KiB pages of the invalidated ranges; guest pages only count the
part inside the manifest's memslots (what KVM zaps). ``scripts/measure_causes.py``
prints it for any trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb

from tracereplay.reconstruct.causes import CauseSummary, classify_invalidations
from tracereplay.reconstruct.processes import assign_processes

__all__ = ["CauseCheck", "Cell", "check_causes"]


@dataclass(frozen=True)
class Cell:
    invalidations: int = 0
    touching_guest_ram: int = 0
    pages: int = 0  # 4 KiB pages of the ranges
    guest_pages: int = 0  # of them inside memslots

    def __add__(self, other: Cell) -> Cell:
        return Cell(
            self.invalidations + other.invalidations,
            self.touching_guest_ram + other.touching_guest_ram,
            self.pages + other.pages,
            self.guest_pages + other.guest_pages,
        )


@dataclass
class CauseCheck:
    # (kind by stack, kind by inference) -> what falls there
    matrix: dict[tuple[str, str], Cell] = field(default_factory=dict)
    summary: CauseSummary = field(default_factory=CauseSummary)
    # (kind by stack, rule that decided the inference) -> invalidations
    rules: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        seen = {k for pair in self.matrix for k in pair}
        return sorted(seen, key=lambda k: (k != "numa_scan", k == "other", k))

    def _cells(self, side: str, kind: str) -> Iterator[Cell]:
        for (truth, guess), cell in self.matrix.items():
            if (truth if side == "stack" else guess) == kind:
                yield cell

    def numa(self, side: str) -> Cell:
        """NUMA-caused invalidations by ``side`` (``stack`` or ``inferred``)."""
        return sum(self._cells(side, "numa_scan"), Cell())

    @property
    def misattributed(self) -> Cell:
        """Invalidations whose NUMA / not-NUMA answer differs from the stack's."""
        return sum(
            (c for (t, g), c in self.matrix.items() if (t == "numa_scan") != (g == "numa_scan")),
            Cell(),
        )

    @property
    def exact(self) -> bool:
        """Every invalidation got the NUMA / not-NUMA answer of its stack."""
        return self.misattributed.invalidations == 0


_CELLS = """
SELECT t.kind AS truth, k.cause_kind AS guess, count(*),
       count(*) FILTER (WHERE g.pages > 0),
       sum((k.hva_end - k.hva_start) // 4096)::BIGINT,
       coalesce(sum(g.pages), 0)::BIGINT
FROM kvm_unmaps k JOIN _truth t USING (seq)
LEFT JOIN (
    SELECT u.seq, sum(overlap_bytes(u.hva_start, u.hva_end, m.hva_start, m.hva_end)) // 4096 AS pages
    FROM kvm_unmaps u JOIN memslots m
      ON m.tgid = coalesce(u.tgid, u.pid) AND m.hva_start < u.hva_end AND u.hva_start < m.hva_end
    GROUP BY u.seq
) g USING (seq)
GROUP BY ALL
"""


def check_causes(
    con: duckdb.DuckDBPyConnection, *, drop_syscalls: bool = False, scan_size_mb: int | None = None
) -> CauseCheck:
    """Confusion matrix of the rules on ``con`` (see the module docstring); changes ``con``.

    Invalidations without a symbolized stack (lost stack lines, bare perf
    callchains) have no truth and are left out of the matrix.
    """
    assign_processes(con)
    classify_invalidations(con, scan_size_mb=scan_size_mb)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _truth AS SELECT seq, cause_kind AS kind FROM kvm_unmaps "
        "WHERE cause_evidence = 'stack'"
    )
    # event_rows: the table under the events view (store/split.py)
    con.execute("UPDATE event_rows SET stack = NULL WHERE seq IN (SELECT seq FROM kvm_unmaps)")
    con.execute("UPDATE kvm_unmaps SET cause = 'unknown', cause_evidence = 'none'")
    if drop_syscalls:
        con.execute(
            "DELETE FROM event_rows WHERE name LIKE 'sys\\_enter%' ESCAPE '\\' "
            "OR name LIKE 'sys\\_exit%' ESCAPE '\\'"
        )
    check = CauseCheck(summary=classify_invalidations(con, scan_size_mb=scan_size_mb))
    for truth, guess, n, touching, pages, guest in con.execute(_CELLS).fetchall():
        check.matrix[(str(truth), str(guess))] = Cell(int(n), int(touching), int(pages), int(guest))
    for truth, rule, n in con.execute(
        "SELECT t.kind, k.cause_rule, count(*) FROM kvm_unmaps k JOIN _truth t USING (seq) "
        "GROUP BY ALL"
    ).fetchall():
        check.rules[(str(truth), str(rule))] = int(n)
    return check
