"""The JSON Schema of the spec format, generated from the models' field descriptions.

One schema branch per installed recipe (told apart by ``recipe:``), with each section typed by the
kind the recipe runs it with. ``specs/mlflowkit-v1.schema.json`` is this output, checked in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model

from mlflowkit.spec.models import SpecBase, spec_model
from mlflowkit.spec.recipe import load_recipe

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_ID = "https://mlflowkit.dev/specs/mlflowkit-v1.schema.json"


def json_schema() -> dict[str, Any]:
    """The spec format's JSON Schema (draft 2020-12), covering every installed recipe."""
    from pydantic.json_schema import models_json_schema

    from mlflowkit.plugins import recipes

    models: list[type[SpecBase]] = []
    for name, path in sorted(recipes().ok.items()):
        recipe, _ = load_recipe(Path(path))
        base = spec_model(tuple(sorted((recipe.section_of(s), st.kind) for s, st in recipe.stages.items())))
        models.append(
            create_model(  # type: ignore[call-overload, unused-ignore]
                "Spec_" + name.replace("-", "_"), __base__=base,
                # A Literal of a runtime value is what JSON Schema needs here, and what mypy cannot check.
                recipe=(Literal[name], Field(description=f"Recipe {name!r}: {recipe.description}")),  # type: ignore[arg-type, unused-ignore]
            )
        )
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlflowkit spec (mlflowkit/v1)",
        "description": "One YAML file for an ML model's lifecycle: data, training, evaluation, gates, registry.",
        "anyOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in models],
        "$defs": defs.get("$defs", {}),
    }
