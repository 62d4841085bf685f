"""docs/REGRESSION.md's complete example is true: its file holds, its outputs are check's own."""

from __future__ import annotations

import re

from conftest import FIXTURES, REPO, run_cli

DOC = (REPO / "docs" / "REGRESSION.md").read_text()
KVM = str(FIXTURES / "kvm-pinned-6.18.txt.gz")


def _block(after: str, lang: str) -> str:
    return DOC.split(after, 1)[1].split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def _rows(text: str) -> list[list[str]]:
    """The result rows (ok / FAIL ...) and the summary, as words (column widths aside)."""
    return [
        line.split()
        for line in text.splitlines()
        if re.match(r"(ok|FAIL)\s", line) or re.match(r"\d+ expectations:", line)
    ]


def test_the_example_holds_and_prints_what_the_doc_shows(tmp_path):
    expect = tmp_path / "kvm.expect.toml"
    expect.write_text(_block("<!-- example-expect", "toml"))
    r = run_cli("check", KVM, "--expect", str(expect))
    assert r.exit_code == 0, r.stdout
    assert _rows(r.stdout) == _rows(_block("Then:", "text"))

    text = expect.read_text()
    assert text.count("kvm_unmap_calls = 7\n") == 1
    expect.write_text(text.replace("kvm_unmap_calls = 7\n", "kvm_unmap_calls = 8\n"))
    r = run_cli("check", KVM, "--expect", str(expect), "--failed-only")
    assert r.exit_code == 5
    assert _rows(r.stdout) == _rows(_block("Change `kvm_unmap_calls = 7` to `8`", "text"))
    stderr = re.search(r"and on stderr: `(.*?)`", DOC)
    assert stderr is not None and r.stderr.strip() == stderr.group(1)


def test_the_pytest_example_runs(pytester, tmp_path):
    expect = tmp_path / "kvm.expect.toml"
    expect.write_text(_block("<!-- example-expect", "toml"))
    code = _block("put\nthis in `tests/test_numa_patch.py`):", "python")
    code = code.replace('"fixtures/kvm-pinned-6.18.txt.gz"', repr(KVM))
    code = code.replace('"kvm.expect.toml"', repr(str(expect)))
    pytester.makepyfile(test_numa_patch=code)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
