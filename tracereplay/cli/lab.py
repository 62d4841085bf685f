"""``tracereplay lab``: reproduce the pinned-VM NUMA-balancing scenario and record it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from tracereplay.atomic import check_new_output
from tracereplay.cli.options import CONTEXT, Size, force_option, output_option
from tracereplay.cli.record import print_result
from tracereplay.record.lab import LabConfig, lab_run

__all__ = ["lab"]


@click.group(context_settings=CONTEXT)
def lab() -> None:
    """Reproduce the pinned-guest scenario on any Linux box with /dev/kvm (root).

    \b
    Example:
      tracereplay lab run --mem 256M --pinned 64M --vcpus 2 --seconds 8 -o lab-out
      tracereplay analyze lab-out/trace.txt
    """


@lab.command("run", context_settings=CONTEXT)
@click.option(
    "--mem", type=Size(), default="256M", show_default=True, help="Guest RAM (one memslot)."
)
@click.option(
    "--pinned",
    type=Size(),
    default="64M",
    show_default=True,
    help="Long-term pinned (io_uring, like VFIO) prefix of guest RAM.",
)
@click.option(
    "--vcpus", type=int, default=2, show_default=True, help="vCPU threads (threads with --no-kvm)."
)
@click.option(
    "--seconds", type=float, default=8.0, show_default=True, help="How long the guest runs."
)
@output_option(
    "Directory for trace.txt (+ trace.dat with trace-cmd) and their manifests.",
    dest="out_dir",
    dir_okay=True,
)
@click.option("--no-kvm", is_flag=True, help="A plain multi-threaded process instead of a VM.")
@click.option("--stack", is_flag=True, help="stacktrace trigger on kvm_unmap_hva_range.")
@click.option(
    "--buffer-kb", type=int, default=16384, show_default=True, help="Per-CPU ring buffer."
)
@force_option("Replace an earlier recording in the directory.")
def run(
    mem: int,
    pinned: int,
    vcpus: int,
    seconds: float,
    out_dir: str,
    no_kvm: bool,
    stack: bool,
    buffer_kb: int,
    force: bool,
) -> None:
    """Run a tiny KVM VM with part of its RAM pinned, NUMA balancing on, and record it.

    A pure-Python VMM maps --mem of anonymous memory as one memslot at GPA 0,
    pins the first --pinned bytes with io_uring buffer registration (the
    FOLL_LONGTERM pin VFIO takes) and runs --vcpus vCPUs that write one byte
    in every guest page, in a loop, for --seconds. NUMA balancing is enabled
    for the run and restored afterwards. The recorder traces this process,
    its children and the idle tasks into DIR/trace.txt (and DIR/trace.dat
    when trace-cmd exists) with a manifest holding the memslot, the pinned
    range and vmstat before/after. One lab run at a time per host (a lock).

    \b
    Examples:
      tracereplay lab run --mem 256M --pinned 64M --vcpus 2 --seconds 8 -o lab-out
      tracereplay lab run --no-kvm --mem 64M --pinned 60M --seconds 6 -o threads-out
      tracereplay analyze lab-out/trace.txt
    """
    if seconds <= 0:
        raise click.UsageError("--seconds must be positive")
    directory = Path(out_dir)
    text = directory / "trace.txt"
    if directory.is_dir():  # a new directory holds no earlier recording
        check_new_output(str(text), str(directory / "trace.dat"), force=force)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = LabConfig(
        output=text,
        mem=mem,
        pinned=pinned,
        vcpus=vcpus,
        seconds=seconds,
        kvm=not no_kvm,
        stack=stack,
        buffer_kb=buffer_kb,
        command_line=shlex.join(["tracereplay", *sys.argv[1:]]),
    )
    result = lab_run(cfg)
    print_result(result.record)
    w = result.workload
    passes = w.get("numa_scan_seq")
    if passes is not None:
        click.echo(
            f"tracereplay: lab: {w['unpinned_pages']:,} unpinned + {w['pinned_pages']:,} pinned "
            f"pages, {passes} completed scan pass(es): expect numa_pte_updates >= "
            f"{w['unpinned_pages'] * passes:,} if only unpinned pages are made PROT_NONE",
            err=True,
        )
