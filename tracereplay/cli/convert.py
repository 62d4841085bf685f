"""``tracereplay convert``: write any trace tracereplay reads as a Perfetto trace or trace.dat."""

from __future__ import annotations

import os
import shutil

import click

from tracereplay.atomic import atomic_output, check_new_output
from tracereplay.cli.options import CONTEXT, force_option, output_option, quiet_option
from tracereplay.contract import PERFETTO_SUFFIXES, TRACE_DAT_SUFFIXES

__all__ = ["convert_command"]

_PERFETTO_SUFFIXES = PERFETTO_SUFFIXES
_DAT_SUFFIXES = TRACE_DAT_SUFFIXES


@click.command("convert", context_settings=CONTEXT)
@click.argument("trace")
@output_option(
    "Output file; the format comes from the extension (.perfetto-trace, .pftrace, .perfetto, .dat)."
)
@force_option("Replace OUTPUT if it exists (atomically, once complete).")
@quiet_option
def convert_command(trace: str, output: str, force: bool) -> None:
    """Convert TRACE (any input format, TRACE:FORMAT to force one) to Perfetto or trace.dat.

    Events are encoded as Perfetto's own recorder would (typed protos where one
    fits, the dense generic encoding otherwise), so ui.perfetto.dev opens the
    result; `tracereplay analyze OUTPUT` gives the same results as on TRACE.
    A .dat output is a trace-cmd trace.dat v7 that `trace-cmd report` reads.
    A manifest next to TRACE (TRACE.manifest.toml) is copied next to OUTPUT.

    \b
    Example:
      tracereplay convert fixtures/kvm-pinned-6.18.txt.gz -o kvm.perfetto-trace
      tracereplay convert fixtures/kvm-pinned-6.18.txt.gz -o kvm.dat
    """
    from tracereplay.readers import split_spec
    from tracereplay.writers import write_perfetto, write_trace_dat

    suffixes = (*_PERFETTO_SUFFIXES, *_DAT_SUFFIXES)
    if not output.endswith(suffixes):
        raise click.UsageError(
            f"cannot tell the output format of {output!r}: use one of {', '.join(suffixes)}"
        )
    check_new_output(output, force=force)
    dat = output.endswith(_DAT_SUFFIXES)
    writer = write_trace_dat if dat else write_perfetto
    result = writer(trace, output, force=force)
    for w in [*result.meta.warnings, *result.warnings]:
        click.echo(f"tracereplay: warning: {w}", err=True)
    manifest = split_spec(trace)[0] + ".manifest.toml"
    target = output + ".manifest.toml"
    if os.path.exists(manifest) and (force or not os.path.exists(target)):
        with atomic_output(target, force=True) as tmp:
            shutil.copyfile(manifest, tmp)
        click.echo(f"tracereplay: copied {manifest} to {target}", err=True)
    size = os.path.getsize(output)
    click.echo(
        f"{output}: {result.events:,} events in {result.bundles:,} {'pages' if dat else 'bundles'} "
        f"({size / 1e6:.1f} MB) "
        f"from {result.meta.path} ({result.meta.format})",
        err=True,
    )
