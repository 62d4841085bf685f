"""Shared test helpers: fixture paths, the shared/ directory, CLI runner."""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from tracereplay.cli.main import cli
from tracereplay.store import ingest


def _plugin_autoloaded() -> bool:
    """Does pytest load tracereplay's plugin through its ``pytest11`` entry point?"""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == "tracereplay.pytest_plugin" for ep in entry_points(group="pytest11"))


# Installed (pip install . or -e .) the entry point loads the plugin; an install made before
# it existed, or PYTEST_DISABLE_PLUGIN_AUTOLOAD, needs it named here (never both: pytest
# refuses to register one module twice).
pytest_plugins = ["pytester"] + ([] if _plugin_autoloaded() else ["tracereplay.pytest_plugin"])

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
    """``slow`` tests need TRACEREPLAY_SLOW=1; ``boundscheck`` tests need NUMBA_BOUNDSCHECK=1;
    ``host`` tests need TRACEREPLAY_HOST_TESTS=1.

    The boundscheck ones compile every decoder with bounds checks, the host ones run
    the lab's KVM guest under tracefs with NUMA balancing on (minutes together): each
    group runs in a pass of its own in .ci/run rather than in the README's test command.
    """
    slow = pytest.mark.skip(
        reason="slow: records a large corpus afresh (minutes; root, /dev/kvm, tracefs, "
        "trace-cmd, perf); set TRACEREPLAY_SLOW=1 to run it"
    )
    unchecked = pytest.mark.skip(
        reason="boundscheck: runs in .ci/run's pass with NUMBA_BOUNDSCHECK=1 "
        "(compiles every decoder with bounds checks)"
    )
    on_host = pytest.mark.skip(
        reason="host: records the lab's KVM guest on this host (root, /dev/kvm, tracefs); "
        "runs in .ci/run's host pass, or set TRACEREPLAY_HOST_TESTS=1"
    )
    for item in items:
        if "host" in item.keywords and os.environ.get("TRACEREPLAY_HOST_TESTS") != "1":
            item.add_marker(on_host)
        if "slow" in item.keywords and os.environ.get("TRACEREPLAY_SLOW") != "1":
            item.add_marker(slow)
        if "boundscheck" in item.keywords and os.environ.get("NUMBA_BOUNDSCHECK") != "1":
            item.add_marker(unchecked)
