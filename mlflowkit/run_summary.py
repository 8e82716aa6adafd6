"""Past runs as a comparison reads them: params, metrics with their intervals, verdict, data fingerprint, version.

One :class:`RunSummary` per run record in a store, read from the record and the documents its steps
wrote (found by media type). ``runs list``, ``runs compare``, the comparison page, ``mlflowkit.runs()``
and the MLflow logging all read runs through it.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError
from mlflowkit.handoff import METRICS, SKOPS, DataFingerprint, ModelMeta, Ref, RunRecord, TableMeta, find_output

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore

__all__ = [
    "RunSummary",
    "data_fingerprint",
    "flat_metrics",
    "intervals",
    "last_output",
    "metrics_document",
    "model_meta",
    "read_records",
    "summarize",
]


def read_records(store: ArtifactStore) -> list[RunRecord]:
    """Every run record in the store, oldest first (records that cannot be read are left out)."""
    records = []
    for key in store.list_keys("runs/"):
        if not key.endswith(".json") or key.count("/") != 1:
            continue
        with contextlib.suppress(OSError, ValueError):
            records.append(RunRecord.model_validate(store.read_json(key)))
    return sorted(records, key=lambda r: (r.started_at, r.run_id))


def last_output(record: RunRecord, media_type: str) -> Ref | None:
    """The last output of ``media_type`` in plan order, or None."""
    found = [ref for step in record.steps if (ref := find_output(step.outputs, media_type)) is not None]
    return found[-1] if found else None


def model_meta(record: RunRecord) -> ModelMeta | None:
    """What the run's trained model says about itself (estimator, params, features, data fingerprint), or None."""
    ref = last_output(record, SKOPS)
    if ref is None:
        return None
    try:
        return ModelMeta.model_validate(ref.meta)
    except ValueError:
        return None


def metrics_document(store: ArtifactStore, record: RunRecord) -> dict[str, Any]:
    """Evaluate's full report for the run (metrics, intervals, fairness, curves), or {} when it has none."""
    ref = last_output(record, METRICS)
    if ref is None:
        return {}
    try:
        doc = json.loads(store.get_bytes(ref))
    except (OSError, ValueError, MlflowkitError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def flat_metrics(doc: dict[str, Any]) -> dict[str, float]:
    """Metric name -> value (fairness metrics included); only finite values."""
    values: dict[str, Any] = dict(doc.get("metrics") or {})
    values.update((doc.get("fairness") or {}).get("metrics") or {})
    return {str(name): v for name, value in values.items() if (v := _finite(value)) is not None}


def intervals(doc: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Metric name -> its bootstrap confidence interval, for the metrics that have one."""
    out = {}
    for name, bounds in (doc.get("ci") or {}).items():
        if isinstance(bounds, list | tuple) and len(bounds) == 2:
            low, high = _finite(bounds[0]), _finite(bounds[1])
            if low is not None and high is not None:
                out[str(name)] = (low, high)
    return out


def data_fingerprint(record: RunRecord, meta: ModelMeta | None = None) -> DataFingerprint | None:
    """The fingerprint of the data the run trained on (from its model, else from its tables), or None."""
    meta = meta or model_meta(record)
    if meta is not None and meta.data_fingerprint is not None:
        return meta.data_fingerprint
    for step in record.steps:
        for ref in step.outputs.values():
            if ref.media_type.endswith("parquet"):
                with contextlib.suppress(ValueError):
                    fp = TableMeta.model_validate(ref.meta).data_fingerprint
                    if fp is not None:
                        return fp
    return None


@dataclass(frozen=True)
class RunSummary:
    """One run, flattened for tables and charts."""

    record: RunRecord
    metrics: dict[str, float] = field(default_factory=dict)
    """Metric name -> value on the held-out rows (finite values only)."""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Metric name -> bootstrap confidence interval, when evaluate computed one."""
    estimator: str | None = None
    """What was fitted (an import path), when the run trained a model."""
    estimator_params: dict[str, Any] = field(default_factory=dict)
    """The parameters it was fitted with (after a search: the best ones)."""
    fingerprint: DataFingerprint | None = None
    """The training data's fingerprint."""
    document: dict[str, Any] = field(default_factory=dict)
    """Evaluate's full report (curves, residuals, fairness), as it wrote it."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.record.run_id

    def param(self, name: str) -> Any:
        """A parameter by name: the spec's ``params:`` first, then the estimator's; None when neither has it."""
        if name in self.record.params:
            return self.record.params[name]
        return self.estimator_params.get(name.removeprefix("estimator."))

    @property
    def params(self) -> dict[str, Any]:
        """The spec's params and the estimator's (as ``estimator.NAME``), in one mapping."""
        merged: dict[str, Any] = dict(self.record.params)
        merged.update({f"estimator.{k}": v for k, v in self.estimator_params.items()})
        return merged

    @property
    def verdict(self) -> str:
        """``pass``, ``fail`` or ``-`` (no gates decided)."""
        verdict = self.record.verdict
        return "-" if verdict is None else ("pass" if verdict.passed else "fail")

    @property
    def registered(self) -> str:
        """``model vN``, or ``-``."""
        return self.record.version.label() if self.record.version is not None else "-"


def summarize(store: ArtifactStore, record: RunRecord) -> RunSummary:
    """A run's summary from its record and the documents its steps wrote."""
    doc = metrics_document(store, record)
    meta = model_meta(record)
    return RunSummary(
        record=record,
        metrics=flat_metrics(doc),
        intervals=intervals(doc),
        estimator=meta.estimator if meta is not None else None,
        estimator_params=dict(meta.params) if meta is not None else {},
        fingerprint=data_fingerprint(record, meta),
        document=doc,
    )
