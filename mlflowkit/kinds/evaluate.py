"""The ``evaluate`` kind: score the model on the held-out split, and the champion on the same rows.

Metrics by name, per-slice metrics, bootstrap confidence intervals and fairness (fairlearn) are
computed for the candidate and, when a champion exists, for the champion too, so that gates like
``roc_auc >= champion.roc_auc - 0.01`` compare two models on the same data in the same run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from mlflowkit.errors import RegistryError, StepFailed
from mlflowkit.kinds._frames import load_frame, load_model
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlflowkit.store import Ref

__all__ = ["CLASSIFICATION_METRICS", "FAIRNESS_METRICS", "REGRESSION_METRICS", "Evaluate"]

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


def _known(choices: tuple[str, ...], what: str) -> Callable[[str], str]:
    def check(name: str) -> str:
        from mlflowkit.plugins import did_you_mean

        if name not in choices:
            hint = did_you_mean(name, choices)
            raise ValueError(f"unknown {what} {name!r}{'; ' + hint if hint else ''} ({what}s: {', '.join(choices)})")
        return name

    return check


class FairnessParams(Params):
    """Fairness across the groups of one or more sensitive columns (fairlearn)."""

    sensitive_features: list[str] = Field(min_length=1, description="Columns whose groups are compared, e.g. [gender].")
    metrics: list[Annotated[str, AfterValidator(_known(FAIRNESS_METRICS, "fairness metric"))]] = Field(
        default_factory=lambda: ["demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"],
        description="Disparity metrics; each is the worst case over the sensitive features and usable in gates.",
    )
    group_metrics: list[Annotated[str, AfterValidator(_known(GROUP_METRICS, "group metric"))]] = Field(
        default_factory=lambda: ["selection_rate", "accuracy", "recall"], description="Metrics shown per group."
    )
    min_group_size: int = Field(
        30, ge=1, description="Groups with fewer held-out rows are reported and left out of the disparity metrics."
    )


class BootstrapParams(Params):
    """Bootstrap confidence intervals for every metric."""

    n: int = Field(200, ge=10, le=10_000, description="Number of resamples of the held-out set.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Coverage of the interval.")
    seed: int = Field(42, description="Random seed of the resampling.")


class EvaluateParams(Params):
    """Which metrics to compute on the held-out split, and how."""

    metrics: list[Annotated[str, AfterValidator(_known(CLASSIFICATION_METRICS + REGRESSION_METRICS, "metric"))]] = Field(
        default_factory=lambda: ["accuracy"],
        min_length=1,
        description=f"Metric names: {', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}.",
    )
    average: Literal["auto", "binary", "macro", "micro", "weighted"] = Field(
        "auto", description="Averaging for precision/recall/f1: `auto` is binary for two classes, macro otherwise."
    )
    slices: list[str] = Field(default_factory=list, description="Columns: the metrics are also computed per value.")
    bootstrap: BootstrapParams | None = Field(None, description="Confidence intervals by bootstrap resampling.")
    fairness: FairnessParams | None = Field(None, description="Fairness metrics across sensitive groups (fairlearn).")
    champion: bool = Field(True, description="Also score the current champion on the same held-out rows.")


class Evaluate(StepKind):
    """Score the model (and the champion) on the held-out split.

    Example:

    ```yaml
    evaluate:
      metrics: [accuracy, f1, roc_auc]
      slices: [contract]
      bootstrap: {n: 200, confidence: 0.95}
      fairness:
        sensitive_features: [gender]
        min_group_size: 30
    ```
    """

    Params = EvaluateParams
    summary = "score the model and the champion on the held-out split"

    @classmethod
    def metrics_produced(cls, section: Any) -> set[str]:
        return set(section.metrics) | set(section.fairness.metrics if section.fairness else ())

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        if {m for m in section.metrics if m in REGRESSION_METRICS} and {
            m for m in section.metrics if m in CLASSIFICATION_METRICS
        }:
            yield ("metrics",), "metrics mix classification and regression metrics", "a model is one or the other"
        if section.fairness and any(m in REGRESSION_METRICS for m in section.metrics):
            yield ("fairness",), "fairness metrics need a classification model", "remove fairness or the regression metrics"

    def run(self, ctx: StepContext, params: EvaluateParams, inputs: Inputs) -> dict[str, Ref]:
        model_ref, test_ref = inputs["model"], inputs["test"]
        test = load_frame(ctx.store, test_ref)
        target = model_ref.meta["target"]
        task = model_ref.meta.get("task", "classification")
        wrong = [m for m in params.metrics if m in (REGRESSION_METRICS if task == "classification" else CLASSIFICATION_METRICS)]
        if wrong:
            raise StepFailed(ctx.step, f"metrics {wrong} do not apply to a {task} model")
        missing = [c for c in [*params.slices, *(params.fairness.sensitive_features if params.fairness else [])] if c not in test]
        if missing:
            raise StepFailed(
                ctx.step, f"columns {missing} are not in the held-out data (columns: {', '.join(map(str, test.columns))})"
            )
        x, y = test.drop(columns=[target]), test[target]

        candidate = _Scorer(load_model(ctx.store, model_ref), x, y, params, task)
        body: dict[str, Any] = {"n_test": len(test), **candidate.everything(test)}
        values = dict(body["metrics"])
        if params.fairness:
            values.update(body["fairness"]["metrics"])

        champion_meta: dict[str, Any] | None = None
        if params.champion:
            champion_meta = self._champion(ctx, x=x, y=y, test=test, params=params, task=task)
            body["champion"] = champion_meta

        ctx.report("metrics", "metrics on the held-out split", rows=_metric_rows(values, body.get("ci", {}), champion_meta))
        if params.fairness:
            ctx.report("fairness", "fairness by group", rows=body["fairness"]["groups"])
        if params.slices:
            ctx.report("slices", "metrics by slice", rows=body["slices"])
        ctx.logger.info("metrics: %s", ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
        meta = {"metrics": values, "n_test": len(test), "champion": champion_meta}
        data = json.dumps(body, sort_keys=True, indent=2, default=_json_default).encode()
        return {"metrics": ctx.store.put_bytes(data, "application/json", json.loads(json.dumps(meta, default=_json_default)))}

    @staticmethod
    def _champion(
        ctx: StepContext, *, x: pd.DataFrame, y: pd.Series[Any], test: pd.DataFrame, params: EvaluateParams, task: str
    ) -> dict[str, Any]:
        """The champion's metrics on the same rows, or a note saying why there are none."""
        try:
            version = ctx.registry.get(ctx.model_name, "champion")
        except RegistryError:
            return {"version": None, "metrics": None, "note": "no champion yet"}
        import io

        import joblib

        try:
            model = joblib.load(io.BytesIO(ctx.registry.read_file(version.model, version.version, "model.joblib")))
            scored = _Scorer(model, x, y, params.model_copy(update={"bootstrap": None, "slices": []}), task).everything(test)
        except Exception as exc:  # an old champion may not fit today's columns: record it, gates fail closed
            note = f"champion v{version.version} could not score this data: {type(exc).__name__}: {exc}"
            ctx.logger.warning(note)
            return {"version": version.version, "metrics": None, "note": note}
        metrics = dict(scored["metrics"])
        if params.fairness:
            metrics.update(scored["fairness"]["metrics"])
        return {"version": version.version, "metrics": metrics, "note": ""}


class _Scorer:
    """Computes every requested number for one model on one held-out set."""

    def __init__(self, model: Any, x: pd.DataFrame, y: pd.Series[Any], params: EvaluateParams, task: str) -> None:
        import numpy as np

        self.params, self.task, self.y = params, task, y
        self.pred = model.predict(x)
        self.classes = list(getattr(model, "classes_", np.unique(y))) if task == "classification" else []
        self.proba = model.predict_proba(x) if task == "classification" and hasattr(model, "predict_proba") else None
        binary = len(self.classes) == 2
        self.average = params.average if params.average != "auto" else ("binary" if binary else "macro")

    def metrics(self, idx: np.ndarray[Any, Any] | None = None) -> dict[str, float]:
        """The requested metrics, on all rows or on the rows ``idx``."""
        import numpy as np
        from sklearn import metrics as skm

        y = np.asarray(self.y) if idx is None else np.asarray(self.y)[idx]
        pred = self.pred if idx is None else self.pred[idx]
        proba = None if self.proba is None else (self.proba if idx is None else self.proba[idx])
        out: dict[str, float] = {}
        pos = {"pos_label": self.classes[-1]} if self.average == "binary" else {}
        for name in self.params.metrics:
            try:
                if name == "accuracy":
                    out[name] = skm.accuracy_score(y, pred)
                elif name == "balanced_accuracy":
                    out[name] = skm.balanced_accuracy_score(y, pred)
                elif name in {"precision", "recall", "f1"}:
                    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
                    out[name] = fn(y, pred, average=self.average, zero_division=0, **pos)
                elif name == "log_loss":
                    out[name] = math.nan if proba is None else skm.log_loss(y, proba, labels=self.classes)
                elif name == "roc_auc":
                    if proba is None:
                        out[name] = math.nan  # fails closed at the gates
                    elif len(self.classes) == 2:
                        out[name] = skm.roc_auc_score(y == self.classes[-1], proba[:, -1])
                    else:
                        out[name] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=self.classes)
                elif name == "rmse":
                    out[name] = math.sqrt(skm.mean_squared_error(y, pred))
                else:
                    out[name] = {"mae": skm.mean_absolute_error, "r2": skm.r2_score, "mape": skm.mean_absolute_percentage_error}[
                        name
                    ](y, pred)
            except ValueError:
                out[name] = math.nan  # e.g. one class only in a small slice or resample
        return {k: float(v) for k, v in out.items()}

    def everything(self, test: pd.DataFrame) -> dict[str, Any]:
        """Metrics, confusion matrix, slices, bootstrap intervals and fairness, as JSON-able data."""
        from sklearn import metrics as skm

        body: dict[str, Any] = {"metrics": self.metrics()}
        if self.task == "classification":
            body["confusion_matrix"] = {
                "labels": [str(c) for c in self.classes],
                "matrix": skm.confusion_matrix(self.y, self.pred, labels=self.classes).tolist(),
            }
        if self.params.slices:
            body["slices"] = self._slices(test)
        if self.params.bootstrap:
            body["ci"] = self._bootstrap(self.params.bootstrap)
        if self.params.fairness:
            body["fairness"] = self._fairness(test, self.params.fairness)
        return body

    def _slices(self, test: pd.DataFrame) -> list[dict[str, Any]]:
        import numpy as np

        rows = []
        for column in self.params.slices:
            for value in sorted(test[column].dropna().unique(), key=str):
                idx = np.flatnonzero((test[column] == value).to_numpy())
                rows.append(
                    {"slice": f"{column}={value}", "rows": len(idx), **{k: round(v, 4) for k, v in self.metrics(idx).items()}}
                )
        return rows

    def _bootstrap(self, spec: BootstrapParams) -> dict[str, list[float]]:
        import numpy as np

        rng = np.random.default_rng(spec.seed)
        n = len(self.y)
        draws: dict[str, list[float]] = {m: [] for m in self.params.metrics}
        for _ in range(spec.n):
            for name, value in self.metrics(rng.integers(0, n, n)).items():
                draws[name].append(value)
        tail = (1 - spec.confidence) / 2 * 100
        return {
            name: [float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))]
            if not np.all(np.isnan(v))
            else [math.nan] * 2
            for name, v in draws.items()
        }

    def _fairness(self, test: pd.DataFrame, spec: FairnessParams) -> dict[str, Any]:
        import numpy as np

        try:
            import fairlearn.metrics as flm
        except ImportError:
            raise ImportError("fairness metrics need fairlearn: pip install 'mlflowkit[fairness]'") from None

        if len(self.classes) != 2:
            raise ValueError(f"fairness metrics need a binary target; this model has {len(self.classes)} classes")
        positive = self.classes[-1]
        y = (np.asarray(self.y) == positive).astype(int)
        pred = (np.asarray(self.pred) == positive).astype(int)
        group_fns: dict[str, Callable[..., float]] = {
            "selection_rate": flm.selection_rate,
            "accuracy": lambda a, b: float(np.mean(a == b)),
            "recall": flm.true_positive_rate,
            "precision": lambda a, b: float(np.sum(a & b) / max(np.sum(b), 1)),
            "false_positive_rate": flm.false_positive_rate,
        }
        disparity: dict[str, Callable[..., float]] = {name: getattr(flm, name) for name in spec.metrics}
        by_feature: dict[str, dict[str, float]] = {}
        groups: list[dict[str, Any]] = []
        for feature in spec.sensitive_features:
            column = test[feature].astype(str).to_numpy()
            sizes = {g: int(np.sum(column == g)) for g in sorted(set(column))}
            kept = np.isin(column, [g for g, size in sizes.items() if size >= spec.min_group_size])
            for group, size in sizes.items():
                mask = column == group
                row: dict[str, Any] = {"feature": feature, "group": group, "rows": size}
                for name in spec.group_metrics:
                    row[name] = round(group_fns[name](y[mask], pred[mask]), 4)
                row["note"] = (
                    "" if size >= spec.min_group_size else f"fewer than {spec.min_group_size} rows: left out of disparity"
                )
                groups.append(row)
            enough = len({g for g, size in sizes.items() if size >= spec.min_group_size}) >= 2
            by_feature[feature] = {
                name: float(fn(y[kept], pred[kept], sensitive_features=column[kept])) if enough else math.nan
                for name, fn in disparity.items()
            }
        # The worst case over the sensitive features: the largest difference, the smallest ratio; a NaN
        # (fewer than two groups big enough to compare) stays NaN, so a gate on it fails closed.
        worst = {}
        for name in disparity:
            values = [v[name] for v in by_feature.values()]
            worst[name] = math.nan if any(math.isnan(v) for v in values) else (min if name.endswith("_ratio") else max)(values)
        return {
            "metrics": worst,
            "by_feature": by_feature,
            "groups": groups,
            "positive_label": str(positive),
            "min_group_size": spec.min_group_size,
        }


def _metric_rows(values: dict[str, float], ci: dict[str, list[float]], champion: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name, value in values.items():
        row: dict[str, Any] = {"metric": name, "value": round(value, 4)}
        if name in ci:
            row["ci"] = f"[{ci[name][0]:.4f}, {ci[name][1]:.4f}]"
        if champion and champion.get("metrics"):
            other = champion["metrics"].get(name)
            row[f"champion v{champion['version']}"] = None if other is None else round(other, 4)
        rows.append(row)
    return rows


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
