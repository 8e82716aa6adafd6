"""An estimator class from outside scikit-learn, offered to specs through the ``mlflowkit.estimators`` entry point.

A spec names it by its import path (``train.estimator: mlflowkit_example_plugins.estimators.CostSensitiveClassifier``);
validate reads its parameters from its signature (and scikit-learn's ``_parameter_constraints``) as for any estimator.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval


class CostSensitiveClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression whose positive class (the last label) weighs ``cost_ratio`` times the other."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "cost_ratio": [Interval(Real, 0, None, closed="neither")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, cost_ratio: float = 5.0, C: float = 1.0, max_iter: int = 200) -> None:
        self.cost_ratio = cost_ratio
        self.C = C
        self.max_iter = max_iter

    def fit(self, x: Any, y: Any) -> CostSensitiveClassifier:
        import numpy as np

        self.classes_ = np.unique(y)
        weights = {label: (self.cost_ratio if label == self.classes_[-1] else 1.0) for label in self.classes_}
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=weights).fit(x, y)
        return self

    def predict(self, x: Any) -> Any:
        return self.model_.predict(x)

    def predict_proba(self, x: Any) -> Any:
        return self.model_.predict_proba(x)
