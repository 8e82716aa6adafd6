"""The JSON Schema of the spec format, generated from the models' field descriptions.

One schema branch per installed recipe (told apart by ``recipe:``), with each section typed by the
kind the recipe runs it with. ``specs/mlflowkit-v1.schema.json`` is this output, checked in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflowkit.spec.models import spec_model
from mlflowkit.spec.recipe import load_recipe

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_ID = "https://mlflowkit.dev/specs/mlflowkit-v1.schema.json"


def json_schema() -> dict[str, Any]:
    """The spec format's JSON Schema (draft 2020-12), covering every installed recipe."""
    from pydantic.json_schema import models_json_schema

    from mlflowkit.plugins import kinds, recipes

    defs: dict[str, Any] = {}
    for name, path in sorted(recipes().ok.items()):
        recipe, _ = load_recipe(Path(path))
        pairs = tuple(sorted((recipe.section_of(s), st.kind) for s, st in recipe.stages.items()))
        model = spec_model(pairs)
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
        defs.update(found)
        defs[f"Spec_{name.replace('-', '_')}"] = branch
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlflowkit spec (mlflowkit/v1)",
        "description": "One YAML file for an ML model's lifecycle: data, training, evaluation, gates, registry.",
        "anyOf": [{"$ref": f"#/$defs/Spec_{n.replace('-', '_')}"} for n in sorted(recipes().ok)],
        "$defs": dict(sorted(defs.items())),
    }


def _ref_name(prop: dict[str, Any]) -> str:
    for option in prop.get("anyOf", [prop]):
        if "$ref" in option:
            return str(option["$ref"]).rsplit("/", 1)[-1]
    raise KeyError(f"no $ref in {prop}")
