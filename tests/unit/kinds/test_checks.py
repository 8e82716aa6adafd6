"""The checks kind without running GX: the YAML shape, validate-time checks, expansion, cache key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlflowkit.errors import SpecError
from mlflowkit.kinds.base import StepContext
from mlflowkit.kinds.checks import Checks, ChecksParams, expand
from mlflowkit.spec.load import load_spec_text

BASE = """\
spec: mlflowkit/v1
name: t
recipe: tabular-classification
data: {source: d.csv, target: churned}
"""


def load(text: str, spec_dir: Path | None = None) -> Any:
    # The checks' own validation is the subject: no data file (its header is the loader's tests' business).
    return load_spec_text(BASE + text, "t.yaml", spec_dir=spec_dir, read_data=False)


def issues(text: str, spec_dir: Path | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(text, spec_dir)
    return [f"{i.line}:{i.path}: {i.message} | {i.hint}" for i in info.value.issues]


def test_docstring_example_validates_and_expands() -> None:
    doc = Checks.__doc__ or ""
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    text = "\n".join(line[4:] for line in example.group(1).splitlines())
    spec = load(text)
    planned = expand(spec.checks, target="churned", spec_dir=".")
    names = [p.expectation for p in planned]
    assert names[0] == "expect_table_columns_to_match_set"
    assert names.count("expect_column_values_to_be_of_type") == 4
    assert "leakage" in names and "expect_column_values_to_be_unique" in names
    # `on: all` runs the mean check on each of the three tables, as a warning.
    mean = [p for p in planned if p.expectation == "expect_column_mean_to_be_between"]
    assert [(p.table, p.severity) for p in mean] == [("raw", "warn"), ("train", "warn"), ("test", "warn")]


def test_no_checks_is_the_default() -> None:
    spec = load("")
    assert spec.checks.expectations == []


def test_expect_prefix_is_optional_and_mostly_reaches_gx() -> None:
    spec = load(
        "checks:\n"
        "  - {expect: expect_column_values_to_not_be_null, column: customer_id}\n"
        "  - {expect: column_values_to_be_between, column: age, min_value: 18, max_value: 120, mostly: 0.99, on: train}\n"
    )
    first, second = expand(spec.checks, target="churned", spec_dir=".")
    assert first.expectation == "expect_column_values_to_not_be_null" and first.kwargs == {"column": "customer_id"}
    assert second.kwargs == {"column": "age", "min_value": 18, "max_value": 120, "mostly": 0.99}
    assert (second.table, second.severity) == ("train", "error")


def test_builtins_expand_to_gx_expectations() -> None:
    spec = load(
        "checks:\n"
        "  - schema: {columns: {id: str, age: int64, note: null}, exact: true}\n"
        "  - rows: {min: 10, max: 20}\n"
        "  - unique: [id, email]\n"
        "  - target: {classes: [yes, no]}\n"
        "  - leakage: id\n"
    )
    planned = expand(spec.checks, target="churned", spec_dir=".")
    got = [(p.source, p.expectation, p.kwargs, p.table) for p in planned]
    assert got == [
        ("checks[0]", "expect_table_columns_to_match_set", {"column_set": ["id", "age", "note"], "exact_match": True}, "raw"),
        ("checks[0]", "expect_column_values_to_be_of_type", {"column": "id", "type_": "str"}, "raw"),
        ("checks[0]", "expect_column_values_to_be_of_type", {"column": "age", "type_": "int64"}, "raw"),
        ("checks[1]", "expect_table_row_count_to_be_between", {"min_value": 10, "max_value": 20}, "raw"),
        ("checks[2]", "expect_column_values_to_be_unique", {"column": "id"}, "raw"),
        ("checks[2]", "expect_column_values_to_be_unique", {"column": "email"}, "raw"),
        ("checks[3]", "expect_column_to_exist", {"column": "churned"}, "raw"),
        ("checks[3]", "expect_column_values_to_not_be_null", {"column": "churned"}, "raw"),
        ("checks[3]", "expect_column_values_to_be_in_set", {"column": "churned", "value_set": ["yes", "no"]}, "raw"),
        ("checks[4]", "leakage", {"by": ["id"]}, "test"),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("  - {expect: column_values_to_be_betwen, column: a}\n", "unknown expectation 'column_values_to_be_betwen'"),
        ("  - {expect: column_values_to_be_in_set, column: a}\n", "needs argument 'value_set'"),
        (
            "  - {expect: column_values_to_be_between, column: a, min_vale: 1}\n",
            "has no argument 'min_vale' | did you mean 'min_value'?",
        ),
        ("  - {expect: column_values_to_be_between, column: a, sevrity: warn}\n", "did you mean 'severity'?"),
        ("  - {expect: column_values_to_be_in_set, column: a, value_set: yes}\n", "must be a list or null (got 'yes')"),
        (
            "  - {expect: column_values_to_be_between, column: 3}\n",
            "argument 'column' of 'column_values_to_be_between' must be a string",
        ),
        ("  - {expect: column_values_to_not_be_outliers, column: a, method: median}\n", "must be one of 'iqr', 'std'"),
        ("  - {expect: table_row_count_to_be_between, min_value: 1, mostly: 0.5}\n", "takes no 'mostly'"),
        ("  - {expect: column_values_to_match_like_pattern, column: a, like_pattern: 'x%'}\n", "needs a SQL data source"),
        ("  - {expect: column_values_to_not_be_null, column: a, severity: fatal}\n", "Input should be 'error' or 'warn'"),
        (
            "  - {expect: column_values_to_not_be_null, column: a, on: validation}\n",
            "Input should be 'raw', 'train', 'test' or 'all'",
        ),
        ("  - {expect: column_values_to_not_be_null, column: a, rows: {min: 1}}\n", "exactly one of expect, suite"),
        ("  - {rows: {min: 5, max: 1}}\n", "rows.min (5) is above rows.max (1)"),
        ("  - {rows: {}}\n", "a rows check needs min or max"),
        ("  - {unique: id, column: x}\n", "unknown key 'column' in a 'unique' check"),
        ("  - {leakage: id, on: train}\n", "always compares train with test"),
        ("  - {schema: {colums: {a: int64}}}\n", "colums"),
    ],
)
def test_bad_entries_are_spec_errors(text: str, fragment: str) -> None:
    found = issues("checks:\n" + text)
    assert any(fragment in issue for issue in found), found
    assert all(":checks[0]" in issue for issue in found), found  # located at the entry (line 6)
    assert all(issue.startswith("6:") for issue in found), found


def _suite(path: Path, expectations: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"name": "s", "expectations": expectations, "meta": {}}))


def test_suite_file_is_checked_at_validate_time(tmp_path: Path) -> None:
    _suite(
        tmp_path / "ok.json", [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "severity": "warning"}]
    )
    spec = load("checks:\n  - suite: ok.json\n", tmp_path)
    (planned,) = expand(spec.checks, target="y", spec_dir=str(tmp_path))
    assert (planned.expectation, planned.severity, planned.source) == (
        "expect_column_values_to_not_be_null",
        "warn",
        "checks[0] ok.json#0",
    )

    _suite(tmp_path / "bad.json", [{"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "a", "valueset": [1]}}])
    found = issues("checks:\n  - suite: bad.json\n", tmp_path)
    assert any("suite bad.json: expectations[0]" in i and "needs argument 'value_set'" in i for i in found), found
    assert any("has no argument 'valueset'" in i and "did you mean 'value_set'?" in i for i in found), found

    found = issues("checks:\n  - suite: missing.json\n", tmp_path)
    assert any("6:checks[0].suite: suite file not found: missing.json" in i for i in found), found
    (tmp_path / "junk.json").write_text("{not json")
    assert any("is not JSON" in i for i in issues("checks:\n  - suite: junk.json\n", tmp_path))


def test_suite_content_is_part_of_the_cache_key(tmp_path: Path) -> None:
    _suite(tmp_path / "s.json", [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}])
    ctx = StepContext(
        step="checks", run_id="r", spec_name="t", spec_hash="h", spec_dir=str(tmp_path), store=None, registry=None, logger=None
    )  # type: ignore[arg-type]
    with_suite = ChecksParams.model_validate({"expectations": [{"suite": "s.json"}]})
    kind = Checks()
    before = kind.fingerprint(ctx, with_suite)
    assert before is not None and before == kind.fingerprint(ctx, with_suite)
    _suite(tmp_path / "s.json", [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}}])
    assert kind.fingerprint(ctx, with_suite) not in {None, before}
    assert kind.fingerprint(ctx, ChecksParams()) is None


def test_plan_params_round_trip() -> None:
    spec = load("checks:\n  - schema: {columns: [a, b]}\n  - {expect: column_values_to_be_between, column: a, min_value: 1}\n")
    import mlflowkit

    step = mlflowkit.compile(spec).step("checks")
    assert step.params["expectations"] == [
        {"schema": {"columns": ["a", "b"], "exact": False}},
        {"expect": "column_values_to_be_between", "column": "a", "min_value": 1},
    ]
    again = ChecksParams.model_validate(step.params)  # what the runner does with the plan's params
    assert again.expectations[0].schema_ is not None and again.expectations[0].schema_.columns == ["a", "b"]
    assert again.expectations[1].arguments == {"column": "a", "min_value": 1}


def test_validate_with_checks_does_not_import_great_expectations(tmp_path: Path) -> None:
    _suite(tmp_path / "s.json", [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}])
    (tmp_path / "d.csv").write_text("a,churned\n1,yes\n2,no\n")
    (tmp_path / "spec.yaml").write_text(
        BASE + "checks:\n  - suite: s.json\n  - {expect: column_values_to_be_unique, column: a}\n"
    )
    script = (
        "import sys, mlflowkit\n"
        "spec = mlflowkit.load_spec('spec.yaml')\n"
        "mlflowkit.compile(spec)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'great_expectations', 'pandas', 'prefect'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
