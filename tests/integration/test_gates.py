"""Gates against the champion across runs, on real Prefect: a model made worse on purpose is refused (and kept as
rejected), two good runs promote, and the CLI rolls back.

The gate semantics (thresholds, NaN and missing values, on_missing_baseline, keep_rejected) and evaluate's
fairness metrics are unit tests of the kinds (tests/unit/kinds/test_gates.py, test_evaluate.py).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run_cli  # tests/helpers, on sys.path through conftest

import mlflowkit
from mlflowkit.errors import GateFailed
from mlflowkit.handoff import RegisteredVersion, RuleResult
from mlflowkit.run_summary import read_records, summarize
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.store import ArtifactStore, ModelRegistry

pytestmark = [pytest.mark.prefect]


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


def _rule(result: RunResult, prefix: str) -> RuleResult:
    assert result.verdict is not None
    (rule,) = [r for r in result.verdict.rules if r.rule.startswith(prefix)]
    return rule


@pytest.mark.slow
def test_regression_against_the_champion_is_refused_and_kept_as_rejected(churn_project: Path) -> None:
    first = _run(churn_project)
    assert first.ok, first.error
    first_rule = _rule(first, "roc_auc >= champion")
    assert first_rule.passed and "no champion yet" in first_rule.note  # on_missing_baseline: pass

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
    assert not rule.passed and rule.baseline == 1
    # The champion was scored again, on this run's held-out rows, and its value is the baseline.
    assert worse.verdict is not None and worse.verdict.champion.version == 1
    champion = worse.verdict.champion.metrics or {}
    assert rule.threshold is not None and math.isclose(rule.threshold, (champion["roc_auc"] or 0) - 0.02)
    assert rule.value is not None and rule.value < rule.threshold

    registry = _registry(churn_project)
    assert registry.aliases("churn") == {"champion": 1, "rejected": 2}
    rejected = registry.get("churn", "rejected")
    assert rejected.lineage["verdict"]["passed"] is False


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


@pytest.mark.slow
def test_a_run_that_changes_only_a_gate_registers_nothing_and_moves_no_alias(churn_project: Path) -> None:
    first = _run(churn_project)
    assert first.ok, first.error
    registry = _registry(churn_project)
    assert registry.aliases("churn") == {"champion": 1}
    moves = registry.history("churn")
    # A looser accuracy gate: train, evaluate and export come from the cache, the same model bytes.
    done = run_cli(churn_project, "run", "spec.yaml", "--set", "params.min_accuracy=0.65", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "model equals churn v1; not registered again, no alias moved (v1 is the champion)" in done.stdout + done.stderr
    assert [v.version for v in registry.versions("churn")] == [1]
    assert registry.aliases("churn") == {"champion": 1} and registry.history("churn") == moves
    store = ArtifactStore(churn_project / ".mlflowkit")
    (second,) = [r for r in read_records(store) if r.run_id != first.run_id]
    assert second.version == RegisteredVersion(model="churn", version=1, existing=True)
    assert summarize(store, second).registered == "churn v1 (equal)"  # `mlflowkit runs list`
