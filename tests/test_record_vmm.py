"""``tracereplay record`` of a VMM it did not start, without QMP (root, /dev/kvm, tracefs).

A lab VMM runs on its own, started with NUMA balancing off (this machine's
default). ``tracereplay record -o X.dat --format both --numa-balancing on``
records the whole host for a few seconds: it must find the VM by its
``anon_inode:kvm-vm`` fd, take guest RAM and pins from the lab's published
layout, list the VM's threads, switch NUMA balancing on for the recording
only, and count the events it wrote. Then ``analyze X.dat`` must find the VM
under its process id with the same baseline and numa-protect figures as
``analyze X.txt`` (the same buffer read as text with tgids), and both must
equal the figures ``tests/reference_figures.py`` computes from that text
without tracereplay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import reference_figures
from corpus_support import POLICIES, analyze, by_tgid, figures

from tracereplay.record.lab import start_child
from tracereplay.record.tracefs import TRACEFS_PATHS

TRACEFS = next((p for p in TRACEFS_PATHS if (p / "available_events").exists()), None)
NUMA_SYSCTL = Path("/proc/sys/kernel/numa_balancing")
pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="recording needs root"),
    pytest.mark.skipif(TRACEFS is None, reason="tracefs is not mounted"),
    pytest.mark.skipif(
        not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="/dev/kvm is missing or not usable"
    ),
    pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd is not installed"),
    pytest.mark.skipif(not NUMA_SYSCTL.exists(), reason="kernel without NUMA balancing"),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("vmm") / "host.dat"
    numa_before = NUMA_SYSCTL.read_text()
    vmm, info = start_child(
        "kvm_vmm", ["--mem", "256M", "--pinned", "64M", "--threads", "2", "--seconds", "120"]
    )
    try:
        time.sleep(1.5)  # the vCPUs run; with balancing off nothing is scanned yet
        cmd = [sys.executable, "-m", "tracereplay", "record", "-o", str(out), "--format", "both"]
        cmd += ["--events", "minimal", "--stack", "--numa-balancing", "on", "--duration", "6"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    finally:
        vmm.terminate()
        vmm.communicate(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert NUMA_SYSCTL.read_text() == numa_before  # restored
    text = out.with_suffix(".txt")
    return {
        "pid": int(info["pid"]),
        "info": info,
        "stderr": proc.stderr,
        "dat": out,
        "text": text,
        "manifest": tomllib.loads(Path(f"{out}.manifest.toml").read_text()),
        "dat_summary": analyze(out),
        "text_summary": analyze(text),
    }


def test_manifest_names_the_vm_its_ram_pins_and_threads(recorded):
    m = recorded["manifest"]
    (vm,) = [v for v in m["vm"] if v["tgid"] == recorded["pid"]]
    assert vm["name"] == "tr-kvm-vmm" and vm["vcpus"] == 2
    (slot,) = vm["memslot"]
    (pin,) = vm["pinned"]
    assert (slot["hva_start"], slot["size"]) == (
        recorded["info"]["memslots"][0]["hva_start"],
        256 << 20,
    )
    assert (pin["hva_start"], pin["size"]) == (slot["hva_start"], 64 << 20)
    assert len(vm["tids"]) >= 3 and recorded["pid"] in vm["tids"]  # main + 2 vCPUs
    assert "kvm-vm" in vm["comment"] and "maps" in vm
    assert m["host"]["numa_balancing"] == 1
    assert m["recording"]["numa_balancing_switched_on"] is True
    assert f"VM: pid {recorded['pid']}" in recorded["stderr"]


def test_summary_counts_the_events_written(recorded):
    """The count printed is the text's (and the buffer's); it once said 0 for a .dat."""
    events = recorded["manifest"]["recording"]["events_in_buffer"]
    assert events > 0
    assert f"{events:,} events in" in recorded["stderr"]
    assert recorded["dat_summary"]["trace"]["events"] == recorded["text_summary"]["trace"]["events"]


def test_trace_dat_finds_the_vm_under_its_pid_with_the_text_figures(recorded):
    dat = by_tgid(recorded["dat_summary"])
    text = by_tgid(recorded["text_summary"])
    tgid = str(recorded["pid"])
    assert tgid in dat and tgid in text
    got_dat, got_text = figures(dat[tgid]), figures(text[tgid])
    assert got_dat["baseline"]["kvm_unmap_calls"] >= 1  # NUMA scans reached guest RAM
    assert got_dat["baseline"] == got_text["baseline"]
    assert got_dat["numa-protect"] == got_text["numa-protect"]
    # and both equal the figures computed without tracereplay from the tgid text
    with open(recorded["text"]) as f:
        ref = reference_figures.reference(f, recorded["manifest"])
    assert {p: got_dat[p] for p in POLICIES} == ref["vms"][tgid]["policies"]
