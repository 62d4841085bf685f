"""Every DuckDB connection of the tool is opened by store.connect, which keeps stdout clean.

DuckDB's Python client draws a progress bar on stdout for queries over two
seconds; `top --json` on a busy host got ` 50% ▕███ ▏` lines between its JSON
objects (and `analyze --format json` would on a large trace).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tracereplay.store import connect

PACKAGE = Path(__file__).resolve().parents[1] / "tracereplay"


def test_connections_draw_no_progress_bar(tmp_path):
    db = str(tmp_path / "x.duckdb")
    for con in (connect(), connect(db)):
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)
        con.close()
    con = connect(db, read_only=True)
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)
    con.close()


def test_no_module_calls_duckdb_connect_itself():
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "store" / "connect.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "connect"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "duckdb"
            ):
                calls.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert calls == [], f"use tracereplay.store.connect instead: {calls}"
