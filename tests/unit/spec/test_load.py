"""load_spec: interpolation, --set overrides and the spec hash, and where an issue from a recipe's defaults points."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from mlflowkit.errors import SpecError, SpecIssue
from mlflowkit.recipes import builtin_recipe
from mlflowkit.spec.load import load_spec, load_spec_text, parse_overrides
from mlflowkit.spec.models import SpecBase

REPO = Path(__file__).parents[3]
# Where the loader finds it: inside the installed package for a wheel, the repository for a checkout.
BUILTIN_RECIPE = Path(builtin_recipe("tabular-classification"))


HEAD = """\
spec: mlflowkit/v1
name: churn
recipe: tabular-classification
"""

SPEC = (
    HEAD
    + """\
description: Random forest with ${params.n_estimators} trees, gated at ${params.min_accuracy}.
params:
  n_estimators: 150
  max_depth: 10
  min_accuracy: 0.7
  balanced: true
data:
  source: ${env:CHURN_DIR:-data}/churn.csv
  target: churned
train:
  estimator: sklearn.ensemble.RandomForestClassifier
  params:
    n_estimators: ${params.n_estimators}
    max_depth: ${params.max_depth}
    bootstrap: ${params.balanced}
evaluate:
  metrics: [accuracy, f1]
gates:
  - accuracy >= ${params.min_accuracy}
"""
)


def _write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str = SPEC, **kwargs: object) -> SpecBase:
    kwargs.setdefault("env", {})
    # Interpolation, overrides and recipes are the subject here; the data checks are tests/unit/spec/test_data_checks.py's.
    kwargs.setdefault("read_data", False)
    return load_spec(_write(tmp_path, text), **kwargs)  # type: ignore[arg-type]


def _error(tmp_path: Path, text: str, **kwargs: object) -> SpecError:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text, **kwargs)
    return info.value


def _line_of(path: Path, fragment: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    (number,) = [i for i, line in enumerate(lines, 1) if fragment in line]
    return number


# --- interpolation --------------------------------------------------------------------------------------------


def test_whole_reference_keeps_the_params_type(tmp_path: Path) -> None:
    spec = _load(tmp_path)
    params = spec.train.params  # type: ignore[attr-defined]
    assert params["n_estimators"] == 150
    assert type(params["n_estimators"]) is int
    assert params["max_depth"] == 10
    assert type(params["max_depth"]) is int
    assert params["bootstrap"] is True
    assert spec.params == {"n_estimators": 150, "max_depth": 10, "min_accuracy": 0.7, "balanced": True}


def test_embedded_reference_is_substituted_as_text(tmp_path: Path) -> None:
    spec = _load(tmp_path)
    assert spec.description == "Random forest with 150 trees, gated at 0.7."
    assert spec.gates.rules == ["accuracy >= 0.7"]  # type: ignore[attr-defined]


def test_env_default_applies_only_when_the_variable_is_unset(tmp_path: Path) -> None:
    assert _load(tmp_path).data.source == "data/churn.csv"  # type: ignore[attr-defined]
    assert _load(tmp_path, env={"CHURN_DIR": "/srv/churn"}).data.source == "/srv/churn/churn.csv"  # type: ignore[attr-defined]
    # An empty value is a value: the default is for an unset variable.
    assert _load(tmp_path, env={"CHURN_DIR": ""}).data.source == "/churn.csv"  # type: ignore[attr-defined]


def test_env_default_may_hold_colons_and_be_empty(tmp_path: Path) -> None:
    text = SPEC.replace("${env:CHURN_DIR:-data}/churn.csv", "${env:CHURN_URI:-s3://bucket/churn.csv}").replace(
        "description: ", "description: ${env:NOTE:-}"
    )
    spec = _load(tmp_path, text)
    assert spec.data.source == "s3://bucket/churn.csv"  # type: ignore[attr-defined]
    assert spec.description.startswith("Random forest")


def test_env_reads_the_process_environment_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_DIR", "/mnt/data")
    assert load_spec(_write(tmp_path, SPEC), read_data=False).data.source == "/mnt/data/churn.csv"  # type: ignore[attr-defined]


def test_double_dollar_writes_a_literal_reference(tmp_path: Path) -> None:
    text = SPEC.replace(
        "description: Random forest with ${params.n_estimators} trees, gated at ${params.min_accuracy}.",
        "description: write $${params.n_estimators} to use a param; $${env:HOME} stays as it is",
    ).replace("  target: churned", "  target: $${env:TARGET}")
    spec = _load(tmp_path, text)
    assert spec.description == "write ${params.n_estimators} to use a param; ${env:HOME} stays as it is"
    assert spec.data.target == "${env:TARGET}"  # type: ignore[attr-defined]


def test_params_may_reference_the_environment(tmp_path: Path) -> None:
    text = SPEC.replace("  min_accuracy: 0.7", "  min_accuracy: 0.7\n  owner: ${env:OWNER:-nobody}").replace(
        "description: Random", "description: By ${params.owner}. Random"
    )
    spec = _load(tmp_path, text, env={"OWNER": "ml-team"})
    assert spec.params["owner"] == "ml-team"
    assert spec.description.startswith("By ml-team. Random forest with 150 trees")


def test_an_environment_value_is_text_and_validate_says_so_where_a_number_is_needed(tmp_path: Path) -> None:
    text = SPEC.replace("  n_estimators: 150", "  n_estimators: ${env:TREES:-150}")
    error = _error(tmp_path, text, env={"TREES": "80"})
    (issue,) = error.issues
    assert issue.path == "train.params.n_estimators"
    assert "n_estimators must be an int in the range [1, inf) (got '80')" in issue.message
    assert "text" in issue.hint


PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDn0\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(("name", "value"), [("MLFLOWKIT_SIGNING_KEY", "/ci/secrets/registry.pem"), ("EDGE_KEY", PEM)])
def test_a_spec_cannot_copy_key_material_from_the_environment(tmp_path: Path, name: str, value: str) -> None:
    # Params land in run records, the report and registry lineage, all in the shared store: a spec author
    # who may not run code (a policy limits the step modules) would read the CI's signing key there.
    text = SPEC.replace("  min_accuracy: 0.7", f"  min_accuracy: 0.7\n  note: ${{env:{name}}}")
    error = _error(tmp_path, text, env={name: value})
    (issue,) = error.issues
    assert issue.path == "params.note" and issue.line == _line_of(tmp_path / "spec.yaml", f"${{env:{name}}}")
    assert f"${{env:{name}}} holds key material" in issue.message
    assert value not in str(error)


def test_the_names_of_key_variables_are_those_mlflowkit_reads() -> None:
    from mlflowkit.spec.interpolate import SECRET_VARIABLES
    from mlflowkit.store.trust import SIGNING_KEY_ENV

    assert SIGNING_KEY_ENV in SECRET_VARIABLES


def test_unresolved_references_are_all_reported_without_follow_on_errors(tmp_path: Path) -> None:
    text = SPEC.replace("${env:CHURN_DIR:-data}/churn.csv", "${env:CHURN_DIR}").replace("${params.max_depth}", "${params.depth}")
    error = _error(tmp_path, text)
    spec_file = tmp_path / "spec.yaml"
    assert [(i.path, i.line) for i in error.issues] == [
        ("data.source", _line_of(spec_file, "${env:CHURN_DIR}")),
        ("train.params.max_depth", _line_of(spec_file, "${params.depth}")),
    ]
    assert "environment variable 'CHURN_DIR' is not set" in error.issues[0].message
    assert error.issues[1].hint == "did you mean 'max_depth'?"


# --- --set overrides and the hash -----------------------------------------------------------------------------


def test_set_overrides_a_param_and_changes_the_hash(tmp_path: Path) -> None:
    base = _load(tmp_path)
    changed = _load(tmp_path, overrides=["params.n_estimators=3"])
    assert changed.params["n_estimators"] == 3
    assert changed.train.params["n_estimators"] == 3  # type: ignore[attr-defined]
    assert type(changed.train.params["n_estimators"]) is int  # type: ignore[attr-defined]
    assert changed.description.startswith("Random forest with 3 trees")
    assert changed.spec_hash != base.spec_hash
    assert _load(tmp_path, overrides={"n_estimators": 3}).spec_hash == changed.spec_hash


def test_set_values_are_yaml_scalars(tmp_path: Path) -> None:
    assert parse_overrides(["params.a=3", "params.b=0.5", "params.c=true", "params.d=on", "params.e=", "params.f=x: y"]) == {
        "a": 3,
        "b": 0.5,
        "c": True,
        "d": "on",
        "e": "",
        "f": "x: y",
    }
    spec = _load(tmp_path, overrides=["params.min_accuracy=0.9"])
    assert spec.gates.rules == ["accuracy >= 0.9"]  # type: ignore[attr-defined]


def test_hash_is_stable_and_ignores_layout(tmp_path: Path) -> None:
    first = _load(tmp_path / "a").spec_hash
    assert _load(tmp_path / "a").spec_hash == first
    relaid = "# the same spec, laid out differently\n" + SPEC.replace(
        "evaluate:\n  metrics: [accuracy, f1]", "evaluate:\n  metrics:\n    - accuracy\n    - f1"
    )
    assert _load(tmp_path / "b", relaid).spec_hash == first
    assert len(first) == 64


def test_set_of_an_undeclared_param_names_set_with_a_did_you_mean(tmp_path: Path) -> None:
    error = _error(tmp_path, SPEC, overrides=["params.n_estimator=1"])
    (issue,) = error.issues
    assert issue.file == "<--set>"
    assert issue.path == "params.n_estimator"
    assert (issue.line, issue.col) == (0, 0)
    assert "--set names param 'n_estimator', which the spec does not declare" in issue.message
    assert issue.hint == "did you mean 'n_estimators'?"
    assert issue.snippet == "params.n_estimator=1"
    assert str(error).splitlines()[1].startswith("<--set>: params.n_estimator: --set names param")


def test_set_without_a_close_match_lists_the_params(tmp_path: Path) -> None:
    (issue,) = _error(tmp_path, SPEC, overrides=["params.nope=1"]).issues
    assert issue.file == "<--set>"
    assert issue.hint == "params: balanced, max_depth, min_accuracy, n_estimators"


def test_set_that_is_not_params_name_value_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, SPEC, overrides=["n_estimators=3", "params.=1", "params.max_depth"])
    assert [i.file for i in error.issues] == ["<--set>"] * 3
    assert all("expected params.NAME=VALUE" in i.message for i in error.issues)


def test_set_issues_come_first_and_spec_issues_are_still_reported(tmp_path: Path) -> None:
    text = SPEC.replace("  target: churned", "  target: churned\n  split: {test_size: 1.5}")
    error = _error(tmp_path, text, overrides=["params.nope=1"])
    assert error.issues[0].file == "<--set>"
    assert Path(error.issues[1].file).resolve() == (tmp_path / "spec.yaml").resolve()
    assert error.issues[1].path == "data.split.test_size"


# --- issues in values that came from a recipe -----------------------------------------------------------------


def test_kind_override_that_invalidates_a_recipe_default_points_at_the_recipe(tmp_path: Path) -> None:
    text = HEAD + "data: {source: data/churn.csv, target: churned}\ntrain:\n  kind: noop\n  label: no model yet\n"
    error = _error(tmp_path, text)
    (issue,) = error.issues
    assert Path(issue.file).resolve() == BUILTIN_RECIPE.resolve()
    assert issue.path == "train.estimator"
    assert issue.message == "unknown key 'estimator'"
    assert issue.line == _line_of(BUILTIN_RECIPE, "estimator: sklearn.ensemble.RandomForestClassifier")
    assert issue.col == 5
    assert issue.snippet.strip() == "estimator: sklearn.ensemble.RandomForestClassifier"


def test_local_recipe_is_found_next_to_the_spec(tmp_path: Path) -> None:
    _write(tmp_path, RECIPE, "recipes/quick.yaml")
    spec = _load(tmp_path, HEAD.replace("tabular-classification", "quick") + "data: {source: d.csv, target: y}\n")
    assert spec.recipe_def.recipe == "quick"
    assert spec.data.split.test_size == 0.3  # type: ignore[attr-defined]
    assert spec.stage_kinds == {"load": "load", "split": "split", "warmup": "noop"}


RECIPE = """\
recipe: quick
stages:
  load: {kind: load, section: data}
  split: {kind: split, section: data.split, needs: [load]}
  warmup: {kind: noop, needs: [split]}
defaults:
  data:
    split:
      test_size: 0.3
      seed: 7
  warmup:
    label: hello
"""


def test_invalid_default_in_a_local_recipe_points_at_its_line(tmp_path: Path) -> None:
    recipe = _write(
        tmp_path, RECIPE.replace("test_size: 0.3", "test_size: 3").replace("label: hello", "lable: hello"), "recipes/quick.yaml"
    )
    error = _error(tmp_path, HEAD.replace("tabular-classification", "quick") + "data: {source: d.csv, target: y}\n")
    by_path = {i.path: i for i in error.issues}
    assert set(by_path) == {"data.split.test_size", "warmup.lable"}
    size, label = by_path["data.split.test_size"], by_path["warmup.lable"]
    assert Path(size.file).resolve() == recipe.resolve()
    assert (size.line, size.col) == (_line_of(recipe, "test_size: 3"), 18)
    assert "less than 1" in size.message
    assert Path(label.file).resolve() == recipe.resolve()
    assert label.line == _line_of(recipe, "lable: hello")
    assert label.hint == "did you mean 'label'?"


def test_a_spec_value_that_replaces_a_recipe_default_points_at_the_spec(tmp_path: Path) -> None:
    _write(tmp_path, RECIPE, "recipes/quick.yaml")
    text = HEAD.replace("tabular-classification", "quick") + "data:\n  source: d.csv\n  target: y\n  split: {test_size: 3}\n"
    (issue,) = _error(tmp_path, text).issues
    assert Path(issue.file).resolve() == (tmp_path / "spec.yaml").resolve()
    assert (issue.path, issue.line) == ("data.split.test_size", 7)


def test_a_broken_recipe_is_reported_in_the_recipe_file(tmp_path: Path) -> None:
    recipe = _write(tmp_path, RECIPE.replace("needs: [split]", "needs: [train]"), "recipes/quick.yaml")
    (issue,) = _error(tmp_path, HEAD.replace("tabular-classification", "quick")).issues
    assert Path(issue.file).resolve() == recipe.resolve()
    assert "stage 'warmup' needs 'train', which is not a stage" in issue.message


def test_unknown_recipe_lists_local_recipes_with_a_did_you_mean(tmp_path: Path) -> None:
    _write(tmp_path, RECIPE, "recipes/quick.yaml")
    (issue,) = _error(tmp_path, HEAD.replace("tabular-classification", "quik")).issues
    assert issue.path == "recipe"
    assert issue.message == "unknown recipe 'quik' (recipes: tabular-classification, tabular-regression, torch-tabular-classification, quick)"
    assert issue.hint == "did you mean 'quick'?"


# --- the error itself -----------------------------------------------------------------------------------------


def test_load_spec_text_names_its_source_and_resolves_recipes_from_spec_dir(tmp_path: Path) -> None:
    _write(tmp_path, RECIPE, "recipes/quick.yaml")
    text = HEAD.replace("tabular-classification", "quick") + "data: {source: d.csv}\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "<editor>", spec_dir=tmp_path)
    (issue,) = info.value.issues
    assert (issue.file, issue.path, issue.line) == ("<editor>", "data.target", 4)


def test_spec_error_pickles_with_its_issues_and_rendering(tmp_path: Path) -> None:
    text = SPEC.replace("  target: churned", "  target: churned\n  split: {test_size: 1.5}")
    text = text.replace("[accuracy, f1]", "[acuracy]")
    error = _error(tmp_path, text, overrides=["params.x=1"])
    assert len(error.issues) == 3
    error = SpecError(error.issues, max_shown=1)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.issues == error.issues
    assert [i.snippet for i in copy.issues] == [i.snippet for i in error.issues]
    assert str(copy) == str(error)
    assert str(copy).endswith(f"... and {len(error.issues) - 1} more")
    assert isinstance(copy.issues[0], SpecIssue)


def test_loading_leaves_the_recipe_and_the_yaml_untouched(tmp_path: Path) -> None:
    from mlflowkit.spec.load import _merge

    defaults = {"data": {"split": {"seed": 1}}, "gates": []}
    override = {"data": {"source": "a.csv"}, "gates": ["accuracy >= 0.5"]}
    merged = _merge(defaults, override)
    merged["data"]["split"]["seed"] = 2
    merged["gates"].append("x")
    assert defaults == {"data": {"split": {"seed": 1}}, "gates": []}
    assert override == {"data": {"source": "a.csv"}, "gates": ["accuracy >= 0.5"]}
