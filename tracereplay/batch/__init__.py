"""Fleet runs: ``tracereplay batch`` over many traces, on a process pool or Dask (docs/FLEET.md)."""

from tracereplay.batch.jobs import Job, Outcome, analyze_one, metric_rows
from tracereplay.batch.run import BatchResult, run_batch, summary

__all__ = ["BatchResult", "Job", "Outcome", "analyze_one", "metric_rows", "run_batch", "summary"]
