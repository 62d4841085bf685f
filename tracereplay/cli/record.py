"""``tracereplay record``: capture the trace the analysis needs on a real host."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from tracereplay.atomic import check_new_output
from tracereplay.cli.options import CONTEXT, events_option, force_option, output_option, qmp_option
from tracereplay.record.recorder import RecordConfig, Recorder, RecordResult, run_command, wait_for

__all__ = ["print_result", "record"]


def print_result(result: RecordResult) -> None:
    """Summary on stderr: outputs, size, events/s, lost events, the NUMA vmstat deltas."""
    for out, man in zip(result.outputs, result.manifests, strict=True):
        size = out.stat().st_size
        click.echo(f"tracereplay: wrote {out} ({size / 1e6:.1f} MB) and {man.name}", err=True)
    rate = result.events / result.seconds if result.seconds else 0.0
    click.echo(
        f"tracereplay: {result.events:,} events in {result.seconds:.1f} s ({rate:,.0f}/s), "
        f"{result.lost_events} lost",
        err=True,
    )
    keys = ("numa_pte_updates", "numa_hint_faults", "numa_pages_migrated", "pgmigrate_fail")
    delta = ", ".join(f"{k} {result.vmstat_delta[k]:+,}" for k in keys if k in result.vmstat_delta)
    if delta:
        click.echo(f"tracereplay: vmstat (system-wide): {delta}", err=True)


@click.command(context_settings=CONTEXT)
@output_option("Trace file: .dat (trace-cmd extract), .txt or .txt.gz (tracefs text).")
@click.option("--duration", type=float, help="Seconds to record (with COMMAND: at most this long).")
@click.option(
    "--pid",
    "pids",
    type=int,
    multiple=True,
    help="Trace only these processes (all their threads), their children and idle.",
)
@click.option(
    "--stack",
    is_flag=True,
    help="stacktrace trigger on kvm_unmap_hva_range: exact cause of every invalidation.",
)
@events_option
@qmp_option("QEMU QMP socket: guest RAM layout and VFIO pinning go into the manifest.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "text", "dat", "both"]),
    default="auto",
    show_default=True,
    help="auto: from -o's extension (.dat if trace-cmd exists, else text).",
)
@click.option(
    "--buffer-kb", type=int, help="Per-CPU ring buffer [default: 64 MiB, at most 1/16 of RAM]."
)
@click.option(
    "--command-only", is_flag=True, help="Trace only COMMAND and its children (and idle)."
)
@click.option(
    "--top-level",
    is_flag=True,
    help="Use the top-level tracefs buffer instead of a private instance.",
)
@click.option(
    "--numa-balancing",
    "numa_mode",
    type=click.Choice(["keep", "on"]),
    default="keep",
    show_default=True,
    help="on: set kernel.numa_balancing=1 for the recording and restore it afterwards "
    "(also on Ctrl-C/SIGTERM). With 0 the kernel scans nothing: there is nothing to replay.",
)
@force_option()
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def record(
    output: str,
    duration: float | None,
    pids: tuple[int, ...],
    stack: bool,
    events: str,
    qmp: str | None,
    fmt: str,
    buffer_kb: int | None,
    command_only: bool,
    top_level: bool,
    numa_mode: str,
    force: bool,
    command: tuple[str, ...],
) -> None:
    """Record the kernel events NUMA-balancing analysis needs (root, tracefs).

    Records while COMMAND runs, or for --duration seconds, into a private
    tracefs instance (restored and removed afterwards, also on Ctrl-C or
    SIGTERM, which stop the recording early and keep it), then writes OUTPUT
    and OUTPUT.manifest.toml (kernel, NUMA topology and settings, vmstat
    before/after; every KVM VM found by its anon_inode:kvm-vm fd and every
    process with pinned memory (VmPin), with their thread ids and
    /proc/PID/maps; QEMU RAM and VFIO pins with --qmp). Lost events are
    reported. See docs/RECORDING.md.

    \b
    Examples:
      tracereplay record -o host.dat --duration 60 --stack --numa-balancing on
      tracereplay record -o vm.dat --qmp /run/qemu/vm1.qmp --pid 4242 --duration 30
      tracereplay record -o bench.txt.gz --command-only -- ./bench --threads 8
    """
    if not command and duration is None:
        raise click.UsageError("give --duration S or a COMMAND after --")
    if command_only and not command:
        raise click.UsageError("--command-only needs a COMMAND")
    if command_only and pids:
        raise click.UsageError("--command-only and --pid exclude each other")
    if duration is not None and duration <= 0:
        raise click.UsageError("--duration must be positive")
    if buffer_kb is not None and buffer_kb < 64:
        raise click.UsageError("--buffer-kb must be at least 64")
    config = RecordConfig(
        output=Path(output),
        fmt=fmt,
        events=events,
        stack=stack,
        pids=list(pids),
        follow_self=command_only,
        buffer_kb=buffer_kb,
        top_level=top_level,
        qmp=qmp,
        command_line=shlex.join(["tracereplay", *sys.argv[1:]]),
        numa_balancing=numa_mode,
    )
    recorder = Recorder(config)
    check_new_output(
        *(str(p) for p in (recorder.text_path, recorder.dat_path) if p is not None), force=force
    )
    workload = run_command(list(command), duration) if command else wait_for(duration or 0)
    result = recorder.run(workload)
    print_result(result)
    if result.interrupted:
        click.echo("tracereplay: recording was stopped early (interrupted)", err=True)
