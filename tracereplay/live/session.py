"""The live loop of ``top``: set up, drain the ring buffers every interval, analyze, restore.

Everything changed is put back on normal exit, exceptions, Ctrl-C and SIGTERM
(turned into KeyboardInterrupt): the tracefs instance is restored and
removed (:meth:`TracefsSource.close`), NUMA balancing switched back when
``numa_balancing="on"`` switched it on, tracefs unmounted if mounted here.

Example (as root)::

    for report, cumulative in live_reports(TopConfig(interval=2, seconds=10)):
        print(report.as_json(cumulative))
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from tracereplay.live.discovery import Discovery
from tracereplay.live.engine import Cumulative, IntervalReport, LiveTop
from tracereplay.live.sources import TracefsSource
from tracereplay.manifest import Manifest
from tracereplay.pipeline.steps import AnalysisOptions
from tracereplay.record.balancing import OFF_WARNING, numa_balancing_on
from tracereplay.record.events import resolve_events
from tracereplay.record.host import host_facts
from tracereplay.record.recorder import sigterm_as_interrupt
from tracereplay.record.tracefs import RecordError, find_tracefs, unmount_tracefs

__all__ = ["TopConfig", "live_reports"]

Log = Callable[[str], None]
REDISCOVER_EVERY = 5  # intervals between /proc scans for new VMs and pinning processes


def _stderr(msg: str) -> None:
    print(f"tracereplay: {msg}", file=sys.stderr, flush=True)


@dataclass
class TopConfig:
    interval: float = 2.0
    seconds: float | None = None  # None: until interrupted
    vms: list[int] = field(default_factory=list)  # --vm: only these tgids (and a pid filter)
    qmp: str | None = None
    events: str = "numa"
    buffer_kb: int = 8192  # per CPU; drained every interval, so it only needs one interval's
    numa_balancing: str = "keep"  # keep | on (restored afterwards)
    options: AnalysisOptions = field(default_factory=AnalysisOptions)


def live_reports(
    cfg: TopConfig, log: Log = _stderr
) -> Generator[tuple[IntervalReport, Cumulative], None, None]:
    """Interval reports until ``cfg.seconds`` have passed (or forever); restores on exit."""
    if os.geteuid() != 0:
        raise RecordError("top needs root (tracefs, per-CPU ring buffers, /proc/PID/fd)")
    for pid in cfg.vms:
        if not os.path.exists(f"/proc/{pid}"):
            raise RecordError(f"--vm {pid}: no such process")
    root, mounted = find_tracefs()
    try:
        available = set((root / "available_events").read_text().split())
        events, missing = resolve_events(cfg.events, available)
        if missing:
            log(f"events not available on this kernel, skipped: {', '.join(missing)}")
        disc = Discovery(scope=set(cfg.vms) or None, qmp=cfg.qmp, log=log)
        for w in disc.refresh():
            log(f"warning: {w}")
        host = host_facts()
        switch_on = cfg.numa_balancing == "on"
        if host.get("numa_balancing") == 0 and not switch_on:
            log(f"warning: {OFF_WARNING.replace('recording', 'run')}")
        recording = {"events": events, "record_tgid": True, "live": True}
        # the CLI has its own SIGTERM handler (exit 143); library callers get KeyboardInterrupt
        own = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        with (
            contextlib.nullcontext() if own else sigterm_as_interrupt(),
            _balancing(switch_on, host, log),
        ):
            source = TracefsSource(root, events, buffer_kb=cfg.buffer_kb, pids=cfg.vms or None)
            try:
                yield from _loop(cfg, source, disc, host, recording)
            finally:
                errors = source.close()
                if errors:
                    log("could not restore tracefs: " + "; ".join(errors))
    finally:
        if mounted and (err := unmount_tracefs(root)) is not None:
            log(f"could not unmount tracefs: {err}")


def _loop(
    cfg: TopConfig,
    source: TracefsSource,
    disc: Discovery,
    host: dict[str, object],
    recording: dict[str, object],
) -> Iterator[tuple[IntervalReport, Cumulative]]:
    manifest: list[Manifest] = [disc.manifest(host, recording)]
    top = LiveTop(source, lambda: manifest[0], cfg.options, lambda: list(disc.assumptions))
    start = time.time()
    t0 = time.monotonic()
    end = None if cfg.seconds is None else t0 + cfg.seconds
    k = 0
    while end is None or time.monotonic() < end - 1e-3:
        due = t0 + (k + 1) * cfg.interval
        if end is not None:
            due = min(due, end)
        time.sleep(max(0.0, due - time.monotonic()))
        interval = source.read()
        stop = time.time()
        if k and k % REDISCOVER_EVERY == 0:
            disc.refresh()
            manifest[0] = disc.manifest(host, recording)
        yield top.step(k, interval, start, stop), top.cumulative
        start = stop
        k += 1


@contextlib.contextmanager
def _balancing(switch_on: bool, host: dict[str, object], log: Log) -> Iterator[None]:
    if not switch_on:
        yield
        return
    with numa_balancing_on() as state:
        host["numa_balancing"] = int(state.numa_balancing)
        log(f"kernel.numa_balancing = {state.numa_balancing} while top runs")
        yield

