"""`tracereplay batch`: per-trace numbers identical to separate `analyze` runs (issue 17).

22 traces (small synthetic scenarios with different seeds, pinned fractions and formats,
plus the recorded fixtures) and one broken file, through the local process pool and a
local Dask cluster; the Parquet rows and the stored JSON must equal `analyze`'s.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import tracereplay
from tests.conftest import FIXTURES, run_cli
from tracereplay.synth import generate
from tracereplay.synth.scenario import parse_scenario

POLICIES = ("baseline", "notifier-flag", "numa-protect", "per-mm-optout", "per-vma-optout")
PARAMS = ("--param", "numa-protect.batch=4")
FIXTURE_TRACES = [
    "kvm-pinned-6.18.dat",
    "kvm-pinned-6.18.txt.gz",
    "pinned-threads-6.18.txt",
    "pinned-threads-6.18.dat",
]
FORMATS = (".txt", ".dat", ".perfetto-trace")


def _scenario(i: int) -> dict[str, Any]:
    kind = "process" if i % 5 == 4 else "vm"
    entry: dict[str, Any] = {
        "name": f"guest-{i % 3}" if kind == "vm" else "gpu-worker",
        "ram": "64M",
        "pinned": [0.0, 0.25, 0.5, 1.0][i % 4],
        "vcpus": 2,
    }
    return {
        "name": f"fleet-{i}",
        "duration": 1.5,
        "seed": 100 + i,
        "host": {"nodes": 1, "cpus_per_node": 4},
        "numa_balancing": {"scan_delay_ms": 200, "scan_period_min_ms": 250, "scan_size_mb": 32},
        kind: [entry],
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The traces (the broken one last) and each good trace's separate `analyze` JSON."""
    root = tmp_path_factory.mktemp("fleet")
    traces = []
    for i in range(18):
        out = root / f"synth-{i:02d}{FORMATS[i % 3]}"
        generate(parse_scenario(_scenario(i)), str(out))
        if i % 2:  # half of them recorded on another host
            m = Path(f"{out}.manifest.toml")
            m.write_text(m.read_text().replace("[host]\n", '[host]\nhostname = "host-b"\n', 1))
        traces.append(str(out))
    traces += [str(FIXTURES / name) for name in FIXTURE_TRACES]
    reference = {
        t: tracereplay.analyze(
            t, policies=POLICIES, params={"numa-protect": {"batch": 4}}
        ).as_json()
        for t in traces
    }
    broken = root / "broken.dat"
    broken.write_bytes(b"\x17\x08\x44tracing6" + b"\xff" * 64)
    return {"traces": [*traces, str(broken)], "reference": reference, "broken": str(broken)}


def _flatten(analysis: dict[str, Any]) -> dict[tuple[Any, ...], tuple[Any, str]]:
    """(scope, tgid, name, policy, metric) -> (value, basis) of an `analyze` JSON object."""
    out = {}
    for scope, key in (("vm", "vms"), ("process", "processes")):
        for e in analysis[key]:
            name = e.get("name") or e.get("comm") or ""
            for metric, m in e["observed"].items():
                out[scope, e["tgid"], name, None, metric] = (m["value"], m["basis"])
            for policy, ms in e.get("policies", {}).items():
                for metric, m in ms.items():
                    out[scope, e["tgid"], name, policy, metric] = (m["value"], m["basis"])
            for policy, cost in e.get("mmtests_autonuma_cost", {}).items():
                basis = e["mmtests_autonuma_cost_basis"].get(policy, "derived")
                out[scope, e["tgid"], name, policy, "mmtests_autonuma_cost"] = (cost, basis)
    return out


def _run_batch(fleet: dict[str, Any], outdir: Path, *extra: str) -> Any:
    policies = [a for p in POLICIES for a in ("--policy", p)]
    return run_cli(
        "batch", *fleet["traces"], "-o", str(outdir), "--workers", "2", *policies, *PARAMS, *extra
    )


def _check_outputs(fleet: dict[str, Any], outdir: Path, result: Any) -> None:
    assert result.exit_code == 3, result.output  # the broken trace: an input error
    reference = fleet["reference"]
    assert len(reference) >= 20
    con = duckdb.connect(str(outdir / "fleet.duckdb"), read_only=True)
    try:
        traces = con.execute(
            "SELECT trace, host, status, error, error_type, analysis_json, events FROM traces"
        ).fetchall()
        rows = con.execute(
            "SELECT trace, scope, tgid, name, policy, metric, value, basis FROM metrics"
        ).fetchall()
        by_host = dict(
            con.execute(
                "SELECT host, count(*) FROM traces WHERE status = 'ok' GROUP BY host"
            ).fetchall()
        )
    finally:
        con.close()
    status = {t: (s, err, kind) for t, _h, s, err, kind, _j, _e in traces}
    assert status[fleet["broken"]][0] == "error"
    assert status[fleet["broken"]][1].startswith(f"{fleet['broken']} @ byte ")
    assert status[fleet["broken"]][2] == "input"
    # the manifest's hostname, else a trace.dat's uname node (the fixtures' "vm"; the
    # synthetic traces' writer knows no host and writes no uname), else unknown
    assert by_host == {"host-b": 9, "unknown": 11, "vm": 2}
    got: dict[str, dict[tuple[Any, ...], tuple[Any, str]]] = {}
    for trace, *key, value, basis in rows:
        got.setdefault(trace, {})[tuple(key)] = (value, basis)
    for t, analysis in reference.items():
        assert status[t][0] == "ok", status[t]
        assert got[t] == _flatten(analysis), t
        stored = next(json.loads(j) for tr, _h, _s, _e, _k, j, _n in traces if tr == t)
        assert stored == analysis, t
    assert any(
        k[3] == "numa-protect" and k[4] == "kvm_unmap_calls_avoided" and v[0] != 0
        for g in got.values()
        for k, v in g.items()
    )
    assert "per host" in result.stdout and "host-b" in result.stdout
    assert not [n for n in os.listdir(outdir.parent) if n.startswith(".tracereplay-")]


def test_batch_process_pool_equals_separate_analyze_runs(fleet, tmp_path):
    out = tmp_path / "out"
    _check_outputs(fleet, out, _run_batch(fleet, out))
    again = _run_batch(fleet, out)
    assert again.exit_code == 3 and "already exists" in again.stderr
    one = fleet["traces"][0]
    assert run_cli("batch", one, "-o", str(out), "--force").exit_code == 0
    con = duckdb.connect(str(out / "fleet.duckdb"), read_only=True)
    assert con.execute("SELECT trace FROM traces").fetchall() == [(one,)]
    con.close()


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="Dask distributed is not installed: pip install '.[fleet]' (.ci/run does)",
)
def test_batch_local_dask_cluster_equals_separate_analyze_runs(fleet, tmp_path):
    out = tmp_path / "out"
    _check_outputs(fleet, out, _run_batch(fleet, out, "--cluster", "local"))


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="Dask distributed is not installed: pip install '.[fleet]' (.ci/run does)",
)
def test_batch_joins_an_existing_dask_cluster_by_its_address(fleet, tmp_path):
    """``--cluster ADDRESS`` runs on a cluster someone else started (here: two worker
    processes on this machine) and leaves it running; a few traces, against `analyze`."""
    from distributed import Client, LocalCluster

    traces = [*fleet["traces"][:3], fleet["traces"][-2], fleet["broken"]]
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        out = tmp_path / "out"
        policies = [a for p in POLICIES for a in ("--policy", p)]
        r = run_cli(
            "batch", *traces, "-o", str(out), *policies, *PARAMS,
            "--cluster", cluster.scheduler_address,
        )  # fmt: skip
        assert r.exit_code == 3, r.output  # the broken trace
        with Client(cluster.scheduler_address) as client:  # still up, both workers
            assert len(client.scheduler_info()["workers"]) == 2
            # the traces ran there, not in a local pool that ignored the address
            ran = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert "analyze_one" in ran
    con = duckdb.connect(str(out / "fleet.duckdb"), read_only=True)
    try:
        status = dict(con.execute("SELECT trace, status FROM traces").fetchall())
        rows = con.execute(
            "SELECT trace, scope, tgid, name, policy, metric, value, basis FROM metrics"
        ).fetchall()
    finally:
        con.close()
    assert status == {t: "error" if t == fleet["broken"] else "ok" for t in traces}
    got: dict[str, dict[tuple[Any, ...], tuple[Any, str]]] = {}
    for trace, *key, value, basis in rows:
        got.setdefault(trace, {})[tuple(key)] = (value, basis)
    for t in traces[:-1]:
        assert got[t] == _flatten(fleet["reference"][t]), t


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="Dask distributed is not installed: pip install '.[fleet]' (.ci/run does)",
)
@pytest.mark.parametrize(
    "kind", ["refused", "silent", "not-dask", "no-port", "unknown-scheme", "tls-unconfigured"]
)
def test_batch_unreachable_cluster_address_is_a_usage_error(tmp_path, kind):
    """Every wrong --cluster address is one line and exit 2, within twice Dask's connect
    timeout: a closed port, one that accepts and never answers (Dask's handshake read
    has no timeout of its own), one that answers something else (read as a frame length),
    malformed ones, and tls:// without Dask's TLS configuration."""
    import dask
    import distributed  # noqa: F401 (its config defaults, before a config.set that restores)

    with contextlib.ExitStack() as stack:
        port = 0
        if kind in ("refused", "silent", "not-dask"):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if kind == "refused":
                sock.close()
            else:  # the kernel completes the TCP handshake; nobody accepts
                sock.listen(8)
            if kind == "not-dask":
                threading.Thread(target=_answer_http, args=(sock,), daemon=True).start()
        address = {
            "no-port": "no-port-here",
            "unknown-scheme": "foo://x:1",
            "tls-unconfigured": f"tls://127.0.0.1:{port or 1}",
        }.get(kind, f"tcp://127.0.0.1:{port}")
        stack.enter_context(dask.config.set({"distributed.comm.timeouts.connect": "1s"}))
        started = time.monotonic()
        r = run_cli(
            "batch", str(FIXTURES / "pinned-threads-6.18.txt"), "-o", str(tmp_path / "o"),
            "--cluster", address,
        )  # fmt: skip
        took = time.monotonic() - started
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"tracereplay: error: --cluster {address}: no Dask scheduler")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert took < 10
    assert not (tmp_path / "o").exists()


def _answer_http(sock: socket.socket) -> None:
    """Answer one connection as a web server would (the dashboard's port, say)."""
    with contextlib.suppress(OSError):
        conn, _ = sock.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            time.sleep(3)


def test_batch_refuses_to_replace_a_directory_it_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = run_cli("batch", str(FIXTURES / "pinned-threads-6.18.txt"), "-o", str(mine), "--force")
    assert r.exit_code == 3 and "not the output of tracereplay batch" in r.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


def test_batch_unknown_policy_is_a_usage_error_before_any_work(tmp_path):
    r = run_cli(
        "batch",
        str(FIXTURES / "pinned-threads-6.18.txt"),
        "-o",
        str(tmp_path / "o"),
        "--policy",
        "no-such-policy",
    )
    assert r.exit_code == 2 and not (tmp_path / "o").exists()


def test_batch_cluster_without_the_fleet_extra_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    r = run_cli(
        "batch",
        str(FIXTURES / "pinned-threads-6.18.txt"),
        "-o",
        str(tmp_path / "o"),
        "--cluster",
        "local",
    )
    assert r.exit_code == 2 and "pip install 'tracereplay[fleet]'" in r.stderr
    assert not (tmp_path / "o").exists()
