"""Fuzzing in the test suite: mutants of every format, the regression corpus, the hostile files.

Every input must end in exit 0, 3 or 4 with no traceback, one error line on
exit 3 naming the file, and an input whose damage the format can tell (a cut)
must end in an error or a result flagged partial (tests/fuzz_oracle.py).

* Property tests (hypothesis): random mutations (tests/fuzz_inputs.py) of
  small seeds in every layout and compression. The budget is small by default
  and reproducible (derandomized); TRACEREPLAY_FUZZ_EXAMPLES=N runs N per
  family, TRACEREPLAY_FUZZ_RANDOM=1 draws new examples each run.
* The regression corpus (tests/fuzz_corpus/<format>/): every input that ever
  failed, minimized. Names starting with ``cut-`` are truncations, which must
  show; ``hostile-`` files keep their expectation from tests/fuzz_hostile.py.
* The crafted hostile files of tests/fuzz_hostile.py that are quick to build.

Problems whose fix is on another branch are listed by class in
tests/fuzz_corpus/known_failures.toml: the listed inputs are xfail(strict=True)
(an XPASS says the list can shrink), and the property tests tolerate problems
matching a listed class, so emptying a class makes them strict again.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import duckdb
import fuzz_hostile as H
import fuzz_inputs as F
import fuzz_oracle as O
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("TRACEREPLAY_FUZZ_EXAMPLES", "3"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("TRACEREPLAY_FUZZ_RANDOM"),
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: each example is a CLI run
    suppress_health_check=list(HealthCheck),
)
FAMILIES = {
    "text": lambda s: s.fmt == "ftrace-text" and not s.compression,
    "trace-dat": lambda s: s.fmt == "trace-dat",
    "perf-data": lambda s: s.fmt == "perf-data",
    "perfetto": lambda s: s.fmt == "perfetto",
    "compressed": lambda s: s.compression is not None,
}
CLASSES = O.known_classes()
# built lazily from the fixtures and the synth seeds, so listing them reads nothing
ALL_HOSTILES = H.hostiles(H.Sources(Path("/nonexistent")))
QUICK_HOSTILES = [h for h in ALL_HOSTILES if not h.slow]
KNOWN_INPUTS = {i: c for c in CLASSES for i in c.inputs}


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="session")
def seeds(fuzz_dir: Path) -> list[F.Seed]:
    return F.small_seeds(fuzz_dir / "seeds")


@pytest.fixture(scope="session")
def worker():
    w = O.Worker()
    yield w
    w.close()


@pytest.fixture(scope="session")
def intact(worker: O.Worker, fuzz_dir: Path):
    """The outcome of each seed unmutated (what a cut is compared with), computed once."""
    cache: dict[tuple[str, str], O.Run] = {}

    def get(seed: F.Seed) -> O.Run:
        key = (seed.name, seed.label)
        if key not in cache:
            path = fuzz_dir / f"intact{seed.suffix}"
            path.write_bytes(seed.data)
            cache[key] = worker.run(str(path), str(fuzz_dir))[0]
        return cache[key]

    return get


def test_every_family_has_seeds(seeds):
    for family, wanted in FAMILIES.items():
        assert any(wanted(s) for s in seeds), family
    assert {s.layout for s in seeds} == set(F.LAYOUTS)
    assert {s.compression for s in seeds} >= {None, *F.COMPRESSIONS}


def test_intact_seeds_are_clean(seeds, worker, intact):
    """The seeds themselves pass, so what the mutants show is the mutation's doing."""
    for seed in seeds:
        run = intact(seed)
        assert run.code == 0 and run.events, (seed.label, seed.name, run.stderr)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@FUZZ
@given(data=st.data())
def test_mutants_end_cleanly(family, data, seeds, worker, intact, fuzz_dir):
    seed = data.draw(st.sampled_from([s for s in seeds if FAMILIES[family](s)]), label="seed")
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    m = F.random_mutation(rng, seed)
    note(f"{seed.label} {seed.name}: {m.label()}")
    name = f"{m.label()}--{seed.name}{seed.suffix}"
    path = fuzz_dir / name
    path.write_bytes(F.mutate(seed, m))
    ingest, analyze = worker.run(str(path), str(fuzz_dir))
    cut = _cut_reason(seed, m)
    found = O.problems(
        seed.label, ingest, analyze, cut=cut, intact=intact(seed) if cut else None, name=name
    )
    new = [p for p in found if O.known_class(p, CLASSES) is None]
    if found:
        note(f"known problems: {found}")
    path.unlink()
    assert not new, f"{name}: {new}"


def _cut_reason(seed: F.Seed, m: F.Mutation) -> str | None:
    if m.kind != "cut":
        return None
    if seed.compression and not m.inner:
        return "compressed stream cut" if m.offset < len(seed.data) else None
    return F.cut_can_be_told(seed, m.offset)


def test_mutations_are_deterministic_and_cover_every_kind(seeds):
    kinds = set()
    for n in range(400):
        seed = seeds[n % len(seeds)]
        a = F.random_mutation(random.Random(n), seed)
        assert a == F.random_mutation(random.Random(n), seed)
        kinds.add(a.kind)
    assert kinds == set(F.KINDS)


def test_structure_walkers_find_the_fields(seeds):
    by = {(s.name, s.layout): s for s in seeds}
    pipe = by[("perf-pipe-fixture", "perf-pipe")].plain
    records = F.perf_records(pipe)
    assert records[-1][0] + records[-1][2] == len(pipe)  # the chain covers the whole stream
    assert sum(t == 9 for _p, t, _s in records) == 101  # one SAMPLE per event
    perfetto = by[("synth-tiny", "perfetto")].plain
    assert F.perfetto_packets(perfetto)[-1][2] == len(perfetto)
    dat = by[("synth-tiny-none", "trace-dat")].plain
    assert {8, 3, 0} <= {oid for oid, _d, _n in F.trace_dat_options(dat)}
    page = F.trace_dat_fields(dat)[1]
    assert int.from_bytes(dat[page[0] : page[0] + 4], "little") == 4096


# --- the regression corpus ------------------------------------------------------------------


def _corpus() -> list[Path]:
    return sorted(p for p in O.CORPUS.glob("*/*") if p.is_file())


def _known(key: str) -> list[pytest.MarkDecorator]:
    cls = KNOWN_INPUTS.get(key)
    if cls is None:
        return []
    return [
        pytest.mark.xfail(strict=True, run=cls.run, reason=f"known: {cls.id}, {cls.owner} fixes it")
    ]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=f"{p.parent.name}/{p.name}", marks=_known(f"{p.parent.name}/{p.name}"))
        for p in _corpus()
    ],
)
def test_corpus_input_ends_cleanly(path, worker, fuzz_dir):
    ingest, analyze = worker.run(str(path), str(fuzz_dir))
    cut = "cut input" if path.name.startswith("cut-") else None
    found = O.problems(path.parent.name, ingest, analyze, cut=cut, name=path.name)
    hostile = _hostile_by_file().get(path.name)
    if hostile is not None:
        found += _expectation(hostile, ingest)
    assert not found


def test_known_failures_name_existing_inputs_and_owners():
    names = {f"{p.parent.name}/{p.name}" for p in _corpus()} | {
        f"hostile:{h.filename}" for h in QUICK_HOSTILES
    }
    for c in CLASSES:
        assert c.owner and c.summary, c.id
        for i in c.inputs:
            assert i in names, f"{c.id}: {i} is neither in the corpus nor a quick hostile file"


# --- crafted hostile files (the quick ones; the bombs' small variants are in the corpus) -----


@pytest.fixture(scope="session")
def sources(fuzz_dir: Path) -> H.Sources:
    return H.Sources(fuzz_dir)


def _hostile_by_file() -> dict[str, H.Hostile]:
    return {h.filename: h for h in ALL_HOSTILES}


def _expectation(h: H.Hostile, ingest: O.Run) -> list[str]:
    return H.expectation(h, ingest)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(h.name + h.suffix, marks=_known(f"hostile:{h.filename}"))
        for h in QUICK_HOSTILES
    ],
)
def test_hostile_input(name, sources, worker, fuzz_dir):
    h = _hostile_by_file()[f"hostile-{name}"]
    built = {x.filename: x for x in H.hostiles(sources)}[h.filename]
    path = fuzz_dir / h.filename
    path.write_bytes(built.build())
    if h.manifest:
        Path(f"{path}.manifest.toml").write_text(sources.manifest)
    if h.expect in ("stored", "lost"):
        db = fuzz_dir / "hostile.duckdb"
        db.unlink(missing_ok=True)
        result = run_cli("ingest", str(path), "-o", str(db))
        assert result.exit_code == 0, result.stderr
        con = duckdb.connect(str(db), read_only=True)
        if h.expect == "stored":
            assert (
                con.execute("SELECT count(*) FROM events WHERE comm = ?", [h.stored]).fetchone()[0]
                > 0
            )
        else:
            assert con.execute("SELECT lost_gaps, partial FROM trace_info").fetchone() == (2, True)
        con.close()
        return
    ingest, analyze = worker.run(str(path), str(fuzz_dir))
    found = O.problems(h.filename, ingest, analyze, name=h.filename) + _expectation(h, ingest)
    assert not found
