"""Perfetto's ``compact_sched`` bundles: sched_switch / sched_waking as column arrays.

The recorder's compact encoding keeps, per event, a delta-encoded timestamp and
the *next* task of a switch (pid, prio, comm as an index into the bundle's
intern table). The previous task of a switch is the next task of the previous
switch on the same CPU, so it is carried across bundles; the first switch seen
on a CPU has no known previous task (null fields). A waking's waker (the common
pid) is the task running on the CPU at that time, found the same way.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tracereplay.formats.common.args_json import json_str_expr
from tracereplay.formats.perfetto.protowire import (
    WireError,
    iter_fields,
    packed_varints,
    varint_bytes,
)
from tracereplay.formats.perfetto.schema import prev_state_text

_FIELDS = {
    1: "sw_ts",
    2: "sw_state",
    3: "sw_pid",
    4: "sw_prio",
    6: "sw_comm",
    7: "wk_ts",
    8: "wk_pid",
    9: "wk_cpu",
    10: "wk_prio",
    11: "wk_comm",
    12: "wk_flags",
}

ROW_SCHEMA = {
    "ts": pl.Int64,
    "pid": pl.Int64,
    "name": pl.String,
    "system": pl.String,
    "args": pl.String,
}


def _signed32(a: np.ndarray, what: str) -> np.ndarray:
    """int32 fields (pids, prios, cpus) are sign-extended varints: others are damage."""
    v = a.view(np.int64)
    if len(v) and (v.min() < -(1 << 31) or v.max() >= 1 << 31):
        raise WireError(f"compact_sched: {what} value out of the int32 range", 0)
    return v


def _timestamps(deltas: np.ndarray, what: str) -> np.ndarray:
    """Absolute timestamps of delta-encoded ones (the sum must stay below 2^63)."""
    ts = np.cumsum(deltas)
    # a sum past 2^64 wraps (goes down); past 2^63 it is negative as int64
    if len(ts) and (ts.view(np.int64).min() < 0 or (ts[1:] < ts[:-1]).any()):
        raise WireError(f"compact_sched: {what} timestamps out of range", 0)
    return ts.view(np.int64)


def compact_sched_rows(
    data: bytes, cpu: int, running: dict[int, tuple[int, str | None, int]]
) -> pl.DataFrame:
    """Canonical rows (ts, pid, name, system, args) of one bundle's compact_sched.

    ``running`` maps cpu -> (pid, comm, prio) of the task left running by the
    last switch seen; it is updated.
    """
    interned: list[str] = []
    chunks: dict[str, list[bytes]] = {k: [] for k in _FIELDS.values()}
    for fno, wt, val, pos in iter_fields(data):
        if fno == 5 and wt == 2:
            interned.append(data[pos : pos + val].decode("utf-8", "replace"))
        elif fno in _FIELDS and wt == 2:
            chunks[_FIELDS[fno]].append(data[pos : pos + val])
        elif fno in _FIELDS and wt == 0:
            chunks[_FIELDS[fno]].append(varint_bytes(val))
    col = {k: packed_varints(b"".join(v)) for k, v in chunks.items()}
    n_sw, n_wk = len(col["sw_ts"]), len(col["wk_ts"])
    for k in ("sw_state", "sw_pid", "sw_prio", "sw_comm"):
        if len(col[k]) != n_sw:
            raise WireError(f"compact_sched: {k} has {len(col[k])} entries for {n_sw} switches", 0)
    for k in ("wk_pid", "wk_cpu", "wk_prio", "wk_comm"):
        if len(col[k]) != n_wk:
            raise WireError(f"compact_sched: {k} has {len(col[k])} entries for {n_wk} wakings", 0)
    names = pl.Series([*interned, None], dtype=pl.String)

    def comm(idx: np.ndarray) -> pl.Series:
        i = idx.astype(np.int64)
        return names.gather(np.where(i < len(interned), i, len(interned)))

    sw_ts = _timestamps(col["sw_ts"], "switch")
    sw_pid = _signed32(col["sw_pid"], "pid")
    sw_prio = _signed32(col["sw_prio"], "prio")
    sw_comm = comm(col["sw_comm"])
    prev = running.get(cpu)
    prev_pid = pl.Series(np.concatenate(([0], sw_pid[:-1])) if n_sw else np.zeros(0, np.int64))
    prev_prio = pl.Series(np.concatenate(([0], sw_prio[:-1])) if n_sw else np.zeros(0, np.int64))
    prev_comm = sw_comm.shift(1)
    first_known = prev is not None
    if n_sw:
        mask = pl.Series([first_known] + [True] * (n_sw - 1))
        prev_pid = pl.select(
            pl.when(mask).then(prev_pid.scatter(0, prev[0] if prev else 0))
        ).to_series()
        prev_prio = pl.select(
            pl.when(mask).then(prev_prio.scatter(0, prev[2] if prev else 0))
        ).to_series()
        prev_comm = prev_comm.scatter(0, prev[1] if prev else None)
    states = col["sw_state"].view(np.int64)
    uniq, inv = np.unique(states, return_inverse=True)
    state_text = pl.Series(
        [prev_state_text(int(u)) for u in uniq.tolist()], dtype=pl.String
    ).gather(inv.ravel())
    sw = pl.DataFrame(
        {
            "ts": sw_ts,
            "pid": prev_pid.cast(pl.Int64),
            "prev_comm": prev_comm,
            "prev_prio": prev_prio.cast(pl.Int64),
            "prev_state": state_text,
            "next_comm": sw_comm,
            "next_pid": sw_pid,
            "next_prio": sw_prio,
        }
    )
    def num(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.String).fill_null("null")

    def text(c: str) -> pl.Expr:
        return json_str_expr(pl.col(c)).fill_null("null")

    sw_rows = sw.select(
        "ts",
        "pid",
        name=pl.lit("sched_switch"),
        system=pl.lit("sched"),
        args=pl.concat_str(
            [
                pl.lit('{"prev_comm":'),
                text("prev_comm"),
                pl.lit(',"prev_pid":'),
                num("pid"),
                pl.lit(',"prev_prio":'),
                num("prev_prio"),
                pl.lit(',"prev_state":'),
                text("prev_state"),
                pl.lit(',"next_comm":'),
                text("next_comm"),
                pl.lit(',"next_pid":'),
                num("next_pid"),
                pl.lit(',"next_prio":'),
                num("next_prio"),
                pl.lit("}"),
            ]
        ),
    )
    wk_ts = _timestamps(col["wk_ts"], "waking")
    # the waker: the task the last switch at or before the waking left running
    at = np.searchsorted(sw_ts, wk_ts, side="right") - 1
    waker = pl.Series(np.where(at >= 0, sw_pid[np.clip(at, 0, None)] if n_sw else 0, 0))
    waker_known = pl.Series((at >= 0) | first_known)
    if prev is not None:
        waker = pl.Series(np.where(at >= 0, waker.to_numpy(), prev[0]))
    wk = pl.DataFrame(
        {
            "ts": wk_ts,
            "pid": pl.select(pl.when(waker_known).then(waker)).to_series().cast(pl.Int64),
            "comm": comm(col["wk_comm"]),
            "wpid": _signed32(col["wk_pid"], "pid"),
            "prio": _signed32(col["wk_prio"], "prio"),
            "target_cpu": _signed32(col["wk_cpu"], "cpu"),
        }
    )
    wk_rows = wk.select(
        "ts",
        "pid",
        name=pl.lit("sched_waking"),
        system=pl.lit("sched"),
        args=pl.concat_str(
            [
                pl.lit('{"comm":'),
                text("comm"),
                pl.lit(',"pid":'),
                num("wpid"),
                pl.lit(',"prio":'),
                num("prio"),
                pl.lit(',"target_cpu":'),
                num("target_cpu"),
                pl.lit("}"),
            ]
        ),
    )
    if n_sw:
        running[cpu] = (int(sw_pid[-1]), sw_comm[-1], int(sw_prio[-1]))
    out = pl.concat([sw_rows, wk_rows]).cast(ROW_SCHEMA)  # type: ignore[arg-type]
    return out.sort("ts", maintain_order=True)


__all__ = ["ROW_SCHEMA", "compact_sched_rows"]
