"""The busy-host corpus: traces recorded the way users record (fixtures/busy-host-6.18.*).

Recorded on this machine by ``scripts/record_corpus.py`` (see fixtures/README.md):
two lab VMs (one with a quarter of its RAM io_uring-pinned, one without) and a
pinned non-VM process at once, a compile and a fork/exec loop and other
engineers' jobs beside them, NUMA balancing on, the whole host traced, with a
``stacktrace`` trigger on ``kvm_unmap_hva_range``. The files have no per-event
tgid (trace.dat from ``trace-cmd extract``, tracefs text without
``record-tgid``); their manifest names each VM's tgid, memslots and pins but
no ``tids``.

The reference figures (``.reference.json``) come from the same buffer read
*with* tgids, computed by ``tests/reference_figures.py``, which imports nothing
from tracereplay; ``.tgids.json`` is the true thread -> process map read from
/proc while the workloads ran, a second independent source.

The slow tests (``TRACEREPLAY_SLOW=1``, root, /dev/kvm, tracefs, trace-cmd,
perf) record a large corpus afresh and check it the same way.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import duckdb
import pytest
import reference_figures  # a stand-alone script in tests/: imports nothing from tracereplay
from conftest import FIXTURES, REPO
from corpus_support import POLICIES, analyze, by_tgid, figures, with_tids

STEM = FIXTURES / "busy-host-6.18"
DAT = Path(f"{STEM}.dat")
TEXT = Path(f"{STEM}.txt.xz")
PERF = Path(f"{STEM}.perf.data.xz")
PERF_G = Path(f"{STEM}.perf-g.data.xz")
MANIFEST = Path(f"{DAT}.manifest.toml")
REFERENCE = json.loads(Path(f"{STEM}.reference.json").read_text())
TGIDS = {int(k): int(v) for k, v in json.loads(Path(f"{STEM}.tgids.json").read_text()).items()}



@pytest.fixture(scope="module")
def dat_summary() -> dict[str, Any]:
    return analyze(DAT)


@pytest.fixture(scope="module")
def text_summary() -> dict[str, Any]:
    return analyze(TEXT)


# -- the corpus itself ---------------------------------------------------------


def test_corpus_is_tgid_less_and_its_manifest_has_no_tids():
    m = tomllib.loads(MANIFEST.read_text())
    assert [v["name"] for v in m["vm"]] == ["tr-vmm-pinned", "tr-vmm-plain"]
    assert [p["name"] for p in m["process"]] == ["tr-pinned-app"]
    for entry in [*m["vm"], *m["process"]]:
        assert "tids" not in entry
    pinned, plain = m["vm"]
    assert pinned["pinned"][0]["size"] == 64 << 20 and pinned["memslot"][0]["size"] == 256 << 20
    assert "pinned" not in plain or not plain["pinned"]
    assert m["recording"]["record_tgid"] is False and m["recording"]["stacktrace_trigger"]
    assert m["host"]["numa_balancing"] == 1
    with lzma.open(TEXT, "rt") as f:
        head = [next(f) for _ in range(40)]
    assert not any(re.search(r"-\d+\s+\(\s*[\d-]+\)\s+\[\d+\]", ln) for ln in head)
    # (a trace.dat has no per-event tgid and trace-cmd 3.1.6 extract stores no tgid map)


def test_reference_reproduced_from_the_proc_thread_map():
    """The committed reference (tgid text) equals the one from the tgid-less text + /proc map."""
    manifest = tomllib.loads(MANIFEST.read_text())
    with lzma.open(TEXT, "rt") as f:
        again = reference_figures.reference(f, manifest, TGIDS)
    assert again == REFERENCE
    # every VM was NUMA-scanned in the window, the pinned process took hint faults
    for vm in REFERENCE["vms"].values():
        assert vm["policies"]["baseline"]["kvm_unmap_calls"] >= 1
        assert vm["threads_with_invalidations"] >= 1
    (proc,) = REFERENCE["processes"].values()
    assert proc["hint_fault_pages_unpinned"] > 0 and proc["hint_fault_events_pinned"] == 0


def test_text_and_trace_dat_hold_the_same_events(dat_summary, text_summary):
    counts = json.loads(Path(f"{STEM}.counts.json").read_text())
    assert dat_summary["trace"]["event_counts"] == counts["dat"]
    assert text_summary["trace"]["event_counts"] == counts["text"] == counts["dat"]
    assert dat_summary["trace"]["lost_events"] == 0


def test_vm_figures_equal_reference_when_the_manifest_lists_threads(tmp_path):
    """With ``tids`` (what ``tracereplay record`` writes) the tgid-less trace.dat is exact."""
    manifest = with_tids(MANIFEST, tmp_path / "m.toml", TGIDS)
    got = by_tgid(analyze(DAT, "--manifest", str(manifest)))
    for tgid, ref in REFERENCE["vms"].items():
        assert figures(got[tgid]) == ref["policies"], ref["name"]


# -- what needs the process inference ------------------------------------------



@pytest.mark.parametrize("which", ["dat", "text"])
def test_vm_figures_equal_reference_without_tids(which, dat_summary, text_summary):
    got = by_tgid(dat_summary if which == "dat" else text_summary)
    for tgid, ref in REFERENCE["vms"].items():
        assert figures(got[tgid]) == ref["policies"], ref["name"]



def test_pinned_process_is_replayed(dat_summary):
    ((tgid, ref),) = REFERENCE["processes"].items()
    proc = by_tgid(dat_summary, "processes")[tgid]
    pol = proc["policies"]
    assert set(POLICIES) <= set(pol)
    hints = pol["baseline"]["numa_hint_faults"]["value"]
    # two threads on one PROT_NONE page both fault: events bound it from above
    assert ref["hint_fault_pages_unpinned"] <= hints <= ref["hint_fault_events_unpinned"]
    # 6.18 already skips pinned pages of private mappings, as RFC patch 2 does
    pte = {p: pol[p]["numa_pte_updates"]["value"] for p in POLICIES}
    assert pte["baseline"] == pte["notifier-flag"] == pte["numa-protect"] > 0
    assert pte["per-mm-optout"] == 0



def test_without_manifest_one_vm_per_vmm_process(tmp_path):
    """Each inferred VM groups exactly the traced threads of one VMM process.

    Without tgids or a manifest nothing in the trace names the VMM's process id
    (the vCPU threads were created before the recording), so a VM is named
    after its lowest thread id; its threads are what must be right.
    """
    bare = tmp_path / DAT.name
    shutil.copy(DAT, bare)  # no manifest next to it
    db = tmp_path / "bare.duckdb"
    vms = analyze(bare, "--db", str(db))["vms"]
    assert len(vms) == len(REFERENCE["vms"])
    con = duckdb.connect(str(db), read_only=True)
    invalidating = {
        pid for (pid,) in con.execute("SELECT DISTINCT pid FROM kvm_unmaps").fetchall()
    }
    found = set()
    for vm in vms:
        group = {
            pid
            for (pid,) in con.execute(
                "SELECT DISTINCT pid FROM events WHERE tgid = ?", [vm["tgid"]]
            ).fetchall()
        }
        true_tgids = {TGIDS.get(pid) for pid in group}
        assert len(true_tgids) == 1, (vm["tgid"], group, true_tgids)
        (tgid,) = true_tgids
        assert str(tgid) in REFERENCE["vms"]
        # every thread of that VMM that sent KVM invalidations is in the group
        assert {t for t, g in TGIDS.items() if g == tgid} & invalidating <= group
        found.add(tgid)
    assert len(found) == len(vms)


# -- perf.data of the same window ----------------------------------------------


@pytest.fixture(scope="module")
def perf_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The perf.data files unpacked (the perf reader does not decompress), with manifests."""
    out = tmp_path_factory.mktemp("perf")
    files = {}
    for name, packed in (("perf", PERF), ("perf-g", PERF_G)):
        plain = out / packed.name.removesuffix(".xz")
        with lzma.open(packed) as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copy(f"{packed}.manifest.toml", f"{plain}.manifest.toml")
        files[name] = plain
    return files


@pytest.mark.parametrize("which", ["perf", "perf-g"])
def test_perf_data_finds_both_vms_under_their_pids(which, perf_files):
    """perf samples carry pid and tid: both VMs are found by process id."""
    got = by_tgid(analyze(perf_files[which]))
    assert set(REFERENCE["vms"]) <= set(got)


def test_perf_data_vm_figures_equal_reference(perf_files):
    """Without -g the causes are inferred by rule, and here the rule is right for every one."""
    counts = json.loads(Path(f"{STEM}.counts.json").read_text())
    perf_unmaps = counts["perf"]["busy-host-6.18.perf.data"]["kvm:kvm_unmap_hva_range"]
    assert perf_unmaps == counts["text"]["kvm_unmap_hva_range"]  # the same invalidations
    got = by_tgid(analyze(perf_files["perf"]))
    for tgid, ref in REFERENCE["vms"].items():
        assert figures(got[tgid]) == ref["policies"], ref["name"]


def test_perf_callchain_vm_figures_equal_reference(perf_files):
    got = by_tgid(analyze(perf_files["perf-g"]))
    for tgid, ref in REFERENCE["vms"].items():
        assert figures(got[tgid]) == ref["policies"], ref["name"]


def test_compressed_perf_data_is_read_transparently():
    assert by_tgid(analyze(PERF)).keys() >= REFERENCE["vms"].keys()


# -- memory safety ------------------------------------------------------------


@pytest.fixture(scope="module")
def boundscheck_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # the numba cache does not key on NUMBA_BOUNDSCHECK: compile afresh, once
    cache = tmp_path_factory.mktemp("numba-cache")
    return {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(cache)}


_INGEST_ALL = """
import sys
from tracereplay.store import ingest
for i, path in enumerate(sys.argv[2:]):
    print(path, flush=True)
    ingest(path, f"{sys.argv[1]}/{i}.duckdb")
"""


def ingest_in_child(paths: list[Path], env: dict[str, str], tmp: Path) -> None:
    """Ingest ``paths`` in one child process (one numba compile); no signal may end it."""
    cmd = [sys.executable, "-c", _INGEST_ALL, str(tmp), *map(str, paths)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    last = proc.stdout.strip().splitlines()[-1:] or ["(none)"]
    assert proc.returncode >= 0, f"signal {-proc.returncode} while ingesting {last[0]}"
    assert proc.returncode == 0, proc.stderr[-2000:]


OTHER_FIXTURES = [
    FIXTURES / name
    for name in (
        "kvm-pinned-6.18.dat",
        "kvm-pinned-6.18.txt.gz",
        "pinned-threads-6.18.dat",
        "pinned-threads-6.18.txt",
        "perf-tlb-callchain-6.18.data",
        "perf-tlb-pipe-6.18.data",
    )
]


def test_no_corpus_or_fixture_file_ends_in_a_signal(perf_files, boundscheck_env, tmp_path):
    paths = [DAT, TEXT, *perf_files.values(), *OTHER_FIXTURES]
    ingest_in_child(paths, boundscheck_env, tmp_path)


# -- large corpus, recorded afresh (slow) ---------------------------------------

_ROOT_KVM = (
    os.geteuid() == 0
    and os.access("/dev/kvm", os.R_OK | os.W_OK)
    and Path("/sys/kernel/tracing/available_events").exists()
    and shutil.which("trace-cmd") is not None
    and shutil.which("perf") is not None
)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _ROOT_KVM:
        pytest.skip("recording the corpus needs root, /dev/kvm, tracefs, trace-cmd and perf")
    stem = tmp_path_factory.mktemp("corpus") / "busy-host-large"
    cmd = [sys.executable, str(REPO / "scripts" / "record_corpus.py"), str(stem)]
    cmd += ["--events", "numa", "--seconds", "10", "--buffer-kb", "65536", "--keep-tgid-text"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return stem


def _large(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


@pytest.mark.slow
def test_large_reference_agrees_with_the_proc_map(large):
    manifest = tomllib.loads(_large(large, ".dat.manifest.toml").read_text())
    tgids = json.loads(_large(large, ".tgids.json").read_text())
    with lzma.open(_large(large, ".txt.xz"), "rt") as f:
        again = reference_figures.reference(f, manifest, {int(k): v for k, v in tgids.items()})
    assert again == json.loads(_large(large, ".reference.json").read_text())


@pytest.mark.slow
def test_large_corpus_files_end_in_no_signal(large, boundscheck_env, tmp_path):
    suffixes = (".dat", ".txt.xz", ".perf.data", ".perf-g.data")
    ingest_in_child([_large(large, s) for s in suffixes], boundscheck_env, tmp_path)


@pytest.mark.slow
def test_large_vm_figures_equal_reference_with_thread_lists(large, tmp_path):
    tgids = json.loads(_large(large, ".tgids.json").read_text())
    manifest = with_tids(
        _large(large, ".dat.manifest.toml"),
        tmp_path / "m.toml",
        {int(k): v for k, v in tgids.items()},
    )
    got = by_tgid(analyze(_large(large, ".dat"), "--manifest", str(manifest)))
    ref = json.loads(_large(large, ".reference.json").read_text())
    for tgid, vm in ref["vms"].items():
        assert figures(got[tgid]) == vm["policies"], vm["name"]


@pytest.mark.slow

def test_large_vm_figures_equal_reference_without_tids(large):
    got = by_tgid(analyze(_large(large, ".dat")))
    ref = json.loads(_large(large, ".reference.json").read_text())
    for tgid, vm in ref["vms"].items():
        assert figures(got[tgid]) == vm["policies"], vm["name"]
