"""``mlflowkit plugins list`` and ``mlflowkit recipes list|show``: what is installed, what failed, what a recipe asks for."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from mlflowkit.cli.common import err, fail, out
from mlflowkit.cli.help import HelpGroup

__all__ = ["app", "recipes_app"]

app = typer.Typer(help="Installed plug-ins: step kinds, deploy targets, recipes, metrics.", no_args_is_help=True, cls=HelpGroup)
recipes_app = typer.Typer(
    help="Recipes: stage graphs with defaults, and the fields a spec sets.", no_args_is_help=True, cls=HelpGroup
)


@app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every installed plug-in (group, name, distribution, summary) and every one that failed to load, with why.

    Exits 1 when a plug-in failed to load, so that CI notices; the others work regardless.
    """
    from mlflowkit.plugins import all_plugins

    rows = all_plugins()
    if as_json:
        body = [
            {"group": r.group, "name": r.name, "distribution": r.distribution, "value": r.value, "summary": r.summary,
             "ok": r.ok, "error": r.error}
            for r in rows
        ]
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        table = Table(title="installed plug-ins", title_justify="left")
        for col in ("group", "name", "distribution", "status", "summary"):
            table.add_column(col)
        for r in rows:
            status = "[green]ok[/]" if r.ok else "[red]failed[/]"
            table.add_row(r.group.removeprefix("mlflowkit."), r.name, r.distribution, status, r.summary if r.ok else r.error)
        out.print(table)
    failed = [r for r in rows if not r.ok]
    if failed:
        for r in failed:
            err.print(f"[bold red]failed[/]: {r.group} {r.name!r} from {r.distribution} ({r.value}): {r.error}", markup=True)
        raise typer.Exit(1)


@recipes_app.command("list")
def recipes_list() -> None:
    """Every installed recipe, with what it builds."""
    from mlflowkit.plugins import recipe_description, recipes

    installed = recipes()
    table = Table()
    for col in ("recipe", "distribution", "description"):
        table.add_column(col)
    for name in installed.names:
        try:
            path = installed.get(name)
        except Exception as exc:  # a broken recipe is listed with its reason
            table.add_row(name, installed.distribution.get(name, "?"), f"[red]failed[/]: {exc}")
            continue
        table.add_row(name, installed.distribution.get(name, "?"), recipe_description(path))
    out.print(table)


@recipes_app.command("show")
def recipes_show(name: Annotated[str, typer.Argument(help="The recipe's name (`mlflowkit recipes list`).")]) -> None:
    """A recipe's stages and the spec fields it documents: required ones first, with defaults and descriptions."""
    from pathlib import Path

    from mlflowkit.errors import SpecError
    from mlflowkit.spec.recipe import find_recipe, load_recipe

    try:
        recipe, _ = load_recipe(find_recipe(name, Path.cwd()))
    except KeyError as exc:
        message, hint = (*exc.args, "")[:2]
        err.print(f"[bold red]error[/]: {message}" + (f"; {hint}" if hint else ""))
        raise typer.Exit(2) from None
    except SpecError as exc:
        fail(exc)
    out.print(f"[bold]{recipe.recipe}[/]: {recipe.description}")
    stages = Table(title="stages", title_justify="left")
    for col in ("stage", "kind", "section", "needs", "description"):
        stages.add_column(col)
    for stage_name, stage in recipe.stages.items():
        stages.add_row(stage_name, stage.kind, recipe.section_of(stage_name), ", ".join(stage.needs), stage.description)
    out.print(stages)
    fields = Table(title="fields (required first)", title_justify="left")
    for col in ("field", "required", "default", "example", "description"):
        fields.add_column(col)
    for path, field in sorted(recipe.fields.items(), key=lambda item: not item[1].required):
        default = recipe.default_of(path)
        fields.add_row(
            path,
            "[bold]required[/]" if field.required else "optional",
            "" if default is None else json.dumps(default),
            "" if field.example is None else json.dumps(field.example),
            field.description,
        )
    out.print(fields)
    out.print(f"Start a project with it: mlflowkit init --recipe {recipe.recipe} DIR")
