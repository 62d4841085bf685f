"""The recorder: enable the events, run or wait, save the trace and its manifest.

Example (as root)::

    rec = Recorder(RecordConfig(output=Path("host.dat"), stack=True))
    result = rec.run(wait_for(seconds=60))            # or run_command(["./bench"])
    print(result.events, result.lost_events, result.outputs)

Flow: check root/tracefs/events, snapshot host facts, find the KVM VMMs
(``anon_inode:kvm-vm`` fds) and pinning processes to describe, configure a
private tracefs instance (events, ``record-tgid``, buffer size, pid filter
with ``event-fork``, optional ``stacktrace`` trigger), switch NUMA balancing
on if asked, snapshot vmstat, trace while the workload runs (snapshotting the
described processes' threads and maps), snapshot vmstat again, restore NUMA
balancing, save ``trace`` text (read first: it does not consume) and/or
``trace-cmd extract`` a trace.dat, then restore every tracefs file, also on
Ctrl-C, SIGTERM or an exception. A
Ctrl-C or SIGTERM *during* the workload stops the recording early and still
saves it (like ``perf record``); a second one aborts.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from tracereplay.atomic import atomic_output
from tracereplay.record.balancing import OFF_WARNING, numa_balancing_on
from tracereplay.record.events import STACK_EVENT, resolve_events
from tracereplay.record.host import host_facts, read_vmstat
from tracereplay.record.manifest_out import ProcessFacts, VmFacts, manifest_text
from tracereplay.record.procfs import ProcSnapshot, comm_of, find_kvm_processes
from tracereplay.record.targets import descendants, discover_targets, process_facts, vm_facts
from tracereplay.record.tracefs import RecordError, TraceDir, find_tracefs, unmount_tracefs

__all__ = [
    "RecordConfig",
    "RecordResult",
    "Recorder",
    "Session",
    "default_buffer_kb",
    "run_command",
    "sigterm_as_interrupt",
    "wait_for",
]

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"tracereplay: {msg}", file=sys.stderr, flush=True)


def default_buffer_kb() -> int:
    """Per-CPU ring buffer: 64 MiB, but at most 1/16 of available memory over all CPUs."""
    avail_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail_kb = int(line.split()[1])
    ncpu = os.cpu_count() or 1
    cap = avail_kb // 16 // ncpu if avail_kb else 65536
    return max(4096, min(65536, cap))


@dataclass
class RecordConfig:
    output: Path
    fmt: str = "auto"  # auto | text | dat | both
    events: str = "numa"
    stack: bool = False
    pids: list[int] = field(default_factory=list)
    follow_self: bool = False  # trace this process + children (+ idle) only
    buffer_kb: int | None = None
    top_level: bool = False  # use the top-level buffer instead of a private instance
    qmp: str | None = None
    command_line: str = ""  # for the manifest
    numa_balancing: str = "keep"  # keep | on (switched on for the recording, then restored)
    discover: bool = True  # find KVM VMMs (kvm-vm fds) and pinning processes in /proc


@dataclass
class RecordResult:
    outputs: list[Path]
    manifests: list[Path]
    events: int
    event_counts: dict[str, int]
    lost_events: int
    lost_per_cpu: dict[int, int]
    seconds: float
    vmstat_delta: dict[str, int]
    interrupted: bool
    warnings: list[str]


class Session:
    """Handed to the workload while tracing is on: collect manifest facts."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.vms: list[VmFacts] = []
        self.processes: list[ProcessFacts] = []
        self.recording: dict[str, Any] = {}
        self.host: dict[str, Any] = {}  # overrides of [host] facts (e.g. settings in effect)
        self.notes: list[str] = []
        self.procs: dict[int, ProcSnapshot] = {}  # watched processes: threads, maps, pins

    @property
    def maps(self) -> dict[int, str]:
        return {pid: p.maps for pid, p in self.procs.items() if p.maps}

    def facts(self) -> list[VmFacts | ProcessFacts]:
        return [*self.vms, *self.processes]

    def known(self, pid: int) -> bool:
        return any(f.tgid == pid for f in self.facts())

    def watch(self, pid: int) -> None:
        """Snapshot threads, ``/proc/PID/maps`` and pins now, again during and at the end."""
        if pid not in self.procs:
            self.procs[pid] = ProcSnapshot.take(pid)
        else:
            self.procs[pid].update()

    def snapshot(self) -> None:
        for snap in self.procs.values():
            snap.update()

    def fill_facts(self) -> None:
        """Threads, maps and VmPin of the watched processes into their manifest facts."""
        for facts in self.facts():
            snap = self.procs.get(facts.tgid)
            if snap is None:
                continue
            facts.tids = sorted(set(facts.tids) | snap.tids)
            facts.maps = facts.maps or snap.maps
            if not facts.pinned and not getattr(facts, "pinned_all", False) and snap.vm_pin_kib:
                facts.vm_pin_kib = snap.vm_pin_kib


Workload = Callable[[Session], None]


def wait_for(seconds: float) -> Workload:
    """A workload that only waits (record the host for ``seconds``)."""

    def body(session: Session) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            session.snapshot()

    return body


def run_command(argv: list[str], seconds: float | None = None) -> Workload:
    """A workload that runs ``argv``; stops it (SIGTERM) if ``seconds`` run out first."""

    def body(session: Session) -> None:
        try:
            proc = subprocess.Popen(argv)
        except OSError as e:
            raise RecordError(f"cannot run {argv[0]}: {e.strerror}") from None
        session.recording["command_pid"] = proc.pid
        session.watch(proc.pid)
        end = None if seconds is None else time.monotonic() + seconds
        try:
            while proc.poll() is None:
                if end is not None and time.monotonic() >= end:
                    proc.terminate()
                    session.notes.append(f"command stopped after --duration {seconds} s")
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.5)
                if proc.returncode is None:
                    session.snapshot()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # Ctrl-C reached it already; SIGTERM did not
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            session.recording["command_exit"] = proc.returncode
            if proc.pid in session.maps and not session.known(proc.pid):
                session.processes.append(ProcessFacts(proc.pid, comm_of(proc.pid) or argv[0]))

    return body


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt so the same stop/restore path runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: cannot install handlers
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


_TEXT_EVENT = re.compile(
    r"^\s*.+?-\d+\s+(?:\(\s*[\d-]+\)\s+)?\[\d+\]\s+(?:\S+\s+)?\d+\.\d+:\s+(\w+):"
)
_TEXT_STACK = re.compile(
    r"^\s*.+?-\d+\s+(?:\(\s*[\d-]+\)\s+)?\[\d+\]\s+(?:\S+\s+)?\d+\.\d+:\s+<stack trace>"
)
_LOST = re.compile(r"\[LOST (\d+) EVENTS\]")


def count_text(lines: IO[str] | Iterator[str]) -> tuple[dict[str, int], int]:
    """Per-event counts (stack traces as ``kernel_stack``, like trace-cmd) and LOST markers."""
    counts: Counter[str] = Counter()
    lost = 0
    for line in lines:
        if line.startswith((" =>", "#")):
            continue
        m = _TEXT_EVENT.match(line)
        if m:
            counts[m.group(1)] += 1
        elif _TEXT_STACK.match(line):
            counts["kernel_stack"] += 1
        elif "LOST" in line:
            lost += sum(int(x) for x in _LOST.findall(line))
    return dict(sorted(counts.items())), lost


def output_paths(output: Path, fmt: str, have_trace_cmd: bool) -> tuple[Path | None, Path | None]:
    """``(text path, dat path)`` for ``-o OUTPUT --format FMT``."""
    name = output.name
    is_text = name.endswith((".txt", ".txt.gz", ".gz", ".log"))
    is_dat = name.endswith(".dat")
    if fmt == "auto":
        fmt = "dat" if is_dat else "text" if is_text else "dat" if have_trace_cmd else "text"
    stem = re.sub(r"(\.txt)?(\.gz)?$|\.dat$|\.log$", "", name)
    text = output if is_text else output.with_name(stem + ".txt")
    dat = output if is_dat else output.with_name(stem + ".dat")
    if fmt in ("dat", "both") and not have_trace_cmd:
        raise RecordError(
            "trace.dat output needs trace-cmd (apt-get install trace-cmd); "
            "or write tracefs text: -o OUT.txt / --format text"
        )
    return (
        text if fmt in ("text", "both") else None,
        dat if fmt in ("dat", "both") else None,
    )


class Recorder:
    def __init__(self, config: RecordConfig, log: Log = _stderr) -> None:
        self.config = config
        self.log = log
        self.have_trace_cmd = shutil.which("trace-cmd") is not None
        self.text_path, self.dat_path = output_paths(config.output, config.fmt, self.have_trace_cmd)
        self.tdir: TraceDir | None = None  # exposed for tests: what was touched

    def preflight(self) -> tuple[Path, bool]:
        """Check what recording needs; mount tracefs if needed. Returns (root, mounted)."""
        if os.geteuid() != 0:
            raise RecordError(
                "recording needs root (tracefs, per-CPU ring buffers, /proc/PID/maps)"
            )
        for p in (self.text_path, self.dat_path):
            if p is not None and not p.parent.is_dir():
                raise RecordError(f"{p.parent}: no such directory")
        for pid in self.config.pids:
            if not Path(f"/proc/{pid}").exists():
                raise RecordError(f"--pid {pid}: no such process")
        return find_tracefs()

    def run(self, workload: Workload) -> RecordResult:
        cfg = self.config
        root, mounted = self.preflight()
        available = set((root / "available_events").read_text().split())
        events, missing = resolve_events(cfg.events, available)
        warnings: list[str] = []
        if missing:
            warnings.append(f"events not available on this kernel, skipped: {', '.join(missing)}")
        if cfg.stack and STACK_EVENT not in events:
            warnings.append(f"--stack: {STACK_EVENT} is not available; no stack traces")
        host = host_facts()
        session = Session(self.log)
        if cfg.qmp:
            self._qmp(cfg.qmp, session)
        for pid in cfg.pids:
            self._add_pid(pid, session)
        warnings += self._discover(session)
        switch_on = cfg.numa_balancing == "on"
        if host.get("numa_balancing") == 0 and not switch_on:
            warnings.append(OFF_WARNING)
            self.log(f"warning: {OFF_WARNING}")
        buffer_kb = cfg.buffer_kb or default_buffer_kb()
        interrupted = False
        tdir: TraceDir | None = None
        text_counts: dict[str, int] = {}
        text_lost = 0
        try:
            with sigterm_as_interrupt():
                if cfg.top_level:
                    if (root / "current_tracer").read_text().strip() != "nop":
                        raise RecordError("current_tracer is not nop: someone else is tracing")
                    tdir = TraceDir(root)
                else:
                    tdir = TraceDir.create_instance(root, f"tracereplay-{os.getpid()}")
                self.tdir = tdir
                self._configure(tdir, events, buffer_kb, cfg, warnings)
                before = read_vmstat()
                with self._balancing(switch_on, session):
                    t0 = time.monotonic()
                    tdir.write("tracing_on", "1")
                    try:
                        workload(session)
                    except KeyboardInterrupt:
                        interrupted = True
                        self.log("interrupted: stopping and saving what was recorded")
                    tdir.write("tracing_on", "0")
                    seconds = time.monotonic() - t0
                after = read_vmstat()
                session.snapshot()
                warnings += self._discover(session)  # VMMs started during the recording
                lost_cpu = tdir.lost_per_cpu()
                in_buffer = sum(tdir.entries_per_cpu().values())
                clock = tdir.clock()
                if self.text_path is not None:
                    text_counts, text_lost = self._save_text(tdir, self.text_path)
                if self.dat_path is not None:
                    self._extract(tdir, self.dat_path, warnings)
        finally:
            errors: list[str] = []
            if tdir is not None:
                errors += tdir.restore()
                if (err := tdir.remove()) is not None:
                    errors.append(err)
            if mounted and (err := unmount_tracefs(root)) is not None:
                errors.append(err)
            if errors:
                self.log("could not restore tracefs: " + "; ".join(errors))
        lost = sum(lost_cpu.values())
        if lost or text_lost:
            warnings.append(
                f"{max(lost, text_lost)} events lost (per CPU: {lost_cpu}); use a bigger "
                "--buffer-kb, a shorter --duration or --events minimal"
            )
        recording: dict[str, Any] = {
            "command": cfg.command_line,
            "seconds": round(seconds, 3),
            "events": events,
            "buffer_size_kb": buffer_kb,
            "trace_clock": clock,
            "record_tgid": True,
            "irq_info": True,
            "stacktrace_trigger": cfg.stack and STACK_EVENT in events,
            "pid_filter": [*cfg.pids, 0] if cfg.pids else "self" if cfg.follow_self else "none",
            "tracefs_buffer": "top-level" if cfg.top_level else "instance",
            "events_in_buffer": in_buffer,
            "lost_events": max(lost, text_lost),
            "lost_events_per_cpu": [lost_cpu[c] for c in sorted(lost_cpu)],
            "interrupted": interrupted,
            "numa_balancing_switched_on": switch_on,
            **session.recording,
        }
        if self.have_trace_cmd:
            recording["trace_cmd"] = _trace_cmd_version()
        if session.notes:
            recording["notes"] = session.notes
        session.fill_facts()
        # /proc/PID/maps of watched processes that are neither [[vm]] nor [[process]]
        other = {pid: m for pid, m in session.maps.items() if not session.known(pid)}
        if other:
            recording["maps"] = {str(pid): text for pid, text in other.items()}
        if session.host.get("numa_balancing", host.get("numa_balancing")) != host.get(
            "numa_balancing"
        ):
            recording["numa_balancing_outside_recording"] = host.get("numa_balancing")
        host.update(session.host)
        host.update(vmstat_before=before, vmstat_after=after)
        outputs = [p for p in (self.text_path, self.dat_path) if p is not None]
        manifests = []
        for out in outputs:
            mpath = out.with_name(out.name + ".manifest.toml")
            text = manifest_text(session.vms, session.processes, host, recording, path=str(mpath))
            with atomic_output(str(mpath), force=True) as tmp:  # the CLI's guard ran first
                Path(tmp).write_text(text)
            manifests.append(mpath)
        for w in warnings:
            self.log(f"warning: {w}")
        return RecordResult(
            outputs=outputs,
            manifests=manifests,
            # the text's own count when there is text (it is what was saved), else the
            # ring buffer's entries, read before trace-cmd extract consumed them
            events=sum(text_counts.values()) if self.text_path is not None else in_buffer,
            event_counts=text_counts,
            lost_events=max(lost, text_lost),
            lost_per_cpu=lost_cpu,
            seconds=seconds,
            vmstat_delta={k: after[k] - before.get(k, 0) for k in after},
            interrupted=interrupted,
            warnings=warnings,
        )

    # -- steps ---------------------------------------------------------------

    def _configure(
        self,
        tdir: TraceDir,
        events: list[str],
        buffer_kb: int,
        cfg: RecordConfig,
        warnings: list[str],
    ) -> None:
        tdir.write("tracing_on", "0")
        try:
            tdir.write("buffer_size_kb", str(buffer_kb))
        except RecordError as e:
            raise RecordError(f"{e} (try a smaller --buffer-kb)") from None
        tdir.write("options/record-tgid", "1")
        tdir.write("options/irq-info", "1")
        if cfg.pids or cfg.follow_self:
            tdir.write("options/event-fork", "1")
            # set_event_pid matches thread ids: list every thread of each process;
            # pid 0 too: the idle tasks take TLB-shootdown IPIs in lazy-TLB mode
            tdir.set_pids([*_threads_of(cfg.pids or [os.getpid()]), 0])
        else:
            tdir.set_pids([])
        for ev in events:
            tdir.write(f"events/{ev.replace(':', '/')}/enable", "1")
        if cfg.stack and STACK_EVENT in events and not tdir.add_trigger(STACK_EVENT, "stacktrace"):
            warnings.append(f"a stacktrace trigger on {STACK_EVENT} was already set; kept it")
        tdir.clear_buffer()

    def _save_text(self, tdir: TraceDir, path: Path) -> tuple[dict[str, int], int]:
        """Stream ``trace`` to ``path`` (gzip for .gz, atomic), counting events on the way."""
        opener: Any = gzip.open if path.name.endswith(".gz") else open

        def tee(src: IO[str], dst: IO[str]) -> Iterator[str]:
            for line in src:
                dst.write(line)
                yield line

        with (
            atomic_output(str(path), force=True) as tmp,  # the CLI's guard ran first
            open(tdir.root / "trace") as src,
            opener(tmp, "wt") as dst,
        ):
            counts, lost = count_text(tee(src, dst))
        return counts, lost

    def _extract(self, tdir: TraceDir, path: Path, warnings: list[str]) -> None:
        with atomic_output(str(path), force=True, suffix=".dat") as tmp:  # the CLI's guard ran first
            self._extract_to(tdir, path, tmp, warnings)

    def _extract_to(self, tdir: TraceDir, path: Path, tmp: str, warnings: list[str]) -> None:
        cmd = ["trace-cmd", "extract", "-o", tmp]
        if tdir.instance is not None:
            cmd += ["-B", tdir.instance]  # our buffer; trace-cmd then removes the instance
            # trace-cmd 3.1.6's extract always takes the top-level buffer as well
            # (trace_extract() calls update_first_instance(instance, 1)), and clears it
            top = sum(TraceDir(tdir.root.parent.parent).entries_per_cpu().values())
            if top:
                warnings.append(
                    f"the top-level tracefs buffer held {top} events of another tracer: "
                    f"trace-cmd extract read (and cleared) them too; they are the unnamed "
                    f"buffer of {path.name}, ours is {tdir.instance}"
                )
        ex = subprocess.run(cmd, capture_output=True, text=True, cwd=path.parent)
        if ex.returncode != 0:
            raise RecordError(f"trace-cmd extract failed: {ex.stderr.strip()[-300:]}")

    def _qmp(self, path: str, session: Session) -> None:
        from tracereplay.record.qmp import discover_vm

        vm = discover_vm(path)
        session.vms.append(vm.facts)
        session.notes += [f"qmp: {n}" for n in vm.notes]
        session.watch(vm.facts.tgid)
        if vm.facts.tgid not in self.config.pids and self.config.pids:
            self.config.pids.append(vm.facts.tgid)
        self.log(
            f"qmp: QEMU pid {vm.facts.tgid} ({vm.facts.name}): {len(vm.facts.memslots)} RAM "
            f"range(s), {'all RAM pinned (VFIO)' if vm.facts.pinned_all else 'no pin info'}"
        )

    def _add_pid(self, pid: int, session: Session) -> None:
        if session.known(pid):
            session.watch(pid)
            return
        vmm = find_kvm_processes(pids=[pid])
        if vmm:
            facts, warning = vm_facts(vmm[0])
            session.vms.append(facts)
            if warning:
                self.log(f"warning: {warning}")
                session.notes.append(warning)
        else:
            session.processes.append(process_facts(pid))
        session.watch(pid)

    def _discover(self, session: Session) -> list[str]:
        """KVM VMMs and pinning processes among the traced ones (all, without a pid filter)."""
        cfg = self.config
        if not cfg.discover:
            return []
        scope: set[int] | None = None
        if cfg.pids:
            scope = set(cfg.pids)
        elif cfg.follow_self:
            scope = descendants(os.getpid()) - {os.getpid()}
        found = discover_targets(session, scope, self.log, exclude={os.getpid()})
        session.notes += [n for n in found if n not in session.notes]
        return found

    @contextlib.contextmanager
    def _balancing(self, switch_on: bool, session: Session) -> Iterator[None]:
        """NUMA balancing on for the tracing when asked (restored even on Ctrl-C/SIGTERM)."""
        if not switch_on:
            yield
            return
        with numa_balancing_on() as state:
            session.host["numa_balancing"] = int(state.numa_balancing)
            self.log(f"kernel.numa_balancing = {state.numa_balancing} for the recording")
            yield


def _threads_of(pids: list[int]) -> list[int]:
    tids: list[int] = []
    for pid in pids:
        try:
            tids += sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            tids.append(pid)
    return list(dict.fromkeys(tids))


def _trace_cmd_version() -> str:
    out = subprocess.run(["trace-cmd", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"
