"""The terminal view of ``top``: one rich table per interval, VMs sorted by baseline cost.

Each VM (and replayed pinned process) has a baseline row of rates per second
in the interval, then one row per policy: its rate and the share of the
baseline it avoids, in this interval and (Σ) since the start. The caption
shows the tool's own cost: its CPU, the events decoded, events lost.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tracereplay.live.engine import LIVE_METRICS, Cumulative, IntervalReport
from tracereplay.pipeline.analysis import Metric

__all__ = ["HEADERS", "render", "rows"]

HEADERS = {
    "numa_invalidations": "NUMA inval/s",
    "kvm_unmap_calls": "KVM unmap/s",
    "kvm_pages_zapped": "pages zapped/s",
    "kvm_remote_flushes": "remote flush/s",
    "tlb_shootdown_ipis": "shootdown IPI/s",
    "numa_pte_updates": "PTE upd/s",
}
COST = "est_cpu_us"


def _share(avoided: float, base: float) -> str:
    return f"{avoided / base:+.0%}" if base else "-"


def rows(report: IntervalReport, cumulative: Cumulative) -> list[dict[str, Any]]:
    """The view's rows (also what the tests check): one entry per VM or process, costliest first."""
    out = []
    subjects: list[tuple[str, int, str, dict[str, dict[str, Metric]]]] = [
        ("vm", v.tgid, v.name, v.policies) for v in report.analysis.vms if v.replay
    ]
    subjects += [
        ("process", p.tgid, p.label, p.policies) for p in report.analysis.processes if p.replay
    ]
    for kind, tgid, name, pol in subjects:
        base = pol.get("baseline", {})
        totals = (cumulative.vms if kind == "vm" else cumulative.processes).get(tgid)
        cum = totals.metrics() if totals else {}
        entry: dict[str, Any] = {
            "kind": kind,
            "tgid": tgid,
            "name": name,
            "cost": float(base[COST].value) if COST in base else 0.0,
            "policies": {},
        }
        for policy, ms in pol.items():
            cells = {}
            for m in LIVE_METRICS:
                if m not in ms:
                    continue
                rate = float(ms[m].value) / report.seconds
                b = float(base[m].value) if m in base else 0.0
                cb = cum.get("baseline", {}).get(m)
                cp = cum.get(policy, {}).get(m)
                cum_share = (
                    (float(cb.value) - float(cp.value)) / float(cb.value)
                    if cb is not None and cp is not None and cb.value
                    else None
                )
                cells[m] = {
                    "rate": rate,
                    "avoided": (b - float(ms[m].value)) / b if b else None,
                    "cumulative_avoided": cum_share,
                    "basis": ms[m].basis,
                }
            entry["policies"][policy] = cells
        out.append(entry)
    out.sort(key=lambda e: (-e["cost"], e["tgid"]))
    return out


def _cell(c: dict[str, Any] | None, baseline: bool) -> Text:
    if c is None:
        return Text("-", style="dim")
    text = Text(f"{c['rate']:,.0f}")
    if c["basis"] == "assumed":
        text.append("*", style="yellow")
    if not baseline:
        share = "-" if c["avoided"] is None else f"{-c['avoided']:+.0%}"
        total = "-" if c["cumulative_avoided"] is None else f"{-c['cumulative_avoided']:+.0%}"
        style = "green" if (c["avoided"] or 0) > 0 else "red" if (c["avoided"] or 0) < 0 else "dim"
        text.append(f" {share}", style=style)
        text.append(f" Σ{total}", style="dim")
    return text


def render(report: IntervalReport, cumulative: Cumulative, *, assumptions: int = 0) -> Group:
    """The renderable of one refresh."""
    table = Table(
        title=(
            f"tracereplay top: interval {report.index + 1} ({report.seconds:.1f} s), "
            f"{cumulative.seconds:.0f} s in all"
        ),
        expand=False,
    )
    table.add_column("tgid / policy", no_wrap=True)
    for m in LIVE_METRICS:
        table.add_column(HEADERS[m], justify="right", no_wrap=True)
    entries = rows(report, cumulative)
    for e in entries:
        table.add_row(Text(f"{e['tgid']} {e['name']}", style="bold"), *[""] * len(LIVE_METRICS))
        for policy, cells in e["policies"].items():
            base = policy == "baseline"
            table.add_row(
                Text(f"  {policy}", style="bold" if base else ""),
                *[_cell(cells.get(m), base) for m in LIVE_METRICS],
            )
    if not entries:
        table.add_row(Text("no VM or pinned process with NUMA-scan activity yet", style="dim"))
    o = report.overhead_json()
    caption = Text(
        f"tool CPU {o['cpu_percent']:.1f}% of one CPU, analysis {o['analysis_seconds']:.2f} s; "
        f"{o['events'] / report.seconds:,.0f} events/s; lost {report.lost_events:,} "
        f"(Σ {cumulative.lost_events:,}); max RSS {o['max_rss_bytes'] >> 20} MiB",
        style="red" if report.lost_events else "dim",
    )
    legend = Text(
        "rates per second in the interval; policy rows: change vs baseline (negative: avoided), "
        f"Σ since the start; * assumed (needs a fact /proc lacks; {assumptions} assumption(s) "
        "in --json)",
        style="dim",
    )
    return Group(table, caption, legend)
