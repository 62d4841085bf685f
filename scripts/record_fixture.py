#!/usr/bin/env python3
"""Record a real NUMA-balancing fixture trace on this machine (root, tracefs).

Examples::

    # plain multi-threaded process, 60 of 64 MiB io_uring-pinned
    python scripts/record_fixture.py fixtures/pinned-threads-6.18.txt \\
        --workload threads --mem 64M --pinned 60M --threads 2 --seconds 6

    # minimal KVM VMM, with a stacktrace trigger on kvm_unmap_hva_range
    python scripts/record_fixture.py fixtures/kvm-pinned-6.18.txt.gz \\
        --workload kvm --mem 512M --pinned 384M --threads 2 --seconds 6 --stack

Writes, next to ``OUT`` (which ends in ``.txt`` or ``.txt.gz``):

* ``OUT``                   the tracefs ``trace`` text (read first: it does not consume);
* ``<stem>.dat``            ``trace-cmd extract`` of the same ring buffer (consumes it);
* ``<stem>.counts.json``    per-event counts from ``trace-cmd report`` of the .dat;
* ``OUT.manifest.toml``     the DESIGN section 6 manifest plus host facts and vmstat,
  and the same manifest as ``<stem>.dat.manifest.toml``.

Events: enabled through tracefs (Debian's trace-cmd 3.1.6 cannot enable
ftrace here), only for this recorder, its children (``event-fork``) and the
idle tasks unless ``--all-pids``. Every tracefs file and NUMA setting changed
is restored on exit, including on Ctrl-C, SIGTERM and exceptions. The ring
buffer's previous contents are cleared.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracereplay.lab.numa import NumaState

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "tracereplay" / "lab"
LAB_PACKAGE = "_tracereplay_lab"

# The lab modules are loaded as a stand-alone package: importing
# ``tracereplay`` would pull in the analysis stack (pyarrow, duckdb, polars),
# which costs seconds and, in the traced child, thousands of page_fault_user
# events that have nothing to do with the workload.
_CHILD = f"""
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location(
    {LAB_PACKAGE!r}, {str(LAB / "__init__.py")!r}, submodule_search_locations=[{str(LAB)!r}])
sys.modules[{LAB_PACKAGE!r}] = mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
sys.exit(importlib.import_module({LAB_PACKAGE!r} + "." + sys.argv[1]).main(sys.argv[2:]))
"""


def load_lab(module: str) -> ModuleType:
    """Import ``tracereplay/lab/<module>.py`` without importing ``tracereplay``."""
    if LAB_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            LAB_PACKAGE, LAB / "__init__.py", submodule_search_locations=[str(LAB)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[LAB_PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{LAB_PACKAGE}.{module}")


numa_balancing = load_lab("numa").numa_balancing
parse_size = load_lab("pinned").parse_size

TRACEFS = Path("/sys/kernel/tracing")
EVENTS = [
    "kvm:kvm_unmap_hva_range",
    "kvm:kvm_age_hva",
    "kvm:kvm_page_fault",
    "tlb:tlb_flush",
    "ipi:ipi_send_cpu",
    "ipi:ipi_send_cpumask",
    "sched:sched_skip_vma_numa",
    "sched:sched_move_numa",
    "sched:sched_swap_numa",
    "sched:sched_stick_numa",
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
    "exceptions:page_fault_user",
    "migrate:mm_migrate_pages",
    "task:task_newtask",
    "task:task_rename",
    # Not in the DESIGN list, but with one target CPU (always, on 2 CPUs) a TLB
    # shootdown is ipi_send_cpu with callback generic_smp_call_function_single_interrupt;
    # only csd_queue_cpu names the function it delivers (flush_tlb_func).
    "csd:csd_queue_cpu",
]
STACK_EVENT = "kvm:kvm_unmap_hva_range"
VMSTAT_PREFIXES = ("numa_", "pgmigrate_")
PIN_COMMENT = "# long-term pinned: io_uring IORING_REGISTER_BUFFERS (FOLL_LONGTERM)"


class Tracefs:
    """Changes tracefs files and remembers the first old value of each to restore."""

    def __init__(self, root: Path = TRACEFS) -> None:
        self.root = root
        self._saved: dict[str, str] = {}
        self._triggers_added: list[tuple[str, str]] = []
        self._pid_filter_saved: list[str] | None = None

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text().strip()

    def write(self, rel: str, value: str) -> None:
        if rel not in self._saved:
            old = self.read(rel)
            if rel == "buffer_size_kb":
                # "7 (expanded: 1408)": not allocated yet; writing 7 back would
                # shrink it for good, so restore the size it would expand to.
                m = re.search(r"expanded:\s*(\d+)", old)
                old = m.group(1) if m else old.split()[0]
            self._saved[rel] = old.rstrip("*")  # "1*" = soft-enabled by a trigger
        (self.root / rel).write_text(value)

    def add_trigger(self, event: str, trigger: str) -> None:
        rel = f"events/{event.replace(':', '/')}/trigger"
        current = [ln for ln in self.read(rel).splitlines() if not ln.startswith("#")]
        if any(ln.split(":")[0] == trigger for ln in current):
            return  # already there (someone else's): leave it alone
        (self.root / rel).write_text(trigger)
        self._triggers_added.append((rel, trigger))

    def set_pids(self, pids: list[int]) -> None:
        if self._pid_filter_saved is None:
            self._pid_filter_saved = self.read("set_event_pid").split()
        with open(self.root / "set_event_pid", "w") as f:  # O_TRUNC replaces the list
            f.write(" ".join(map(str, pids)))

    def clear_buffer(self) -> None:
        with open(self.root / "trace", "w"):  # opening `trace` with O_TRUNC clears all CPUs
            pass

    def restore(self) -> list[str]:
        """Put everything back; returns what could not be restored."""
        errors: list[str] = []

        def attempt(what: str, rel: str, value: str, mode: str = "w") -> None:
            try:
                with open(self.root / rel, mode) as f:
                    f.write(value)
            except OSError as e:
                errors.append(f"{what}: {e}")

        attempt("tracing_on", "tracing_on", "0")
        for rel, trigger in reversed(self._triggers_added):
            attempt(rel, rel, f"!{trigger}")
        if self._pid_filter_saved is not None:
            attempt("set_event_pid", "set_event_pid", " ".join(self._pid_filter_saved))
        # tracing_on last, so nothing is traced while the rest is put back
        for rel in sorted(self._saved, key=lambda r: r == "tracing_on"):
            attempt(rel, rel, self._saved[rel])
        return errors


def read_vmstat() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/vmstat", encoding="ascii") as f:
        for line in f:
            name, value = line.split()
            if name.startswith(VMSTAT_PREFIXES):
                out[name] = int(value)
    return out


def numa_nodes() -> int:
    return len([d for d in os.listdir("/sys/devices/system/node") if re.fullmatch(r"node\d+", d)])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the restore path also runs on kill."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def start_workload(args: argparse.Namespace) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start the workload as a child (own comm and tgid); wait for its JSON ready line."""
    module = {"threads": "workload", "kvm": "kvm_vmm"}[args.workload]
    cmd = [
        sys.executable,
        "-S",
        "-c",
        _CHILD,
        module,
        "--mem",
        args.mem,
        "--pinned",
        args.pinned,
        "--threads",
        str(args.threads),
        "--seconds",
        str(args.seconds),
    ]
    if args.workload == "threads":
        cmd += ["--touch", args.touch, "--chunk", args.chunk]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"workload exited with {proc.returncode} before it was ready")
    return proc, json.loads(line)


# ---------------------------------------------------------------- outputs


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def manifest_text(info: dict[str, Any], host: dict[str, Any], recording: dict[str, Any]) -> str:
    """DESIGN section 6 manifest; addresses and sizes as TOML hex integers."""
    lines = [
        f"# Written by scripts/record_fixture.py on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "",
    ]
    pinned = info.get("pinned") or {"size": 0}
    if "memslots" in info:  # a KVM VMM
        lines += ["[[vm]]", f"tgid = {info['pid']}", f"name = {toml_value(info['comm'])}"]
        for slot in info["memslots"]:
            lines += [
                "[[vm.memslot]]",
                f"hva_start = {slot['hva_start']:#x}",
                f"size = {slot['size']:#x}",
                f"gpa_start = {slot['gpa_start']:#x}",
            ]
        table = "vm.pinned"
    else:  # a plain process is not a VM: its memory is a region, not a memslot
        region = info["region"]
        lines += [
            "[[process]]",
            f"tgid = {info['pid']}",
            f"name = {toml_value(info['comm'])}",
            "[[process.region]]",
            f"hva_start = {region['hva_start']:#x}",
            f"size = {region['size']:#x}",
        ]
        table = "process.pinned"
    if pinned["size"]:
        lines += [
            f"[[{table}]]",
            PIN_COMMENT,
            f"hva_start = {pinned['hva_start']:#x}",
            f"size = {pinned['size']:#x}",
        ]
    lines += ["", "[host]"]
    lines += [
        f"{k} = {toml_value(host[k])}" for k in ("kernel", "numa_nodes", "cpus", "numa_balancing")
    ]
    lines += ["", "[host.numa_balancing_tunables]  # absent: not readable on this machine"]
    lines += [f"{k} = {v}" for k, v in host["numa_tunables"].items() if v is not None]
    for name in ("vmstat_before", "vmstat_after"):
        lines += ["", f"[host.{name}]"] + [f"{k} = {v}" for k, v in host[name].items()]
    lines += ["", "[recording]"] + [f"{k} = {toml_value(v)}" for k, v in recording.items()]
    return "\n".join(lines) + "\n"


_TEXT_EVENT = re.compile(r"^\s*.+?-\d+\s+\(\s*[\d-]+\)\s+\[\d+\]\s+\S+\s+\d+\.\d+:\s+(\w+):")
_TEXT_STACK = re.compile(r"^\s*.+?-\d+\s+\(\s*[\d-]+\)\s+\[\d+\]\s+\S+\s+\d+\.\d+:\s+<stack trace>")
_REPORT_EVENT = re.compile(r"^\s*.+?-\d+\s+\[\d+\]\s+\d+\.\d+:\s+(\w+):")
_LOST = re.compile(r"\[LOST (\d+) EVENTS\]")


def _count(
    lines: Iterator[str] | IO[str], event: re.Pattern[str], stack: re.Pattern[str] | None
) -> tuple[dict[str, int], int]:
    counts: Counter[str] = Counter()
    lost = 0
    for line in lines:
        m = event.match(line)
        if m:
            counts[m.group(1)] += 1
        elif stack is not None and stack.match(line):
            counts["kernel_stack"] += 1  # trace-cmd calls a stacktrace-trigger record kernel_stack
        elif "LOST" in line:
            lost += sum(int(x) for x in _LOST.findall(line))
    return dict(sorted(counts.items())), lost


def count_text(text: str) -> tuple[dict[str, int], int]:
    """Per-event counts and lost events of tracefs ``trace`` text (record-tgid, irq-info)."""
    return _count(iter(text.splitlines()), _TEXT_EVENT, _TEXT_STACK)


def count_report(dat: Path) -> tuple[dict[str, int], int]:
    """Per-event counts and lost events of ``trace-cmd report`` on a .dat."""
    out = subprocess.run(
        ["trace-cmd", "report", str(dat)], check=True, capture_output=True, text=True
    ).stdout
    return _count(iter(out.splitlines()), _REPORT_EVENT, None)


def trace_cmd_version() -> str:
    out = subprocess.run(["trace-cmd", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------- main


def record(args: argparse.Namespace) -> int:
    out = Path(args.out)
    stem = out.name.removesuffix(".gz").removesuffix(".txt")
    dat = out.with_name(stem + ".dat")
    counts_path = out.with_name(stem + ".counts.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    available = set((TRACEFS / "available_events").read_text().split())
    events = [e for e in EVENTS if e in available]
    if len(events) < len(EVENTS):
        print(f"not available here: {sorted(set(EVENTS) - available)}", file=sys.stderr)
    if (TRACEFS / "current_tracer").read_text().strip() != "nop":
        raise SystemExit("current_tracer is not nop; refusing to disturb someone else's tracing")
    have_trace_cmd = shutil.which("trace-cmd") is not None

    tfs = Tracefs()
    proc: subprocess.Popen[str] | None = None
    state: NumaState | None = None
    result: dict[str, Any] = {}
    try:
        with (
            sigterm_as_interrupt(),
            numa_balancing(
                1, scan_delay_ms=args.scan_delay_ms, scan_period_min_ms=args.scan_period_min_ms
            ) as state,
        ):
            for note in state.notes:
                print(f"numa: {note}", file=sys.stderr)
            tfs.write("tracing_on", "0")
            tfs.write("buffer_size_kb", str(args.buffer_kb))
            tfs.write("options/record-tgid", "1")
            if args.all_pids:
                tfs.set_pids([])
            else:
                # ourselves (children follow via event-fork) plus the idle tasks,
                # which receive TLB-shootdown IPIs while in lazy-TLB mode
                tfs.write("options/event-fork", "1")
                tfs.set_pids([os.getpid(), 0])
            for ev in events:
                tfs.write(f"events/{ev.replace(':', '/')}/enable", "1")
            if args.stack and STACK_EVENT in available:
                tfs.add_trigger(STACK_EVENT, "stacktrace")
            tfs.clear_buffer()
            before = read_vmstat()
            tfs.write("tracing_on", "1")
            proc, info = start_workload(args)
            print(f"workload ready: {json.dumps(info)}", file=sys.stderr)
            assert proc.stdout is not None
            tail = proc.stdout.read()
            rc = proc.wait()
            proc = None
            tfs.write("tracing_on", "0")
            after = read_vmstat()
            if rc != 0:
                raise RuntimeError(f"workload failed with exit code {rc}")
            result = json.loads(tail.strip().splitlines()[-1]) if tail.strip() else {}
            # `trace` does not consume the ring buffer, trace-cmd extract does: text first
            text = (TRACEFS / "trace").read_text()
            if have_trace_cmd:
                ex = subprocess.run(
                    ["trace-cmd", "extract", "-o", str(dat.resolve())],
                    capture_output=True,
                    text=True,
                    cwd=out.parent,
                )
                if ex.returncode != 0:
                    raise RuntimeError(f"trace-cmd extract failed: {ex.stderr.strip()}")
    except KeyboardInterrupt:
        print("interrupted; tracefs and NUMA settings restored", file=sys.stderr)
        return 130
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        errors = tfs.restore()
        if errors:
            print("could not restore: " + "; ".join(errors), file=sys.stderr)

    if out.name.endswith(".gz"):
        with gzip.open(out, "wt", compresslevel=9) as f:
            f.write(text)
    else:
        out.write_text(text)
    text_counts, text_lost = count_text(text)
    summary: dict[str, Any] = {"text_event_counts": text_counts, "text_lost_events": text_lost}
    recording: dict[str, Any] = {
        "command": shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "workload": args.workload,
        "mem": args.mem,
        "pinned": args.pinned,
        "threads": args.threads,
        "seconds": args.seconds,
    }
    if args.workload == "threads":
        recording.update(touch=info.get("touch", args.touch), chunk=info.get("chunk", 0))
    recording.update({k: v for k, v in result.items() if k != "pid" and v is not None})
    recording.update(
        buffer_size_kb=args.buffer_kb,
        trace_clock=_current_clock(),
        record_tgid=True,
        irq_info=True,
        stacktrace_trigger=bool(args.stack),
        pid_filter=not args.all_pids,
        events=events,
    )
    if have_trace_cmd:
        version = trace_cmd_version()
        rep_counts, rep_lost = count_report(dat)
        counts_path.write_text(
            json.dumps(
                {
                    "source": f"trace-cmd report {version}",
                    "event_counts": rep_counts,
                    "lost_events": rep_lost,
                },
                indent=1,
            )
            + "\n"
        )
        recording["trace_cmd"] = version
        summary.update(
            report_event_counts=rep_counts,
            report_lost_events=rep_lost,
            text_equals_report=(rep_counts, rep_lost) == (text_counts, text_lost),
        )
    if state is not None and state.notes:
        recording["notes"] = state.notes

    assert state is not None
    host = {
        "kernel": platform.release(),
        "numa_nodes": numa_nodes(),
        "cpus": os.cpu_count() or 0,
        "numa_balancing": int(state.numa_balancing),
        "numa_tunables": state.tunables,
        "vmstat_before": before,
        "vmstat_after": after,
    }
    manifest = manifest_text(info, host, recording)
    out.with_name(out.name + ".manifest.toml").write_text(manifest)
    if have_trace_cmd:
        dat.with_name(dat.name + ".manifest.toml").write_text(manifest)
    summary["workload_result"] = result
    summary["vmstat_delta"] = {
        k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)
    }
    print(json.dumps(summary, indent=1))
    return 0


def _current_clock() -> str:
    m = re.search(r"\[(\S+)\]", (TRACEFS / "trace_clock").read_text())
    return m.group(1) if m else "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("out", help="trace text path (.txt or .txt.gz); other outputs go next to it")
    ap.add_argument("--workload", choices=["threads", "kvm"], default="threads")
    ap.add_argument("--mem", default="64M", help="region / guest RAM size")
    ap.add_argument("--pinned", default="16M", help="long-term pinned prefix of it")
    ap.add_argument("--threads", type=int, default=2, help="touching threads / vCPUs (>= 2)")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument(
        "--touch",
        choices=["chunk", "page"],
        default="chunk",
        help="threads workload: memset whole chunks, or 1 byte per page",
    )
    ap.add_argument("--chunk", default="16M", help="threads workload: bytes per memset call")
    ap.add_argument("--stack", action="store_true", help=f"stacktrace trigger on {STACK_EVENT}")
    ap.add_argument("--buffer-kb", type=int, default=16384, help="per-CPU ring buffer size")
    ap.add_argument(
        "--all-pids",
        action="store_true",
        help="trace every process (default: this recorder, its children and idle)",
    )
    ap.add_argument(
        "--scan-delay-ms", type=int, default=100, help="if the debugfs tunable is writable"
    )
    ap.add_argument(
        "--scan-period-min-ms", type=int, default=100, help="if the debugfs tunable is writable"
    )
    args = ap.parse_args(argv)
    parse_size(args.mem), parse_size(args.pinned)  # fail early on typos
    if os.geteuid() != 0:
        raise SystemExit("must run as root (tracefs, numa_balancing, /dev/kvm)")
    return record(args)


if __name__ == "__main__":
    sys.exit(main())
