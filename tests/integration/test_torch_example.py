"""`mlflowkit run examples/churn-torch/spec.yaml`: 2 Ray Train workers, ONNX export with parity, a registered version.

The CLI runs in a subprocess on a Prefect flow and starts (and stops) its own local Ray instance.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlflowkit.store import registry_at

pytestmark = [pytest.mark.ray, pytest.mark.prefect, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent.parent


def test_the_torch_example_runs_through_export_and_register(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "churn-torch", tmp_path / "churn-torch", ignore=shutil.ignore_patterns(".mlflowkit"))
    shutil.copytree(REPO / "examples" / "churn" / "data", tmp_path / "churn" / "data")
    project = tmp_path / "churn-torch"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "160"}
    cli = [str(Path(sys.executable).parent / "mlflowkit")]
    done = subprocess.run(
        [*cli, "run", "spec.yaml"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Not a terminal: each epoch is one plain line as it finishes, numbers as the tables print them.
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    epochs = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("train: epochs ")]
    assert epochs and [line.split(":")[1].strip() for line in epochs] == [f"epochs {n}/12" for n in range(1, len(epochs) + 1)]
    number = r"\d+(\.\d{1,4})?"  # four significant digits at most
    loss = rf"train loss {number}, validation loss {number}"
    assert all(re.search(rf": {loss}( \(stopping: .+\))?; best so far {number} \(epoch \d+\)$", e) for e in epochs), epochs
    registry = registry_at(str(project / ".mlflowkit"))
    version = registry.get("churn-torch", "champion")
    assert version.version == 1
    contract = json.loads(registry.read_file("churn-torch", 1, "contract.json"))
    assert contract["parity"]["disagreeing_rows"] == 0 and contract["parity"]["max_abs_diff"] <= 1e-5
    assert contract["classes"] == ["no", "yes"] and "customer_id" not in contract["features"]
    assert registry.read_file("churn-torch", 1, "model.onnx")[:2]  # the deployable form went with the version
    record = json.loads(next((project / ".mlflowkit" / "runs").glob("*.json")).read_text())
    train = next(s for s in record["steps"] if s["name"] == "train")
    assert train["kind"] == "torch" and train["outputs"]["model"]["meta"]["torch"]["num_workers"] == 2
