"""``tracereplay check``: analyze a trace and hold it against an expectation file."""

from __future__ import annotations

import os
import sys

import click

from tracereplay.atomic import check_new_output
from tracereplay.cli.options import (
    CONTEXT,
    force_option,
    format_choice,
    manifest_option,
    quiet_option,
)
from tracereplay.errors import EXIT_EXPECTATION_FAILED


@click.command(context_settings=CONTEXT)
@click.argument("trace")
@click.option(
    "--expect",
    "expect",
    required=True,
    type=click.Path(dir_okay=False),
    help="Expectation file (TOML; see docs/REGRESSION.md).",
)
@manifest_option
@click.option(
    "--write-expect",
    is_flag=True,
    help="Write EXPECT from this analysis (every figure exact) instead of checking it.",
)
@force_option("With --write-expect: replace EXPECT (its [analysis] settings are kept).")
@click.option("--failed-only", is_flag=True, help="Table output: list only what did not hold.")
@format_choice("table", "json")
@quiet_option
def check(
    trace: str,
    expect: str,
    manifest: str | None,
    write_expect: bool,
    force: bool,
    failed_only: bool,
    fmt: str,
) -> None:
    """Analyze TRACE and check its figures against the expectations in EXPECT.

    Each expectation is a figure of a VM or replayed process (by name or tgid),
    per policy or observed: an exact value, a tolerance ("65536 ± 2 %",
    "100 ± 5"), a bound (">= 100", "<= 5"), or a ratio to another policy
    ("<= 0.8 × baseline"), optionally with its basis. Prints what held and what
    did not; exits 5 when anything did not hold (0 when all did).

    \b
    Examples:
      tracereplay check trace.dat --expect trace.dat.expect.toml --write-expect
      tracereplay check trace.dat --expect trace.dat.expect.toml
      tracereplay check trace.dat --expect patch.expect.toml --format json
    """
    from tracereplay.regress import (
        ExpectationFile,
        load_expectations,
        run_check,
        write_expectations,
    )
    from tracereplay.regress.check import analyze_for

    if write_expect:
        check_new_output(expect, force=force)  # before the (long) analysis
        # regenerating keeps how the old file had the trace analyzed (policies, params)
        keep = force and os.path.exists(expect)
        settings = load_expectations(expect) if keep else ExpectationFile(expect, [])
        analysis = analyze_for(trace, settings, manifest)
        write_expectations(analysis, expect, force=force, settings=settings)
        n = len(load_expectations(expect).expectations)
        click.echo(f"{expect}: {n} expectations written from {trace}", err=True)
        return
    result = run_check(trace, load_expectations(expect), manifest)
    if fmt == "json":
        click.echo(result.to_json(), nl=False)
    else:
        click.echo(result.to_table(failed_only=failed_only))
    for w in result.analysis.warnings:
        click.echo(f"tracereplay: warning [{w.code}]: {w.message}", err=True)
    if not result.ok:
        if fmt == "json":  # the table shows them already
            for o in result.failed[:10]:
                click.echo(f"tracereplay: {o.message()}", err=True)
        click.echo(f"tracereplay: check failed: {result.summary()}", err=True)
        sys.exit(EXIT_EXPECTATION_FAILED)


__all__ = ["check"]
