"""Running an input through `tracereplay ingest` and `analyze --strict`, and judging the outcome.

The rule every input must keep (the README's error contract): exit 0, 3 or 4;
no traceback; on exit 3 exactly one ``tracereplay: error:`` line (warnings,
assumptions and the manifest note may accompany it); peak RSS under 1 GiB;
and an input whose damage the format can tell (a cut; see
``fuzz_inputs.cut_can_be_told``) ends in an error or a result flagged
partial, never a silent exit 0 with fewer events.

Inputs run in a :class:`Worker`: a child interpreter that invokes the CLI
in-process for many inputs (one start-up), under an address-space cap, and
is restarted after a crash, a signal or a timeout, so a memory bomb or a
segfault in compiled code fails one input instead of the test session.

Known failures (``fuzz_corpus/known_failures.toml``): classes of problems
whose fix is on another branch, each with a regex over the problem text.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "fuzz_corpus"
KNOWN_FAILURES = CORPUS / "known_failures.toml"
ALLOWED_EXITS = (0, 3, 4)
RSS_LIMIT_MB = 1024
RESTART_MB = 600  # a worker above this after an input is replaced (its heap would skew peaks)
# stderr lines a command may print besides its one error line (and ingest's summary line)
_NOTE = re.compile(
    r"^(tracereplay: (warning|assumption|using manifest)\b|.+: [\d,]+ events from .+)"
)


@dataclass
class Run:
    """One command on one input."""

    command: str
    code: int | None  # None: timed out; negative: killed by that signal
    stderr: str = ""
    events: int | None = None
    partial: bool | None = None
    peak_rss_mb: float | None = None
    seconds: float = 0.0


# --- in the worker ------------------------------------------------------------------------


def _peak_reset() -> None:
    with contextlib.suppress(OSError):  # Linux >= 4.0: "5" resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")


def _rss_mb() -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def _peak_mb() -> float | None:
    m = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(m.group(1)) / 1024 if m else None


def _invoke(args: list[str]) -> tuple[int, str, str]:
    import warnings

    from click.testing import CliRunner

    from tracereplay.cli.main import cli

    with warnings.catch_warnings():  # entering resets the once-per-location registries, so
        result = CliRunner().invoke(cli, args, catch_exceptions=True)  # each input shows its own
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        e = result.exception
        stderr += f"Traceback (uncaught by the CLI): {type(e).__name__}: {e}\n"
    return result.exit_code, result.stdout, stderr


def run_in_process(path: str, workdir: str) -> tuple[Run, Run]:
    """``ingest PATH -o DB`` then ``analyze PATH --strict --format json``, in this process."""
    db = os.path.join(workdir, "fuzz.duckdb")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(db)
    _peak_reset()
    t = time.monotonic()
    code, _out, err = _invoke(["ingest", path, "-o", db])
    ingest = Run("ingest", code, err, peak_rss_mb=_peak_mb(), seconds=time.monotonic() - t)
    _read_counts(ingest, db)
    _peak_reset()
    t = time.monotonic()
    code, out, err = _invoke(["analyze", path, "--strict", "--format", "json"])
    analyze = Run("analyze", code, err, peak_rss_mb=_peak_mb(), seconds=time.monotonic() - t)
    _parse_counts(analyze, out)
    return ingest, analyze


def _read_counts(ingest: Run, db: str, *, keep: bool = False) -> None:
    """Events and the partial flag of a successful ingest, from its database."""
    import duckdb

    if ingest.code != 0:
        return
    con = duckdb.connect(db, read_only=True)
    try:
        row = con.execute("SELECT event_count, partial FROM trace_info").fetchone()
    finally:
        con.close()
    if not keep:
        os.unlink(db)
    if row is not None:
        ingest.events, ingest.partial = row


def _parse_counts(analyze: Run, stdout: str) -> None:
    """Events and the partial flag from ``analyze --format json`` output."""
    if analyze.code in (0, 4):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            trace = json.loads(stdout)["trace"]
            analyze.events, analyze.partial = trace["events"], trace["partial"]


def serve() -> None:
    """Worker loop: one JSON request per stdin line, one JSON answer per stdout line.

    With TRACEREPLAY_FUZZ_COVERAGE=FILE (and coverage.py installed) line
    coverage of tracereplay is recorded into FILE.* (saved every 20 inputs, so
    a crash loses little).
    """
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not break the protocol
    cov = None
    if data_file := os.environ.get("TRACEREPLAY_FUZZ_COVERAGE"):
        import coverage

        cov = coverage.Coverage(data_file=data_file, data_suffix=True, source=["tracereplay"])
        cov.start()
    for n, line in enumerate(sys.stdin, 1):
        req = json.loads(line)
        ingest, analyze = run_in_process(req["path"], req["workdir"])
        if cov is not None and n % 20 == 0:
            cov.save()
        # memory a bomb left behind would count in the next input's peak: start afresh
        answer = {
            "ingest": asdict(ingest),
            "analyze": asdict(analyze),
            "restart": _rss_mb() > RESTART_MB,
        }
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
    if cov is not None:
        cov.stop()
        cov.save()


def run_fresh(
    path: str, workdir: str, *, timeout: float = 300, rss_cap_mb: float = 4096
) -> tuple[Run, Run]:
    """Like :func:`run_in_process`, each command a fresh ``python -m tracereplay`` process.

    Peak RSS is that process's own (``wait4``); a process above ``rss_cap_mb``
    or ``timeout`` is killed (the run then reports the cap or the timeout).
    The database stays in ``workdir`` (fuzz.duckdb) for further checks.
    """
    db = os.path.join(workdir, "fuzz.duckdb")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(db)
    ingest = _fresh("ingest", ["ingest", path, "-o", db], workdir, timeout, rss_cap_mb)[0]
    _read_counts(ingest, db, keep=True)
    args = ["analyze", path, "--strict", "--format", "json"]
    analyze, out = _fresh("analyze", args, workdir, timeout, rss_cap_mb)
    _parse_counts(analyze, out)
    return ingest, analyze


def _fresh(
    command: str, args: list[str], workdir: str, timeout: float, cap_mb: float
) -> tuple[Run, str]:
    import tempfile
    import threading

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracereplay", *args], stdout=out, stderr=err, cwd=workdir
        )
        verdict: list[str] = []

        def watch() -> None:
            while proc.returncode is None:
                try:
                    rss = int(
                        re.search(
                            r"VmRSS:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text()
                        ).group(1)
                    )  # type: ignore[union-attr]
                except (OSError, AttributeError):
                    return
                if rss / 1024 > cap_mb or time.monotonic() - t > timeout:
                    verdict.append("rss" if rss / 1024 > cap_mb else "timeout")
                    proc.kill()
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
        out.seek(0)
        err.seek(0)
        run = Run(
            command,
            None if verdict == ["timeout"] else proc.returncode,
            err.read().decode("utf-8", "replace"),
            peak_rss_mb=usage.ru_maxrss / 1024,
            seconds=time.monotonic() - t,
        )
        if verdict == ["rss"]:
            run.stderr += f"\n(killed above the {cap_mb:.0f} MiB RSS cap)"
        return run, out.read().decode("utf-8", "replace")


# --- in the parent ------------------------------------------------------------------------


class Worker:
    """A child interpreter running inputs in-process; restarted after a crash or timeout."""

    def __init__(
        self,
        *,
        timeout: float = 120,
        address_space_gb: float = 6,
        env: dict[str, str] | None = None,
    ):
        self.timeout = timeout
        self.limit = int(address_space_gb * (1 << 30))
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen[str]:
        def cap() -> None:  # a bomb fails with MemoryError here instead of exhausting the machine
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

        return subprocess.Popen(
            [sys.executable, str(HERE / "fuzz_oracle.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
            preexec_fn=cap,
        )

    def run(self, path: str, workdir: str, *, timeout: float | None = None) -> tuple[Run, Run]:
        """Both commands on ``path``; ``timeout`` (default the worker's) covers both."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        t = time.monotonic()
        try:
            proc.stdin.write(json.dumps({"path": path, "workdir": workdir}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _w, _x = select.select([proc.stdout], [], [], timeout or self.timeout)
        line = proc.stdout.readline() if ready else ""
        if line:
            answer = json.loads(line)
            if answer["restart"]:
                self.close()
            return Run(**answer["ingest"]), Run(**answer["analyze"])
        # timed out, or the child died (signal, os._exit): this input's fault
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        self.proc = None
        self.restarts += 1
        dead = Run("ingest/analyze", None if not ready else code, seconds=time.monotonic() - t)
        return dead, dead

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


# --- judging ------------------------------------------------------------------------------


def _first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("tracereplay: error:")]
    return (errors or lines or ["(no message)"])[-1][:300]


def run_problems(
    label: str, run: Run, *, name: str = "", rss_limit_mb: float = RSS_LIMIT_MB
) -> list[str]:
    """What is wrong with one command's outcome (empty: nothing).

    ``name``: the input's file name, which an error line must mention.
    """
    where = f"[{label}] {run.command}"
    if run.code is None:
        return [f"{where}: timed out after {run.seconds:.0f} s"]
    if run.code < 0:
        return [f"{where}: killed by signal {-run.code}"]
    found = []
    if run.code not in ALLOWED_EXITS:
        found.append(f"{where}: exit {run.code}: {_first_error(run.stderr)}")
    if "Traceback" in run.stderr:
        found.append(f"{where}: traceback: {_first_error(run.stderr)}")
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("tracereplay: error:")]
    stray = [ln for ln in lines if not ln.startswith("tracereplay: error:") and not _NOTE.match(ln)]
    if run.code == 3 and len(errors) != 1:
        found.append(f"{where}: exit 3 with {len(errors)} error lines")
    elif run.code == 3 and name and name not in errors[0]:
        found.append(f"{where}: error does not name the file: {errors[0][:200]}")
    if stray and "Traceback" not in run.stderr:
        found.append(f"{where}: stray stderr line: {stray[0][:200]}")
    if run.peak_rss_mb is not None and run.peak_rss_mb > rss_limit_mb:
        found.append(f"{where}: peak RSS {run.peak_rss_mb:.0f} MiB (limit {rss_limit_mb})")
    return found


def problems(
    label: str,
    ingest: Run,
    analyze: Run,
    *,
    cut: str | None = None,
    intact: Run | None = None,
    name: str = "",
    rss_limit_mb: float = RSS_LIMIT_MB,
) -> list[str]:
    """Everything wrong with an input's two runs.

    ``cut``: why the format can tell this input was cut. When the intact input
    was not itself partial, exit 0 unflagged is then a silent truncation if it
    has fewer events than ``intact``, or whatever its count when the intact
    run is unknown or the cut is mid-line (the cut line's fields are wrong).
    """
    found = run_problems(label, ingest, name=name, rss_limit_mb=rss_limit_mb)
    if analyze is not ingest:
        found += run_problems(label, analyze, name=name, rss_limit_mb=rss_limit_mb)
    judged = cut and (intact is None or (intact.code == 0 and not intact.partial))
    if judged and ingest.code == 0 and not ingest.partial:
        known = intact.events if intact is not None else None
        if known is None or cut == "cut mid-line" or (ingest.events or 0) < known:
            of = f" of {known}" if known is not None else ""
            found.append(
                f"[{label}] ingest: silent truncation ({cut}): {ingest.events}{of} events, "
                "exit 0, not flagged partial"
            )
    if ingest.code == 0 and ingest.partial and analyze.code == 0:
        found.append(
            f"[{label}] analyze --strict: exit 0 although ingest flagged the input partial"
        )
    return found


@dataclass(frozen=True)
class KnownClass:
    id: str
    owner: str
    summary: str
    match: re.Pattern[str]
    inputs: tuple[str, ...]
    run: bool = True  # False: its inputs are too slow or too big to run while broken


def known_classes(path: Path = KNOWN_FAILURES) -> list[KnownClass]:
    if not path.exists():
        return []
    doc = tomllib.loads(path.read_text())
    return [
        KnownClass(
            c["id"],
            c["owner"],
            c["summary"],
            re.compile(c["match"]),
            tuple(c.get("inputs", ())),
            c.get("run", True),
        )
        for c in doc.get("class", [])
    ]


def known_class(problem: str, classes: list[KnownClass]) -> str | None:
    """The id of the known class ``problem`` belongs to, None when it is new."""
    return next((c.id for c in classes if c.match.search(problem)), None)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    sys.path.insert(0, str(HERE))
    serve()
