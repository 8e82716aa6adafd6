"""The sklearn kind, driven directly: the fitted pipeline and its typed model meta, and what it refuses."""

from __future__ import annotations

import pytest
from kind_harness import Harness, Trained

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import SKOPS, ModelMeta, TableMeta
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds.model_files import load_model
from mlflowkit.kinds.train import SklearnTrain


def test_the_model_output_carries_what_later_steps_read(trained: Trained, on_trained: Harness) -> None:
    assert trained.model.media_type == SKOPS
    meta = ModelMeta.model_validate(trained.model.meta)
    assert meta.estimator == "sklearn.ensemble.RandomForestClassifier" and meta.framework == "sklearn"
    assert meta.task == "classification" and meta.classes == ("no", "yes") and meta.target == "churned"
    assert meta.features == ("customer_id", "tenure_months", "monthly_charges", "contract", "gender")
    assert meta.params["n_estimators"] == 20 and meta.params["random_state"] == 42  # the seed reaches the estimator
    assert meta.data_fingerprint == TableMeta.model_validate(trained.dataset.meta).data_fingerprint
    model = load_model(on_trained.store, trained.model)
    test = load_frame(on_trained.store, trained.test)
    # Preprocessing is inside the model: raw columns with missing values and text go in.
    assert set(model.predict(test.drop(columns=["churned"]))) <= {"no", "yes"}


def test_a_regressor_is_a_regression_model(trained: Trained, on_trained: Harness) -> None:
    from mlflowkit.handoff import Ref

    numeric = Ref.model_validate({**trained.train.model_dump(), "meta": {**trained.train.meta, "target": "tenure_months"}})
    model = on_trained.run(SklearnTrain, {"estimator": "sklearn.linear_model.Ridge"}, {"train": numeric})["model"]
    meta = ModelMeta.model_validate(model.meta)
    assert meta.task == "regression" and meta.classes == () and meta.target == "tenure_months"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"estimator": "sklearn.ensemble.NoSuchForest"}, "cannot import sklearn.ensemble.NoSuchForest"),
        ({"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"trees": 3}}, "cannot create sklearn.ensemble.RandomForestClassifier"),
        ({"estimator": "sklearn.linear_model.LinearRegression", "preprocess": "none"}, "LinearRegression.fit failed"),
    ],
)
def test_bad_estimators_fail_the_step_naming_it(trained: Trained, on_trained: Harness, params: dict[str, object], message: str) -> None:
    with pytest.raises(StepFailed, match=message):
        on_trained.run(SklearnTrain, params, {"train": trained.train}, step="train")


def test_excluded_columns_stay_out_of_the_model_and_in_the_data_for_fairness(trained: Trained, on_trained: Harness) -> None:
    from mlflowkit.handoff import MetricsMeta
    from mlflowkit.kinds.evaluate import Evaluate

    params = {"estimator": "sklearn.tree.DecisionTreeClassifier", "exclude": ["customer_id", "gender"]}
    model = on_trained.run(SklearnTrain, params, {"train": trained.train})["model"]
    meta = ModelMeta.model_validate(model.meta)
    assert meta.features == ("tenure_months", "monthly_charges", "contract")
    fitted = load_model(on_trained.store, model)
    assert list(fitted.feature_names_in_) == ["tenure_months", "monthly_charges", "contract"]
    # Evaluate still reads the excluded column for fairness and slices.
    evaluate = {"metrics": ["accuracy"], "slices": ["gender"], "fairness": {"sensitive_features": ["gender"]}, "champion": False}
    out = on_trained.run(Evaluate, evaluate, {"model": model, "test": trained.test})
    assert "demographic_parity_difference" in MetricsMeta.model_validate(out["metrics"].meta).metrics
    assert {row["group"] for row in on_trained.report("fairness").rows or []} == {"female", "male"}


def test_features_are_the_inputs_in_their_order(trained: Trained, on_trained: Harness) -> None:
    params = {"estimator": "sklearn.tree.DecisionTreeClassifier", "features": ["contract", "tenure_months"]}
    model = on_trained.run(SklearnTrain, params, {"train": trained.train})["model"]
    assert ModelMeta.model_validate(model.meta).features == ("contract", "tenure_months")
    assert list(load_model(on_trained.store, model).feature_names_in_) == ["contract", "tenure_months"]


def test_the_positive_class_reaches_the_model_meta(trained: Trained, on_trained: Harness) -> None:
    from mlflowkit.handoff import Ref

    train = Ref.model_validate({**trained.train.model_dump(), "meta": {**trained.train.meta, "positive": "no"}})
    model = on_trained.run(SklearnTrain, {"estimator": "sklearn.tree.DecisionTreeClassifier"}, {"train": train})["model"]
    assert ModelMeta.model_validate(model.meta).positive == "no"


def test_the_n_jobs_the_step_sets_draws_no_warning_but_the_users_own_does(trained: Trained, on_trained: Harness) -> None:
    import warnings

    # scikit-learn 1.8+ says LogisticRegression's n_jobs "has no effect": about the step's CPUs, the user wrote nothing.
    params = {"estimator": "sklearn.linear_model.LogisticRegression", "features": ["tenure_months", "contract"], "cpus": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on_trained.run(SklearnTrain, {**params, "params": {"max_iter": 2000}}, {"train": trained.train})
    with pytest.warns(FutureWarning, match="n_jobs"):
        on_trained.run(SklearnTrain, {**params, "params": {"max_iter": 2000, "n_jobs": 2}}, {"train": trained.train})
