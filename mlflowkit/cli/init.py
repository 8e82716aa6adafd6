"""``mlflowkit init --recipe NAME DIR``: scaffold a project that validates and runs as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlflowkit.cli.common import err, out

__all__ = ["init"]


def init(
    directory: Annotated[Path, typer.Argument(help="The new project's folder (missing or empty).", show_default=False)],
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="The recipe (`mlflowkit recipes list`).")] = (
        "tabular-classification"
    ),
    name: Annotated[str | None, typer.Option("--name", help="The pipeline's name; default: the folder's name.")] = None,
) -> None:
    """Scaffold a project from a recipe: spec, sample data (generated, no download), README and a test."""
    from mlflowkit.scaffold import scaffold

    try:
        written = scaffold(recipe, directory, name=name)
    except ValueError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None
    for path in written:
        out.print(f"  [green]+[/] {directory / path}")
    out.print(f"\n[bold]next[/]: cd {directory} && mlflowkit validate spec.yaml && mlflowkit run spec.yaml && pytest tests")
