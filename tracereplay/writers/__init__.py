"""Trace writers: encode canonical events (from any reader) into another trace format."""

from __future__ import annotations

from tracereplay.writers.perfetto import WriteResult, write_perfetto

__all__ = ["WriteResult", "write_perfetto"]
