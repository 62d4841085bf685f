"""The notebook API: a trace or database opened once, replayed as often as you like.

:func:`open_session` ingests a trace (or copies an existing tracereplay
database), reconstructs its NUMA-scan activity once, and returns a
:class:`Session`. Each :meth:`Session.replay` runs the chosen policies with
their parameters over the same reconstruction and returns the
:class:`~tracereplay.pipeline.analysis.Analysis`; the tables, the per-policy
time series and the timeline of one page come back as polars frames.
docs/API.md shows it at work (its examples run in the test suite).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import polars as pl

from tracereplay.errors import TraceReplayError, UsageError
from tracereplay.manifest import Manifest
from tracereplay.pipeline.analysis import Analysis
from tracereplay.pipeline.steps import (
    AnalysisOptions,
    ingest,
    open_input,
    reconstruct,
    replay,
    resolve_manifest,
    summarize,
)
from tracereplay.policies import DEFAULT_POLICIES, load_plugins
from tracereplay.policies.base import check_policy_names, check_policy_params
from tracereplay.reconstruct import Model
from tracereplay.replay import CostModel, ReplayResult, load_costs
from tracereplay.replay.series import ChunkSeries, chunk_series, empty_series_frame
from tracereplay.store import Prefetch, track_batches_of
from tracereplay.store.connect import connect
from tracereplay.store.load import load_manifest_tables

DUCKDB_MAGIC = b"DUCK"  # at byte 8 of every DuckDB database file


def is_database(path: str | os.PathLike[str]) -> bool:
    """Is ``path`` a DuckDB database file (rather than a trace)?"""
    try:
        with open(path, "rb") as f:
            return f.read(12)[8:12] == DUCKDB_MAGIC
    except OSError:
        return False


class Session:
    """One trace's reconstruction, ready to replay; see :func:`open_session`.

    ``con`` is the working DuckDB connection (every table of the store and
    of the reconstruction); ``analysis`` and ``result`` are the last replay's.
    Close it (or use it as a context manager) to release the working database.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        model: Model,
        manifest: Manifest | None,
        source: str,
        stack: contextlib.ExitStack,
    ) -> None:
        self.con = con
        self.model = model
        self.manifest = manifest
        self.source = source
        self._stack = stack
        self.result: ReplayResult | None = None
        self._analysis: Analysis | None = None

    # --- replay ---------------------------------------------------------------------------

    def replay(
        self,
        policies: Iterable[str] | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        cost: CostModel | str | None = None,
    ) -> Analysis:
        """Replay ``policies`` (default: every built-in one; the baseline always) with
        ``params`` (``{policy: {param: value}}``) and return the :class:`Analysis`."""
        chosen = tuple(policies) if policies is not None else DEFAULT_POLICIES
        errors = load_plugins()
        check_policy_names(chosen)
        options = AnalysisOptions(
            policies=chosen,
            params=check_policy_params(params or {}),
            cost=load_costs(cost) if isinstance(cost, str) else cost or CostModel(),
        )
        self.result = replay(self.con, self.model, options)
        self._analysis = summarize(
            self.con, self.model, self.result, self.manifest, plugin_errors=errors
        )
        return self._analysis

    @property
    def analysis(self) -> Analysis:
        """The last replay's :class:`Analysis` (every built-in policy when none ran yet)."""
        return self._analysis if self._analysis is not None else self.replay()

    # --- tables ---------------------------------------------------------------------------

    def tables(self) -> list[str]:
        """Names of the tables and views of the working database (store, reconstruction,
        replay)."""
        rows = self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
            "AND database_name = current_database() UNION "
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary "
            "AND database_name = current_database() ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def sql(
        self, query: str, params: Iterable[Any] | Mapping[str, Any] | None = None
    ) -> pl.DataFrame:
        """The result of ``query`` (SQL over the working database) as a polars frame."""
        table = self.con.sql(query, params=params).to_arrow_table()
        out = pl.from_arrow(table)
        assert isinstance(out, pl.DataFrame)
        return out

    def frame(self, table: str) -> pl.DataFrame:
        """Table ``table`` as a polars frame (see :meth:`tables`)."""
        if table not in self.tables():
            raise UsageError(f"no table {table!r} (tables: {', '.join(self.tables())})")
        return self.con.table(table).pl()

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every table as a polars frame, by name."""
        return {t: self.frame(t) for t in self.tables()}

    def page_timeline(self, tgid: int, hva: int) -> pl.DataFrame:
        """Everything that touched the 4 KiB page holding ``hva`` in process ``tgid``, in
        ``ts`` order (the ``page_timeline`` table macro, queries/_page_timeline.sql)."""
        return self.sql(
            "SELECT * FROM page_timeline($tgid, $hva) ORDER BY ts, seq",
            {"tgid": int(tgid), "hva": int(hva)},
        )

    # --- series ---------------------------------------------------------------------------

    def chunk_series(self) -> list[ChunkSeries]:
        """Per-chunk series of every replayed VM and pinned process (last replay)."""
        self.analysis  # noqa: B018 - replays every policy when nothing ran yet
        assert self.result is not None
        return [chunk_series(r) for r in (*self.result.vms, *self.result.processes)]

    def series(self) -> pl.DataFrame:
        """Long frame ``tgid, name, kind, policy, metric, ts, value``: what each policy does
        at each NUMA-scan chunk (:mod:`tracereplay.replay.series` says how)."""
        frames = [s.frame() for s in self.chunk_series()]
        return pl.concat(frames) if frames else empty_series_frame()

    # --- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(
    path: str | os.PathLike[str],
    manifest: Manifest | str | os.PathLike[str] | None = None,
    *,
    db: str | None = None,
    replace: bool = False,
    pin_skip: str | None = None,
) -> Session:
    """Open a trace (any format, ``PATH:FORMAT`` to force one) or a tracereplay database.

    A trace is ingested into a temporary working database, or into ``db``
    (kept, ``replace`` to overwrite one); a database (``ingest`` or
    ``analyze --db`` output) is copied into a temporary working database and
    never modified. ``manifest``: a Manifest, the path of a manifest TOML, or
    None for ``PATH.manifest.toml`` when it exists (for a database: None keeps
    the VMs it was ingested with). ``pin_skip`` overrides the baseline kernel's
    pin skipping (none | cow | all).
    """
    source = os.fspath(path)
    stack = contextlib.ExitStack()
    try:
        if is_database(source):
            m = resolve_manifest(source, manifest) if manifest is not None else None
            con = _copy_database(source, stack)
            if m is not None:
                for table in ("vms", "memslots", "pinned_ranges"):
                    con.execute(f"DELETE FROM {table}")
                load_manifest_tables(con, m)
        else:
            m = resolve_manifest(source, manifest)
            con = _ingested(source, m, db, replace, stack)
        model = reconstruct(con, m, pin_skip=pin_skip)
    except BaseException:
        stack.close()
        raise
    return Session(con, model, m, source, stack)


def _working_database(stack: contextlib.ExitStack) -> duckdb.DuckDBPyConnection:
    tmp = tempfile.mkdtemp(prefix="tracereplay-session-")
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    con = connect(os.path.join(tmp, "work.duckdb"))
    stack.callback(con.close)
    return con


def _copy_database(path: str, stack: contextlib.ExitStack) -> duckdb.DuckDBPyConnection:
    con = _working_database(stack)
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [path])
    except duckdb.Error as e:
        raise TraceReplayError(f"{path}: not a tracereplay database ({e})") from None
    if not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'src' "
        "AND table_name = 'trace_info'"
    ).fetchall()[0][0]:
        raise TraceReplayError(f"{path}: not a tracereplay database (no trace_info table)")
    if not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'src' "
        "AND table_name = 'event_rows'"
    ).fetchall()[0][0]:
        # 0.2 stores page faults once (store/split.py); the reconstruction updates event_rows
        raise TraceReplayError(
            f"{path}: written by tracereplay 0.1 (events as a table): ingest the trace again"
        )
    work = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f'COPY FROM DATABASE src TO "{work}"')
    con.execute("DETACH src")
    return con


def _ingested(
    trace: str,
    manifest: Manifest | None,
    db: str | None,
    replace: bool,
    stack: contextlib.ExitStack,
) -> duckdb.DuckDBPyConnection:
    reader = open_input(trace)
    if db is not None:
        from tracereplay.store import ingest as ingest_file

        ingest_file(reader, db, manifest=manifest, replace=replace)
        con = connect(db)
        stack.callback(con.close)
        return con
    con = _working_database(stack)
    with Prefetch(track_batches_of(reader)) as batches:
        ingest(con, reader, manifest, batches=batches)
    return con


__all__ = ["Session", "is_database", "open_session"]
