"""Shared test helpers: fixture paths, the shared/ directory, CLI runner."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from tracereplay.cli.main import cli
from tracereplay.store import ingest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SHARED = Path(os.environ.get("TRACEREPLAY_SHARED", REPO.parent / "shared"))


def run_cli(*args: str) -> Any:
    """Invoke the CLI in-process; stdout and stderr kept apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def write(tmp_path: Path):
    """Write text (or bytes) to a file under tmp_path and return its path as str."""

    def _write(name: str, content: str | bytes) -> str:
        p = tmp_path / name
        if isinstance(content, str):
            p.write_text(content)
        else:
            p.write_bytes(content)
        return str(p)

    return _write


@pytest.fixture
def db_of(tmp_path: Path):
    """Ingest a trace and return an open read-only DuckDB connection."""
    conns: list[duckdb.DuckDBPyConnection] = []

    def _db(trace: str, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        out = tmp_path / f"db{len(conns)}.duckdb"
        ingest(trace, str(out), **kwargs)
        con = duckdb.connect(str(out), read_only=True)
        conns.append(con)
        return con

    yield _db
    for c in conns:
        c.close()


def args_of(con: duckdb.DuckDBPyConnection, where: str = "TRUE") -> list[dict[str, Any]]:
    return [
        json.loads(a)
        for (a,) in con.execute(f"SELECT args FROM events WHERE {where} ORDER BY seq").fetchall()
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` record large traces afresh: only with TRACEREPLAY_SLOW=1."""
    if os.environ.get("TRACEREPLAY_SLOW") == "1":
        return
    skip = pytest.mark.skip(
        reason="slow: records a large corpus afresh (minutes; root, /dev/kvm, tracefs, "
        "trace-cmd, perf); set TRACEREPLAY_SLOW=1 to run it"
    )
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
