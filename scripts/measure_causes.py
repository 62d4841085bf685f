#!/usr/bin/env python3
"""Measure the stack-less cause rules on stack-recorded traces: confusion matrices.

For each TRACE (any format; a sibling ``TRACE.manifest.toml`` gives the guest
RAM), ingest it, classify every KVM invalidation from its stack, strip the
stacks, classify again by rule (tracereplay.reconstruct.causes), and print
the confusion matrix (cause by stack x cause by inference) with invalidations
and guest pages, then the NUMA-caused totals both ways. ``--without-syscalls``
also drops the syscall enter/exit events: the same recording as if made
without ``--events causes``. ``--both`` prints both measurements. ``--json``
prints the results as one JSON object per line instead.

Example::

    python scripts/measure_causes.py fixtures/kvm-churn-6.18.txt.xz --both
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import duckdb

from tracereplay.errors import TraceReplayError
from tracereplay.manifest import default_manifest_path, load_manifest
from tracereplay.reconstruct.cause_check import CauseCheck, Cell, check_causes
from tracereplay.store import ingest


def measure(trace: str, drop_syscalls: bool, workdir: str) -> CauseCheck:
    found = default_manifest_path(trace)
    manifest = load_manifest(found) if found else None
    db = str(Path(workdir) / f"{Path(trace).name}.{int(drop_syscalls)}.duckdb")
    ingest(trace, db, manifest=manifest, replace=True)
    tunables = (manifest.host.get("numa_balancing_tunables") or {}) if manifest else {}
    with duckdb.connect(db) as con:
        return check_causes(
            con, drop_syscalls=drop_syscalls, scan_size_mb=tunables.get("scan_size_mb")
        )


def _cell(c: Cell) -> str:
    return f"{c.invalidations:,} ({c.guest_pages:,} gp)"


def render(trace: str, label: str, check: CauseCheck) -> str:
    kinds = check.kinds
    width = max([len(k) for k in kinds] + [14])
    col = max(width, 20) + 2
    lines = [
        f"{trace} -- {label}",
        "rows: cause by stack; columns: cause by inference; cells: invalidations (guest pages)",
    ]
    lines.append(" " * (width + 2) + "".join(k.rjust(col) for k in kinds))
    for truth in kinds:
        cells = [
            _cell(check.matrix[(truth, g)]) if (truth, g) in check.matrix else "."
            for g in kinds
        ]
        if any(c != "." for c in cells):
            lines.append(truth.ljust(width + 2) + "".join(c.rjust(col) for c in cells))
    for side in ("stack", "inferred"):
        n = check.numa(side)
        lines.append(
            f"NUMA-caused by {side:<8}: {n.invalidations:,} invalidations, "
            f"{n.touching_guest_ram:,} touching guest RAM, {n.guest_pages:,} guest pages zapped, "
            f"{n.pages:,} pages of range"
        )
    wrong = check.misattributed
    lines.append(
        f"misattributed (NUMA vs not): {wrong.invalidations:,} invalidations, "
        f"{wrong.guest_pages:,} guest pages, {wrong.pages:,} pages of range"
        + ("  -> exact" if check.exact else "")
    )
    rules = ", ".join(f"{t}/{r} {n:,}" for (t, r), n in sorted(check.rules.items()))
    lines.append(f"rule that decided (stack class/rule): {rules}")
    return "\n".join(lines)


def as_json(trace: str, label: str, check: CauseCheck) -> str:
    def cell(c: Cell) -> dict[str, int]:
        return {
            "invalidations": c.invalidations,
            "touching_guest_ram": c.touching_guest_ram,
            "guest_pages": c.guest_pages,
            "pages": c.pages,
        }

    return json.dumps(
        {
            "trace": trace,
            "syscall_events": label,
            "matrix": [
                {"stack": t, "inferred": g, **cell(c)} for (t, g), c in sorted(check.matrix.items())
            ],
            "numa_by_stack": cell(check.numa("stack")),
            "numa_inferred": cell(check.numa("inferred")),
            "misattributed": cell(check.misattributed),
            "rules": [{"stack": t, "rule": r, "n": n} for (t, r), n in sorted(check.rules.items())],
        }
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("traces", nargs="+")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--without-syscalls", action="store_true")
    group.add_argument("--both", action="store_true", help="with and without syscall events")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    modes = [False, True] if args.both else [args.without_syscalls]
    try:
        with tempfile.TemporaryDirectory(prefix="measure-causes-") as work:
            for trace in args.traces:
                for drop in modes:
                    label = "syscall events removed" if drop else "as recorded"
                    check = measure(trace, drop, work)
                    print(as_json(trace, label, check) if args.json else render(trace, label, check))
                    if not args.json:
                        print()
    except TraceReplayError as e:
        print(f"measure_causes: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
