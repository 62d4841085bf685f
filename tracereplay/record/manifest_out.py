"""Write the VM manifest (tracereplay.manifest) as TOML (no TOML writer in the stdlib).

Addresses and sizes are hex integers; every manifest written is parsed back
with :func:`tracereplay.manifest.parse_manifest` before it is saved, so the
recorder can never produce a file ``analyze`` rejects.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any

from tracereplay.manifest import parse_manifest

__all__ = ["ProcessFacts", "RangeFacts", "VmFacts", "manifest_text", "toml_value"]


@dataclass
class RangeFacts:
    hva_start: int
    size: int
    gpa_start: int | None = None
    note: str = ""  # written as a TOML comment


@dataclass
class VmFacts:
    """A VMM process: its guest RAM slots and what of it is long-term pinned."""

    tgid: int
    name: str
    memslots: list[RangeFacts] = field(default_factory=list)
    pinned: list[RangeFacts] = field(default_factory=list)
    pinned_all: bool = False
    vcpus: int | None = None
    comment: str = ""
    tids: list[int] = field(default_factory=list)  # every thread seen during the recording
    maps: str | None = None  # /proc/PID/maps snapshot
    vm_pin_kib: int | None = None  # VmPin when no pinned range is known


@dataclass
class ProcessFacts:
    """Another process of interest (test workload, GPU process, a --pid target)."""

    tgid: int
    name: str
    regions: list[RangeFacts] = field(default_factory=list)
    pinned: list[RangeFacts] = field(default_factory=list)
    threads: int | None = None
    comment: str = ""
    tids: list[int] = field(default_factory=list)
    maps: str | None = None
    vm_pin_kib: int | None = None


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if "\n" in v and "'''" not in v:
            return "'''\n" + v + "'''"  # literal multi-line: /proc/PID/maps stays readable
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _table(name: str, data: dict[str, Any]) -> list[str]:
    """Scalars of ``data`` under ``[name]``, then its dict values as sub-tables."""
    lines = ["", f"[{name}]"]
    subs = {k: v for k, v in data.items() if isinstance(v, dict) and v and _nested(v)}
    lines += [f"{_key(k)} = {toml_value(v)}" for k, v in data.items() if k not in subs]
    for k, v in subs.items():
        lines += _table(f"{name}.{_key(k)}", v)
    return lines


def _nested(d: dict[str, Any]) -> bool:
    # big tables (vmstat, maps, topology) read better as [sub.tables] than inline
    return len(d) > 3 or any(isinstance(v, (dict, str)) and "\n" in str(v) for v in d.values())


def _ranges(table: str, ranges: list[RangeFacts]) -> list[str]:
    lines: list[str] = []
    for r in ranges:
        lines.append(f"[[{table}]]")
        if r.note:
            lines.append(f"# {r.note}")
        lines += [f"hva_start = {r.hva_start:#x}", f"size = {r.size:#x}"]
        if r.gpa_start is not None:
            lines.append(f"gpa_start = {r.gpa_start:#x}")
    return lines


def _proc_keys(facts: VmFacts | ProcessFacts) -> list[str]:
    """``tids``, ``comment``, ``vm_pin_kib`` and ``maps`` of a [[vm]] / [[process]] table.

    trace.dat has no per-event tgid: ``tids`` lets the analysis attribute threads
    that were created before the recording started (and during it).
    """
    lines = []
    if facts.tids:
        lines.append(f"tids = [{', '.join(map(str, sorted(set(facts.tids))))}]")
    if facts.comment:
        lines.append(f"comment = {toml_value(facts.comment)}")
    if facts.vm_pin_kib is not None:
        lines.append(f"vm_pin_kib = {facts.vm_pin_kib}")
    if facts.maps:
        lines.append(f"maps = {toml_value(facts.maps)}")
    return lines


def manifest_text(
    vms: list[VmFacts],
    processes: list[ProcessFacts],
    host: dict[str, Any],
    recording: dict[str, Any],
    *,
    path: str = "<manifest>",
) -> str:
    lines = [f"# Written by tracereplay record on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"]
    for vm in vms:
        lines += ["", "[[vm]]", f"tgid = {vm.tgid}", f"name = {toml_value(vm.name)}"]
        if vm.vcpus is not None:
            lines.append(f"vcpus = {vm.vcpus}")
        if vm.pinned_all:
            lines.append('pinned = "all"')
        lines += _proc_keys(vm)
        lines += _ranges("vm.memslot", vm.memslots)
        if not vm.pinned_all:
            lines += _ranges("vm.pinned", vm.pinned)
    for p in processes:
        lines += ["", "[[process]]", f"tgid = {p.tgid}", f"name = {toml_value(p.name)}"]
        if p.threads is not None:
            lines.append(f"threads = {p.threads}")
        lines += _proc_keys(p)
        lines += _ranges("process.region", p.regions)
        lines += _ranges("process.pinned", p.pinned)
    lines += _table("host", host)
    lines += _table("recording", recording)
    text = "\n".join(lines) + "\n"
    parse_manifest(tomllib.loads(text), path)  # never write what analyze would reject
    return text
