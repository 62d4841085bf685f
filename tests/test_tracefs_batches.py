"""trace.dat batches: exactly BATCH_ROWS rows each, whatever the merge windows were."""

from __future__ import annotations

import functools

import pyarrow as pa
import pytest
from conftest import FIXTURES

from tracereplay.formats.common.columns import BATCH_ROWS
from tracereplay.formats.tracefs.batches import BatchBuilder
from tracereplay.readers import trace_dat
from tracereplay.readers.trace_dat import TraceDatReader


@pytest.mark.parametrize("stem", ["pinned-threads-6.18", "kvm-pinned-6.18"])
def test_small_batches_hold_the_same_rows(stem, monkeypatch):
    path = str(FIXTURES / f"{stem}.dat")
    whole = list(TraceDatReader(path).batches())
    # batches much smaller than a merge window: windows are split across many batches
    monkeypatch.setattr(trace_dat, "BatchBuilder", functools.partial(BatchBuilder, rows=997))
    small = list(TraceDatReader(path).batches())
    sizes = [b.num_rows for b in small]
    assert len(sizes) > 2 and set(sizes[:-1]) == {997} and 0 < sizes[-1] <= 997
    assert all(b.num_rows == BATCH_ROWS for b in whole[:-1])
    assert pa.Table.from_batches(small).equals(pa.Table.from_batches(whole))
