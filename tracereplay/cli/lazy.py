"""A click group whose subcommands are imported when used, not when the CLI starts.

Each command module pulls in what its command needs (numba and DuckDB for the
store, the recorder, the fleet engine); importing them all cost every run,
even ``tracereplay ingest`` and ``--help``, ~0.08 s.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """``lazy_commands``: command name -> ``"module:attribute"`` of its click command."""

    def __init__(self, *args: object, lazy_commands: dict[str, str] | None = None, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"{target} is not the click command {cmd_name!r}")
        self.add_command(command)  # imported once
        return command


__all__ = ["LazyGroup"]
