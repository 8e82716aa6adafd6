"""The ``evaluate`` kind: score the trained model on the held-out split, metrics by name."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from mlflowkit.errors import StepFailed
from mlflowkit.kinds._frames import load_frame, load_model
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "Evaluate"]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")


def _known_metric(name: str) -> str:
    from mlflowkit.plugins import did_you_mean

    known = CLASSIFICATION_METRICS + REGRESSION_METRICS
    if name not in known:
        hint = did_you_mean(name, known)
        raise ValueError(f"unknown metric {name!r}{'; ' + hint if hint else ''} (metrics: {', '.join(known)})")
    return name


class EvaluateParams(Params):
    """Which metrics to compute on the held-out split."""

    metrics: list[Annotated[str, AfterValidator(_known_metric)]] = Field(
        default_factory=lambda: ["accuracy"],
        min_length=1,
        description=f"Metric names: {', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}.",
    )
    average: Literal["auto", "binary", "macro", "micro", "weighted"] = Field(
        "auto", description="Averaging for precision/recall/f1: `auto` is binary for two classes, macro otherwise."
    )


class Evaluate(StepKind):
    """Score the model on the held-out split.

    Example:

    ```yaml
    evaluate:
      metrics: [accuracy, f1, roc_auc]
    ```
    """

    Params = EvaluateParams
    summary = "score the model on the held-out split"

    @classmethod
    def metrics_produced(cls, section: Any) -> set[str]:
        return set(section.metrics)

    @classmethod
    def check(cls, section: Any, spec: Any) -> Iterable[tuple[tuple[str | int, ...], str, str]]:
        mixed = {m for m in section.metrics if m in REGRESSION_METRICS} and {
            m for m in section.metrics if m in CLASSIFICATION_METRICS
        }
        if mixed:
            yield ("metrics",), "metrics mix classification and regression metrics", "a model is one or the other"

    def run(self, ctx: StepContext, params: EvaluateParams, inputs: Inputs) -> dict[str, Ref]:
        import numpy as np
        from sklearn import metrics as skm

        model_ref, test_ref = inputs["model"], inputs["test"]
        model = load_model(ctx.store, model_ref)
        test = load_frame(ctx.store, test_ref)
        target = model_ref.meta["target"]
        x, y = test.drop(columns=[target]), test[target]
        pred = model.predict(x)
        task = model_ref.meta.get("task", "classification")
        wrong = [m for m in params.metrics if m in (REGRESSION_METRICS if task == "classification" else CLASSIFICATION_METRICS)]
        if wrong:
            raise StepFailed(ctx.step, f"metrics {wrong} do not apply to a {task} model")
        values: dict[str, float] = {}
        extra: dict[str, Any] = {"n_test": len(test)}
        if task == "classification":
            classes = list(getattr(model, "classes_", np.unique(y)))
            binary = len(classes) == 2
            average = params.average if params.average != "auto" else ("binary" if binary else "macro")
            pos = {"pos_label": classes[-1]} if average == "binary" else {}
            proba = model.predict_proba(x) if hasattr(model, "predict_proba") else None
            for name in params.metrics:
                if name == "accuracy":
                    values[name] = skm.accuracy_score(y, pred)
                elif name == "balanced_accuracy":
                    values[name] = skm.balanced_accuracy_score(y, pred)
                elif name in {"precision", "recall", "f1"}:
                    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
                    values[name] = fn(y, pred, average=average, zero_division=0, **pos)
                elif name in {"roc_auc", "log_loss"}:
                    if proba is None:
                        values[name] = math.nan  # fails closed at the gates
                    elif name == "log_loss":
                        values[name] = skm.log_loss(y, proba, labels=classes)
                    else:
                        values[name] = (
                            skm.roc_auc_score(y == classes[-1], proba[:, -1])
                            if binary
                            else skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
                        )
            extra["confusion_matrix"] = {
                "labels": [str(c) for c in classes],
                "matrix": skm.confusion_matrix(y, pred, labels=classes).tolist(),
            }
        else:
            regression = {
                "rmse": lambda a, b: math.sqrt(skm.mean_squared_error(a, b)),
                "mae": skm.mean_absolute_error,
                "r2": skm.r2_score,
                "mape": skm.mean_absolute_percentage_error,
            }
            for name in params.metrics:
                values[name] = regression[name](y, pred)
        values = {k: float(v) for k, v in values.items()}
        ctx.logger.info("metrics: %s", ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
        body = json.dumps({"metrics": values, **extra}, sort_keys=True, indent=2).encode()
        return {"metrics": ctx.store.put_bytes(body, "application/json", {"metrics": values, "n_test": len(test)})}
