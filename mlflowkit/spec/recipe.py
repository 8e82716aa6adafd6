"""Recipes: a stage graph with defaults, found next to the spec or through an entry point."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlflowkit.errors import PluginError, SpecError, SpecIssue
from mlflowkit.spec._yaml import LoadedYaml, load_yaml_file

__all__ = ["Recipe", "RecipeField", "Stage", "find_recipe", "load_recipe"]

_NAME = r"^[a-z][a-z0-9_-]*$"


class Stage(BaseModel):
    """One node of a recipe's stage graph."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="The default step kind; a spec may override it with `kind:` in the section.")
    section: str | None = Field(
        None, description="Dotted path of the spec section that configures this stage; defaults to the stage name."
    )
    needs: tuple[str, ...] = Field((), description="Stages that must finish before this one.")
    retries: int = Field(0, ge=0, description="Default retry count for the stage.")
    timeout: float | None = Field(None, gt=0, description="Default timeout in seconds.")
    description: str = Field("", description="What the stage does, for `mlflowkit plan` and the docs.")


class RecipeField(BaseModel):
    """One field a spec using the recipe sets (required) or may set (optional), documented for people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: bool = Field(False, description="A spec must set it: the recipe has no default for it.")
    description: str = Field(min_length=1, description="What the field means, in words a spec writer acts on.")
    example: Any = Field(None, description="An example value, shown by `mlflowkit recipes show`.")


# Top-level keys a recipe's `fields:` may document besides its sections.
_TOP_LEVEL = ("name", "description", "params", "store", "steps")


class Recipe(BaseModel):
    """A stage graph plus the default values of each section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipe: str = Field(pattern=_NAME, description="The recipe's name, as a spec writes it in `recipe:`.")
    description: str = Field("", description="What the recipe builds.")
    stages: dict[str, Stage] = Field(description="The stage graph, in order.")
    defaults: dict[str, Any] = Field(default_factory=dict, description="Default section values; the spec wins.")
    fields: dict[str, RecipeField] = Field(
        default_factory=dict,
        description="The spec fields people set, by dotted path (`data.source`), required ones first: `mlflowkit recipes show`.",
    )

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, stages: dict[str, Stage]) -> dict[str, Stage]:
        for name in stages:
            if not re.match(_NAME, name):
                raise ValueError(f"stage name {name!r} must match {_NAME}")
        return stages

    @model_validator(mode="after")
    def _graph(self) -> Recipe:
        names = list(self.stages)
        sections: dict[str, str] = {}
        for name, stage in self.stages.items():
            for need in stage.needs:
                if need not in self.stages:
                    raise ValueError(f"stage {name!r} needs {need!r}, which is not a stage ({', '.join(names)})")
                if names.index(need) >= names.index(name):
                    # Listing stages in dependency order keeps recipes readable and rules out cycles.
                    raise ValueError(f"stage {name!r} needs {need!r}, which must be listed before it")
            section = self.section_of(name)
            if section in sections:
                raise ValueError(f"stages {sections[section]!r} and {name!r} both read section {section!r}")
            sections[section] = name
        tops = {s.split(".")[0] for s in sections} | set(_TOP_LEVEL)
        for path in self.fields:
            if path.split(".")[0] not in tops:
                raise ValueError(f"fields: {path!r} is not under a section of this recipe ({', '.join(sorted(tops))})")
        return self

    def default_of(self, path: str) -> Any:
        """The recipe's default value at dotted ``path``, or None."""
        value: Any = self.defaults
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def section_of(self, stage: str) -> str:
        """The dotted spec path that configures ``stage``."""
        return self.stages[stage].section or stage


def find_recipe(name: str, spec_dir: Path | None) -> Path:
    """Locate recipe ``name``: ``recipes/<name>.yaml`` next to the spec first, then entry points.

    Raises:
        KeyError: ``args`` are the message (naming the recipes that exist) and a did-you-mean hint (or "").
    """
    from mlflowkit.plugins import did_you_mean, recipes

    if spec_dir is not None:
        local = spec_dir / "recipes" / f"{name}.yaml"
        if local.is_file():
            return local
    installed = recipes()
    if name in installed.names:
        try:
            return Path(installed.get(name))
        except PluginError as exc:
            raise KeyError(f"recipe {exc.reason}", "") from None
    known = installed.names
    if spec_dir is not None and (spec_dir / "recipes").is_dir():
        known += sorted(p.stem for p in (spec_dir / "recipes").glob("*.yaml"))
    raise KeyError(f"unknown recipe {name!r} (recipes: {', '.join(known) or 'none'})", did_you_mean(name, known))


def load_recipe(path: Path) -> tuple[Recipe, LoadedYaml]:
    """Parse and validate a recipe file; every problem is a SpecIssue located in the recipe file."""
    from mlflowkit.spec._validate import issues_from_validation

    source = load_yaml_file(path)
    try:
        recipe = Recipe.model_validate(source.data)
    except ValidationError as exc:
        raise SpecError(issues_from_validation(exc, source.issue, Recipe)) from exc
    if recipe.recipe != path.stem:
        issue: SpecIssue = source.issue(("recipe",), f"recipe file {path.name} declares name {recipe.recipe!r}")
        raise SpecError([issue])
    return recipe, source
