"""Every public named query is documented, runnable, and its columns match its documentation."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from tracereplay.store import named_queries
from tracereplay.store.queries import queries_dir

PUBLIC = sorted(named_queries())


def test_the_library_ships_queries():
    assert queries_dir().is_dir()
    assert {
        "event_counts",
        "process_activity",
        "tlb_flushes_by_reason",
        "ipis_by_callback",
        "kvm_invalidations",
        "page_faults_by_process",
        "lost_events_by_cpu",
        "vm_scan_summary",
        "invalidations_by_cause",
        "pages_zapped_per_pass",
        "hint_faults_per_page",
        "pages_zapped_most_often",
    } <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_query_is_documented_and_runs(name, db_of):
    q = named_queries()[name]
    assert q.summary, f"{name}: header must start with '-- {name}: summary'"
    assert q.columns and all(q.columns.values()), (
        f"{name}: every column needs '-- @column name doc'"
    )
    con = db_of(str(FIXTURES / "kvm-pinned-6.18.txt.gz"))
    cur = con.execute(q.sql)
    assert [d[0] for d in cur.description] == list(q.columns)
    cur.fetchall()


def test_private_modules_are_hidden():
    assert not any(n.startswith("_") for n in PUBLIC)
    assert "_typed_tables" in named_queries(include_private=True)
