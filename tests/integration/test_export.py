"""ONNX export on real skl2onnx and ONNX Runtime: mixed columns with missing values, parity, and a flow that stops on a parity failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import mlflowkit
from mlflowkit.errors import StepFailed
from mlflowkit.kinds.export import SKEW_ENV, export_onnx
from mlflowkit.runtime.engine import run_spec
from mlflowkit.targets.contract import feeds, run_onnx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
sys.path.insert(0, str(EXAMPLE))
from make_data import make  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make(1500).drop(columns=["customer_id"])
    rng = np.random.default_rng(0)
    # Missing values in both kinds of column, in training and in the held-out rows.
    for column in ("age", "monthly_charges", "contract", "gender"):
        frame.loc[rng.random(len(frame)) < 0.05, column] = None
    return frame.iloc[:1200].reset_index(drop=True), frame.iloc[1200:].reset_index(drop=True)


def scaled_pipeline(train: pd.DataFrame) -> Pipeline:
    """Imputer + scaler on numbers, imputer + one-hot on text, in a ColumnTransformer: the common preprocessing."""
    x = train.drop(columns=["churned"])
    text = [c for c in x.columns if x[c].dtype.kind not in "iuf"]
    numbers = [c for c in x.columns if c not in text]
    pre = ColumnTransformer(
        [
            ("numbers", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), numbers),
            (
                "text",
                Pipeline(
                    [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder(handle_unknown="ignore"))]
                ),
                text,
            ),
        ]
    )
    return Pipeline([("preprocess", pre), ("model", LogisticRegression(max_iter=1000))]).fit(x, train["churned"])


def export(model: Any, test: pd.DataFrame, **kw: Any) -> Any:
    features = [c for c in test.columns if c != "churned"]
    return export_onnx(model, test, features=features, classes=list(model.classes_), target="churned", **kw)


def test_mixed_columns_with_missing_values_export_with_parity(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = data
    model = scaled_pipeline(train)
    onnx_bytes, contract = export(model, test)
    assert contract.parity["ok"] and contract.parity["rows"] == len(test) == 300
    assert contract.parity["max_abs_diff"] <= 1e-5 and contract.parity["disagreeing_rows"] == 0
    types = {t.name: t.dtype for t in contract.inputs}
    assert types == {
        "age": "float32", "gender": "string", "tenure_months": "float32", "contract": "string",
        "monthly_charges": "float32", "support_calls": "float32", "paperless_billing": "string",
    }  # fmt: skip
    assert [o.name for o in contract.outputs] == ["label", "probabilities"]
    assert contract.outputs[1].shape == (-1, 2) and contract.classes == ("no", "yes")
    assert contract.max_opset >= 15 and contract.producer["skl2onnx"]
    # A category never seen in training is ignored by both, as the native encoder does.
    odd = test.head(5).assign(contract="ten-year")
    got = run_onnx(onnx_bytes, feeds(contract, odd))
    assert got["label"].tolist() == model.predict(odd.drop(columns=["churned"])).tolist()
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(odd.drop(columns=["churned"])), atol=1e-5)


def test_an_explicit_opset_is_used_and_one_too_new_is_refused(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = data
    model = scaled_pipeline(train)
    _, contract = export(model, test, opset=15)
    assert contract.max_opset == 15 and contract.parity["ok"]
    with pytest.raises(StepFailed, match=r"opset 99 is not supported here: skl2onnx .* goes up to \d+"):
        export(model, test, opset=99)


def test_a_perturbed_export_fails_parity_with_the_numbers(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = data
    _, contract = export(scaled_pipeline(train), test, skew=1e-3)
    parity = contract.parity
    assert not parity["ok"]
    assert parity["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2) and parity["disagreeing_rows"] == 0
    assert "max |Δprobability| = 0.001 (tolerance 1e-05), 0 of 300 rows disagree on the label" == parity["describe"]


def test_a_custom_transformer_cannot_be_converted_and_says_so(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = data
    numbers = ["age", "tenure_months", "monthly_charges", "support_calls"]
    model = Pipeline(
        [
            ("preprocess", ColumnTransformer([("n", SimpleImputer(), numbers)])),
            ("log", FunctionTransformer(np.log1p)),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(train[numbers], train["churned"])
    with pytest.raises(StepFailed, match=r"skl2onnx cannot convert this model \(LogisticRegression\): .*FunctionTransformer"):
        export_onnx(model, test, features=numbers, classes=["no", "yes"], target="churned")


@pytest.mark.prefect
def test_parity_failure_stops_the_flow_before_register(churn_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SKEW_ENV, "0.001")
    spec = mlflowkit.load_spec(churn_project / "spec.yaml")
    result = run_spec(spec, mlflowkit.compile(spec))
    assert not result.ok
    assert isinstance(result.exception, StepFailed) and result.exception.step == "export"
    message = str(result.exception)
    assert "ONNX export does not match the native model on the held-out rows" in message
    assert "max |Δprobability| = 0.001 (tolerance 1e-05), 0 of 1200 rows disagree on the label" in message
    statuses = {s.name: s.status for s in result.steps}
    assert statuses["export"] == "failed" and statuses["register"] == "skipped" and statuses["deploy"] == "skipped"
    assert not (churn_project / ".mlflowkit" / "registry" / "churn").exists()
    report = json.loads((churn_project / ".mlflowkit" / "reports" / result.run_id / "export-parity.json").read_text())
    assert report["title"] == "ONNX parity on the held-out split: FAIL"
