"""Runs on mlflowkit's local Prefect server (started once per session): tasks per step, cache, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlflowkit
from mlflowkit.errors import GateFailed
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.runtime.flow import prefect_settings
from mlflowkit.store import ModelRegistry

pytestmark = [pytest.mark.prefect]


def _run(project: Path, *overrides: str, **kw: object) -> RunResult:
    spec = mlflowkit.load_spec(project / "spec.yaml", overrides=list(overrides))
    return run_spec(spec, mlflowkit.compile(spec), **kw)  # type: ignore[arg-type,return-value]


def _registry(project: Path) -> ModelRegistry:
    return ModelRegistry(project / ".mlflowkit" / "registry")


def test_flow_has_one_task_per_step_and_registers(churn_project: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    result = _run(churn_project)
    assert result.ok, result.error
    assert result.orchestrated and result.flow_run_id
    assert [s.status for s in result.steps] == ["ran"] * 11

    with prefect_settings(), get_client(sync_client=True) as client:  # the local server the run used
        flow_run = client.read_flow_run(result.flow_run_id)
        assert flow_run.state and flow_run.state.is_completed()
        assert flow_run.parameters == {"n_estimators": 150, "max_depth": 10, "min_accuracy": 0.7}
        # limit and sort are explicit: prefect 3.8.8's sync client sends null for them otherwise (HTTP 422)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            limit=50,
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    assert sorted(t.name for t in task_runs) == sorted(s.name for s in result.steps)
    assert all(t.state and t.state.is_completed() for t in task_runs)

    version = _registry(churn_project).get("churn", "champion")
    assert version.version == 1
    lineage = version.lineage
    assert lineage["run_id"] == result.run_id
    assert lineage["spec_hash"] == result.spec_hash
    assert lineage["data_fingerprint"]["rows"] == 6000
    assert len(lineage["data_fingerprint"]["content_hash"]) == 64
    assert lineage["metrics"]["accuracy"] > 0.7
    assert lineage["verdict"]["passed"] is True
    assert {"model.skops", "model.onnx", "contract.json"} <= set(version.files)

    record = json.loads((churn_project / ".mlflowkit" / "runs" / f"{result.run_id}.json").read_text())
    assert record["status"] == "completed"
    assert [s["name"] for s in record["steps"]] == [s.name for s in result.steps]

    # Unchanged spec, unchanged data: nothing runs, and no orchestrator is started for nothing.
    again = _run(churn_project)
    assert again.ok and not again.orchestrated
    assert [s.status for s in again.steps] == ["cached"] * 11
    assert len(_registry(churn_project).versions("churn")) == 1

    # A changed param reruns train and what follows it, not the data steps.
    changed = _run(churn_project, "params.n_estimators=20")
    statuses = {s.name: s.status for s in changed.steps}
    assert statuses == {
        "load": "cached",
        "add_features": "cached",
        "split": "cached",
        "checks": "cached",
        "train": "ran",
        "evaluate": "ran",
        "gates": "ran",
        "export": "ran",
        "profile": "ran",
        "register": "ran",
        "deploy": "ran",
    }
    registry = _registry(churn_project)
    assert registry.aliases("churn") == {"champion": 2, "previous": 1}
    assert registry.get("churn", 2).lineage["run_params"]["n_estimators"] == 20


def _flaky_step(project: Path, name: str, error: str, retries: int, after: str) -> Path:
    """A custom step ``name`` that fails on its first call with ``error`` and works on the second; its call counter."""
    counter = project / f"{name}.calls"
    (project / f"{name}.py").write_text(
        "import pathlib\n\n"
        f"COUNTER = pathlib.Path({str(counter)!r})\n\n"
        "def step(df):\n"
        "    calls = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1\n"
        "    COUNTER.write_text(str(calls))\n"
        "    if calls == 1:\n"
        f"        {error}\n"
        "    return df\n"
    )
    spec = project / "spec.yaml"
    spec.write_text(
        spec.read_text().replace(
            "steps:\n", f"steps:\n  - name: {name}\n    uses: {name}:step\n    after: {after}\n    retries: {retries}\n"
        )
    )
    return counter


def test_prefect_retries_an_unexpected_error_and_not_a_refusal(churn_project: Path) -> None:
    """A passing error is retried within the step's budget; a step that refused its input (a StepFailed) would
    refuse it again: no retry, whatever the budget. (Which errors are retryable: tests/unit/runtime/test_runner.py.)"""
    hiccup = _flaky_step(churn_project, "flaky", "raise ConnectionError('store hiccup')", retries=1, after="load")
    refusal = _flaky_step(
        churn_project, "strict", "raise __import__('mlflowkit').StepFailed('strict', 'bad rows')", retries=3, after="flaky"
    )
    result = _run(churn_project)
    assert not result.ok and "bad rows" in str(result.exception)
    statuses = {s.name: s.status for s in result.steps}
    assert (statuses["flaky"], statuses["strict"], statuses["train"]) == ("ran", "failed", "skipped")
    assert (hiccup.read_text(), refusal.read_text()) == ("2", "1")


def test_step_reports_become_prefect_artifacts_and_stay_with_the_run(churn_project: Path) -> None:
    from prefect.client.orchestration import get_client

    result = _run(churn_project, "params.min_accuracy=0.99")
    assert not result.ok and result.flow_run_id
    # A failing gate stops the flow before register; the verdict is in the record. (Gate semantics: unit tests.)
    assert isinstance(result.exception, GateFailed) and "accuracy >= 0.99" in str(result.exception)
    statuses = {s.name: s.status for s in result.steps}
    assert statuses["gates"] == "failed" and statuses["register"] == "skipped"
    assert result.verdict is not None and [r.rule for r in result.verdict.failed()] == ["accuracy >= 0.99"]
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()
    with prefect_settings(), get_client(sync_client=True) as client:  # the local server the run used
        # Raw request: prefect 3.8.8's read_artifacts sends nulls this server version refuses (HTTP 422).
        body = {"artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}, "limit": 20, "offset": 0, "sort": "KEY_ASC"}
        artifacts = client.request("POST", "/artifacts/filter", json=body).json()  # type: ignore[arg-type]
    tables = [a for a in artifacts if a["type"] == "table" and a["key"] == "churn-classifier-gates-verdict"]
    assert {"churn-classifier-checks-results", "churn-classifier-gates-verdict"} <= {a["key"] for a in artifacts}
    rows = json.loads(tables[0]["data"]) if isinstance(tables[0]["data"], str) else tables[0]["data"]
    assert {r["rule"]: r["result"] for r in rows}["accuracy >= 0.99"] == "FAIL"
    stored = churn_project / ".mlflowkit" / "reports" / result.run_id / "gates-verdict.json"
    assert json.loads(stored.read_text())["title"] == "gate verdict: FAIL"
