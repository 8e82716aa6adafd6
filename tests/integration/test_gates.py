"""Evaluation, fairness and gates against the champion, on real Prefect: models made worse on purpose.

Each case asserts the verdict's content and that nothing was promoted (the champion did not move).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlflowkit
from mlflowkit.errors import GateFailed
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.store import ModelRegistry

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def _run(project: Path, *overrides: str) -> RunResult:
    spec = mlflowkit.load_spec(project / "spec.yaml", overrides=list(overrides))
    return run_spec(spec, mlflowkit.compile(spec))


def _registry(project: Path) -> ModelRegistry:
    return ModelRegistry(project / ".mlflowkit" / "registry")


def _nothing_promoted_or_deployed(result: RunResult) -> None:
    statuses = {s.name: s.status for s in result.steps}
    assert statuses["register"] == "skipped" and statuses["deploy"] == "skipped", statuses


def _edit(project: Path, old: str, new: str) -> None:
    spec = project / "spec.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))


def _rule(result: RunResult, prefix: str) -> dict[str, object]:
    assert result.verdict is not None
    (rule,) = [r for r in result.verdict["rules"] if str(r["rule"]).startswith(prefix)]
    return rule


def test_regression_against_the_champion_is_refused_and_kept_as_rejected(churn_project: Path) -> None:
    first = _run(churn_project)
    assert first.ok, first.error
    first_rule = _rule(first, "roc_auc >= champion")
    assert first_rule["passed"] is True and "no champion yet" in str(first_rule["note"])  # on_missing_baseline: pass

    _edit(churn_project, "gates:\n", "gates:\n  keep_rejected: true\n  rules:\n")
    _edit(churn_project, "\n  - accuracy", "\n    - accuracy")
    _edit(churn_project, "\n  - roc_auc >= 0.75", "\n    - roc_auc >= 0.75")
    _edit(churn_project, "\n  - roc_auc >= champion", "\n    - roc_auc >= champion")
    _edit(churn_project, "\n  - {metric", "\n    - {metric")
    _edit(churn_project, "\n     description", "\n       description")
    worse = _run(churn_project, "params.n_estimators=2", "params.max_depth=2")  # a much weaker forest
    assert not worse.ok and isinstance(worse.exception, GateFailed)
    _nothing_promoted_or_deployed(worse)
    rule = _rule(worse, "roc_auc >= champion")
    assert rule["passed"] is False and rule["baseline"] == 1
    # The champion was scored again, on this run's held-out rows, and its value is the baseline.
    champion = worse.verdict["champion"]  # type: ignore[index]
    assert champion["version"] == 1
    assert math.isclose(float(rule["threshold"]), champion["metrics"]["roc_auc"] - 0.02)  # type: ignore[arg-type]
    assert float(rule["value"]) < float(rule["threshold"])  # type: ignore[arg-type]

    registry = _registry(churn_project)
    assert registry.aliases("churn") == {"champion": 1, "rejected": 2}
    rejected = registry.get("churn", "rejected")
    assert rejected.lineage["verdict"]["passed"] is False


def test_fairness_failure_on_biased_data(churn_project: Path) -> None:
    _edit(churn_project, "source: data/churn.csv", "source: data/churn_biased.csv")
    result = _run(churn_project)
    assert not result.ok and isinstance(result.exception, GateFailed)
    _nothing_promoted_or_deployed(result)
    rule = _rule(result, "demographic_parity_difference")
    assert rule["passed"] is False and float(rule["value"]) > 0.10  # type: ignore[arg-type]
    assert rule["description"] == "churn offers must not depend on gender"
    assert "demographic_parity_difference" in str(result.exception)
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()
    report = json.loads((churn_project / ".mlflowkit" / "reports" / result.run_id / "evaluate-fairness.json").read_text())
    rates = {row["group"]: row["selection_rate"] for row in report["rows"]}
    assert rates["female"] - rates["male"] > 0.10


def test_small_groups_are_reported_not_averaged(churn_project: Path) -> None:
    _edit(churn_project, "min_group_size: 30", "min_group_size: 1000")  # no group has 1000 held-out rows
    result = _run(churn_project)
    assert not result.ok
    _nothing_promoted_or_deployed(result)
    rule = _rule(result, "demographic_parity_difference")
    assert rule["passed"] is False and rule["note"] == "NaN value"
    report = json.loads((churn_project / ".mlflowkit" / "reports" / result.run_id / "evaluate-fairness.json").read_text())
    assert all("fewer than 1000 rows" in row["note"] for row in report["rows"])


def test_nan_metric_fails_closed(churn_project: Path) -> None:
    # A LinearSVC has no predict_proba: roc_auc and log_loss are NaN, and a NaN never passes a gate.
    _edit(churn_project, "estimator: sklearn.ensemble.RandomForestClassifier", "estimator: sklearn.svm.LinearSVC")
    _edit(
        churn_project,
        "    n_estimators: ${params.n_estimators}\n    max_depth: ${params.max_depth}\n    n_jobs: 2\n",
        "    C: 1.0\n",
    )
    result = _run(churn_project)
    assert not result.ok
    _nothing_promoted_or_deployed(result)
    rule = _rule(result, "roc_auc >= 0.75")
    assert rule["passed"] is False and rule["note"] == "NaN value"
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()


def test_first_run_without_champion_can_be_made_to_fail(churn_project: Path) -> None:
    _edit(churn_project, "gates:\n", "gates:\n  on_missing_baseline: fail\n  rules:\n")
    for prefix in ("accuracy", "roc_auc >= 0.75", "roc_auc >= champion", "{metric"):
        _edit(churn_project, f"\n  - {prefix}", f"\n    - {prefix}")
    _edit(churn_project, "\n     description", "\n       description")
    result = _run(churn_project)
    assert not result.ok
    _nothing_promoted_or_deployed(result)
    rule = _rule(result, "roc_auc >= champion")
    assert rule["passed"] is False and rule["note"] == "no champion yet; on_missing_baseline=fail"
    assert all(r["passed"] for r in result.verdict["rules"] if r is not rule)  # type: ignore[index]


def test_two_good_runs_promote_then_cli_rollback(churn_project: Path) -> None:
    assert _run(churn_project).ok
    assert _run(churn_project, "params.n_estimators=151").ok
    registry = _registry(churn_project)
    assert registry.aliases("churn") == {"champion": 2, "previous": 1}
    v2 = registry.get("churn", 2)
    assert v2.lineage["verdict"]["passed"] is True
    assert "verdict.json" in v2.files
    assert v2.lineage["champion_at_evaluation"]["version"] == 1

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from mlflowkit.cli import main; main()", *args, "--spec", "spec.yaml"],
            cwd=churn_project,
            env={**os.environ, "MLFLOWKIT_USER": "oncall", "COLUMNS": "250"},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    done = cli("models", "rollback", "churn", "--reason", "v2 misbehaves")
    assert done.returncode == 0, done.stderr
    assert registry.aliases("churn") == {"champion": 1}
    last = registry.history("churn")[-2]
    assert (last.alias, last.version, last.actor) == ("champion", 1, "oncall")
    assert "v2 misbehaves" in last.reason
    history = cli("models", "history", "churn")
    assert "oncall" in history.stdout and "v2 misbehaves" in history.stdout
