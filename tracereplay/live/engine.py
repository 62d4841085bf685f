"""Rolling counterfactuals: each interval's pages through the whole pipeline, and running sums.

Every interval is analyzed on its own, exactly as ``analyze`` would analyze a
trace holding only that interval's events: the pages are decoded
(:class:`~tracereplay.live.pages.RingPagesReader`), ingested into a fresh
DuckDB database, reconstructed and replayed through every policy, then the
database is dropped. So memory is bounded by one interval, whatever the
run's length (docs/LIVE.md has the figures).

The price is the approximation :data:`CUMULATIVE_APPROXIMATION`: no page
state crosses an interval boundary, and the cumulative figures are sums of
the intervals' figures. The cumulative object says so with basis ``assumed``.

Example::

    top = LiveTop(source, discovery)
    for report in top.run(intervals):
        print(report.as_json()["cumulative"])
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracereplay.contract import BASES, METRICS
from tracereplay.live.pages import RingPagesReader
from tracereplay.live.sources import Interval
from tracereplay.manifest import Manifest
from tracereplay.pipeline import steps
from tracereplay.pipeline.analysis import Analysis, Metric
from tracereplay.store import new_database

__all__ = [
    "CUMULATIVE_APPROXIMATION",
    "LIVE_METRICS",
    "Cumulative",
    "IntervalReport",
    "LiveTop",
    "analyze_interval",
]

# the view's columns, in order (metric names of DESIGN.md section 5)
LIVE_METRICS = METRICS[:6]  # numa_invalidations .. numa_pte_updates
CUMULATIVE_APPROXIMATION = (
    "each interval is reconstructed and replayed on its own and the cumulative figures are "
    "their sums: page state (present SPTEs, PROT_NONE PTEs) is not carried across interval "
    "boundaries, so a zap in one interval and its refault in the next are not paired"
)


class PageSource(Protocol):
    def reader(self, interval: Interval) -> RingPagesReader: ...


def analyze_interval(
    reader: RingPagesReader,
    manifest: Manifest | None,
    options: steps.AnalysisOptions | None = None,
) -> Analysis:
    """The :class:`Analysis` of one interval's pages (a throw-away database)."""
    with new_database(None) as con:
        steps.ingest(con, reader, manifest)
        model = steps.reconstruct(con, manifest, pin_skip=options.pin_skip if options else None)
        result = steps.replay(con, model, options)
        return steps.summarize(con, model, result, manifest)


def _weakest(a: str, b: str) -> str:
    return a if BASES.index(a) >= BASES.index(b) else b


@dataclass
class _Totals:
    name: str
    policies: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # [value, basis]

    def add(self, policies: dict[str, dict[str, Metric]]) -> None:
        for p, ms in policies.items():
            mine = self.policies.setdefault(p, {})
            for m, v in ms.items():
                cur = mine.setdefault(m, [0.0, v.basis])
                cur[0] += float(v.value)
                cur[1] = _weakest(cur[1], v.basis)

    def metrics(self) -> dict[str, dict[str, Metric]]:
        return {p: {m: Metric.of(m, v, b) for m, (v, b) in ms.items()} for p, ms in self.policies.items()}


@dataclass
class Cumulative:
    """Running sums per VM and per replayed process (state: one row per VM, policy, metric)."""

    seconds: float = 0.0
    intervals: int = 0
    events: int = 0
    lost_events: int = 0
    vms: dict[int, _Totals] = field(default_factory=dict)
    processes: dict[int, _Totals] = field(default_factory=dict)

    def add(self, report: IntervalReport) -> None:
        a = report.analysis
        self.seconds += report.seconds
        self.intervals += 1
        self.events += a.trace.events
        self.lost_events += report.lost_events
        for vm in a.vms:
            if vm.replay is not None:
                self.vms.setdefault(vm.tgid, _Totals(vm.name)).add(vm.policies)
        for p in a.processes:
            if p.replay is not None:
                self.processes.setdefault(p.tgid, _Totals(p.label)).add(p.policies)

    def as_json(self) -> dict[str, Any]:
        def rows(d: dict[int, _Totals]) -> list[dict[str, Any]]:
            return [
                {
                    "tgid": tgid,
                    "name": t.name,
                    "policies": {
                        p: {m: v.as_json() for m, v in ms.items()} for p, ms in t.metrics().items()
                    },
                }
                for tgid, t in d.items()
            ]

        return {
            "seconds": round(self.seconds, 3),
            "intervals": self.intervals,
            "events": self.events,
            "lost_events": self.lost_events,
            "vms": rows(self.vms),
            "processes": rows(self.processes),
            "approximation": {"basis": "assumed", "text": CUMULATIVE_APPROXIMATION},
        }


@dataclass
class IntervalReport:
    """One interval: its analysis, its bounds (wall clock, s) and the tool's own cost."""

    index: int
    start: float
    end: float
    analysis: Analysis
    lost_events: int
    pages_bytes: int
    cpu_seconds: float  # CPU time of this process (user + system) spent on the interval
    analysis_seconds: float  # wall time spent decoding and analyzing it
    rss_bytes: int
    assumptions: list[str] = field(default_factory=list)  # discovery's

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)

    def overhead_json(self) -> dict[str, Any]:
        return {
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_percent": round(100 * self.cpu_seconds / self.seconds, 1),
            "analysis_seconds": round(self.analysis_seconds, 3),
            "events": self.analysis.trace.events,
            "ring_buffer_bytes": self.pages_bytes,
            "lost_events": self.lost_events,
            "max_rss_bytes": self.rss_bytes,
        }

    def as_json(self, cumulative: Cumulative | None = None) -> dict[str, Any]:
        """``analyze --format json``'s object plus the interval's bounds, losses and overhead."""
        out: dict[str, Any] = {
            "interval": self.index,
            "interval_start": round(self.start, 3),
            "interval_end": round(self.end, 3),
            "interval_seconds": round(self.seconds, 3),
            "lost_events": self.lost_events,
        }
        body = self.analysis.as_json()
        body["assumptions"] = [*self.assumptions, *body["assumptions"], CUMULATIVE_APPROXIMATION]
        out.update(body)
        out["overhead"] = self.overhead_json()
        if cumulative is not None:
            out["cumulative"] = cumulative.as_json()
        return out


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class LiveTop:
    """Drives intervals through the analysis and keeps the cumulative sums."""

    def __init__(
        self,
        source: PageSource,
        manifest: Callable[[], Manifest | None],
        options: steps.AnalysisOptions | None = None,
        assumptions: Callable[[], list[str]] = lambda: [],
    ) -> None:
        self.source = source
        self.manifest = manifest
        self.options = options or steps.AnalysisOptions()
        self.assumptions = assumptions
        self.cumulative = Cumulative()

    def step(self, index: int, interval: Interval, start: float, end: float) -> IntervalReport:
        """Analyze one interval read between ``start`` and ``end`` (wall clock)."""
        cpu0, t0 = _cpu(), time.monotonic()
        analysis = analyze_interval(self.source.reader(interval), self.manifest(), self.options)
        report = IntervalReport(
            index=index,
            start=start,
            end=end,
            analysis=analysis,
            # the kernel's overrun count, or the pages' missed-events flags when they say more
            lost_events=max(interval.lost, analysis.trace.lost_events),
            pages_bytes=interval.nbytes,
            cpu_seconds=_cpu() - cpu0,
            analysis_seconds=time.monotonic() - t0,
            rss_bytes=_max_rss(),
            assumptions=self.assumptions(),
        )
        self.cumulative.add(report)
        return report

    def replay(self, intervals: Iterable[Interval], seconds: float = 1.0) -> Iterator[IntervalReport]:
        """Reports of recorded intervals, each taken as ``seconds`` long (no waiting)."""
        t = 0.0
        for k, interval in enumerate(intervals):
            yield self.step(k, interval, t, t + seconds)
            t += seconds
