"""A user's mistake is never exit 1: each gets a precise one-line message and its code."""

from __future__ import annotations

import errno
import json
import os

import pytest
from conftest import FIXTURES, run_cli

from tracereplay.atomic import OutputError, atomic_output
from tracereplay.errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_USAGE
from tracereplay.store.queries import NamedQuery

PINNED = str(FIXTURES / "pinned-threads-6.18.txt")


def _error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("tracereplay: error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("db") / "t.duckdb")
    assert run_cli("ingest", PINNED, "-o", path).exit_code == 0
    return path


def test_output_in_a_missing_directory(tmp_path):
    out = str(tmp_path / "nonexistent" / "x.duckdb")
    _error(run_cli("ingest", PINNED, "-o", out), EXIT_INPUT, out, "does not exist")


def test_output_under_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    out = str(tmp_path / "f" / "x.duckdb")
    _error(run_cli("ingest", PINNED, "-o", out), EXIT_INPUT, "is not a directory")


def test_output_in_an_unwritable_directory(tmp_path, monkeypatch):
    # root may write anywhere: ask access() what a normal user would be told
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **k: False if str(p) == str(tmp_path) else real(p, mode)
    )
    out = str(tmp_path / "x.duckdb")
    _error(run_cli("ingest", PINNED, "-o", out), EXIT_INPUT, out, "is not writable")
    assert not os.listdir(tmp_path)


def test_permission_denied_on_the_temporary_output_is_an_output_error(tmp_path):
    denied = pytest.raises(OutputError, match="cannot write: Permission denied")
    with denied, atomic_output(str(tmp_path / "x.bin")) as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", tmp)
    # the same error on another file (the input) is not blamed on the output
    with pytest.raises(PermissionError), atomic_output(str(tmp_path / "y.bin")):
        raise PermissionError(errno.EACCES, "Permission denied", "/some/input")


def test_unknown_query_name(db):
    _error(
        run_cli("query", db, "no_such_query"),
        EXIT_USAGE,
        "unknown query 'no_such_query'",
        "event_counts",
    )


def test_user_sql_error_is_bad_input(db):
    _error(run_cli("query", db, "SELECT nope FROM events"), EXIT_INPUT, "SQL: Binder Error")


def test_unknown_format(tmp_path):
    _error(
        run_cli("analyze", f"{PINNED}:nosuchformat"),
        EXIT_USAGE,
        "unknown format 'nosuchformat'",
        "known: ftrace-text, trace-dat, perf-data, perfetto",
    )


def test_error_in_our_own_table_sql_is_a_bug(tmp_path, monkeypatch):
    import tracereplay.store.typed as typed

    monkeypatch.setattr(typed, "typed_tables_sql", lambda names=None: "SELEC broken;")
    _error(
        run_cli("ingest", PINNED, "-o", str(tmp_path / "x.duckdb")),
        EXIT_INTERNAL,
        "internal error",
        "a bug",
    )


def test_error_in_a_named_query_is_a_bug(db, monkeypatch):
    import tracereplay.store.queries

    broken = {"event_counts": NamedQuery("event_counts", "x", "x", sql="SELECT nope FROM events")}
    # imported by `query` from its module (not the package: that would load the readers)
    monkeypatch.setattr(tracereplay.store.queries, "named_queries", lambda: broken)
    _error(run_cli("query", db, "event_counts"), EXIT_INTERNAL, "internal error")


KVM = str(FIXTURES / "kvm-pinned-6.18.txt.gz")


def test_vm_absent_from_the_trace_is_bad_input_naming_the_tgids_present():
    # exit 3, not 2: the option is well-formed, the trace (the input) lacks the process
    r = run_cli("analyze", KVM, "--vm", "99999", "--format", "json")
    _error(r, EXIT_INPUT, KVM, "--vm 99999", "7550 (tr-kvm-vmm)", "7549 (python)")
    assert r.stdout == ""


def test_vm_present_in_the_trace_is_analyzed():
    r = run_cli("analyze", KVM, "--vm", "7550", "--format", "json")
    assert r.exit_code == 0, r.output
    assert [v["tgid"] for v in json.loads(r.stdout)["vms"]] == [7550]


@pytest.mark.parametrize("top", ["0", "-1", "two"])
def test_top_takes_only_positive_integers(top):
    r = run_cli("analyze", KVM, "--top", top)
    assert r.exit_code == EXIT_USAGE, r.output
    assert "--top" in r.stderr and "Traceback" not in r.stderr


def test_top_one_shows_one_process():
    r = run_cli("analyze", KVM, "--top", "1")
    assert r.exit_code == 0, r.output
    assert "Processes (observed; 1 of 6," in r.stdout
