"""The spec's ``monitor:`` section: which drift metrics to compute on live data, their thresholds, what happens then.

Light on purpose (pydantic only): it is validated with the rest of the spec. The numbers are
computed by :mod:`mlflowkit.monitor.drift`; the flow that runs them is :mod:`mlflowkit.runtime.monitor`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from mlflowkit.spec.schedule import Schedule, as_list

__all__ = ["CategoricalDrift", "FeatureThresholds", "MonitorSpec", "NumericDrift", "PerformanceCheck", "PredictionDrift"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericDrift(_Frozen):
    """Thresholds for numeric features. A feature drifts when any metric that is set crosses its threshold."""

    psi: float | None = Field(
        0.2, gt=0, description="Population stability index over the reference deciles; drift above it (0.1 watch, 0.2 act)."
    )
    ks_pvalue: float | None = Field(
        0.01,
        gt=0,
        lt=1,
        description="Two-sample Kolmogorov-Smirnov test against the reference sample; drift when p is below this "
        "value divided by the number of features tested (Bonferroni).",
    )
    missing_delta: float | None = Field(
        0.1, ge=0, le=1, description="Drift when the share of missing values moved by more than this (absolute)."
    )


class CategoricalDrift(_Frozen):
    """Thresholds for categorical (text) features."""

    js_distance: float | None = Field(
        0.1, gt=0, le=1, description="Jensen-Shannon distance (base 2) between reference and live frequencies; drift above."
    )
    chi2_pvalue: float | None = Field(
        0.01,
        gt=0,
        lt=1,
        description="Chi-square goodness of fit of the live counts to the reference frequencies; drift when p is below "
        "this value divided by the number of features tested (Bonferroni).",
    )
    new_categories: float = Field(
        0.01, ge=0, le=1, description="Drift when values never seen in training make up more than this share of rows."
    )
    missing_delta: float | None = Field(
        0.1, ge=0, le=1, description="Drift when the share of missing values moved by more than this (absolute)."
    )


class FeatureThresholds(_Frozen):
    """Per-feature overrides of the thresholds above (unset keys keep the section's value)."""

    psi: float | None = Field(None, gt=0, description="PSI threshold for this feature.")
    ks_pvalue: float | None = Field(None, gt=0, lt=1, description="KS p-value threshold for this feature.")
    js_distance: float | None = Field(None, gt=0, le=1, description="Jensen-Shannon threshold for this feature.")
    chi2_pvalue: float | None = Field(None, gt=0, lt=1, description="Chi-square p-value threshold for this feature.")
    ignore: bool = Field(False, description="Leave this feature out of the verdict (it is still reported).")


class PredictionDrift(_Frozen):
    """Drift of the champion's own outputs on live data (the positive-class probability, or the labels)."""

    enabled: bool = Field(True, description="Score live rows with the champion (ONNX) and compare its outputs.")
    psi: float = Field(0.2, gt=0, description="PSI threshold for a probability output.")
    js_distance: float = Field(0.1, gt=0, le=1, description="Jensen-Shannon threshold for predicted labels.")


class PerformanceCheck(_Frozen):
    """When labels arrive with the live data (the target column is present), how good the champion still is."""

    metric: Literal["accuracy", "f1", "roc_auc", "precision", "recall", "rmse", "mae", "r2"] = Field(
        "accuracy", description="The metric to compute on labelled live rows."
    )
    max_drop: float | None = Field(
        0.05, ge=0, description="Drift when the metric is worse than at evaluation by more than this (absolute)."
    )
    min_value: float | None = Field(None, description="Drift when the metric is below this (above, for rmse/mae).")


class MonitorSpec(_Frozen):
    """How the champion is watched on live data, and what happens when the data moves.

    Example:

    ```yaml
    monitor:
      data: live/*.csv              # what a scheduled check reads; `mlflowkit monitor --data` overrides
      schedule: {interval: 1h}
      numeric: {psi: 0.2, ks_pvalue: 0.01}
      categorical: {js_distance: 0.1, new_categories: 0.01}
      features: {customer_id: {ignore: true}}
      performance: {metric: roc_auc, max_drop: 0.05}
      on_drift: retrain
    ```
    """

    data: str | None = Field(
        None, description="Live data to check on a schedule (a path, glob or fsspec URI; CSV, Parquet or JSON lines)."
    )
    schedule: Annotated[tuple[Schedule, ...], BeforeValidator(as_list)] = Field(
        (), description="How often the check runs once registered with `mlflowkit flows deploy` (cron, interval or rrule)."
    )
    min_rows: int = Field(50, ge=1, description="Fewer live rows than this: no verdict (too few to tell), no trigger.")
    numeric: NumericDrift = Field(default_factory=NumericDrift, description="Thresholds for numeric features.")
    categorical: CategoricalDrift = Field(default_factory=CategoricalDrift, description="Thresholds for text features.")
    features: dict[str, FeatureThresholds] = Field(default_factory=dict, description="Per-feature threshold overrides.")
    min_drifted_features: int = Field(1, ge=1, description="How many features must drift for the data to count as drifted.")
    prediction: PredictionDrift = Field(default_factory=PredictionDrift, description="Drift of the champion's outputs.")
    performance: PerformanceCheck | None = Field(
        default_factory=PerformanceCheck, description="Performance on labelled live rows; null: never compute it."
    )
    on_drift: Literal["retrain", "report"] = Field(
        "retrain", description="`retrain`: trigger the spec's training flow; `report`: only write the drift report."
    )
