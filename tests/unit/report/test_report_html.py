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
