"""The JSON Schema of the spec format, generated from the models' field descriptions.

One schema branch per installed recipe, picked by ``recipe:`` (an if/then per recipe), with each section typed by the
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
            if "." not in section:
                nested = any(p.startswith(section + ".") for p, _ in pairs)
                others = {} if nested else {k: ref for k, ref in overrides.items() if k != kind_name}
                array = _bare_list(found, branch["properties"][section], kinds().get(kind_name).list_field)
                branch["properties"][section] = _by_kind(found, branch["properties"][section], others, array)
        defs.update(found)
        defs[f"Spec_{name.replace('-', '_')}"] = branch
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "mlflowkit spec (mlflowkit/v1)",
        "description": "One YAML file for an ML model's lifecycle: data, training, evaluation, gates, registry.",
        "type": "object",
        "required": ["recipe"],
        "properties": {
            "recipe": {
                "enum": branches,
                "description": "The recipe: the stage graph and its defaults; it decides which sections the spec may have.",
            }
        },
        # `recipe:` picks the one branch that applies (an if/then per recipe, not an anyOf of them), so a
        # validator or an editor reports a typo at that branch ("'evalute' was unexpected"), not as a
        # spec that matches no recipe.
        "allOf": [
            {
                "if": {"properties": {"recipe": {"const": n}}, "required": ["recipe"]},
                "then": {"$ref": f"#/$defs/Spec_{n.replace('-', '_')}"},
            }
            for n in branches
        ],
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


def _bare_list(defs: dict[str, Any], prop: dict[str, Any], list_field: str | None) -> dict[str, Any] | None:
    """The schema of a list section written as a bare list (`gates: [...]`), or None when the kind has no list field."""
    if not list_field:
        return None
    item = defs[_ref_name(prop)]["properties"][list_field]
    return {"type": "array", "items": item.get("items", {})}


def _by_kind(defs: dict[str, Any], prop: dict[str, Any], others: dict[str, str], array: dict[str, Any] | None) -> dict[str, Any]:
    """A section's schema that picks its branch by shape and by ``kind:`` (an if/then each), not an anyOf of them.

    An object without ``kind:`` (or naming the recipe's kind) is the recipe's section; ``kind: NAME`` is
    that kind's section (``others``: kind -> def name); a list is the bare-list form (``array``). A typo
    is then reported inside the one branch that applies ("'estimater' was unexpected"). The choice is a
    def of its own (``<Section>ByKind``, added to ``defs``), shared by every recipe whose section it is.
    """
    if not others and array is None:
        return prop
    own = _ref_name(prop)
    types = ["object", *(["null"] if {"type": "null"} in prop["anyOf"] else []), *(["array"] if array else [])]
    named = {"type": "object", "required": ["kind"], "properties": {"kind": {"enum": sorted(others)}}}
    rules: list[dict[str, Any]] = [
        {"if": {"type": "object", "not": named} if others else {"type": "object"}, "then": {"$ref": f"#/$defs/{own}"}}
    ]
    for kind, ref in others.items():
        is_kind = {"type": "object", "required": ["kind"], "properties": {"kind": {"const": kind}}}
        rules.append({"if": is_kind, "then": {"$ref": f"#/$defs/{ref}"}})
    if array is not None:
        rules.append({"if": {"type": "array"}, "then": array})
    choice = {"type": types, "allOf": rules}
    name = f"{own}ByKind"
    if defs.setdefault(name, choice) != choice:
        raise AssertionError(f"two schemas for {name}")  # one section model, one set of kinds: cannot differ
    return {**{k: v for k, v in prop.items() if k != "anyOf"}, "allOf": [{"$ref": f"#/$defs/{name}"}]}


def _ref_name(prop: dict[str, Any]) -> str:
    for option in prop.get("anyOf", [prop]):
        if "$ref" in option:
            return str(option["$ref"]).rsplit("/", 1)[-1]
    raise KeyError(f"no $ref in {prop}")
