"""analyze's outputs on the recorded fixtures: markdown, the table's legend and polish, the CSV.

The markdown is parsed with markdown-it-py (GFM tables, as GitHub renders
them); the CSV's row kinds are checked against the README's list of them.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re

import pytest
from conftest import FIXTURES, REPO, run_cli
from markdown_it import MarkdownIt

import tracereplay
from tracereplay.pipeline import Analysis
from tracereplay.policies.base import REGISTRY
from tracereplay.report.cells import callback_label, human_bytes, is_id_column, plural
from tracereplay.report.render import FORMATS, render, to_csv, to_markdown, to_table

KVM = str(FIXTURES / "kvm-pinned-6.18.txt.gz")
THREADS = str(FIXTURES / "pinned-threads-6.18.txt")


@pytest.fixture(scope="module")
def kvm() -> Analysis:
    return tracereplay.analyze(KVM)


@pytest.fixture(scope="module")
def threads() -> Analysis:
    return tracereplay.analyze(THREADS)


def _tables(md: str) -> list[list[list[str]]]:
    """The GFM tables markdown-it finds: rows of cell texts (header row first)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    tables: list[list[list[str]]] = []
    in_cell = False
    for t in tokens:
        if t.type == "table_open":
            tables.append([])
        elif t.type == "tr_open":
            tables[-1].append([])
        elif t.type in ("th_open", "td_open"):
            in_cell = True
            tables[-1][-1].append("")
        elif t.type in ("th_close", "td_close"):
            in_cell = False
        elif t.type == "inline" and in_cell:
            tables[-1][-1][-1] = t.content
    return tables


def test_markdown_tables_render_as_tables(kvm):
    md = to_markdown(kvm)
    tables = _tables(md)
    # one comparison per VM, the vmstat check, the processes
    assert len(tables) == len(kvm.vms) + 2, md
    comparison, vmstat, procs = tables
    assert comparison[0] == ["metric", *kvm.policies]
    assert all(len(r) == len(comparison[0]) for r in comparison)
    kvm_unmap = next(r for r in comparison if r[0] == "`kvm_unmap_calls`")
    assert kvm_unmap[1:3] == ["7 d", "7 (+0%) d"]
    assert [r[0] for r in vmstat[1:]] == [f"`{r.metric}`" for r in kvm.vmstat_check or []]
    assert procs[0][:2] == ["tgid", "comm"] and procs[1][:2] == ["7550", "`tr-kvm-vmm`"]
    # <idle> is a name in a code span, not an HTML tag GitHub would hide
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<code>&lt;idle&gt;</code>" in html


def test_markdown_has_warnings_vmstat_assumptions_and_a_legend_per_policy(kvm):
    a = copy.deepcopy(kvm)
    a.trace.warnings = ["a reader warning about <line 3>"]
    md = to_markdown(a)
    assert "**Warnings**" in md and "- a reader warning about \\<line 3>" in md
    assert "#### vmstat cross-check" in md
    for assumption in kvm.assumptions:
        assert f"- {assumption}" in md
    legend = md.split("#### Policies", 1)[1].strip().splitlines()
    assert legend == [
        f"- **{p}**: {REGISTRY[p].legend.removeprefix(p + ': ')}" for p in kvm.policies
    ]


def test_table_ends_with_one_legend_line_per_policy_shown(kvm):
    out = to_table(kvm).rstrip("\n").splitlines()
    n = len(kvm.policies)
    assert out[-n - 1].startswith("Policies")
    assert [ln.strip() for ln in out[-n:]] == [REGISTRY[p].legend for p in kvm.policies]


def test_only_the_policies_shown_get_a_legend(tmp_path):
    r = run_cli("analyze", KVM, "--policy", "baseline", "--policy", "numa-protect")
    assert r.exit_code == 0, r.output
    legend = r.stdout.rstrip().split("Policies (", 1)[1].splitlines()[1:]
    assert [ln.split(":")[0].strip() for ln in legend] == ["baseline", "numa-protect"]


def test_a_policy_that_changed_nothing_says_why(threads):
    (proc,) = [p for p in threads.processes if p.replay is not None]
    unchanged = proc.replay.unchanged
    assert unchanged and set(unchanged) < set(threads.policies) - {"baseline"}
    table, md = to_table(threads), to_markdown(threads)
    for policy, reason in unchanged.items():
        assert f"  {policy} changed nothing here: {reason}" in table
        assert f"- {policy} changed nothing here: {reason}" in md
    doc = json.loads(render(threads, "json"))
    entry = next(p for p in doc["processes"] if p["tgid"] == proc.tgid)
    assert entry["unchanged"] == unchanged
    rows = list(csv.reader(io.StringIO(to_csv(threads))))
    assert {(r[0], r[5]) for r in rows if r[3] == "unchanged"} == {
        (f"policy:{p}", why) for p, why in unchanged.items()
    }


def test_mmtests_cost_has_a_unit_a_basis_and_one_decimal(kvm):
    table = to_table(kvm)
    row = next(ln for ln in table.splitlines() if ln.strip().startswith("mmtests_autonuma_cost "))
    assert re.match(r"\s*mmtests_autonuma_cost\s+328\.1 a\s+328\.1 \(\+0%\) a", row), row
    assert "328.1388" not in table
    assert "mmtests_autonuma_cost = (7 x numa_pte_updates" in table and "mmtests cost units" in table
    basis = kvm.vms[0].replay.mmtests_autonuma_cost_basis
    # the weakest of its inputs: numa_hint_faults is assumed without kvm_page_fault events
    assert basis["baseline"] == "assumed"
    assert json.loads(render(kvm, "json"))["vms"][0]["mmtests_autonuma_cost_basis"] == basis


def test_ids_have_no_thousands_separators_counts_do(kvm):
    table = to_table(kvm)
    assert "7,550" not in table
    row = next(ln for ln in table.splitlines() if ln.strip().startswith("7550 "))
    assert row.split()[:3] == ["7550", "tr-kvm-vmm", "5,654"]
    assert all(is_id_column(c) for c in ("tgid", "pid", "cpu", "start_ts", "page_hva", "pass"))
    assert not any(is_id_column(c) for c in ("events", "scan_passes", "cpus", "hint_faults"))


def test_query_table_prints_timestamps_and_cpus_plain(tmp_path):
    db = str(tmp_path / "t.duckdb")
    assert run_cli("ingest", KVM, "-o", db).exit_code == 0
    sql = "SELECT ts, cpu, tgid, 1234567 AS n FROM events WHERE tgid = 7550 ORDER BY ts DESC LIMIT 1"
    r = run_cli("query", db, sql)
    assert r.exit_code == 0, r.output
    values = r.stdout.splitlines()[2].split()
    assert values[0].isdigit() and int(values[0]) > 10**9, values  # ns timestamp, no commas
    assert values[2] == "7550" and values[3] == "1,234,567"


def test_sizes_cpus_and_callbacks_read_as_words(kvm):
    a = copy.deepcopy(kvm)
    a.trace.cpus = 1
    a.vms[0].guest_ram_bytes = 1 << 40
    table = to_table(a)
    assert "(ftrace-text, kernel 6.18.44-fc-v669, 1 CPU)" in table
    assert "guest RAM 1.0 TiB, pinned 384.0 MiB" in table
    assert "0x0" not in table and "scheduler_ipi (reschedule, NULL callback) 18" in table
    assert human_bytes(0) == "0 B" and human_bytes(1536 << 20) == "1.5 GiB"
    assert plural(2, "CPU") == "2 CPUs"
    assert callback_label("?") == "unknown"
    assert callback_label("0xffffffffc0a01234") == "unknown (0xffffffffc0a01234)"
    assert callback_label("flush_tlb_func") == "flush_tlb_func"


def test_event_count_hint_names_the_database_only_when_one_was_written(kvm):
    without = to_table(kvm, max_events=5)
    assert "  ... 7 more (--format json lists them all" in without
    assert "event_counts" not in without
    with_db = to_table(kvm, max_events=5, db="kept.duckdb")
    assert "  ... 7 more (tracereplay query kept.duckdb event_counts)" in with_db


def test_cli_markdown_is_the_golden_and_format_list_matches_the_renderer():
    r = run_cli("analyze", KVM, "--format", "markdown")
    assert r.exit_code == 0, r.output
    expected = (REPO / "tests/diff/analyze-kvm-text-markdown/expected.md").read_text()
    assert r.stdout == expected.replace("{input}", KVM)
    from tracereplay.cli.main import analyze

    choices = next(p for p in analyze.params if p.name == "fmt").type.choices  # type: ignore[attr-defined]
    assert tuple(choices) == FORMATS


# --- CSV -----------------------------------------------------------------------------------


def _readme_csv_kinds() -> set[tuple[str, str]]:
    """(scope, metric) pairs of the README's CSV table: ``policy:POLICY`` stands for every
    policy, ``METRIC`` for every metric of the scope."""
    text = (REPO / "README.md").read_text()
    section = text.split("<!-- csv-rows -->", 2)[1]
    kinds = set()
    rows = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("|")]
    for line in rows[2:]:  # after the header and its rule
        scopes, metrics = line.strip("|").split("|")[:2]
        metrics = re.sub(r"\(.*?\)", "", metrics)  # "METRIC (what it stands for)"
        for scope in scopes.split(","):
            for metric in metrics.split(","):
                kinds.add((scope.strip(" `"), metric.strip(" `")))
    return kinds


@pytest.mark.parametrize("trace", [KVM, THREADS])
def test_every_csv_row_kind_is_documented(trace, kvm, threads):
    analysis = kvm if trace == KVM else threads
    rows = list(csv.reader(io.StringIO(to_csv(analysis))))
    assert rows[0] == ["scope", "tgid", "name", "metric", "key", "value", "basis"]
    assert all(len(r) == 7 for r in rows)
    documented = _readme_csv_kinds()
    for r in rows[1:]:
        scope = "policy:POLICY" if r[0].startswith("policy:") else r[0]
        metric = r[3] if scope != "warning" else "CODE"
        if (scope, metric) not in documented:
            assert (scope, "METRIC") in documented, (scope, metric)
        assert r[6] in ("observed", "derived", "assumed"), r


def test_csv_has_process_scope_vmstat_cost_and_assumptions(kvm):
    rows = list(csv.reader(io.StringIO(to_csv(kvm))))
    assert {r[0] for r in rows[1:]} >= {"trace", "vm", "process", "vmstat_check", "assumption"}
    assert "processe" not in {r[0] for r in rows}
    check = {(r[3], r[4]): r[5] for r in rows if r[0] == "vmstat_check"}
    first = (kvm.vmstat_check or [])[0]
    assert check[(first.metric, "vmstat_delta")] == str(first.kernel)
    cost = {r[0]: (r[5], r[6]) for r in rows if r[3] == "mmtests_autonuma_cost"}
    assert cost["policy:baseline"] == ("328.138752", "assumed")
    assert [r[5] for r in rows if r[0] == "assumption"] == kvm.assumptions


def test_readme_markdown_example_is_the_fixtures_output():
    text = (REPO / "README.md").read_text()
    example = text.split("<!-- markdown-example -->", 2)[1]
    block = example.split("```markdown\n", 1)[1].rsplit("```", 1)[0]
    lines = [ln.removeprefix("  ") for ln in block.splitlines()]  # indented in a list item
    expected = (REPO / "tests/diff/analyze-kvm-text-markdown/expected.md").read_text()
    want = expected.replace("{input}", "fixtures/kvm-pinned-6.18.txt.gz").rstrip("\n")
    assert "\n".join(lines).rstrip() == want
