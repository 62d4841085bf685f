"""Atomic outputs, the overwrite guard and the sweeping of killed writers' temporary files."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES, run_cli

from tracereplay import atomic
from tracereplay.atomic import (
    OutputError,
    OutputExistsError,
    atomic_output,
    check_new_output,
    scratch_dir,
    sweep_stale,
    temp_name,
    writer_gone,
)

PINNED = str(FIXTURES / "pinned-threads-6.18.txt")


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def _stale_name(pid: int, suffix: str = ".duckdb", hidden: bool = True) -> str:
    """What temp_name() would have given process ``pid`` on this host."""
    mine = temp_name(suffix, hidden=hidden)
    return mine.replace(f"tracereplay-{os.getpid()}.", f"tracereplay-{pid}.", 1)


def test_success_publishes_with_normal_permissions_and_nothing_else(tmp_path):
    out = tmp_path / "out.bin"
    with atomic_output(str(out), suffix=".bin") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and not os.path.exists(tmp)
        assert os.path.basename(tmp).startswith(f".tracereplay-{os.getpid()}.")
        with open(tmp, "wb") as f:
            f.write(b"data")
        assert not out.exists()  # nothing visible before the block ends
    assert out.read_bytes() == b"data"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_removes_the_temporary_file_and_its_companions(tmp_path, exc):
    out = tmp_path / "keep.duckdb"
    out.write_bytes(b"old")
    with pytest.raises(type(exc)), atomic_output(str(out), force=True, suffix=".duckdb") as tmp:
        for companion in (tmp, tmp + ".wal"):
            with open(companion, "wb") as f:
                f.write(b"half")
        os.mkdir(tmp + ".tmp")  # DuckDB's spill directory
        (tmp_path / (os.path.basename(tmp) + ".tmp") / "spill.bin").write_bytes(b"x")
        raise exc
    assert out.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["keep.duckdb"]


def test_guard_refuses_existing_outputs_unless_forced(tmp_path):
    out = tmp_path / "x"
    out.write_text("precious")
    with pytest.raises(OutputExistsError, match=r"x: already exists \(use --force"):
        check_new_output(None, str(out))
    check_new_output(str(out), force=True)
    with pytest.raises(OutputExistsError), atomic_output(str(out)):
        pass
    assert out.read_text() == "precious"


def test_an_output_that_appears_meanwhile_is_not_replaced_without_force(tmp_path):
    out = tmp_path / "race"
    with pytest.raises(OutputExistsError), atomic_output(str(out)) as tmp:
        with open(tmp, "w") as f:
            f.write("mine")
        out.write_text("someone else's")  # created after the guard ran
    assert out.read_text() == "someone else's"
    assert os.listdir(tmp_path) == ["race"]


def test_output_problems_are_user_errors(tmp_path):
    with (
        pytest.raises(OutputError, match="does not exist"),
        atomic_output(str(tmp_path / "no" / "such" / "dir.duckdb")),
    ):
        pass
    (tmp_path / "d").mkdir()
    with (
        pytest.raises(OutputError, match="is a directory"),
        atomic_output(str(tmp_path / "d"), force=True),
    ):
        pass
    with pytest.raises(OutputError, match="No space left"), atomic_output(str(tmp_path / "f")):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OutputError, match="produced no file"), atomic_output(str(tmp_path / "g")):
        pass
    assert os.listdir(tmp_path) == ["d"]


def test_cli_reports_a_missing_output_directory_in_one_line(tmp_path):
    result = run_cli("ingest", PINNED, "-o", str(tmp_path / "missing" / "t.duckdb"))
    assert result.exit_code == 3
    assert result.stderr.startswith("tracereplay: error: ") and "does not exist" in result.stderr


def test_sweep_removes_only_dead_writers_of_this_host(tmp_path):
    dead = _dead_pid()
    db = _stale_name(dead)
    stale = [db, db + ".wal", _stale_name(dead, hidden=False)]
    for name in stale:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / (db + ".tmp")).mkdir()  # a spill directory
    keep = [
        temp_name(".duckdb"),  # this process: alive
        _stale_name(dead).replace(f".{atomic._host_tag()}.", ".another-host.", 1),
        ".tracereplay-abcdefgh.duckdb.tmp",  # no pid: not ours to judge
        "tracereplay-notes.txt",
        "trace.duckdb",
    ]
    for name in keep:
        (tmp_path / name).write_bytes(b"x")
    removed = sweep_stale(str(tmp_path))
    assert sorted(removed) == sorted([*stale, db + ".tmp"])
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


def test_a_reused_pid_does_not_keep_a_stale_file(tmp_path):
    """pid 1 is alive, but it started long after a file written in 1970."""
    f = tmp_path / _stale_name(1)
    f.write_bytes(b"x")
    assert not writer_gone(1, f.stat().st_mtime)  # written now: pid 1 might be the writer
    os.utime(f, (0, 0))
    assert writer_gone(1, 0.0)
    assert sweep_stale(str(tmp_path)) == [f.name]
    assert writer_gone(2**40, 0.0)  # cannot be a pid at all


def test_scratch_dir_is_private_removed_and_sweeps_killed_ones(tmp_path):
    killed = tmp_path / _stale_name(_dead_pid(), hidden=False)[: -len(".tmp")]
    killed.mkdir()
    (killed / "trace.duckdb").write_bytes(b"x")
    with scratch_dir(str(tmp_path)) as d:
        assert not killed.exists()
        assert os.stat(d).st_mode & 0o777 == 0o700
        assert os.path.basename(d).startswith(f"tracereplay-{os.getpid()}.")
        (open(os.path.join(d, "f"), "w")).close()
    assert os.listdir(tmp_path) == []


def test_ingest_failure_leaves_no_temporary_database(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00" * 100)
    result = run_cli("ingest", str(bad), "-o", str(tmp_path / "t.duckdb"))
    assert result.exit_code == 3
    assert os.listdir(tmp_path) == ["bad.txt"]
