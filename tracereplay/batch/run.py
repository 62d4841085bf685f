"""``tracereplay batch``: analyze many traces, keep every result as Parquet, summarize the fleet.

Example (a local process pool of 2; ``cluster="local"`` for a local Dask cluster)::

    result = run_batch(["a.dat", "b.dat"], "out", workers=2)
    result.failed                     # [] when every trace was analyzed
    print(result.summary)             # per host and per VM: avoided work by policy
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from tracereplay.atomic import OutputError, atomic_directory
from tracereplay.batch.engines import require_dask, run_jobs
from tracereplay.batch.jobs import Job, Outcome
from tracereplay.batch.store import SUMMARY_METRICS, write_outcome, write_views
from tracereplay.errors import UsageError
from tracereplay.policies import load_plugins
from tracereplay.policies.base import check_policy_names, check_policy_params
from tracereplay.report.grid import raw_table
from tracereplay.store.connect import connect

# what a directory must hold to be replaced by --force (never a directory of the user's own)
_OUR_ENTRIES = {"metrics", "traces", "fleet.duckdb"}


@dataclass
class BatchResult:
    outdir: str
    database: str
    ok: list[Job] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)  # their analysis is None
    partial: list[Job] = field(default_factory=list)  # analyzed, but part of the input was lost
    summary: str = ""


def run_batch(
    traces: Sequence[str],
    outdir: str,
    *,
    workers: int = 2,
    cluster: str | None = None,
    policies: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    force: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> BatchResult:
    """Analyze every trace (``cluster``: None for a process pool, ``local`` or a Dask address)
    and write OUTDIR (atomically: it appears complete, or not at all, fleet.duckdb last)."""
    if not traces:
        raise UsageError("no traces given")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    load_plugins()
    chosen = tuple(policies) if policies else None
    if chosen:
        check_policy_names(chosen, " given to --policy")
    checked = check_policy_params({p: dict(v) for p, v in (params or {}).items()})
    if cluster is not None:
        require_dask()  # before any work
    _check_replaceable(outdir, force)
    jobs = [Job(i, t, chosen, checked) for i, t in enumerate(traces)]
    result = BatchResult(outdir=outdir, database=os.path.join(outdir, "fleet.duckdb"))
    with atomic_directory(outdir, force=force) as tmp:
        for outcome in run_jobs(jobs, workers=workers, cluster=cluster):
            write_outcome(tmp, outcome)
            if outcome.ok:
                result.ok.append(outcome.job)
                if (outcome.analysis or {}).get("trace", {}).get("partial"):
                    result.partial.append(outcome.job)
            else:
                result.failed.append(outcome)
            outcome.analysis = None  # written; keep the parent's memory flat
            if on_outcome is not None:
                on_outcome(outcome)
    write_views(outdir, force=True)
    result.summary = summary(result.database)
    return result


def _check_replaceable(outdir: str, force: bool) -> None:
    if not (force and os.path.isdir(outdir)):
        return
    entries = set(os.listdir(outdir))
    if entries and not entries & _OUR_ENTRIES:
        raise OutputError(
            f"{outdir}: not the output of tracereplay batch (no metrics/, traces/ or "
            "fleet.duckdb); refusing to replace it even with --force"
        )


def summary(database: str) -> str:
    """The fleet summary: per host, then per VM and replayed process, what each policy avoided."""
    con = connect(database, read_only=True)
    try:
        n_ok, n_failed = con.execute(
            "SELECT count(*) FILTER (status = 'ok'), count(*) FILTER (status <> 'ok') FROM traces"
        ).fetchone() or (0, 0)
        by_host = _pivot(con, "avoided_by_host", ["host", "policy"])
        by_vm = _pivot(con, "avoided_by_vm", ["host", "scope", "name", "policy"])
    finally:
        con.close()
    short = [m.removesuffix("_avoided") for m in SUMMARY_METRICS]
    lines = [f"Fleet: {n_ok} trace(s) analyzed, {n_failed} failed"]
    lines.append("Avoided by policy, per host (sum over traces; negative: the policy adds work)")
    lines += (
        raw_table(["host", "policy", "traces", *short], by_host)
        if by_host
        else ["  (nothing replayed)"]
    )
    lines.append("Avoided by policy, per VM and replayed process")
    lines += (
        raw_table(["host", "scope", "name", "policy", "traces", *short], by_vm)
        if by_vm
        else ["  (nothing replayed)"]
    )
    return "\n".join(lines) + "\n"


def _pivot(con: duckdb.DuckDBPyConnection, view: str, keys: list[str]) -> list[list[Any]]:
    k = ", ".join(keys)
    cols = ", ".join(f"sum(value) FILTER (metric = '{m}') AS \"{m}\"" for m in SUMMARY_METRICS)
    rows = con.execute(
        f"SELECT {k}, max(traces), {cols} FROM {view} GROUP BY {k} ORDER BY {k}"
    ).fetchall()
    return [[_number(v) for v in r] for r in rows]


def _number(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


__all__ = ["BatchResult", "run_batch", "summary"]
