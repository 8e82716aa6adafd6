"""Built-in recipes: documented fields, `mlflowkit recipes show`, and `mlflowkit init` projects that run as they are.

A scaffolded project's own test (validate, then run on the local Prefect server) is run with
pytest in a subprocess, from the project's folder, exactly as its README says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema.exceptions import best_match
from typer.testing import CliRunner

from mlflowkit.cli import app
from mlflowkit.plugins import recipes
from mlflowkit.scaffold import scaffoldable
from mlflowkit.spec.recipe import load_recipe
from mlflowkit.spec.schema import json_schema

BUILTIN = ["tabular-classification", "tabular-regression", "torch-tabular-classification"]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipe_documents_its_fields(name: str) -> None:
    recipe, _ = load_recipe(Path(recipes().get(name)))
    required = {path for path, field in recipe.fields.items() if field.required}
    assert {"name", "data.source", "data.target"} <= required
    assert all(field.description for field in recipe.fields.values())
    assert any(not field.required for field in recipe.fields.values())
    assert name in scaffoldable()


def test_recipes_show_prints_required_and_optional_fields() -> None:
    result = CliRunner().invoke(app, ["recipes", "show", "tabular-regression"], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert "data.target" in result.output and "required" in result.output and "optional" in result.output
    assert "sklearn.ensemble.RandomForestRegressor" in result.output  # the default, next to the field
    listed = CliRunner().invoke(app, ["recipes", "list"], env={"COLUMNS": "220"})
    assert all(name in listed.output for name in BUILTIN)
    unknown = CliRunner().invoke(app, ["recipes", "show", "tabular-regresion"])
    assert unknown.exit_code == 2 and "did you mean 'tabular-regression'" in unknown.output


def test_init_refuses_a_folder_with_files_and_an_unknown_recipe(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    result = CliRunner().invoke(app, ["init", "--recipe", "tabular-regression", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "not empty" in result.output
    result = CliRunner().invoke(app, ["init", "--recipe", "tabular-regresion", str(tmp_path / "new")])
    assert result.exit_code == 2 and "did you mean 'tabular-regression'" in result.output


def test_init_writes_the_same_sample_data_every_time(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        result = CliRunner().invoke(app, ["init", "--recipe", "tabular-regression", str(tmp_path / folder)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "data" / "sample.csv").read_bytes() == (tmp_path / "b" / "data" / "sample.csv").read_bytes()
    readme = (tmp_path / "a" / "README.md").read_text()
    assert "| `data.target` | yes |" in readme and "mlflowkit run spec.yaml" in readme


@pytest.mark.parametrize("name", BUILTIN)
def test_init_sets_up_editors_with_the_schema_the_spec_passes(name: str, tmp_path: Path) -> None:
    project = tmp_path / "p"
    result = CliRunner().invoke(app, ["init", "--recipe", name, str(project)])
    assert result.exit_code == 0, result.output
    text = (project / "spec.yaml").read_text()
    # The YAML language server reads the schema's path (relative to the spec) from the first line ...
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./mlflowkit.schema.json"
    # ... VS Code's YAML extension from the workspace settings, the path relative to the project.
    settings = json.loads((project / ".vscode" / "settings.json").read_text())
    assert settings == {"yaml.schemas": {"./mlflowkit.schema.json": ["spec.yaml"]}}
    schema = json.loads((project / "mlflowkit.schema.json").read_text())
    assert schema == json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    spec = yaml.safe_load(text)
    assert list(validator.iter_errors(spec)) == []
    # A typo is reported by the key's name, where it is, as an editor would underline it.
    error = best_match(validator.iter_errors({**spec, "evalute": spec["evaluate"]}))
    assert error is not None and list(error.absolute_path) == [] and "'evalute' was unexpected" in error.message
    error = best_match(validator.iter_errors({**spec, "data": {**spec["data"], "targte": "x"}}))
    assert error is not None and list(error.absolute_path) == ["data"] and "'targte' was unexpected" in error.message


@pytest.mark.prefect
# One scaffold runs in the default suite; the other two (torch on Ray is the longest test there is) in `tox -e slow`.
@pytest.mark.parametrize(
    "name", [BUILTIN[0], *(pytest.param(name, marks=pytest.mark.slow) for name in BUILTIN[1:])]
)
def test_scaffolded_project_validates_and_runs_as_is(name: str, tmp_path: Path) -> None:
    project = tmp_path / "my-project"
    result = CliRunner().invoke(app, ["init", "--recipe", name, str(project)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in project.iterdir()} >= {"spec.yaml", "README.md", "data", "tests"}
    validated = CliRunner().invoke(app, ["validate", str(project / "spec.yaml")])
    assert validated.exit_code == 0, validated.output
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
