"""``tracereplay report``: the analysis as one self-contained HTML file with charts."""

from __future__ import annotations

import shlex
import sys
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


@click.command("report", context_settings=CONTEXT)
@click.argument("trace")
@manifest_option
@output_option("HTML file to write.")
@policy_options
@click.option(
    "--compare",
    metavar="POLICY",
    help="Policy shown beside the baseline in the heat maps (default: notifier-flag).",
)
@force_option()
@quiet_option
def report_command(
    trace: str,
    manifest: str | None,
    output: str,
    policies: tuple[str, ...],
    params: dict[str, dict[str, Any]],
    compare: str | None,
    force: bool,
) -> None:
    """Write a self-contained HTML report of TRACE (a trace or a database).

    Per-VM and per-process tables, invalidations / zaps / flushes / hint faults
    over time per policy, avoided work per VM and policy, a page heat map
    (guest address x time) of zaps and refaults beside the baseline, the NUMA
    scan passes, the vmstat cross-check, warnings, assumptions and the command
    that made it. No network: styles and SVG charts are inline.

    \b
    Examples:
      tracereplay report fixtures/kvm-pinned-6.18.txt.gz -o report.html
      tracereplay report trace.dat --manifest vm.toml --compare numa-protect -o r.html
    """
    from tracereplay.errors import UsageError
    from tracereplay.pipeline import open_session
    from tracereplay.report.html import write_html

    check_new_output(output, force=force)
    if compare is not None and policies and compare not in policies:
        raise UsageError(f"--compare {compare}: not among the --policy given")
    with open_session(trace, manifest) as session:
        session.replay(policies or None, params)
        if compare is not None and compare not in session.analysis.policies:
            raise UsageError(f"--compare {compare}: unknown policy (see `tracereplay policies`)")
        command = shlex.join(["tracereplay", *sys.argv[1:]])
        size = write_html(session, output, command=command, compare=compare, force=force)
    click.echo(f"{output}: report of {trace} ({size / 1024:,.0f} KiB)", err=True)
