"""The real-data matrix: public data sets that ship inside packages, one spec each as a user would write it.

Each spec validates, runs (the CLI, on the local Prefect server), beats a DummyClassifier or
DummyRegressor on the same held-out rows, passes the export's ONNX parity check, and predicts through
its signed edge bundle (``mlflowkit edge pull`` + ``edge predict``). Run with ``tox -e realdata`` (outside
the default run: about ten minutes); the results table is docs/realdata.md (written to
``$MLFLOWKIT_REALDATA_TABLE`` when that is set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlflowkit.spec.load import load_spec
from mlflowkit.store import ModelRegistry

HERE = Path(__file__).resolve().parent
SPECS = sorted((HERE / "specs").glob("*.yaml"))
CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]
RESULTS: list[dict[str, Any]] = []

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*CLI, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder: every spec, its table written from its package, and an edge signing keypair."""
    sys.path.insert(0, str(HERE))
    from make_data import TABLES, write

    folder = tmp_path_factory.mktemp("realdata")
    for spec in SPECS:
        shutil.copy(spec, folder / spec.name)
    for name in TABLES:
        write(name, folder / "data")
    done = _cli(folder, "edge", "keygen", "--out", "edge-signing.pem")
    assert done.returncode == 0, done.stderr
    yield folder
    table = os.environ.get("MLFLOWKIT_REALDATA_TABLE")
    if table and RESULTS:
        Path(table).write_text(_markdown(RESULTS), encoding="utf-8")


def _baseline(spec: Any, task: str, metric_names: list[str]) -> dict[str, float]:
    """The Dummy model's metrics on the held-out rows the split step drew (same seed, size and stratification)."""
    import numpy as np
    from sklearn import metrics as skm
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.model_selection import train_test_split

    data, split = spec.data, spec.data.split
    frame = pd.read_csv(Path(spec.spec_dir) / data.source)
    target = frame[data.target]
    train, test = train_test_split(
        frame, test_size=split.test_size, random_state=split.seed, stratify=target if split.stratify else None
    )
    if task == "classification":
        dummy = DummyClassifier(strategy="most_frequent").fit(train[[data.target]], train[data.target])
        pred = dummy.predict(test[[data.target]])
        return {
            "accuracy": float(skm.accuracy_score(test[data.target], pred)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(test[data.target], pred)),
        }
    dummy_r = DummyRegressor(strategy="mean").fit(train[[data.target]], train[data.target])
    pred = dummy_r.predict(test[[data.target]])
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(test[data.target], pred))),
        "r2": float(skm.r2_score(test[data.target], pred)),
    }


@pytest.mark.parametrize("spec_file", SPECS, ids=[s.stem for s in SPECS])
def test_a_real_data_set_validates_runs_beats_a_dummy_and_predicts_at_the_edge(project: Path, spec_file: Path) -> None:
    name = spec_file.name
    done = _cli(project, "validate", name)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli(project, "run", name)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ONNX parity on the held-out split: PASS" in done.stdout
    # What a user reads is mlflowkit's, not a library's raw warning (a slice with one class, an n_jobs we set).
    raw = re.findall(r"\b\w+Warning: .*", done.stdout + done.stderr)
    assert not raw, raw

    spec = load_spec(project / name)
    model = spec.register.model or spec.name  # type: ignore[attr-defined]
    version = ModelRegistry(project / ".mlflowkit" / "registry").get(model, "champion")
    metrics: dict[str, float] = version.lineage["metrics"]
    task = "classification" if "balanced_accuracy" in metrics else "regression"
    baseline = _baseline(spec, task, list(metrics))
    if task == "classification":
        # Balanced accuracy: on an imbalanced set (default, hmda) always answering the majority is "accurate".
        assert metrics["balanced_accuracy"] > baseline["balanced_accuracy"] + 0.05, (metrics, baseline)
    else:
        assert metrics["rmse"] < baseline["rmse"] and metrics["r2"] > baseline["r2"] + 0.1, (metrics, baseline)
    parity = version.lineage["onnx"]["parity"]
    assert parity["ok"], parity

    device, bundles = project / "devices" / model, project / ".mlflowkit" / "edge-bundles" / model
    pulled = _cli(project, "edge", "pull", "--source", str(bundles), "--dir", str(device), "--public-key", "edge-signing.pem.pub")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    # What a device sends: the model's inputs (excluded columns, such as a sensitive attribute, are not among them).
    rows = pd.read_csv(project / spec.data.source)[list(version.lineage["features"])].head(25)  # type: ignore[attr-defined]
    rows.to_csv(project / f"{model}-rows.csv", index=False)
    predicted = _cli(project, "edge", "predict", "--dir", str(device), "--csv", f"{model}-rows.csv")
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    answer = json.loads(predicted.stdout)
    labels = answer.get("labels", answer.get("predictions"))
    assert labels is not None and len(labels) == 25, answer
    if task == "classification":
        assert {str(label) for label in labels} <= {str(c) for c in version.lineage["classes"]}, answer

    RESULTS.append(
        {
            "spec": spec_file.stem,
            "task": task,
            "rows": version.lineage["data_fingerprint"]["rows"],
            "estimator": version.lineage["estimator"].rsplit(".", 1)[-1],
            "metrics": metrics,
            "baseline": baseline,
            "parity": parity["max_abs_diff"],
        }
    )


def _markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| data set | task | rows | estimator | model | Dummy | ONNX max abs diff | edge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["task"], r["spec"])):
        keys = ("balanced_accuracy", "accuracy") if r["task"] == "classification" else ("r2", "rmse")
        model = ", ".join(f"{k} {r['metrics'][k]:.3f}" for k in keys)
        dummy = ", ".join(f"{k} {r['baseline'][k]:.3f}" for k in keys)
        lines.append(f"| {r['spec']} | {r['task']} | {r['rows']} | {r['estimator']} | {model} | {dummy} | {r['parity']:.1e} | ok |")
    return "\n".join(lines) + "\n"
