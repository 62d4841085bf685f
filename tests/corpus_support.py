"""Helpers shared by the corpus tests: the tool's JSON figures next to the reference's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import reference_figures
from conftest import run_cli

POLICIES = reference_figures.POLICIES


def analyze(trace: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("analyze", str(trace), "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def figures(entry: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The reference's figures of one VM as the tool reports them."""
    names = reference_figures.FIGURES
    return {pol: {m: entry["policies"][pol][m]["value"] for m in names} for pol in POLICIES}


def by_tgid(summary: dict[str, Any], key: str = "vms") -> dict[str, dict[str, Any]]:
    return {str(v["tgid"]): v for v in summary[key]}


def with_tids(manifest: Path, out: Path, tgids: dict[int, int]) -> Path:
    """The manifest plus ``tids`` of every [[vm]] / [[process]] from the /proc map."""
    threads: dict[int, list[int]] = {}
    for tid, tgid in tgids.items():
        threads.setdefault(tgid, []).append(tid)

    def add(m: re.Match[str]) -> str:
        tids = sorted(threads.get(int(m.group(1)), []))
        return f"{m.group(0)}\ntids = {tids}"

    out.write_text(re.sub(r"^tgid = (\d+)$", add, manifest.read_text(), flags=re.M))
    return out
