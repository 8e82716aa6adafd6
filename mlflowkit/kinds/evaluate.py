"""The ``evaluate`` kind: score the model on the held-out split, and the champion on the same rows.

Metrics by name (built in, or a plug-in from the ``mlflowkit.metrics`` group), per-slice metrics,
bootstrap confidence intervals, fairness (fairlearn) and a regressor's residuals are computed for
the candidate and, when a champion exists, for the champion too, so that gates like
``roc_auc >= champion.roc_auc - 0.01`` compare two models on the same data in the same run.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from mlflowkit.errors import MlflowkitError, RegistryError, StepFailed
from mlflowkit.fmt import interval, number
from mlflowkit.handoff import METRICS, MetricsMeta, ModelMeta, meta_of
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds._policy import governing_policy
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind
from mlflowkit.kinds.model_files import load_model, registered_model
from mlflowkit.metrics import CLASSIFICATION_METRICS, FAIRNESS_METRICS, GROUP_METRICS, REGRESSION_METRICS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlflowkit.store import ModelVersion, Ref

__all__ = ["Evaluate"]


def _known(choices: tuple[str, ...], what: str) -> Callable[[str], str]:
    def check(name: str) -> str:
        from mlflowkit.plugins import did_you_mean

        if name not in choices:
            hint = did_you_mean(name, choices)
            raise ValueError(f"unknown {what} {name!r}{'; ' + hint if hint else ''} ({what}s: {', '.join(choices)})")
        return name

    return check


def _metric_name(name: str) -> str:
    """A built-in metric, or an installed plug-in metric (its module is imported to check it loads)."""
    if name in CLASSIFICATION_METRICS + REGRESSION_METRICS:
        return name
    from mlflowkit.errors import PluginError
    from mlflowkit.plugins import did_you_mean, metrics

    installed = metrics()
    if name in installed.names:
        try:
            installed.get(name)
        except PluginError as exc:
            raise ValueError(f"metric {exc.reason}") from None
        return name
    known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, *installed.names)
    hint = did_you_mean(name, known)
    raise ValueError(f"unknown metric {name!r}{'; ' + hint if hint else ''} (metrics: {', '.join(known)})")


def _metric_task(name: str) -> str:
    """``classification``, ``regression`` or ``any`` (a plug-in metric that applies to both)."""
    if name in CLASSIFICATION_METRICS:
        return "classification"
    if name in REGRESSION_METRICS:
        return "regression"
    from mlflowkit.plugins import metrics

    return str(metrics().get(name).task)


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


class ImportanceParams(Params):
    """Permutation feature importance: how much the first metric worsens when one column's values are shuffled."""

    rows: int = Field(500, ge=20, le=100_000, description="Held-out rows sampled for it (the cost is rows x features x repeats).")
    repeats: int = Field(3, ge=1, le=50, description="Shuffles per column; the report shows their mean and spread.")
    max_features: int = Field(30, ge=1, le=1000, description="Most columns scored (the first ones the model reads).")
    seed: int = Field(0, description="Seed of the sample and the shuffles.")


class EvaluateParams(Params):
    """Which metrics to compute on the held-out split, and how."""

    metrics: list[Annotated[str, AfterValidator(_metric_name)]] = Field(
        default_factory=lambda: ["accuracy"],
        min_length=1,
        description=(
            f"Metric names: {', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)},"
            " or a plug-in metric (entry-point group `mlflowkit.metrics`, see `mlflowkit plugins list`)."
        ),
    )
    average: Literal["auto", "binary", "macro", "micro", "weighted"] = Field(
        "auto",
        description=(
            "Averaging for precision/recall/f1: `auto` is binary (about `data.positive`) for two classes, macro"
            " otherwise. roc_auc is about the positive class for two classes, and one-vs-rest macro-averaged (each"
            " class against the others, then the plain mean) for more."
        ),
    )
    slices: list[str] = Field(default_factory=list, description="Columns: the metrics are also computed per value.")
    bootstrap: BootstrapParams | None = Field(None, description="Confidence intervals by bootstrap resampling.")
    fairness: FairnessParams | None = Field(None, description="Fairness metrics across sensitive groups (fairlearn).")
    champion: bool = Field(True, description="Also score the current champion on the same held-out rows.")
    importance: ImportanceParams | None = Field(
        default_factory=ImportanceParams,
        description="Permutation feature importance on a sample of the held-out rows (shown in the report); null: none.",
    )


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
    keeps_columns = True

    @classmethod
    def columns_read(cls, section: Any, spec: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for i, column in enumerate(section.slices):
            yield ("slices", i), column
        for i, column in enumerate(section.fairness.sensitive_features if section.fairness else ()):
            yield ("fairness", "sensitive_features", i), column

    @classmethod
    def prefetch(cls) -> None:
        import sklearn.metrics  # noqa: F401

        with contextlib.suppress(ImportError):  # only fairness needs it; evaluate says so if it is missing
            import fairlearn.metrics  # noqa: F401

    @classmethod
    def metrics_produced(cls, section: Any) -> set[str]:
        return set(section.metrics) | set(section.fairness.metrics if section.fairness else ())

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        target = getattr(spec.section("data"), "target", None)
        for i, column in enumerate(section.fairness.sensitive_features if section.fairness else ()):
            if column == target:
                yield ("fairness", "sensitive_features", i), f"{column!r} is the target", "name a column about the people scored"
        tasks = {_metric_task(m) for m in section.metrics}
        if {"classification", "regression"} <= tasks:
            yield ("metrics",), "metrics mix classification and regression metrics", "a model is one or the other"
        if section.fairness and "regression" in tasks:
            yield ("fairness",), "fairness metrics need a classification model", "remove fairness or the regression metrics"

    def input_fingerprint(self, ctx: StepContext, params: EvaluateParams, inputs: Inputs) -> str | None:
        # The champion is scored too: another champion (or none any more) means the scores are stale. A
        # champion that is the very model evaluated (this spec's last run registered it) adds nothing to
        # score: the key is then the one that run had, naming the champion it was compared with when it was
        # registered, so a plain rerun stays cached instead of registering the same model again.
        if not params.champion:
            return None
        try:
            number = ctx.registry.aliases(ctx.model_name).get("champion")
        except RegistryError:  # no such model yet
            number = None
        if number is None:
            return "no champion"
        try:
            version = ctx.registry.get(ctx.model_name, number)
        except MlflowkitError as exc:  # unreadable or refused: the step runs, and its gates fail closed
            return f"champion v{number} unreadable: {type(exc).__name__}"
        model = inputs.get("model")
        if model is not None and model.sha256 in version.digests.values():  # its model file is these very bytes
            return _key_when_registered(ctx, version.lineage.get("champion_at_evaluation"))
        return _champion_key(version)

    def run(self, ctx: StepContext, params: EvaluateParams, inputs: Inputs) -> dict[str, Ref]:
        model_ref, test_ref = inputs["model"], inputs["test"]
        test = load_frame(ctx.store, test_ref)
        fitted = meta_of(model_ref, ModelMeta, step=ctx.step, name="model")
        target, task = fitted.target, fitted.task
        wrong = [m for m in params.metrics if _metric_task(m) not in {"any", task}]
        if wrong:
            raise StepFailed(ctx.step, f"metrics {wrong} do not apply to a {task} model")
        missing = [c for c in [*params.slices, *(params.fairness.sensitive_features if params.fairness else [])] if c not in test]
        if missing:
            raise StepFailed(
                ctx.step, f"columns {missing} are not in the held-out data (columns: {', '.join(map(str, test.columns))})"
            )
        x, y = test.drop(columns=[target]), test[target]
        positive = model_ref.meta.get("positive")

        model = load_model(ctx.store, model_ref, spec_dir=ctx.spec_dir, policy=governing_policy(ctx), kept=ctx.models)
        candidate = _Scorer(model, _inputs(x, model_ref.meta.get("features")), y, params, task, positive=positive)
        body: dict[str, Any] = {"n_test": len(test), **candidate.everything(test)}
        values = dict(body["metrics"])
        if params.fairness:
            values.update(body["fairness"]["metrics"])

        champion_meta: dict[str, Any] | None = None
        if params.champion:
            champion_meta, curves = self._champion(ctx, x=x, y=y, test=test, params=params, task=task, positive=positive)
            body["champion"] = champion_meta
            if curves:
                body["champion_curves"] = curves

        title = "metrics on the held-out split"
        if len(candidate.classes) == 2:  # say which class precision, recall, f1 and roc_auc are about
            body["positive_label"] = str(candidate.classes[candidate.pos])
            title += f" (positive class: {body['positive_label']})"
        ctx.report("metrics", title, rows=_metric_rows(values, body.get("ci", {}), champion_meta))
        if params.fairness:
            ctx.report("fairness", "fairness by group", rows=body["fairness"]["groups"])
        if params.slices:
            ctx.report("slices", "metrics by slice", rows=body["slices"])
        if "residual_summary" in body:
            res = body["residual_summary"]
            ctx.report(
                "residuals",
                "residuals (actual - predicted) on the held-out split",
                rows=[{"mean": res["mean"], "std": res["std"], "max_abs": res["max_abs"]} | res["quantiles"]],
            )
        ctx.logger.info("metrics: %s", ", ".join(f"{k}={number(v)}" for k, v in values.items()))
        meta = MetricsMeta.model_validate({"metrics": values, "n_test": len(test), "champion": champion_meta})
        data = json.dumps(body, sort_keys=True, indent=2, default=_json_default).encode()
        return {"metrics": ctx.store.put_bytes(data, METRICS, meta.model_dump(mode="json"))}

    @staticmethod
    def _champion(
        ctx: StepContext,
        *,
        x: pd.DataFrame,
        y: pd.Series[Any],
        test: pd.DataFrame,
        params: EvaluateParams,
        task: str,
        positive: Any,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The champion's metrics on the same rows (or a note saying why there are none), and its curves for the report."""
        try:
            number = ctx.registry.aliases(ctx.model_name).get("champion")
        except RegistryError:  # no such model yet
            number = None
        if number is None:
            return {"version": None, "metrics": None, "note": "no champion yet"}, {}
        try:  # a champion that does not verify (forged, unsigned) is refused here: its gates fail closed
            version = ctx.registry.get(ctx.model_name, number)
            # Its ONNX graph when it has one: no pickle.
            model = registered_model(ctx.registry, version, spec_dir=ctx.spec_dir, policy=governing_policy(ctx))
            quick = params.model_copy(update={"bootstrap": None, "slices": [], "importance": None})
            champion_x = _inputs(x, version.lineage.get("features"))
            scored = _Scorer(model, champion_x, y, quick, task, positive=positive).everything(test)
        except Exception as exc:  # an old champion may not fit today's columns: record it, gates fail closed
            note = f"champion v{number} could not score this data: {type(exc).__name__}: {exc}"
            ctx.logger.warning(note)
            return {"version": number, "metrics": None, "note": note}, {}
        metrics = dict(scored["metrics"])
        if params.fairness:
            metrics.update(scored["fairness"]["metrics"])
        curves = {k: scored[k] for k in CURVES if k in scored}
        return {"version": number, "metrics": metrics, "note": ""}, curves


CURVES = ("confusion_matrix", "roc_curves", "pr_curves", "calibration", "residuals")
"""The parts of a scored model's document drawn in the report; the champion's are kept beside the candidate's."""


def _champion_key(version: ModelVersion) -> str:
    return json.dumps([version.model, version.version, version.digests], sort_keys=True)


def _key_when_registered(ctx: StepContext, compared: object) -> str:
    """The key of the run that registered the champion: the champion it was compared with then, or none.

    A cache hit on it is this very model scored on these rows beside that version, which is the comparison
    the champion was registered on; a version that cannot be read any more makes the key new (the step runs).
    """
    number = compared.get("version") if isinstance(compared, dict) else None
    if not isinstance(number, int):
        return "no champion"
    try:
        return _champion_key(ctx.registry.get(ctx.model_name, number))
    except MlflowkitError as exc:
        return f"champion v{number} unreadable: {type(exc).__name__}"


def _inputs(x: pd.DataFrame, features: list[str] | None) -> pd.DataFrame:
    """The columns a model was trained on (the rest, such as excluded sensitive columns, stay out)."""
    if not features or any(f not in x.columns for f in features):
        return x
    return x[list(features)]


def _positive_index(classes: list[Any], positive: Any) -> int:
    """Which class is the positive one: ``data.positive`` (compared as text: YAML's 1 is the CSV's 1), else the last."""
    if positive is not None:
        for i, label in enumerate(classes):
            if str(label) == str(positive):
                return i
    return len(classes) - 1


class _Scorer:
    """Computes every requested number for one model on one held-out set."""

    def __init__(
        self, model: Any, x: pd.DataFrame, y: pd.Series[Any], params: EvaluateParams, task: str, *, positive: Any = None
    ) -> None:
        import numpy as np

        self.params, self.task, self.y, self.model, self.x = params, task, y, model, x
        self.pred = model.predict(x)
        self.classes = list(getattr(model, "classes_", np.unique(y))) if task == "classification" else []
        self.proba = model.predict_proba(x) if task == "classification" and hasattr(model, "predict_proba") else None
        binary = len(self.classes) == 2
        self.average = params.average if params.average != "auto" else ("binary" if binary else "macro")
        self.pos = _positive_index(self.classes, positive) if self.classes else -1
        self.notes: dict[str, str] = {}

    def metrics(
        self, idx: np.ndarray[Any, Any] | None = None, notes: dict[str, str] | None = None, names: Sequence[str] | None = None
    ) -> dict[str, float]:
        """The requested metrics (or ``names``), on all rows or on the rows ``idx``; why a value is NaN goes into ``notes``."""
        import warnings

        import numpy as np

        y = np.asarray(self.y) if idx is None else np.asarray(self.y)[idx]
        pred = self.pred if idx is None else self.pred[idx]
        proba = None if self.proba is None else (self.proba if idx is None else self.proba[idx])
        out: dict[str, float] = {}
        for name in self.params.metrics if names is None else names:
            reason = ""
            # scikit-learn warns and returns NaN where a metric is undefined (one class in a slice): the NaN is
            # kept (gates fail closed on it) and the reason goes into the report instead of the console.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    out[name] = float(self._metric(name, y, pred, proba))
                except ValueError as exc:
                    out[name], reason = math.nan, str(exc)
            if math.isnan(out[name]) and notes is not None:
                said = reason or next((str(w.message) for w in caught), "") or "not defined on these rows"
                notes[name] = said.split("\n")[0]
        return out

    def _metric(self, name: str, y: Any, pred: Any, proba: Any) -> float:  # noqa: PLR0911 - one return per metric
        from sklearn import metrics as skm

        pos = {"pos_label": self.classes[self.pos]} if self.average == "binary" else {}
        if name == "accuracy":
            return float(skm.accuracy_score(y, pred))
        if name == "balanced_accuracy":
            return float(skm.balanced_accuracy_score(y, pred))
        if name in {"precision", "recall", "f1"}:
            fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
            return float(fn(y, pred, average=self.average, zero_division=0, **pos))
        if name == "log_loss":
            return math.nan if proba is None else float(skm.log_loss(y, proba, labels=self.classes))
        if name == "roc_auc":
            if proba is None:
                return math.nan  # the model gives no probabilities: fails closed at the gates
            if len(self.classes) == 2:
                return float(skm.roc_auc_score(y == self.classes[self.pos], proba[:, self.pos]))
            return float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=self.classes))
        if name == "rmse":
            return math.sqrt(skm.mean_squared_error(y, pred))
        if name in REGRESSION_METRICS:
            fns = {"mae": skm.mean_absolute_error, "r2": skm.r2_score, "mape": skm.mean_absolute_percentage_error}
            return float(fns[name](y, pred))
        from mlflowkit.plugins import metrics  # a plug-in metric; its own errors reach the runner, which names the step

        return float(metrics().get(name)(y, pred, proba=proba, classes=self.classes))

    def everything(self, test: pd.DataFrame) -> dict[str, Any]:
        """Metrics, confusion matrix, slices, bootstrap intervals and fairness, as JSON-able data."""
        from sklearn import metrics as skm

        notes: dict[str, str] = {}
        body: dict[str, Any] = {"metrics": self.metrics(notes=notes)}
        if notes:
            body["metric_notes"] = notes
        if self.task == "regression":
            body["residual_summary"] = self._residual_summary()
        if self.task == "classification":
            body["confusion_matrix"] = {
                "labels": [str(c) for c in self.classes],
                "matrix": skm.confusion_matrix(self.y, self.pred, labels=self.classes).tolist(),
            }
            if self.proba is not None:
                body["roc_curves"], body["pr_curves"] = self._curves()
                body["calibration"] = self._calibration()
        else:
            body["residuals"] = self._residuals()
        if self.params.importance:
            body["importance"] = self._importance(self.params.importance)
        if self.params.slices:
            body["slices"] = self._slices(test)
        if self.params.bootstrap:
            body["ci"] = self._bootstrap(self.params.bootstrap)
        if self.params.fairness:
            body["fairness"] = self._fairness(test, self.params.fairness)
        return body

    def _curves(self, points: int = 200, max_classes: int = 10) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """ROC and precision-recall curve points for the plots: the positive class, or one-vs-rest per class (at most 10)."""
        import numpy as np
        from sklearn import metrics as skm

        assert self.proba is not None
        y = np.asarray(self.y)
        columns = [self.pos] if len(self.classes) == 2 else list(range(min(len(self.classes), max_classes)))
        roc, pr = [], []

        def thin(*arrays: Any) -> list[list[float]]:
            keep = np.unique(np.linspace(0, len(arrays[0]) - 1, min(points, len(arrays[0]))).round().astype(int))
            return [[round(float(v), 5) for v in a[keep]] for a in arrays]

        for col in columns:
            positive = y == self.classes[col]
            if positive.all() or not positive.any():
                continue  # one class only on these rows: no curve
            label = str(self.classes[col])
            fpr, tpr, _ = skm.roc_curve(positive, self.proba[:, col])
            fpr_kept, tpr_kept = thin(fpr, tpr)
            roc.append({"label": label, "fpr": fpr_kept, "tpr": tpr_kept, "auc": float(skm.auc(fpr, tpr))})
            precision, recall, _ = skm.precision_recall_curve(positive, self.proba[:, col])
            recall_kept, precision_kept = thin(recall, precision)
            ap = float(skm.average_precision_score(positive, self.proba[:, col]))
            pr.append(
                {"label": label, "recall": recall_kept, "precision": precision_kept, "ap": ap, "base": float(positive.mean())}
            )
        return roc, pr

    def _calibration(self, bins: int = 10) -> dict[str, Any]:
        """Predicted probability against the observed rate, in ten equal-width bins (empty bins left out), and the Brier score.

        A binary model's positive-class probability; for more classes, the top class's probability against how
        often the top class is right.
        """
        import numpy as np

        assert self.proba is not None
        y = np.asarray(self.y)
        if len(self.classes) == 2:
            prob = self.proba[:, self.pos]
            hit = y == self.classes[self.pos]
            label = f"P({self.classes[self.pos]})"
        else:
            prob = self.proba.max(axis=1)
            hit = np.asarray(self.classes, dtype=object)[self.proba.argmax(axis=1)] == y
            label = "top-class probability"
        prob, hit = np.asarray(prob, dtype=float), np.asarray(hit, dtype=float)
        which = np.clip(np.digitize(prob, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
        points = [
            {
                "predicted": float(prob[which == b].mean()),
                "observed": float(hit[which == b].mean()),
                "rows": int((which == b).sum()),
            }
            for b in range(bins)
            if (which == b).any()
        ]
        return {"label": label, "points": points, "brier": float(np.mean((prob - hit) ** 2)) if len(prob) else math.nan}

    def _importance(self, spec: ImportanceParams) -> dict[str, Any]:
        """Permutation importance of each column on a sample: the first metric's loss when the column is shuffled."""
        import numpy as np
        import pandas as pd

        builtin = [m for m in self.params.metrics if m in CLASSIFICATION_METRICS + REGRESSION_METRICS]
        metric = builtin[0] if builtin else ("accuracy" if self.task == "classification" else "r2")
        sign = -1.0 if metric in {"log_loss", "rmse", "mae", "mape"} else 1.0  # a loss: shuffling raises it
        rng = np.random.default_rng(spec.seed)
        idx = np.sort(rng.choice(len(self.y), min(len(self.y), spec.rows), replace=False))
        x, y = self.x.iloc[idx].reset_index(drop=True), np.asarray(self.y)[idx]
        needs_proba = metric in {"roc_auc", "log_loss"} and self.proba is not None
        columns = list(x.columns)[: spec.max_features]
        # Every shuffled copy in one frame, scored in one call: a model's per-call overhead (joblib, ONNX
        # session) is paid once, not once per column and repeat.
        copies = [x]
        for column in columns:
            for _ in range(spec.repeats):
                shuffled = x.copy()
                shuffled[column] = rng.permutation(shuffled[column].to_numpy())
                copies.append(shuffled)
        stacked = pd.concat(copies, ignore_index=True)
        pred = np.asarray(self.model.predict(stacked))
        proba = np.asarray(self.model.predict_proba(stacked)) if needs_proba else None
        n = len(x)

        def score(k: int) -> float:
            part = slice(k * n, (k + 1) * n)
            return float(self._metric(metric, y, pred[part], None if proba is None else proba[part]))

        try:
            base = score(0)
            features: list[dict[str, Any]] = []
            for i, column in enumerate(columns):
                drops = [sign * (base - score(1 + i * spec.repeats + r)) for r in range(spec.repeats)]
                features.append({"feature": str(column), "mean": float(np.mean(drops)), "std": float(np.std(drops))})
        except ValueError as exc:  # a metric undefined on the sample (one class only): no importance, said why
            return {"metric": metric, "note": str(exc).split("\n")[0], "features": []}
        features.sort(key=lambda f: -f["mean"])
        return {"metric": metric, "baseline": base, "rows": len(idx), "repeats": spec.repeats, "features": features}

    def _residuals(self, points: int = 500) -> dict[str, Any]:
        """Predicted values and residuals (a sample of at most 500 rows) for the report's plot."""
        import numpy as np

        y, pred = np.asarray(self.y, dtype=float), np.asarray(self.pred, dtype=float)
        keep: Any = np.unique(np.linspace(0, len(y) - 1, min(points, len(y))).round().astype(int)) if len(y) else []
        return {
            "predicted": [round(float(v), 6) for v in pred[keep]],
            "residual": [round(float(v), 6) for v in (y - pred)[keep]],
            "rows": len(y),
        }

    def _residual_summary(self) -> dict[str, Any]:
        """Where a regressor's errors (actual - predicted) lie: spread, bias, quantiles, the worst rows."""
        import numpy as np

        residuals = np.asarray(self.y, dtype=float) - np.asarray(self.pred, dtype=float).reshape(-1)
        quantiles = (0.05, 0.25, 0.5, 0.75, 0.95)
        worst = np.argsort(-np.abs(residuals))[:5]
        return {
            "mean": float(np.mean(residuals)),
            "std": float(np.std(residuals)),
            "max_abs": float(np.max(np.abs(residuals))),
            "quantiles": {f"p{round(q * 100)}": float(np.quantile(residuals, q)) for q in quantiles},
            "worst_rows": [
                {"row": int(i), "actual": float(np.asarray(self.y)[i]), "predicted": float(self.pred[i])} for i in worst
            ],
        }

    def _slices(self, test: pd.DataFrame) -> list[dict[str, Any]]:
        import numpy as np

        rows = []
        for column in self.params.slices:
            for value in sorted(test[column].dropna().unique(), key=str):
                idx = np.flatnonzero((test[column] == value).to_numpy())
                notes: dict[str, str] = {}
                values = self.metrics(idx, notes)
                row: dict[str, Any] = {"slice": f"{column}={value}", "rows": len(idx)}
                # An undefined metric shows as empty with the reason, not as NaN.
                row.update({k: None if math.isnan(v) else round(v, 4) for k, v in values.items()})
                row["note"] = "; ".join(f"{k}: {why}" for k, why in notes.items())
                rows.append(row)
        return rows

    def _bootstrap(self, spec: BootstrapParams) -> dict[str, list[float]]:
        import numpy as np

        rng = np.random.default_rng(spec.seed)
        n = len(self.y)
        draws: dict[str, list[float]] = {m: [] for m in self.params.metrics}
        chunk = max(1, 2_000_000 // max(n, 1))  # resamples scored at once: a matrix of at most ~2M row indices
        for start in range(0, spec.n, chunk):
            rows = np.stack([rng.integers(0, n, n) for _ in range(min(chunk, spec.n - start))])  # the draws as one by one
            fast = self._resampled(rows)
            rest = [m for m in self.params.metrics if m not in fast]
            for name, values in fast.items():
                draws[name].extend(float(v) for v in values)
            for row in rows if rest else ():
                for name, value in self.metrics(row, names=rest).items():
                    draws[name].append(value)
        tail = (1 - spec.confidence) / 2 * 100
        return {
            name: [float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))]
            if not np.all(np.isnan(v))
            else [math.nan] * 2
            for name, v in draws.items()
        }

    def _resampled(self, rows: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
        """The metrics :mod:`~mlflowkit.kinds._resampled` computes on all ``rows`` at once, where its answers are scikit-learn's.

        That is a binary classifier whose labels and predictions are all among its two classes (and, for
        the scores, probabilities that are finite and within [0, 1]); anything else is scored one resample
        at a time, as :meth:`metrics` does.
        """
        import numpy as np

        from mlflowkit.kinds._resampled import RESAMPLED, binary_resampled

        y, classes = np.asarray(self.y), np.asarray(self.classes, dtype=object)
        if len(self.classes) != 2 or not (np.isin(y, classes).all() and np.isin(self.pred, classes).all()):
            return {}
        averaged = {"precision", "recall", "f1"}  # the counts of the positive class: only with average "binary"
        names = [m for m in self.params.metrics if m in RESAMPLED and (self.average == "binary" or m not in averaged)]
        proba = None if self.proba is None else np.asarray(self.proba, dtype=np.float64)
        valid = proba is not None and proba.shape == (len(y), 2) and np.isfinite(proba).all()
        if proba is None or not (valid and proba.min() >= 0 and proba.max() <= 1):
            names = [m for m in names if m not in {"roc_auc", "log_loss"}]
            proba = None
        if list(self.classes) != sorted(self.classes):  # scikit-learn's log_loss reads the columns in sorted label order
            names = [m for m in names if m != "log_loss"]
        positive = self.classes[self.pos]
        truth = y == positive
        return binary_resampled(
            names,
            rows,
            truth=truth,
            predicted=np.asarray(self.pred) == positive,
            score=None if proba is None else proba[:, self.pos],
            p_true=None if proba is None else proba[np.arange(len(y)), np.where(truth, self.pos, 1 - self.pos)],
        )

    def _fairness(self, test: pd.DataFrame, spec: FairnessParams) -> dict[str, Any]:
        import numpy as np

        try:
            import fairlearn.metrics as flm
        except ImportError:
            raise ImportError("fairness metrics need fairlearn: pip install 'mlflowkit[fairness]'") from None

        if len(self.classes) != 2:
            raise ValueError(f"fairness metrics need a binary target; this model has {len(self.classes)} classes")
        positive = self.classes[self.pos]
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
        row: dict[str, Any] = {"metric": name, "value": value}
        if name in ci:
            row["ci"] = interval(*ci[name])
        if champion and champion.get("metrics"):
            other = champion["metrics"].get(name)
            row[f"champion v{champion['version']}"] = other
        rows.append(row)
    return rows


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
