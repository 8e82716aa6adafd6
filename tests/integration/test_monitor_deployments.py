"""Monitoring through Prefect deployments, on a real `prefect server start` with a `mlflowkit flows serve` process.

`monitor.schedule` becomes its own deployment (`<spec>-monitor/monitor`); a drift check that finds
drift starts the spec's training deployment, and the run it starts records the check in the new
version's lineage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from flows_helpers import churn_rows, flows_serve

from mlflowkit.store import registry_at

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

SPEC = """\
spec: mlflowkit/v1
name: churn-watched
recipe: tabular-classification
data:
  source: data/train.csv
  target: churned
train:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {n_estimators: 30, max_depth: 8, random_state: 0, n_jobs: 1}
evaluate:
  metrics: [accuracy]
gates:
  - accuracy >= 0.6
register:
  model: churn-watched
monitor:
  data: live.csv
  min_rows: 100
  schedule: {interval: 1h, timezone: Europe/Berlin}
"""


def _cli(*args: str, api: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"} | {"PREFECT_API_URL": api, "COLUMNS": "200"}
    cmd = [sys.executable, "-c", "from mlflowkit.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _wait(api: str, flow_run_id: str, log: Path, proc: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=10).json()
        if state["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return state  # type: ignore[no-any-return]
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} did not finish: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Path:
    root = tmp_path_factory.mktemp("watched")
    (root / "data").mkdir()
    churn_rows(2000, seed=7).to_csv(root / "data" / "train.csv", index=False)
    (root / "spec.yaml").write_text(SPEC)
    trained = _cli("run", "spec.yaml", api=prefect_server, cwd=root)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return root


@pytest.fixture(scope="module")
def serving(project: Path, prefect_server: str) -> Iterator[subprocess.Popen[str]]:
    registered = _cli("flows", "deploy", str(project), api=prefect_server, cwd=project)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    with flows_serve(project, prefect_server) as proc:
        yield proc


def test_monitor_schedule_is_a_deployment_of_its_own(project: Path, prefect_server: str, serving: subprocess.Popen[str]) -> None:
    deployment = httpx.get(f"{prefect_server}/deployments/name/churn-watched-monitor/monitor", timeout=10).json()
    assert "monitor" in deployment["tags"] and "spec:churn-watched" in deployment["tags"]
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["interval"] == 3600 and schedule["schedule"]["timezone"] == "Europe/Berlin"
    # The scheduled check, started now through the API on unshifted data: it runs in the serve process.
    churn_rows(600, seed=99).drop(columns=["churned"]).to_csv(project / "steady.csv", index=False)
    for _ in range(20):  # the serve process registers the deployments again as it starts; SQLite may be busy
        response = httpx.post(
            f"{prefect_server}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"data": str(project / "steady.csv")}},
            timeout=10,
        )
        if response.status_code == 201:
            break
        time.sleep(1)
    assert response.status_code == 201, response.text
    run = response.json()
    state = _wait(prefect_server, run["id"], project / "serve.log", serving)
    assert state["state_type"] == "COMPLETED", (project / "serve.log").read_text()[-3000:]
    checks = sorted((project / ".mlflowkit" / "monitoring" / "churn-watched").glob("*/drift.json"))
    assert [json.loads(c.read_text())["verdict"] for c in checks] == ["ok"]
    assert [v.version for v in registry_at(str(project / ".mlflowkit")).versions("churn-watched")] == [1]


def test_drift_starts_the_training_deployment(project: Path, prefect_server: str, serving: subprocess.Popen[str]) -> None:
    live = churn_rows(800, seed=123)
    live["monthly_charges"] += 30
    live.drop(columns=["churned"]).to_csv(project / "live.csv", index=False)
    fresh = pd.concat([pd.read_csv(project / "data" / "train.csv"), live], ignore_index=True)
    fresh.to_csv(project / "data" / "train.csv", index=False)  # the data pipeline brought labelled rows

    checked = _cli("monitor", "spec.yaml", api=prefect_server, cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "verdict: drift" in checked.stdout
    assert "retraining triggered: deployment churn-watched/lifecycle" in checked.stdout
    (trigger_file,) = list((project / ".mlflowkit" / "monitoring" / "churn-watched").glob("*/trigger.json"))
    trigger = json.loads(trigger_file.read_text())
    assert trigger["via"] == "deployment" and trigger["version"] == 1

    state = _wait(prefect_server, trigger["flow_run_id"], project / "serve.log", serving)
    assert state["state_type"] == "COMPLETED", (project / "serve.log").read_text()[-3000:]
    assert f"drift-check:{trigger['check_id']}" in state["tags"]
    versions = registry_at(str(project / ".mlflowkit")).versions("churn-watched")
    assert [v.version for v in versions] == [1, 2]
    lineage = versions[-1].lineage["trigger"]
    assert lineage["by"] == "monitor" and lineage["check_id"] == trigger["check_id"]
    assert lineage["deployment"] == "churn-watched/lifecycle"
