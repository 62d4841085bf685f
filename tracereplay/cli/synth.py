"""``tracereplay synth``: write a synthetic trace, its manifest and its ground truth."""

from __future__ import annotations

import click

from tracereplay.cli.options import CONTEXT, force_option, quiet_option


@click.command(context_settings=CONTEXT)
@click.argument("scenario", required=False)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    help="Trace to write (required); the extension picks the format "
    "(.txt, .txt.gz, .dat, .perfetto-trace, .pftrace, .perfetto).",
)
@click.option(
    "--truth", type=click.Path(dir_okay=False), help="Write the per-policy ground truth (JSON)."
)
@click.option("--seed", type=int, help="Random seed (default: the scenario's).")
@click.option("--duration", type=float, help="Override the scenario's duration (seconds).")
@force_option()
@click.option("--list", "list_", is_flag=True, help="List the built-in scenarios and exit.")
@quiet_option
def synth(
    scenario: str | None,
    out: str | None,
    truth: str | None,
    seed: int | None,
    duration: float | None,
    force: bool,
    list_: bool,
) -> None:
    """Simulate SCENARIO (a built-in name or a scenario TOML) and write a kernel trace.

    The trace is written as the 6.x kernel would trace it (tracefs layout with
    record-tgid and irq-info), with OUT.manifest.toml next to it; --truth adds
    what every policy (baseline, notifier-flag, numa-protect, per-mm-optout,
    per-vma-optout) does, computed independently of the replay engine.

    \b
    Built-ins: vfio-full-pin vfio-partial-pin gpu-pinned-buffers multinode-migrating
               vm-boot-contention shared-memory-vm huge-guest
    Example:
      tracereplay synth vfio-full-pin -o /tmp/vfio.txt --truth /tmp/vfio.truth.json
      tracereplay analyze /tmp/vfio.txt --format json
    """
    from tracereplay.synth import BUILTIN, generate, load_scenario

    if list_:
        for name, data in BUILTIN.items():
            click.echo(f"{name:22} {data.get('description', '')}")
        return
    if not scenario or not out:
        raise click.UsageError("give SCENARIO and -o OUT (or --list)")
    sc = load_scenario(scenario).with_overrides(seed=seed, duration=duration)
    result = generate(sc, out, truth_path=truth, force=force)
    lost = f", {result.lost_events:,} lost" if result.lost_events else ""
    click.echo(
        f"{out}: {result.events:,} events{lost} ({sc.name}, kernel {sc.host.kernel}, seed {sc.seed}); "
        f"manifest {result.manifest_path}" + (f"; truth {truth}" if truth else ""),
        err=True,
    )


__all__ = ["synth"]
