"""The reference example through the real CLI, as a user runs it: the local Prefect server, cache, resume, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_server import flow_run, untouched_state  # tests/helpers, on sys.path through conftest

pytestmark = [pytest.mark.prefect]

CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]


def cli(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}  # the default: the local server's
    base["COLUMNS"] = "200"
    return subprocess.run(
        [*CLI, *args], cwd=project, capture_output=True, text=True, timeout=timeout, check=False, env={**base, **(env or {})}
    )


def test_run_twice_second_is_all_cache_hits(churn_project: Path) -> None:
    start = time.perf_counter()
    first = cli(churn_project, "run", "spec.yaml")
    cold = time.perf_counter() - start
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Prefect flow run" in first.stdout
    # The run is a flow run of the local Prefect server, and it completed there.
    record = json.loads(next((churn_project / ".mlflowkit" / "runs").glob("*.json")).read_text())
    assert flow_run(record["flow_run_id"])["state_type"] == "COMPLETED"

    start = time.perf_counter()
    second = cli(churn_project, "run", "spec.yaml")
    cached = time.perf_counter() - start
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("cached") >= 7
    assert "all steps cached" in second.stdout
    assert cached <= 0.2 * cold, f"cached rerun took {cached:.2f}s, cold run {cold:.2f}s"

    shown = cli(churn_project, "models", "show", "churn", "champion", "--spec", "spec.yaml")
    assert shown.returncode == 0
    assert "churn v1" in shown.stdout and "champion" in shown.stdout
    runs = cli(churn_project, "runs", "list", "--spec", "spec.yaml")
    assert runs.stdout.count("completed") == 2


def test_bad_param_override_exits_2_and_writes_nothing(churn_project: Path) -> None:
    result = cli(churn_project, "run", "spec.yaml", "--set", "params.n_estimatorz=5")
    assert result.returncode == 2
    assert "<--set>" in result.stderr and "did you mean 'n_estimators'?" in result.stderr
    assert untouched_state(churn_project)


@pytest.mark.slow
def test_failing_gate_exits_1_with_the_verdict(churn_project: Path) -> None:
    result = cli(churn_project, "run", "spec.yaml", "--set", "params.min_accuracy=0.99")
    assert result.returncode == 1
    assert "gate verdict: FAIL" in result.stdout
    assert "accuracy >= 0.99" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()


@pytest.mark.slow
def test_killed_run_resumes_from_what_it_finished(churn_project: Path) -> None:
    """SIGKILL the CLI mid-run; the next run takes what finished (load, split) from the cache and completes."""
    marker = churn_project / "pause-started"
    (churn_project / "slow_train.py").write_text(
        f"import pathlib, time\n\ndef pause(df):\n    pathlib.Path({str(marker)!r}).touch()\n    time.sleep(120)\n    return df\n"
    )
    spec = churn_project / "spec.yaml"
    spec.write_text(
        spec.read_text().replace(
            "steps:\n", "steps:\n  - name: pause\n    uses: slow_train:pause\n    after: split\n    cache: false\n"
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    proc = subprocess.Popen(
        [*CLI, "run", "spec.yaml"], cwd=churn_project, stdout=subprocess.DEVNULL, env=env, start_new_session=True
    )
    deadline = time.time() + 240
    while not marker.exists():  # the step after split has started: load and split are finished
        assert proc.poll() is None, "the run ended before the pause step started"
        assert time.time() < deadline, "the pause step never started"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    (churn_project / "slow_train.py").write_text("def pause(df):\n    return df\n")
    resumed = cli(churn_project, "run", "spec.yaml")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    record = json.loads(sorted((churn_project / ".mlflowkit" / "runs").glob("*.json"))[-1].read_text())
    statuses = {s["name"]: s["status"] for s in record["steps"]}
    assert statuses["load"] == "cached" and statuses["split"] == "cached"
    assert statuses["pause"] == "ran" and statuses["train"] == "ran" and statuses["register"] == "ran"
