"""The synthetic generator (issue 7): traces the reader takes as real, counts that add up."""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import stat
from collections import Counter
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from tracereplay.contract import METRICS
from tracereplay.synth import BUILTIN, ScenarioError, generate, load_scenario
from tracereplay.synth.scenario import parse_scenario

SYNTH_DIR = Path(__file__).resolve().parents[1] / "tracereplay" / "synth"
# huge-guest is generated for one scan period only in tests (it is the scale benchmark)
SMALL = {"huge-guest": 0.3}

# The tracefs event-line grammar, read off the real 6.18 fixture: fixed columns
# from "%16s-%-7d (%7d) [%03d] flags %5llu.%06lu: ".
_HEAD = re.compile(
    r"^(?P<comm>.{16})-(?P<pid>\d+ *) \((?P<tgid>[ \d]{7}|-------)\) \[(?P<cpu>\d{3})\] "
    r"(?P<flags>[.dDbBXhHsSnNpP0-9]{5}) (?P<ts> *\d+\.\d{6}): (?P<rest>.*)$"
)


def _gen(name: str, tmp_path: Path, **kw):
    sc = load_scenario(name).with_overrides(duration=SMALL.get(name))
    out = tmp_path / f"{name}.txt"
    truth = tmp_path / f"{name}.truth.json"
    return generate(sc, str(out), truth_path=str(truth), **kw), out, truth


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_ingests_cleanly_and_counts_match(name, tmp_path, db_of):
    result, out, truth = _gen(name, tmp_path)
    con = db_of(str(out))
    warnings = con.execute("SELECT warnings, partial FROM trace_info").fetchone()
    assert warnings == ([], False)
    got = dict(con.execute("SELECT name, count(*) FROM events GROUP BY name").fetchall())
    assert got == dict(result.event_counts)
    t = json.loads(truth.read_text())
    assert t["trace"]["event_counts"] == got
    # the simulation's own tallies against what is in the trace
    procs = t["vms"] + t["processes"]
    base = {k: sum(p["policies"]["baseline"][k]["value"] for p in procs) for k in _METRICS}
    numa = con.execute("SELECT count(*) FROM kvm_unmaps WHERE cause = 'numa_scan'").fetchone()[0]
    assert base["numa_invalidations"] == numa
    assert base["migrations_attempted"] == got.get("mm_migrate_pages", 0)
    failed = con.execute("SELECT count(*) FROM migrations WHERE failed > 0").fetchone()[0]
    assert base["migrations_failed"] == failed
    moved = con.execute("SELECT coalesce(sum(succeeded), 0) FROM migrations").fetchone()[0]
    assert base["pages_migrated"] == moved
    assert (
        base["task_numa_placements"] == con.execute("SELECT count(*) FROM task_numa").fetchone()[0]
    )
    csd = con.execute(
        "SELECT count(*) FROM events WHERE name = 'csd_queue_cpu' "
        "AND args->>'func' IN ('ack_kick', 'flush_tlb_func')"
    ).fetchone()[0]
    assert base["tlb_shootdown_ipis"] == csd
    if t["vms"]:
        assert base["spte_refaults"] <= got.get("kvm_page_fault", 0)
    else:
        assert base["numa_hint_faults"] == got.get("page_fault_user", 0)


_METRICS = METRICS
_POLICIES = ("baseline", "notifier-flag", "numa-protect", "per-mm-optout", "per-vma-optout")


def test_truth_json_shape(tmp_path):
    _result, _out, truth = _gen("multinode-migrating", tmp_path)
    t = json.loads(truth.read_text())
    assert set(t) >= {"vms", "processes", "trace", "generator", "vmstat_delta"}
    vm = t["vms"][0]
    assert set(vm) == {"tgid", "name", "policies"}
    assert tuple(vm["policies"]) == _POLICIES
    for pol, metrics in vm["policies"].items():
        want = set(_METRICS) | ({f"{m}_avoided" for m in _METRICS} if pol != "baseline" else set())
        assert set(metrics) == want
        for m, v in metrics.items():
            assert set(v) == {"value", "basis"} and v["basis"] == "derived"
            assert isinstance(v["value"], int)
            if m.endswith("_avoided"):
                base = vm["policies"]["baseline"][m[: -len("_avoided")]]["value"]
                assert v["value"] == base - metrics[m[: -len("_avoided")]]["value"]
    assert all(v["value"] == 0 for k, v in vm["policies"]["per-mm-optout"].items() if k in _METRICS)
    base = vm["policies"]["baseline"]
    # 6.8 checks no pins for huge PMDs (before 6.19): the pinned THPs of this guest get
    # PROT_NONE and fail migration; the RFCs skip them
    assert base["migrations_failed"]["value"] > 0
    assert vm["policies"]["notifier-flag"]["migrations_failed"]["value"] == 0
    assert base["task_numa_placements"]["value"] > 0
    # numa-protect trades one range zap for one call per page (the RFC v2 numbers)
    np_ = vm["policies"]["numa-protect"]
    assert np_["kvm_unmap_calls_avoided"]["value"] < 0
    # the manifest's vmstat delta is host-wide: the per-VM truth counts guest RAM
    # only (decision 1), vmstat also the heap and stacks the scans protect
    from tracereplay.manifest import load_manifest

    m = load_manifest(str(_out) + ".manifest.toml")
    assert m.vmstat_delta()["numa_pte_updates"] > base["numa_pte_updates"]["value"]
    assert m.vmstat_delta()["numa_hint_faults"] == base["numa_hint_faults"]["value"]
    assert m.vmstat_delta()["numa_pages_migrated"] == base["pages_migrated"]["value"]
    assert m.vms[0].tgid == vm["tgid"] and m.vms[0].pinned


def _fixture_lines() -> list[str]:
    text = (FIXTURES / "pinned-threads-6.18.txt").read_text().splitlines()
    with gzip.open(FIXTURES / "kvm-pinned-6.18.txt.gz", "rt") as f:
        text += f.read().splitlines()
    return text


def _shape(line: str) -> tuple[int, ...] | None:
    m = _HEAD.match(line)
    if m is None:
        return None
    return tuple(m.start(g) for g in ("tgid", "cpu", "flags", "ts", "rest"))


def test_lines_follow_the_real_tracefs_layout(tmp_path):
    real = _fixture_lines()
    real_shapes = {_shape(line) for line in real if not line.startswith(("#", " =>"))}
    real_headers = [line for line in real[:12] if line.startswith("#")]
    _r, out, _t = _gen("multinode-migrating", tmp_path)
    ours = out.read_text().splitlines()
    assert [line for line in ours[:12] if line.startswith("#") and "entries" not in line] == [
        line for line in real_headers if "entries" not in line
    ]
    assert re.match(r"^# entries-in-buffer/entries-written: \d+/\d+   #P:8$", ours[2])
    body = [line for line in ours[12:] if not line.startswith(" => ")]
    shapes = {_shape(line) for line in body}
    assert None not in shapes
    # same column positions as the kernel's output (pids of 4 digits in both)
    assert shapes <= real_shapes
    frames = [line for line in ours if line.startswith(" => ")]
    assert frames and all(re.match(r"^ => [A-Za-z_0-9.]+$", f) for f in frames)
    # payloads in the 6.18 print formats
    payload = {m.group("rest").split(": ", 1)[0] for m in map(_HEAD.match, body) if m}
    assert {"kvm_unmap_hva_range", "kvm_page_fault", "tlb_flush", "<stack trace>"} <= payload
    unmap = next(line for line in body if "kvm_unmap_hva_range:" in line)
    assert re.search(r"range: 0x[0-9a-f]{14} -- 0x[0-9a-f]{14}$", unmap)
    fault = next(line for line in body if "kvm_page_fault:" in line)
    assert re.search(r"vcpu \d+ rip 0x[0-9a-f]+ address 0x[0-9a-f]{16} error_code 0x18[12]$", fault)


def test_timestamps_are_monotonic_per_cpu(tmp_path, db_of):
    _r, out, _t = _gen("vm-boot-contention", tmp_path)
    con = db_of(str(out))
    bad = con.execute(
        "SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY cpu ORDER BY seq) AS back "
        "FROM events) WHERE back"
    ).fetchone()[0]
    assert bad == 0
    # every NUMA invalidation got its stack (nothing came between on its CPU)
    assert con.execute("SELECT count(*) FROM kvm_unmaps WHERE cause = 'unknown'").fetchone() == (0,)


def test_determinism_with_seed(tmp_path):
    sc = load_scenario("vfio-partial-pin")
    a, b, c = (tmp_path / n for n in ("a.txt", "b.txt", "c.txt"))
    generate(sc.with_overrides(seed=5), str(a))
    generate(sc.with_overrides(seed=5), str(b))
    generate(sc.with_overrides(seed=6), str(c))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_lost_event_gaps(tmp_path, db_of):
    data = dict(BUILTIN["vfio-partial-pin"])
    data["lost"] = [{"cpu": 1, "at": 1.0, "count": 500}]
    sc = parse_scenario(data)
    out = tmp_path / "lost.txt"
    result = generate(sc, str(out))
    text = out.read_text()
    assert result.lost_events >= 500
    assert f"CPU:1 [LOST {result.lost_events} EVENTS]" in text
    con = db_of(str(out))
    assert con.execute("SELECT cpu, count FROM lost_events").fetchall() == [(1, result.lost_events)]
    got = dict(con.execute("SELECT name, count(*) FROM events GROUP BY name").fetchall())
    assert got == dict(result.event_counts)
    assert re.search(r"entries-written: (\d+)/(\d+)", text).groups() == (
        str(result.events),
        str(result.events + result.lost_events),
    )


@pytest.mark.parametrize(
    ("kernel", "want", "absent"),
    [
        ("6.3.13", "callback=ack_kick+", "csd_queue_cpu"),
        ("6.5.7", "callback=flush_tlb_func+", "csd_queue_cpu"),
        ("6.8.12", "func=ack_kick", "nr_split"),
        ("6.18.44", "func=ack_kick", "callback=ack_kick"),
    ],
)
def test_kernel_release_changes_the_trace(kernel, want, absent, tmp_path):
    data = dict(BUILTIN["multinode-migrating"])
    data["host"] = {**data["host"], "kernel": kernel}
    out = tmp_path / "k.txt"
    generate(parse_scenario(data), str(out))
    text = out.read_text()
    assert want in text
    assert absent not in text


def test_old_kernels_and_bad_outputs_are_refused(tmp_path):
    data = dict(BUILTIN["vfio-full-pin"])
    data["host"] = {**data["host"], "kernel": "5.15.0"}
    with pytest.raises(ScenarioError, match=r"6\.3"):
        generate(parse_scenario(data), str(tmp_path / "x.txt"))
    r = run_cli("synth", "vfio-full-pin", "-o", str(tmp_path / "x.csv"))
    assert r.exit_code == 3 and "unknown output extension" in r.stderr
    r = run_cli("synth", "no-such-scenario", "-o", str(tmp_path / "x.txt"))
    assert r.exit_code == 3 and "built-in" in r.stderr


@pytest.mark.parametrize(
    ("ext", "fmt"), [(".dat", "trace-dat"), (".perfetto-trace", "perfetto"), (".txt", "ftrace-text")]
)
def test_each_extension_is_written_in_its_format(ext, fmt, tmp_path):
    from tracereplay.readers import open_trace
    from tracereplay.synth.generate import WRITERS

    assert ext in WRITERS or ext == ".txt"
    out = tmp_path / f"x{ext}"
    r = run_cli("synth", "gpu-pinned-buffers", "-o", str(out), "--duration", "1")
    assert r.exit_code == 0, r.stderr
    assert open_trace(str(out)).format_name == fmt
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x{ext}", f"x{ext}.manifest.toml"]


@pytest.mark.parametrize("ext", [".perfetto-trace", ".dat"])
def test_other_formats_carry_the_same_events(ext, tmp_path, db_of):
    _result, out, _t = _gen("gpu-pinned-buffers", tmp_path)
    other = tmp_path / f"gpu{ext}"
    generate(load_scenario("gpu-pinned-buffers"), str(other))
    a = db_of(str(out))
    b = db_of(str(other))
    q = "SELECT name, count(*) FROM events GROUP BY name ORDER BY name"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_cli_synth_then_analyze(tmp_path):
    out = tmp_path / "g.txt.gz"
    truth = tmp_path / "g.json"
    r = run_cli("synth", "gpu-pinned-buffers", "-o", str(out), "--truth", str(truth), "--seed", "3")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "g.txt.gz.manifest.toml").exists()
    t = json.loads(truth.read_text())
    assert t["generator"]["seed"] == 3 and t["processes"][0]["name"] == "gpu-worker"
    r = run_cli("analyze", str(out), "--format", "json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["trace"]["event_counts"] == t["trace"]["event_counts"]
    r = run_cli("synth", "gpu-pinned-buffers", "-o", str(out))
    assert r.exit_code == 3 and "--force" in r.stderr
    help_text = run_cli("synth", "--help").stdout
    assert "Example" in help_text
    assert "huge-guest" in run_cli("synth", "--list").stdout


def test_scenario_toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(
        'name = "t"\nduration = 1.5\n[host]\nnodes = 2\ncpus_per_node = 2\n'
        "[numa_balancing]\nscan_delay_ms = 200\nscan_period_min_ms = 200\n"
        '[[vm]]\nram = "256M"\npinned = [{offset = "0", size = "64M"}]\nvcpus = 2\n'
        "vcpu_nodes = [0, 1]\n"
    )
    sc = load_scenario(str(p))
    assert sc.procs[0].pinned == ((0, 64 << 20),) and sc.host.nodes == 2
    p.write_text('[[vm]]\nram = "3M"\n')
    with pytest.raises(ScenarioError, match="2 MiB"):
        load_scenario(str(p))
    p.write_text("[[vm]]\nbogus = 1\n")
    with pytest.raises(ScenarioError, match="bogus"):
        load_scenario(str(p))


# ---- independence: the truth must not come from the code it checks ------------------

_FORBIDDEN = ("tracereplay.replay", "tracereplay.reconstruct", "tracereplay.policies")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.add(str(node.args[0].value))
    return out


def _module_file(name: str) -> Path | None:
    root = SYNTH_DIR.parents[1]
    base = root / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def test_synth_never_imports_replay_reconstruct_or_policies():
    todo = [p for p in SYNTH_DIR.glob("*.py")]
    seen: set[Path] = set()
    reached: Counter[str] = Counter()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            assert not name.startswith(_FORBIDDEN), f"{path} imports {name}"
            if name.startswith("tracereplay"):
                reached[name] += 1
                f = _module_file(name)
                if f is not None:
                    todo.append(f)
    assert any(p.parent == SYNTH_DIR for p in seen)
    assert "tracereplay.synth.sim" in reached


def test_synth_outputs_get_the_umask_and_convert_s_extensions(tmp_path):
    """Every file synth writes has the user's umask (the .txt was 0600), and it takes the
    Perfetto extensions convert takes."""
    from tracereplay.contract import PERFETTO_SUFFIXES

    old = os.umask(0o022)
    try:
        out = tmp_path / "s.txt"
        result = run_cli(
            "synth",
            "vfio-full-pin",
            "-o",
            str(out),
            "--duration",
            "0.5",
            "--truth",
            str(tmp_path / "t.json"),
        )
        assert result.exit_code == 0, result.output
        for written in (out, tmp_path / "s.txt.manifest.toml", tmp_path / "t.json"):
            assert stat.S_IMODE(written.stat().st_mode) == 0o644, written
        for ext in PERFETTO_SUFFIXES[1:]:
            p = tmp_path / f"s{ext}"
            assert (
                run_cli("synth", "vfio-full-pin", "-o", str(p), "--duration", "2").exit_code == 0
            )
            assert stat.S_IMODE(p.stat().st_mode) == 0o644
            assert run_cli("analyze", str(p), "--format", "json").exit_code == 0
        assert sorted(os.listdir(tmp_path)) == sorted(
            [
                "s.txt",
                "s.txt.manifest.toml",
                "t.json",
                *(f"s{e}{m}" for e in PERFETTO_SUFFIXES[1:] for m in ("", ".manifest.toml")),
            ]
        )
    finally:
        os.umask(old)
