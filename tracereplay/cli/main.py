"""``tracereplay`` command line: thin click commands over the library.

Errors meant for the user print one line on stderr and exit with the codes of
:mod:`tracereplay.errors`; set ``TRACEREPLAY_DEBUG=1`` to get tracebacks.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

import click

from tracereplay.atomic import check_new_output
from tracereplay.cli import signals
from tracereplay.cli.exits import TraceReplayGroup, first_line
from tracereplay.cli.options import (
    CONTEXT,
    force_option,
    format_option,
    manifest_option,
    output_option,
    policy_options,
    quiet_option,
)
from tracereplay.cli.progress_bars import terminal_progress
from tracereplay.errors import EXIT_PARTIAL, TraceReplayError, UsageError, UserSqlError
from tracereplay.manifest import Manifest, load_manifest, parse_manifest, sibling_manifest
from tracereplay.progress import using
from tracereplay.units import parse_size
from tracereplay.version import __version__

# the commands defined in their own modules (tracereplay/cli/<command>.py), imported
# when run: each pulls in what it needs (the store's numba and DuckDB, the recorder)
COMMANDS = {
    "batch": "tracereplay.cli.batch:batch_command",
    "check": "tracereplay.cli.check:check",
    "compare": "tracereplay.cli.compare:compare_command",
    "convert": "tracereplay.cli.convert:convert_command",
    "export": "tracereplay.cli.export:export_command",
    "help": "tracereplay.cli.explain:help_command",
    "lab": "tracereplay.cli.lab:lab",
    "metrics": "tracereplay.cli.explain:metrics_command",
    "policies": "tracereplay.cli.explain:policies_command",
    "record": "tracereplay.cli.record:record",
    "report": "tracereplay.cli.report:report_command",
    "synth": "tracereplay.cli.synth:synth",
    "top": "tracereplay.cli.top:top",
}

if TYPE_CHECKING:
    import duckdb

    from tracereplay.pipeline.analysis import Analysis


def _manifest_for(trace: str, path: str | None, quiet: bool) -> Manifest | None:
    found = path or sibling_manifest(trace)
    if found is None:
        return None
    if path is None and not quiet:
        click.echo(f"tracereplay: using manifest {found}", err=True)
    return load_manifest(found)


@click.group(cls=TraceReplayGroup, context_settings=CONTEXT, lazy_commands=COMMANDS)
@click.version_option(__version__, prog_name="tracereplay")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Replay NUMA-balancing activity from a kernel trace through mmu-notifier policies.

    \b
    Traces (format sniffed from the content; TRACE:FORMAT forces one):
      ftrace-text  tracefs trace / trace_pipe, trace-cmd report, perf script output
      trace-dat    trace-cmd trace.dat (v6, v7 with zlib/zstd sections)
      perf-data    perf record's perf.data (file and pipe mode)
      perfetto     Perfetto protobuf traces (.perfetto-trace, .pftrace)
      each also compressed as a whole file: .gz, .zst, .xz, .bz2
    `tracereplay policies` and `tracereplay metrics` explain the output;
    `tracereplay help COMMAND` shows a command's help.
    Examples:
      tracereplay analyze trace.txt
      tracereplay analyze trace.txt --manifest vm.toml --format json
      tracereplay ingest trace.txt -o trace.duckdb
      tracereplay query trace.duckdb tlb_flushes_by_reason
    """
    # progress bars of every command, on stderr when it is a terminal (--quiet: none)
    ctx.with_resource(using(terminal_progress()))


@cli.command()
@click.argument("trace")
@output_option("DuckDB file to write.", dest="db")
@manifest_option
@force_option("Replace DB if it exists (atomically, once complete).")
@quiet_option
def ingest(trace: str, db: str, manifest: str | None, force: bool) -> None:
    """Decode TRACE into a DuckDB database DB for SQL (tracereplay query).

    Tables: events (a view: every event, its fields as JSON args, its stack), one typed
    table per event family (kvm_unmaps, tlb_flushes, ipis, numa_vma_skips,
    page_faults, ...), trace_info and lost_events. TRACE may be PATH:FORMAT to
    force the format. Example:

        tracereplay ingest trace.txt.gz -o trace.duckdb
    """
    from tracereplay.store import ingest as ingest_trace

    check_new_output(db, force=force)
    m = _manifest_for(trace, manifest, quiet=False)
    result = ingest_trace(trace, db, manifest=m, replace=force)
    meta = result.meta
    for w in meta.warnings:
        click.echo(f"tracereplay: warning: {w}", err=True)
    state = " (PARTIAL)" if meta.partial else ""
    click.echo(
        f"{db}: {meta.event_count:,} events from {meta.path} ({meta.format}){state}", err=True
    )


def _parse_range(text: str, flag: str) -> tuple[int, int]:
    try:
        start, size = text.split(":", 1)
        return int(start, 0), parse_size(size)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected HVA:SIZE, e.g. 0x7f0000000000:4G", param_hint=flag
        ) from None


def _flag_manifest(
    vm: int | None, guest_ram: tuple[str, ...], pinned: tuple[str, ...]
) -> Manifest | None:
    """A manifest from --vm / --guest-ram / --pinned (the common cases without a file)."""
    if vm is None:
        if guest_ram or pinned:
            raise click.UsageError("--guest-ram and --pinned need --vm TGID")
        return None
    entry: dict[str, Any] = {"tgid": vm, "name": f"vm-{vm}"}
    entry["memslot"] = [
        {"hva_start": s, "size": n} for s, n in (_parse_range(r, "--guest-ram") for r in guest_ram)
    ]
    if pinned == ("all",):
        entry["pinned"] = "all"
    else:
        entry["pinned"] = [
            {"hva_start": s, "size": n} for s, n in (_parse_range(r, "--pinned") for r in pinned)
        ]
    return parse_manifest({"vm": [entry]}, "<command-line flags>")


@cli.command()
@click.argument("trace")
@manifest_option
@click.option("--vm", type=int, help="TGID of the VMM process (instead of a manifest).")
@click.option(
    "--guest-ram", multiple=True, metavar="HVA:SIZE", help="Guest RAM range of --vm (repeatable)."
)
@click.option(
    "--pinned",
    multiple=True,
    metavar="HVA:SIZE|all",
    help="Long-term pinned range of --vm (repeatable).",
)
@click.option(
    "--db", type=click.Path(dir_okay=False), help="Keep the DuckDB database here for later queries."
)
@force_option("Replace --db if it exists.")
@policy_options
@click.option("--costs", type=click.Path(dir_okay=False), help="Cost model TOML ([costs] table).")
@click.option(
    "--pin-skip",
    type=click.Choice(["none", "cow", "all"]),
    help="Override the baseline kernel's pin skipping.",
)
@click.option(
    "--strict",
    is_flag=True,
    help=f"Exit {EXIT_PARTIAL} when the result is partial (lost events, skipped lines).",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Processes shown in the table and markdown output.",
)
@click.option(
    "--format",
    "fmt",
    # tracereplay.report.render.FORMATS (not imported here: the CLI starts without numpy)
    type=click.Choice(["table", "markdown", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format: markdown for a mailing-list post or an issue; "
    "json and csv print only the result on stdout.",
)
@quiet_option
def analyze(
    trace: str,
    manifest: str | None,
    vm: int | None,
    guest_ram: tuple[str, ...],
    pinned: tuple[str, ...],
    db: str | None,
    force: bool,
    policies: tuple[str, ...],
    params: dict[str, dict[str, Any]],
    costs: str | None,
    pin_skip: str | None,
    strict: bool,
    top: int,
    fmt: str,
) -> None:
    """Ingest TRACE, reconstruct its NUMA-scan activity and replay every policy.

    Prints, per VM, what each proposal (notifier-flag, numa-protect, per-mm and
    per-VMA opt-out, ...) would have avoided and cost, then the observed counts
    per process. Every count says whether it is observed, derived or assumed;
    assumptions and warnings follow the tables (on stderr for json/csv).

    \b
    Examples:
      tracereplay analyze fixtures/kvm-pinned-6.18.txt.gz
      tracereplay analyze trace.txt --vm 4242 --guest-ram 0x7f0000000000:16G --pinned all
      tracereplay analyze trace.dat --manifest vm.toml --param numa-protect.batch=16 --format json
      tracereplay analyze trace.dat --format markdown > report.md
    """
    from tracereplay.pipeline import AnalysisOptions, run
    from tracereplay.policies import DEFAULT_POLICIES, load_plugins
    from tracereplay.policies.base import check_policy_names, check_policy_params
    from tracereplay.replay import CostModel, load_costs
    from tracereplay.report.render import render

    quiet = fmt not in ("table", "markdown")
    check_new_output(db, force=force)
    flags = _flag_manifest(vm, guest_ram, pinned)
    if flags is not None and manifest is not None:
        raise click.UsageError("give either --manifest or --vm/--guest-ram/--pinned, not both")
    m = flags or _manifest_for(trace, manifest, quiet=quiet)
    chosen = policies or DEFAULT_POLICIES
    load_plugins()
    check_policy_names(chosen, " given to --policy")
    options = AnalysisOptions(
        policies=tuple(chosen),
        params=check_policy_params(params),  # before the (long) ingest
        cost=load_costs(costs) if costs else CostModel(),
        pin_skip=pin_skip,
    )
    analysis = run(trace, manifest=m, options=options, db_path=db, replace=force)
    if vm is not None:
        _check_vm_in_trace(trace, vm, analysis)
    click.echo(render(analysis, fmt, max_processes=top, db=db), nl=False)
    if quiet:
        for a in analysis.assumptions:
            click.echo(f"tracereplay: assumption: {a}", err=True)
        for w in analysis.trace.warnings:
            click.echo(f"tracereplay: warning: {w}", err=True)
        for d in analysis.warnings:
            click.echo(f"tracereplay: warning [{d.code}]: {d.message}", err=True)
    if strict and analysis.partial:
        sys.exit(EXIT_PARTIAL)


def _check_vm_in_trace(trace: str, vm: int, analysis: Analysis) -> None:
    """``--vm TGID`` names a process of the trace: else a table of zeros would mislead.

    An input error (exit 3): the option is well-formed, the trace lacks the process.
    """
    present = [p for p in analysis.processes if p.detail is not None]  # seen in the trace
    if any(p.tgid == vm for p in present):
        return
    listed = ", ".join(f"{p.tgid} ({p.comm})" for p in present[:10])
    more = f" and {len(present) - 10} more" if len(present) > 10 else ""
    raise TraceReplayError(
        f"{trace}: --vm {vm}: no process with tgid {vm} in the trace; tgids present, "
        f"most NUMA-relevant first: {listed or 'none'}{more}"
    )


@cli.command()
@click.argument("db", type=click.Path(dir_okay=False))
@click.argument("sql_or_name", required=False)
@click.option(
    "--list", "list_", is_flag=True, help="List the named queries with their descriptions."
)
@format_option
def query(db: str, sql_or_name: str | None, list_: bool, fmt: str) -> None:
    """Run SQL or a named query (see --list) on a database written by ingest.

    \b
    Examples:
      tracereplay query trace.duckdb --list
      tracereplay query trace.duckdb tlb_flushes_by_reason
      tracereplay query trace.duckdb "SELECT name, count(*) FROM events GROUP BY name"
    """
    import duckdb

    from tracereplay.store.connect import connect
    from tracereplay.store.queries import named_queries

    if list_:
        for name, q in named_queries().items():
            click.echo(f"{name:28} {q.summary}")
        return
    if not sql_or_name:
        raise click.UsageError("give SQL or a query name (or --list)")
    if not os.path.exists(db):
        raise TraceReplayError(f"{db}: no such database")
    known = named_queries()
    try:
        con = connect(db, read_only=True)
    except duckdb.Error as e:
        raise TraceReplayError(f"{db}: not a tracereplay database ({first_line(e)})") from None
    try:
        named = sql_or_name in known
        if not named and _looks_like_a_name(con, sql_or_name):
            raise UsageError(
                f"unknown query {sql_or_name!r} (known: {', '.join(known)}; "
                "or give SQL, e.g. \"SELECT * FROM trace_info\")"
            )
        if named and not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'trace_info'"
        ).fetchone()[0]:  # type: ignore[index]
            raise TraceReplayError(f"{db}: not a tracereplay database (no trace_info table)")
        try:
            cur = con.execute(known[sql_or_name].sql if named else sql_or_name)
        except duckdb.Error as e:
            if named or signals.interrupted() is not None:
                raise  # our own query failing is a bug (exit 1); an interrupt stays one
            raise UserSqlError(f"SQL: {first_line(e)}") from None
        if cur.description is None:
            return
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    _print_rows(names, rows, fmt)


def _looks_like_a_name(con: duckdb.DuckDBPyConnection, text: str) -> bool:
    """One identifier that is no SQL keyword (``CHECKPOINT`` alone is SQL): a query name."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text.strip()):
        return False
    keyword = con.execute(
        "SELECT count(*) FROM duckdb_keywords() WHERE lower(keyword_name) = lower(?)",
        [text.strip()],
    ).fetchone()
    return not (keyword and keyword[0])


def _print_rows(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    import csv
    import json

    if fmt == "json":
        click.echo(
            json.dumps([dict(zip(names, r, strict=True)) for r in rows], indent=2, default=str)
        )
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(names)
        w.writerows(rows)
    else:
        from tracereplay.report.grid import raw_table

        for line in raw_table(names, [list(r) for r in rows], indent=""):
            click.echo(line)
        click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def main() -> None:
    """Console entry point: run the command, then exit without interpreter teardown.

    Every command has closed its databases and files (outputs are renamed into
    place) before it returns; tearing down numba/LLVM, DuckDB and Arrow module
    state would add ~0.17 s to every run, whatever its size.
    """
    try:
        with signals.command_process():
            cli(prog_name="tracereplay")
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt as e:  # outside a command (option parsing, cleanup)
        signum = signals.signal_of(e)
        print(signals.message(signum), file=sys.stderr)
        code = signals.exit_status(signum)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of our output went away (| head): output lost
        code = code or 141
    if os.environ.get("TRACEREPLAY_DEBUG") or sys.gettrace() or sys.getprofile():
        sys.exit(code)  # coverage, profilers and debuggers write their results at exit
    os._exit(code)


__all__ = ["cli", "main"]

