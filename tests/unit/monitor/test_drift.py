"""Drift verdicts on the shipped churn data, with shifts injected into a held-back part of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlflowkit.monitor.drift import compare, js_distance, psi
from mlflowkit.monitor.profile import build_profile, summarize
from mlflowkit.spec.monitoring import MonitorSpec

DATA = Path(__file__).parents[3] / "examples" / "churn" / "data" / "churn.csv"
FEATURES = ["age", "gender", "tenure_months", "contract", "monthly_charges", "support_calls", "paperless_billing"]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    table = pd.read_csv(DATA)
    return table.iloc[:4000].reset_index(drop=True), table.iloc[4000:].reset_index(drop=True)


@pytest.fixture(scope="module")
def profile(frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict:
    return build_profile(frames[0], FEATURES)


def verdicts(report) -> dict[str, str]:
    return {f.feature: f.status for f in report.features}


def test_profile_summarises_numbers_and_text(profile: dict) -> None:
    age, contract = profile["features"]["age"], profile["features"]["contract"]
    assert age["type"] == "numeric" and len(age["fractions"]) == len(age["edges"]) + 1
    assert sum(age["fractions"]) == pytest.approx(1.0)
    assert 18 <= age["min"] and age["max"] <= 80 and len(age["sample"]) == 1000
    assert contract["type"] == "categorical"
    assert set(contract["frequencies"]) == {"month-to-month", "one-year", "two-year"}
    assert contract["frequencies"]["month-to-month"] == pytest.approx(0.55, abs=0.03)


def test_same_distribution_is_not_drift(frames, profile) -> None:
    report = compare(profile, frames[1], MonitorSpec(), model="m", version=1)
    assert report.verdict == "ok", report.reasons
    assert set(verdicts(report).values()) == {"ok"}


def test_mean_shift_flags_that_feature_only(frames, profile) -> None:
    live = frames[1].copy()
    live["monthly_charges"] = live["monthly_charges"] + 25
    report = compare(profile, live, MonitorSpec(), model="m", version=1)
    assert report.verdict == "drift"
    assert verdicts(report) == {f: ("drift" if f == "monthly_charges" else "ok") for f in FEATURES}
    shifted = report.feature("monthly_charges")
    assert shifted.metrics["psi"] > 0.2 and shifted.metrics["ks_pvalue"] < 1e-6
    assert any(r.startswith("PSI") for r in shifted.reasons) and any(r.startswith("KS") for r in shifted.reasons)


def test_new_category_is_named(frames, profile) -> None:
    live = frames[1].copy()
    live.loc[live.index[::4], "contract"] = "three-year"
    report = compare(profile, live, MonitorSpec(), model="m", version=1)
    contract = report.feature("contract")
    assert contract.status == "drift"
    assert contract.metrics["new_categories"] == pytest.approx(0.25, abs=0.01)
    assert contract.live["new"] == ["three-year"]
    assert any("unseen in training ('three-year')" in r for r in contract.reasons)
    assert {f: s for f, s in verdicts(report).items() if f != "contract"} == {f: "ok" for f in FEATURES if f != "contract"}


def test_missing_feature_is_drift(frames, profile) -> None:
    report = compare(profile, frames[1].drop(columns=["tenure_months"]), MonitorSpec(), model="m", version=1)
    assert report.feature("tenure_months").status == "missing"
    assert report.verdict == "drift" and "tenure_months" in report.reasons[0]


def test_missing_values_share(frames, profile) -> None:
    live = frames[1].copy()
    live.loc[live.index[::3], "age"] = np.nan
    report = compare(profile, live, MonitorSpec(), model="m", version=1)
    assert report.feature("age").status == "drift"
    assert report.feature("age").metrics["missing_delta"] == pytest.approx(1 / 3, abs=0.01)


def test_thresholds_overrides_ignore_and_min_rows(frames, profile) -> None:
    live = frames[1].copy()
    live["monthly_charges"] = live["monthly_charges"] + 25
    spec = MonitorSpec.model_validate({"features": {"monthly_charges": {"ignore": True}}})
    report = compare(profile, live, spec, model="m", version=1)
    assert report.feature("monthly_charges").status == "ignored" and report.verdict == "ok"
    spec = MonitorSpec.model_validate({"min_drifted_features": 2})
    assert compare(profile, live, spec, model="m", version=1).verdict == "ok"
    few = compare(profile, live.iloc[:10], MonitorSpec(), model="m", version=1)
    assert few.verdict == "too-few-rows" and not few.drifted


def test_numbers_turned_text(frames, profile) -> None:
    live = frames[1].copy()
    live["age"] = live["age"].astype(str) + " years"
    assert compare(profile, live, MonitorSpec(), model="m", version=1).feature("age").status == "drift"


def test_metric_functions() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert psi([0.5, 0.5], [0.9, 0.1]) > 0.4
    assert js_distance({"a": 1.0}, {"a": 1.0}) == pytest.approx(0.0, abs=1e-6)
    assert js_distance({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0, abs=1e-6)
    summary = summarize(pd.Series(["x"] * 150 + [f"v{i}" for i in range(120)]))
    assert summary["frequencies"]["x"] == pytest.approx(150 / 270) and "__other__" in summary["frequencies"]


def test_live_data_reads_csv_prediction_logs_and_triton_requests(tmp_path: Path) -> None:
    import json

    from mlflowkit.runtime.monitor import read_live

    (tmp_path / "a.csv").write_text("age,contract\n30,one-year\n40,two-year\n")
    edge_log = [{"at": "t", "inputs": {"age": 50, "contract": "one-year"}, "label": "no"}]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in edge_log) + "\n")
    triton = {
        "id": "r1",
        "inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [[61], [72]]},
            {"name": "contract", "shape": [2, 1], "datatype": "BYTES", "data": ["two-year", "one-year"]},
        ],
    }
    (tmp_path / "c.jsonl").write_text(json.dumps(triton) + "\n")
    table = read_live(str(tmp_path / "*"))
    assert table["age"].tolist() == [30, 40, 50, 61, 72]
    assert table["contract"].tolist() == ["one-year", "two-year", "one-year", "two-year", "one-year"]
    assert table["prediction"].tolist()[2] == "no"


def test_rotated_logs_torn_lines_partial_labels_and_ignored_missing_columns(tmp_path: Path, frames, profile) -> None:
    import json

    from mlflowkit.monitor.drift import _label
    from mlflowkit.runtime.monitor import read_live

    (tmp_path / "predictions.jsonl").write_text(json.dumps({"inputs": {"age": 1}, "label": "no"}) + "\n")
    (tmp_path / "predictions.jsonl.1").write_text(json.dumps({"inputs": {"age": 2}}) + '\n{"inputs": {"ag')
    assert sorted(read_live(str(tmp_path / "predictions.jsonl*"))["age"]) == [1, 2]  # rotated file read as JSON lines
    assert _label(1.0) == _label(1) == _label("1") == "1" and _label(np.int64(0)) == "0"
    spec = MonitorSpec.model_validate({"features": {"tenure_months": {"ignore": True}}})
    report = compare(profile, frames[1].drop(columns=["tenure_months"]), spec, model="m", version=1)
    assert report.feature("tenure_months").status == "ignored" and report.verdict == "ok"
