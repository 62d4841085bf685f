"""``tracereplay export``: the trace plus the policies' counterfactual tracks, for a trace UI."""

from __future__ import annotations

from typing import Any

import click

from tracereplay.atomic import check_new_output
from tracereplay.cli.options import (
    CONTEXT,
    force_option,
    manifest_option,
    output_option,
    policy_options,
    quiet_option,
)


@click.command("export", context_settings=CONTEXT)
@click.argument("trace")
@manifest_option
@click.option(
    "--perfetto",
    "perfetto",
    is_flag=True,
    required=True,
    help="Write a Perfetto trace (the only export format so far; required).",
)
@output_option("Perfetto trace to write (.perfetto-trace).")
@policy_options
@force_option()
@quiet_option
def export_command(
    trace: str,
    manifest: str | None,
    perfetto: bool,
    output: str,
    policies: tuple[str, ...],
    params: dict[str, dict[str, Any]],
    force: bool,
) -> None:
    """Write TRACE's events plus one track per policy as a Perfetto trace.

    Under each replayed VM (and pinned process): a track per policy with a
    slice at every NUMA-scan invalidation where the policy avoids (or adds)
    zaps, flushes or IPIs, and running-total counters of each, on the same
    timeline as the events. Open it in ui.perfetto.dev.

    \b
    Examples:
      tracereplay export fixtures/kvm-pinned-6.18.txt.gz --perfetto -o kvm.perfetto-trace
      tracereplay export trace.dat --manifest vm.toml --perfetto --policy numa-protect -o t.pftrace
    """
    from tracereplay.errors import UsageError
    from tracereplay.pipeline import is_database, open_session
    from tracereplay.report.timeline import export_perfetto

    if not perfetto:
        raise click.UsageError("give --perfetto (the only export format)")
    if is_database(trace):
        raise UsageError(f"{trace}: export needs the trace itself (a database keeps no raw events)")
    check_new_output(output, force=force)
    with open_session(trace, manifest) as session:
        session.replay(policies or None, params)
        result = export_perfetto(session, trace, output, force=force)
    click.echo(
        f"{output}: {result.events:,} events and the tracks of {len(session.analysis.policies)} policies",
        err=True,
    )
