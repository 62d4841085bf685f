"""``tracereplay lab``: reproduce the pinned-VM NUMA-balancing scenario and record it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from tracereplay.cli.main import user_errors
from tracereplay.cli.record import print_result
from tracereplay.record.lab import LabConfig, lab_run
from tracereplay.store import OutputExistsError

__all__ = ["lab"]


class _Size(click.ParamType):
    name = "SIZE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        from tracereplay.lab.pinned import parse_size

        try:
            size = parse_size(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a size like 256M, 1G or 65536", param, ctx)
        if size < 0:
            self.fail("size must not be negative", param, ctx)
        return size


# An explicit Group (not @click.group) so the type is known across the cli.main import cycle.
lab: click.Group = click.Group(
    "lab",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Reproduce the pinned-guest scenario on any Linux box with /dev/kvm (root).

    \b
    Example:
      tracereplay lab run --mem 256M --pinned 64M --vcpus 2 --seconds 8 -o lab-out
      tracereplay analyze lab-out/trace.txt
    """,
)


@lab.command("run")
@click.option(
    "--mem", type=_Size(), default="256M", show_default=True, help="Guest RAM (one memslot)."
)
@click.option(
    "--pinned",
    type=_Size(),
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
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for trace.txt (+ trace.dat with trace-cmd) and their manifests.",
)
@click.option("--no-kvm", is_flag=True, help="A plain multi-threaded process instead of a VM.")
@click.option("--stack", is_flag=True, help="stacktrace trigger on kvm_unmap_hva_range.")
@click.option(
    "--buffer-kb", type=int, default=16384, show_default=True, help="Per-CPU ring buffer."
)
@click.option("--force", is_flag=True, help="Replace an earlier recording in the directory.")
@user_errors
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
    for p in (text, directory / "trace.dat"):
        if p.exists() and not force:
            raise OutputExistsError(f"{p}: already exists (use --force to replace it)")
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
