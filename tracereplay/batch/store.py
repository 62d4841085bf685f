"""A batch's outputs: partitioned Parquet per trace, and ``fleet.duckdb`` with views over them.

Layout of OUTDIR (hive partitioning by host; one file per trace, written as
soon as the trace is done)::

    metrics/host=<host>/<trace_id>.parquet   one row per (trace, scope, tgid, name, policy, metric)
    traces/host=<host>/<trace_id>.parquet    one row per trace: its info, or its error
    fleet.duckdb                             views: metrics, traces, avoided_by_host, avoided_by_vm

The views read the files through OUTDIR's absolute path, so they are created
once OUTDIR is in place (a moved OUTDIR needs them again: :func:`write_views`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tracereplay.atomic import atomic_output
from tracereplay.batch.jobs import Outcome, metric_rows
from tracereplay.store.connect import connect

METRICS_SCHEMA = pa.schema(
    [
        ("trace_id", pa.int32()),
        ("trace", pa.string()),
        ("scope", pa.string()),  # vm | process
        ("tgid", pa.int64()),
        ("name", pa.string()),
        ("policy", pa.string()),  # NULL: an observed count
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("basis", pa.string()),  # observed | derived | assumed
        ("unit", pa.string()),
    ]
)

TRACES_SCHEMA = pa.schema(
    [
        ("trace_id", pa.int32()),
        ("trace", pa.string()),
        ("manifest", pa.string()),
        ("status", pa.string()),  # ok | error
        ("error", pa.string()),
        ("error_type", pa.string()),  # input | bug
        ("format", pa.string()),
        ("kernel", pa.string()),
        ("cpus", pa.int32()),
        ("events", pa.int64()),
        ("lost_events", pa.int64()),
        ("duration_ns", pa.int64()),
        ("partial", pa.bool_()),
        ("policies", pa.list_(pa.string())),
        ("warning_codes", pa.list_(pa.string())),
        ("warnings", pa.list_(pa.string())),
        ("analysis_json", pa.string()),  # the whole `analyze --format json` object
        ("elapsed_s", pa.float64()),
        ("worker", pa.string()),
    ]
)

# the counts the printed summary shows, in this order (all `<metric>_avoided`)
SUMMARY_METRICS = (
    "tlb_shootdown_ipis_avoided",
    "kvm_unmap_calls_avoided",
    "kvm_pages_zapped_avoided",
    "spte_refaults_avoided",
    "numa_hint_faults_avoided",
    "est_cpu_us_avoided",
)


def partition_value(host: str) -> str:
    """``host`` as a hive partition directory value (no ``/``, ``=`` or spaces)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", host) or "unknown"


def write_outcome(outdir: str, outcome: Outcome) -> None:
    """The trace's row under traces/ and (when it succeeded) its metric rows under metrics/."""
    host = partition_value(outcome.host)
    job = outcome.job
    a = outcome.analysis or {}
    t = a.get("trace", {})
    trace_row: dict[str, Any] = {
        "trace_id": job.trace_id,
        "trace": job.trace,
        "manifest": outcome.manifest,
        "status": "ok" if outcome.ok else "error",
        "error": outcome.error,
        "error_type": outcome.error_type,
        "format": t.get("format"),
        "kernel": t.get("kernel"),
        "cpus": t.get("cpus"),
        "events": t.get("events"),
        "lost_events": t.get("lost_events"),
        "duration_ns": t.get("duration_ns"),
        "partial": t.get("partial"),
        "policies": a.get("policies"),
        "warning_codes": [w["code"] for w in a.get("warnings", [])] if a else None,
        "warnings": t.get("warnings"),
        "analysis_json": json.dumps(a) if a else None,
        "elapsed_s": outcome.elapsed_s,
        "worker": outcome.worker,
    }
    _write(outdir, "traces", host, job.trace_id, pa.Table.from_pylist([trace_row], TRACES_SCHEMA))
    if outcome.analysis is None:
        return
    cols: dict[str, list[Any]] = {f.name: [] for f in METRICS_SCHEMA}
    for scope, tgid, name, policy, metric, value, basis, unit in metric_rows(outcome.analysis):
        for k, v in zip(
            cols,
            (job.trace_id, job.trace, scope, tgid, name, policy, metric, value, basis, unit),
            strict=True,
        ):
            cols[k].append(v)
    _write(outdir, "metrics", host, job.trace_id, pa.Table.from_pydict(cols, METRICS_SCHEMA))


def _write(outdir: str, kind: str, host: str, trace_id: int, table: pa.Table) -> None:
    directory = os.path.join(outdir, kind, f"host={host}")
    os.makedirs(directory, exist_ok=True)
    pq.write_table(table, os.path.join(directory, f"{trace_id:06d}.parquet"))


def _glob(outdir: str, kind: str) -> str:
    return os.path.join(os.path.abspath(outdir), kind, "*", "*.parquet")


VIEWS = {
    "metrics": "SELECT * FROM read_parquet({metrics}, hive_partitioning = true, "
    "hive_types = {{'host': VARCHAR}})",
    "traces": "SELECT * FROM read_parquet({traces}, hive_partitioning = true, "
    "hive_types = {{'host': VARCHAR}})",
    # per host and per VM (replayed processes too): what each policy avoided, summed over traces
    "avoided_by_host": "SELECT host, policy, metric, count(DISTINCT trace_id) AS traces, "
    "sum(value) AS value FROM metrics WHERE policy IS NOT NULL AND metric LIKE '%\\_avoided' "
    "ESCAPE '\\' GROUP BY ALL ORDER BY ALL",
    "avoided_by_vm": "SELECT host, scope, name, policy, metric, count(DISTINCT trace_id) AS traces, "
    "sum(value) AS value FROM metrics WHERE policy IS NOT NULL AND metric LIKE '%\\_avoided' "
    "ESCAPE '\\' GROUP BY ALL ORDER BY ALL",
}


def write_views(outdir: str, *, force: bool = False) -> str:
    """``OUTDIR/fleet.duckdb`` (atomically) with the views of :data:`VIEWS` over the files."""
    path = os.path.join(outdir, "fleet.duckdb")
    paths = {k: _sql_string(_glob(outdir, k)) for k in ("metrics", "traces")}
    have_metrics = os.path.isdir(os.path.join(outdir, "metrics"))
    with atomic_output(path, force=force, suffix=".duckdb") as tmp:
        con = connect(tmp)
        try:
            for name, sql in VIEWS.items():
                if name == "metrics" and not have_metrics:  # every trace failed
                    sql = _empty(METRICS_SCHEMA)
                con.execute(f"CREATE VIEW {name} AS {sql.format(**paths)}")
        finally:
            con.close()
    return path


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty(schema: pa.Schema) -> str:
    """A query with ``schema``'s columns (and ``host``) and no rows."""
    types = {pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}
    cols = [f"NULL::{types.get(f.type, 'VARCHAR')} AS {f.name}" for f in schema]
    return f"SELECT {', '.join(cols)}, NULL::VARCHAR AS host WHERE false"


__all__ = [
    "METRICS_SCHEMA",
    "SUMMARY_METRICS",
    "TRACES_SCHEMA",
    "VIEWS",
    "partition_value",
    "write_outcome",
    "write_views",
]
