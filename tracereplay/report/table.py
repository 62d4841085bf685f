"""``analyze``'s terminal table (the default output), laid out by :mod:`.grid`."""

from __future__ import annotations

from tracereplay.pipeline.analysis import Analysis
from tracereplay.report import sections
from tracereplay.report.cells import BASIS_KEY, count, plural
from tracereplay.report.grid import layout


def comparison_lines(c: sections.Comparison) -> list[str]:
    if c.grid is None:
        return [c.title, *(f"  {n}" for n in c.notes)]
    return [c.title, f"  {BASIS_KEY}", *layout(c.grid), *(f"  {n}" for n in c.notes)]


def event_count_hint(hidden: int, db: str | None) -> str:
    """The line that follows a cut event-count table."""
    where = (
        f"tracereplay query {db} event_counts"
        if db
        else "--format json lists them all; --db DB keeps them for tracereplay query"
    )
    return f"... {count(hidden)} more ({where})"


def to_table(
    analysis: Analysis, *, max_processes: int = 10, max_events: int = 25, db: str | None = None
) -> str:
    """The terminal report; ``db`` is the database ``--db`` wrote (named in hints)."""
    t = analysis.trace
    lines = []
    kernel = f", kernel {t.kernel}" if t.kernel else ""
    cpus = f", {plural(t.cpus, 'CPU')}" if t.cpus else ""
    lines.append(f"Trace     {t.path}  ({t.format}{kernel}{cpus})")
    state = "PARTIAL: see warnings" if t.partial else "complete"
    lines.append(
        f"Events    {count(t.events)} decoded, {count(t.lost_events)} reported lost "
        f"in {count(t.lost_event_gaps)} gap(s)  [{state}]"
    )
    if t.manifest:
        lines.append(f"Manifest  {t.manifest}")
    lines.append("")
    if analysis.warnings:
        lines.append("WARNINGS")
        lines += [f"  ! [{w.code}] {w.message}" for w in analysis.warnings]
        lines.append("")
    comps = sections.comparisons(analysis)
    for c in comps:
        lines += comparison_lines(c)
        lines.append("")
    if analysis.vmstat_check:
        lines.append(sections.VMSTAT_TITLE)
        lines += layout(sections.vmstat_grid(analysis.vmstat_check))
        lines.append("")
    counts = list(t.event_counts.items())
    lines.append(f"Event counts (observed; {len(counts)} event types)")
    lines += layout(sections.event_grid(counts[:max_events]))
    if len(counts) > max_events:
        lines.append("  " + event_count_hint(len(counts) - max_events, db))
    lines.append("")

    procs = analysis.processes
    shown = procs[:max_processes]
    lines.append(
        f"Processes (observed; {len(shown)} of {len(procs)}, {sections.PROCESS_TITLE})"
    )
    lines += layout(sections.process_grid(shown))
    lines.append("")
    for p in shown:
        details = sections.process_details(p)
        if details:
            lines.append(f"Process {p.tgid} ({p.comm}), observed")
            lines += [f"  {(label + ':').ljust(29)} {text}" for label, text in details]
            lines.append("")

    if analysis.assumptions:
        lines.append("Assumptions")
        lines += [f"  - {a}" for a in analysis.assumptions]
        lines.append("")
    if t.warnings:
        lines.append("Warnings")
        lines += [f"  - {w}" for w in t.warnings]
        lines.append("")
    legend = sections.legend(sections.shown_policies(comps))
    if legend:
        lines.append("Policies (tracereplay policies explains each)")
        lines += [f"  {line}" for line in legend]
        lines.append("")
    return "\n".join(lines)


__all__ = ["layout", "to_table"]
