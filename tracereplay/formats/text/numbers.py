"""Events of a text trace given as numbers, not JSON (the store's ``numbers_only``).

The store keeps ``page_fault_user``, ``kvm_page_fault`` and ``tlb_flush`` only in
their typed tables (store/split.py). Rendering their ``args`` JSON per line, and
the store parsing it back, was about a tenth of a fault-heavy text ingest's CPU
(issue 17); so :func:`plan` lists the events whose every field is an integer, and
:func:`~tracereplay.formats.text.args.build_args` gives their rows' values instead
(:class:`~tracereplay.formats.text.args.GivenNumbers`), exactly when rendering them
back gives the JSON the line would have had. :func:`given_columns` then puts those
rows last in the block, each event's together, as the binary readers do
(:func:`~tracereplay.formats.tracefs.batches.elided_order`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tracereplay.formats.common.known_events import TEXT_EVENTS, I, U, X
from tracereplay.formats.text.args import GivenNumbers
from tracereplay.formats.text.templates import compile_templates
from tracereplay.formats.tracefs.batches import given_layout
from tracereplay.formats.tracefs.event_decoder import Numbers, NumberSpec

__all__ = ["TextNumbers", "given_columns", "plan"]

I64 = npt.NDArray[np.int64]
_INTEGERS = (U, I, X)


@dataclass(frozen=True)
class TextNumbers:
    """The planned events (index k): their names and specs, the template event index
    of each, and the maxima build_args checks (k, key)."""

    names: tuple[str, ...]
    specs: tuple[NumberSpec, ...]
    event_ids: tuple[int, ...]
    maxima: npt.NDArray[np.uint64]

    def rows(self, uniq: list[str], codes: I64, systems: pa.Array, printed: bool) -> GivenNumbers:
        """Which event rows to try (``uniq[codes]`` their names): those of a planned
        event of its system; ``printed``: ``systems`` comes from the lines (perf
        script's ``sys:name``), which may name another system."""
        k_of = {name: k for k, name in enumerate(self.names)}
        k_uniq = np.array([k_of.get(u, -1) for u in uniq] or [-1], np.int64)
        elide = k_uniq[codes] if len(codes) else np.zeros(0, np.int64)
        if printed and (elide >= 0).any():
            wanted = [self.specs[k].system if k >= 0 else None for k in k_uniq.tolist()]
            expected = pa.array(wanted, pa.large_string()).take(pa.array(codes))
            same = pc.fill_null(pc.equal(systems, expected), False)
            elide = np.where(same.to_numpy(zero_copy_only=False), elide, -1)
        if not (elide >= 0).any():
            elide = np.zeros(0, np.int64)
        return GivenNumbers(elide, self.maxima)


def plan(events: dict[str, NumberSpec]) -> TextNumbers | None:
    """The events of ``events`` a text line can give as numbers: a known event of the
    same system whose fields are the spec's keys in order, every one an integer
    (a symbol, a string or a pointer key keeps its JSON). None: no such event."""
    _tables, index = compile_templates()
    chosen: list[tuple[str, NumberSpec]] = []
    for name, spec in events.items():
        fmt = TEXT_EVENTS.get(name)
        if fmt is None or fmt.system != spec.system or spec.texts or spec.pointers:
            continue
        if tuple(fmt.fields) != spec.keys or any(op not in _INTEGERS for op in fmt.fields.values()):
            continue
        chosen.append((name, spec))
    if not chosen:
        return None
    width = max(len(spec.keys) for _, spec in chosen)
    maxima = np.zeros((len(chosen), width), np.uint64)
    for k, (_name, spec) in enumerate(chosen):
        maxima[k, : len(spec.maxima)] = spec.maxima
    return TextNumbers(
        tuple(n for n, _ in chosen),
        tuple(s for _, s in chosen),
        tuple(index[n] for n, _ in chosen),
        maxima,
    )


def given_columns(
    numbers: TextNumbers,
    elide: I64,
    given: npt.NDArray[np.bool_],
    values: npt.NDArray[np.uint64],
) -> tuple[I64 | None, list[pa.Array], pa.Schema, list[tuple[int, str]]]:
    """From build_args' output: (the block's row order, None to keep it; the value
    columns of the rows given; the batch schema; and (row, JSON) of rows that must keep
    their args after all, their spec's ``accept`` refusing them: build_args wrote ``{}``
    for them)."""
    found: Numbers = {}
    keep_json: list[tuple[int, str]] = []
    n = len(given)
    for k, (name, spec) in enumerate(zip(numbers.names, numbers.specs, strict=True)):
        rows = np.flatnonzero(given & (elide == k)) if len(elide) else np.zeros(0, np.int64)
        if not len(rows):
            continue
        got = [np.ascontiguousarray(values[rows, j]) for j in range(len(spec.keys))]
        ok = spec.fits(got)
        if not ok.all():
            for r in rows[~ok].tolist():
                keys = ",".join(f'"{key}":{int(values[r, j])}' for j, key in enumerate(spec.keys))
                keep_json.append((r, "{" + keys + "}"))
            rows, got = rows[ok], [v[ok] for v in got]
            if not len(rows):
                continue
        found[name] = (rows, got)
    order, _ranges, columns, schema = given_layout(
        n, found, {name: spec.keys for name, spec in zip(numbers.names, numbers.specs, strict=True)}
    )
    return order, columns, schema, keep_json
