"""``tracereplay batch``: many traces, per-trace results as Parquet, a fleet summary."""

from __future__ import annotations

import sys
from typing import Any

import click

from tracereplay.cli.options import (
    CONTEXT,
    force_option,
    output_option,
    policy_options,
    quiet_option,
)
from tracereplay.errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_PARTIAL


@click.command("batch", context_settings=CONTEXT)
@click.argument("traces", nargs=-1, required=True)
@output_option(
    "Directory to write (metrics/, traces/, fleet.duckdb).", dest="outdir", dir_okay=True
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes (of the local pool, or of the local Dask cluster).",
)
@click.option(
    "--cluster",
    metavar="local|ADDRESS",
    help="Run on Dask distributed: 'local' starts a local cluster, an address "
    "(tcp://host:8786) joins one. Needs pip install 'tracereplay[fleet]'.",
)
@force_option("Replace OUTDIR if it is the output of an earlier batch (atomically).")
@policy_options
@click.option(
    "--strict",
    is_flag=True,
    help=f"Exit {EXIT_PARTIAL} when a result is partial (lost events, skipped lines).",
)
@quiet_option
def batch_command(
    traces: tuple[str, ...],
    outdir: str,
    workers: int,
    cluster: str | None,
    force: bool,
    policies: tuple[str, ...],
    params: dict[str, dict[str, Any]],
    strict: bool,
) -> None:
    """Analyze every TRACE (each with its sibling TRACE.manifest.toml when present).

    Writes OUTDIR/metrics/ (Parquet, one row per trace, scope, tgid, name,
    policy and metric, with value and basis; policy is empty for observed
    counts), OUTDIR/traces/ (one row per trace: its info or its error) and
    OUTDIR/fleet.duckdb (views metrics, traces, avoided_by_host, avoided_by_vm),
    then prints what each policy avoided per host and per VM. A trace that
    fails is recorded with its error and the others go on; the exit status is
    then 3 (1 if a worker hit a bug). See docs/FLEET.md.

    \b
    Examples:
      tracereplay batch /traces/*/trace.dat -o fleet-out
      tracereplay batch traces/*.dat -o out --workers 4 --policy baseline --policy numa-protect
      tracereplay batch traces/*.dat -o out --cluster local
      tracereplay batch traces/*.dat -o out --cluster tcp://scheduler:8786
      tracereplay query out/fleet.duckdb "SELECT * FROM avoided_by_host"
    """
    from tracereplay.batch import Outcome, run_batch

    total = len(traces)
    done = 0

    def report(o: Outcome) -> None:
        nonlocal done
        done += 1
        state = "ok" if o.ok else f"FAILED ({o.error_type}): {(o.error or '').splitlines()[0]}"
        click.echo(f"tracereplay: [{done}/{total}] {o.job.trace}: {state}", err=True)

    result = run_batch(
        traces,
        outdir,
        workers=workers,
        cluster=cluster,
        policies=policies,
        params=params,
        force=force,
        on_outcome=report,
    )
    click.echo(result.summary, nl=False)
    click.echo(f"tracereplay: wrote {result.outdir} (query {result.database})", err=True)
    if result.failed:
        bug = any(o.error_type == "bug" for o in result.failed)
        sys.exit(EXIT_INTERNAL if bug else EXIT_INPUT)
    if strict and result.partial:
        sys.exit(EXIT_PARTIAL)


__all__ = ["batch_command"]
