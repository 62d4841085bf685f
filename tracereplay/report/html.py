"""``tracereplay report``: one self-contained HTML file with tables and static SVG charts.

No script, no stylesheet or font from elsewhere: the styles are inline, the
charts inline SVG (:mod:`tracereplay.report.plots`), and a Content-Security-Policy
forbids the page to load anything at all. What the charts show and how it is
aggregated is in :mod:`tracereplay.report.aggregate` and docs/REPORTS.md.
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence
from html import escape

import duckdb

from tracereplay.atomic import atomic_output
from tracereplay.contract import METRICS
from tracereplay.metric_info import metric_info
from tracereplay.pipeline import Analysis, Metric, Session
from tracereplay.policies import REGISTRY
from tracereplay.replay import VmResult
from tracereplay.replay.series import ChunkSeries
from tracereplay.report import plots
from tracereplay.report.aggregate import (
    MIB,
    Axis,
    GuestLayout,
    cumulative,
    fault_grid,
    refault_grid,
    scan_passes,
    zap_grid,
)
from tracereplay.version import __version__

# the charts over time and the bars of avoided work
OVER_TIME = ("numa_invalidations", "kvm_pages_zapped", "kvm_remote_flushes", "numa_hint_faults")
AVOIDED = ("kvm_pages_zapped", "kvm_remote_flushes", "tlb_shootdown_ipis", "est_cpu_us")
MAX_CHARTED = 8  # VMs / pinned processes with charts (the busiest); the tables have all
MAX_PROCESSES = 25
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:1px solid #999}
.b{color:#777;font-size:11px}.up{color:#b00}.down{color:#060}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.note{color:#555;font-size:12px;max-width:1000px}
code,pre{font-size:12px;background:#f5f5f5;padding:1px 4px}
nav a{margin-right:12px}
.wide{overflow-x:auto}
li{margin:2px 0}
"""


def _n(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.2f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    h = "".join(f"<th>{c}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<div class=wide><table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table></div>"


def _cell(m: Metric | None, base: Metric | None) -> str:
    if m is None:
        return ""
    out = f'{_n(m.value)} <span class="b">{m.basis[0]}</span>'
    if base is not None and base is not m and base.value:
        pct = (m.value - base.value) / base.value * 100
        cls = "up" if pct > 0 else "down" if pct < 0 else "b"
        change = f"x{m.value / base.value:,.0f}" if pct > 1000 else f"{pct:+.0f}%"
        out += f' <span class="{cls}">({change})</span>'
    return out


def _policy_table(policies: dict[str, dict[str, Metric]], order: list[str]) -> str:
    base = policies.get("baseline", {})
    rows = []
    for name in (*METRICS, "est_cpu_us"):
        tip = (
            escape(metric_info(name).meaning, quote=True)
            if name in METRICS
            else "estimated CPU time"
        )
        rows.append(
            [f'<span title="{tip}">{escape(name)}</span>']
            + [_cell(policies.get(p, {}).get(name), base.get(name)) for p in order]
        )
    return _table(["metric", *(escape(p) for p in order)], rows)


def _vm_section(a: Analysis) -> str:
    parts = ['<h2 id="vms">Per VM: every policy against the baseline</h2>']
    parts.append(
        '<p class="note">o observed, d derived, a assumed (docs/METRICS.md); '
        "(±x%) against the baseline.</p>"
    )
    if not a.vms:
        parts.append("<p>No VM in this trace.</p>")
    for vm in a.vms:
        parts.append(
            f"<h3>VM {vm.tgid} ({escape(vm.name)}): guest RAM {vm.guest_ram_bytes / MIB:,.1f} MiB, "
            f"pinned {vm.pinned_bytes / MIB:,.1f} MiB</h3>"
        )
        if vm.replay is None:
            parts.append("<p>No NUMA-scan activity to replay.</p>")
            continue
        parts.append(_policy_table(vm.policies, a.policies))
        parts += [f'<p class="note">{escape(e)}</p>' for e in vm.explanations]
    return "".join(parts)


def _process_section(a: Analysis) -> str:
    parts = ['<h2 id="processes">Per process</h2>']
    replayed = [p for p in a.processes if p.replay is not None]
    for p in replayed:
        parts.append(
            f"<h3>process {p.tgid} ({escape(p.label)}): regions {p.region_bytes / MIB:,.1f} MiB, "
            f"pinned {p.pinned_bytes / MIB:,.1f} MiB (replayed)</h3>"
        )
        parts.append(_policy_table(p.policies, a.policies))
    observed = [p for p in a.processes if p.replay is None][:MAX_PROCESSES]
    names = sorted({m for p in observed for m in p.observed})
    if observed:
        parts.append(f"<h3>Observed counts (the {len(observed)} busiest)</h3>")
        rows = [
            [f"{p.tgid} {escape(p.label)}"]
            + [_n(p.observed[m].value) if m in p.observed else "" for m in names]
            for p in observed
        ]
        parts.append(_table(["process", *(escape(m) for m in names)], rows))
    if not replayed and not observed:
        parts.append("<p>No process activity.</p>")
    return "".join(parts)


def _charted(session: Session) -> list[VmResult]:
    """The replayed VMs and processes that get charts: the busiest baseline zaps first."""
    assert session.result is not None
    every = [*session.result.vms, *session.result.processes]
    every.sort(
        key=lambda r: (
            -float(
                r.policies["baseline"]["numa_pte_updates"].value
                + r.policies["baseline"]["kvm_pages_zapped"].value
            )
        )
    )
    return every[:MAX_CHARTED]


def _label(r: VmResult) -> str:
    return f"{'VM' if r.vm.kind == 'vm' else 'process'} {r.vm.tgid} ({r.vm.name})"


def _over_time(
    results: list[VmResult], series: dict[int, ChunkSeries], axis: Axis, order: list[str]
) -> str:
    parts = ['<h2 id="over-time">Over time, one line per policy (running totals)</h2>']
    parts.append(
        '<p class="note">Counts per NUMA-scan invalidation, dated by the invalidation; hint '
        "faults are apportioned to the scan that made the pages PROT_NONE "
        "(tracereplay.replay.series).</p>"
    )
    xs = axis.seconds(axis.edges)
    for r in results:
        cs = series[r.vm.tgid]
        parts.append(f"<h3>{escape(_label(r))}</h3><div class=charts>")
        for metric in OVER_TIME:
            lines = cumulative(cs, metric, axis)
            parts.append(
                plots.line_chart(
                    xs,
                    [(p, lines[p]) for p in order if p in lines],
                    title=metric,
                    x_label="seconds since trace start",
                )
            )
        parts.append("</div>")
    return "".join(parts)


def _avoided(a: Analysis, order: list[str]) -> str:
    parts = [
        '<h2 id="avoided">Avoided work per VM and policy</h2>'
        '<p class="note">Baseline minus the policy: a bar left of zero is work the policy '
        "adds.</p><div class=charts>"
    ]
    entries = [(f"VM {v.tgid}", v.policies) for v in a.vms if v.replay is not None] + [
        (f"proc {p.tgid}", p.policies) for p in a.processes if p.replay is not None
    ]
    for metric in AVOIDED:
        rows = [
            (who, p, order.index(p), float(pol[p][f"{metric}_avoided"].value))
            for who, pol in entries
            for p in order
            if p != "baseline" and f"{metric}_avoided" in pol.get(p, {})
        ]
        if rows:
            parts.append(plots.bar_chart(rows, title=f"{metric} avoided"))
    parts.append("</div>")
    return "".join(parts)


def _heatmaps(
    con: duckdb.DuckDBPyConnection, results: list[VmResult], axis: Axis, compare: str
) -> str:
    parts = [f'<h2 id="heatmap">Pages zapped and refaulted: baseline beside {escape(compare)}</h2>']
    parts.append(
        '<p class="note">Guest RAM offset (MiB, memslots end to end) × seconds since trace '
        "start; darker is more 4 KiB pages. Refaults: the traced vCPU faults scaled by the "
        "zaps the policy keeps per address bin, or, without kvm_page_fault events, one per "
        "zapped page (assumed) — see docs/REPORTS.md.</p>"
    )
    x_range = (0.0, (axis.end - axis.start) / 1e9)
    for r in results:
        if r.vm.kind != "vm":
            continue
        layout = GuestLayout.of(con, r.vm.tgid)
        base = zap_grid(r, "baseline", layout, axis)
        other = zap_grid(r, compare, layout, axis)
        faults = fault_grid(con, r.vm.tgid, layout, axis)
        totals = {p: float(r.policies[p]["spte_refaults"].value) for p in ("baseline", compare)}
        rb = refault_grid(faults, base, base, totals["baseline"])
        ro = refault_grid(faults, other, base, totals[compare])
        y_range = (0.0, layout.total / MIB)
        zmax, rmax = float(max(base.max(), other.max())), float(max(rb.max(), ro.max()))
        parts.append(f"<h3>{escape(_label(r))}</h3><div class=charts>")
        for grid, what, vmax in (
            (base, "zapped", zmax),
            (other, "zapped", zmax),
            (rb, "refaults", rmax),
            (ro, "refaults", rmax),
        ):
            policy = "baseline" if grid is base or grid is rb else compare
            parts.append(
                plots.heatmap(
                    grid,
                    title=f"{policy}: pages {what} ({_n(float(grid.sum()))})",
                    x_range=x_range,
                    y_range=y_range,
                    x_label="seconds",
                    y_label="guest RAM MiB",
                    vmax=vmax,
                )
            )
        parts.append("</div>")
    return "".join(parts)


def _scan_passes(con: duckdb.DuckDBPyConnection, a: Analysis, axis: Axis) -> str:
    parts = ['<h2 id="scan-passes">NUMA scan passes</h2>']
    passes = scan_passes(con)
    if not passes:
        parts.append("<p>No NUMA-scan invalidation in this trace.</p>")
    x_range = (0.0, (axis.end - axis.start) / 1e9)
    for tgid in sorted({p.tgid for p in passes})[:MAX_CHARTED]:
        mine = [p for p in passes if p.tgid == tgid]
        step = max(1, -(-len(mine) // 60))  # at most 60 rows: passes grouped when more
        rows = []
        for k in range(0, len(mine), step):
            g = mine[k : k + step]
            label = f"pass {g[0].number}" + (f"-{g[-1].number}" if len(g) > 1 else "")
            tip = (
                f"{label}: {sum(p.invalidations for p in g)} invalidations, "
                f"{sum(p.guest_pages for p in g):,} guest pages ({sum(p.pinned_pages for p in g):,} pinned)"
            )
            rows.append(
                (label, (g[0].start - axis.start) / 1e9, (g[-1].end - axis.start) / 1e9, tip)
            )
        parts.append(
            plots.spans(
                rows,
                title=f"VM {tgid}: scan passes",
                x_range=x_range,
                x_label="seconds since trace start",
            )
        )
    skips = con.execute(
        "SELECT pid, reason, count(*) FROM numa_vma_skips GROUP BY ALL ORDER BY 3 DESC LIMIT 20"
    ).fetchall()
    if skips:
        parts.append("<h3>VMAs task_numa_work skipped (sched_skip_vma_numa)</h3>")
        parts.append(
            _table(
                ["pid", "reason", "count"], [[str(p), escape(str(r)), _n(n)] for p, r, n in skips]
            )
        )
    return "".join(parts)


def _vmstat(a: Analysis) -> str:
    parts = ['<h2 id="vmstat">vmstat cross-check</h2>']
    if a.vmstat_check is None:
        parts.append("<p>No vmstat deltas in the manifest (or nothing replayed).</p>")
        return "".join(parts)
    rows = [
        [
            escape(r.metric),
            escape(r.vmstat),
            _n(r.derived),
            _n(r.kernel),
            f"{r.agreement * 100:.1f}%" if r.agreement is not None else "n/a",
        ]
        for r in a.vmstat_check
    ]
    parts.append(_table(["metric", "/proc/vmstat", "derived", "kernel", "agreement"], rows))
    return "".join(parts)


def _warnings(a: Analysis) -> str:
    parts = ['<h2 id="warnings">Warnings and assumptions</h2>']
    items = [f"<li><b>{escape(w.code)}</b>: {escape(w.message)}</li>" for w in a.warnings]
    items += [f"<li>{escape(w)}</li>" for w in a.trace.warnings]
    parts.append(f"<ul>{''.join(items)}</ul>" if items else "<p>No warnings.</p>")
    parts.append("<h3>Assumptions</h3><ul>")
    parts += [f"<li>{escape(x)}</li>" for x in a.assumptions]
    parts.append("</ul><h3>Policies</h3><ul>")
    for p in a.policies:
        cls = REGISTRY.get(p)
        legend = cls.legend if cls is not None else ""
        parts.append(f"<li><b>{escape(p)}</b>: {escape(legend)}</li>")
    parts.append("</ul>")
    return "".join(parts)


def _provenance(a: Analysis, command: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    rows = [
        ["command", f"<code>{escape(command)}</code>"],
        ["tracereplay", escape(__version__)],
        ["python / duckdb", f"{escape(platform.python_version())} / {escape(duckdb.__version__)}"],
        ["written", now],
        ["trace", f"{escape(a.trace.path)} ({escape(a.trace.format)})"],
        ["manifest", escape(a.trace.manifest or "none")],
    ]
    return '<h2 id="provenance">How this report was made</h2>' + _table(["", ""], rows)


def render_html(session: Session, *, command: str, compare: str | None = None) -> str:
    """The report of ``session``'s last replay (every built-in policy when none ran)."""
    a = session.analysis
    order = list(a.policies)
    compare = compare or next(
        (p for p in ("notifier-flag", *order) if p in order and p != "baseline"), "baseline"
    )
    con = session.con
    axis = Axis.of(con)
    results = _charted(session)
    series = {s.tgid: s for s in session.chunk_series()}
    t = a.trace
    state = "PARTIAL: part of the trace could not be decoded" if a.partial else "complete"
    head = (
        f"<h1>tracereplay report: {escape(t.path)}</h1>"
        f"<p>{escape(t.format)}, kernel {escape(t.kernel or 'unknown')}, {t.cpus or '?'} CPUs, "
        f"{t.events:,} events, {t.lost_events:,} lost ({state}); "
        f"{(axis.end - axis.start) / 1e9:,.3f} s traced; policies: {escape(', '.join(order))}</p>"
        "<nav><a href=#vms>VMs</a><a href=#processes>processes</a><a href=#over-time>over time</a>"
        "<a href=#avoided>avoided</a><a href=#heatmap>heat map</a><a href=#scan-passes>scan passes</a>"
        "<a href=#vmstat>vmstat</a><a href=#warnings>warnings</a><a href=#provenance>provenance</a></nav>"
    )
    body = [
        head,
        _vm_section(a),
        _process_section(a),
        _over_time(results, series, axis, order),
        _avoided(a, order),
        _heatmaps(con, results, axis, compare),
        _scan_passes(con, a, axis),
        _vmstat(a),
        _warnings(a),
        _provenance(a, command),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>tracereplay report: {escape(t.path)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_html(
    session: Session,
    out_path: str,
    *,
    command: str,
    compare: str | None = None,
    force: bool = False,
) -> int:
    """Write the report to ``out_path`` atomically; returns its size in bytes."""
    text = render_html(session, command=command, compare=compare).encode()
    with atomic_output(out_path, force=force, suffix=".html") as tmp, open(tmp, "wb") as f:
        f.write(text)
    return len(text)


__all__ = ["render_html", "write_html"]
