"""One trace of a batch: the job a worker runs, and the rows its result becomes.

:func:`analyze_one` runs in a worker process (a local process pool or a Dask
worker): it calls the same :func:`tracereplay.pipeline.analyze` as
``tracereplay analyze`` and returns plain data (the ``analyze --format json``
object), so the numbers of a batch are those of separate ``analyze`` runs and
only small results travel back to the process that writes the Parquet files.
An error is caught and returned with the trace, so the other traces go on.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracereplay.errors import TraceReplayError
from tracereplay.manifest import load_manifest
from tracereplay.pipeline import analyze, sibling_manifest
from tracereplay.pipeline.analysis import unit_of

UNKNOWN_HOST = "unknown"


@dataclass(frozen=True)
class Job:
    """Analyze ``trace`` (with its sibling manifest when there is one) under these policies."""

    trace_id: int
    trace: str
    policies: tuple[str, ...] | None = None  # None: every built-in policy
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class Outcome:
    """What a worker sends back: the analysis as JSON, or the error that stopped it."""

    job: Job
    manifest: str | None
    host: str
    analysis: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None  # input (the trace or manifest is bad) | bug
    elapsed_s: float = 0.0
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def analyze_one(job: Job) -> Outcome:
    """Run ``analyze`` on the job's trace; never raises for a bad trace (the error is returned)."""
    start = time.perf_counter()
    manifest = sibling_manifest(job.trace)
    out = Outcome(job=job, manifest=manifest, host=UNKNOWN_HOST)
    out.worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result = analyze(job.trace, manifest, job.policies, job.params)
        out.analysis = result.as_json()
        out.host = host_of(out.analysis, manifest)
    except TraceReplayError as e:
        out.error, out.error_type = str(e), "input"
        out.host = host_of(None, manifest)
    except Exception as e:  # a bug: recorded with its traceback, the batch goes on
        out.error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"
        out.error_type = "bug"
        out.host = host_of(None, manifest)
    out.elapsed_s = time.perf_counter() - start
    return out


def host_of(analysis: Mapping[str, Any] | None, manifest: str | None) -> str:
    """The host a trace was recorded on: the manifest's ``[host] hostname``, else the node
    name of the trace's uname (trace.dat records it), else ``unknown``."""
    if manifest is not None:
        try:
            name = load_manifest(manifest).host.get("hostname")
        except TraceReplayError:
            name = None
        if name:
            return str(name)
    uname = ((analysis or {}).get("trace", {}).get("recorder_options") or {}).get("uname")
    parts = str(uname or "").split()
    return parts[1] if len(parts) > 1 else UNKNOWN_HOST


def metric_rows(analysis: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
    """(scope, tgid, name, policy, metric, value, basis, unit) of every count in ``analysis``
    (an ``analyze --format json`` object). ``policy`` is None for the observed counts; a
    replayed VM or process also gets its mmtests AutoNUMA cost per policy."""
    for scope, entries in (
        ("vm", analysis.get("vms", [])),
        ("process", analysis.get("processes", [])),
    ):
        for e in entries:
            tgid, name = e["tgid"], e.get("name") or e.get("comm") or ""
            for metric, m in e.get("observed", {}).items():
                yield scope, tgid, name, None, metric, m["value"], m["basis"], unit_of(metric)
            for policy, metrics in e.get("policies", {}).items():
                for metric, m in metrics.items():
                    yield scope, tgid, name, policy, metric, m["value"], m["basis"], unit_of(metric)
            bases = e.get("mmtests_autonuma_cost_basis", {})
            for policy, cost in e.get("mmtests_autonuma_cost", {}).items():
                basis = bases.get(policy, "derived")
                yield scope, tgid, name, policy, "mmtests_autonuma_cost", cost, basis, "count"


__all__ = ["UNKNOWN_HOST", "Job", "Outcome", "analyze_one", "host_of", "metric_rows"]
