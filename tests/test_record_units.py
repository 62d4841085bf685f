"""Recorder pieces that need no root: event presets, outputs, manifest writer, QMP discovery."""

from __future__ import annotations

import json
import os
import socket
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tracereplay.manifest import parse_manifest
from tracereplay.record.events import PRESETS, resolve_events
from tracereplay.record.manifest_out import ProcessFacts, RangeFacts, VmFacts, manifest_text
from tracereplay.record.qmp import discover_vm, parse_mtree, parse_ramblocks
from tracereplay.record.recorder import count_text, output_paths
from tracereplay.record.tracefs import RecordError

ALL = {e for events in PRESETS.values() for e in events}


def test_default_preset_has_design_events_and_csd():
    events, missing = resolve_events("numa", ALL)
    assert not missing
    for e in (
        "kvm:kvm_unmap_hva_range",
        "tlb:tlb_flush",
        "ipi:ipi_send_cpumask",
        "sched:sched_skip_vma_numa",
        "exceptions:page_fault_user",
        "migrate:mm_migrate_pages",
        "csd:csd_queue_cpu",
        "task:task_rename",
    ):
        assert e in events


def test_event_spec_adds_drops_and_reports_missing():
    events, missing = resolve_events(
        "minimal,-task:task_rename,csd:csd_queue_cpu", ALL - {"ipi:ipi_send_cpu"}
    )
    assert "task:task_rename" not in events and events[-1] == "csd:csd_queue_cpu"
    assert missing == ["ipi:ipi_send_cpu"]
    with pytest.raises(RecordError, match="not available"):
        resolve_events("numa,foo:bar", ALL)
    with pytest.raises(RecordError, match="neither a preset"):
        resolve_events("everything", ALL)


def test_output_paths():
    assert output_paths(Path("d/x.dat"), "auto", True) == (None, Path("d/x.dat"))
    assert output_paths(Path("d/x.txt.gz"), "auto", True) == (Path("d/x.txt.gz"), None)
    assert output_paths(Path("d/x"), "auto", False) == (Path("d/x.txt"), None)
    assert output_paths(Path("d/x.txt"), "both", True) == (Path("d/x.txt"), Path("d/x.dat"))
    with pytest.raises(RecordError, match="needs trace-cmd"):
        output_paths(Path("d/x.dat"), "auto", False)


def test_count_text_counts_events_stacks_and_lost():
    text = """# tracer: nop
          <idle>-0       (-------) [001] d.h2.   963.1: tlb_flush: pages:-1 reason:remote shootdown (2)
   tr-vcpu-0-7553    (   7550) [000] d..1.   964.2: kvm_unmap_hva_range: mmu notifier unmap range: 0x1 -- 0x2
   tr-vcpu-0-7553    (   7550) [000] d..1.   964.2: <stack trace>
 => task_numa_work
CPU:1 [LOST 7 EVENTS]
"""
    counts, lost = count_text(iter(text.splitlines(keepends=True)))
    assert counts == {"kernel_stack": 1, "kvm_unmap_hva_range": 1, "tlb_flush": 1}
    assert lost == 7


def test_manifest_writer_round_trips_through_the_parser():
    vm = VmFacts(
        4242,
        "qemu-system-x86",
        [RangeFacts(0x7F0000000000, 1 << 30, 0, note="pc.ram")],
        [RangeFacts(0x7F0000000000, 1 << 28, note="pinned")],
        vcpus=4,
    )
    vfio = VmFacts(5000, "q2", [RangeFacts(0x7E0000000000, 1 << 30, 0)], pinned_all=True)
    proc = ProcessFacts(77, "gpu", [RangeFacts(0x1000, 0x4000)], threads=3)
    host = {
        "kernel": "6.18",
        "numa_nodes": 2,
        "numa_balancing": 1,
        "numa_balancing_tunables": {"scan_delay_ms": 1000},
        "numa_topology": {"node0": {"cpus": "0-1", "distance": [10, 20]}, "node1": {}},
        "vmstat_before": {"numa_pte_updates": 1, "numa_hint_faults": 2, "a": 3, "b": 4},
        "vmstat_after": {"numa_pte_updates": 11, "numa_hint_faults": 2, "a": 3, "b": 4},
    }
    recording = {
        "events": ["tlb:tlb_flush"],
        "maps": {"4242": "7f00-7f01 rw-p 00000000 00:00 0 \n7f01-7f02 r--p 0 00:00 0 [vdso]\n"},
        "notes": ['quote " and \\ survive'],
    }
    text = manifest_text([vm, vfio], [proc], host, recording)
    m = parse_manifest(tomllib.loads(text))
    assert [p.tgid for p in m.vms] == [4242, 5000] and m.vms[1].pinned_all
    assert m.vms[0].pinned[0].size == 1 << 28 and m.vms[0].ranges[0].gpa_start == 0
    assert m.processes[2].ranges[0].hva_start == 0x1000
    assert m.vmstat_delta()["numa_pte_updates"] == 10
    assert m.recording["maps"]["4242"].endswith("[vdso]\n")
    assert m.recording["notes"] == ['quote " and \\ survive']
    assert m.host["numa_topology"]["node0"]["distance"] == [10, 20]


RAMBLOCK = """\
              Block Name    PSize              Offset               Used              Total                HVA  RO
                  pc.ram    4 KiB  0x0000000000000000 0x0000000080000000 0x0000000080000000 0x00007f1c00000000  rw
  0000:00:02.0/vga.vram    4 KiB  0x0000000080080000 0x0000000001000000 0x0000000001000000 0x00007f1b00000000  rw
"""
MTREE = """\
FlatView #0
 AS "I/O", root: io
 Root memory region: io
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan
FlatView #1
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-000000000009ffff (prio 0, ram): pc.ram KVM
  00000000000a0000-00000000000bffff (prio 1, i/o): vga-lowmem
  0000000000100000-000000007fffffff (prio 0, ram): pc.ram @0000000000100000 KVM
  00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram KVM
"""


def test_parse_ramblock_and_mtree():
    blocks = parse_ramblocks(RAMBLOCK)
    assert [(b.name, b.hva) for b in blocks] == [
        ("pc.ram", 0x7F1C00000000),
        ("0000:00:02.0/vga.vram", 0x7F1B00000000),
    ]
    flat = parse_mtree(MTREE)
    assert flat[0] == (0, 0xA0000, "pc.ram", 0)
    assert flat[1] == (0x100000, 0x7FF00000, "pc.ram", 0x100000)
    assert len(flat) == 3  # the I/O address space is not guest RAM


class FakeQmp:
    """A tiny QMP server on a unix socket answering canned replies."""

    def __init__(self, path: str, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.commands: list[str] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rwb") as f:
            f.write(b'{"QMP": {"version": {"qemu": {"major": 9}}, "capabilities": []}}\n')
            f.flush()
            for line in f:
                req = json.loads(line)
                cmd = req["execute"]
                if cmd == "human-monitor-command":
                    cmd = "hmp:" + req["arguments"]["command-line"]
                elif cmd == "qom-list":
                    cmd = "qom:" + req["arguments"]["path"]
                self.commands.append(cmd)
                f.write(b'{"event": "RTC_CHANGE", "data": {}}\n')  # async noise is skipped
                if cmd in self.replies:
                    f.write(json.dumps({"return": self.replies[cmd]}).encode() + b"\n")
                else:
                    err = {"class": "CommandNotFound", "desc": f"{cmd} not found"}
                    f.write(json.dumps({"error": err}).encode() + b"\n")
                f.flush()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def qmp_path(tmp_path: Path):
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer
    path = f"/tmp/tr-qmp-{os.getpid()}-{id(tmp_path)}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def test_qmp_discovers_ram_vcpus_and_vfio_pinning(qmp_path):
    server = FakeQmp(
        qmp_path,
        {
            "qmp_capabilities": {},
            "query-name": {"name": "guest1"},
            "query-cpus-fast": [{"cpu-index": 0, "thread-id": 1}, {"cpu-index": 1, "thread-id": 2}],
            "x-query-ramblock": {"human-readable-text": RAMBLOCK},
            "hmp:info mtree -f": MTREE,
            "qom:/machine/peripheral": [{"name": "hostdev0", "type": "child<vfio-pci>"}],
            "qom:/machine/peripheral-anon": [
                {"name": "device[0]", "type": "child<virtio-net-pci>"}
            ],
            "query-memdev": [{"id": "mem0", "size": 1 << 31, "policy": "bind", "host-nodes": [1]}],
        },
    )
    try:
        vm = discover_vm(qmp_path)
    finally:
        server.close()
    assert vm.facts.tgid == os.getpid()  # SO_PEERCRED: the server's pid
    assert vm.facts.name == "guest1" and vm.facts.vcpus == 2
    assert vm.facts.pinned_all and vm.vfio_devices == ["vfio-pci"]
    slots = [(s.hva_start, s.size, s.gpa_start) for s in vm.facts.memslots]
    assert slots == [
        (0x7F1C00000000, 0xA0000, 0),
        (0x7F1C00100000, 0x7FF00000, 0x100000),
        (0x7F1B00000000, 0x1000000, 0xFD000000),
    ]
    assert any("mbind" in n for n in vm.notes)
    text = manifest_text([vm.facts], [], {"kernel": "x"}, {})
    assert parse_manifest(tomllib.loads(text)).vms[0].pinned_all


def test_qmp_old_qemu_without_ramblock_hva_or_vfio(qmp_path):
    old = RAMBLOCK.replace("                HVA  RO", "").replace("  0x00007f1c00000000  rw", "")
    server = FakeQmp(
        qmp_path,
        {"qmp_capabilities": {}, "hmp:info ramblock": old, "hmp:info mtree -f": MTREE},
    )
    try:
        vm = discover_vm(qmp_path)
    finally:
        server.close()
    assert not vm.facts.pinned_all and not vm.facts.memslots
    assert "x-query-ramblock" in server.commands and "hmp:info ramblock" in server.commands
    assert any("HVA" in n for n in vm.notes)


def test_qmp_unreachable_is_a_clear_error(tmp_path):
    with pytest.raises(RecordError, match="cannot connect"):
        discover_vm(str(tmp_path / "nope.sock"))


def test_record_cli_needs_duration_or_command_and_root(tmp_path, monkeypatch):
    from conftest import run_cli

    out = str(tmp_path / "t.txt")
    assert run_cli("record", "-o", out).exit_code == 2  # usage: neither --duration nor COMMAND
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = run_cli("record", "-o", out, "--duration", "1")
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        "tracereplay: error: recording needs root (tracefs, per-CPU ring buffers, /proc/PID/maps)"
    )


def test_stale_instances_of_dead_recorders_are_removed(tmp_path):
    """An instance left by a SIGKILLed recorder (no such pid) goes; live and foreign ones stay."""
    from tracereplay.record.tracefs import TraceDir

    inst = tmp_path / "instances"
    (inst / "tracereplay-999999999").mkdir(parents=True)  # no such process
    (inst / f"tracereplay-{os.getpid()}").mkdir()  # alive: this test
    (inst / "someone-else").mkdir()
    assert TraceDir.remove_stale_instances(tmp_path) == ["tracereplay-999999999"]
    assert sorted(p.name for p in inst.iterdir()) == ["someone-else", f"tracereplay-{os.getpid()}"]
