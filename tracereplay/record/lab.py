"""``lab run``: the pinned-VM scenario (a tiny KVM guest with part of its RAM pinned), recorded by the recorder.

A child process runs :mod:`tracereplay.lab.kvm_vmm` (a tiny KVM VMM whose vCPUs
write one byte in every guest page, in a loop) or, with ``kvm=False``,
:mod:`tracereplay.lab.workload` (plain threads over the same kind of memory).
The first ``pinned`` bytes of its memory are long-term pinned with io_uring
(FOLL_LONGTERM, what VFIO does). NUMA balancing is switched on around the
child and restored afterwards; the recorder traces only this process, its
children and the idle tasks, and writes the manifest with the memslot, the
pinned range, vmstat before/after and the child's own counters.

Example::

    res = lab_run(LabConfig(output=Path("out/trace.txt"), mem=256 << 20, pinned=64 << 20))
    res.record.vmstat_delta["numa_pte_updates"], res.workload["numa_scan_seq"]

Lab runs take a host-wide lock: NUMA balancing is a global switch, and two runs
restoring it in crossed order would leave it changed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tracereplay.lab
from tracereplay.lab.numa import numa_balancing
from tracereplay.record.balancing import LOCK_PATH
from tracereplay.record.balancing import numa_lock as lab_lock
from tracereplay.record.manifest_out import ProcessFacts, RangeFacts, VmFacts
from tracereplay.record.recorder import Log, RecordConfig, Recorder, RecordResult, Session, _stderr
from tracereplay.record.tracefs import RecordError

__all__ = [
    "LOCK_PATH",
    "LabConfig",
    "LabResult",
    "child_command",
    "lab_lock",
    "lab_run",
    "start_child",
]

LAB_DIR = Path(tracereplay.lab.__file__).resolve().parent
PIN_NOTE = "long-term pinned: io_uring IORING_REGISTER_BUFFERS (FOLL_LONGTERM)"

# The child loads the lab modules as a stand-alone package: importing
# ``tracereplay`` would pull in the analysis stack (pyarrow, duckdb, polars),
# which costs seconds and, in the traced child, thousands of page_fault_user
# events that have nothing to do with the workload.
_PKG = "_tracereplay_lab"
_CHILD = f"""
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location(
    {_PKG!r}, {str(LAB_DIR / "__init__.py")!r}, submodule_search_locations=[{str(LAB_DIR)!r}])
sys.modules[{_PKG!r}] = mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
try:
    sys.exit(importlib.import_module({_PKG!r} + "." + sys.argv[1]).main(sys.argv[2:]))
except KeyboardInterrupt:  # stopped with SIGINT: it cleaned up; no traceback
    sys.exit(130)
"""


@dataclass
class LabConfig:
    output: Path  # trace text path; a .dat goes next to it when trace-cmd exists
    mem: int = 256 << 20
    pinned: int = 64 << 20
    vcpus: int = 2  # vCPUs, or touching threads with kvm=False
    seconds: float = 8.0
    kvm: bool = True
    stack: bool = False
    events: str = "numa"  # --events spec (record/events.py presets)
    churn: tuple[str, ...] = ()  # kvm only: lab/churn.py activities beside the vCPUs
    churn_ms: float = 20.0
    churn_tail: int = 64 << 20  # madvise walks this much of the end of guest RAM
    buffer_kb: int = 16384
    fmt: str = "auto"  # auto: text, plus trace.dat when trace-cmd exists
    top_level: bool = False
    all_pids: bool = False  # trace every process, not only this one, its children and idle
    scan_delay_ms: int = 100  # applied only where the debugfs tunables are writable
    scan_period_min_ms: int = 100
    scan_period_max_ms: int | None = None  # None: the kernel's (60 s)
    scan_size_mb: int | None = None  # None: the kernel's (256 MB)
    touch: str = "chunk"  # threads workload only
    chunk: int = 16 << 20
    lock_timeout: float = 120.0
    command_line: str = ""


@dataclass
class LabResult:
    record: RecordResult
    workload: dict[str, Any] = field(default_factory=dict)

    @property
    def unpinned_pages(self) -> int:
        return int(self.workload.get("unpinned_pages", 0))


def _check(cfg: LabConfig) -> None:
    if cfg.kvm and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise RecordError("/dev/kvm is missing or not accessible (--no-kvm runs plain threads)")
    if cfg.churn and not cfg.kvm:
        raise RecordError("--churn needs the KVM workload")
    if not cfg.kvm and cfg.vcpus < 2:
        raise RecordError("--no-kvm needs >= 2 threads (NUMA balancing skips single-threaded mms)")
    if cfg.vcpus < 1:
        raise RecordError("--vcpus must be >= 1")
    page = os.sysconf("SC_PAGE_SIZE")
    if cfg.mem <= 0 or cfg.mem % page or cfg.pinned % page or not 0 <= cfg.pinned <= cfg.mem:
        raise RecordError("--mem and --pinned must be page multiples with 0 <= pinned <= mem")
    if cfg.kvm and cfg.mem > 1 << 32:
        raise RecordError("--mem: the lab guest is 32-bit, at most 4G")
    if not Path("/proc/sys/kernel/numa_balancing").exists():
        raise RecordError("this kernel has no NUMA balancing (CONFIG_NUMA_BALANCING)")


def child_command(module: str, args: list[str]) -> list[str]:
    """The command line running ``tracereplay.lab.MODULE`` without importing tracereplay."""
    return [sys.executable, "-S", "-c", _CHILD, module, *args]


def start_child(
    module: str, args: list[str], *, nice: int = 0
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start a lab workload (its own comm and tgid); wait for its JSON ready line.

    ``nice`` is added to its niceness before it starts (its threads inherit it).
    """
    proc = subprocess.Popen(
        child_command(module, args),
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        rc = proc.wait()
        raise RecordError(f"lab workload exited with {rc} before it was ready (see its stderr)")
    return proc, json.loads(line)


def _start_child(cfg: LabConfig) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    args = ["--mem", str(cfg.mem), "--pinned", str(cfg.pinned)]
    args += ["--threads", str(cfg.vcpus), "--seconds", str(cfg.seconds)]
    if not cfg.kvm:
        args += ["--touch", cfg.touch, "--chunk", str(cfg.chunk)]
    elif cfg.churn:
        args += ["--churn", ",".join(cfg.churn), "--churn-ms", str(cfg.churn_ms)]
        args += ["--churn-tail", str(cfg.churn_tail)]
    return start_child("kvm_vmm" if cfg.kvm else "workload", args)


def _facts(info: dict[str, Any], session: Session) -> None:
    pid, comm = int(info["pid"]), str(info["comm"])
    pin = info.get("pinned") or {"size": 0}
    pinned = [RangeFacts(pin["hva_start"], pin["size"], note=PIN_NOTE)] if pin["size"] else []
    if "memslots" in info:
        slots = [RangeFacts(s["hva_start"], s["size"], s["gpa_start"]) for s in info["memslots"]]
        session.vms.append(VmFacts(pid, comm, slots, pinned, vcpus=int(info["threads"])))
    else:  # not a VM: its memory is a region, not a memslot
        region = RangeFacts(info["region"]["hva_start"], info["region"]["size"])
        session.processes.append(ProcessFacts(pid, comm, [region], pinned, threads=info["threads"]))
    session.watch(pid)


def _wait_child(proc: subprocess.Popen[str], session: Session) -> str:
    """The child's remaining output; snapshots its threads and maps every 0.5 s meanwhile.

    The vCPU threads start after the ready line: only a snapshot taken while the
    guest runs lists their thread ids for the manifest.
    """
    assert proc.stdout is not None
    chunks: list[str] = []
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                return "".join(chunks)
            chunks.append(line)
        session.snapshot()


def lab_run(cfg: LabConfig, log: Log = _stderr) -> LabResult:
    """Run and record the lab scenario; see the module docstring."""
    _check(cfg)
    fmt = cfg.fmt
    if fmt == "auto":
        from shutil import which

        fmt = "both" if which("trace-cmd") else "text"
    rec = Recorder(
        RecordConfig(
            output=cfg.output,
            fmt=fmt,
            events=cfg.events,
            stack=cfg.stack,
            follow_self=not cfg.all_pids,
            buffer_kb=cfg.buffer_kb,
            top_level=cfg.top_level,
            command_line=cfg.command_line,
        ),
        log,
    )
    outcome: dict[str, Any] = {}

    def body(session: Session) -> None:
        with numa_balancing(
            1,
            scan_delay_ms=cfg.scan_delay_ms,
            scan_period_min_ms=cfg.scan_period_min_ms,
            scan_period_max_ms=cfg.scan_period_max_ms,
            scan_size_mb=cfg.scan_size_mb,
        ) as state:
            session.notes += [f"numa: {n}" for n in state.notes]
            # [host] describes the settings in effect while tracing, not the ones restored
            session.host["numa_balancing"] = int(state.numa_balancing)
            session.host["numa_balancing_tunables"] = {
                k: v for k, v in state.tunables.items() if v is not None
            }
            proc, info = _start_child(cfg)
            log(f"lab: workload pid {info['pid']} ready ({info['comm']})")
            _facts(info, session)
            try:
                tail = _wait_child(proc, session)
                rc = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted: the child stops cleanly on SIGINT
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            if rc != 0:
                raise RecordError(f"lab workload failed with exit code {rc} (see its stderr)")
            done = json.loads(tail.strip().splitlines()[-1]) if tail.strip() else {}
            done.pop("pid", None)
            page = os.sysconf("SC_PAGE_SIZE")
            outcome.update(
                kind="kvm" if cfg.kvm else "threads",
                pid=info["pid"],
                mem=cfg.mem,
                pinned=cfg.pinned,
                threads=cfg.vcpus,
                seconds=cfg.seconds,
                unpinned_pages=(cfg.mem - cfg.pinned) // page,
                pinned_pages=cfg.pinned // page,
                **{k: v for k, v in done.items() if v is not None},
            )
            session.recording["workload"] = {k: v for k, v in outcome.items() if k != "pid"}

    with lab_lock(cfg.lock_timeout):
        result = rec.run(body)
    return LabResult(record=result, workload=outcome)
