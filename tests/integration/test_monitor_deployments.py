"""Monitoring through Prefect deployments, on a real `prefect server start` with a `mlflowkit flows serve` process.

`monitor.schedule` becomes its own deployment (`<spec>-monitor/monitor`); a drift check that finds
drift starts the spec's training deployment, and the run it starts records the check in the new
version's lineage.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlflowkit.store import registry_at

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
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


def _make(rows: int, seed: int) -> pd.DataFrame:
    spec = importlib.util.spec_from_file_location("churn_make_data", REPO / "examples" / "churn" / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(rows, seed=seed).drop(columns=["customer_id"])


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
    _make(2000, seed=7).to_csv(root / "data" / "train.csv", index=False)
    (root / "spec.yaml").write_text(SPEC)
    trained = _cli("run", "spec.yaml", api=prefect_server, cwd=root)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return root


@pytest.fixture(scope="module")
def serving(project: Path, prefect_server: str) -> Iterator[subprocess.Popen[str]]:
    registered = _cli("flows", "deploy", str(project), api=prefect_server, cwd=project)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"} | {"PREFECT_API_URL": prefect_server}
    log = open(project / "serve.log", "w")  # closed in the teardown below
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mlflowkit.cli import main; main()", "flows", "serve", str(project)],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_monitor_schedule_is_a_deployment_of_its_own(project: Path, prefect_server: str, serving: subprocess.Popen[str]) -> None:
    deployment = httpx.get(f"{prefect_server}/deployments/name/churn-watched-monitor/monitor", timeout=10).json()
    assert "monitor" in deployment["tags"] and "spec:churn-watched" in deployment["tags"]
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["interval"] == 3600 and schedule["schedule"]["timezone"] == "Europe/Berlin"
    # The scheduled check, started now through the API on unshifted data: it runs in the serve process.
    _make(600, seed=99).drop(columns=["churned"]).to_csv(project / "steady.csv", index=False)
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
    live = _make(800, seed=123)
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
