"""A deployment on a Prefect work pool, run by a worker: a real `prefect server start`, a real `prefect worker start`.

The worker is its own process (as it would be on another host): it polls the server, picks up the flow
run that the test asks for, and runs the spec in a subprocess of its own. Nothing is served in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

POOL = "mlflowkit-test-pool"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the way a user stops a server or a worker: Ctrl-C
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _client_env(api: str, home: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"  # poll often: the test waits for the pick-up
    return env


def test_a_worker_on_a_process_pool_runs_the_deployment(prefect_server: str, churn_project: Path, tmp_path: Path) -> None:
    home = tmp_path / "client-home"
    home.mkdir()
    env = _client_env(prefect_server, home)
    cli = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]

    made = subprocess.run(
        [sys.executable, "-m", "prefect", "work-pool", "create", POOL, "--type", "process"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    deployed = subprocess.run(
        [*cli, "flows", "deploy", str(churn_project), "--work-pool", POOL],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    found = httpx.post(f"{prefect_server}/deployments/filter", json={"limit": 10}, timeout=10).json()
    assert len(found) == 1 and found[0]["work_pool_name"] == POOL
    deployment = found[0]

    # The worker: its own process and working folder, as on another host that sees the same spec path.
    work = tmp_path / "worker"
    work.mkdir()
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process", "--name", "w1"],
            env={**env, "PREFECT_LOGGING_LEVEL": "INFO"}, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        run = httpx.post(f"{prefect_server}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=10).json()
        deadline = time.monotonic() + 300
        while True:
            state = httpx.get(f"{prefect_server}/flow_runs/{run['id']}", timeout=10).json()
            if state["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"flow run still {state['state_type']}:\n" + log_path.read_text()[-3000:]
            time.sleep(1)
    finally:
        _stop(worker)

    assert state["state_type"] == "COMPLETED", log_path.read_text()[-3000:]
    assert state["work_pool_name"] == POOL
    assert state["parameters"] == {"n_estimators": 150, "max_depth": 10, "min_accuracy": 0.7}
    workers = httpx.post(f"{prefect_server}/work_pools/{POOL}/workers/filter", json={}, timeout=10).json()
    assert [w["name"] for w in workers] == ["w1"]
    assert run["id"] in log_path.read_text()  # this worker, not some other process, picked it up
    # The run did its work where the spec says: the model is registered in the spec's store.
    from mlflowkit.store import ModelRegistry

    assert [v.version for v in ModelRegistry(churn_project / ".mlflowkit" / "registry").versions("churn")] == [1]
