"""Track events of a Perfetto trace (``TrackDescriptor`` + ``TrackEvent`` packets) as events.

Perfetto's SDK, Chrome and ``tracereplay export`` (the counterfactual policy
tracks) write them; the reader turns each into one canonical event, system
``track_event``, ``pid``/``tgid`` from the track's process or thread
descriptor (its own or its nearest ancestor's), no CPU, and ``args``:
``track`` (the track's name), ``type`` (``slice_begin``, ``slice_end``,
``instant``, ``counter``), ``value`` for counters, and the debug annotations
by name. A slice end takes the name of the slice it closes. Interned names
(``name_iid``) are not resolved: such an event is named ``track_event``.
Few traces carry many of these beside ftrace, so they are decoded with the
protobuf runtime, not the compiled walker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from tracereplay.schema import EVENT_SCHEMA

SYSTEM = "track_event"
TYPES = {1: "slice_begin", 2: "slice_end", 3: "instant", 4: "counter"}


@dataclass
class _Track:
    name: str
    parent: int
    pid: int | None
    tid: int | None


def _annotation(a: Any) -> Any:
    kind = a.WhichOneof("value")
    return getattr(a, kind) if kind in {
        "bool_value", "uint_value", "int_value", "double_value", "string_value", "pointer_value"
    } else None


@dataclass
class TrackEvents:
    """Collects track packets while the reader walks the trace; :meth:`batch` at the end."""

    tracks: dict[int, _Track] = field(default_factory=dict)
    rows: list[tuple[int, int, dict[str, Any], str]] = field(default_factory=list)
    open_slices: dict[int, list[str]] = field(default_factory=dict)
    bad: int = 0

    def add(self, packet: bytes) -> None:
        """One TracePacket holding a track descriptor or a track event."""
        try:
            p = pb.TracePacket.FromString(packet)
        except DecodeError:
            self.bad += 1
            return
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            pid = d.process.pid if d.HasField("process") else None
            tid = d.thread.tid if d.HasField("thread") else None
            if d.HasField("thread"):
                pid = d.thread.pid
            name = d.name or d.static_name or (d.process.process_name if pid else "")
            self.tracks[d.uuid] = _Track(name, d.parent_uuid, pid, tid)
        if p.HasField("track_event"):
            e = p.track_event
            kind = TYPES.get(e.type, "unspecified")
            args: dict[str, Any] = {"type": kind}
            for a in e.debug_annotations:
                if a.name:
                    args[a.name] = _annotation(a)
            if e.HasField("double_counter_value"):
                args["value"] = e.double_counter_value
            elif e.HasField("counter_value"):
                args["value"] = e.counter_value
            name = e.name or SYSTEM
            stack = self.open_slices.setdefault(e.track_uuid, [])
            if kind == "slice_begin":
                stack.append(name)
            elif kind == "slice_end" and stack:
                name = stack.pop()
            self.rows.append((p.timestamp, e.track_uuid, args, name))

    def _owner(self, uuid: int) -> tuple[str, int | None, int | None]:
        """(track name, pid, tgid) of a track: the pid/tgid of it or its nearest ancestor."""
        track = self.tracks.get(uuid)
        name = track.name if track else ""
        seen = set()
        while track is not None and uuid not in seen:
            seen.add(uuid)
            if track.pid is not None or track.tid is not None:
                return name, track.tid or track.pid, track.pid
            uuid = track.parent
            track = self.tracks.get(uuid)
        return name, None, None

    def batch(self, first_seq: int) -> pa.RecordBatch | None:
        """The collected events (``seq`` from ``first_seq``), or None when there were none."""
        if not self.rows:
            return None
        cols: dict[str, list[Any]] = {f.name: [] for f in EVENT_SCHEMA}
        for k, (ts, uuid, args, name) in enumerate(self.rows):
            track, pid, tgid = self._owner(uuid)
            cols["seq"].append(first_seq + k)
            cols["ts"].append(ts)
            cols["cpu"].append(None)
            cols["pid"].append(pid)
            cols["tgid"].append(tgid)
            cols["comm"].append(None)
            cols["system"].append(SYSTEM)
            cols["name"].append(name)
            cols["args"].append(json.dumps({"track": track, **args}))
            cols["stack"].append(None)
        return pa.RecordBatch.from_pydict(cols, schema=EVENT_SCHEMA)


__all__ = ["SYSTEM", "TrackEvents"]
