"""How the CLI's help reads: commands grouped in panels (everyday, models, operations, edge), flags shown without a type.

Every ``typer.Typer`` of the CLI is made with ``cls=HelpGroup``. This module imports only typer, so that the
light edge commands can use it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from typer.core import TyperGroup

__all__ = ["EDGE", "EVERYDAY", "MODELS", "OPERATIONS", "PANELS", "HelpGroup"]

EVERYDAY = "Everyday"
MODELS = "Models"
OPERATIONS = "Operations"
EDGE = "Edge devices"
PANELS = (EVERYDAY, MODELS, OPERATIONS, EDGE)
"""The top-level help's panels, in the order they are shown."""


def _untyped_flags(params: Iterable[Any]) -> None:
    """A flag takes no value, so its help shows no type (typer would print ``<bool>``)."""
    for param in params:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class HelpGroup(TyperGroup):
    """A command group whose commands are listed panel by panel (:data:`PANELS`) and whose flags show no type."""

    def list_commands(self, ctx: Any) -> list[str]:
        """The commands in panel order; within a panel, in the order they were added."""

        def rank(name: str) -> int:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            return PANELS.index(panel) if panel in PANELS else len(PANELS)

        return sorted(super().list_commands(ctx), key=rank)

    def get_params(self, ctx: Any) -> list[Any]:
        """The group's own options (``--help``, ``--version``, completion), flags without a type."""
        params: list[Any] = super().get_params(ctx)
        _untyped_flags(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """A subcommand, its flags (its ``--help`` too) without a type; a subgroup does this itself."""
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, HelpGroup):
            _untyped_flags([*command.params, command.get_help_option(ctx)])
        return command
