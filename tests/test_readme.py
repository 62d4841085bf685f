"""The README's Quickstart has exactly two commands, and CI runs the second one."""

from __future__ import annotations

import re

from conftest import REPO


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quickstart_has_two_commands():
    cmds = quickstart_commands()
    assert len(cmds) == 2
    assert "tracereplay analyze fixtures/" in cmds[0]
    assert "pytest" in cmds[1]
    fixture = cmds[0].split("tracereplay analyze ", 1)[1].split()[0]
    assert (REPO / fixture).exists()


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert quickstart_commands()[1] in ci.splitlines()
