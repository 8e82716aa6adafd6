"""Metrics by name: the built-in catalogs, and custom metrics (functions of the held-out labels and predictions)
that ``evaluate`` computes and gates read.

The catalogs live here, below both ``evaluate`` (which computes them) and the plug-in loader (which keeps a
plug-in from taking a built-in name). A custom metric is made with :func:`metric` and registered under the
``mlflowkit.metrics`` entry-point group, by the name a spec writes in ``evaluate.metrics`` and in gate rules.
Its module is imported when a spec names it (at validate time), so it should import numpy and friends
inside the function.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CLASSIFICATION_METRICS",
    "FAIRNESS_METRICS",
    "GROUP_METRICS",
    "REGRESSION_METRICS",
    "Metric",
    "Task",
    "metric",
]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
)
GROUP_METRICS = ("selection_rate", "accuracy", "recall", "precision", "false_positive_rate")
"""Shown per sensitive group in the fairness table (not gate metrics)."""

Task = Literal["classification", "regression", "any"]


@dataclass(frozen=True)
class Metric:
    """A named metric function, with the kind of model it applies to.

    Attributes:
        name: the name specs use (``evaluate.metrics``, gate rules); also its entry-point name.
        fn: ``fn(y_true, y_pred, [proba=..., classes=...]) -> float``; it gets ``proba`` (class
            probabilities, columns in ``classes`` order) and ``classes`` only when it declares them.
        task: ``classification``, ``regression`` or ``any``.
        needs_proba: the value is NaN (a gate on it fails closed) for a model without probabilities.
        greater_is_better: documentation for people and reports; gates say the direction themselves.
        summary: one line for ``mlflowkit plugins list``.
    """

    name: str
    fn: Callable[..., Any]
    task: Task = "any"
    needs_proba: bool = False
    greater_is_better: bool = True
    summary: str = ""
    _accepts: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __call__(self, y_true: Any, y_pred: Any, *, proba: Any = None, classes: Sequence[Any] = ()) -> float:
        """The metric's value on one set of rows; NaN when it needs probabilities and there are none."""
        if self.needs_proba and proba is None:
            return math.nan
        extra: dict[str, Any] = {}
        if "proba" in self._accepts:
            extra["proba"] = proba
        if "classes" in self._accepts:
            extra["classes"] = list(classes)
        return float(self.fn(y_true, y_pred, **extra))

    def applies_to(self, task: str) -> bool:
        """Whether the metric can score a model of ``task`` (``classification`` or ``regression``)."""
        return self.task in {"any", task}


def metric(
    name: str | None = None,
    *,
    task: Task = "any",
    needs_proba: bool = False,
    greater_is_better: bool = True,
) -> Callable[[Callable[..., Any]], Metric]:
    """Make a function a metric that ``evaluate`` can compute and gates can read.

    Example::

        @mlflowkit.metric(task="classification")
        def false_alarm_cost(y_true, y_pred) -> float:
            return float(((y_pred == "yes") & (y_true == "no")).mean() * 5.0)

    Register it in the plug-in's pyproject (the entry-point name is the metric's name)::

        [project.entry-points."mlflowkit.metrics"]
        false_alarm_cost = "my_plugins.metrics:false_alarm_cost"

    Args:
        name: the metric's name; defaults to the function's name.
        task: the kind of model it applies to.
        needs_proba: it reads class probabilities (``proba``).
        greater_is_better: whether a larger value is better.
    """

    def wrap(fn: Callable[..., Any]) -> Metric:
        accepts = frozenset(inspect.signature(fn).parameters)
        if len([p for p in inspect.signature(fn).parameters.values() if p.default is inspect.Parameter.empty]) < 2:
            raise TypeError(f"metric {fn.__qualname__} must take (y_true, y_pred, ...)")
        summary = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        return Metric(
            name=name or fn.__name__,
            fn=fn,
            task=task,
            needs_proba=needs_proba,
            greater_is_better=greater_is_better,
            summary=summary,
            _accepts=accepts,
        )

    return wrap
