"""The checks kind on real Great Expectations, without a flow: verdicts, failures that raised, suites, leakage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlflowkit.kinds._gx_run import failure_message, import_gx, report_rows, run_checks
from mlflowkit.kinds.checks import ChecksParams, expand

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
sys.path.insert(0, str(EXAMPLE))
from make_data import make  # noqa: E402


def plan(*entries: dict[str, Any], spec_dir: str = ".") -> list[Any]:
    return expand(ChecksParams.model_validate({"expectations": list(entries)}), target="churned", spec_dir=spec_dir)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    raw = make(2000)
    return {"raw": raw, "train": raw.iloc[:1600].reset_index(drop=True), "test": raw.iloc[1600:].reset_index(drop=True)}


def test_passing_and_failing_checks_report_observed_values(frames: dict[str, pd.DataFrame]) -> None:
    raw = frames["raw"].copy()
    raw.loc[[3, 7, 11], "age"] = [150, 7, 150]
    outcome = run_checks(
        {"raw": raw},
        plan(
            {"expect": "column_values_to_be_between", "column": "age", "min_value": 18, "max_value": 120},
            {"expect": "column_values_to_be_between", "column": "age", "min_value": 18, "max_value": 120, "mostly": 0.99},
            {"rows": {"min": 10}},
        ),
    )
    strict, lenient, rows = outcome.results
    assert not strict.passed and strict.unexpected_count == 3 and strict.element_count == 2000
    assert sorted(strict.sample) == [7, 150, 150]
    assert lenient.passed  # same expectation, different mostly: GX must not merge the two
    assert rows.passed and rows.observed == 2000
    message = failure_message(outcome.failed)
    assert message.startswith("1 data check failed: column_values_to_be_between(column=age, min_value=18, max_value=120) on raw")
    assert "3 of 2000 values unexpected (0.15%)" in message
    table = report_rows(outcome)
    assert [r["result"] for r in table] == ["FAIL", "pass", "pass"]
    assert table[0]["unexpected"] == "3" and table[0]["column"] == "age" and table[0]["severity"] == "error"
    assert table[2]["observed"] == "2000"
    json.dumps(outcome.to_json())  # the artifact is plain JSON


def test_a_check_that_raised_counts_as_failed(frames: dict[str, pd.DataFrame]) -> None:
    outcome = run_checks(
        {"raw": frames["raw"]},
        plan(
            {"expect": "column_values_to_not_be_null", "column": "no_such_column"},
            {"expect": "column_values_to_be_between", "column": "age"},  # GX refuses: neither min nor max
            {"expect": "column_values_to_not_be_null", "column": "age", "severity": "warn"},
        ),
    )
    missing, no_bounds, fine = outcome.results
    assert not missing.passed and missing.error and "no_such_column" in missing.error
    assert not no_bounds.passed and no_bounds.error
    assert fine.passed
    assert len(outcome.failed) == 2 and not outcome.passed
    assert "raised:" in failure_message([missing])


def test_empty_table_fails_the_row_count_with_observed_zero(frames: dict[str, pd.DataFrame]) -> None:
    empty = frames["raw"].iloc[:0]
    (result,) = run_checks({"raw": empty}, plan({"rows": {"min": 1}})).results
    assert not result.passed and result.observed == 0


def test_schema_catches_a_dropped_column_and_a_dtype_change(frames: dict[str, pd.DataFrame]) -> None:
    raw = (
        frames["raw"].drop(columns=["tenure_months"]).assign(monthly_charges=lambda d: d["monthly_charges"].map("${:.2f}".format))
    )
    outcome = run_checks(
        {"raw": raw}, plan({"schema": {"columns": {"tenure_months": "int64", "monthly_charges": "float64", "age": "int64"}}})
    )
    by_name = {(r.planned.name, r.planned.column): r for r in outcome.results}
    columns = by_name[("table_columns_to_match_set", "tenure_months, monthly_charges, age")]
    assert not columns.passed and columns.details["mismatched"]["missing"] == ["tenure_months"]
    assert not by_name[("column_values_to_be_of_type", "tenure_months")].passed
    dtype = by_name[("column_values_to_be_of_type", "monthly_charges")]
    assert not dtype.passed and dtype.observed == "str"
    assert by_name[("column_values_to_be_of_type", "age")].passed
    assert "missing ['tenure_months']" in failure_message(outcome.failed)


def test_leakage_across_train_and_test(frames: dict[str, pd.DataFrame]) -> None:
    clean = run_checks(frames, plan({"leakage": "customer_id"}))
    assert clean.passed and clean.results[0].observed == 0
    leaky = dict(frames, test=pd.concat([frames["test"], frames["train"].iloc[:4]], ignore_index=True))
    (result,) = run_checks(leaky, plan({"leakage": "customer_id"})).results
    assert not result.passed and result.observed == 4 and result.unexpected_count == 4
    assert result.sample == frames["train"]["customer_id"].iloc[:4].tolist()
    (no_id,) = run_checks(
        dict(frames, test=frames["test"].drop(columns=["customer_id"])), plan({"leakage": "customer_id"})
    ).results
    assert not no_id.passed and "not in test" in (no_id.error or "")


def test_a_suite_written_by_gx_runs_with_its_own_severities(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    gx = import_gx()
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(
        name="churn",
        expectations=[
            gxe.ExpectColumnValuesToBeInSet(column="contract", value_set=["month-to-month", "one-year"], severity="warning"),
            gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
        ],
    )
    (tmp_path / "suite.json").write_text(json.dumps(suite.to_json_dict()))
    outcome = run_checks(frames, plan({"suite": "suite.json", "on": "train"}, spec_dir=str(tmp_path)))
    contract, ids = outcome.results
    assert (contract.planned.table, contract.planned.severity, contract.passed) == ("train", "warn", False)
    assert "two-year" in contract.sample
    assert ids.passed and outcome.passed and outcome.warned == [contract]
