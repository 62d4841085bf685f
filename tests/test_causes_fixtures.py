"""The cause rules measured on real stack-recorded traces (fixtures/, docs/CAUSES.md).

Each fixture was recorded here with a stacktrace trigger on kvm_unmap_hva_range
while the lab VMM's churn thread (tracereplay/lab/churn.py) made madvise,
munmap, mprotect and COW activity beside NUMA scans. The stacks are the truth;
check_causes strips them (and, for the second measurement, the syscall events)
and compares. Matrices: (kind by stack, kind by inference) -> (invalidations,
guest pages).
"""

from __future__ import annotations

import shutil

import duckdb
import pytest
from conftest import FIXTURES

from tracereplay.manifest import load_manifest
from tracereplay.reconstruct.cause_check import CauseCheck, check_causes
from tracereplay.store import ingest

# with syscall events: every class exact
MADVISE_EXACT = {
    ("numa_scan", "numa_scan"): (49, 255_488),
    ("madvise", "madvise"): (1_599, 1_631_232),
    ("mprotect", "mprotect"): (10, 0),
    ("munmap", "munmap"): (8, 0),
}
# the same recording without them: 140 madvise ranges that tile the end of guest
# RAM chain onto a scan chunk's end, and 2 real chunks lose their chain
MADVISE_NO_SYSCALLS = {
    ("numa_scan", "numa_scan"): (47, 124_416),
    ("numa_scan", "other"): (2, 131_072),
    ("madvise", "numa_scan"): (140, 143_360),
    ("madvise", "other"): (1_459, 1_487_872),
    ("mprotect", "other"): (10, 0),
    ("munmap", "other"): (8, 0),
}
CHURN_EXACT = {
    ("numa_scan", "numa_scan"): (11, 128_512),
    ("clone", "clone"): (2_420, 0),
    ("cow_fault", "cow_fault"): (4_802, 0),
    # COW faults taken in kernel mode (rseq's put_user on the way back to the guest or
    # to user space) have no page_fault_user event: no evidence, not a scan either
    ("cow_fault", "other"): (35, 0),
    ("madvise", "madvise"): (51, 46_080),
    ("mprotect", "mprotect"): (98, 0),
    ("munmap", "munmap"): (54, 0),
}
CHURN_NO_SYSCALLS = {
    ("numa_scan", "numa_scan"): (11, 128_512),
    ("clone", "other"): (2_420, 0),
    ("cow_fault", "cow_fault"): (4_802, 0),
    ("cow_fault", "other"): (35, 0),
    ("madvise", "other"): (51, 46_080),
    ("mprotect", "other"): (98, 0),
    ("munmap", "other"): (54, 0),
}
# recorded without syscall events (--events numa)
NOSYS = {
    ("numa_scan", "numa_scan"): (44, 131_072),
    ("clone", "other"): (2_239, 0),
    ("cow_fault", "cow_fault"): (4_199, 0),
    ("cow_fault", "other"): (26, 0),
    ("madvise", "other"): (46, 40_960),
    ("mprotect", "other"): (90, 0),
    ("munmap", "other"): (50, 0),
}

CASES = [
    ("kvm-madvise-6.18.txt.xz", False, MADVISE_EXACT),
    ("kvm-madvise-6.18.txt.xz", True, MADVISE_NO_SYSCALLS),
    ("kvm-churn-6.18.txt.xz", False, CHURN_EXACT),
    ("kvm-churn-6.18.txt.xz", True, CHURN_NO_SYSCALLS),
    ("kvm-churn-nosys-6.18.txt.xz", False, NOSYS),
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """One ingest per fixture; each measurement works on a copy (check_causes changes it)."""
    work = tmp_path_factory.mktemp("causes")
    done: dict[str, str] = {}

    def get(name: str, tag: str) -> duckdb.DuckDBPyConnection:
        if name not in done:
            db = work / f"{name}.duckdb"
            trace = FIXTURES / name
            manifest = load_manifest(str(trace) + ".manifest.toml")
            ingest(str(trace), str(db), manifest=manifest)
            done[name] = str(db)
        copy = work / f"{name}.{tag}.duckdb"
        shutil.copy(done[name], copy)
        return duckdb.connect(str(copy))

    return get


@pytest.fixture(scope="module")
def checked(ingested):
    """One measurement per (fixture, syscall events dropped), shared by the tests below."""
    done: dict[tuple[str, bool], CauseCheck] = {}

    def get(name: str, drop: bool) -> CauseCheck:
        if (name, drop) not in done:
            done[(name, drop)] = check_causes(ingested(name, str(drop)), drop_syscalls=drop)
        return done[(name, drop)]

    return get


@pytest.mark.parametrize("name, drop, expected", CASES)
def test_confusion_matrix(checked, name, drop, expected):
    check = checked(name, drop)
    got = {k: (c.invalidations, c.guest_pages) for k, c in check.matrix.items()}
    assert got == expected
    if name.endswith("nosys-6.18.txt.xz"):
        assert not check.summary.syscall_events
    else:
        assert check.summary.syscall_events != drop


@pytest.mark.parametrize("name", ["kvm-madvise-6.18.txt.xz", "kvm-churn-6.18.txt.xz"])
def test_with_syscall_events_numa_causes_equal_the_stacks(checked, name):
    """The issue's must: NUMA-caused invalidations and their pages equal the stack's."""
    check = checked(name, False)
    assert check.exact
    assert check.numa("inferred") == check.numa("stack")
    assert check.numa("stack").invalidations > 0


def test_without_syscall_events_the_misattributed_pages_are_counted(checked):
    check = checked("kvm-madvise-6.18.txt.xz", True)
    wrong = check.misattributed
    assert (wrong.invalidations, wrong.guest_pages) == (142, 274_432)
    stack, inferred = check.numa("stack"), check.numa("inferred")
    assert (stack.invalidations, stack.touching_guest_ram, stack.guest_pages) == (49, 5, 255_488)
    assert (inferred.invalidations, inferred.touching_guest_ram, inferred.guest_pages) == (
        187,
        143,
        267_776,
    )
    # the assumptions analyze prints say which rule decided each class
    lines = check.summary.assumptions()
    assert any("no syscall enter/exit events" in a for a in lines)
    assert any(a.startswith("invalidations classified numa_scan: ") and "by rule chain" in a
               for a in lines)


@pytest.mark.parametrize("ext", ["dat", "perfetto-trace"])
def test_the_rules_give_the_same_matrices_in_every_format(tmp_path, ext):
    """Syscall events, faults and skips read from trace.dat / Perfetto as from the text."""
    from tracereplay.writers import write_perfetto, write_trace_dat

    src = FIXTURES / "kvm-madvise-6.18.txt.xz"
    out = tmp_path / f"t.{ext}"
    (write_trace_dat if ext == "dat" else write_perfetto)(str(src), str(out))
    manifest = load_manifest(str(src) + ".manifest.toml")
    for drop, expected in ((False, MADVISE_EXACT), (True, MADVISE_NO_SYSCALLS)):
        db = tmp_path / f"{drop}.duckdb"
        ingest(str(out), str(db), manifest=manifest)
        check = check_causes(duckdb.connect(str(db)), drop_syscalls=drop)
        assert {k: (c.invalidations, c.guest_pages) for k, c in check.matrix.items()} == expected
