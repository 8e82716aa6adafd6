"""The evaluate kind, driven directly: typed metrics meta, and the champion scored on the same rows."""

from __future__ import annotations

import math

import pytest
from kind_harness import Harness, Trained

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import METRICS, MetricsMeta
from mlflowkit.kinds.base import Inputs
from mlflowkit.kinds.evaluate import Evaluate


def test_metrics_and_no_champion_yet(trained: Trained, on_trained: Harness) -> None:
    out = on_trained.run(Evaluate, {"metrics": ["accuracy", "roc_auc"]}, {"model": trained.model, "test": trained.test})
    (ref,) = out.values()
    meta = MetricsMeta.model_validate(ref.meta)
    assert ref.media_type == METRICS and meta.n_test == 100
    assert set(meta.metrics) == {"accuracy", "roc_auc"} and all(0 <= (v or 0) <= 1 for v in meta.metrics.values())
    assert meta.champion is not None and not meta.champion.exists and meta.champion.note == "no champion yet"
    assert {r["metric"] for r in on_trained.report("metrics").rows or []} == {"accuracy", "roc_auc"}


def test_the_champion_is_scored_on_the_same_rows(trained: Trained, on_trained: Harness) -> None:
    champion_bytes = on_trained.store.get_bytes(trained.model)
    on_trained.registry.register("churn", {"model.skops": champion_bytes}, {"run_id": "earlier"})
    on_trained.registry.set_alias("churn", "champion", 1, reason="first")
    out = on_trained.run(Evaluate, {"metrics": ["accuracy"]}, {"model": trained.model, "test": trained.test})
    meta = MetricsMeta.model_validate(out["metrics"].meta)
    assert meta.champion is not None and meta.champion.version == 1
    assert meta.champion.metrics == meta.metrics  # the same model on the same rows


def test_a_metric_that_cannot_be_computed_is_nan_not_a_crash(trained: Trained, on_trained: Harness) -> None:
    from mlflowkit.kinds.train import SklearnTrain

    svc = on_trained.run(SklearnTrain, {"estimator": "sklearn.svm.LinearSVC"}, {"train": trained.train})["model"]
    params = {"metrics": ["accuracy", "roc_auc"], "champion": False, "bootstrap": {"n": 10}}
    out = on_trained.run(Evaluate, params, {"model": svc, "test": trained.test})
    meta = MetricsMeta.model_validate(out["metrics"].meta)
    assert meta.metrics["roc_auc"] is None or math.isnan(meta.metrics["roc_auc"])  # no predict_proba: gates fail closed
    assert meta.champion is None
    interval = on_trained.store.read_json(out["metrics"].key)["ci"]
    assert interval["accuracy"][0] <= interval["accuracy"][1] and all(math.isnan(v) for v in interval["roc_auc"])


def test_regression_metrics_on_a_classifier_are_refused(trained: Trained, on_trained: Harness) -> None:
    with pytest.raises(StepFailed, match=r"metrics \['rmse'\] do not apply to a classification model"):
        on_trained.run(Evaluate, {"metrics": ["rmse"]}, {"model": trained.model, "test": trained.test})


@pytest.fixture(scope="module")
def biased(tmp_path_factory: pytest.TempPathFactory) -> tuple[Harness, dict[str, object]]:
    """A model trained on data whose labels depend on gender, and its held-out split."""
    import numpy as np
    import pandas as pd

    from mlflowkit.kinds.data import Load, Split
    from mlflowkit.kinds.train import SklearnTrain

    folder = tmp_path_factory.mktemp("biased")
    rng = np.random.default_rng(3)
    gender = rng.choice(["female", "male"], 600)
    charges = rng.normal(70, 20, 600)
    churned = np.where((gender == "female") | (charges > 95), "yes", "no")
    pd.DataFrame({"gender": gender, "monthly_charges": charges, "churned": churned}).to_csv(folder / "b.csv", index=False)
    h = Harness(folder)
    parts = h.run(Split, {}, h.run(Load, {"source": "b.csv", "target": "churned"}))
    model = h.run(SklearnTrain, {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}}, parts)["model"]
    return h, {"model": model, "test": parts["test"]}


def test_fairness_metrics_measure_a_biased_model_and_report_each_group(biased: tuple[Harness, dict[str, object]]) -> None:
    h, inputs = biased
    fairness = {"sensitive_features": ["gender"], "metrics": ["demographic_parity_difference"], "min_group_size": 10}
    out = h.run(Evaluate, {"metrics": ["accuracy"], "fairness": fairness, "champion": False}, inputs)  # type: ignore[arg-type]
    meta = MetricsMeta.model_validate(out["metrics"].meta)
    assert (meta.metrics["demographic_parity_difference"] or 0) > 0.5  # a gate `<= 0.10` fails on it
    rates = {row["group"]: row["selection_rate"] for row in h.report("fairness").rows or []}
    assert rates["female"] - rates["male"] > 0.5


def test_groups_too_small_to_compare_leave_the_disparity_nan(biased: tuple[Harness, dict[str, object]]) -> None:
    h, inputs = biased
    fairness = {"sensitive_features": ["gender"], "metrics": ["demographic_parity_difference"], "min_group_size": 1000}
    out = h.run(Evaluate, {"metrics": ["accuracy"], "fairness": fairness, "champion": False}, inputs)  # type: ignore[arg-type]
    value = MetricsMeta.model_validate(out["metrics"].meta).metrics["demographic_parity_difference"]
    assert value is None or math.isnan(value)  # so a gate on it fails closed (tests/unit/kinds/test_gates.py)
    assert all("fewer than 1000 rows" in row["note"] for row in h.report("fairness").rows or [])


def test_the_champion_joins_the_cache_key_unless_it_is_the_model_evaluated(trained: Trained, on_trained: Harness) -> None:
    """A rerun after the champion changed scores again: the champion's identity is in evaluate's key."""
    kind = Evaluate()
    params = kind.Params.model_validate({"metrics": ["accuracy"]})
    ctx = on_trained.context("evaluate", "run-1")
    inputs = Inputs({"train": {"model": trained.model, "test": trained.test}}, ("train",))

    def key(p: object = params) -> str | None:
        return kind.input_fingerprint(ctx, p, inputs)

    before = key()
    model = on_trained.store.get_bytes(trained.model)
    for n, data in enumerate((model, model + b"\n"), start=1):
        on_trained.registry.register("churn", {"model.joblib": data}, {"run_id": f"r{n}"})
    on_trained.registry.set_alias("churn", "champion", 1, reason="first")
    assert key() == before  # the champion is the model evaluated: nothing else to score, the cache still holds
    on_trained.registry.set_alias("churn", "champion", 2, reason="second")
    other = key()
    assert other != before and key() == other  # another champion: a new key, stable while it stays
    assert kind.input_fingerprint(ctx, params.model_copy(update={"champion": False}), inputs) is None
