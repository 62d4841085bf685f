"""The VM manifest: what the trace cannot say about guests and pins.

A TOML file next to the trace (``<trace>.manifest.toml``) or given with
``--manifest``::

    [[vm]]
    tgid = 4242
    name = "qemu-system-x86"
    [[vm.memslot]]
    hva_start = 0x7f0000000000
    size = 0x400000000
    gpa_start = 0x0
    [[vm.pinned]]
    hva_start = 0x7f0000000000
    size = 0x100000000
    # or, on the [[vm]] table: pinned = "all"

    [[process]]              # a non-VM process of interest (GPU, test workload)
    tgid = 777
    name = "worker"
    [[process.region]]
    hva_start = 0x7f1000000000
    size = 0x4000000
    [[process.pinned]]
    hva_start = 0x7f1000000000
    size = 0x1000000

    [host]
    kernel = "6.18.44"
    numa_nodes = 1
    [host.vmstat_before]
    numa_pte_updates = 1000
    [host.vmstat_after]
    numa_pte_updates = 250000

Errors name the file and the offending key; ranges must be 4 KiB aligned and
must not overlap within one process.
"""

from __future__ import annotations

import itertools
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from tracereplay.errors import ManifestError
from tracereplay.readers import split_spec

PAGE = 4096


@dataclass(frozen=True)
class Range:
    hva_start: int
    size: int
    gpa_start: int | None = None
    # guest RAM in a shared mapping (memfd / virtiofs / vhost-user): 5.17..6.18
    # only skip pinned pages of private (COW) mappings, so its pinned pages are
    # protected before 6.19
    shared: bool = False
    # guest RAM mapped with transparent huge pages: NUMA balancing protects it
    # one huge PMD (2 MiB, 512 PTE updates, 1 huge PTE update) at a time
    thp: bool = False

    @property
    def hva_end(self) -> int:
        return self.hva_start + self.size


@dataclass
class ProcessSpec:
    """A VM (``kind == "vm"``) or another process whose memory matters."""

    tgid: int
    name: str
    kind: str
    ranges: list[Range] = field(default_factory=list)  # memslots or regions
    pinned: list[Range] = field(default_factory=list)
    pinned_all: bool = False
    # thread ids known at recording time (/proc/PID/task): lets formats without
    # a per-event tgid (trace.dat) attribute threads created before the trace
    tids: list[int] = field(default_factory=list)
    # written by the recorder: /proc/PID/maps at the end of the recording, and
    # VmPin (KiB long-term pinned, where unknown) when no pinned ranges are known
    maps: str | None = None
    vm_pin_kib: int | None = None


@dataclass
class Manifest:
    path: str
    processes: list[ProcessSpec] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    recording: dict[str, Any] = field(default_factory=dict)

    @property
    def vms(self) -> list[ProcessSpec]:
        return [p for p in self.processes if p.kind == "vm"]

    def vmstat_delta(self) -> dict[str, int]:
        before = self.host.get("vmstat_before", {})
        after = self.host.get("vmstat_after", {})
        return {k: int(after[k]) - int(before[k]) for k in after if k in before}


_RECORDER_KEYS = {"maps", "vm_pin_kib"}
_VM_KEYS = {"tgid", "name", "memslot", "pinned", "vcpus", "tids", "comment", *_RECORDER_KEYS}
_PROCESS_KEYS = {"tgid", "name", "region", "pinned", "threads", "tids", "comment", *_RECORDER_KEYS}
_RANGE_KEYS = {"hva_start", "size", "gpa_start", "shared", "thp", "source", "comment"}
_HOST_KEYS = {
    "kernel",
    "hostname",  # the host's name: `tracereplay batch` sums its fleet per host
    "numa_nodes",
    "cpus",
    "vmstat_before",
    "vmstat_after",
    "numa_balancing",
    "numa_topology",  # written by the recorder: per node cpus, mem_kb, distance
    "comment",
}


def default_manifest_path(trace_path: str) -> str | None:
    """``<trace>.manifest.toml`` when it exists."""
    candidate = trace_path + ".manifest.toml"
    return candidate if os.path.exists(candidate) else None


def sibling_manifest(trace: str) -> str | None:
    """``TRACE.manifest.toml`` when it exists (``TRACE`` may be ``PATH:FORMAT``)."""
    return default_manifest_path(split_spec(trace)[0])


def load_manifest(path: str) -> Manifest:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: not valid TOML: {e}") from None
    return parse_manifest(data, path)


def parse_manifest(data: dict[str, Any], path: str = "<manifest>") -> Manifest:
    def fail(msg: str) -> ManifestError:
        return ManifestError(f"{path}: {msg}")

    # [recording] is free-form recorder metadata (command, options, notes)
    unknown = set(data) - {"vm", "process", "host", "recording"}
    if unknown:
        raise fail(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    manifest = Manifest(path=path)
    for kind, table, keys, range_key in (
        ("vm", "vm", _VM_KEYS, "memslot"),
        ("process", "process", _PROCESS_KEYS, "region"),
    ):
        for i, entry in enumerate(data.get(table, [])):
            where = f"{table}[{i}]"
            if not isinstance(entry, dict):
                raise fail(f"{where} must be a table")
            extra = set(entry) - keys
            if extra:
                raise fail(f"{where}: unknown key(s): {', '.join(sorted(extra))}")
            tgid = entry.get("tgid")
            if not isinstance(tgid, int) or tgid <= 0:
                raise fail(f"{where}.tgid must be a positive integer")
            spec = ProcessSpec(tgid=tgid, name=str(entry.get("name", "")), kind=kind)
            tids = entry.get("tids", [])
            if not isinstance(tids, list) or not all(isinstance(t, int) and t > 0 for t in tids):
                raise fail(f"{where}.tids must be a list of positive thread ids")
            spec.tids = list(tids)
            maps, pin_kib = entry.get("maps"), entry.get("vm_pin_kib")
            if maps is not None and not isinstance(maps, str):
                raise fail(f"{where}.maps must be a string (a /proc/PID/maps snapshot)")
            if pin_kib is not None and (not isinstance(pin_kib, int) or pin_kib < 0):
                raise fail(f"{where}.vm_pin_kib must be a non-negative integer")
            spec.maps, spec.vm_pin_kib = maps, pin_kib
            spec.ranges = [
                _range(r, f"{where}.{range_key}[{j}]", fail)
                for j, r in enumerate(entry.get(range_key, []))
            ]
            pinned = entry.get("pinned", [])
            if pinned == "all":
                spec.pinned_all = True
                spec.pinned = list(spec.ranges)
            elif isinstance(pinned, list):
                spec.pinned = [
                    _range(r, f"{where}.pinned[{j}]", fail) for j, r in enumerate(pinned)
                ]
            else:
                raise fail(f'{where}.pinned must be a list of ranges or "all"')
            _no_overlap(spec.ranges, f"{where}.{range_key}", fail)
            _no_overlap(spec.pinned, f"{where}.pinned", fail)
            manifest.processes.append(spec)
    host = data.get("host", {})
    if not isinstance(host, dict):
        raise fail("host must be a table")
    extra = {k for k in host if k not in _HOST_KEYS and not k.startswith("numa_balancing")}
    if extra:
        raise fail(f"host: unknown key(s): {', '.join(sorted(extra))}")
    for key in ("vmstat_before", "vmstat_after"):
        if key in host and not all(isinstance(v, int) for v in host[key].values()):
            raise fail(f"host.{key} values must be integers")
    manifest.host = host
    manifest.recording = dict(data.get("recording", {}))
    tgids = [p.tgid for p in manifest.processes]
    if len(tgids) != len(set(tgids)):
        raise fail("the same tgid appears twice")
    return manifest


def _range(entry: Any, where: str, fail: Any) -> Range:
    if not isinstance(entry, dict):
        raise fail(f"{where} must be a table with hva_start and size")
    extra = set(entry) - _RANGE_KEYS
    if extra:
        raise fail(f"{where}: unknown key(s): {', '.join(sorted(extra))}")
    start, size = entry.get("hva_start"), entry.get("size")
    if not isinstance(start, int) or not isinstance(size, int) or start < 0 or size <= 0:
        raise fail(f"{where}: hva_start and size must be non-negative integers, size > 0")
    if start % PAGE or size % PAGE:
        raise fail(f"{where}: range {start:#x}+{size:#x} is not 4 KiB aligned")
    if start + size > 1 << 64:
        raise fail(f"{where}: range ends beyond 2^64")
    gpa = entry.get("gpa_start")
    if gpa is not None and (not isinstance(gpa, int) or gpa % PAGE):
        raise fail(f"{where}: gpa_start must be a 4 KiB aligned integer")
    shared = entry.get("shared", False)
    if not isinstance(shared, bool):
        raise fail(f"{where}: shared must be true or false")
    thp = entry.get("thp", False)
    if not isinstance(thp, bool):
        raise fail(f"{where}: thp must be true or false")
    return Range(hva_start=start, size=size, gpa_start=gpa, shared=shared, thp=thp)


def _no_overlap(ranges: list[Range], where: str, fail: Any) -> None:
    ordered = sorted(ranges, key=lambda r: r.hva_start)
    for a, b in itertools.pairwise(ordered):
        if b.hva_start < a.hva_end:
            raise fail(
                f"{where}: ranges {a.hva_start:#x}+{a.size:#x} and {b.hva_start:#x}+{b.size:#x} overlap"
            )


__all__ = [
    "Manifest",
    "ProcessSpec",
    "Range",
    "default_manifest_path",
    "load_manifest",
    "parse_manifest",
]
