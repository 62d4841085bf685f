"""``tracereplay convert``: write any trace tracereplay reads as a Perfetto trace."""

from __future__ import annotations

import os
import shutil

import click

from tracereplay.cli.main import user_errors
from tracereplay.errors import TraceReplayError

__all__ = ["convert_command"]

_PERFETTO_SUFFIXES = (".perfetto-trace", ".pftrace", ".perfetto")


@click.command("convert", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("trace")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output file; the format comes from the extension (.perfetto-trace, .pftrace, .perfetto).",
)
@click.option(
    "--force", is_flag=True, help="Replace OUTPUT if it exists (atomically, once complete)."
)
@user_errors
def _convert(trace: str, output: str, force: bool) -> None:
    """Convert TRACE (any input format, TRACE:FORMAT to force one) to a Perfetto trace.

    Events are encoded as Perfetto's own recorder would (typed protos where one
    fits, the dense generic encoding otherwise), so ui.perfetto.dev opens the
    result; `tracereplay analyze OUTPUT` gives the same results as on TRACE.
    A manifest next to TRACE (TRACE.manifest.toml) is copied next to OUTPUT.

    \b
    Example:
      tracereplay convert fixtures/kvm-pinned-6.18.txt.gz -o kvm.perfetto-trace
    """
    from tracereplay.readers import split_spec
    from tracereplay.writers import write_perfetto

    if not output.endswith(_PERFETTO_SUFFIXES):
        raise click.UsageError(
            f"cannot tell the output format of {output!r}: use one of {', '.join(_PERFETTO_SUFFIXES)}"
        )
    if os.path.exists(output) and not force:
        raise TraceReplayError(f"{output}: already exists (use --force to replace it)")
    result = write_perfetto(trace, output, force=force)
    for w in result.meta.warnings:
        click.echo(f"tracereplay: warning: {w}", err=True)
    manifest = split_spec(trace)[0] + ".manifest.toml"
    target = output + ".manifest.toml"
    if os.path.exists(manifest) and (force or not os.path.exists(target)):
        shutil.copyfile(manifest, target)
        click.echo(f"tracereplay: copied {manifest} to {target}", err=True)
    size = os.path.getsize(output)
    click.echo(
        f"{output}: {result.events:,} events in {result.bundles:,} bundles ({size / 1e6:.1f} MB) "
        f"from {result.meta.path} ({result.meta.format})",
        err=True,
    )


# declared type: cli/main imports this module at its end (an import cycle mypy
# cannot see through for a decorated function)
convert_command: click.Command = _convert
