"""Write the DESIGN §6 manifest as TOML (no TOML writer in the stdlib).

Addresses and sizes are hex integers; every manifest written is parsed back
with :func:`tracereplay.manifest.parse_manifest` before it is saved, so the
recorder can never produce a file ``analyze`` rejects.
"""

from __future__ import annotations

import json
import os
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


@dataclass
class ProcessFacts:
    """Another process of interest (test workload, GPU process, a --pid target)."""

    tgid: int
    name: str
    regions: list[RangeFacts] = field(default_factory=list)
    pinned: list[RangeFacts] = field(default_factory=list)
    threads: int | None = None
    comment: str = ""


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


def _tids(tgid: int) -> list[str]:
    """``tids = [...]`` from /proc/TGID/task when the process still runs.

    trace.dat has no per-event tgid: this list lets the analysis attribute
    threads that were created before the recording started.
    """
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{tgid}/task"))
    except (OSError, ValueError):
        return []
    return [f"tids = [{', '.join(map(str, tids))}]"] if tids else []


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
        lines += _tids(vm.tgid)
        if vm.comment:
            lines.append(f"comment = {toml_value(vm.comment)}")
        if vm.pinned_all:
            lines.append('pinned = "all"')
        lines += _ranges("vm.memslot", vm.memslots)
        if not vm.pinned_all:
            lines += _ranges("vm.pinned", vm.pinned)
    for p in processes:
        lines += ["", "[[process]]", f"tgid = {p.tgid}", f"name = {toml_value(p.name)}"]
        if p.threads is not None:
            lines.append(f"threads = {p.threads}")
        lines += _tids(p.tgid)
        if p.comment:
            lines.append(f"comment = {toml_value(p.comment)}")
        lines += _ranges("process.region", p.regions)
        lines += _ranges("process.pinned", p.pinned)
    lines += _table("host", host)
    lines += _table("recording", recording)
    text = "\n".join(lines) + "\n"
    parse_manifest(tomllib.loads(text), path)  # never write what analyze would reject
    return text
