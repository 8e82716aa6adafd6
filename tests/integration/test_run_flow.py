"""Runs on a real Prefect ephemeral API (started once per session): tasks per step, cache, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlflowkit
from mlflowkit.errors import GateFailed, StepFailed
from mlflowkit.runtime.engine import RunResult, run_spec, store_root
from mlflowkit.store import ModelRegistry

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


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

    with get_client(sync_client=True) as client:
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
    assert {"model.joblib", "model.onnx", "contract.json"} <= set(version.files)

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


def test_changed_data_reruns_from_load(churn_project: Path) -> None:
    assert _run(churn_project).ok
    csv = churn_project / "data" / "churn.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:-10]))  # drop ten rows
    result = _run(churn_project)
    # Every step reads the new data; whether the champion-relative gate passes depends on the data.
    assert [s.status for s in result.steps][:5] == ["ran"] * 5
    assert result.steps[0].outputs["dataset"]["meta"]["rows"] == 5990


def test_from_step_reruns_it_and_everything_after(churn_project: Path) -> None:
    assert _run(churn_project).ok
    result = _run(churn_project, from_step="evaluate")
    assert result.orchestrated
    assert {s.name: s.status for s in result.steps} == {
        "load": "cached",
        "add_features": "cached",
        "split": "cached",
        "checks": "cached",
        "train": "cached",
        "evaluate": "ran",
        "gates": "ran",
        "export": "cached",
        "profile": "cached",
        "register": "ran",
        "deploy": "ran",
    }


def test_failing_gate_stops_before_register(churn_project: Path) -> None:
    result = _run(churn_project, "params.min_accuracy=0.99")
    assert not result.ok
    assert isinstance(result.exception, GateFailed)
    assert "accuracy >= 0.99" in str(result.exception)
    statuses = {s.name: s.status for s in result.steps}
    assert statuses["gates"] == "failed" and statuses["register"] == "skipped"
    assert result.verdict is not None and result.verdict["passed"] is False
    failed = [r for r in result.verdict["rules"] if not r["passed"]]
    assert [r["rule"] for r in failed] == ["accuracy >= 0.99"]
    assert failed[0]["threshold"] == 0.99 and 0.5 < failed[0]["value"] < 0.99
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()


def test_failing_custom_step_names_step_and_cause(churn_project: Path) -> None:
    (churn_project / "churn_steps.py").write_text(
        "def add_features(df, cap=1):\n    raise ValueError('column monthly_charges is corrupt')\n"
    )
    result = _run(churn_project)
    assert not result.ok
    assert isinstance(result.exception, StepFailed)
    assert result.exception.step == "add_features"
    assert "ValueError: column monthly_charges is corrupt" in str(result.exception)
    statuses = {s.name: s.status for s in result.steps}
    assert statuses["load"] == "ran" and statuses["add_features"] == "failed"
    assert all(statuses[n] == "skipped" for n in ("train", "evaluate", "gates", "register"))


def test_missing_data_file_fails_clearly(churn_project: Path) -> None:
    (churn_project / "data" / "churn.csv").unlink()
    result = _run(churn_project)
    assert not result.ok
    assert "data source not found: data/churn.csv" in str(result.exception)


def test_store_can_live_elsewhere(churn_project: Path, tmp_path: Path) -> None:
    store = tmp_path / "shared-store"
    result = _run(churn_project, store=str(store))
    assert result.ok
    assert ModelRegistry(store / "registry").get("churn", "champion").version == 1
    assert not (churn_project / ".mlflowkit" / "registry").exists()
    spec = mlflowkit.load_spec(churn_project / "spec.yaml")
    assert store_root(spec, str(store)) == str(store)


def _flaky_project(project: Path, error: str, retries: int) -> Path:
    """A custom step that fails on its first call with ``error`` and works on the second."""
    counter = project / "calls"
    (project / "flaky.py").write_text(
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
            "steps:\n", f"steps:\n  - name: flaky\n    uses: flaky:step\n    after: load\n    retries: {retries}\n"
        )
    )
    return counter


def test_unexpected_error_is_retried_within_budget(churn_project: Path) -> None:
    counter = _flaky_project(churn_project, "raise ConnectionError('store hiccup')", retries=1)
    result = _run(churn_project)
    assert result.ok, result.error
    assert counter.read_text() == "2"


def test_without_budget_the_step_fails_with_the_cause(churn_project: Path) -> None:
    counter = _flaky_project(churn_project, "raise ConnectionError('store hiccup')", retries=0)
    result = _run(churn_project)
    assert not result.ok
    assert "ConnectionError: store hiccup" in str(result.exception)
    assert counter.read_text() == "1"


def test_expected_failure_is_not_retried(churn_project: Path) -> None:
    """A step that refused its input (a StepFailed) would refuse it again: no retry, whatever the budget."""
    counter = _flaky_project(churn_project, "raise __import__('mlflowkit').StepFailed('flaky', 'bad rows')", retries=3)
    result = _run(churn_project)
    assert not result.ok
    assert "bad rows" in str(result.exception)
    assert counter.read_text() == "1"


def test_step_reports_become_prefect_artifacts_and_stay_with_the_run(churn_project: Path) -> None:
    from prefect.client.orchestration import get_client

    result = _run(churn_project, "params.min_accuracy=0.99")
    assert not result.ok and result.flow_run_id
    with get_client(sync_client=True) as client:
        # Raw request: prefect 3.8.8's read_artifacts sends nulls this server version refuses (HTTP 422).
        body = {"artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}, "limit": 20, "offset": 0, "sort": "KEY_ASC"}
        artifacts = client.request("POST", "/artifacts/filter", json=body).json()  # type: ignore[arg-type]
    tables = [a for a in artifacts if a["type"] == "table" and a["key"] == "churn-classifier-gates-verdict"]
    assert {"churn-classifier-checks-results", "churn-classifier-gates-verdict"} <= {a["key"] for a in artifacts}
    rows = json.loads(tables[0]["data"]) if isinstance(tables[0]["data"], str) else tables[0]["data"]
    assert {r["rule"]: r["result"] for r in rows}["accuracy >= 0.99"] == "FAIL"
    stored = churn_project / ".mlflowkit" / "reports" / result.run_id / "gates-verdict.json"
    assert json.loads(stored.read_text())["title"] == "gate verdict: FAIL"
