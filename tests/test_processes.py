"""Process model: traces without per-event tgids give the figures of the same recording with them.

The tgid-less variants are made the way users get them: tracefs text without
``record-tgid`` (``comm-pid [cpu]`` instead of ``comm-pid (tgid) [cpu]``), a
trace.dat written from it (no saved tgids: the reader guesses tgid = pid), the
threads created before the recording (no ``task_newtask`` / fork events), and a
manifest without ``tids``.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from tracereplay.synth import generate, load_scenario

KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
PINNED = FIXTURES / "pinned-threads-6.18.txt"
_TGID = re.compile(r"^(\s*.+?-\d+)\s+\(\s*[-\d]+\)\s+(\[\d{3}\])")
_CREATION = ("task_newtask:", "sched_process_fork:")


def strip_tgids(src: Path, dst: Path, *, drop_creation: bool = True) -> Path:
    """``src`` as tracefs prints it without record-tgid (and without thread creation)."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as f, open(dst, "w") as out:
        for line in f:
            if drop_creation and any(c in line for c in _CREATION):
                continue
            out.write(_TGID.sub(r"\1 \2", line))
    return dst


def manifest_without_tids(src: Path, dst: Path) -> Path:
    dst.write_text(re.sub(r"^tids = .*\n", "", src.read_text(), flags=re.M))
    return dst


def analyze_json(trace: Path, *extra: str) -> dict:
    r = run_cli("analyze", str(trace), "--format", "json", *extra)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def policies(entries: list[dict]) -> dict:
    return {e["tgid"]: e["policies"] for e in entries if e.get("policies")}


def to_dat(text: Path, tmp_path: Path) -> Path:
    out = tmp_path / (text.stem + ".dat")
    r = run_cli("convert", str(text), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def kvm_reference() -> dict:
    return analyze_json(KVM)


@pytest.mark.parametrize("fmt", ["txt", "dat"])
def test_kvm_vm_found_from_memslots_without_tgids(fmt, tmp_path, kvm_reference):
    """A manifest naming the VM's tgid and memslots is enough: the figures equal the reference."""
    bare = strip_tgids(KVM, tmp_path / "kvm.txt")
    trace = bare if fmt == "txt" else to_dat(bare, tmp_path)
    manifest = manifest_without_tids(
        Path(str(KVM) + ".manifest.toml"), tmp_path / "kvm.manifest.toml"
    )
    got = analyze_json(trace, "--manifest", str(manifest))
    assert policies(got["vms"]) == policies(kvm_reference["vms"])
    # the vCPU threads are assigned by inference, and the assumptions say so
    assert any(
        "tr-vcpu-0" in a and "assumed to belong to process 7550" in a for a in got["assumptions"]
    )
    assert not [w for w in got["warnings"] if w["code"] == "threads-without-process"]


def test_one_vm_per_vmm_process_without_a_manifest(tmp_path):
    bare = strip_tgids(KVM, tmp_path / "kvm.txt")
    got = analyze_json(bare)
    (vm,) = got["vms"]  # not one "VM" per vCPU thread
    assert vm["tgid"] == 7550 and vm["name"] == "tr-kvm-vmm"
    assert vm["guest_ram_bytes"] == 0x7FCCEAA00000 - 0x7FCCCA200000  # as with tgids


def test_pinned_process_without_tgids_equals_with(tmp_path):
    reference = analyze_json(PINNED)
    bare = strip_tgids(PINNED, tmp_path / "pinned.txt")
    manifest = Path(str(PINNED) + ".manifest.toml")
    for trace in (bare, to_dat(bare, tmp_path), FIXTURES / "pinned-threads-6.18.dat"):
        got = analyze_json(trace, "--manifest", str(manifest))
        assert policies(got["processes"]) == policies(reference["processes"]), trace


@pytest.mark.parametrize(
    "name, ext",
    [
        ("gpu-pinned-buffers", "txt"),
        ("gpu-pinned-buffers", "dat"),
        ("gpu-pinned-buffers", "perfetto-trace"),
        ("vfio-partial-pin", "txt"),
        ("vm-and-proc-6.18", "dat"),
    ],
)
def test_synth_truth_without_tgids(name, ext, tmp_path):
    """Generated trace, tgid column removed, manifest without tids: still the exact truth.

    ``vm-and-proc-6.18``: a VM and a pinned process whose layouts coincide (the generator
    does not randomize them): the VM's threads are found by their KVM invalidations, the
    process's by its user faults and its name.
    """
    from test_synth_truth import PROCESSES, _mixed

    src = tmp_path / f"{name}.txt"
    sc = _mixed(name, PROCESSES[name]) if name in PROCESSES else load_scenario(name)
    result = generate(sc, str(src))
    bare = strip_tgids(src, tmp_path / "bare.txt")
    trace = bare
    if ext != "txt":
        trace = tmp_path / f"bare.{ext}"
        r = run_cli("convert", str(bare), "-o", str(trace))
        assert r.exit_code == 0, r.stderr
    manifest = manifest_without_tids(
        Path(str(src) + ".manifest.toml"), Path(str(trace) + ".manifest.toml")
    )
    assert "tids" not in manifest.read_text()
    got = analyze_json(trace)
    for section in ("vms", "processes"):
        have = policies(got[section])
        for want in result.truth[section]:
            for policy, metrics in want["policies"].items():
                for metric, v in metrics.items():
                    assert have[want["tgid"]][policy][metric]["value"] == v["value"], (
                        section,
                        policy,
                        metric,
                    )


HEADER = "# tracer: nop\n"
VMA = (0x7F0000000000, 0x7F0000200000)


def _line(pid: int, tgid: int | None, cpu: int, ts: float, body: str) -> str:
    group = f"({tgid:>7})" if tgid is not None else "(-------)"
    return f"{'t' + str(pid):>16}-{pid:<7} {group} [{cpu:03d}] ..... {ts:12.6f}: {body}\n"


def _skip(pid: int, tgid: int | None, ts: float, vma=VMA, reason: str = "shared_ro") -> str:
    return _line(
        pid,
        tgid,
        0,
        ts,
        f"sched_skip_vma_numa: numa_scan_offset=0 vm_start={vma[0]:X} vm_end={vma[1]:X} "
        f"reason={reason}",
    )


def _model(tmp_path: Path, text: str, manifest=None):
    import duckdb

    from tracereplay.reconstruct import reconstruct
    from tracereplay.store import ingest

    trace = tmp_path / "t.txt"
    trace.write_text(HEADER + text)
    db = tmp_path / "t.duckdb"
    ingest(str(trace), str(db), manifest=manifest)
    con = duckdb.connect(str(db))
    model = reconstruct(con)
    rows = con.execute("SELECT pid, tgid, rule, basis FROM thread_processes").fetchall()
    con.close()
    return model, {p: (t, r, b) for p, t, r, b in rows}


def test_threads_skipping_the_same_vma_share_a_process(tmp_path):
    model, threads = _model(tmp_path, _skip(101, None, 1.0) + _skip(105, None, 2.0))
    assert threads[101] == (101, "lowest_thread", "assumed")
    assert threads[105] == (101, "lowest_thread", "assumed")
    (group,) = model.threads.groups
    assert group.rules == {"same_vma": 1}


def test_a_vma_of_two_known_processes_is_no_evidence(tmp_path):
    """A fork shares its parent's layout: identical VMAs of two known processes join nothing."""
    text = _skip(200, 200, 1.0) + _skip(300, 300, 2.0) + _skip(400, None, 3.0)
    model, threads = _model(tmp_path, text)
    assert threads[200][0] == 200 and threads[300][0] == 300
    assert 400 not in threads  # still unknown: counted as a process of its own
    assert model.threads.unknown == {400: ("t400", 0, 1)}


def _shootdown(sender: int, target_cpu: int, receiver: int, ts: float) -> str:
    return _line(
        sender,
        None,
        0,
        ts,
        f"csd_queue_cpu: cpu={target_cpu} callsite=on_each_cpu_cond_mask+0x20/0x60 "
        "func=flush_tlb_func csd=000000001c7914a0",
    ) + _line(
        receiver, None, target_cpu, ts + 0.00001, "tlb_flush: pages:1 reason:remote shootdown (1)"
    )


@pytest.mark.parametrize("times, grouped", [(1, False), (2, True)])
def test_shootdown_targets_share_the_senders_mm(tmp_path, times, grouped):
    """x86 IPIs only CPUs with the mm loaded: seen twice, the receiver shares the sender's mm."""
    text = "".join(_shootdown(501, 1, 502, 1.0 + k) for k in range(times))
    _, threads = _model(tmp_path, text)
    assert (threads.get(502, (None,))[0] == 501) is grouped


def test_manifest_ranges_and_comm_pick_the_process(tmp_path):
    """Two manifest VMs with overlapping memslots: the thread's comm decides, else ambiguous."""
    from tracereplay.manifest import parse_manifest

    slot = {"hva_start": 0x7F0000000000, "size": 0x40000000}
    manifest = parse_manifest(
        {
            "vm": [
                {"tgid": 10, "name": "t77", "memslot": [slot]},
                {"tgid": 20, "name": "qemu-b", "memslot": [slot]},
            ]
        }
    )
    unmap = "kvm_unmap_hva_range: mmu notifier unmap range: 0x7f0000000000 -- 0x7f0000200000"
    text = _line(77, None, 0, 1.0, unmap) + _line(88, None, 0, 2.0, unmap)
    model, threads = _model(tmp_path, text, manifest)
    assert threads[77] == (10, "manifest_ranges", "assumed")
    assert 88 not in threads and model.threads.ambiguous == {88: [10, 20]}


def test_process_coverage_follows_the_kernel_walk():
    """Coverage = [offset, next offset) minus skipped VMAs; a wrap runs to the end; a forced
    retry (every VMA left was pid_inactive) walks again from the offset; a call seen only by
    its flushes takes one scan-size range, backwards from the next reported offset."""
    from tracereplay.reconstruct.process_scan import ScanCall, coverage

    mib = 1 << 20
    region = [(1000 * mib, 2000 * mib)]
    libs, stack = (10 * mib, 20 * mib), (3000 * mib, 3010 * mib)
    calls = [
        ScanCall(1, 0, 0, 0, [[libs]], 20 * mib, ts=0),
        ScanCall(1, 1, 1, 1200 * mib, [[stack]], 3010 * mib, ts=1),
        # the region VMA was pid_inactive, the walk reached the end: forced retry scans it
        ScanCall(2, 2, 2, 0, [[libs, region[0], stack], [libs]], 3010 * mib, ts=2),
        ScanCall(2, 3, 3, 0, [[]], 0, ts=3, visible=False),  # flushes only
        ScanCall(2, 4, 4, 1512 * mib, [[stack]], 3010 * mib, ts=4),
    ]
    cov = coverage(calls, region, scan_bytes=256 * mib)
    got = [
        (int(k), int(a) // mib, int(b) // mib)
        for k, a, b in zip(cov.chunk_call, cov.chunk_lo, cov.chunk_hi, strict=True)
    ]
    assert got == [
        (0, 1000, 1200),  # [0, 1200) of the region: the next call starts at 1200
        (1, 1200, 2000),  # the next call starts at 0: a wrap, to the end
        (2, 1000, 1256),  # the forced walk, up to where the hidden call started
        (3, 1256, 1512),  # one ALIGN(256 MiB, 2 MiB) range backwards from 1512
        (4, 1512, 2000),  # the last call reported a VMA past the region: no assumption
    ]
    assert not cov.tail_assumed and cov.split_assumed


def test_calls_from_skip_events():
    """One call = one thread's skips < 50 ms apart; a VMA reported again starts the forced
    retry's walk; ignore_pid_inactive is printed for a VMA that is scanned; the entry offset
    is the one printed before any seq_completed skip moved it (or, when one came first, the
    start of its VMA)."""
    import numpy as np

    from tracereplay.reconstruct.process_scan import _calls

    ms = 1_000_000
    events = [  # ts, pid, vm_start, vm_end, offset, reason
        (0, 1, 10, 20, 5, "shared_ro"),
        (1, 1, 30, 40, 5, "pid_inactive"),
        (2, 1, 10, 20, 5, "shared_ro"),  # reported again: the forced walk
        (60 * ms, 1, 50, 60, 60, "seq_completed"),  # 60 ms later: a new call
        (60 * ms + 1, 1, 70, 80, 60, "ignore_pid_inactive"),
        (60 * ms + 2, 2, 90, 95, 60, "inaccessible"),  # another thread: a new call
    ]
    cols = list(zip(*events, strict=True))
    names = ("ts", "pid", "vm_start", "vm_end", "numa_scan_offset", "reason")
    calls = _calls({n: np.array(c) for n, c in zip(names, cols, strict=True)})
    assert [(c.pid, c.entry, c.walks, c.furthest) for c in calls] == [
        (1, 5, [[(10, 20), (30, 40)], [(10, 20)]], 40),
        (1, 50, [[(50, 60)]], 80),  # seq_completed printed its VMA's end: entry <= its start
        (2, 60, [[(90, 95)]], 95),
    ]


def test_manifest_vm_without_memslots_takes_the_only_unattributed_kvm_threads(tmp_path):
    """The recorder may name a VM without memslots; its vCPU threads (no tgid) then have
    nothing tying them to it but being the only threads of unknown process scanning a VM."""
    from tracereplay.manifest import parse_manifest

    manifest = parse_manifest({"vm": [{"tgid": 100, "name": "vmm"}]})
    text = ""
    for k, pid in enumerate((101, 102, 101, 102)):
        lo = 0x7F0000000000 + k * 0x10000000
        text += _skip(
            pid, None, 1.0 + k, vma=(0x55D000000000 + 0x1000 * pid, 0x55D000001000 + 0x1000 * pid)
        )
        text += _line(
            pid,
            None,
            0,
            1.0 + k + 1e-6,
            f"kvm_unmap_hva_range: mmu notifier unmap range: {lo:#x} -- {lo + 0x10000000:#x}",
        )
    model, threads = _model(tmp_path, text, manifest)
    assert threads[101] == (100, "only_candidate", "assumed")
    assert threads[102] == (100, "only_candidate", "assumed")
    assert [vm.tgid for vm in model.vms] == [100]


def test_every_table_of_events_gets_the_resolved_tgids():
    """processes._fill writes resolved tgids into every table of events (a typed table
    left out keeps the reader's guess, and its rows are counted as filled events late:
    csd_queues was, at first). invalidation_pages is built after, from kvm_unmaps."""
    from tracereplay.reconstruct.processes import TABLES as FILLED
    from tracereplay.store.schema import TABLES

    with_tgids = {
        t for t, (_doc, cols) in TABLES.items() if {"ts", "pid", "tgid"} <= {c[0] for c in cols}
    }
    assert with_tgids - {"invalidation_pages"} == set(FILLED)
