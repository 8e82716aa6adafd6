"""Runs logged to a real ``mlflow server`` (SQLite, on loopback, in its own venv), read back through MLflow's API.

Why one slow module: the server takes a few seconds to start (minutes the first time, to build its venv),
and what is checked here is MLflow's view of whole runs: two runs of a scaffolded classification project
(the first a real Prefect flow, while the server is unreachable: it waits in the outbox and goes with the
second), then a promotion and a rollback through the CLI, which MLflow's ``champion`` alias follows. The
scaffold's data checks and its champion gate are left out: they cost time and decide nothing here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mlflowkit
from mlflowkit.cli import app
from mlflowkit.scaffold import scaffold
from mlflowkit.store import ArtifactStore, registry_at
from mlflowkit.targets.triton_local import free_port
from mlflowkit.tracking import local_server
from mlflowkit.tracking.outbox import pending


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real `mlflow server` on a free loopback port; its port. Stopped after the module."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    server = local_server.up(folder, port=free_port(), timeout=180)
    try:
        yield server.port
    finally:
        assert local_server.down(folder)


class Forwarder:
    """A TCP forwarder on loopback: closed (nothing listens on its port) until :meth:`open` — the server 'comes back'."""

    def __init__(self, to_port: int) -> None:
        self.port, self.to_port = free_port(), to_port
        self._sock: socket.socket | None = None
        self._open: list[socket.socket] = []  # closed in close(), so that none is left to the garbage collector

    def open(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._sock.accept()
                upstream = socket.create_connection(("127.0.0.1", self.to_port))
                self._open += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in [*self._open, *([self._sock] if self._sock else [])]:
            sock.close()


def _git(project: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=project, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scaffolded classification project named churn, without data checks or a champion gate, in git."""
    project = tmp_path / "churn"
    scaffold("tabular-classification", project, name="churn")
    spec = project / "spec.yaml"
    text = re.sub(r"(?ms)^checks:.*?(?=^train:)", "", spec.read_text())
    text = text.replace("  - roc_auc >= champion.roc_auc - 0.02\n", "")
    spec.write_text(text.replace("  metrics: [accuracy, f1, roc_auc]\n", "  metrics: [accuracy, f1, roc_auc]\n  bootstrap: {n: 30}\n"))
    _git(project, "init", "-q")
    _git(project, "add", "spec.yaml", "data")
    _git(project, "commit", "-q", "-m", "churn")
    return project


def test_runs_versions_and_aliases_reach_mlflow(project: Path, mlflow_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOWKIT_TRACKING_URI", raising=False)
    forwarder = Forwarder(mlflow_server)
    spec_file = project / "spec.yaml"
    spec_file.write_text(spec_file.read_text() + f"\ntracking:\n  uri: http://127.0.0.1:{forwarder.port}\n  experiment: churn-it\n")
    commit = _git(project, "rev-parse", "HEAD")

    # 1. The server is unreachable: the run (a real Prefect flow) succeeds, and waits in the outbox.
    first = mlflowkit.run(mlflowkit.load_spec(spec_file))
    assert first.ok, first.error
    assert first.tracking is not None and first.tracking.state == "queued", first.tracking
    assert first.flow_run_id and first.version is not None
    store = ArtifactStore(project / ".mlflowkit")
    assert {i.run_id for i in pending(store)} == {first.run_id, None}

    # 2. It is back: the next run sends both, the older first.
    forwarder.open()
    try:
        second = mlflowkit.run(mlflowkit.load_spec(spec_file, overrides=["params.n_estimators=40"]), orchestrate=False)
        assert second.ok, second.error
        assert second.tracking is not None and second.tracking.state == "logged", second.tracking
        assert pending(store) == []

        client = MlflowClient(f"http://127.0.0.1:{mlflow_server}")
        experiment = client.get_experiment_by_name("churn-it")
        assert experiment is not None
        runs = {r.data.tags["mlflowkit.run_id"]: r for r in client.search_runs([experiment.experiment_id])}
        assert set(runs) == {first.run_id, second.run_id}
        logged = runs[first.run_id]
        assert logged.info.status == "FINISHED"
        assert logged.data.params["n_estimators"] == "60" and runs[second.run_id].data.params["n_estimators"] == "40"
        assert logged.data.params["estimator"] == "sklearn.ensemble.RandomForestClassifier"
        metrics = logged.data.metrics
        assert 0.5 < metrics["roc_auc"] <= 1 and metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
        assert {"accuracy", "accuracy_ci_low", "accuracy_ci_high", "f1", "n_test", "run_seconds"} <= set(metrics)
        tags = logged.data.tags
        fingerprint = first.steps[0].outputs["dataset"].meta["data_fingerprint"]["content_hash"]
        assert tags["mlflowkit.spec_hash"] == first.spec_hash
        assert tags["mlflowkit.data_fingerprint"] == fingerprint
        assert tags["mlflowkit.git_commit"] == tags["mlflow.source.git.commit"] == commit
        assert tags["mlflowkit.package_version"] == mlflowkit.__version__
        assert tags["mlflowkit.prefect_flow_run"] == first.flow_run_id
        assert tags["mlflowkit.verdict"] == "pass" and tags["mlflowkit.registered"] == first.version.label()
        files = {a.path for a in client.list_artifacts(logged.info.run_id)}
        files |= {a.path for a in client.list_artifacts(logged.info.run_id, "model")}
        assert {"report.html", "verdict.json", "model/model.onnx", "model/contract.json", "model/MLmodel"} <= files
        report = Path(client.download_artifacts(logged.info.run_id, "report.html", str(project / "dl")))
        assert report.read_bytes() == (project / ".mlflowkit" / first.report).read_bytes()

        # Registered versions carry mlflowkit's numbers; the aliases are mlflowkit's.
        registry = registry_at(str(project / ".mlflowkit"))
        ours = {int(v.tags["mlflowkit.version"]): v.version for v in client.search_model_versions("name = 'churn'")}
        assert set(ours) == {v.version for v in registry.versions("churn")} == {1, 2}

        def mirrored() -> dict[str, str]:
            return dict(client.get_registered_model("churn").aliases)

        assert mirrored() == {alias: ours[n] for alias, n in registry.aliases("churn").items()}
        champion = registry.aliases("churn")["champion"]

        # 3. A promotion and a rollback through the CLI: MLflow's champion follows each.
        other = 2 if champion == 1 else 1
        runner = CliRunner()
        env = {"COLUMNS": "200", "MLFLOWKIT_USER": "tester"}
        store_opt = ["--store", str(project / ".mlflowkit")]
        done = runner.invoke(app, ["models", "promote", "churn", str(other), "--reason", "test", "--force", *store_opt], env=env)
        assert done.exit_code == 0, done.output
        assert mirrored()["champion"] == ours[other] and mirrored()["previous"] == ours[champion]
        done = runner.invoke(app, ["models", "rollback", "churn", "--reason", "back", *store_opt], env=env)
        assert done.exit_code == 0, done.output
        assert mirrored()["champion"] == ours[champion]
        assert mirrored() == {alias: ours[n] for alias, n in registry.aliases("churn").items()}
    finally:
        forwarder.close()
    shutil.rmtree(project / "dl", ignore_errors=True)
