"""Monitoring end to end: train a champion, check live batches with injected shifts, retrain on drift.

Real registry, real ONNX Runtime scoring, real Prefect flows (the local server). Each shifted batch
must flag exactly the shifted feature and start a retraining run whose new version records the
drift check that triggered it; an unshifted batch must trigger nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import mlflowkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from flows_helpers import churn_rows

from mlflowkit.runtime.monitor import MonitorError, run_monitor
from mlflowkit.store import ArtifactStore, registry_at

pytestmark = pytest.mark.prefect

FEATURES = ["age", "gender", "tenure_months", "contract", "monthly_charges", "support_calls", "paperless_billing"]

SPEC = """\
spec: mlflowkit/v1
name: churn-monitored
recipe: tabular-classification
data:
  source: data/train.csv
  target: churned
train:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {n_estimators: 40, max_depth: 8, random_state: 0, n_jobs: 1}
evaluate:
  metrics: [accuracy, roc_auc]
gates:
  - accuracy >= 0.6
register:
  model: churn-mon
monitor:
  min_rows: 100
  performance: {metric: accuracy, max_drop: 0.05}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose champion (v1) was trained on 3,000 rows; copied per test."""
    root = tmp_path_factory.mktemp("monitored")
    (root / "data").mkdir()
    churn_rows(3000, seed=7).to_csv(root / "data" / "train.csv", index=False)
    (root / "spec.yaml").write_text(SPEC)
    result = mlflowkit.run(mlflowkit.load_spec(root / "spec.yaml"))
    assert result.ok, result.error
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "project"
    shutil.copytree(trained, dest, ignore=shutil.ignore_patterns("prefect"))
    return dest


def _versions(project: Path) -> list:
    return registry_at(str(project / ".mlflowkit")).versions("churn-mon")


def _live(project: Path, frame: pd.DataFrame, *, refresh_training: bool = True) -> str:
    """Write the live batch; like a data pipeline would, add its labelled rows to the training table."""
    frame.drop(columns=["churned"], errors="ignore").to_csv(project / "live.csv", index=False)
    if refresh_training:
        fresh = pd.concat([pd.read_csv(project / "data" / "train.csv"), frame.dropna(axis=1)], ignore_index=True)
        fresh.reindex(columns=pd.read_csv(project / "data" / "train.csv").columns).dropna().to_csv(
            project / "data" / "train.csv", index=False
        )
    return str(project / "live.csv")


def test_champion_carries_its_reference_profile(trained: Path) -> None:
    registry = registry_at(str(trained / ".mlflowkit"))
    version = registry.get("churn-mon", "champion")
    assert "profile.json" in version.files
    profile = json.loads(registry.read_file("churn-mon", version.version, "profile.json"))
    assert sorted(profile["features"]) == sorted(FEATURES)
    assert profile["prediction"]["output"] == "probability" and profile["rows"] == 2400


def test_no_shift_triggers_nothing(project: Path) -> None:
    live = _live(project, churn_rows(1500, seed=99), refresh_training=False)
    result = run_monitor(mlflowkit.load_spec(project / "spec.yaml"), live)
    assert result.report.verdict == "ok", result.report.reasons
    assert {f.feature: f.status for f in result.report.features} == dict.fromkeys(FEATURES, "ok")
    assert result.report.prediction is not None and result.report.prediction.status == "ok"
    assert result.trigger is None and [v.version for v in _versions(project)] == [1]
    stored = ArtifactStore(str(project / ".mlflowkit"))
    assert stored.read_json(result.report_key)["verdict"] == "ok"
    assert b"Drift check: churn-mon v1" in stored.get_bytes(result.html_key)


@pytest.mark.parametrize(
    ("shift", "feature", "status"),
    [
        ("mean", "monthly_charges", "drift"),
        ("category", "contract", "drift"),
        ("missing", "tenure_months", "missing"),
    ],
)
def test_shift_flags_the_feature_and_retrains(project: Path, shift: str, feature: str, status: str) -> None:
    live = churn_rows(1500, seed=99)
    if shift == "mean":
        live["monthly_charges"] += 25
    elif shift == "category":
        live.loc[live.index[::3], "contract"] = "three-year"
    else:
        live = live.drop(columns=["tenure_months"])
    result = run_monitor(mlflowkit.load_spec(project / "spec.yaml"), _live(project, live))

    verdicts = {f.feature: f.status for f in result.report.features}
    assert verdicts == {f: (status if f == feature else "ok") for f in FEATURES}
    assert result.report.verdict == "drift"
    assert result.trigger is not None and result.trigger["via"] == "local" and result.trigger["ok"]
    versions = _versions(project)
    stored = ArtifactStore(str(project / ".mlflowkit"))
    run = stored.read_json(f"runs/{result.trigger['run_id']}.json")
    assert run["trigger"]["check_id"] == result.check_id
    if shift == "missing":
        # No live row has tenure_months, so none joins the training table: the retrain fits the same model,
        # which is v1 again; nothing is registered twice.
        assert [v.version for v in versions] == [1]
        assert run["version"]["version"] == 1 and run["version"]["existing"]
    else:
        assert [v.version for v in versions] == [1, 2]
        lineage = versions[-1].lineage["trigger"]
        assert lineage["by"] == "monitor" and lineage["check_id"] == result.check_id and lineage["version"] == 1
    assert stored.read_json(f"monitoring/churn-mon/{result.check_id}/trigger.json")["run_id"] == run["run_id"]


def test_labels_bring_performance(project: Path) -> None:
    live = churn_rows(1500, seed=99)
    live["churned"] = live["churned"].map({"yes": "no", "no": "yes"})  # labels flipped: accuracy collapses
    live.to_csv(project / "labelled.csv", index=False)
    result = run_monitor(mlflowkit.load_spec(project / "spec.yaml"), str(project / "labelled.csv"), trigger=False)
    perf = result.report.performance
    assert perf is not None and perf["status"] == "drift" and perf["value"] < 0.5 < perf["baseline"]
    assert result.report.verdict == "drift" and result.trigger is None


def test_cli_reports_and_refuses_without_data(project: Path) -> None:
    live = _live(project, churn_rows(1500, seed=99), refresh_training=False)
    out = project / "drift.html"
    cmd = [sys.executable, "-c", "from mlflowkit.cli import main; main()", "monitor", str(project / "spec.yaml"), "--data", live, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "verdict: ok" in done.stdout and out.read_text().startswith("<!doctype html>")
    with pytest.raises(MonitorError, match="no live data"):
        run_monitor(mlflowkit.load_spec(project / "spec.yaml"), str(project / "nothing-*.csv"), orchestrate=False)
