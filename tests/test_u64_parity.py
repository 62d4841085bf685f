"""Unsigned 64-bit values and format parity on real traces nobody on this project wrote.

The public traces (shared/traces/public, trace-cmd 3.2.0 recordings of a 6.5 host and a
5.15 guest) carry u64 fields >= 2^63: kernel addresses such as ``kvm_exit.guest_rip``,
``kvm_entry.rip``, ``sys_enter.args`` and ``kvm_emulate_insn.insn`` arrays. Converting each
to trace.dat and to Perfetto and ingesting the result must give the same ``events`` table
as ingesting the original (every column but ``seq``, the position in the source file,
which each format numbers its own way).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import SHARED

from tracereplay.store import ingest
from tracereplay.writers import write_perfetto, write_trace_dat

PUBLIC = SHARED / "traces" / "public"
TRACES = sorted(p.name for p in PUBLIC.glob("*.dat")) if PUBLIC.is_dir() else []
needs_public = pytest.mark.skipif(
    not TRACES, reason=f"{PUBLIC} is absent: the public traces live outside the repository"
)
COLUMNS = "ts, cpu, pid, tgid, comm, system, name, args, stack"
U63 = 1 << 63


def _events(db: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            f"SELECT {COLUMNS} FROM events ORDER BY cpu, ts, name, args, pid"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[object, ...]]]:
    out = tmp_path_factory.mktemp("originals")
    rows = {}
    for name in TRACES:
        ingest(str(PUBLIC / name), str(out / f"{name}.duckdb"))
        rows[name] = _events(out / f"{name}.duckdb")
    return rows


@needs_public
@pytest.mark.parametrize("fmt", ["dat", "perfetto-trace"])
@pytest.mark.parametrize("name", TRACES)
def test_public_traces_survive_conversion(tmp_path, originals, name, fmt):
    converted = tmp_path / f"converted.{fmt}"
    writer = write_trace_dat if fmt == "dat" else write_perfetto
    writer(str(PUBLIC / name), str(converted))
    ingest(str(converted), str(tmp_path / "c.duckdb"))
    got = _events(tmp_path / "c.duckdb")
    want = originals[name]
    assert len(got) == len(want)
    for a, b in zip(want, got, strict=True):
        assert a == b


@needs_public
def test_u64_values_above_2_63_are_kept_unsigned(originals):
    """kvm_exit.guest_rip of the 6.5 host are kernel addresses: stored as their unsigned
    value in args, and as UBIGINT when cast (never as a negative two's complement)."""
    name = "hip24-host-6.5-kvm.dat"
    if name not in originals:
        pytest.skip(f"{name} is not among the public traces")
    rips = [
        json.loads(args)["guest_rip"]
        for _ts, _c, _p, _t, _comm, _s, ev, args, _st in originals[name]
        if ev == "kvm_exit"
    ]
    assert len(rips) == 1558
    assert all(U63 <= r < 1 << 64 for r in rips)


@needs_public
def test_convert_cli_to_dat_on_every_public_trace(tmp_path):
    """The issue's failure: 'conversion from i128 to i64 failed in column rip' (exit 1)."""
    from conftest import run_cli

    for name in TRACES:
        out = tmp_path / f"{name}.out.dat"
        result = run_cli("convert", str(PUBLIC / name), "-o", str(out))
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 0
