"""The checked-in JSON Schema is current, and every example and reference spec passes it and the loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

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
