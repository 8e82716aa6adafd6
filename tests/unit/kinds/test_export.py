"""The onnx and profile kinds, driven directly: an ONNX model that matches the native one, its contract, the profile."""

from __future__ import annotations

import json

import pytest
from kind_harness import Harness, Trained

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import CONTRACT, ONNX, PROFILE
from mlflowkit.kinds.export import SKEW_ENV, OnnxExport
from mlflowkit.kinds.profile import Profile
from mlflowkit.targets.contract import Contract


def test_export_writes_onnx_and_a_contract_that_match_the_model(trained: Trained, on_trained: Harness) -> None:
    out = on_trained.run(OnnxExport, {}, {"model": trained.model, "test": trained.test}, step="export")
    assert (out["onnx"].media_type, out["contract"].media_type) == (ONNX, CONTRACT)
    contract = Contract.model_validate_json(on_trained.store.get_bytes(out["contract"]))
    assert contract.classes == ("no", "yes") and contract.target == "churned"
    assert [i.name for i in contract.inputs] == ["customer_id", "tenure_months", "monthly_charges", "contract", "gender"]
    assert out["onnx"].meta["parity"]["ok"] is True and out["onnx"].meta["parity"]["rows"] == 100
    assert on_trained.report("parity").title.endswith("PASS")

    profile = on_trained.run(Profile, {"seed": 1}, {**out, "train": trained.train, "test": trained.test}, step="profile")
    body = json.loads(on_trained.store.get_bytes(profile["profile"]))
    assert profile["profile"].media_type == PROFILE and profile["profile"].meta == {"rows": 300, "features": 5}
    assert set(body["features"]) == set(contract.features) and body["prediction"]["count"] == 100


def test_the_same_model_fitted_again_exports_the_same_bytes(trained: Trained, on_trained: Harness) -> None:
    from mlflowkit.kinds.train import SklearnTrain

    # skops writes a different file for each fit; the ONNX export (what deploys, and what register compares) does not.
    estimator = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 20, "max_depth": 4}}
    refitted = on_trained.run(SklearnTrain, estimator, {"train": trained.train}, step="train")["model"]
    first = on_trained.run(OnnxExport, {"max_rows": 20}, {"model": trained.model, "test": trained.test})
    again = on_trained.run(OnnxExport, {"max_rows": 20}, {"model": refitted, "test": trained.test})
    assert first["onnx"].sha256 == again["onnx"].sha256 and first["contract"].sha256 == again["contract"].sha256


def test_a_profile_without_an_export_has_the_features_only(trained: Trained, on_trained: Harness) -> None:
    profile = on_trained.run(Profile, {}, {"train": trained.train, "test": trained.test})["profile"]
    body = json.loads(on_trained.store.get_bytes(profile))
    assert "churned" not in body["features"] and "prediction" not in body


def test_an_export_that_disagrees_with_the_model_stops_the_run(trained: Trained, on_trained: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SKEW_ENV, "0.01")
    with pytest.raises(StepFailed, match="ONNX export does not match the native model on the held-out rows"):
        on_trained.run(OnnxExport, {"max_rows": 20}, {"model": trained.model, "test": trained.test}, step="export")
    assert on_trained.report("parity").title.endswith("FAIL")
