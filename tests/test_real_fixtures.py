"""Real traces recorded on this machine kind (fixtures/README.md): counts against trace-cmd and grep."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import FIXTURES

TEXT_FIXTURES = ["pinned-threads-6.18.txt", "kvm-pinned-6.18.txt.gz"]

# An independent line classifier (not the reader's code): tracefs layout with
# record-tgid and irq-info, as the recorder writes it.
_LINE = re.compile(r"^\s*.+-\d+\s+\(\s*[-\d]+\)\s+\[\d{3}\]\s+\S{5}\s+\d+\.\d{6}: (\S+?):? ")


def grep_counts(path: Path) -> Counter[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    counts: Counter[str] = Counter()
    with opener(path, "rt", errors="replace") as f:
        for line in f:
            m = _LINE.match(line)
            if m:
                name = m.group(1)
                counts["kernel_stack" if name == "<stack" else name] += 1
    return counts


def db_counts(con) -> dict[str, int]:
    return dict(con.execute("SELECT name, count(*) FROM events GROUP BY name").fetchall())


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_event_counts_equal_trace_cmd_report(name, db_of):
    path = FIXTURES / name
    stem = name.split(".txt")[0]
    reference = json.loads((FIXTURES / f"{stem}.counts.json").read_text())
    con = db_of(str(path))
    assert db_counts(con) == reference["event_counts"]
    assert con.execute("SELECT count(*) FROM lost_events").fetchone() == (reference["lost_events"],)


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_event_counts_equal_grep(name, db_of):
    path = FIXTURES / name
    con = db_of(str(path))
    assert db_counts(con) == dict(grep_counts(path))


@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd is not installed")
@pytest.mark.parametrize("stem", ["pinned-threads-6.18", "kvm-pinned-6.18"])
def test_trace_cmd_report_output_parses_like_tracefs_text(stem, tmp_path, db_of):
    """The same recording read as tracefs text and as `trace-cmd report` text."""
    report = tmp_path / f"{stem}.report.txt"
    with open(report, "w") as out:
        subprocess.run(
            ["trace-cmd", "report", str(FIXTURES / f"{stem}.dat")],
            stdout=out,
            check=True,
            stderr=subprocess.DEVNULL,
        )
    text = next(p for p in (FIXTURES / f"{stem}.txt", FIXTURES / f"{stem}.txt.gz") if p.exists())
    a = db_of(str(text))
    b = db_of(str(report))
    assert db_counts(a) == db_counts(b)
    # identical normalized events apart from tgid (trace-cmd report does not print it)
    # and csd pointers (hashed in tracefs, raw in trace.dat)
    q = (
        "SELECT ts, cpu, pid, comm, name, json_remove(args, '$.csd') AS args, stack "
        "FROM events ORDER BY ts, cpu, seq"
    )
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_pinned_region_gets_no_hint_faults(db_of):
    """6.18 skips maybe-DMA-pinned folios of private mappings (DESIGN §4)."""
    con = db_of(
        str(FIXTURES / "pinned-threads-6.18.txt"),
        manifest=_manifest("pinned-threads-6.18.txt.manifest.toml"),
    )
    by_region = dict(
        con.execute(
            "SELECT region, faults FROM ("
            + _query("page_faults_by_process")
            + ") WHERE tgid = 7424"
        ).fetchall()
    )
    assert by_region.get("pinned", 0) == 0
    assert by_region["unpinned"] == 5263


def test_kvm_invalidations_by_stack_cause(db_of):
    con = db_of(
        str(FIXTURES / "kvm-pinned-6.18.txt.gz"),
        manifest=_manifest("kvm-pinned-6.18.txt.gz.manifest.toml"),
    )
    got = dict(con.execute("SELECT cause, count(*) FROM kvm_unmaps GROUP BY cause").fetchall())
    assert got == {"numa_scan": 78, "other": 16}
    # invalidations that reach guest RAM, computed independently from the raw ranges
    slot = con.execute("SELECT hva_start, hva_end FROM memslots").fetchall()
    assert len(slot) == 1
    lo, hi = slot[0]
    ranges = con.execute(
        "SELECT hva_start, hva_end FROM kvm_unmaps WHERE cause = 'numa_scan'"
    ).fetchall()
    inside = [(max(s, lo), min(e, hi)) for s, e in ranges if s < hi and lo < e]
    assert len(inside) == 7
    total = sum(e - s for s, e in inside)
    row = con.execute(
        "SELECT guest_ram_bytes FROM ("
        + _query("kvm_invalidations")
        + ") WHERE cause = 'numa_scan'"
    ).fetchone()
    assert row == (total,)


def _manifest(name: str):
    from tracereplay.manifest import load_manifest

    return load_manifest(str(FIXTURES / name))


def _query(name: str) -> str:
    from tracereplay.store import load_query

    return load_query(name).sql.rstrip().rstrip(";")


def test_pinned_process_replay_per_pass(tmp_path):
    """The real pinned-threads recording, replayed as a [[process]] (no KVM events at all).

    Reference (fixtures/README.md): 3 NUMA scan passes; in each every one of the 1 024
    unpinned pages takes a hint fault and none of the 15 360 pinned pages does (the vmstat
    check against the host-wide 5 024 PTE updates: tests/test_diagnostics.py).
    """
    import duckdb

    from tracereplay.policies.rules import kernel_prot_sel, rfc_prot_sel
    from tracereplay.reconstruct import reconstruct
    from tracereplay.store import ingest

    db = tmp_path / "p.duckdb"
    ingest(
        str(FIXTURES / "pinned-threads-6.18.txt"),
        str(db),
        manifest=_manifest("pinned-threads-6.18.txt.manifest.toml"),
    )
    con = duckdb.connect(str(db))
    model = reconstruct(con)
    (proc,) = model.processes
    assert proc.tgid == 7424 and proc.kind == "process" and not proc.coverage_assumed
    assert (proc.guest_pages, proc.pinned_pages) == (16_384, 15_360)
    assert proc.pages is not None
    # three task_numa_work calls, each covering the whole 64 MiB region
    assert list(proc.scan_call) == [0, 1, 2]
    assert list(proc.chunks["guest_pages"]) == [16_384] * 3
    run = proc.pages.run("guest", kernel_prot_sel(model.kernel), proc.inv_ts)
    assert list(run.made_pages) == [1_024] * 3  # 6.18 skips the pinned private pages
    assert run.hint_faults == 3 * 1_024
    # RFC patch 2 changes nothing here: 6.18 already skips pinned 4 KiB pages of COW mappings
    rfc = proc.pages.run("unpinned", rfc_prot_sel(model.kernel), proc.inv_ts)
    assert list(rfc.made_pages) == [1_024] * 3 and rfc.hint_faults == 3 * 1_024
    # hint faults per pass, counted independently: distinct unpinned pages faulted after each call
    lo = 0x7F985B200000 + 0x3C00000
    hi = 0x7F985B200000 + 0x4000000
    ts = [int(t) for t in proc.inv_ts] + [1 << 62]
    per_pass = [
        con.execute(
            "SELECT count(DISTINCT address // 4096) FROM page_faults WHERE address >= ? "
            "AND address < ? AND ts >= ? AND ts < ?",
            [lo, hi, a, b],
        ).fetchall()[0][0]
        for a, b in itertools.pairwise(ts)
    ]
    assert per_pass == [1_024] * 3
    pinned_faults = con.execute(
        "SELECT count(*) FROM page_faults WHERE address >= ? AND address < ?",
        [0x7F985B200000, lo],
    ).fetchall()[0][0]
    assert pinned_faults == 0
    con.close()
