#!/usr/bin/env python3
"""Record the busy-host corpus the way users record (root, tracefs, /dev/kvm, trace-cmd, perf).

On this machine, at the same time:

* two lab VMs (``tracereplay.lab.kvm_vmm`` run twice, 2 vCPUs each):
  ``tr-vmm-pinned`` with the first 64 of 256 MiB io_uring-pinned,
  ``tr-vmm-plain`` with nothing pinned;
* a pinned non-VM process: the lab ``threads`` workload, ``tr-pinned-app``
  (64 MiB, the first 48 MiB io_uring-pinned, 2 threads);
* other load beside them, niced: a gcc compile loop and a fork/exec loop (and
  whatever else the host runs: other engineers' test suites here);
* NUMA balancing on (restored afterwards, also on Ctrl-C / SIGTERM).

Tracing starts when a workload thread has run ``--warmup-ms`` of CPU time
(the first NUMA scan of a process comes after ``scan_delay_ms`` = 1000 ms of a
thread's own CPU time) and stops once every workload took NUMA hint faults
(``total_numa_faults`` in /proc/PID/task/*/sched), i.e. the window holds a
scan of each. An attempt whose window lacks a NUMA scan of a VM's guest RAM,
or holds more than ``--max-events`` events, is thrown away and the workloads
are started afresh (a later window would find scanning slowed down: on one
node every fault is local and the scan period grows).

The whole host is traced into the *top-level* tracefs buffer, no pid filter,
with a ``stacktrace`` trigger on ``kvm:kvm_unmap_hva_range``, and written as:

* ``STEM.dat``           ``trace-cmd extract`` (trace.dat v7). trace.dat holds no
  per-event tgid, and trace-cmd 3.1.6's extract saves no tgid map even with
  ``record-tgid`` on (only saved cmdlines): as from plain ``trace-cmd record``;
* ``STEM.txt.xz``        the tracefs ``trace`` text read with ``record-tgid`` off:
  no tgid column, as recorded without ``record-tgid``;
* ``STEM.tgid.txt.xz``   the same buffer read with ``record-tgid`` on: the
  reference source (kept with ``--keep-tgid-text``; never given to the tool);
* ``STEM.perf.data[.xz]`` / ``STEM.perf-g.data[.xz]``  ``perf record -a`` of the
  same tracepoints, without and with ``-g``, from one second before tracing
  starts until it stops;
* ``STEM.tgids.json``    the true thread -> process map, read from
  /proc/*/task while the workloads ran;
* ``FILE.manifest.toml`` next to each trace: ``[[vm]]`` / ``[[process]]`` with
  tgid, memslots / regions and pinned ranges (found through the kvm-vm fds and
  the lab layout memfd, as ``tracereplay record`` does), **without** ``tids``;
* ``STEM.reference.json`` ``tests/reference_figures.py`` on the tgid text;
* ``STEM.counts.json``   per-event counts of each file and lost events.

Examples::

    # the small committed corpus (fixtures/)
    python scripts/record_corpus.py fixtures/busy-host-6.18 --max-events 150000 \\
        --attempts 15 --xz-perf
    # a large one (the slow tests regenerate it)
    python scripts/record_corpus.py /tmp/corpus/busy-host --events numa --seconds 10 \\
        --buffer-kb 65536 --keep-tgid-text
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracereplay.errors import TraceReplayError
from tracereplay.record.balancing import numa_balancing_on
from tracereplay.record.events import STACK_EVENT, resolve_events
from tracereplay.record.host import host_facts, read_vmstat
from tracereplay.record.lab import start_child
from tracereplay.record.manifest_out import manifest_text
from tracereplay.record.procfs import find_kvm_processes
from tracereplay.record.recorder import count_text, sigterm_as_interrupt
from tracereplay.record.targets import process_facts, vm_facts
from tracereplay.record.tracefs import RecordError, TraceDir, find_tracefs

REPO = Path(__file__).resolve().parent.parent
REFERENCE_SCRIPT = REPO / "tests" / "reference_figures.py"
# "small": what the analysis needs, without the per-fault KVM events this KVM
# never emits (kvm_page_fault, kvm_age_hva) and csd_queue_cpu, which doubles
# every IPI; page_fault_user stays (the pinned process's hint faults)
EVENT_SETS = {
    "small": "minimal,exceptions:page_fault_user",
    "numa": "numa",
}
VMS = (("tr-vmm-pinned", "256M", "64M"), ("tr-vmm-plain", "256M", "0"))
PINNED_APP = ("tr-pinned-app", "64M", "48M")
COMPILE_SRC = "".join(
    f"int f{i}(int x) {{ int s = 0; for (int j = 0; j < x; j++) s += j * {i}; return s; }}\n"
    for i in range(300)
)


def log(msg: str) -> None:
    print(f"record_corpus: {msg}", file=sys.stderr, flush=True)


@contextmanager
def workloads(
    seconds: float, nice: int = 0
) -> Iterator[list[tuple[subprocess.Popen[str], dict[str, Any]]]]:
    """The two VMs and the pinned process, running for ``seconds``; stopped on exit."""
    procs: list[tuple[subprocess.Popen[str], dict[str, Any]]] = []
    try:
        for comm, mem, pinned in VMS:
            args = ["--mem", mem, "--pinned", pinned, "--threads", "2"]
            args += ["--seconds", str(seconds), "--comm", comm]
            procs.append(start_child("kvm_vmm", args, nice=nice))
        comm, mem, pinned = PINNED_APP
        args = ["--mem", mem, "--pinned", pinned, "--threads", "2", "--seconds", str(seconds)]
        procs.append(start_child("workload", [*args, "--comm", comm], nice=nice))
        for _, info in procs:
            log(f"workload {info['comm']} pid {info['pid']} ready")
        yield procs
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, _ in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def background_load(workdir: Path) -> Iterator[None]:
    """Niced compile and fork/exec loops: a busy host beside the workloads."""
    src = workdir / "load.c"
    src.write_text(COMPILE_SRC)
    loops = [
        f"while :; do gcc -O2 -c {shlex.quote(str(src))} -o /dev/null; sleep 1; done",
        "while :; do /bin/true; sleep 0.05; done",
    ]
    procs = [
        subprocess.Popen(["nice", "-n", "10", "sh", "-c", body], start_new_session=True)
        for body in loops
    ]
    try:
        yield
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)  # the loop and its current child
            p.wait()


def _sched_values(pid: int, key: str) -> list[float]:
    """``key`` of /proc/PID/task/*/sched, one value per thread."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out = []
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/sched").read_text()
        except OSError:
            continue
        m = re.search(rf"^{re.escape(key)}\s*:\s*([\d.]+)", text, re.M)
        if m:
            out.append(float(m.group(1)))
    return out


def busiest_thread_ms(pid: int) -> float:
    """CPU time of the process's busiest thread (``se.sum_exec_runtime``, ms).

    task_tick_numa() paces NUMA scans by a thread's own CPU time: the first scan
    of a process comes once one of its threads ran ``scan_delay_ms`` (1000 ms).
    """
    return max(_sched_values(pid, "se.sum_exec_runtime"), default=0.0)


def hint_faulted(pid: int) -> bool:
    """Has a thread of ``pid`` taken NUMA hint faults (``total_numa_faults`` > 0)?

    The count decays as the scanner ages it, so the caller latches the answer.
    """
    return any(v > 0 for v in _sched_values(pid, "total_numa_faults"))


def snapshot_tgids(into: dict[int, int]) -> None:
    """Add every thread of every process now in /proc to ``into`` (tid -> tgid)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            if tid.isdigit():
                into[int(tid)] = int(pid)


@contextmanager
def perf_records(stem: Path, events: list[str]) -> Iterator[list[Path]]:
    """``perf record -a`` without and with ``-g``, from before tracing starts to after it stops."""
    avail = subprocess.run(["perf", "list", "tracepoint"], capture_output=True, text=True).stdout
    evs = [e for e in events if re.search(rf"^\s*{re.escape(e)}\s", avail, re.M)]
    missing = sorted(set(events) - set(evs))
    if missing:
        log(f"perf list lacks {', '.join(missing)}: not in the perf.data files")
    outs = [stem.with_name(stem.name + ".perf.data"), stem.with_name(stem.name + ".perf-g.data")]
    for out in outs:  # perf would keep an existing file as FILE.old
        out.unlink(missing_ok=True)
    procs = []
    for out, callchains in zip(outs, (False, True), strict=True):
        cmd = [
            "perf",
            "record",
            "-a",
            "-m",
            "8M",
            "--no-buildid",
            "--no-buildid-cache",
            "-o",
            str(out),
        ]
        cmd += ["-g"] if callchains else []
        for e in evs:
            cmd += ["-e", e]
        procs.append(subprocess.Popen([*cmd, "--", "sleep", "3600"], stderr=subprocess.PIPE))
    time.sleep(1.0)  # perf opens its events, mmaps and starts writing
    try:
        yield outs
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            _, err = p.communicate(timeout=120)
            log("perf: " + err.decode(errors="replace").strip().replace("\n", "; ")[-300:])


def configure(tdir: TraceDir, events: list[str], buffer_kb: int) -> None:
    tdir.write("tracing_on", "0")
    tdir.write("buffer_size_kb", str(buffer_kb))
    tdir.write("options/record-tgid", "1")  # for the reference text only
    tdir.write("options/irq-info", "1")
    tdir.set_pids([])  # whole host
    for ev in events:
        tdir.write(f"events/{ev.replace(':', '/')}/enable", "1")
    if STACK_EVENT in events and not tdir.add_trigger(STACK_EVENT, "stacktrace"):
        raise RecordError(f"a stacktrace trigger on {STACK_EVENT} is already set by someone")
    tdir.clear_buffer()


def save_text(tdir: TraceDir, path: Path) -> tuple[dict[str, int], int]:
    """Write ``trace`` (reading it does not consume the buffer) xz-compressed; count its events."""

    def tee(src: Iterator[str], dst: Any) -> Iterator[str]:
        for line in src:
            dst.write(line)
            yield line

    # xz: half the size of gzip on this text (the readers unpack it transparently)
    with open(tdir.root / "trace") as src, lzma.open(path, "wt", preset=6) as dst:
        return count_text(tee(src, dst))


def extract(dat: Path) -> None:
    """``trace-cmd extract`` of the top-level buffer (it consumes and clears it)."""
    ex = subprocess.run(
        ["trace-cmd", "extract", "-o", str(dat.resolve())], capture_output=True, text=True
    )
    if ex.returncode != 0:
        raise RecordError(f"trace-cmd extract failed: {ex.stderr.strip()[-300:]}")


def report_counts(dat: Path) -> dict[str, int]:
    out = subprocess.run(
        ["trace-cmd", "report", str(dat)], capture_output=True, text=True, check=True
    )
    counts: Counter[str] = Counter()
    for line in out.stdout.splitlines():
        m = re.match(r"^\s*.+?-\d+\s+\[\d+\]\s+\d+\.\d+:\s+(\w+):", line)
        if m:
            counts[m.group(1)] += 1
    return dict(sorted(counts.items()))


def perf_counts(data: Path) -> dict[str, int]:
    out = subprocess.run(
        ["perf", "script", "-F", "event", "-i", str(data)], capture_output=True, text=True
    ).stdout
    return dict(
        sorted(Counter(ln.strip().rstrip(":") for ln in out.splitlines() if ln.strip()).items())
    )


def write_manifests(
    outputs: list[Path], host: dict[str, Any], recording: dict[str, Any], pids: list[int]
) -> str:
    """One manifest per output: VMs and the pinned process as ``record`` finds them, no tids."""
    vmms = find_kvm_processes(pids=pids)
    vms = [vm_facts(v)[0] for v in vmms]
    procs = [process_facts(p) for p in pids if p not in {v.pid for v in vmms}]
    for f in [*vms, *procs]:
        f.tids, f.maps, f.vm_pin_kib = [], None, None  # the tgid-less must-show case
    text = manifest_text(vms, procs, host, recording)
    for out in outputs:
        out.with_name(out.name + ".manifest.toml").write_text(text)
    return text


@dataclass
class Window:
    """One traced window: what the manifest and counts need."""

    seconds: float
    before: dict[str, int]
    after: dict[str, int]
    lost: int
    in_buffer: int
    perf: list[Path]


def trace_window(
    tdir: TraceDir,
    stem: Path,
    events: list[str],
    args: argparse.Namespace,
    tgids: dict[int, int],
    pids: list[int],
) -> Window:
    """Trace (and perf-record) until every workload took NUMA hint faults.

    At least ``args.seconds``, at most ``args.max_seconds``. A hint fault comes
    right after the scan that protected the page, so once every workload had
    one, the window holds a scan of each. The tracefs buffer is left to be read.
    """
    configure(tdir, events, args.buffer_kb)
    faulted: set[int] = set()
    with ExitStack() as stack:
        perf = stack.enter_context(perf_records(stem, events)) if args.perf else []
        before = read_vmstat()
        t0 = time.monotonic()
        tdir.write("tracing_on", "1")
        while (elapsed := time.monotonic() - t0) < args.max_seconds:
            snapshot_tgids(tgids)
            faulted |= {p for p in pids if p not in faulted and hint_faulted(p)}
            if len(faulted) == len(pids) and elapsed >= args.seconds:
                break
            time.sleep(0.2)
        tdir.write("tracing_on", "0")
        seconds = time.monotonic() - t0
        after = read_vmstat()
    lost = sum(tdir.lost_per_cpu().values())
    return Window(seconds, before, after, lost, sum(tdir.entries_per_cpu().values()), perf)


def load_reference_module() -> Any:
    """tests/reference_figures.py (it imports nothing from tracereplay)."""
    spec = importlib.util.spec_from_file_location("reference_figures", REFERENCE_SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scanned_enough(ref: dict[str, Any]) -> list[str]:
    """What the window lacks: a NUMA scan of each VM's guest RAM, hint faults of the process."""
    lacks = [
        f"no NUMA scan reached the guest RAM of VM {tgid} ({vm['name']})"
        for tgid, vm in ref["vms"].items()
        if vm["policies"]["baseline"]["kvm_unmap_calls"] == 0
    ]
    lacks += [
        f"no hint fault in process {tgid} ({p['name']})"
        for tgid, p in ref["processes"].items()
        if p["hint_fault_pages_unpinned"] == 0
    ]
    return lacks


def record(args: argparse.Namespace) -> dict[str, Any]:
    stem = Path(args.stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    root, mounted = find_tracefs()
    if mounted:
        raise RecordError("tracefs was not mounted; mount it at /sys/kernel/tracing first")
    available = set((root / "available_events").read_text().split())
    events, missing = resolve_events(EVENT_SETS[args.events], available)
    if missing:
        log(f"not on this kernel, skipped: {', '.join(missing)}")
    tgids: dict[int, int] = {}
    host = host_facts()
    outside = host.get("numa_balancing")
    tdir = TraceDir(root)
    if tdir.read("current_tracer") != "nop":
        raise RecordError("current_tracer is not nop: someone else uses the top-level buffer")
    paths = {k: stem.with_name(stem.name + k) for k in (".dat", ".txt.xz", ".tgid.txt.xz")}
    refmod = load_reference_module()
    result: dict[str, Any] = {}
    with ExitStack() as outer:
        outer.enter_context(sigterm_as_interrupt())
        state = outer.enter_context(numa_balancing_on())
        # NUMA scans are paced by each task's own CPU time (task_tick_numa) and slow
        # down once a pass finds every fault local (one node): the window must hold
        # the first scans, so each attempt starts the workloads afresh
        for attempt in range(1, args.attempts + 1):
            tgids.clear()
            with ExitStack() as stack:
                tmp = stack.enter_context(tempfile.TemporaryDirectory())
                procs = stack.enter_context(workloads(3600, args.nice))
                pids = [int(info["pid"]) for _, info in procs]
                stack.enter_context(background_load(Path(tmp)))
                # start tracing shortly before the first scan of the first workload
                warm_end = time.monotonic() + 60
                while time.monotonic() < warm_end:
                    snapshot_tgids(tgids)
                    if max(busiest_thread_ms(p) for p in pids) >= args.warmup_ms:
                        break
                    time.sleep(0.05)
                try:
                    win = trace_window(tdir, stem, events, args, tgids, pids)
                    if win.in_buffer > args.max_events and attempt < args.attempts:
                        log(f"attempt {attempt}: {win.in_buffer} events > --max-events: again")
                        continue  # not worth saving
                    result["tgid_text"] = save_text(tdir, paths[".tgid.txt.xz"])[0]
                    host.update(
                        numa_balancing=int(state.numa_balancing),
                        vmstat_before=win.before,
                        vmstat_after=win.after,
                    )
                    recording = _recording(args, events, win, outside)
                    manifest = write_manifests([paths[".dat"]], host, recording, pids)
                    with lzma.open(paths[".tgid.txt.xz"], "rt") as f:
                        ref = refmod.reference(f, tomllib.loads(manifest))
                    lacks = scanned_enough(ref)
                    if win.in_buffer > args.max_events:
                        lacks.append(f"{win.in_buffer} events > --max-events {args.max_events}")
                    if lacks and attempt < args.attempts:
                        log(f"attempt {attempt}: {'; '.join(lacks)}: again")
                        continue
                    if lacks:
                        log(f"attempt {attempt}: {'; '.join(lacks)}: keeping it anyway")
                    tdir.write("options/record-tgid", "0")
                    result["text"] = save_text(tdir, paths[".txt.xz"])[0]
                    extract(paths[".dat"])
                    write_manifests([paths[".txt.xz"], *win.perf], host, recording, pids)
                    break
                finally:
                    errors = tdir.restore()
                    if errors:
                        log("could not restore tracefs: " + "; ".join(errors))
    # the workloads are gone now: nothing below is traced
    result["dat"] = report_counts(paths[".dat"])
    result["perf"] = {p.name: perf_counts(p) for p in win.perf}
    result["lost_events"] = win.lost
    result["vmstat_delta"] = {
        k: win.after[k] - win.before.get(k, 0)
        for k in win.after
        if win.after[k] != win.before.get(k, 0)
    }
    if args.xz_perf:  # perf.data does not compress itself
        for p in win.perf:
            subprocess.run(["xz", "-9", "-T1", "-f", str(p)], check=True)
            manifest = p.with_name(p.name + ".manifest.toml")
            manifest.rename(p.with_name(p.name + ".xz.manifest.toml"))
    stem.with_name(stem.name + ".tgids.json").write_text(
        json.dumps({str(k): v for k, v in sorted(tgids.items())}, indent=0) + "\n"
    )
    stem.with_name(stem.name + ".counts.json").write_text(json.dumps(result, indent=1) + "\n")
    ref_path = stem.with_name(stem.name + ".reference.json")
    ref_path.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    if not args.keep_tgid_text:
        paths[".tgid.txt.xz"].unlink()
    return result


def _recording(
    args: argparse.Namespace, events: list[str], win: Window, outside: Any
) -> dict[str, Any]:
    return {
        "command": shlex.join(["python", "scripts/record_corpus.py", *sys.argv[1:]]),
        "seconds": round(win.seconds, 3),
        "events": events,
        "buffer_size_kb": args.buffer_kb,
        "tracefs_buffer": "top-level",
        "pid_filter": "none",
        "record_tgid": False,
        "irq_info": True,
        "stacktrace_trigger": STACK_EVENT in events,
        "events_in_buffer": win.in_buffer,
        "lost_events": win.lost,
        "numa_balancing_outside_recording": outside,
        "notes": [
            "busy host: two lab VMs, a pinned threads workload, a gcc loop and a fork/exec "
            "loop (niced), other engineers' jobs",
            "the .txt.xz was read from the same buffer with record-tgid off; the .dat from "
            "trace-cmd extract carries no tgids; the perf files cover a slightly longer window",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("stem", help="output path prefix, e.g. fixtures/busy-host-6.18")
    ap.add_argument("--seconds", type=float, default=2.0, help="shortest tracefs window (seconds)")
    ap.add_argument(
        "--max-events",
        type=int,
        default=10**9,
        help="retry a window holding more events than this (the busy host's own load varies)",
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="longest window: it ends once every workload took NUMA hint faults",
    )
    ap.add_argument(
        "--warmup-ms",
        type=float,
        default=850.0,
        help="start tracing when a workload thread ran this long (its first scan comes at 1000)",
    )
    ap.add_argument(
        "--attempts",
        type=int,
        default=5,
        help="runs to try until every VM was NUMA-scanned in the window",
    )
    ap.add_argument(
        "--keep-tgid-text",
        action="store_true",
        help="keep STEM.tgid.txt.xz (the reference source; large)",
    )
    ap.add_argument("--events", choices=sorted(EVENT_SETS), default="small")
    ap.add_argument("--buffer-kb", type=int, default=16384, help="per-CPU ring buffer")
    ap.add_argument("--no-perf", dest="perf", action="store_false", help="skip the perf.data files")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness added to the workloads (e.g. -10 on a crowded host, so that their "
        "first NUMA scans come within seconds; scans are paced by their own CPU time)",
    )
    ap.add_argument("--xz-perf", action="store_true", help="compress the perf.data files (FILE.xz)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("record_corpus: needs root", file=sys.stderr)
        return 2
    for tool in ("trace-cmd", *(["perf"] if args.perf else [])):
        if shutil.which(tool) is None:
            print(f"record_corpus: {tool} is not installed", file=sys.stderr)
            return 2
    try:
        result = record(args)
    except (TraceReplayError, KeyboardInterrupt) as e:
        print(f"record_corpus: stopped: {e}", file=sys.stderr)
        return 3
    print(json.dumps({k: result[k] for k in ("lost_events", "vmstat_delta")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
