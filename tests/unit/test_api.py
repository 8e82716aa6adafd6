"""The Python API for what was trained: load_model (skops here; ONNX in the notebook example's test), runs(), models()."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import mlflowkit
from mlflowkit.errors import MlflowkitError, RegistryError
from mlflowkit.kinds.model_files import UntrustedModel
from mlflowkit.store import registry_at


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store whose registry holds model ``m``: v1 a fitted scikit-learn classifier (skops), v2 a pickle only."""
    import io

    import joblib
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    monkeypatch.chdir(tmp_path)  # no policy governs this folder
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
    fitted = LogisticRegression().fit(frame, ["n", "n", "n", "y", "y", "y"])
    root = tmp_path / ".mlflowkit"
    registry = registry_at(str(root))
    lineage = {"features": ["a", "b"], "run_id": "r1", "spec_name": "s", "metrics": {"accuracy": 1.0}, "verdict": {"passed": True}}
    registry.register("m", {"model.skops": sio.dumps(fitted)}, lineage)
    registry.set_alias("m", "champion", 1, reason="test")
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    registry.register("m", {"model.joblib": buffer.getvalue()}, {"features": ["a", "b"]})
    return root


def test_load_model_by_alias_version_and_default_champion(store: Path) -> None:
    model = mlflowkit.load_model("m@champion", store=store)
    assert model.backend == "skops" and model.version.version == 1 and model.features == ("a", "b")
    rows = pd.DataFrame({"b": [0.0, 1.0], "a": [0.0, 5.0], "extra": ["x", "y"]})  # any order; other columns ignored
    assert list(model.predict(rows)) == ["n", "y"]
    proba = model.predict_proba(rows)
    assert proba.shape == (2, 2) and list(model.classes_) == ["n", "y"] and proba[1, 1] > 0.5
    assert mlflowkit.load_model("m", store=store).version.version == 1
    assert mlflowkit.load_model("m/1", store=str(store)).version.version == 1
    assert "m v1 (champion) via skops" in repr(model)
    with pytest.raises(MlflowkitError, match="lacks b"):
        model.predict(pd.DataFrame({"a": [1.0]}))


def test_load_model_refuses_what_it_cannot_vouch_for(store: Path) -> None:
    with pytest.raises(UntrustedModel, match="pickle"):
        mlflowkit.load_model("m/2", store=store)  # unsigned pickle: never loaded
    with pytest.raises(RegistryError, match="no alias 'nope'"):
        mlflowkit.load_model("m@nope", store=store)
    with pytest.raises(RegistryError, match="MODEL@ALIAS"):
        mlflowkit.load_model("M m", store=store)


def test_the_store_defaults_to_the_environment(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOWKIT_STORE", str(store))
    assert mlflowkit.load_model("m@champion").version.version == 1


def test_models_lists_every_version(store: Path) -> None:
    table = mlflowkit.models(store)
    assert list(table["version"]) == [1, 2] and list(table["aliases"]) == ["champion", ""]
    assert table.loc[0, "metrics.accuracy"] == 1.0 and table.loc[0, "verdict"] == "pass"
    assert pd.isna(table.loc[1, "verdict"])


def test_runs_of_an_empty_store_is_an_empty_frame(tmp_path: Path) -> None:
    table = mlflowkit.runs(tmp_path / "nothing")
    assert table.empty and "run_id" in table.columns
    assert mlflowkit.models(tmp_path / "nothing").empty
    with pytest.raises(RegistryError, match=f"no store at {tmp_path / 'nothing'}"):
        mlflowkit.load_model("churn", store=tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()  # reading made no store
