"""A tracking server that is down never fails a run nor holds it up beyond one timeout; the run waits in the outbox.

Two real kinds of "down", on loopback: a port nobody listens on (refused at once), and a socket that
accepts connections but never answers (the kernel completes the handshake; nothing reads). Neither
needs MLflow at all: the health check fails before MLflow's client is imported.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from runtime_project import Project

from mlflowkit.runtime.engine import run_spec
from mlflowkit.store import ArtifactStore
from mlflowkit.targets.triton_local import free_port
from mlflowkit.tracking.outbox import pending


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (they wait in the backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_a_port_nobody_listens_on_queues_the_run_at_once(project: Project) -> None:
    port = free_port()
    spec, plan = project(spec_extra=f"tracking: {{uri: 'http://127.0.0.1:{port}', timeout: 5}}\n")
    started = time.monotonic()
    result = run_spec(spec, plan, orchestrate=False)
    took = time.monotonic() - started
    assert result.ok, result.error
    assert result.tracking is not None and result.tracking.state == "queued"
    assert "not reachable" in result.tracking.note and "Connection refused" in result.tracking.note
    assert took < 20, took  # the run itself; refused costs no timeout at all
    store = ArtifactStore(f"{spec.spec_dir}/.mlflowkit")
    queued = pending(store)
    assert [(i.kind, i.run_id, i.attempts) for i in queued] == [("run", result.run_id, 1), ("aliases", None, 1)]
    # The record on disk says so too, for `runs show`.
    assert store.read_json(f"runs/{result.run_id}.json")["tracking"]["state"] == "queued"


def test_a_server_that_never_answers_costs_one_timeout_and_the_next_run_retries(project: Project, silent_port: int) -> None:
    spec, plan = project(spec_extra=f"tracking: {{uri: 'http://127.0.0.1:{silent_port}', timeout: 1}}\n")
    first = run_spec(spec, plan, orchestrate=False)
    assert first.ok and first.tracking is not None and first.tracking.state == "queued"
    assert "timed out" in first.tracking.note, first.tracking.note
    started = time.monotonic()
    second = run_spec(spec, plan, orchestrate=False)  # cached: nothing to do but the record, the report and MLflow
    took = time.monotonic() - started
    assert second.ok and second.tracking is not None and second.tracking.state == "queued"
    assert took < 1 + 8, took  # one timeout for the health check, not one per queued item, no retries
    queued = {i.run_id: i.attempts for i in pending(ArtifactStore(f"{spec.spec_dir}/.mlflowkit")) if i.kind == "run"}
    assert queued == {first.run_id: 2, second.run_id: 1}  # the first run was tried again


RUN = """
import json, sys
from mlflowkit.plan.compile import compile_spec
from mlflowkit.runtime.engine import run_spec
from mlflowkit.spec.load import load_spec

spec = load_spec("spec.yaml")
result = run_spec(spec, compile_spec(spec), orchestrate=False)
print(json.dumps({"ok": result.ok, "tracking": result.tracking and result.tracking.state, "mlflow": "mlflow" in sys.modules}))
"""


@pytest.mark.parametrize("tracked", [False, True], ids=["without tracking", "server down"])
def test_runs_without_a_reachable_server_never_import_mlflow(project: Project, tracked: bool) -> None:
    spec, _ = project(spec_extra=f"tracking: {{uri: 'http://127.0.0.1:{free_port()}'}}\n" if tracked else "")
    done = subprocess.run([sys.executable, "-c", RUN], cwd=spec.spec_dir, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "ok": True,
        "tracking": "queued" if tracked else None,
        "mlflow": False,
    }


def test_tracking_status_lists_the_outbox_and_sync_says_what_is_left(project: Project) -> None:
    from typer.testing import CliRunner

    from mlflowkit.cli import app

    spec, plan = project(spec_extra=f"tracking: {{uri: 'http://127.0.0.1:{free_port()}'}}\n")
    result = run_spec(spec, plan, orchestrate=False)
    store = ["--store", f"{spec.spec_dir}/.mlflowkit"]
    status = CliRunner().invoke(app, ["tracking", "status", *store], env={"COLUMNS": "250"})
    assert status.exit_code == 0 and f"run {result.run_id}" in status.output and "Connection refused" in status.output
    sync = CliRunner().invoke(app, ["tracking", "sync", *store], env={"COLUMNS": "250"})
    assert sync.exit_code == 1 and "not reachable" in sync.output and "2 item(s) still queued" in sync.output
    assert [i.attempts for i in pending(ArtifactStore(f"{spec.spec_dir}/.mlflowkit"))] == [2, 2]
