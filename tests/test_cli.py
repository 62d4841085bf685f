"""The command line: help, output formats, named queries, and bad input (one line, exit code)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import click
import duckdb
import pytest
from conftest import FIXTURES, run_cli
from traces import TRACEFS_FULL, TRACEFS_PLAIN

from tracereplay.cli.main import cli
from tracereplay.errors import EXIT_INPUT, EXIT_PARTIAL

PINNED = str(FIXTURES / "pinned-threads-6.18.txt")


@pytest.mark.parametrize("command", cli.list_commands(click.Context(cli)))
def test_every_command_has_help_with_examples(command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_the_cli_starts_without_the_heavy_libraries():
    """A command's module is imported when it runs (cli/lazy.py): starting the CLI, or a
    command that needs no store, loads neither numba nor DuckDB nor Arrow (~0.3 s)."""
    heavy = ("numba", "duckdb", "pyarrow", "polars", "numpy")
    loaded = f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tracereplay.cli.main import cli\n"
        + loaded
        + "r = CliRunner().invoke(cli, ['metrics', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        + loaded
        + "r = CliRunner().invoke(cli, ['ingest', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        + loaded
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "[]", "[]"], out.stdout + out.stderr


def test_query_starts_without_the_pipeline(tmp_path):
    """``query`` needs DuckDB only: neither the readers (numba, Arrow) nor the analysis
    (Polars) are loaded to print rows or named queries (0.5 s -> 0.2 s a query)."""
    db = str(tmp_path / "t.duckdb")
    assert run_cli("ingest", PINNED, "-o", db, "-q").exit_code == 0
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tracereplay.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, ['query', {db!r}, 'SELECT comm, count(*) AS n FROM page_faults GROUP BY comm'])\n"
        "assert r.exit_code == 0 and 'tr-workload' in r.output, r.output\n"
        f"r = CliRunner().invoke(cli, ['query', {db!r}, 'event_counts'])\n"
        "assert r.exit_code == 0 and 'page_fault_user' in r.output, r.output\n"
        "print(sorted(m for m in ('numba', 'polars', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]"], out.stdout + out.stderr


def test_analyze_json_shape_on_real_fixture():
    result = run_cli("analyze", PINNED, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= {"trace", "vms", "assumptions"}
    trace = doc["trace"]
    assert trace["format"] == "ftrace-text" and trace["events"] == 10778
    assert trace["lost_events"] == 0
    # keyed by bare event name
    assert trace["event_counts"]["page_fault_user"] == 9057
    assert all(":" not in k for k in trace["event_counts"])
    proc = next(p for p in doc["processes"] if p["tgid"] == 7424)
    assert proc["observed"]["user_page_faults"] == {"value": 9057, "basis": "observed"}
    assert proc["user_page_faults_by_region"] == {"unpinned": 5263, "other": 3794}
    # stdout carries only the JSON; prose goes to stderr
    assert "using manifest" not in result.stdout


def test_analyze_table_marks_basis_and_assumptions(write):
    result = run_cli("analyze", write("t.txt", TRACEFS_PLAIN))
    assert result.exit_code == 0
    out = result.output
    assert "Event counts (observed" in out and "Processes (observed" in out
    assert "Assumptions" in out and "no manifest" in out


def test_analyze_csv_rows(write):
    result = run_cli("analyze", write("t.txt", TRACEFS_FULL), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    counts = {r["key"]: int(r["value"]) for r in rows if r["metric"] == "event_count"}
    assert counts["tlb_flush"] == 2 and counts["kernel_stack"] == 1
    assert {r["basis"] for r in rows if r["scope"] in ("trace", "process")} == {"observed"}
    assert {r["basis"] for r in rows} <= {"observed", "derived", "assumed"}


def test_ingest_then_query_named_and_sql(tmp_path):
    db = str(tmp_path / "t.duckdb")
    assert run_cli("ingest", PINNED, "-o", db).exit_code == 0
    listed = run_cli("query", db, "--list").output
    assert "tlb_flushes_by_reason" in listed and "_typed_tables" not in listed
    out = run_cli("query", db, "event_counts", "--format", "json")
    rows = json.loads(out.stdout)
    assert rows[0] == {"system": "exceptions", "name": "page_fault_user", "events": 9057}
    sql = run_cli("query", db, "SELECT count(*) AS n FROM page_faults", "--format", "csv")
    assert sql.stdout == "n\n9057\n"


def test_strict_exits_nonzero_on_partial(write):
    path = write("lost.txt", TRACEFS_FULL)  # has a LOST EVENTS marker
    assert run_cli("analyze", path, "--strict", "--format", "json").exit_code == EXIT_PARTIAL
    assert run_cli("analyze", path, "--format", "json").exit_code == 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point: what a user sees, tracebacks included."""
    return subprocess.run(
        [sys.executable, "-m", "tracereplay", *args], capture_output=True, text=True, timeout=120
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tracereplay: error: ")
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0]


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.txt")
    _one_line_error(_cli("analyze", missing), EXIT_INPUT, missing, "no such file")


def test_empty_file(write):
    path = write("empty.txt", "")
    _one_line_error(_cli("analyze", path), EXIT_INPUT, path, "empty file")


def test_random_bytes(write):
    path = write("random.bin", bytes(range(256)) * 64)
    _one_line_error(_cli("analyze", path), EXIT_INPUT, path, "not a recognized trace format")


def test_broken_binary_of_another_format_names_the_offset(write):
    path = write("x.dat", b"\x17\x08\x44tracing6\x00" + b"\x00" * 100)
    _one_line_error(_cli("analyze", path), EXIT_INPUT, path, "@ byte")


def test_text_that_is_not_a_trace_names_the_line(write):
    path = write("notes.txt", "hello world\nthis is not a trace\n")
    _one_line_error(_cli("analyze", f"{path}:ftrace-text"), EXIT_INPUT, f"{path}:1")


def test_truncated_last_line_is_a_flagged_warning(write):
    cut = TRACEFS_PLAIN.rstrip("\n")
    cut = cut[: cut.rfind(":") - 30]  # cut inside the last line's header
    path = write("cut.txt", cut)
    proc = _cli("analyze", path, "--format", "json")
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    assert doc["trace"]["partial"] is True and doc["trace"]["events"] == 1
    assert f"{path}:8" in proc.stderr and "truncated last line" in proc.stderr


def test_non_utf8_comm_is_kept_and_reported(write):
    raw = TRACEFS_PLAIN.encode().replace(b"bash-1234", b"b\xffsh-1234")
    path = write("bad-utf8.txt", raw)
    proc = _cli("analyze", path, "--format", "json")
    assert proc.returncode == 0
    assert "invalid UTF-8" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["trace"]["events"] == 2
    assert any(p["comm"] == "b\ufffdsh" for p in doc["processes"])


def test_unknown_events_are_kept(write, db_of):
    con = db_of(write("t.txt", TRACEFS_FULL))
    assert con.execute("SELECT args FROM events WHERE name = 'my_custom_event'").fetchone() == (
        '{"foo":"1","bar":"\\"baz\\""}',
    )


def test_existing_output_is_never_overwritten_or_half_written(write, tmp_path):
    db = tmp_path / "keep.duckdb"
    db.write_bytes(b"precious")
    _one_line_error(_cli("ingest", PINNED, "-o", str(db)), EXIT_INPUT, "already exists")
    assert db.read_bytes() == b"precious"
    # a failing ingest with --force leaves the old file and no temporary behind
    bad = write("empty.txt", "")
    _one_line_error(_cli("ingest", bad, "-o", str(db), "--force"), EXIT_INPUT, "empty file")
    assert db.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == sorted(["keep.duckdb", "empty.txt"])
    # --force with a good trace replaces it atomically
    assert _cli("ingest", PINNED, "-o", str(db), "--force").returncode == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone() == (10778,)
    con.close()


def test_query_errors_are_one_line(tmp_path):
    db = str(tmp_path / "t.duckdb")
    run_cli("ingest", PINNED, "-o", db)
    _one_line_error(_cli("query", db, "SELECT nope FROM events"), EXIT_INPUT, "SQL")
    _one_line_error(
        _cli("query", str(tmp_path / "missing.duckdb"), "event_counts"),
        EXIT_INPUT,
        "no such database",
    )


def test_bad_manifest_is_one_line(write):
    trace = write("t.txt", TRACEFS_PLAIN)
    manifest = write(
        "m.toml", "[[vm]]\ntgid = 1\n[[vm.memslot]]\nhva_start = 0x1001\nsize = 0x1000\n"
    )
    _one_line_error(
        _cli("analyze", trace, "--manifest", manifest), EXIT_INPUT, "m.toml", "not 4 KiB aligned"
    )


def test_console_entry_point_exit_codes_and_closed_pipe(tmp_path):
    """The installed entry point (main(), which skips interpreter teardown) keeps the
    exit codes and output, and a reader that goes away early (`| head`) ends it quietly."""
    db = tmp_path / "t.duckdb"
    cmd = [sys.executable, "-m", "tracereplay"]
    done = subprocess.run([*cmd, "ingest", PINNED, "-o", str(db)], capture_output=True, text=True)
    assert done.returncode == 0 and "10,778 events" in done.stderr
    again = subprocess.run([*cmd, "ingest", PINNED, "-o", str(db)], capture_output=True, text=True)
    assert again.returncode == EXIT_INPUT and "already exists" in again.stderr
    out = subprocess.run(
        [*cmd, "query", str(db), "SELECT count(*) AS n FROM events", "--format", "csv"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.splitlines() == ["n", "10778"]
    proc = subprocess.Popen(
        [*cmd, "query", str(db), "SELECT * FROM range(200000)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == b""


def test_a_broken_pipe_that_is_not_stdout_is_an_error(monkeypatch, tmp_path):
    """EPIPE from something else (a QMP socket, a subprocess) must not pass for `| head`."""
    import tracereplay.store

    def broken(*_a, **_k):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(tracereplay.store, "ingest", broken)  # imported by the command
    result = run_cli("ingest", PINNED, "-o", str(tmp_path / "x.duckdb"))
    assert result.exit_code == 1
    assert "internal error: BrokenPipeError" in result.stderr


def test_typed_statements_are_chosen_by_the_events_they_read():
    from tracereplay.store.typed import _reads, typed_tables_sql

    assert _reads("INSERT INTO t SELECT * FROM event_rows WHERE name = 'a'") == {"a"}
    assert _reads("SELECT 1 FROM event_rows WHERE name IN ('a', 'b')") == {"a", "b"}
    two = "SELECT 1 FROM event_rows WHERE name = 'a' UNION ALL SELECT 1 FROM event_rows WHERE name = 'b'"
    assert _reads(two) == {"a", "b"}
    assert (
        _reads("SELECT 1 FROM event_rows WHERE name = 'a' OR 1 UNION SELECT 1 FROM event_rows")
        is None
    )
    assert "page_faults" in typed_tables_sql(["page_fault_user"])
    assert "page_faults" not in typed_tables_sql(["tlb_flush"])
    assert typed_tables_sql(None).count(";") > typed_tables_sql([]).count(";")
