"""``tracereplay export --perfetto``: the trace's events plus one track per policy.

The original events are written as ``tracereplay convert`` writes them
(:mod:`tracereplay.writers.perfetto`); then, for every replayed VM and
pinned process, track-event packets (sequence :data:`SEQ_ID`, names inline, no
interning) under the process:

* ``tracereplay: baseline`` — a slice per NUMA-scan invalidation (chunks with
  the same timestamp merged) carrying what the traced kernel did there
  (pages zapped, KVM remote flushes, shootdown IPIs, PTE updates) as args;
* ``tracereplay: <policy>`` — a slice per invalidation where the policy does
  something else, named ``avoided ...`` (or ``adds ...`` when it does more),
  with the per-metric differences as args;
* counter tracks ``<policy>: <metric> (running total)`` for the pages zapped,
  remote flushes and shootdown IPIs, so the UI stacks the baseline and each
  policy on one timeline.

A slice lasts until the next invalidation, at most :data:`SLICE_NS` (the
invalidations themselves are instants in the trace). Timestamps are the
trace's own (the ftrace clock); ui.perfetto.dev puts track events on the boot
clock, as it does ftrace events of a boot-clock trace; for a ``mono_raw``
trace the packets say so (``timestamp_clock_id``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from tracereplay.pipeline import Session
from tracereplay.replay.series import ChunkSeries
from tracereplay.writers.perfetto import WriteResult, write_perfetto

SEQ_ID = 0x7472  # "tr": a sequence of its own, beside the ftrace writer's
SLICE_NS = 1_000_000
TRACK_METRICS = ("kvm_pages_zapped", "kvm_remote_flushes", "tlb_shootdown_ipis")
SLICE_ARGS = (*TRACK_METRICS, "kvm_unmap_calls", "numa_pte_updates", "numa_hint_faults")
BUILTIN_CLOCK_MONOTONIC_RAW = 4
TRACK_PREFIX = "tracereplay: "


class _Packets:
    def __init__(self, clock: str | None) -> None:
        self.first = True
        self.clock_id = BUILTIN_CLOCK_MONOTONIC_RAW if clock == "mono_raw" else None
        self.next_uuid = 0x7472_0000_0000

    def uuid(self) -> int:
        self.next_uuid += 1
        return self.next_uuid

    def packet(self, **fields: object) -> bytes:
        p = pb.TracePacket(trusted_packet_sequence_id=SEQ_ID, **fields)
        if self.first:
            p.sequence_flags = 1  # SEQ_INCREMENTAL_STATE_CLEARED
            self.first = False
        if "timestamp" in fields and self.clock_id is not None:
            p.timestamp_clock_id = self.clock_id
        return p.SerializeToString()


def _merged(cs: ChunkSeries) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """Chunks with the same timestamp summed: (distinct ts, policy -> metric -> values)."""
    ts, inverse = np.unique(cs.ts, return_inverse=True)
    out = {
        p: {m: np.bincount(inverse, weights=v, minlength=len(ts)) for m, v in ms.items()}
        for p, ms in cs.values.items()
    }
    return ts, out


def _annotations(values: dict[str, float]) -> list[pb.DebugAnnotation]:
    out = []
    for k, v in values.items():
        a = pb.DebugAnnotation(name=k)
        if float(v).is_integer():
            a.int_value = int(v)
        else:
            a.double_value = float(v)
        out.append(a)
    return out


def _slice_name(diff: dict[str, float]) -> str:
    words = {
        "kvm_pages_zapped": "pages zapped",
        "kvm_remote_flushes": "flushes",
        "tlb_shootdown_ipis": "IPIs",
    }
    avoided = [f"{v:,.0f} {words[m]}" for m, v in diff.items() if m in words and v > 0]
    added = [f"{-v:,.0f} {words[m]}" for m, v in diff.items() if m in words and v < 0]
    parts = []
    if avoided:
        parts.append("avoided " + ", ".join(avoided))
    if added:
        parts.append("adds " + ", ".join(added))
    return "; ".join(parts) or "changed"


def track_packets(session: Session) -> Iterator[bytes]:
    """Serialized TracePackets of every replayed VM's and process's policy tracks."""
    a = session.analysis
    pk = _Packets(a.trace.clock)
    for cs in session.chunk_series():
        ts, values = _merged(cs)
        if not len(ts) or "baseline" not in values:
            continue
        ends = np.minimum(np.append(ts[1:], ts[-1] + SLICE_NS), ts + SLICE_NS)
        proc = pk.uuid()
        yield pk.packet(
            track_descriptor=pb.TrackDescriptor(
                uuid=proc, process=pb.ProcessDescriptor(pid=cs.tgid, process_name=cs.name)
            )
        )
        base = values["baseline"]
        for policy in a.policies:
            if policy not in values:
                continue
            yield from _policy_track(pk, proc, policy, ts, ends, base, values[policy])


def _policy_track(
    pk: _Packets,
    proc: int,
    policy: str,
    ts: np.ndarray,
    ends: np.ndarray,
    base: dict[str, np.ndarray],
    mine: dict[str, np.ndarray],
) -> Iterator[bytes]:
    track = pk.uuid()
    yield pk.packet(
        track_descriptor=pb.TrackDescriptor(
            uuid=track, parent_uuid=proc, name=TRACK_PREFIX + policy
        )
    )
    is_base = policy == "baseline"
    for i in range(len(ts)):
        if is_base:
            args = {m: float(base[m][i]) for m in SLICE_ARGS}
            name = "NUMA-scan invalidation"
        else:
            args = {m: float(base[m][i] - mine[m][i]) for m in SLICE_ARGS}
            if not any(args.values()):
                continue
            name = _slice_name(args)
            args = {f"{m}_avoided": v for m, v in args.items()}
        yield pk.packet(
            timestamp=int(ts[i]),
            track_event=pb.TrackEvent(
                type=pb.TrackEvent.TYPE_SLICE_BEGIN,
                track_uuid=track,
                name=name,
                debug_annotations=_annotations(args),
            ),
        )
        yield pk.packet(
            timestamp=int(ends[i]),
            track_event=pb.TrackEvent(type=pb.TrackEvent.TYPE_SLICE_END, track_uuid=track),
        )
    for metric in TRACK_METRICS:
        counter = pk.uuid()
        yield pk.packet(
            track_descriptor=pb.TrackDescriptor(
                uuid=counter,
                parent_uuid=proc,
                name=f"{TRACK_PREFIX}{policy}: {metric} (running total)",
                counter=pb.CounterDescriptor(),
            )
        )
        running = np.cumsum(mine[metric])
        for t, v in zip(ts.tolist(), running.tolist(), strict=True):
            yield pk.packet(
                timestamp=int(t),
                track_event=pb.TrackEvent(
                    type=pb.TrackEvent.TYPE_COUNTER, track_uuid=counter, double_counter_value=v
                ),
            )


def export_perfetto(
    session: Session, trace: str, out_path: str, *, force: bool = False
) -> WriteResult:
    """``trace``'s events and ``session``'s policy tracks as one Perfetto trace (atomic)."""
    packets = list(track_packets(session))
    return write_perfetto(trace, out_path, force=force, extra_packets=packets)


__all__ = ["TRACK_PREFIX", "export_perfetto", "track_packets"]
