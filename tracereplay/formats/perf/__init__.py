"""perf.data's record stream."""
