"""Fixtures for driving step kinds directly: a harness per test, and one trained pipeline shared by the module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from kind_harness import Harness, Trained, write_table

from mlflowkit.store import ArtifactStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small random forest trained by the real kinds, once per test module."""
    from mlflowkit.kinds.data import Load, Split
    from mlflowkit.kinds.train import SklearnTrain

    folder = tmp_path_factory.mktemp("trained")
    write_table(folder / "data" / "churn.csv")
    h = Harness(folder)
    dataset = h.run(Load, {"source": "data/churn.csv", "target": "churned"}, step="load")["dataset"]
    parts = h.run(Split, {"test_size": 0.25}, {"dataset": dataset}, step="split")
    estimator = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 20, "max_depth": 4}}
    model = h.run(SklearnTrain, estimator, parts, step="train")["model"]
    return Trained(store=folder / "store", folder=folder, dataset=dataset, train=parts["train"], test=parts["test"], model=model)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    """A fresh store, registry and spec folder."""
    return Harness(tmp_path)


@pytest.fixture
def on_trained(tmp_path: Path, trained: Trained) -> Harness:
    """A harness reading the shared trained pipeline's store, with a registry of its own."""
    h = Harness(tmp_path, spec_dir=trained.folder)
    h.store = ArtifactStore(trained.store)
    return h
