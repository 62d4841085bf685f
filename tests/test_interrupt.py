"""Ctrl-C, SIGTERM and SIGKILL of a real `tracereplay` process in the middle of its work.

A synthetic trace large enough that ingesting it takes several seconds is made
once; each test starts the console entry point on it, waits until the
temporary database exists (DuckDB is loading) plus a second, sends the
signal, and checks the exit status, stderr, and what is left on disk.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURES

PINNED = str(FIXTURES / "pinned-threads-6.18.txt")
CMD = [sys.executable, "-m", "tracereplay"]


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory: pytest.TempPathFactory) -> str:
    """~1 M events of tracefs text (~120 MB): ingest takes seconds, not milliseconds."""
    out = tmp_path_factory.mktemp("big") / "huge.txt"
    subprocess.run(
        [*CMD, "synth", "huge-guest", "--duration", "0.8", "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return str(out)


def _start(args: list[str], tmpdir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.Popen(
        [*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for(pattern: str, proc: subprocess.Popen[str]) -> None:
    """Until a file matching ``pattern`` exists (the command is loading), then one more second."""
    deadline = time.monotonic() + 120
    while not glob.glob(pattern, include_hidden=True):
        assert proc.poll() is None, f"finished before it was interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "the temporary database never appeared"
        time.sleep(0.02)
    time.sleep(1.0)
    assert proc.poll() is None, "finished before the signal: make the trace larger"


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _leftovers(*dirs: Path) -> list[str]:
    return [str(p) for d in dirs for p in d.iterdir() if "tracereplay-" in p.name]


def _previous_output(path: Path) -> bytes:
    """A complete earlier database at ``path``; returns its bytes."""
    done = subprocess.run([*CMD, "ingest", PINNED, "-o", str(path)], capture_output=True)
    assert done.returncode == 0, done.stderr
    return path.read_bytes()


@pytest.mark.parametrize("command", ["ingest", "analyze"])
def test_sigint_exits_130_with_one_line_and_keeps_the_old_output(big_trace, tmp_path, command):
    out_dir, tmp = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    tmp.mkdir()
    db = out_dir / "trace.duckdb"
    before = _previous_output(db)
    if command == "ingest":
        args = ["ingest", big_trace, "-o", str(db), "--force"]
    else:
        args = ["analyze", big_trace, "--db", str(db), "--force", "--format", "json"]
    proc = _start(args, tmp)
    _wait_for(str(out_dir / ".tracereplay-*.duckdb.tmp"), proc)
    code, err = _stop(proc, signal.SIGINT)
    assert code == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip() and "using manifest" not in ln]
    assert lines == ["tracereplay: interrupted"], err
    assert db.read_bytes() == before
    assert _leftovers(out_dir, tmp) == []


def test_sigint_during_analyze_without_db_leaves_nothing_in_the_temp_dir(big_trace, tmp_path):
    proc = _start(["analyze", big_trace, "--format", "json"], tmp_path)
    _wait_for(str(tmp_path / "tracereplay-*" / "*" / "trace.duckdb"), proc)
    code, err = _stop(proc, signal.SIGINT)
    assert code == 130 and err.strip().splitlines()[-1] == "tracereplay: interrupted", err
    assert _leftovers(tmp_path) == []


def test_sigterm_cleans_up_and_exits_143(big_trace, tmp_path):
    proc = _start(["ingest", big_trace, "-o", str(tmp_path / "t.duckdb")], tmp_path)
    _wait_for(str(tmp_path / ".tracereplay-*.duckdb.tmp"), proc)
    code, err = _stop(proc, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM == 143, err
    assert err.strip().splitlines()[-1] == "tracereplay: terminated (SIGTERM)"
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "t.duckdb").exists()


def test_sigkill_leftovers_are_removed_by_the_next_run(big_trace, tmp_path):
    out_dir, tmp = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    tmp.mkdir()
    db = out_dir / "trace.duckdb"
    before = _previous_output(db)
    # a killed ingest leaves its temporary database next to the output ...
    proc = _start(["ingest", big_trace, "-o", str(db), "--force"], tmp)
    _wait_for(str(out_dir / ".tracereplay-*.duckdb.tmp"), proc)
    code, _err = _stop(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert any(".duckdb.tmp" in p for p in _leftovers(out_dir))
    # ... and a killed analyze its scratch directory under TMPDIR
    proc = _start(["analyze", big_trace, "--format", "json"], tmp)
    _wait_for(str(tmp / "tracereplay-*" / "*" / "trace.duckdb"), proc)
    _stop(proc, signal.SIGKILL)
    assert _leftovers(tmp)
    assert db.read_bytes() == before
    # the next run, even one that fails at once (the output exists), removes both
    again = _start(["ingest", PINNED, "-o", str(db)], tmp)
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 3 and "already exists" in err
    assert _leftovers(out_dir, tmp) == []
    assert db.read_bytes() == before
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (10778,)
    con.close()


def test_a_live_writers_temporary_file_is_not_touched(tmp_path):
    """Two runs writing into one directory: the second must not sweep the first's file."""
    from tracereplay.atomic import temp_name

    live = tmp_path / temp_name(".duckdb")  # named after this (live) test process
    live.write_bytes(b"in progress")
    done = subprocess.run([*CMD, "ingest", PINNED, "-o", str(tmp_path / "x.duckdb")])
    assert done.returncode == 0
    assert live.read_bytes() == b"in progress"
