"""The checked-in JSON Schema is current, and every example and reference spec passes it and the loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema.exceptions import best_match

from mlflowkit.spec.load import load_spec
from mlflowkit.spec.schema import json_schema

REPO = Path(__file__).parents[3]
SCHEMA = REPO / "specs" / "mlflowkit-v1.schema.json"
SPECS = sorted([*REPO.glob("examples/*/spec.yaml"), *REPO.glob("specs/reference/*.yaml")])


def test_checked_in_schema_is_up_to_date() -> None:
    assert json.loads(SCHEMA.read_text()) == json_schema(), "regenerate: mlflowkit schema -o specs/mlflowkit-v1.schema.json"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(REPO)))
def test_spec_passes_schema_and_loader(path: Path) -> None:
    # What an editor's YAML language server does with the schema ...
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(yaml.safe_load(path.read_text()))
    # ... and what mlflowkit itself does.
    assert load_spec(path, env={}).name


def test_schema_refuses_what_the_loader_refuses() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    good = yaml.safe_load((REPO / "specs" / "reference" / "minimal.yaml").read_text())
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "train": {"estimater": "x"}})
    assert not validator.is_valid({**good, "recipe": "no-such-recipe"})
    assert not validator.is_valid({**good, "gates": [3]})


def test_every_field_is_described() -> None:
    schema = json_schema()
    missing = [
        f"{name}.{field}"
        for name, model in schema["$defs"].items()
        for field, prop in model.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


def _best_error(instance: dict[str, object]) -> jsonschema.ValidationError:
    error = best_match(jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(instance))
    assert error is not None, "expected the schema to refuse the spec"
    return error


def test_a_typo_is_reported_in_the_recipe_branch_not_as_a_spec_of_no_recipe() -> None:
    good = yaml.safe_load((REPO / "specs" / "reference" / "minimal.yaml").read_text())
    # A top-level typo: `recipe:` picks the branch, whose additionalProperties names the key.
    error = _best_error({**good, "evalute": {"metrics": ["accuracy"]}})
    assert (list(error.absolute_path), error.validator) == ([], "additionalProperties")
    assert "'evalute' was unexpected" in error.message
    # In a section: the recipe's kind runs it unless `kind:` names another, so the typo is found there too.
    error = _best_error({**good, "train": {"estimator": "sklearn.linear_model.LogisticRegression", "estimater": "x"}})
    assert (list(error.absolute_path), error.validator) == (["train"], "additionalProperties")
    assert "'estimater' was unexpected" in error.message
    # `kind: torch` makes the torch kind's params apply to the section.
    error = _best_error({**good, "train": {"kind": "torch", "epochs": "many"}})
    assert list(error.absolute_path) == ["train", "epochs"] and error.validator == "type"
    # An unknown recipe, or none, is said as such.
    error = _best_error({**good, "recipe": "tabular-clasification"})
    assert list(error.absolute_path) == ["recipe"] and error.validator == "enum"
    error = _best_error({k: v for k, v in good.items() if k != "recipe"})
    assert error.validator == "required" and "'recipe'" in error.message


def test_the_root_names_each_recipe_branch_by_its_recipe() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert "anyOf" not in schema and "oneOf" not in schema
    branches = {rule["if"]["properties"]["recipe"]["const"]: rule["then"]["$ref"] for rule in schema["allOf"]}
    assert branches == {
        name: f"#/$defs/Spec_{name.replace('-', '_')}"
        for name in ("tabular-classification", "tabular-regression", "torch-tabular-classification")
    }
    assert schema["properties"]["recipe"]["enum"] == sorted(branches)
