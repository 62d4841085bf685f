"""Options several commands share, as decorators, and the parameter types they use.

Every command module imports its options from here (never from
:mod:`tracereplay.cli.main`, which imports a command's module when it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tracereplay import progress
from tracereplay.contract import BUILTIN_POLICIES
from tracereplay.progress import NO_PROGRESS
from tracereplay.units import parse_size

F = TypeVar("F", bound=Callable[..., Any])

# every command's context: -h as well as --help
CONTEXT = {"help_option_names": ["-h", "--help"]}


def output_option(help: str, *, dest: str = "output", dir_okay: bool = False) -> Callable[[F], F]:
    """``-o/--output`` (required): the file (or directory) a command writes."""
    return click.option(
        "-o",
        "--output",
        dest,
        required=True,
        type=click.Path(dir_okay=dir_okay, file_okay=not dir_okay),
        help=help,
    )


def force_option(help: str = "Replace existing output files.") -> Callable[[F], F]:
    """``--force``: replace an existing output (atomically, once the new one is complete)."""
    return click.option("--force", is_flag=True, help=help)


def manifest_option(fn: F) -> F:
    """``--manifest``: the VM manifest; without it TRACE.manifest.toml when it exists."""
    return click.option(
        "--manifest",
        type=click.Path(dir_okay=False),
        help="VM manifest (default: TRACE.manifest.toml).",
    )(fn)


def format_option(fn: F) -> F:
    """``--format table|json|csv`` of the commands that print a result."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="Output format; json and csv print only the result on stdout.",
    )(fn)


def format_choice(*choices: str) -> Callable[[F], F]:
    """``--format`` with other choices than :func:`format_option`'s, the first the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help="Output format; json prints only the result on stdout.",
    )


def policy_options(fn: F) -> F:
    """``--policy`` (repeatable) and ``--param POLICY.PARAM=VALUE`` (repeatable, parsed)."""
    fn = click.option(
        "--param",
        "params",
        multiple=True,
        metavar="POLICY.PARAM=VALUE",
        callback=_params,
        help="Policy parameter, e.g. numa-protect.batch=16 (checked; see `tracereplay policies`).",
    )(fn)
    return click.option(
        "--policy",
        "policies",
        multiple=True,
        type=PolicyChoice(BUILTIN_POLICIES),
        help="Policy to replay (repeatable; default: all built-in), or a plugin's; "
        "see `tracereplay policies`.",
    )(fn)


class PolicyChoice(click.Choice):
    """Shows the built-in policies as choices; names are checked against the registry later,
    once plugins are loaded (a plugin's policy is valid too)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value


def events_option(fn: F) -> F:
    """``--events``: the tracepoints to enable (``record`` and ``top`` resolve it alike)."""
    from tracereplay.record.events import PRESETS  # the recorder's, imported by its commands

    return click.option(
        "--events",
        default="numa",
        show_default=True,
        help=f"Presets ({', '.join(PRESETS)}) and system:event, comma-separated; "
        "-system:event drops one.",
    )(fn)


def qmp_option(help: str) -> Callable[[F], F]:
    """``--qmp SOCKET``: a QEMU QMP socket to ask for guest RAM and VFIO pinning."""
    return click.option("--qmp", type=click.Path(exists=True, dir_okay=False), help=help)


def _quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:  # for this command: no bars, whatever the terminal
        ctx.with_resource(progress.using(NO_PROGRESS))
    return value


def quiet_option(fn: F) -> F:
    """``-q/--quiet``: no progress bars (drawn only on a terminal's stderr anyway)."""
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_quiet,
        help="No progress bars (drawn only when stderr is a terminal).",
    )(fn)


def _params(
    _ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        policy, dot, name = key.rpartition(".")
        if not sep or not dot:
            raise click.BadParameter(
                f"{item!r}: expected POLICY.PARAM=VALUE, e.g. numa-protect.batch=16",
                param_hint="--param",
            )
        out.setdefault(policy, {})[name] = value  # typed and checked by the policy's declaration
    return out


class Size(click.ParamType):
    """A size in bytes: 256M, 1G, 1.5GiB, 65536 (:func:`tracereplay.units.parse_size`)."""

    name = "SIZE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a size like 256M, 1G or 65536", param, ctx)
        if size < 0:
            self.fail("size must not be negative", param, ctx)
        return size


__all__ = [
    "CONTEXT",
    "Size",
    "events_option",
    "force_option",
    "format_choice",
    "format_option",
    "manifest_option",
    "output_option",
    "policy_options",
    "qmp_option",
    "quiet_option",
]
