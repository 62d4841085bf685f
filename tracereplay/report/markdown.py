"""``analyze --format markdown``: the report as GitHub-flavoured markdown pipe tables.

Meant to be pasted into a mailing-list post or an issue: the columns are padded
so the source reads as a table too. It holds what a reader needs to judge the
figures: per VM and replayed process the comparison (policies as columns),
the warnings, the vmstat cross-check, the observed processes, the assumptions
and one legend line per policy shown.
"""

from __future__ import annotations

import re

from tracereplay.pipeline.analysis import Analysis
from tracereplay.report import sections
from tracereplay.report.cells import BASIS_KEY, count, plural
from tracereplay.report.grid import Grid


def text(s: str) -> str:
    """Prose for markdown: ``<`` escaped outside code spans (``<idle>`` is no HTML tag)."""
    parts = s.split("`")
    return "`".join(p if i % 2 else p.replace("<", "\\<") for i, p in enumerate(parts))


def code(s: str) -> str:
    """``s`` as a code span (names such as ``<idle>`` or ``kworker/0:2`` shown as they are)."""
    ticks = "``" if "`" in s else "`"
    return f"{ticks}{s}{ticks}" if s else ""


def pipe_table(grid: Grid, code_columns: frozenset[int] = frozenset()) -> list[str]:
    """A pipe table, padded; text columns left-aligned, numbers right-aligned."""

    def written(i: int, c: str) -> str:
        c = code(c) if i in code_columns else c
        return c.replace("|", "\\|")

    cells = [[c.replace("|", "\\|") for c in grid.headers]]
    cells += [[written(i, c) for i, c in enumerate(r)] for r in grid.rows]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(grid.headers))]
    left = grid.text_columns

    def line(r: list[str]) -> str:
        padded = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        (":" + "-" * (w - 1)) if i in left else ("-" * (w - 1) + ":")
        for i, w in enumerate(widths)
    ]
    return [line(cells[0]), "| " + " | ".join(rule) + " |", *(line(r) for r in cells[1:])]


def _heading(title: str) -> str:
    # the name in "VM 7550 (name): ..." as code: a process name may hold markdown
    return "#### " + re.sub(r"\(([^)]*)\):", lambda m: f"({code(m.group(1))}):", title, count=1)


def to_markdown(analysis: Analysis, *, max_processes: int = 10) -> str:
    t = analysis.trace
    out = [f"### tracereplay analyze {code(t.path)}", ""]
    facts = [t.format]
    if t.kernel:
        facts.append(f"kernel {t.kernel}")
    if t.cpus:
        facts.append(plural(t.cpus, "CPU"))
    state = "**PARTIAL**: see the warnings" if t.partial else "complete"
    summary = (
        f"{', '.join(facts)}; {count(t.events)} events decoded, {count(t.lost_events)} "
        f"reported lost in {count(t.lost_event_gaps)} gap(s) ({state})"
    )
    if t.manifest:
        summary += f"; manifest {code(t.manifest)}"
    out += [summary + ".", ""]
    if analysis.warnings or t.warnings:
        out += ["**Warnings**", ""]
        out += [f"- **{w.code}**: {text(w.message)}" for w in analysis.warnings]
        out += [f"- {text(w)}" for w in t.warnings]
        out.append("")
    comps = sections.comparisons(analysis)
    for c in comps:
        out += [_heading(c.title), ""]
        if c.grid is not None:
            out += pipe_table(c.grid, code_columns=frozenset({0}))
            out += ["", f"{BASIS_KEY}.", ""]
        out += [f"- {text(n)}" for n in c.notes]
        out.append("")
    if analysis.vmstat_check:
        out += [f"#### {sections.VMSTAT_TITLE}", ""]
        out += pipe_table(sections.vmstat_grid(analysis.vmstat_check), frozenset({0}))
        out.append("")
    procs = analysis.processes
    shown = procs[:max_processes]
    out += [
        f"#### Processes (observed; {len(shown)} of {len(procs)}, {sections.PROCESS_TITLE})",
        "",
    ]
    out += pipe_table(sections.process_grid(shown), code_columns=frozenset({1}))
    out.append("")
    if analysis.assumptions:
        out += ["#### Assumptions", ""]
        out += [f"- {text(a)}" for a in analysis.assumptions]
        out.append("")
    legend = sections.legend(sections.shown_policies(comps))
    if legend:
        out += ["#### Policies", ""]
        for line in legend:
            name, _, rest = line.partition(": ")
            out.append(f"- **{name}**: {text(rest)}")
        out.append("")
    return "\n".join(out)


__all__ = ["pipe_table", "to_markdown"]
