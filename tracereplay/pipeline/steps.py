"""The analysis pipeline: open, ingest, reconstruct, replay, summarize; one :class:`Analysis`.

Each step is a function over one DuckDB connection, so a front end can run
them one by one (and look at the tables in between) or all at once with
:func:`run`. The CLI, the Python API (:func:`analyze`) and the reports share it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from tracereplay.atomic import check_new_output
from tracereplay.manifest import Manifest, load_manifest, sibling_manifest
from tracereplay.pipeline import observed
from tracereplay.pipeline.analysis import (
    Analysis,
    Metric,
    ProcessAnalysis,
    Replayed,
    VmstatRow,
)
from tracereplay.pipeline.diagnostics import diagnose
from tracereplay.pipeline.explanations import explain
from tracereplay.policies import DEFAULT_POLICIES, load_plugins
from tracereplay.policies.base import check_policy_names
from tracereplay.readers import Reader, open_trace
from tracereplay.reconstruct import Model
from tracereplay.reconstruct import reconstruct as build_model
from tracereplay.reconstruct.vmstat import cross_check
from tracereplay.replay import CostModel, ReplayResult, VmResult, load_costs, write_metrics
from tracereplay.replay import replay as replay_model
from tracereplay.store import Prefetch, build, new_database, track_batches_of
from tracereplay.tracemeta import TraceMeta


@dataclass
class AnalysisOptions:
    """How to replay: which policies, their parameters, the cost model, a pin-skip override."""

    policies: tuple[str, ...] = DEFAULT_POLICIES
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost: CostModel = field(default_factory=CostModel)
    pin_skip: str | None = None  # none | cow | all: the baseline kernel's pin skipping


@dataclass(frozen=True)
class ManifestFacts:
    """What the steps take from the manifest besides its tables (all empty without one)."""

    kernel: str | None = None
    vmstat: dict[str, int] | None = None  # /proc/vmstat after - before
    scan_size_mb: int | None = None
    recorded: tuple[str, ...] = ()  # events the recording enabled (system:name)
    multi_node: bool = False

    @classmethod
    def of(cls, manifest: Manifest | None) -> ManifestFacts:
        if manifest is None:
            return cls()
        tunables = manifest.host.get("numa_balancing_tunables") or {}
        return cls(
            kernel=manifest.host.get("kernel"),
            vmstat=manifest.vmstat_delta(),
            scan_size_mb=tunables.get("scan_size_mb"),
            recorded=tuple(manifest.recording.get("events") or []),
            multi_node=int(manifest.host.get("numa_nodes") or 1) > 1,
        )


def resolve_manifest(
    trace: str, manifest: Manifest | str | os.PathLike[str] | None
) -> Manifest | None:
    """``manifest`` itself, the manifest file it names, or (None) the trace's sibling manifest."""
    if isinstance(manifest, Manifest):
        return manifest
    path = sibling_manifest(trace) if manifest is None else os.fspath(manifest)
    return load_manifest(path) if path is not None else None


# --- the steps -----------------------------------------------------------------------------


def open_input(trace: str | Reader) -> Reader:
    """Step 1: a reader for ``trace`` (format sniffed, or ``PATH:FORMAT``)."""
    return open_trace(trace) if isinstance(trace, str) else trace


def ingest(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    manifest: Manifest | None = None,
    *,
    batches: Iterable[pa.RecordBatch] | None = None,
) -> TraceMeta:
    """Step 2: every table of the store in ``con``, filled from ``reader`` and the manifest."""
    build(con, reader, manifest=manifest, batches=batches)
    return reader.meta


def reconstruct(
    con: duckdb.DuckDBPyConnection,
    manifest: Manifest | None = None,
    *,
    pin_skip: str | None = None,
) -> Model:
    """Step 3: processes, VMs, invalidation causes and pages (tables in ``con``, and the model)."""
    facts = ManifestFacts.of(manifest)
    row = con.execute("SELECT kernel_release FROM trace_info").fetchall()[0]
    return build_model(
        con,
        kernel_release=(row[0] if row else None) or facts.kernel,
        pin_skip=pin_skip,
        vmstat_delta=facts.vmstat,
        scan_size_mb=facts.scan_size_mb,
        recorded_events=facts.recorded,
    )


def replay(
    con: duckdb.DuckDBPyConnection, model: Model, options: AnalysisOptions | None = None
) -> ReplayResult:
    """Step 4: every policy over the model; the metrics also go to ``replay_metrics``."""
    options = options or AnalysisOptions()
    result = replay_model(
        model, policies=options.policies, params=options.params, cost=options.cost
    )
    write_metrics(con, result)
    return result


def summarize(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    result: ReplayResult,
    manifest: Manifest | None = None,
    *,
    plugin_errors: Iterable[str] = (),
) -> Analysis:
    """Step 5: the :class:`Analysis` of what the steps before left in ``con``."""
    facts = ManifestFacts.of(manifest)
    trace = observed.trace_info(con)
    procs = observed.processes(con)
    vms = observed.vms(con, procs)
    by_tgid = {r.vm.tgid: r for r in result.vms}
    for vm in vms:
        r = by_tgid.get(vm.tgid)
        if r is not None:
            vm.replay = _replayed(r)
            vm.invalidations_by_evidence = r.vm.evidence
            vm.explanations = explain(vm.replay.policies)
    _attach_processes(procs, result.processes)
    replayed = [*result.vms, *result.processes]
    vmstat_check = None
    if facts.vmstat and replayed:
        totals: dict[str, float] = {}
        for r in replayed:
            for m, v in r.policies["baseline"].items():
                totals[m] = totals.get(m, 0.0) + v.value
        vmstat_check = [VmstatRow(**row) for row in cross_check(totals, facts.vmstat)]
    recorded = frozenset(e.split(":")[-1] for e in facts.recorded)
    return Analysis(
        trace=trace,
        vms=vms,
        processes=procs,
        assumptions=[
            *observed.assumptions_for(con, trace),
            *model.assumptions,
            *result.assumptions,
            *plugin_errors,
        ],
        policies=result.policies,
        cost=result.cost,
        vmstat_check=vmstat_check,
        warnings=diagnose(
            con, trace, vmstat_check, model, result, recorded, facts.multi_node
        ),
    )


def _replayed(r: VmResult) -> Replayed:
    return Replayed(
        source=r.vm.source,
        policies={
            p: {m: Metric.of(m, v.value, v.basis) for m, v in ms.items()}
            for p, ms in r.policies.items()
        },
        numa_benefit_lost=r.benefit_lost,
        mmtests_autonuma_cost=r.mmtests_cost,
        mmtests_autonuma_cost_basis=r.mmtests_basis,
        unchanged=r.unchanged,
    )


def _attach_processes(procs: list[ProcessAnalysis], results: list[VmResult]) -> None:
    """The replay of the manifest's pinned processes on their entries (new ones lead)."""
    by_tgid = {p.tgid: p for p in procs}
    for r in results:
        entry = by_tgid.get(r.vm.tgid)
        if entry is None:
            entry = ProcessAnalysis(tgid=r.vm.tgid, comm=r.vm.name, observed={})
            procs.insert(0, entry)
        entry.name = r.vm.name
        entry.region_bytes = r.vm.guest_pages * 4096
        entry.pinned_bytes = r.vm.pinned_pages * 4096
        entry.replay = _replayed(r)


def run(
    trace: str | Reader,
    *,
    manifest: Manifest | None = None,
    options: AnalysisOptions | None = None,
    db_path: str | None = None,
    replace: bool = False,
) -> Analysis:
    """Every step on ``trace``; the database is kept at ``db_path`` when given (atomically)."""
    options = options or AnalysisOptions()
    plugin_errors = load_plugins()
    reader = open_input(trace)
    check_new_output(db_path, force=replace)
    # the reader decodes ahead in a thread from here on, while DuckDB sets up
    tracked = track_batches_of(reader)
    with Prefetch(tracked) as batches, new_database(db_path, replace=replace) as con:
        ingest(con, reader, manifest, batches=batches)
        model = reconstruct(con, manifest, pin_skip=options.pin_skip)
        result = replay(con, model, options)
        return summarize(con, model, result, manifest, plugin_errors=plugin_errors)


def analyze(
    path: str | os.PathLike[str],
    manifest: Manifest | str | os.PathLike[str] | None = None,
    policies: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    cost: CostModel | str | None = None,
    pin_skip: str | None = None,
    db: str | None = None,
    replace: bool = False,
) -> Analysis:
    """Analyze the trace at ``path`` (``PATH:FORMAT`` forces a format) and return the result.

    ``manifest``: a :class:`~tracereplay.manifest.Manifest`, the path of a
    manifest TOML, or None for ``PATH.manifest.toml`` when it exists (as the
    CLI does). ``policies``: the policies to replay (default: every built-in
    one); ``params``: ``{policy: {param: value}}``; ``cost``: a
    :class:`~tracereplay.replay.CostModel` or the path of a cost TOML;
    ``db``: keep the DuckDB database there (``replace`` to overwrite one).

    Run from the repository (the fixture's sibling manifest is picked up)::

    >>> import tracereplay
    >>> a = tracereplay.analyze("fixtures/kvm-pinned-6.18.txt.gz")
    >>> a.trace.format, a.trace.manifest, a.partial
    ('ftrace-text', 'fixtures/kvm-pinned-6.18.txt.gz.manifest.toml', False)
    >>> vm = a.vms[0]
    >>> vm.name, vm.guest_ram_bytes >> 20, vm.pinned_bytes >> 20
    ('tr-kvm-vmm', 512, 384)
    >>> base, protect = vm.policies["baseline"], vm.policies["numa-protect"]
    >>> base["kvm_unmap_calls"]
    Metric(value=7.0, basis='derived', unit='count')
    >>> protect["kvm_unmap_calls"].shown, protect["kvm_pages_zapped"].basis
    (65536, 'assumed')
    >>> [w.code for w in a.warnings]
    []
    >>> a.as_json()["vms"][0]["policies"]["baseline"]["kvm_unmap_calls"]
    {'value': 7, 'basis': 'derived'}

    A manifest by path, two policies and a parameter::

    >>> b = tracereplay.analyze(
    ...     "fixtures/kvm-pinned-6.18.dat",
    ...     manifest="fixtures/kvm-pinned-6.18.dat.manifest.toml",
    ...     policies=["baseline", "numa-protect"],
    ...     params={"numa-protect": {"batch": 512}},
    ... )
    >>> b.policies, b.vms[0].policies["numa-protect"]["kvm_unmap_calls"].shown
    (['baseline', 'numa-protect'], 128)
    """
    trace = os.fspath(path)
    chosen = tuple(policies) if policies is not None else DEFAULT_POLICIES
    load_plugins()
    check_policy_names(chosen)  # UnknownPolicyError naming the known ones
    options = AnalysisOptions(
        policies=chosen,
        params={p: dict(v) for p, v in (params or {}).items()},
        cost=load_costs(cost) if isinstance(cost, str) else cost or CostModel(),
        pin_skip=pin_skip,
    )
    return run(
        trace,
        manifest=resolve_manifest(trace, manifest),
        options=options,
        db_path=db,
        replace=replace,
    )


__all__ = [
    "AnalysisOptions",
    "ManifestFacts",
    "analyze",
    "ingest",
    "open_input",
    "reconstruct",
    "replay",
    "resolve_manifest",
    "run",
    "sibling_manifest",
    "summarize",
]
