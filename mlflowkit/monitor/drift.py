"""Drift of live data against a version's reference profile: per feature, on the outputs, and on performance.

Numeric features: PSI over the reference deciles and a two-sample KS test against the reference
sample. Text features: Jensen-Shannon distance and a chi-square goodness-of-fit test against the
reference frequencies, plus the share of values never seen in training. Both: the change in the share
of missing values. A feature the model needs that the live data lacks is reported as ``missing`` and
counts as drifted. p-values are compared with the threshold divided by the number of features tested
(Bonferroni), so that a wide table does not raise false alarms by chance alone.

scipy does the statistics: it is already here (scikit-learn needs it), and the metrics are a few
lines each. evidently and whylogs were weighed and left out: each brings a large tree of
dependencies (and pins) for what these functions compute, and neither would run on the edge.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowkit.fmt import number
from mlflowkit.monitor.profile import OTHER, _bin_fractions, is_numeric, summarize

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.spec.monitoring import MonitorSpec

__all__ = ["DriftReport", "FeatureDrift", "compare", "js_distance", "psi"]

_EPS = 1e-4
_LOWER_IS_BETTER = {"rmse", "mae"}


@dataclass
class FeatureDrift:
    """The verdict for one feature (or for the model's outputs)."""

    feature: str
    type: str
    status: str  # ok | drift | missing | ignored
    metrics: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    reference: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.status in {"drift", "missing"}


@dataclass
class DriftReport:
    """Everything one monitoring check found; ``drifted`` is the verdict that triggers retraining."""

    model: str
    version: int
    rows: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None = None
    performance: dict[str, Any] | None = None
    verdict: str = "ok"  # ok | drift | too-few-rows
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.verdict == "drift"

    def feature(self, name: str) -> FeatureDrift:
        """The result for feature ``name``."""
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the stored ``drift.json``)."""
        out = asdict(self)
        out["drifted"] = self.drifted
        return out


def psi(reference: list[float] | Any, live: list[float] | Any) -> float:
    """Population stability index between two bin-share vectors (empty bins smoothed)."""
    import numpy as np

    ref = np.clip(np.asarray(reference, dtype=np.float64), _EPS, None)
    cur = np.clip(np.asarray(live, dtype=np.float64), _EPS, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def js_distance(reference: dict[str, float], live: dict[str, float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two category-share maps."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(reference) | set(live))
    p = np.array([reference.get(k, 0.0) for k in keys]) + 1e-12
    q = np.array([live.get(k, 0.0) for k in keys]) + 1e-12
    return float(jensenshannon(p, q, base=2))


def _numeric(name: str, ref: dict[str, Any], series: pd.Series[Any], spec: MonitorSpec, tests: int) -> FeatureDrift:
    import numpy as np
    import pandas as pd
    from scipy.stats import ks_2samp

    over = spec.features.get(name)
    live = summarize(series, numeric=True)
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=np.float64)
    result = FeatureDrift(name, "numeric", "ok", reference=_brief(ref), live=_brief(live))
    psi_limit = (over.psi if over and over.psi else None) or spec.numeric.psi
    ks_limit = (over.ks_pvalue if over and over.ks_pvalue else None) or spec.numeric.ks_pvalue
    if len(values) and ref.get("fractions"):
        live_fractions = _bin_fractions(values, ref["edges"])
        result.live["fractions"] = [float(f) for f in live_fractions]
        result.metrics["psi"] = psi(ref["fractions"], live_fractions)
        if psi_limit is not None:
            result.thresholds["psi"] = psi_limit
            if psi(ref["fractions"], live_fractions) > psi_limit:
                result.reasons.append(f"PSI {result.metrics['psi']:.3f} > {psi_limit:g}")
    if len(values) and ref.get("sample"):
        test = ks_2samp(np.asarray(ref["sample"]), values)
        result.metrics["ks_statistic"], result.metrics["ks_pvalue"] = float(test.statistic), float(test.pvalue)
        if ks_limit is not None:
            alpha = ks_limit / max(tests, 1)
            result.thresholds["ks_pvalue"] = alpha
            if test.pvalue < alpha:
                result.reasons.append(f"KS p = {test.pvalue:.2g} < {alpha:.2g} (D = {test.statistic:.3f})")
    _missing(result, ref, live, spec.numeric.missing_delta)
    return result


def _categorical(name: str, ref: dict[str, Any], series: pd.Series[Any], spec: MonitorSpec, tests: int) -> FeatureDrift:
    import numpy as np
    from scipy.stats import chisquare

    over = spec.features.get(name)
    live = summarize(series, numeric=False)
    result = FeatureDrift(name, "categorical", "ok", reference=_brief(ref), live=_brief(live))
    ref_freq: dict[str, float] = ref.get("frequencies", {})
    live_freq: dict[str, float] = live["frequencies"]
    known = set(ref_freq)
    new = {k: v for k, v in live_freq.items() if k not in known} if OTHER not in known else {}
    new_share = float(sum(new.values()))
    result.metrics["new_categories"] = new_share
    result.live["new"] = sorted(new, key=lambda k: -new[k])[:10]
    result.thresholds["new_categories"] = spec.categorical.new_categories
    if new_share > spec.categorical.new_categories:
        shown = ", ".join(repr(k) for k in result.live["new"][:3])
        result.reasons.append(f"{new_share:.1%} of rows have values unseen in training ({shown})")
    if live_freq:
        result.metrics["js_distance"] = js_distance(ref_freq, live_freq)
        js_limit = (over.js_distance if over and over.js_distance else None) or spec.categorical.js_distance
        if js_limit is not None:
            result.thresholds["js_distance"] = js_limit
            js = js_distance(ref_freq, live_freq)
            if js > js_limit:
                result.reasons.append(f"Jensen-Shannon {js:.3f} > {js_limit:g}")
        chi_limit = (over.chi2_pvalue if over and over.chi2_pvalue else None) or spec.categorical.chi2_pvalue
        present = int(series.notna().sum())
        if chi_limit is not None and present:
            keys = sorted(set(ref_freq) | set(live_freq))
            observed = np.array([live_freq.get(k, 0.0) for k in keys]) * present
            expected = np.clip(np.array([ref_freq.get(k, 0.0) for k in keys]), _EPS, None)
            expected = expected / expected.sum() * observed.sum()
            test = chisquare(observed, expected)
            alpha = chi_limit / max(tests, 1)
            result.metrics["chi2_pvalue"] = float(test.pvalue)
            result.thresholds["chi2_pvalue"] = alpha
            if test.pvalue < alpha:
                result.reasons.append(f"chi-square p = {test.pvalue:.2g} < {alpha:.2g}")
    _missing(result, ref, live, spec.categorical.missing_delta)
    return result


def _missing(result: FeatureDrift, ref: dict[str, Any], live: dict[str, Any], limit: float | None) -> None:
    delta = abs(float(live["missing"]) - float(ref.get("missing", 0.0)))
    result.metrics["missing_delta"] = delta
    if limit is not None:
        result.thresholds["missing_delta"] = limit
        if delta > limit:
            result.reasons.append(f"missing share {ref.get('missing', 0.0):.1%} -> {live['missing']:.1%}")
    if result.reasons:
        result.status = "drift"


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without the raw sample (reports stay small)."""
    return {k: v for k, v in summary.items() if k != "sample"}


def _label(value: Any) -> str:
    """A class label as text, the same for 1, 1.0 (a label column with gaps is float) and "1"."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _performance(
    frame: pd.DataFrame, target: str, labels: list[Any], proba: Any, *, spec: MonitorSpec, evaluated: dict[str, Any]
) -> dict[str, Any]:
    import numpy as np
    from sklearn import metrics as skm

    check = spec.performance
    assert check is not None
    y = frame[target]
    labelled = y.notna().to_numpy()
    values = labels
    name = check.metric
    if name in {"rmse", "mae", "r2"}:
        pred = np.asarray(values, dtype=np.float64)[labelled]
        truth = y[labelled].to_numpy(dtype=np.float64)
        if name == "rmse":
            value = math.sqrt(skm.mean_squared_error(truth, pred))
        else:
            value = skm.mean_absolute_error(truth, pred) if name == "mae" else skm.r2_score(truth, pred)
    else:
        truth = np.asarray([_label(v) for v in y[labelled]])
        predicted = np.asarray([_label(v) for v in values])[labelled]
        if name == "accuracy":
            value = skm.accuracy_score(truth, predicted)
        elif name == "roc_auc":
            if proba is None or len(set(truth)) < 2:
                rows = int(labelled.sum())
                return {"metric": name, "value": None, "rows": rows, "status": "ok", "reasons": ["not computable on these rows"]}
            value = skm.roc_auc_score(truth, np.asarray(proba)[labelled, 1])
        else:
            fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[name]
            classes = sorted(set(truth) | set(predicted))
            binary = len(classes) <= 2
            value = fn(truth, predicted, pos_label=classes[-1], average="binary" if binary else "macro", zero_division=0)
    value = float(value)
    baseline = evaluated.get(name)

    def worse(a: float, b: float) -> bool:
        return a > b if name in _LOWER_IS_BETTER else a < b

    reasons = []
    if check.max_drop is not None and isinstance(baseline, int | float) and math.isfinite(baseline):
        limit = baseline + check.max_drop if name in _LOWER_IS_BETTER else baseline - check.max_drop
        if worse(value, limit):
            reasons.append(f"{name} {number(value)} vs {number(baseline)} at evaluation (allowed change {check.max_drop:g})")
    if check.min_value is not None and worse(value, check.min_value):
        reasons.append(f"{name} {number(value)} beyond the limit {check.min_value:g}")
    return {
        "metric": name,
        "value": value,
        "baseline": baseline,
        "rows": int(labelled.sum()),
        "status": "drift" if reasons else "ok",
        "reasons": reasons,
    }


def compare(
    profile: dict[str, Any],
    live: pd.DataFrame,
    spec: MonitorSpec,
    *,
    model: str,
    version: int,
    predictions: tuple[str, pd.Series[Any]] | None = None,
    labels: list[Any] | None = None,
    probabilities: Any = None,
    target: str | None = None,
    evaluated: dict[str, Any] | None = None,
) -> DriftReport:
    """Compare ``live`` rows with ``profile`` under the thresholds of ``spec``.

    Args:
        profile: the version's reference profile (:func:`mlflowkit.monitor.profile.build_profile`).
        live: the live rows (extra columns are ignored; missing feature columns are reported).
        spec: the ``monitor:`` section.
        model, version: what is being watched (for the report).
        predictions: the champion's outputs on ``live`` as profiled: (``probability`` | ``label`` | ``value``, values).
        labels: the champion's predicted labels (or values, for a regressor) on ``live``, for performance.
        probabilities: its class probabilities on ``live`` (rows x classes), for roc_auc.
        target: the target column; when ``live`` has it, performance is computed.
        evaluated: the version's metrics at evaluation (the baseline for ``performance.max_drop``).
    """
    features: dict[str, dict[str, Any]] = profile["features"]
    tested = [f for f in features if f in live.columns and not (spec.features.get(f) and spec.features[f].ignore)]
    results: list[FeatureDrift] = []
    for name, ref in features.items():
        if name not in live.columns:
            ignored = bool(spec.features.get(name) and spec.features[name].ignore)
            status = "ignored" if ignored else "missing"
            results.append(FeatureDrift(name, ref["type"], status, reasons=["the live data has no such column"]))
            continue
        series = live[name]
        if ref["type"] == "numeric" and not is_numeric(series) and series.notna().any():
            result = FeatureDrift(name, "numeric", "drift", reasons=[f"values are no longer numbers (dtype {series.dtype})"])
        elif ref["type"] == "numeric":
            result = _numeric(name, ref, series, spec, len(tested))
        else:
            result = _categorical(name, ref, series, spec, len(tested))
        if spec.features.get(name) and spec.features[name].ignore:
            result.status = "ignored"
        results.append(result)
    report = DriftReport(model=model, version=version, rows=len(live), features=results)
    if len(live) < spec.min_rows:
        report.verdict = "too-few-rows"
        report.reasons.append(f"{len(live)} live rows; at least {spec.min_rows} are needed for a verdict")
        return report
    drifted = [f for f in results if f.drifted]
    if len(drifted) >= spec.min_drifted_features:
        report.reasons.append(
            f"{len(drifted)} feature(s) drifted: " + ", ".join(f"{f.feature} ({'; '.join(f.reasons)})" for f in drifted)
        )
    if predictions is not None and spec.prediction.enabled and "prediction" in profile:
        kind, values = predictions
        ref = profile["prediction"]
        if kind == "label":
            pred = _categorical("prediction", ref, values, spec.model_copy(update={"features": {}}), 1)
            pred.thresholds = {"js_distance": spec.prediction.js_distance}
            js = pred.metrics.get("js_distance") or 0.0
            limit = spec.prediction.js_distance
            pred.reasons = [f"Jensen-Shannon {js:.3f} > {limit:g}"] if js > limit else []
        else:
            pred = _numeric("prediction", ref, values, spec.model_copy(update={"features": {}}), 1)
            pred.thresholds = {"psi": spec.prediction.psi}
            value = pred.metrics.get("psi") or 0.0
            pred.reasons = [f"PSI {value:.3f} > {spec.prediction.psi:g}"] if value > spec.prediction.psi else []
        pred.status = "drift" if pred.reasons else "ok"
        report.prediction = pred
        if pred.drifted:
            report.reasons.append(f"the champion's outputs drifted ({'; '.join(pred.reasons)})")
    if target and spec.performance is not None and target in live.columns and live[target].notna().any() and labels is not None:
        report.performance = _performance(live, target, labels, probabilities, spec=spec, evaluated=evaluated or {})
        if report.performance["status"] == "drift":
            report.reasons.append("performance: " + "; ".join(report.performance["reasons"]))
    report.verdict = "drift" if report.reasons else "ok"
    return report
