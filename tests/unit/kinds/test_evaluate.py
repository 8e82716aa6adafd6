"""The evaluate kind, driven directly: typed metrics meta, and the champion scored on the same rows."""

from __future__ import annotations

import math

import pytest
from kind_harness import Harness, Trained

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import METRICS, MetricsMeta, Ref
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds.base import Inputs
from mlflowkit.kinds.evaluate import Evaluate
from mlflowkit.kinds.model_files import load_model


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


def test_the_rerun_after_a_new_champion_keeps_the_key_of_the_run_that_registered_it(trained: Trained, on_trained: Harness) -> None:
    """Model B is trained while A is the champion; B's run registers B, compared with A, and promotes it. The
    plain rerun that follows must find that run's evaluation (same model, same rows, same comparison) in the
    cache, not score B again beside itself and register it a second time."""
    kind = Evaluate()
    params = kind.Params.model_validate({"metrics": ["accuracy"]})
    ctx = on_trained.context("evaluate", "run-1")
    inputs = Inputs({"train": {"model": trained.model, "test": trained.test}}, ("train",))
    registry = on_trained.registry
    other = registry.register("churn", {"model.skops": b"model A"}, {"run_id": "r0"})
    registry.set_alias("churn", "champion", other.version, reason="A")
    first = kind.input_fingerprint(ctx, params, inputs)  # B's run, A the champion

    model = on_trained.store.get_bytes(trained.model)
    lineage = {"run_id": "r1", "champion_at_evaluation": {"version": other.version, "metrics": {"accuracy": 0.7}, "note": ""}}
    mine = registry.register("churn", {"model.skops": model}, lineage)
    registry.set_alias("churn", "champion", mine.version, reason="B passed its gates")
    assert kind.input_fingerprint(ctx, params, inputs) == first

    # Registered when there was no champion: the key of a run without one, as before.
    first_ever = registry.register("churn", {"model.skops": model}, {"champion_at_evaluation": {"version": None, "note": "no champion yet"}})
    registry.set_alias("churn", "champion", first_ever.version, reason="c")
    assert kind.input_fingerprint(ctx, params, inputs) == "no champion"
    # A version it names that is not there (any more): a new key, so the step runs.
    gone = registry.register("churn", {"model.skops": model}, {"champion_at_evaluation": {"version": 99}})
    registry.set_alias("churn", "champion", gone.version, reason="d")
    assert kind.input_fingerprint(ctx, params, inputs) not in {first, "no champion"}


def _with_meta(ref: Ref, **meta: object) -> Ref:
    """The same artifact with other meta (as another spec's load step would have carried it)."""
    return Ref.model_validate({**ref.model_dump(), "meta": {**ref.meta, **meta}})


def test_binary_metrics_are_about_data_positive(trained: Trained, on_trained: Harness) -> None:
    from sklearn import metrics as skm

    test = load_frame(on_trained.store, trained.test)
    predicted = load_model(on_trained.store, trained.model).predict(test.drop(columns=["churned"]))
    proba = load_model(on_trained.store, trained.model).predict_proba(test.drop(columns=["churned"]))
    names = ["precision", "recall", "f1", "roc_auc"]
    found = {}
    for positive in (None, "no", "yes"):
        model = trained.model if positive is None else _with_meta(trained.model, positive=positive)
        out = on_trained.run(Evaluate, {"metrics": names, "champion": False}, {"model": model, "test": trained.test})
        found[positive] = MetricsMeta.model_validate(out["metrics"].meta).metrics
        assert on_trained.report("metrics").title == f"metrics on the held-out split (positive class: {positive or 'yes'})"
    # Without data.positive the positive class is the greater label ('yes'); with it, the named one.
    assert found[None] == found["yes"]
    assert found["no"]["f1"] == pytest.approx(skm.f1_score(test["churned"], predicted, pos_label="no"))
    assert found["no"]["recall"] == pytest.approx(skm.recall_score(test["churned"], predicted, pos_label="no"))
    assert found["yes"]["f1"] == pytest.approx(skm.f1_score(test["churned"], predicted, pos_label="yes"))
    assert found["no"]["f1"] != pytest.approx(found["yes"]["f1"])
    assert found["no"]["roc_auc"] == pytest.approx(skm.roc_auc_score(test["churned"] == "no", proba[:, 0]))


def test_multiclass_roc_auc_is_one_vs_rest_macro_averaged(trained: Trained, on_trained: Harness) -> None:
    from sklearn import metrics as skm

    from mlflowkit.kinds.train import SklearnTrain

    three = _with_meta(trained.train, target="contract")
    model = on_trained.run(
        SklearnTrain,
        {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 20, "max_depth": 4}},
        {"train": three},
    )["model"]
    test = _with_meta(trained.test, target="contract")
    out = on_trained.run(Evaluate, {"metrics": ["roc_auc", "f1"], "champion": False}, {"model": model, "test": test})
    metrics = MetricsMeta.model_validate(out["metrics"].meta).metrics
    frame = load_frame(on_trained.store, trained.test)
    fitted = load_model(on_trained.store, model)
    proba = fitted.predict_proba(frame.drop(columns=["contract"]))
    per_class = [skm.roc_auc_score(frame["contract"] == label, proba[:, i]) for i, label in enumerate(fitted.classes_)]
    assert len(per_class) == 3
    assert metrics["roc_auc"] == pytest.approx(sum(per_class) / 3)  # each class against the rest, the plain mean
    assert metrics["f1"] == pytest.approx(
        skm.f1_score(frame["contract"], fitted.predict(frame.drop(columns=["contract"])), average="macro")
    )


def test_a_slice_where_a_metric_is_undefined_shows_the_reason_not_nan_or_a_warning(
    biased: tuple[Harness, dict[str, object]],
) -> None:
    import warnings

    h, inputs = biased
    params = {"metrics": ["accuracy", "roc_auc", "f1"], "slices": ["gender"], "champion": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one of scikit-learn's warnings reaches the user
        h.run(Evaluate, params, inputs)  # type: ignore[arg-type]
    rows = {row["slice"]: row for row in h.report("slices").rows or []}
    # Every woman in the biased data churns: on her slice roc_auc is not defined.
    female = rows["gender=female"]
    assert female["roc_auc"] is None and "roc_auc: Only one class" in female["note"]
    assert isinstance(female["accuracy"], float)
    male = rows["gender=male"]
    assert isinstance(male["roc_auc"], float) and male["note"] == ""


def test_calibration_and_permutation_importance_for_the_report(trained: Trained, on_trained: Harness) -> None:
    params = {"metrics": ["roc_auc", "accuracy"], "champion": False, "importance": {"rows": 60, "repeats": 2}}
    out = on_trained.run(Evaluate, params, {"model": trained.model, "test": trained.test})
    body = on_trained.store.read_json(out["metrics"].key)
    calibration = body["calibration"]
    assert calibration["label"] == "P(yes)" and 0 <= calibration["brier"] < 0.25  # better than always saying 0.5
    assert sum(p["rows"] for p in calibration["points"]) == 100
    assert all(0 <= p["predicted"] <= 1 and 0 <= p["observed"] <= 1 for p in calibration["points"])
    importance = body["importance"]
    assert importance["metric"] == "roc_auc" and importance["rows"] == 60 and importance["repeats"] == 2
    ranked = [f["feature"] for f in importance["features"]]
    # The label is made of tenure, charges and contract; the customer id and gender carry nothing.
    assert set(ranked[:2]) <= {"tenure_months", "monthly_charges", "contract"}, importance
    assert {f["feature"]: f["mean"] for f in importance["features"]}["tenure_months"] > 0.02
    off = on_trained.run(
        Evaluate, {"metrics": ["accuracy"], "champion": False, "importance": None}, {"model": trained.model, "test": trained.test}
    )
    assert "importance" not in on_trained.store.read_json(off["metrics"].key)


def test_the_champions_curves_are_kept_beside_the_candidates(trained: Trained, on_trained: Harness) -> None:
    on_trained.registry.register("churn", {"model.skops": on_trained.store.get_bytes(trained.model)}, {"run_id": "earlier"})
    on_trained.registry.set_alias("churn", "champion", 1, reason="first")
    out = on_trained.run(Evaluate, {"metrics": ["accuracy", "roc_auc"]}, {"model": trained.model, "test": trained.test})
    body = on_trained.store.read_json(out["metrics"].key)
    theirs = body["champion_curves"]
    assert set(theirs) == {"confusion_matrix", "roc_curves", "pr_curves", "calibration"}
    assert theirs["confusion_matrix"] == body["confusion_matrix"] and theirs["roc_curves"] == body["roc_curves"]  # the same model
    assert "curves" not in MetricsMeta.model_validate(out["metrics"].meta).model_dump()
