"""The report page from a synthetic run: every section, escaping, plots as data URIs, no external URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlflowkit.report import collect, render, write_report
from mlflowkit.store import ArtifactStore

CONTRACT = {
    "format": "mlflowkit/contract-v1",
    "layout": "columns",
    "inputs": [{"name": "age", "dtype": "float32", "shape": [-1, 1], "column": "age"},
               {"name": "plan", "dtype": "string", "shape": [-1, 1], "column": "plan"}],
    "outputs": [{"name": "label", "dtype": "string", "shape": [-1]}, {"name": "probabilities", "dtype": "float32", "shape": [-1, 2]}],
    "features": ["age", "plan"], "classes": ["no", "yes"], "target": "churned",
    "label_output": "label", "probability_output": "probabilities", "opset": {"": 17},
}  # fmt: skip


def _run(store: ArtifactStore, *, task: str = "classification") -> str:
    def put(obj: object) -> dict[str, object]:
        return store.put_bytes(json.dumps(obj).encode(), "application/json").model_dump(mode="json")

    metrics: dict[str, object] = {
        "metrics": {"accuracy": 0.8},
        "n_test": 10,
        "champion": {"version": None, "note": "no champion yet"},
    }
    if task == "classification":
        metrics |= {
            "confusion_matrix": {"labels": ["no", "yes"], "matrix": [[5, 1], [2, 2]]},
            "roc_curves": [{"label": "yes", "fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1], "auc": 0.8}],
            "fairness": {"metrics": {"demographic_parity_difference": 0.05}, "positive_label": "yes", "min_group_size": 1,
                         "groups": [{"feature": "gender", "group": "f", "rows": 5, "selection_rate": 0.4, "note": ""},
                                    {"feature": "gender", "group": "m", "rows": 5, "selection_rate": 0.45, "note": "fewer than 30 rows: left out of disparity"}]},
        }  # fmt: skip
    else:
        metrics |= {"residuals": {"predicted": [1.0, 2.0, 3.0], "residual": [0.1, -0.2, 0.05], "rows": 3}}
    deployment = {"model": "churn", "version": 2, "targets": [{"target": "triton", "url": "http://triton:8000", "grpc_url": "triton:8001",
                  "model": "churn", "version": 2, "previous": 1, "smoke": {"http": {"rows": 5}}, "seconds": 1.2}]}  # fmt: skip
    verdict = {
        "passed": True,
        "rules": [{"rule": "accuracy >= 0.7", "value": 0.8, "threshold": 0.7, "passed": True, "note": "<b>x</b>"}],
    }
    record = {
        "run_id": "r1", "spec_name": "churn-classifier", "spec_path": "spec.yaml", "spec_hash": "ab" * 32, "model": "churn",
        "params": {"n": 1}, "status": "completed", "started_at": "2026-01-01T00:00:00", "seconds": 3.2, "verdict": verdict,
        "version": {"model": "churn", "version": 2},
        "steps": [
            {"name": "evaluate", "kind": "evaluate", "status": "ran", "seconds": 1, "outputs": {"metrics": put(metrics)}},
            {"name": "export", "kind": "onnx", "status": "cached", "seconds": 0, "outputs": {"contract": put(CONTRACT)}},
            {"name": "deploy", "kind": "deploy", "status": "ran", "seconds": 1, "outputs": {"deployment": put(deployment)}},
        ],
    }  # fmt: skip
    store.write_json("runs/r1.json", record)
    return "r1"


def test_every_section_with_plots_and_a_model_card(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = ArtifactStore(tmp_path)
    page = render(collect(store, _run(store)))
    for section in ("lineage", "checks", "metrics", "gates", "deployments", "model-card"):
        assert f'<section id="{section}">' in page
    assert page.count('<img class="plot"') == 3  # confusion matrix, ROC, fairness
    assert 'id="plot-roc"' in page and "data:image/png;base64," in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # every value is escaped
    assert "POST http://triton:8000/v2/models/churn/versions/2/infer" in page
    assert "&quot;datatype&quot;: &quot;BYTES&quot;" in page  # the example request's string input
    assert "https://" not in page and "<link" not in page and "<script" not in page


def test_a_regression_run_has_a_residual_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = ArtifactStore(tmp_path)
    page = render(collect(store, _run(store, task="regression")))
    assert 'id="plot-residuals"' in page and 'id="plot-roc"' not in page


def test_write_report_puts_it_in_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    key = write_report(store, _run(store))
    assert key == "reports/r1/report.html"
    assert (tmp_path / key).read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(FileNotFoundError):
        write_report(store, "nope")


def test_documents_a_store_writer_rewrote_cannot_put_markup_in_the_page(tmp_path: Path) -> None:
    # Run records and their documents are not signed: whoever writes the store can rewrite a metrics document
    # and the record's reference to it. Every value is text on the page, numbers included.
    store = ArtifactStore(tmp_path)
    record = store.read_json(f"runs/{_run(store)}.json")
    evaluate = record["steps"][0]
    metrics = json.loads(store.get_bytes(evaluate["outputs"]["metrics"]["key"]))
    script = "<script>alert(1)</script>"
    metrics["n_test"] = script
    metrics["fairness"]["min_group_size"] = script
    forged = store.put_bytes(json.dumps(metrics).encode(), "application/json")
    evaluate["outputs"]["metrics"] = forged.model_dump(mode="json")
    checks = {"passed": True, "checks": script, "failed": script, "warned": script, "results": []}
    record["steps"].append({"name": "checks", "kind": "checks", "status": "ran", "seconds": 1,
                            "outputs": {"validation": put_json(store, checks, "application/vnd.mlflowkit.validation+json")}})  # fmt: skip
    contract = {**CONTRACT, "parity": {"rows": script, "max_abs_diff": script, "disagreeing_rows": script}}
    record["steps"][1]["outputs"]["contract"] = put_json(store, contract, "application/json")
    store.write_json("runs/r1.json", record)
    page = render(collect(store, "r1"))
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


def put_json(store: ArtifactStore, obj: object, media_type: str) -> dict[str, object]:
    return store.put_bytes(json.dumps(obj).encode(), media_type).model_dump(mode="json")


SCRIPT = "<script>alert(1)</script>"


def _full_run(store: ArtifactStore) -> str:
    """The synthetic run with what a finished run of a spec with a model card, a champion and a profile leaves."""
    record = store.read_json(f"runs/{_run(store)}.json")
    record |= {
        "description": f"Who cancels {SCRIPT}",
        "intended_use": "retention offers",
        "limitations": f"never saw minors {SCRIPT}",
        "libraries": {"scikit-learn": "1.9.1", "onnxruntime": "1.32.0", "mlflowkit": SCRIPT},
    }
    evaluate = record["steps"][0]
    metrics = json.loads(store.get_bytes(evaluate["outputs"]["metrics"]["key"]))
    pr = [{"label": "yes", "recall": [1, 0.5, 0], "precision": [0.4, 0.7, 1], "ap": 0.7, "base": 0.4}]
    calibration = {
        "label": "P(yes)",
        "points": [{"predicted": 0.2, "observed": 0.1, "rows": 6}, {"predicted": 0.8, "observed": 0.7, "rows": 4}],
        "brier": 0.12,
    }
    metrics |= {
        "metrics": {"accuracy": 0.8, "rmse_like": 26593.4695},
        "champion": {"version": 1, "metrics": {"accuracy": 0.75}, "note": ""},
        "pr_curves": pr,
        "calibration": calibration,
        "importance": {"metric": "accuracy", "rows": 10, "repeats": 3, "baseline": 0.8,
                       "features": [{"feature": "age", "mean": 0.2, "std": 0.05}, {"feature": SCRIPT, "mean": 0.01, "std": 0.01}]},
        "champion_curves": {"confusion_matrix": {"labels": ["no", "yes"], "matrix": [[4, 2], [2, 2]]},
                            "roc_curves": [{"label": "yes", "fpr": [0, 0.4, 1], "tpr": [0, 0.6, 1], "auc": 0.7}],
                            "pr_curves": pr, "calibration": calibration},
    }  # fmt: skip
    evaluate["outputs"]["metrics"] = put_json(store, metrics, "application/vnd.mlflowkit.metrics+json")
    checks = {"passed": True, "checks": 1, "failed": 0, "warned": 0, "results": [
        {"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 18, "max_value": 120},
         "table": "raw", "severity": "error", "passed": True, "expected": "18 to 120 (99% of rows)", "unexpected_percent": 0.5}]}  # fmt: skip
    profile = {"format": "mlflowkit/profile-v1", "rows": 8, "features": {
        "age": {"type": "numeric", "count": 8, "missing": 0.125, "mean": 41.5, "std": 9.25, "min": 19.0, "max": 77.0},
        "plan": {"type": "categorical", "count": 8, "missing": 0.0, "frequencies": {"basic": 0.75, SCRIPT: 0.25}}},
        "prediction": {"output": "probability", "type": "numeric", "count": 10, "missing": 0.0, "mean": 0.4, "std": 0.2, "min": 0.01, "max": 0.99}}  # fmt: skip
    record["steps"] += [
        {"name": "checks", "kind": "checks", "status": "ran", "seconds": 1,
         "outputs": {"validation": put_json(store, checks, "application/vnd.mlflowkit.validation+json")}},
        {"name": "profile", "kind": "profile", "status": "ran", "seconds": 1,
         "outputs": {"profile": put_json(store, profile, "application/vnd.mlflowkit.profile+json")}},
    ]  # fmt: skip
    store.write_json("runs/r1.json", record)
    return "r1"


def test_the_report_tells_purpose_data_champion_curves_and_versions(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = ArtifactStore(tmp_path)
    page = render(collect(store, _full_run(store)))
    # The spec's description opens the page; intended use and limitations open the model card.
    assert '<p class="description" id="description">Who cancels &lt;script&gt;' in page
    assert 'id="card-intended-use">retention offers</dd>' in page and 'id="card-limitations">never saw minors' in page
    # Data: the profile's numbers in the one format, the categories' shares, the model's output.
    assert '<section id="data">' in page and '<table id="profile">' in page
    assert "<td>12.5%</td>" in page and '<td class="num">41.5</td>' in page and "basic 75%" in page
    assert "model output (probability, held-out rows)" in page
    # Checks: what was allowed beside what was seen.
    assert "<th>expected</th><th>observed</th>" in page and "18 to 120 (99% of rows)" in page and "0.5% unexpected" in page
    # The champion on the curves and beside the confusion matrix; calibration, importance.
    for plot in ("confusion-matrix", "roc", "pr", "calibration", "importance", "fairness"):
        assert f'id="plot-{plot}"' in page, plot
    assert "confusion matrix: this model | champion v1" in page and "ROC curve, champion v1 dashed" in page
    # One number format: 26593.4695 is neither 2.659e+04 nor 26593.4695.
    assert '<td class="num">26593</td>' in page and "2.659e+04" not in page
    # Lineage: library versions; the example request folded away.
    assert '<table id="libraries">' in page and "<td>scikit-learn</td><td>1.9.1</td>" in page
    assert '<details id="example-request"><summary>' in page
    assert "<script" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


def test_a_spec_without_a_model_card_says_what_to_add(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    page = render(collect(store, _run(store)))
    assert "<code>model_card: {intended_use: ..., limitations: ...}</code>" in page
    assert 'id="description"' not in page and "not recorded (a run made before" in page
    assert "the run stopped before it loaded its data" in page and "no per-epoch history in this run" in page


def test_a_regressors_parity_is_about_predictions_and_it_plots_predicted_against_actual(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = ArtifactStore(tmp_path)
    record = store.read_json(f"runs/{_run(store, task='regression')}.json")
    contract = {
        **CONTRACT,
        "classes": [],
        "probability_output": None,
        "parity": {"rows": 5, "max_abs_diff": 0.001, "disagreeing_rows": 0},
    }
    record["steps"][1]["outputs"]["contract"] = put_json(store, contract, "application/vnd.mlflowkit.contract+json")
    store.write_json("runs/r1.json", record)
    page = render(collect(store, "r1"))
    assert "max |Δprediction| 0.001" in page and "Δprobability" not in page
    assert 'id="plot-predicted-actual"' in page and 'id="plot-residuals"' in page


def test_a_torch_run_shows_its_loss_per_epoch(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = ArtifactStore(tmp_path)
    run_id = _run(store)
    history = [{"epoch": i, "train_loss": 0.7 - 0.05 * i, "val_loss": 0.72 - 0.04 * i} for i in range(1, 6)]
    store.write_json(
        f"reports/{run_id}/train-epochs.json", {"key": "epochs", "title": "Training", "step": "train", "rows": history}
    )
    page = render(collect(store, run_id))
    assert 'id="plot-loss"' in page and "5 epochs; last: training loss 0.45, validation loss 0.52." in page
