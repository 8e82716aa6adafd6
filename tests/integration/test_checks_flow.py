"""Data checks in a run of the reference example: bad data stops the flow before training; warnings do not.

Two runs go through the local Prefect server (and one through the CLI); the injected faults
run the same steps without the orchestrator (``orchestrate=False``), which is the kind's behaviour
under the same runner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import mlflowkit
from mlflowkit.errors import StepFailed
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.runtime.flow import prefect_settings

AFTER_CHECKS = ("add_features", "train", "evaluate", "gates", "register")


def _run(project: Path, *, orchestrate: bool | None = None) -> RunResult:
    # The data changes after the spec was validated (as new data does): the checks step is what sees it.
    spec = mlflowkit.load_spec(project / "spec.yaml", read_data=False)
    return run_spec(spec, mlflowkit.compile(spec), orchestrate=orchestrate)


def _edit_csv(project: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    csv = project / "data" / "churn.csv"
    change(pd.read_csv(csv)).to_csv(csv, index=False)


def _assert_stopped_before_training(project: Path, result: RunResult, failed_step: str = "checks") -> str:
    assert not result.ok
    statuses = {s.name: s.status for s in result.steps}
    assert statuses[failed_step] == "failed", statuses
    assert all(statuses[name] == "skipped" for name in AFTER_CHECKS), statuses
    assert not (project / ".mlflowkit" / "registry" / "churn").exists()
    assert isinstance(result.exception, StepFailed) and result.exception.step == failed_step
    return str(result.exception)


def _with(**columns: Callable[[pd.DataFrame], object]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(**{name: fn(df) for name, fn in columns.items()})

    return change


def _nulls(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[10, 20, 30], "customer_id"] = None
    return df


def _old_ages(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[df.index[:120], "age"] = 150  # 2% of 6000 rows: more than mostly 0.99 allows
    return df


def _wrong_class(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[df.index[:10], "churned"] = "maybe"
    return df


def _duplicate_ids(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[df.index[1:6], "customer_id"] = df.loc[df.index[0], "customer_id"]
    return df


FAULTS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "nulls": (_nulls, ["column_values_to_not_be_null(column=customer_id)", "3 of 6000 values unexpected (0.05%)"]),
    "out_of_range": (
        _old_ages,
        [
            "column_values_to_be_between(column=age, min_value=18, max_value=120, mostly=0.99)",
            "120 of 6000 values unexpected (2.00%), e.g. [150, 150",
        ],
    ),
    "dropped_column": (
        lambda df: df.drop(columns=["tenure_months"]),
        [
            "table_columns_to_match_set(",
            "(missing ['tenure_months'])",
            "column_values_to_be_of_type(column=tenure_months, type_=int64) on raw [checks[0]]: raised:",
        ],
    ),
    "dtype_change": (
        _with(monthly_charges=lambda df: df["monthly_charges"].map("${:.2f}".format)),
        ["column_values_to_be_of_type(column=monthly_charges, type_=float64) on raw [checks[0]]: observed str"],
    ),
    "wrong_target_class": (
        _wrong_class,
        [
            "column_values_to_be_in_set(column=churned, value_set=['yes', 'no']) on raw [checks[2]]: 10 of 6000 values unexpected",
            "e.g. ['maybe'",
        ],
    ),
    "duplicated_ids": (
        _duplicate_ids,
        ["column_values_to_be_unique(column=customer_id) on raw [checks[3]]: 6 of 6000 values unexpected"],
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_bad_data_stops_the_run_before_training(churn_project: Path, fault: str) -> None:
    change, fragments = FAULTS[fault]
    _edit_csv(churn_project, change)
    message = _assert_stopped_before_training(churn_project, _run(churn_project, orchestrate=False))
    for fragment in fragments:
        assert fragment in message, message


def test_empty_file_stops_the_run_before_training(churn_project: Path) -> None:
    _edit_csv(churn_project, lambda df: df.iloc[:0])
    message = _assert_stopped_before_training(churn_project, _run(churn_project, orchestrate=False), failed_step="load")
    assert "has no rows" in message


@pytest.mark.prefect
def test_failed_checks_fail_the_prefect_flow_and_keep_the_validation(churn_project: Path) -> None:
    _edit_csv(churn_project, _old_ages)
    result = _run(churn_project)
    assert result.orchestrated and result.flow_run_id
    message = _assert_stopped_before_training(churn_project, result)
    assert "120 of 6000 values unexpected" in message

    from prefect.client.orchestration import get_client

    with prefect_settings(), get_client(sync_client=True) as client:  # the local server the run used
        state = client.read_flow_run(result.flow_run_id).state
        # Raw request: prefect 3.8.8's read_artifacts sends nulls this server version refuses (HTTP 422).
        body = {"artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}, "limit": 20, "offset": 0, "sort": "KEY_ASC"}
        artifacts = client.request("POST", "/artifacts/filter", json=body).json()  # type: ignore[arg-type]
    assert state is not None and state.is_failed()
    (table,) = [a for a in artifacts if a["key"] == "churn-classifier-checks-results"]
    assert table["type"] == "table" and "FAIL" in json.dumps(table["data"])
    # The step's report is kept with the run, failed rows marked.
    report = json.loads((churn_project / ".mlflowkit" / "reports" / result.run_id / "checks-results.json").read_text())
    failed = [r for r in report["rows"] if r["result"] == "FAIL"]
    assert [(r["expectation"], r["column"], r["unexpected"]) for r in failed] == [("column_values_to_be_between", "age", "120")]
    assert report["title"].startswith("data checks: FAIL")


@pytest.mark.prefect
def test_cli_exits_1_and_names_the_failed_check(churn_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflowkit.cli import app

    _edit_csv(churn_project, _wrong_class)
    monkeypatch.chdir(churn_project)
    result = CliRunner().invoke(app, ["run", "spec.yaml"])
    assert result.exit_code == 1, result.output
    assert "column_values_to_be_in_set" in result.output and "maybe" in result.output
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()
