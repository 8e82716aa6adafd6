"""The churn example's work, hand-written with the same libraries: what a user would otherwise run (bench/e2e_vs_script.py).

    python bench/churn_script.py examples/churn OUT_DIR

Reads data/churn.csv; splits it (stratified, seed 42); checks raw, train and test with Great
Expectations (the spec's checks: schema, row count, target classes, unique and non-null ids, age
between 18 and 120 for 99 %, contract in its set, mean monthly charges, and train/test leakage by a
merge); adds the example's feature; fits the same scikit-learn pipeline (median and most-frequent
imputers, one-hot encoding, a random forest of 150 trees of depth 10); scores accuracy, F1, ROC AUC
and log loss with 100 bootstrap resamples, by contract slice and the demographic parity difference
by gender (fairlearn); applies the gates; exports to ONNX (skl2onnx) and checks it against the
native model with ONNX Runtime; keeps a profile of the data; saves the model, the ONNX model and
the metrics to OUT_DIR. Prints the metrics as JSON on its last line.
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

SCHEMA = {"customer_id": "str", "age": "int64", "gender": "str", "tenure_months": "int64", "contract": "str",
          "monthly_charges": "float64", "support_calls": "int64", "paperless_billing": "str", "churned": "str"}  # fmt: skip


def check(frames: dict[str, pd.DataFrame]) -> None:
    """The spec's checks with Great Expectations: a suite per table, validated on a pandas batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations as gx
    from great_expectations import expectations as e

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("frames")
    raw = [
        e.ExpectTableColumnsToMatchSet(column_set=list(SCHEMA)),
        *[e.ExpectColumnValuesToBeOfType(column=c, type_=t) for c, t in SCHEMA.items() if t != "str"],
        e.ExpectTableRowCountToBeBetween(min_value=1000),
        e.ExpectColumnDistinctValuesToBeInSet(column="churned", value_set=["yes", "no"]),
        e.ExpectColumnValuesToBeUnique(column="customer_id"),
        e.ExpectColumnValuesToNotBeNull(column="customer_id"),
        e.ExpectColumnValuesToBeBetween(column="age", min_value=18, max_value=120, mostly=0.99),
        e.ExpectColumnValuesToBeInSet(column="contract", value_set=["month-to-month", "one-year", "two-year"]),
    ]
    failed = []
    for name, frame in frames.items():
        suite = [*raw] if name == "raw" else []
        suite.append(e.ExpectColumnMeanToBeBetween(column="monthly_charges", min_value=50, max_value=90))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name).get_batch(
            batch_parameters={"dataframe": frame}
        )
        result = batch.validate(gx.ExpectationSuite(name=name, expectations=suite))
        failed += [f"{name}: {r.expectation_config.type}" for r in result.results if not r.success]
    leaked = frames["train"][["customer_id"]].merge(frames["test"][["customer_id"]], on="customer_id")
    if len(leaked):
        failed.append(f"leakage: {len(leaked)} ids in both train and test")
    if any("mean" not in f for f in failed):  # the mean check only warns
        raise SystemExit(f"data checks failed: {failed}")


def add_features(df: pd.DataFrame, cap: float = 100.0) -> pd.DataFrame:
    out = df.drop(columns=["customer_id"])
    out["charges_per_tenure"] = (df["monthly_charges"] / (df["tenure_months"] + 1)).clip(upper=cap)
    return out


def pipeline(x: pd.DataFrame) -> Pipeline:
    categorical = [c for c in x.columns if x[c].dtype.kind in "OSUb" or str(x[c].dtype) in {"category", "str", "string"}]
    numeric = [c for c in x.columns if c not in categorical]
    encode = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    pre = ColumnTransformer([("numeric", SimpleImputer(strategy="median"), numeric), ("categorical", encode, categorical)])
    model = RandomForestClassifier(n_estimators=150, max_depth=10, n_jobs=2, random_state=42)
    return Pipeline([("preprocess", pre), ("model", model)])


def scores(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    pos = classes[-1]
    out = {"accuracy": skm.accuracy_score(y, pred), "f1": skm.f1_score(y, pred, average="binary", pos_label=pos, zero_division=0)}
    out["roc_auc"] = skm.roc_auc_score(y == pos, proba[:, -1])
    out["log_loss"] = skm.log_loss(y, proba, labels=classes)
    return {k: float(v) for k, v in out.items()}


def main(project: Path, out: Path) -> dict[str, float]:
    df = pd.read_csv(project / "data" / "churn.csv")
    train, test = train_test_split(df, test_size=0.2, random_state=42, stratify=df["churned"])
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    check({"raw": df, "train": train, "test": test})
    train, test = add_features(train), add_features(test)
    x, y = train.drop(columns=["churned"]), train["churned"]
    xt, yt = test.drop(columns=["churned"]), np.asarray(test["churned"])
    model = pipeline(x).fit(x, y)
    classes = list(model.classes_)
    pred, proba = model.predict(xt), model.predict_proba(xt)
    metrics = scores(yt, pred, proba, classes)
    rng = np.random.default_rng(42)
    draws = [scores(yt[i], pred[i], proba[i], classes) for i in (rng.integers(0, len(yt), len(yt)) for _ in range(100))]
    ci = {m: np.nanpercentile([d[m] for d in draws], [2.5, 97.5]).tolist() for m in metrics}
    masks = {str(v): (xt["contract"] == v).to_numpy() for v in sorted(set(xt["contract"]))}
    slices = {v: scores(yt[m], pred[m], proba[m], classes) for v, m in masks.items() if m.any()}
    import fairlearn.metrics as flm

    gender = xt["gender"].astype(str).to_numpy()
    positive = ((yt == classes[-1]).astype(int), (pred == classes[-1]).astype(int))
    metrics["demographic_parity_difference"] = float(flm.demographic_parity_difference(*positive, sensitive_features=gender))
    gates = [metrics["accuracy"] >= 0.70, metrics["roc_auc"] >= 0.75, metrics["demographic_parity_difference"] <= 0.10]
    if not all(gates):
        raise SystemExit(f"gates failed: {metrics}")

    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(c, StringTensorType([None, 1]) if xt[c].dtype.kind in "OSU" or str(xt[c].dtype) in {"str", "string"}
              else FloatTensorType([None, 1])) for c in xt.columns]  # fmt: skip
    exported = copy.deepcopy(model)  # ONNX strings have no NaN: the text imputer is exported as imputing ""
    exported.named_steps["preprocess"].named_transformers_["categorical"].named_steps["impute"].missing_values = ""
    proto = convert_sklearn(exported, initial_types=types, target_opset=17, options={id(exported): {"zipmap": False}})
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {c: xt[[c]].astype(str if isinstance(t, StringTensorType) else np.float32).to_numpy() for c, t in types}
    onnx_proba = session.run(None, feeds)[1]
    if not np.allclose(onnx_proba, proba, atol=1e-4):
        raise SystemExit("ONNX parity failed")
    profile = {name: frame.describe(include="all").to_json() for name, frame in (("train", train), ("test", test))}

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    (out / "model.onnx").write_bytes(proto.SerializeToString())
    (out / "metrics.json").write_text(json.dumps({"metrics": metrics, "ci": ci, "slices": slices, "profile": profile}))
    return metrics


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
