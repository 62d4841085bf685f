"""Page-level presence / PROT_NONE replay, page_timeline() and the page named queries.

Hand-written cases pin each rule of tracereplay.reconstruct.pages (trace-start
state, zaps of present SPTEs only, refaults vs first touches, hint faults,
THP units); a synthetic trace checks the macro and the named queries against
the generator's independent truth.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from tracereplay.manifest import load_manifest
from tracereplay.pipeline import analyze
from tracereplay.reconstruct.pages import PageModel
from tracereplay.store import named_queries
from tracereplay.synth import generate, load_scenario

K = 4096
HVA = 0x7F0000000000
SLOT = [(HVA, HVA + 8 * K, 0, False, False)]  # 8 guest pages, GPA 0


def _model(invs, flushes, faults, slots=SLOT, pinned=()):
    lo = np.array([a for a, _ in invs], np.int64)
    hi = np.array([b for _, b in invs], np.int64)
    ts = np.array([t for t, _ in faults], np.int64) if faults is not None else None
    gpa = np.array([g for _, g in faults], np.int64) if faults is not None else None
    return PageModel(list(slots), list(pinned), lo, hi, np.array(flushes, np.int64), ts, gpa)


def test_assumed_mode_takes_every_page_present_and_touched():
    m = _model([(HVA, HVA + 8 * K), (HVA, HVA + 4 * K)], [1, 1], None)
    r = m.run("guest", "guest", np.array([10, 20]))
    assert r.zapped_pages.tolist() == [8, 4] and r.made_pages.tolist() == [8, 4]
    assert r.hint_faults == 12 and r.refaults == 12


def test_observed_presence_zaps_and_refaults():
    # scan 1 at t=10 (flushed) over 8 pages; page 0 and 1 touched at 15; scan 2 at 20
    # page 2 first faults at 5, before any scan: it was not present at trace start
    m = _model(
        [(HVA, HVA + 8 * K), (HVA, HVA + 8 * K)],
        [1, 1],
        [(5, 2 * K), (15, 0), (15, K), (25, 0)],
    )
    r = m.run("guest", "guest", np.array([10, 20]))
    # scan 1: all 8 present (page 2 faulted at 5); scan 2: pages 0 and 1 refaulted at 15
    assert r.zapped_pages.tolist() == [8, 2]
    # PROT_NONE: 8 at scan 1; scan 2 re-protects only pages 0 and 1 (hint-faulted at 15)
    assert r.made_pages.tolist() == [8, 2]
    # faults at 15 (x2) and 25 follow a zap of a present SPTE; the fault at 5 is a first touch
    assert r.refaults == 3 and r.hint_faults == 3


def test_unflushed_first_invalidation_means_not_present_at_start():
    # scan 1 sent no KVM flush (the VM's flushes are traced: scan 2 flushed) -> the
    # pages had no SPTE: page 0 touched at 15 is a first touch, not a refault
    m = _model([(HVA, HVA + 4 * K), (HVA, HVA + 4 * K)], [0, 1], [(15, 0)])
    r = m.run("guest", "guest", np.array([10, 20]))
    assert r.zapped_pages.tolist() == [0, 1]
    assert r.refaults == 0 and r.hint_faults == 1


def test_unpinned_selection_and_thp_units():
    slots = [(HVA, HVA + 4 * 512 * K, 0, False, True)]  # 4 PMDs, THP
    pinned = [(HVA, HVA + 512 * K)]  # the first PMD pinned
    m = _model([(HVA, HVA + 4 * 512 * K)], [1], [(15, 3 * 512 * K)], slots, pinned)
    r = m.run("unpinned", "unpinned", np.array([10]))
    assert r.zapped_units.tolist() == [3] and r.zapped_pages.tolist() == [3 * 512]
    assert r.made_units.tolist() == [3] and r.made_huge.tolist() == [3]
    assert r.made_pages.tolist() == [3 * 512]
    assert r.hint_faults == 1 and r.refaults == 1
    # 5.17..6.18 do not check pins for huge PMDs: the pinned THP is protected too
    r = m.run("guest", "no_private_pinned_4k", np.array([10]))
    assert r.made_huge.tolist() == [4]


def _random_case(seed: int):
    """A 4 KiB and a THP memslot, a pinned range, overlapping scans and faults at random."""
    rng = np.random.default_rng(seed)
    slots = [
        (HVA, HVA + 64 * K, 0, False, False),
        (HVA + 1024 * K, HVA + 3072 * K, 1 << 30, True, True),
    ]
    pinned = [(HVA + 8 * K, HVA + 24 * K), (HVA + 1024 * K, HVA + 1536 * K)]
    n_inv = 40
    lo = HVA + rng.integers(0, 3072, n_inv) * K
    hi = lo + rng.integers(1, 2048, n_inv) * K
    inv_ts = np.sort(rng.integers(0, 10_000, n_inv))
    flush = rng.integers(0, 2, n_inv)
    n_f = 3000
    gpa = np.where(
        rng.random(n_f) < 0.5,
        rng.integers(0, 70, n_f) * K,
        (1 << 30) + rng.integers(0, 2048, n_f) * K,
    )
    f_ts = rng.integers(0, 10_000, n_f)
    mig = rng.integers(0, 2, (n_f, 3))
    return slots, pinned, lo, hi, inv_ts, flush, f_ts, gpa, mig


def _runs(model, inv_ts):
    sels = ("guest", "unpinned", "no_private_pinned", "no_private_pinned_4k", "none")
    out = []
    for z in sels:
        for p in sels:
            r = model.run(z, p, inv_ts)
            out.append(
                (
                    r.zapped_units.tolist(),
                    r.zapped_pages.tolist(),
                    r.made_units.tolist(),
                    r.made_pages.tolist(),
                    r.made_huge.tolist(),
                    r.hint_faults,
                    r.refaults,
                    r.migrations,
                )
            )
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_blockwise_replay_equals_whole_replay(seed, monkeypatch):
    """Cutting the faults into blocks (and blocks into sub-blocks) changes no count,
    whether the faults are in memory or stream from a DuckDB table."""
    from tracereplay.reconstruct.faults import ArrayFaults, TableFaults, gpa_units, slot_layout

    slots, pinned, lo, hi, inv_ts, flush, f_ts, gpa, mig = _random_case(seed)
    whole = PageModel(slots, pinned, lo, hi, flush, f_ts, gpa, mig)
    expected = _runs(whole, inv_ts)
    assert any(r[5] for r in expected) and any(r[6] for r in expected)  # faults do matter
    unit = gpa_units(slot_layout(slots), gpa)
    small = PageModel(slots, pinned, lo, hi, flush, faults=ArrayFaults(unit, f_ts, mig, block=37))
    monkeypatch.setattr(PageModel, "EVENT_BUDGET", 50)
    assert _runs(small, inv_ts) == expected
    con = duckdb.connect()
    i = np.arange(len(unit))
    t = pa.table(
        {"unit": unit, "ts": f_ts, "ok": mig[:, 0], "fail": mig[:, 1], "pages": mig[:, 2], "i": i}
    )
    con.register("t", t)
    con.execute(
        "CREATE TEMP TABLE f AS SELECT unit, ts, ok, fail, pages FROM t WHERE unit >= 0 ORDER BY unit, ts, i"
    )
    streamed = PageModel(slots, pinned, lo, hi, flush, faults=TableFaults(con, "f", block=101))
    assert _runs(streamed, inv_ts) == expected


def test_manifest_thp_key(write):
    text = (
        "[[vm]]\ntgid = 1\nname = 'q'\n[[vm.memslot]]\nhva_start = 0x7f0000000000\n"
        "size = 0x40000000\ngpa_start = 0\nthp = true\n"
    )
    (vm,) = load_manifest(write("m.toml", text)).vms
    assert vm.ranges[0].thp
    from tracereplay.errors import ManifestError

    with pytest.raises(ManifestError, match="thp"):
        load_manifest(write("bad.toml", text.replace("thp = true", "thp = 1")))


@pytest.fixture(scope="module")
def synth_db(tmp_path_factory):
    d = tmp_path_factory.mktemp("pages")
    out = d / "vpp.txt"
    result = generate(load_scenario("vfio-partial-pin"), str(out))
    db = d / "vpp.duckdb"
    analysis = analyze(str(out), manifest=str(out) + ".manifest.toml", db=str(db))
    con = duckdb.connect(str(db), read_only=True)
    yield con, analysis.vms[0], result.truth["vms"][0]["policies"]["baseline"]
    con.close()


def _q(con, name):
    q = named_queries()[name]
    cur = con.execute(q.sql)
    assert [d[0] for d in cur.description] == list(q.columns)
    cols = list(q.columns)
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def test_page_timeline_macro(synth_db):
    con, vm, _truth = synth_db
    (page,) = con.execute(
        "SELECT page_hva FROM ("
        + named_queries()["hint_faults_per_page"].sql.rstrip().rstrip(";")
        + ") WHERE hint_faults > 0 LIMIT 1"
    ).fetchone()
    rows = con.execute(
        "SELECT ts, kind, source_table FROM page_timeline(?, ?)", [vm.tgid, page + 123]
    ).fetchall()
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    kinds = {r[1] for r in rows}
    assert {"numa_scan", "hint_fault"} <= kinds
    assert {r[2] for r in rows} <= {"kvm_unmaps", "kvm_faults", "page_faults", "migrations"}
    # each hint fault follows a NUMA scan of the page
    seq = [r[1] for r in rows]
    for i, k in enumerate(seq):
        if k == "hint_fault":
            assert "numa_scan" in seq[:i]
    # a pinned page (first quarter of guest RAM, private, 6.18) is never made
    # PROT_NONE: its NUMA faults are SPTE refaults only
    (pinned,) = con.execute(
        "SELECT page_hva FROM ("
        + named_queries()["hint_faults_per_page"].sql.rstrip().rstrip(";")
        + ") WHERE pinned AND numa_faults > 0 LIMIT 1"
    ).fetchone()
    kinds = [
        r[0]
        for r in con.execute(
            "SELECT kind FROM page_timeline(?, ?)", [vm.tgid, pinned]
        ).fetchall()
    ]
    assert "refault" in kinds and "hint_fault" not in kinds
    # a page outside guest RAM has no vCPU faults
    heap = con.execute(
        "SELECT count(*) FROM page_timeline(?, ?) WHERE source_table = 'kvm_faults'",
        [vm.tgid, 0x55D040000000],
    ).fetchone()
    assert heap == (0,)


def test_scan_queries_agree_with_the_replay(synth_db):
    con, vm, _truth = synth_db
    base = vm.policies["baseline"]
    (summary,) = _q(con, "vm_scan_summary")
    assert summary["numa_invalidations"] == base["numa_invalidations"].shown
    covered = con.execute("SELECT sum(guest_pages) FROM invalidation_pages").fetchone()[0]
    assert summary["guest_pages_covered"] == covered
    by_cause = {r["cause"]: r for r in _q(con, "invalidations_by_cause")}
    assert by_cause["numa_scan"]["invalidations"] == base["numa_invalidations"].shown
    assert by_cause["numa_scan"]["touching_guest_ram"] == base["kvm_unmap_calls"].shown
    passes = _q(con, "pages_zapped_per_pass")
    assert len(passes) == summary["scan_passes"]
    assert sum(p["guest_pages_zapped"] for p in passes) == covered
    runs = _q(con, "pages_zapped_most_often")
    assert sum(r["pages"] * r["times_zapped"] for r in runs) == covered
    assert runs[0]["times_zapped"] == max(r["times_zapped"] for r in runs) <= summary["scan_passes"]


def test_hint_faults_per_page_matches_the_truth(synth_db):
    con, _vm, truth = synth_db
    pages = _q(con, "hint_faults_per_page")
    # no booting guest here: every NUMA fault is an SPTE refault (generator's truth)
    assert sum(p["numa_faults"] for p in pages) == truth["spte_refaults"]["value"]
    assert sum(p["hint_faults"] for p in pages) == truth["numa_hint_faults"]["value"]
    assert all(p["hint_faults"] == 0 for p in pages if p["pinned"])  # 6.18, private RAM


def test_fault_table_equals_the_in_memory_mapping():
    """create_fault_table (SQL gpa -> unit, ASOF migration attribution) gives the rows the
    numpy mapping gives, overlapping GPA ranges included (the later memslot wins in both)."""
    from tracereplay.reconstruct.faults import (
        bounded_memory,
        create_fault_table,
        gpa_units,
        slot_layout,
    )

    slots = [
        (HVA, HVA + 64 * K, 0, False, False),
        (HVA + 1024 * K, HVA + 3072 * K, 16 * K, False, True),
    ]
    layout = slot_layout(slots)
    rng = np.random.default_rng(5)
    n = 500
    gpa = rng.integers(0, 2600, n) * K  # the THP slot's GPA range ends at page 2052
    pid = rng.integers(1, 4, n)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE kvm_faults (seq BIGINT, ts BIGINT, pid INTEGER, tgid INTEGER, kind VARCHAR, gpa UBIGINT)"
    )
    con.execute(
        "CREATE TABLE migrations (seq BIGINT, pid INTEGER, tgid INTEGER, reason VARCHAR, failed INTEGER, succeeded INTEGER)"
    )
    con.executemany(
        "INSERT INTO kvm_faults VALUES (?, ?, ?, 7, 'page_fault', ?)",
        [(2 * i, 1000 + i // 3, int(pid[i]), int(gpa[i])) for i in range(n)],
    )
    # a migration after every 7th fault, by the same thread: attributed to that fault
    migs = [(2 * i + 1, int(pid[i]), 7, "numa_misplaced", i % 2, 1 - i % 2) for i in range(0, n, 7)]
    con.executemany("INSERT INTO migrations VALUES (?, ?, ?, ?, ?, ?)", migs)
    con.execute("SET preserve_insertion_order = false")  # the stream must not depend on it
    with bounded_memory(con):
        table = create_fault_table(con, 7, layout, "_f")
    assert (
        con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0] is False
    )
    units = gpa_units(layout, gpa)
    ts = 1000 + np.arange(n) // 3
    ok = np.zeros(n, np.int64)
    fail = np.zeros(n, np.int64)
    for seq, p, _t, _r, failed, _s in migs:
        # the latest fault of the same thread before the migration
        i = max(j for j in range(n) if 2 * j < seq and pid[j] == p)
        (fail if failed else ok)[i] += 1
    keep = units >= 0
    assert 0 < keep.sum() < n
    order = np.lexsort((np.arange(n), ts, units))  # (unit, ts, event order)
    want = [(int(units[i]), int(ts[i]), int(ok[i]), int(fail[i])) for i in order if keep[i]]
    got = [
        (int(u), int(t), int(o), int(f))
        for b in table.blocks()
        for u, t, (o, f, _p) in zip(b.unit, b.ts, b.mig, strict=True)
    ]
    assert got == want
    assert table.migration_totals()[:2].tolist() == [int(ok[keep].sum()), int(fail[keep].sum())]


def test_fault_blocks_out_of_order_are_refused():
    from tracereplay.reconstruct.faults import FaultBlock

    class Shuffled:
        def blocks(self):
            yield FaultBlock(np.array([3, 1]), np.array([10, 20]), np.zeros((2, 3), np.int64))

        def migration_totals(self):
            return np.zeros(3, np.int64)

    m = PageModel(
        SLOT, [], np.array([HVA]), np.array([HVA + 8 * K]), np.array([1]), faults=Shuffled()
    )
    with pytest.raises(RuntimeError, match="order"):
        m.run("guest", "guest", np.array([5]))


def test_bounded_memory_restores_the_settings():
    from tracereplay.reconstruct.faults import bounded_memory

    con = duckdb.connect()

    def settings():
        return con.execute(
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
        ).fetchall()[0]

    default = settings()
    with bounded_memory(con):
        assert settings()[0] != default[0]
    assert settings() == default
    con.execute("SET memory_limit = '1GB'")
    before = settings()
    with bounded_memory(con):
        pass
    # an explicit limit comes back as displayed (to 0.1 MiB)
    assert settings()[1] == before[1] and settings()[0].startswith("953.")
