"""Commands that explain the tool: ``policies``, ``metrics`` and ``help [COMMAND...]``.

They print the library's own self-descriptions (each policy's ``proposal``,
``rules``, ``legend`` and declared parameters; :mod:`tracereplay.metric_info`),
so what the user reads is what the replay does.
"""

from __future__ import annotations

import json
import textwrap

import click

__all__ = ["help_command", "metrics_command", "policies_command"]

_WIDTH = 88
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for reading, json for scripts.",
)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, _WIDTH, initial_indent=indent, subsequent_indent=indent)


@click.command("policies")
@_FORMAT
def _policies(fmt: str) -> None:
    """List the policies: the proposal each models, its rules and its parameters.

    Every policy replays the same reconstructed NUMA-scan activity under its
    own rules; `analyze --policy NAME` picks some, `--param NAME.PARAM=VALUE`
    sets a parameter (checked against the ranges shown here).

    \b
    Examples:
      tracereplay policies
      tracereplay policies --format json
      tracereplay analyze trace.txt --policy baseline --policy numa-protect --param numa-protect.batch=16
    """
    from tracereplay.policies import DEFAULT_POLICIES, REGISTRY, load_plugins

    errors = load_plugins()
    names = [*DEFAULT_POLICIES, *sorted(set(REGISTRY) - set(DEFAULT_POLICIES))]
    if fmt == "json":
        doc = [
            {
                "name": n,
                "default": n in DEFAULT_POLICIES,
                "proposal": REGISTRY[n].proposal,
                "legend": REGISTRY[n].legend,
                "rules": REGISTRY[n].rules or REGISTRY[n].summary(),
                "parameters": [
                    {
                        "name": p.name,
                        "type": p.type.__name__,
                        "default": p.default,
                        "min": p.min,
                        "max": p.max,
                        "choices": list(p.choices),
                        "help": p.help,
                    }
                    for p in REGISTRY[n].parameters
                ],
            }
            for n in names
        ]
        click.echo(json.dumps(doc, indent=2))
    else:
        for n in names:
            cls = REGISTRY[n]
            click.echo(f"{n}{'' if n in DEFAULT_POLICIES else '  (plugin, not replayed by default)'}")
            click.echo(_wrap(f"proposal: {cls.proposal or 'not stated'}", "  "))
            click.echo(_wrap(cls.rules or cls.summary(), "  "))
            if cls.parameters:
                click.echo("  parameters (--param " + n + ".NAME=VALUE):")
                for p in cls.parameters:
                    click.echo(_wrap(f"{p.name}: {p.describe()}; {p.help}", "    "))
            else:
                click.echo("  parameters: none")
            click.echo()
    for e in errors:
        click.echo(f"tracereplay: warning: {e}", err=True)


@click.command("metrics")
@_FORMAT
def _metrics(fmt: str) -> None:
    """List the metrics of the replay: unit, meaning and how each one's basis is decided.

    Every count is observed (read from events), derived (computed from observed
    events and the model) or assumed (needs a fact the trace lacks); for every
    policy but the baseline, METRIC_avoided = baseline minus the policy.

    \b
    Examples:
      tracereplay metrics
      tracereplay metrics --format json | jq '.[] | select(.name == "kvm_unmap_calls")'
    """
    from tracereplay.metric_info import AVOIDED_RULE, METRIC_INFO

    if fmt == "json":
        doc = [
            {"name": m.name, "unit": m.unit, "meaning": m.meaning, "basis_rule": m.basis_rule}
            for m in METRIC_INFO.values()
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    for m in METRIC_INFO.values():
        click.echo(f"{m.name}  [{m.unit}]")
        click.echo(_wrap(m.meaning, "  "))
        click.echo(_wrap(f"basis: {m.basis_rule}", "  "))
        click.echo()
    click.echo("METRIC_avoided  [the metric's unit]")
    click.echo(_wrap(f"basis: {AVOIDED_RULE}", "  "))


@click.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def _help(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Show the help of COMMAND (nested ones too), as COMMAND --help does.

    \b
    Examples:
      tracereplay help
      tracereplay help analyze
      tracereplay help lab run
    """
    parent = ctx.find_root()
    cmd = parent.command
    for name in command:
        sub = cmd.get_command(parent, name) if isinstance(cmd, click.Group) else None
        if sub is None:
            known = ", ".join(cmd.list_commands(parent)) if isinstance(cmd, click.Group) else ""
            where = " ".join([*parent.command_path.split()[1:], name])
            raise click.UsageError(
                f"no such command {where!r}" + (f" (known: {known})" if known else ""), ctx=ctx
            )
        parent = click.Context(sub, info_name=name, parent=parent)
        cmd = sub
    click.echo(cmd.get_help(parent))


# declared types: mypy does not see through click's decorators
policies_command: click.Command = _policies
metrics_command: click.Command = _metrics
help_command: click.Command = _help
