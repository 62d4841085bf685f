"""Where the jobs of a batch run: a local process pool, or a Dask distributed cluster.

Both yield each :class:`~tracereplay.batch.jobs.Outcome` as soon as its trace
is done, in completion order. The process pool uses the ``forkserver`` start
method: workers start from a clean interpreter (no inherited DuckDB
connections or numba state from the parent), and each imports numba and DuckDB
once, then analyzes traces one after another.

Dask (``pip install 'tracereplay[fleet]'``, docs/FLEET.md) is imported only
when ``--cluster`` is given. The traces must be readable at the same path on
every worker; only the small results travel back.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tracereplay.batch.jobs import UNKNOWN_HOST, Job, Outcome, analyze_one
from tracereplay.errors import UsageError, first_line

LOCAL = "local"


class FleetExtraMissing(UsageError):
    """``--cluster`` needs Dask distributed, which is an optional extra."""


class ClusterUnreachable(UsageError):
    """``--cluster ADDRESS`` names no scheduler this machine can reach (or no address)."""


def run_pool(jobs: Sequence[Job], workers: int) -> Iterator[Outcome]:
    """Every job in a local process pool of ``workers`` processes."""
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        futures: dict[Future[Outcome], Job] = {pool.submit(analyze_one, j): j for j in jobs}
        for fut in as_completed(futures):
            yield _result(fut, futures[fut])
    finally:  # interrupted (Ctrl-C, an output error): the queued traces do not start
        pool.shutdown(wait=True, cancel_futures=True)


def _result(fut: Any, job: Job) -> Outcome:
    """The future's outcome; a worker that died (killed, out of memory) is the trace's error."""
    try:
        out: Outcome = fut.result()
        return out
    except BrokenProcessPool as e:
        return _died(job, f"a worker process died while the pool ran this trace ({e})")
    except Exception as e:  # the engine lost the task (a Dask worker killed, ...)
        return _died(job, f"{type(e).__name__}: {e}")


def _died(job: Job, message: str) -> Outcome:
    return Outcome(job=job, manifest=None, host=UNKNOWN_HOST, error=message, error_type="bug")


def require_dask() -> None:
    """Fail with a usage error (exit 2) naming the extra when Dask distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise FleetExtraMissing(
            "--cluster needs Dask distributed: pip install 'tracereplay[fleet]'"
        ) from None


def dask_client(cluster: str, workers: int) -> Any:
    """A Dask client: on a new local cluster of ``workers`` processes, or joining ``cluster``."""
    require_dask()
    from distributed import Client, LocalCluster

    if cluster != LOCAL:
        return _join(cluster)
    local = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,  # numba and DuckDB release the GIL, but one trace per process
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(local)


def _join(address: str) -> Any:
    """A client of the scheduler at ``address``, or a usage error naming it.

    Whatever the address (refused, unresolvable, malformed, ``tls://`` without Dask's TLS
    configuration, a port that answers something else, which Dask then reads as a frame
    length, or one that never answers, where Dask's handshake read has no timeout), the
    answer comes within twice Dask's connect timeout (``distributed.comm.timeouts.connect``,
    30 s by default): the client is built in a daemon thread that is left behind if it hangs.
    """
    import dask
    from dask.utils import parse_timedelta
    from distributed import Client

    limit = 2 * float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect")))
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            outcome["client"] = Client(address)
        except BaseException as e:  # raised in the caller's thread below
            outcome["error"] = e

    thread = threading.Thread(target=connect, name="tracereplay-dask-connect", daemon=True)
    thread.start()
    thread.join(limit)
    if "client" in outcome:
        return outcome["client"]
    error = outcome.get("error")
    why = f"no answer within {limit:g} s" if error is None else first_line(error)
    raise ClusterUnreachable(f"--cluster {address}: no Dask scheduler reached there ({why})")


def run_dask(jobs: Sequence[Job], cluster: str, workers: int) -> Iterator[Outcome]:
    """Every job on a Dask cluster (``local``: one started here, and closed afterwards)."""
    from distributed import as_completed as dask_completed

    client = dask_client(cluster, workers)
    try:
        futures = client.map(analyze_one, list(jobs), pure=False)
        by_key = {f.key: j for f, j in zip(futures, jobs, strict=True)}
        for fut in dask_completed(futures):
            yield _result(fut, by_key[fut.key])
    finally:
        local = client.cluster if cluster == LOCAL else None
        client.close()
        if local is not None:
            local.close()


def run_jobs(jobs: Sequence[Job], *, workers: int, cluster: str | None) -> Iterator[Outcome]:
    """Every job, on the engine the options name."""
    if cluster is None:
        return run_pool(jobs, workers)
    return run_dask(jobs, cluster, workers)


__all__ = [
    "LOCAL",
    "ClusterUnreachable",
    "FleetExtraMissing",
    "dask_client",
    "require_dask",
    "run_dask",
    "run_jobs",
    "run_pool",
]
