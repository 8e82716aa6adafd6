"""The ``expected_cost`` metric: what wrong churn predictions cost per customer; gates can read it."""

from __future__ import annotations

from typing import Any

import mlflowkit

MISSED_CHURNER = 5.0
"""A churner the model missed: the customer is lost."""
FALSE_ALARM = 1.0
"""A retention offer made to a customer who would have stayed."""


@mlflowkit.metric(task="classification", greater_is_better=False)
def expected_cost(y_true: Any, y_pred: Any, classes: list[Any]) -> float:
    """Average cost per customer of wrong predictions (missed churner 5, false alarm 1)."""
    import numpy as np

    positive = classes[-1]  # the last class is the positive one ("yes" of no/yes)
    actual, predicted = np.asarray(y_true) == positive, np.asarray(y_pred) == positive
    cost = MISSED_CHURNER * np.sum(actual & ~predicted) + FALSE_ALARM * np.sum(~actual & predicted)
    return float(cost / max(len(actual), 1))
