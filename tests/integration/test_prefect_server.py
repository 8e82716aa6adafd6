"""With PREFECT_API_URL set, a run reports to that server: a real `prefect server start` on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `prefect server start` on a free loopback port; stop it after the module."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")  # closed in the teardown below
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (home / "server.log").read_text()[-2000:]
            assert time.time() < deadline, "prefect server did not come up in 120 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_run_reports_to_the_configured_server(churn_project: Path, prefect_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    env["PREFECT_API_URL"] = prefect_server
    cmd = [sys.executable, "-c", "from mlflowkit.cli import main; main()", "run", "spec.yaml"]
    first = subprocess.run(cmd, cwd=churn_project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr

    flows = httpx.post(f"{prefect_server}/flow_runs/filter", json={"limit": 10}, timeout=10).json()
    assert [f["parameters"] for f in flows] == [{"n_estimators": 150, "max_depth": 10, "min_accuracy": 0.7}]
    assert flows[0]["state_type"] == "COMPLETED"
    tasks = httpx.post(f"{prefect_server}/task_runs/filter", json={"limit": 50}, timeout=10).json()
    assert sorted(t["name"] for t in tasks) == sorted(["load", "split", "checks", "add_features", "train", "evaluate", "gates", "export", "register", "deploy"])
    # No embedded API was used: nothing under the state dir's prefect home.
    assert not (churn_project / ".mlflowkit" / "prefect").exists()

    # With a real server, even a fully cached run is recorded there (it costs no start-up).
    second = subprocess.run(cmd, cwd=churn_project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0
    assert second.stdout.count("cached") >= 7
    assert len(httpx.post(f"{prefect_server}/flow_runs/filter", json={"limit": 10}, timeout=10).json()) == 2
