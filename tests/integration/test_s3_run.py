"""The reference example, unchanged but for its store and an edge channel, on an S3-compatible server (moto).

The artifact store, the registry, the edge bundles with their index, and the release records all
live in the bucket; a rerun is cached; a rollback moves the channel and the registry together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflowkit.store import ArtifactStore, registry_at
from mlflowkit.store._s3 import open_fs

pytestmark = [pytest.mark.prefect]

CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]


@pytest.mark.slow
def test_reference_example_runs_on_s3(churn_project: Path, s3_root: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"} | {"COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], cwd=churn_project, env=env, capture_output=True, text=True, timeout=600, check=False)

    assert cli("edge", "keygen", "--out", "keys/edge.pem").returncode == 0
    bundles = f"{s3_root}/bundles"
    with (churn_project / "spec.yaml").open("a") as spec:
        spec.write(f"\ndeploy:\n  - {{target: onnxruntime, location: '{bundles}', signing: {{key_file: keys/edge.pem}}}}\n")
    fs, index = open_fs(f"{bundles}/churn/index.json")

    first = cli("run", "spec.yaml", "--store", s3_root)
    assert first.returncode == 0, first.stdout + first.stderr
    registry = registry_at(s3_root)
    (version,) = registry.versions("churn")
    assert registry.aliases("churn") == {"champion": 1}
    assert {"model.onnx", "contract.json", "profile.json", "verdict.json"} <= set(version.files)
    assert json.loads(fs.cat_file(index))["channels"]["stable"]["current"] == 1
    assert not (churn_project / ".mlflowkit" / "registry").exists()  # nothing went to the local folder

    again = cli("run", "spec.yaml", "--store", s3_root)
    assert again.returncode == 0, again.stdout + again.stderr
    store = ArtifactStore(s3_root)
    runs = sorted((store.read_json(k) for k in store.list_keys("runs") if k.endswith(".json")), key=lambda r: r["started_at"])
    assert {s["status"] for s in runs[-1]["steps"]} == {"cached"}

    second = cli("run", "spec.yaml", "--store", s3_root, "--set", "params.n_estimators=40")
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(fs.cat_file(index))["channels"]["stable"]["current"] == 2
    back = cli("models", "rollback", "churn", "--reason", "s3 drill", "--store", s3_root)
    assert back.returncode == 0, back.stdout + back.stderr
    assert json.loads(fs.cat_file(index))["channels"]["stable"]["current"] == 1
    assert registry.aliases("churn")["champion"] == 1


def test_a_store_that_cannot_be_opened_is_a_clear_error(churn_project: Path, s3_server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"} | {"COLUMNS": "200"}
    done = subprocess.run(
        [*CLI, "run", "spec.yaml", "--store", "s3://no/such-bucket"], cwd=churn_project, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "error: cannot open the store s3://no/such-bucket" in done.stderr and "Traceback" not in done.stderr
