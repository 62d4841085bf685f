"""The tool explains itself: policies, metrics, help, and every command's help has an example."""

from __future__ import annotations

import json

import click
import pytest
from conftest import run_cli

from tracereplay.cli.main import cli
from tracereplay.contract import BUILTIN_POLICIES, METRICS
from tracereplay.errors import EXIT_USAGE
from tracereplay.policies import REGISTRY


def test_policies_lists_proposal_rules_and_parameters():
    out = run_cli("policies")
    assert out.exit_code == 0, out.output
    for name in BUILTIN_POLICIES:
        assert f"\n{name}\n" in f"\n{out.stdout}", name
        assert REGISTRY[name].proposal.split(":")[0] in out.stdout
    assert "batch: integer >= 1, default 1" in out.stdout
    doc = json.loads(run_cli("policies", "--format", "json").stdout)
    assert [p["name"] for p in doc][: len(BUILTIN_POLICIES)] == list(BUILTIN_POLICIES)
    protect = next(p for p in doc if p["name"] == "numa-protect")
    assert protect["parameters"][0] | {"help": ""} == {
        "name": "batch",
        "type": "int",
        "default": 1,
        "min": 1,
        "max": None,
        "choices": [],
        "help": "",
    }


def test_metrics_lists_unit_and_basis_rule():
    out = run_cli("metrics")
    assert out.exit_code == 0
    for m in (*METRICS, "est_cpu_us", "mmtests_autonuma_cost"):
        assert f"\n{m}  [" in f"\n{out.stdout}", m
    doc = json.loads(run_cli("metrics", "--format", "json").stdout)
    est = next(m for m in doc if m["name"] == "est_cpu_us")
    assert est["unit"].startswith("µs") and "derived" in est["basis_rule"]


@pytest.mark.parametrize("path", [(), ("analyze",), ("lab", "run")])
def test_help_command_is_the_commands_own_help(path):
    via_help = run_cli("help", *path)
    via_flag = run_cli(*path, "--help")
    assert via_help.exit_code == 0 == via_flag.exit_code
    assert via_help.stdout == via_flag.stdout


def test_help_of_an_unknown_command_is_a_usage_error():
    out = run_cli("help", "lab", "nope")
    assert out.exit_code == EXIT_USAGE and "no such command 'lab nope' (known: run)" in out.stderr


def test_top_level_help_lists_every_input_format():
    out = run_cli("--help").stdout
    for fmt in ("ftrace-text", "trace-dat", "perf-data", "perfetto", ".gz", ".zst", ".xz"):
        assert fmt in out, fmt


def test_policy_option_shows_its_choices():
    out = run_cli("analyze", "--help").stdout
    assert all(p in out for p in BUILTIN_POLICIES)


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _all_commands(cli)], ids=lambda p: " ".join(p))
def test_every_command_and_subcommand_has_help_with_an_example(path):
    result = run_cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout, f"{' '.join(path)} --help has no example"
    # the example runs this very command
    assert f"tracereplay {' '.join(path)}" in result.stdout
