"""Shared by the edge tests: exported churn models, a signing keypair, publishing, and running the CLI.

Imported by tests/unit/edge and tests/integration/test_edge*.py (after putting tests/helpers on sys.path).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mlflowkit.targets.base import Release
from mlflowkit.targets.contract import Contract
from mlflowkit.targets.onnxruntime import OnnxRuntimeTarget

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "churn"
CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]

Exported = tuple[bytes, Contract]


def churn_frame() -> pd.DataFrame:
    sys.path.insert(0, str(EXAMPLE))
    from churn_steps import add_features

    return add_features(pd.read_csv(EXAMPLE / "data" / "churn.csv"))


def train_and_export(
    trees_and_depths: tuple[tuple[int, int], ...] = ((5, 3), (8, 4)),
) -> tuple[list[Exported], pd.DataFrame, list[Any]]:
    """Small churn models, exported to ONNX; their held-out rows; the fitted pipelines (for sklearn baselines)."""
    from sklearn.ensemble import RandomForestClassifier

    from mlflowkit.kinds.export import export_onnx
    from mlflowkit.kinds.train import _pipeline

    frame = churn_frame()
    train, test = frame.iloc[:4800], frame.iloc[4800:].reset_index(drop=True)
    x, y = train.drop(columns=["churned"]), train["churned"]
    exported, fitted = [], []
    for trees, depth in trees_and_depths:
        model = _pipeline(RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=0), x).fit(x, y)
        data, contract = export_onnx(model, test, features=list(x.columns), classes=list(model.classes_), target="churned")
        assert contract.parity["ok"]
        exported.append((data, contract))
        fitted.append(model)
    return exported, test, fitted


def keypair(folder: Path, name: str = "edge") -> tuple[Path, Path]:
    from mlflowkit.edge.signing import generate_keypair

    private, public = folder / f"{name}.pem", folder / f"{name}.pem.pub"
    generate_keypair(private, public)
    return private, public


def target(location: Path | str, key: Path, **kw: Any) -> OnnxRuntimeTarget:
    return OnnxRuntimeTarget.model_validate(
        {"target": "onnxruntime", "location": str(location), "signing": {"key_file": str(key)}, **kw}
    )


def release(exported: Exported, version: int, test: pd.DataFrame | None = None, model: str = "churn") -> Release:
    data, contract = exported
    lineage = {
        "spec_hash": "abc123",
        "metrics": {"accuracy": 0.8 + version / 100},
        "verdict": {"passed": True},
        "run_id": f"run-{version}",
    }
    return Release(model=model, version=version, onnx=data, contract=contract, smoke=test, lineage=lineage)


def publish(
    location: Path, key: Path, exported: Exported, version: int, test: pd.DataFrame | None = None, **kw: Any
) -> dict[str, Any]:
    return target(location, key, **kw).deploy(release(exported, version, test), name="churn", log=lambda m: None)


def edge(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``mlflowkit edge ARGS`` in a subprocess (the device's view)."""
    result = subprocess.run(
        [*CLI, "edge", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def row(test: pd.DataFrame, i: int = 0) -> dict[str, Any]:
    """One held-out row as a JSON record of the model's features."""
    features = [c for c in test.columns if c != "churned"]
    record: dict[str, Any] = json.loads(test[features].iloc[[i]].to_json(orient="records"))[0]
    return record


def predict_version(device: Path, test: pd.DataFrame) -> int:
    """Ask the device's current bundle (through the CLI, a fresh process) and return the version that answered."""
    result = edge("predict", "--dir", str(device), "--json", json.dumps(row(test)), check=True)
    return int(json.loads(result.stdout)["version"])


@functools.cache
def shared_models() -> tuple[list[Exported], pd.DataFrame]:
    """Two small exported churn models and held-out rows, made once per process."""
    exported, test, _ = train_and_export()
    return exported, test


@functools.cache
def shared_keys() -> tuple[Path, Path]:
    """One signing keypair per process, in a temp folder removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="mlflowkit-edge-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    return keypair(folder)
