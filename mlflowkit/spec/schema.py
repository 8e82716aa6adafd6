"""The JSON Schema of the spec format, generated from the models' field descriptions.

One schema branch per installed recipe (told apart by ``recipe:``), with each section typed by the
kind the recipe runs it with, or by any other installed kind the section names with ``kind:`` (so that
a plug-in's params autocomplete too). Deploy targets come from the installed targets. A recipe whose
kinds are not installed has no branch. ``specs/mlflowkit-v1.schema.json`` is this output, checked in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model

from mlflowkit.errors import PluginError, SpecError
from mlflowkit.spec.models import StepControls, spec_model
from mlflowkit.spec.recipe import load_recipe

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_ID = "https://mlflowkit.dev/specs/mlflowkit-v1.schema.json"


def json_schema() -> dict[str, Any]:
    """The spec format's JSON Schema (draft 2020-12), covering every installed recipe."""
    from pydantic.json_schema import models_json_schema

    from mlflowkit.plugins import kinds, recipes

    defs: dict[str, Any] = {}
    overrides = _override_defs(defs)
    branches: list[str] = []
    for name, path in sorted(recipes().ok.items()):
        try:
            recipe, _ = load_recipe(Path(path))
            pairs = tuple(sorted((recipe.section_of(s), st.kind) for s, st in recipe.stages.items()))
            model = spec_model(pairs)
        except (PluginError, SpecError):
            continue  # a recipe whose kinds are missing or broken (`mlflowkit plugins list` says why)
        branches.append(name)
        _, schema = models_json_schema([(model, "validation")], ref_template="#/$defs/{model}")
        found = schema.get("$defs", {})
        branch = found.pop(model.__name__)
        branch["title"] = f"spec using recipe {name}"
        branch["properties"]["recipe"] = {"const": name, "description": f"Recipe {name!r}: {recipe.description}"}
        for section, kind_name in pairs:
            list_field = kinds().get(kind_name).list_field
            if list_field and "." not in section:
                # A list section may be written as a bare list (`gates: [...]`): allow both shapes.
                prop = branch["properties"][section]
                item = found[_ref_name(prop)]["properties"][list_field]
                prop["anyOf"] = [*prop["anyOf"], {"type": "array", "items": item.get("items", {})}]
            if "." not in section and not any(p.startswith(section + ".") for p, _ in pairs):
                # Any other installed kind may run the section (`kind: NAME`); its params then apply.
                prop = branch["properties"][section]
                others = [{"$ref": f"#/$defs/{ref}"} for other, ref in overrides.items() if other != kind_name]
                prop["anyOf"] = [*prop["anyOf"], *others]
        defs.update(found)
        defs[f"Spec_{name.replace('-', '_')}"] = branch
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlflowkit spec (mlflowkit/v1)",
        "description": "One YAML file for an ML model's lifecycle: data, training, evaluation, gates, registry.",
        "anyOf": [{"$ref": f"#/$defs/Spec_{n.replace('-', '_')}"} for n in branches],
        "$defs": dict(sorted(defs.items())),
    }


def _override_defs(defs: dict[str, Any]) -> dict[str, str]:
    """A section model per installed kind that requires ``kind: NAME``; adds them to ``defs``, returns name -> def."""
    from pydantic.json_schema import models_json_schema

    from mlflowkit.plugins import kinds

    models: dict[str, type[BaseModel]] = {}
    for kind_name, kind in sorted(kinds().ok.items()):
        title = "".join(part.title() for part in kind_name.replace("-", "_").split("_"))
        models[kind_name] = create_model(  # type: ignore[call-overload, no-any-return, unused-ignore]
            f"KindSection{title}",
            __base__=(StepControls, kind.Params),
            __doc__=f"A section run by kind {kind_name!r} (`kind: {kind_name}`). {kind.Params.__doc__ or ''}".strip(),
            kind=(str, Field(description=f"`{kind_name}`: run this section with that kind instead of the recipe's.")),
        )
    _, schema = models_json_schema([(m, "validation") for m in models.values()], ref_template="#/$defs/{model}")
    found = schema.get("$defs", {})
    names: dict[str, str] = {}
    for kind_name, model in models.items():
        found[model.__name__]["properties"]["kind"]["const"] = kind_name
        names[kind_name] = model.__name__
    defs.update(found)
    return names


def _ref_name(prop: dict[str, Any]) -> str:
    for option in prop.get("anyOf", [prop]):
        if "$ref" in option:
            return str(option["$ref"]).rsplit("/", 1)[-1]
    raise KeyError(f"no $ref in {prop}")
