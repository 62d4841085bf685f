"""``tracereplay top``: the counterfactual kvm_stat, live, per VM (root, tracefs)."""

from __future__ import annotations

import contextlib
import json
import sys

import click

from tracereplay.cli.options import CONTEXT, events_option, qmp_option

__all__ = ["top"]


@click.command(context_settings=CONTEXT)
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="Seconds per refresh."
)
@click.option("--seconds", type=float, help="Stop after this many seconds [default: Ctrl-C].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per interval on stdout.")
@click.option(
    "--vm",
    "vms",
    type=int,
    multiple=True,
    help="Only this VMM (tgid); repeat for more. Traces only their threads (and idle).",
)
@qmp_option("QEMU QMP socket: guest RAM layout and VFIO pinning of that VM.")
@events_option
@click.option(
    "--buffer-kb",
    type=int,
    default=8192,
    show_default=True,
    help="Per-CPU ring buffer; it holds one interval's events.",
)
@click.option(
    "--numa-balancing",
    "numa_mode",
    type=click.Choice(["keep", "on"]),
    default="keep",
    show_default=True,
    help="on: kernel.numa_balancing=1 while top runs, restored afterwards (also on Ctrl-C).",
)
def top(
    interval: float,
    seconds: float | None,
    as_json: bool,
    vms: tuple[int, ...],
    qmp: str | None,
    events: str,
    buffer_kb: int,
    numa_mode: str,
) -> None:
    """Live per-VM counterfactuals: what each policy would save on this host, now.

    Traces the analysis events into a private tracefs instance, drains every
    CPU's raw ring buffer (trace_pipe_raw) each interval, decodes it with the
    trace.dat decoder and replays the interval through every policy, like
    `analyze` on a trace of that interval. VMs are found by their
    anon_inode:kvm-vm fd, guest RAM from QMP, a lab layout or /proc/PID/maps,
    pins from VFIO fds and VmPin; every assumption is listed (--json). The
    instance is restored and removed on exit, Ctrl-C and SIGTERM. See docs/LIVE.md.

    \b
    Examples:
      tracereplay top
      tracereplay top --interval 5 --vm 4242 --qmp /run/qemu/vm1.qmp
      tracereplay top --seconds 60 --json > top.jsonl
    """
    if interval <= 0:
        raise click.UsageError("--interval must be positive")
    if seconds is not None and seconds <= 0:
        raise click.UsageError("--seconds must be positive")
    if buffer_kb < 64:
        raise click.UsageError("--buffer-kb must be at least 64")
    from tracereplay.live.session import TopConfig, live_reports
    from tracereplay.live.view import render

    cfg = TopConfig(
        interval=interval,
        seconds=seconds,
        vms=list(vms),
        qmp=qmp,
        events=events,
        buffer_kb=buffer_kb,
        numa_balancing=numa_mode,
    )
    reports = live_reports(cfg)
    with contextlib.closing(reports):  # closing runs the restore, also on Ctrl-C
        if as_json:
            for report, cumulative in reports:
                sys.stdout.write(json.dumps(report.as_json(cumulative)) + "\n")
                sys.stdout.flush()
            return
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=not sys.stdout.isatty())
        with Live(console=console, auto_refresh=False, screen=False) as live:
            for report, cumulative in reports:
                live.update(render(report, cumulative, assumptions=len(report.assumptions)))
                live.refresh()
