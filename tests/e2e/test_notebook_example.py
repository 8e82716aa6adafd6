"""examples/notebook/notebook.py runs top to bottom on a fresh copy of the reference example, as `python notebook.py` would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlflowkit

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook" / "notebook.py"


@pytest.mark.slow
def test_the_notebook_runs_and_scores_with_the_champion(churn_project: Path) -> None:
    env = {**os.environ, "SPEC": str(churn_project / "spec.yaml"), "COLUMNS": "200"}
    env.pop("MLFLOWKIT_TRACKING_URI", None)
    done = subprocess.run([sys.executable, str(NOTEBOOK)], cwd=churn_project, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    store = churn_project / ".mlflowkit"
    runs = mlflowkit.runs(store)
    assert len(runs) == 2 and list(runs["params.n_estimators"]) == [150, 40]
    assert f"report: {store / runs.loc[0, 'report'].split('/.mlflowkit/')[1]}" in out  # an absolute path
    assert "via onnxruntime" in out  # the champion scored through its ONNX graph
    champion = mlflowkit.load_model("churn@champion", store=store)
    assert f"<Predictor churn v{champion.version.version} (champion" in out
    table = out.split(repr(champion), 1)[1]
    assert table.count("\n") >= 8 and "p_yes" in table and "customer_id" in table


def test_a_run_result_shows_itself_in_a_notebook(churn_project: Path) -> None:
    """``_repr_html_``: status, gates, version, metrics, and links to the report (absolute) and MLflow."""
    from mlflowkit.handoff import RegisteredVersion, RuleResult, RunResult, TrackingOutcome, Verdict

    result = RunResult(
        run_id="r1",
        spec_name="churn",
        spec_path="spec.yaml",
        spec_hash="0" * 64,
        model="churn",
        status="completed",
        started_at="2026-01-01T00:00:00",
        verdict=Verdict(passed=False, rules=(RuleResult(rule="auc >= 0.9", passed=False),), metrics={"auc": 0.8}),
        version=RegisteredVersion(model="churn", version=3, alias="rejected"),
        report_path=str(churn_project / "r.html"),
        tracking=TrackingOutcome(uri="http://m", state="logged", mlflow_run_id="abc", url="http://m/#/runs/abc"),
    )
    html = result._repr_html_()
    assert "FAIL: auc &gt;= 0.9" in html and ">auc</th>" in html and ">0.8</td>" in html and "churn v3 (rejected)" in html
    assert f'href="file://{churn_project}/r.html"' in html and 'href="http://m/#/runs/abc"' in html
