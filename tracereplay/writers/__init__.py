"""Trace writers: encode canonical events (from any reader) into another trace format."""

from __future__ import annotations

from tracereplay.writers.perfetto import WriteResult, write_perfetto
from tracereplay.writers.trace_dat import write_trace_dat

__all__ = ["WriteResult", "write_perfetto", "write_trace_dat"]
