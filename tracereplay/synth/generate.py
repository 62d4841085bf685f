"""Run a scenario and write the trace (format from the extension), manifest and truth."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from tracereplay.atomic import atomic_output, check_new_output
from tracereplay.contract import PERFETTO_SUFFIXES
from tracereplay.errors import TraceReplayError
from tracereplay.progress import current
from tracereplay.synth.events import Events
from tracereplay.synth.kernel import KernelModel, kernel_model
from tracereplay.synth.model import METRICS, POLICIES, Proc, build_proc
from tracereplay.synth.scenario import Scenario
from tracereplay.synth.sim import Simulator
from tracereplay.synth.text import HEADER, LostGaps, write_text
from tracereplay.writers import write_perfetto, write_trace_dat

# Output formats by extension. Text is written directly; other formats are produced
# by converting that text with a writer, ``function(text_path, out_path, force=True)``,
# so every format carries exactly the same events.
WRITERS: dict[str, Callable[..., Any]] = {
    ".dat": write_trace_dat,
    **{ext: write_perfetto for ext in PERFETTO_SUFFIXES},
}


class OutputFormatError(TraceReplayError):
    """The output extension names no format synth writes."""


@dataclass
class SynthResult:
    """What :func:`generate` wrote and what the simulation says it emitted."""

    path: str
    manifest_path: str
    truth: dict[str, Any]
    event_counts: Counter[str] = field(default_factory=Counter)
    events: int = 0
    lost_events: int = 0


def _format_of(path: str) -> tuple[str, bool]:
    low = path.lower()
    gz = low.endswith(".gz")
    if gz:
        low = low[:-3]
    for ext in (".txt", *WRITERS):
        if low.endswith(ext):
            return ext, gz
    known = ", ".join([".txt", ".txt.gz", *WRITERS])
    raise OutputFormatError(f"{path}: unknown output extension (known: {known})")


def _assign_cpus(sc: Scenario) -> list[list[int]]:
    used: set[int] = set()
    out = []
    cpn = sc.host.cpus_per_node
    for spec in sc.procs:
        cpus = []
        for i in range(spec.vcpus):
            node = spec.vcpu_nodes[i % len(spec.vcpu_nodes)]
            mine = range(node * cpn, (node + 1) * cpn)
            free = [c for c in mine if c not in used]
            cpu = free[0] if free else mine[i % cpn]
            used.add(cpu)
            cpus.append(cpu)
        out.append(cpus)
    return out


def build(scenario: Scenario) -> tuple[Simulator, list[str]]:
    """The simulator of a scenario and its comm table."""
    kernel = kernel_model(scenario.host.kernel)
    rng = np.random.default_rng(scenario.seed)
    t0 = (1000 + scenario.seed % 1000) * 1_000_000_000 + 123_456_000
    comms: list[str] = []
    procs: list[Proc] = []
    for i, (spec, cpus) in enumerate(zip(scenario.procs, _assign_cpus(scenario), strict=True)):
        first_scan = t0 + scenario.numa.scan_delay_ms * 1_000_000 + 37_000 * (i + 1)
        procs.append(build_proc(spec, i, scenario, comms, cpus, kernel.pin_skip, first_scan, rng))
    return Simulator(scenario, kernel, procs, t0), comms


def _write_txt(
    out: BinaryIO, scenario: Scenario, sim: Simulator, comms: list[str]
) -> tuple[Counter[str], int]:
    # The header states the entry counts: a first, unformatted run of the
    # (deterministic) simulation counts them, cheaper than copying the body.
    dry, _ = build(scenario)
    gaps = LostGaps(scenario.lost, dry.t0)
    n = sum(len(gaps.apply(batch)[0]) for batch in _tracked(dry, "simulating (counting events)"))
    head = HEADER.format(n=n, cpus=sim.ncpus)
    if gaps.total:
        head = head.replace(f"{n}/{n}", f"{n}/{n + gaps.total}")
    out.write(head.encode())
    lost = LostGaps(scenario.lost, sim.t0)
    events = _tracked(sim, "simulating and writing")
    counts = write_text(out, events, comms, nr_split=sim.k.migrate_nr_split, lost=lost)
    return counts, lost.total


def _tracked(sim: Simulator, description: str) -> Iterator[Events]:
    """``sim.run()``, reporting progress in simulated seconds."""
    total = float(sim.sc.duration)
    with current().task(description, total=total, unit="simulated s") as task:
        for events in sim.run():
            if len(events):
                task.update(completed=min(total, (int(events.cols["ts"][-1]) - sim.t0) / 1e9))
            yield events


def generate(
    scenario: Scenario,
    out: str,
    *,
    truth_path: str | None = None,
    force: bool = False,
) -> SynthResult:
    """Simulate ``scenario`` and write ``out`` plus ``<out>.manifest.toml`` (and the truth)."""
    ext, gz = _format_of(out)
    manifest_path = out + ".manifest.toml"
    check_new_output(out, manifest_path, truth_path, force=force)
    writer = WRITERS.get(ext)
    sim, comms = build(scenario)
    # the one atomic-write helper: files get the user's umask, leftovers are swept
    with atomic_output(out, force=force) as tmp:
        if writer is None:
            with open(tmp, "wb") as raw:
                f: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if gz else raw  # type: ignore[assignment]
                counts, lost_total = _write_txt(f, scenario, sim, comms)
                if gz:
                    f.close()
        else:
            counts, lost_total = _via_writer(writer, tmp, sim, comms, scenario)
    truth = truth_of(sim, comms, counts, lost_total, out)
    _write_text(manifest_path, manifest_toml(sim, comms), force)
    if truth_path:
        _write_text(truth_path, json.dumps(truth, indent=2) + "\n", force)
    return SynthResult(
        path=out,
        manifest_path=manifest_path,
        truth=truth,
        event_counts=counts,
        events=sum(counts.values()),
        lost_events=lost_total,
    )


def _via_writer(
    writer: Callable[..., Any], path: str, sim: Simulator, comms: list[str], scenario: Scenario
) -> tuple[Counter[str], int]:
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as txt:
        counts, lost_total = _write_txt(txt, scenario, sim, comms)  # type: ignore[arg-type]
    try:
        writer(txt.name, path, force=True)
    finally:
        os.unlink(txt.name)
    return counts, lost_total


def _write_text(path: str, text: str, force: bool) -> None:
    with atomic_output(path, force=force) as tmp, open(tmp, "w") as f:
        f.write(text)


def truth_of(
    sim: Simulator, comms: list[str], counts: Counter[str], lost_total: int, out: str
) -> dict[str, Any]:
    """The ground truth, shaped like ``analyze --format json``."""
    vms: list[dict[str, Any]] = []
    processes: list[dict[str, Any]] = []
    for p in sim.procs:
        pols: dict[str, dict[str, dict[str, Any]]] = {}
        for i, pol in enumerate(POLICIES):
            entry = {
                m: {"value": int(p.metrics[i, j]), "basis": "derived"}
                for j, m in enumerate(METRICS)
            }
            if pol != "baseline":
                for j, m in enumerate(METRICS):
                    v = int(p.metrics[0, j] - p.metrics[i, j])
                    entry[f"{m}_avoided"] = {"value": v, "basis": "derived"}
            pols[pol] = entry
        item = {"tgid": p.tgid, "name": comms[p.comm], "policies": pols}
        (vms if p.is_vm else processes).append(item)
    return {
        "generator": {
            "tool": "tracereplay synth",
            "scenario": sim.sc.name,
            "seed": sim.sc.seed,
            "kernel": sim.k.release,
            "kernel_model": {
                "pin_skip": sim.k.pin_skip,
                "notifier_granule": sim.k.notifier_granule,
                "ipi_mode": sim.k.ipi_mode,
            },
            "numa_protect_batch": 1,
        },
        "trace": {
            "path": out,
            "events": int(sum(counts.values())),
            "lost_events": int(lost_total),
            "event_counts": dict(sorted(counts.items())),
        },
        "vms": vms,
        "processes": processes,
        "vmstat_delta": vmstat_delta(sim),
    }


def vmstat_delta(sim: Simulator) -> dict[str, int]:
    tot = np.sum([p.metrics[0] for p in sim.procs], axis=0)
    ix = {m: i for i, m in enumerate(METRICS)}

    def host(key: str) -> int:
        # host-wide (every VMA of every process), unlike the per-process truth
        return int(sum(p.vmstat.get(key, 0) for p in sim.procs))

    return {
        "numa_pte_updates": host("numa_pte_updates"),
        "numa_huge_pte_updates": host("numa_huge_pte_updates"),
        "numa_hint_faults": host("numa_hint_faults"),
        "numa_hint_faults_local": host("numa_hint_faults_local"),
        "numa_pages_migrated": int(tot[ix["pages_migrated"]]),
        "pgmigrate_success": int(tot[ix["pages_migrated"]]),
        "pgmigrate_fail": host("pgmigrate_fail"),
    }


def manifest_toml(sim: Simulator, comms: list[str]) -> str:
    sc, k = sim.sc, sim.k
    lines = [
        f"# Written by tracereplay synth: scenario {sc.name!r}, seed {sc.seed}.",
        "# Synthetic: every event was simulated, nothing was recorded.",
        "",
    ]
    for p in sim.procs:
        table, ranges = ("vm", "memslot") if p.is_vm else ("process", "region")
        lines += [f"[[{table}]]", f"tgid = {p.tgid}", f'name = "{comms[p.comm]}"']
        lines.append(f"{'vcpus' if p.is_vm else 'threads'} = {len(p.threads)}")
        lines.append(f"tids = [{', '.join(str(t.pid) for t in p.threads)}]")
        if p.spec.pinned_all:
            lines.append('pinned = "all"')
        lines += [
            f"[[{table}.{ranges}]]",
            f"hva_start = {p.ram_start:#x}",
            f"size = {p.spec.ram:#x}",
        ]
        if p.is_vm:
            lines.append("gpa_start = 0x0")
        if p.spec.shared:
            lines.append("shared = true")
        if p.spec.thp:
            lines.append("thp = true")
        if not p.spec.pinned_all:
            for start, size in p.pinned_ranges():
                lines += [f"[[{table}.pinned]]", f"hva_start = {start:#x}", f"size = {size:#x}"]
        lines.append("")
    rng = np.random.default_rng(sc.seed + 99)
    delta = vmstat_delta(sim)
    before = {key: int(rng.integers(10_000, 500_000)) for key in delta}
    lines += [
        "[host]",
        f'kernel = "{k.release}"',
        f"numa_nodes = {sc.host.nodes}",
        f"cpus = {sc.host.cpus}",
        "numa_balancing = 1",
        "",
        "[host.numa_balancing_tunables]",
        f"scan_delay_ms = {sc.numa.scan_delay_ms}",
        f"scan_period_min_ms = {sc.numa.scan_period_min_ms}",
        f"scan_period_max_ms = {sc.numa.scan_period_max_ms}",
        f"scan_size_mb = {sc.numa.scan_size_mb}",
        "",
        "[host.vmstat_before]",
        *[f"{key} = {v}" for key, v in before.items()],
        "",
        "[host.vmstat_after]",
        *[f"{key} = {before[key] + v}" for key, v in delta.items()],
        "",
        "[recording]",
        'generator = "tracereplay synth"',
        f'scenario = "{sc.name}"',
        f"seed = {sc.seed}",
        f"duration = {sc.duration}",
        'trace_clock = "local"',
        "record_tgid = true",
        "irq_info = true",
        f"stacktrace_trigger = {'true' if sc.stacks else 'false'}",
        f"events = [{', '.join(repr(e) for e in RECORDED)}]".replace("'", '"'),
        "",
    ]
    return "\n".join(lines)


# the tracepoints a recorder of the simulated host would have enabled (all it emits)
RECORDED = (
    "kvm:kvm_unmap_hva_range",
    "kvm:kvm_page_fault",
    "exceptions:page_fault_user",
    "migrate:mm_migrate_pages",
    "sched:sched_skip_vma_numa",
    "tlb:tlb_flush",
    "csd:csd_queue_cpu",
    "ipi:ipi_send_cpu",
    "ipi:ipi_send_cpumask",
    "sched:sched_move_numa",
    "sched:sched_swap_numa",
    "sched:sched_stick_numa",
)


def iter_events(scenario: Scenario) -> Iterator[Events]:
    """The simulated events in time order (for writers and tests)."""
    sim, _ = build(scenario)
    return sim.run()


__all__ = [
    "WRITERS",
    "KernelModel",
    "OutputFormatError",
    "SynthResult",
    "build",
    "generate",
    "iter_events",
    "manifest_toml",
    "truth_of",
]
