"""With PREFECT_API_URL set, a run reports to that server: a real `prefect server start` on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def test_run_reports_to_the_configured_server(churn_project: Path, prefect_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    env["PREFECT_API_URL"] = prefect_server
    env["MLFLOWKIT_HOME"] = str(tmp_path / "home")  # where a local server would keep its state
    cmd = [sys.executable, "-c", "from mlflowkit.cli import main; main()", "run", "spec.yaml"]
    first = subprocess.run(cmd, cwd=churn_project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr

    flows = httpx.post(f"{prefect_server}/flow_runs/filter", json={"limit": 10}, timeout=10).json()
    assert [f["parameters"] for f in flows] == [{"n_estimators": 150, "max_depth": 10, "min_accuracy": 0.7}]
    assert flows[0]["state_type"] == "COMPLETED"
    tasks = httpx.post(f"{prefect_server}/task_runs/filter", json={"limit": 50}, timeout=10).json()
    assert sorted(t["name"] for t in tasks) == sorted(["load", "split", "checks", "add_features", "train", "evaluate", "gates", "export", "profile", "register", "deploy"])
    # The user's server takes precedence: no local server was started.
    assert not (tmp_path / "home" / "server.json").exists()

    # With a real server, even a fully cached run is recorded there (it costs no start-up).
    second = subprocess.run(cmd, cwd=churn_project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0
    assert second.stdout.count("cached") >= 7
    assert len(httpx.post(f"{prefect_server}/flow_runs/filter", json={"limit": 10}, timeout=10).json()) == 2
