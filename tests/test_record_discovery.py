"""VMM discovery and manifest facts from /proc, on fake /proc trees (no root needed).

A fake tree has, per pid, ``comm``, ``stat``, ``status``, ``maps``, ``task/TID``
directories and ``fd/N`` symlinks whose targets are what the kernel shows
(``anon_inode:kvm-vm``, ``anon_inode:kvm-vcpu:0``, ...): dangling links, which
``readlink`` reads like the real ones. The lab layout memfd is tested on a real
child process, since its content is read through the fd.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from tracereplay.errors import ManifestError
from tracereplay.lab.layout import LAB_MEMFD
from tracereplay.manifest import parse_manifest
from tracereplay.record.manifest_out import manifest_text
from tracereplay.record.procfs import (
    KvmProcess,
    ProcSnapshot,
    fd_links,
    find_kvm_processes,
    find_pinning_processes,
    lab_info,
    start_time,
    thread_ids,
)
from tracereplay.record.targets import NO_RAM, descendants, discover_targets, vm_facts

MAPS = "7f2c63800000-7f2c73800000 rw-p 00000000 00:00 0 \n7ffd0000-7ffd1000 r-xp 0 00:00 0 [vdso]\n"


def fake_pid(
    proc: Path,
    pid: int,
    comm: str,
    *,
    fds: dict[int, str] | None = None,
    tids: list[int] | None = None,
    ppid: int = 1,
    started: int = 1000,
    vm_pin_kib: int = 0,
    vm_lck_kib: int = 0,
) -> Path:
    d = proc / str(pid)
    (d / "fd").mkdir(parents=True, exist_ok=True)
    (d / "task").mkdir(exist_ok=True)
    (d / "comm").write_text(comm + "\n")
    # comm in stat may hold spaces and parentheses; fields after it: state ppid ...
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(started)] + ["0"] * 10
    (d / "stat").write_text(f"{pid} ({comm} (x) y) {' '.join(rest)}\n")
    (d / "status").write_text(
        f"Name:\t{comm}\nVmLck:\t{vm_lck_kib:>8} kB\nVmPin:\t{vm_pin_kib:>8} kB\nThreads:\t1\n"
    )
    (d / "maps").write_text(MAPS)
    for tid in tids or [pid]:
        (d / "task" / str(tid)).mkdir(exist_ok=True)
    for fd, target in (fds or {}).items():
        os.symlink(target, d / "fd" / str(fd))
    return d


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()  # non-numeric entries are ignored
    fake_pid(root, 1, "init", fds={0: "/dev/null"})
    vcpus = {5: "anon_inode:kvm-vm", 6: "anon_inode:kvm-vcpu:0", 7: "anon_inode:kvm-vcpu:0"}
    vcpus |= {8: "anon_inode:kvm-vcpu:1", 4: "/dev/kvm", 3: "anon_inode:[io_uring]"}
    fake_pid(root, 100, "cloud-hyperviso", fds=vcpus, tids=[100, 101, 102], vm_pin_kib=65536)
    fake_pid(root, 200, "firecracker", fds={3: "anon_inode:kvm-vm", 4: "anon_inode:kvm-vm"})
    fake_pid(root, 300, "gpu-worker", fds={3: "anon_inode:[io_uring]"}, vm_pin_kib=4096)
    fake_pid(root, 400, "bash", ppid=1)
    fake_pid(root, 401, "make", ppid=400)
    fake_pid(root, 402, "cc1", ppid=401)
    return root


def test_fd_links_and_kvm_processes(proc):
    assert fd_links(100, proc)[5] == "anon_inode:kvm-vm"
    assert fd_links(999, proc) == {}  # gone
    found = {p.pid: p for p in find_kvm_processes(proc)}
    assert sorted(found) == [100, 200]
    assert found[100].comm == "cloud-hyperviso" and found[100].vms == 1
    assert found[100].vcpus == 2  # vcpu:0 held twice (an mmap dup) counts once
    assert found[200].vms == 2 and found[200].vcpus == 0
    assert [p.pid for p in find_kvm_processes(proc, [200, 300])] == [200]


def test_thread_ids_start_time_and_pinning(proc):
    assert thread_ids(100, proc) == [100, 101, 102]
    assert start_time(100, proc) == 1000  # parsed after the comm's last ')'
    assert find_pinning_processes(proc) == [100, 300]
    assert find_pinning_processes(proc, {100}) == [300]
    assert descendants(400, proc) == {400, 401, 402}


def test_snapshot_unions_threads_and_ignores_a_reused_pid(proc):
    snap = ProcSnapshot.take(100, proc)
    assert snap.tids == {100, 101, 102} and snap.vm_pin_kib == 65536 and snap.maps == MAPS
    (proc / "100" / "task" / "103").mkdir()  # a thread created during the recording
    os.rmdir(proc / "100" / "task" / "101")  # one that ended
    (proc / "100" / "maps").write_text(MAPS.splitlines(keepends=True)[1])  # tearing down
    snap.update(proc)
    assert snap.tids == {100, 101, 102, 103}
    assert snap.maps == MAPS  # the snapshot mapping the most memory is kept
    fake_pid(proc, 100, "other", tids=[100, 555], started=2000)  # pid reused
    snap.update(proc)
    assert 555 not in snap.tids


def test_vm_without_a_layout_is_left_for_inference_and_says_why(proc):
    (vmm,) = find_kvm_processes(proc, [100])
    facts, warning = vm_facts(vmm, proc)
    assert facts.tgid == 100 and facts.vcpus == 2 and not facts.memslots and not facts.pinned
    assert warning is not None and "left for analyze to infer" in warning
    assert NO_RAM in facts.comment and "VmPin 65536 KiB" in facts.comment


class Sink:
    def __init__(self) -> None:
        self.vms: list = []
        self.processes: list = []
        self.notes: list[str] = []
        self.watched: list[int] = []

    def known(self, pid: int) -> bool:
        return any(f.tgid == pid for f in [*self.vms, *self.processes])

    def watch(self, pid: int) -> None:
        self.watched.append(pid)


def test_discover_targets_writes_a_valid_manifest(proc):
    sink = Sink()
    log: list[str] = []
    warnings = discover_targets(sink, None, log.append, proc=proc)
    assert [v.tgid for v in sink.vms] == [100, 200]
    assert [p.tgid for p in sink.processes] == [300]  # pinned, not a VM
    assert sink.watched == [100, 200, 300]
    assert len(warnings) == 2 and all("guest RAM unknown" in w for w in warnings)
    # a second pass (end of the recording) adds nothing twice
    assert discover_targets(sink, None, log.append, proc=proc) == []
    assert len(sink.vms) == 2
    # scope: only the traced processes
    scoped = Sink()
    discover_targets(scoped, {200, 300}, log.append, exclude={200}, proc=proc)
    assert scoped.vms == [] and [p.tgid for p in scoped.processes] == [300]
    # tids, maps and VmPin go into the manifest, which the parser accepts
    snap = ProcSnapshot.take(100, proc)
    sink.vms[0].tids = sorted(snap.tids)
    sink.vms[0].maps = snap.maps
    sink.vms[0].vm_pin_kib = snap.vm_pin_kib
    m = parse_manifest(tomllib.loads(manifest_text(sink.vms, sink.processes, {}, {})))
    vm = m.vms[0]
    assert vm.tids == [100, 101, 102] and vm.maps == MAPS and vm.vm_pin_kib == 65536
    assert vm.ranges == [] and "VmPin" in sink.processes[0].comment


def test_manifest_rejects_bad_recorder_keys():
    base = {"vm": [{"tgid": 1, "name": "x", "maps": 3}]}
    with pytest.raises(ManifestError, match="maps must be a string"):
        parse_manifest(base)
    with pytest.raises(ManifestError, match="vm_pin_kib"):
        parse_manifest({"process": [{"tgid": 1, "vm_pin_kib": -1}]})


LAB_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from tracereplay.lab.layout import publish_layout
    fd = publish_layout({"kind": "vm", "comm": "tr-kvm-vmm", "vcpus": 2,
        "memslots": [{"slot": 0, "hva_start": 0x7f0000000000, "size": 1 << 28, "gpa_start": 0}],
        "pinned": [{"hva_start": 0x7f0000000000, "size": 1 << 26, "how": "io_uring"}]})
    print(fd, flush=True)
    time.sleep(30)
    """
)


def test_lab_layout_is_read_through_the_memfd():
    child = subprocess.Popen([sys.executable, "-c", LAB_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        fd = int(child.stdout.readline())
        links = fd_links(child.pid)
        assert links[fd] == f"/memfd:{LAB_MEMFD} (deleted)"
        doc = lab_info(child.pid, links)
        assert doc is not None and doc["memslots"][0]["size"] == 1 << 28
        facts, warning = vm_facts(KvmProcess(child.pid, "tr-kvm-vmm", 1, 2, doc))
        assert warning is None
        assert [(s.hva_start, s.size, s.gpa_start) for s in facts.memslots] == [
            (0x7F0000000000, 1 << 28, 0)
        ]
        assert [(p.hva_start, p.size) for p in facts.pinned] == [(0x7F0000000000, 1 << 26)]
    finally:
        child.kill()
        child.wait()
