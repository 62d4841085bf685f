"""Golden diff tests: (input, command, expected output) triples under tests/diff/<case>/.

Each case directory holds ``case.toml`` and ``expected.<ext>``. ``case.toml``
names the input, either a file of the repository::

    input = "fixtures/kvm-pinned-6.18.txt.gz"     # relative to the repo root
    input = "shared:traces/public/x.dat"           # under ../shared (skipped when absent)

or a synth scenario written in one format::

    [synth]
    scenario = "gpu-pinned-buffers"
    seed = 1
    duration = 1.0
    format = "dat"                                 # txt | dat | perfetto-trace

and one command:

* ``analyze = ["--format", "json"]``: ``tracereplay analyze INPUT ARGS...`` (a
  sibling manifest is picked up as the CLI does; the expected file is
  ``expected.json``, ``.csv``, ``.md`` for markdown, else ``.txt``);
* ``query = "event_counts"``: the named query on the database that
  ``analyze --db`` writes for the input (``stage = "ingest"``: that
  ``ingest`` writes, before any reconstruction: the reader's own output);
* ``sql = "SELECT ..."``: the same, with SQL.

The output is normalized (the input's path becomes ``{input}``; JSON is
printed with sorted keys) and compared with ``expected.*``. To regenerate
every expected output after an intended change::

    TRACEREPLAY_REGEN_DIFF=1 python -m pytest tests/test_diff.py

then review ``git diff tests/diff``.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, SHARED, run_cli

from tracereplay.synth import generate, load_scenario

DIFF = Path(__file__).resolve().parent / "diff"
REGEN = os.environ.get("TRACEREPLAY_REGEN_DIFF") == "1"
CASES = sorted(p.name for p in DIFF.iterdir() if (p / "case.toml").is_file())


def _case(name: str) -> dict[str, Any]:
    with open(DIFF / name / "case.toml", "rb") as f:
        return tomllib.load(f)


def _input(case: dict[str, Any], workdir: Path) -> tuple[str, str]:
    """(path given to the CLI, the text that replaces it in the output)."""
    if "synth" in case:
        s = case["synth"]
        sc = load_scenario(s["scenario"]).with_overrides(
            duration=s.get("duration"), seed=s.get("seed")
        )
        out = workdir / f"{s['scenario']}.{s['format']}"
        generate(sc, str(out))
        return str(out), str(out)
    spec: str = case["input"]
    if spec.startswith("shared:"):
        path = SHARED / spec.removeprefix("shared:")
        if not path.exists():
            pytest.skip(f"{path} is absent (the public traces live in ../shared)")
        return str(path), str(path)
    return str(REPO / spec), str(REPO / spec)


def _run(case: dict[str, Any], workdir: Path) -> tuple[str, str]:
    """(normalized output, extension of the expected file)."""
    path, shown = _input(case, workdir)
    if "analyze" in case:
        args = [str(a) for a in case["analyze"]]
        r = run_cli("analyze", path, *args)
        ext = {"json": "json", "csv": "csv", "markdown": "md"}.get(
            next((a for a in args if a in ("json", "csv", "markdown")), ""), "txt"
        )
    else:
        db = workdir / "case.duckdb"
        if case.get("stage") == "ingest":
            r = run_cli("ingest", path, "-o", str(db))
        else:
            r = run_cli("analyze", path, "--db", str(db), "--format", "json")
        assert r.exit_code == 0, r.stderr
        r = run_cli("query", str(db), case.get("query") or case["sql"], "--format", "csv")
        ext = "csv"
    assert r.exit_code == 0, f"exit {r.exit_code}: {r.stderr}"
    text = r.stdout.replace(shown, "{input}")
    if ext == "json":
        text = json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"
    return text, ext


@pytest.mark.parametrize("name", CASES)
def test_diff(name: str, tmp_path: Path) -> None:
    got, ext = _run(_case(name), tmp_path)
    expected = DIFF / name / f"expected.{ext}"
    if REGEN or not expected.exists():
        expected.write_text(got)
        if not REGEN:
            pytest.fail(f"{expected} did not exist: written now, review and commit it")
    want = expected.read_text()
    assert got == want, (
        f"{name}: output differs from {expected.relative_to(REPO)}; if the change is intended, "
        "regenerate with TRACEREPLAY_REGEN_DIFF=1 and review the git diff"
    )


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20, CASES


def test_parity_grid_cases_agree_across_formats() -> None:
    """The parity cases of one scenario give identical per-VM and per-process results."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in CASES:
        if name.startswith("analyze-parity-"):
            scenario = name.removeprefix("analyze-parity-").rsplit("-", 1)[0]
            expected = json.loads((DIFF / name / "expected.json").read_text())
            groups.setdefault(scenario, []).append(expected)
    assert len(groups) >= 2 and all(len(g) == 3 for g in groups.values()), groups.keys()
    for scenario, outputs in groups.items():
        first = outputs[0]
        for other in outputs[1:]:
            assert other["vms"] == first["vms"], scenario
            assert other["processes"] == first["processes"], scenario
            assert other["trace"]["event_counts"] == first["trace"]["event_counts"], scenario
