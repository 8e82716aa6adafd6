"""Past runs as a comparison reads them: params, metrics with their intervals, verdict, data fingerprint, version.

One :class:`RunSummary` per run record in a store, read from the record and the documents its steps
wrote (found by media type). ``runs list``, ``runs compare``, the comparison page, ``mlflowkit.runs()``
and the MLflow logging all read runs through it; so do a run's end (:func:`outcome`) in the terminal and in
the flow run's log, and its summary artifact in the Prefect UI (:func:`summary_markdown`).
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError
from mlflowkit.fmt import interval, number
from mlflowkit.handoff import (
    METRICS,
    SKOPS,
    DataFingerprint,
    ModelMeta,
    Ref,
    RunRecord,
    RunResult,
    TableMeta,
    Verdict,
    find_output,
)

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore

__all__ = [
    "ComparedRow",
    "RunFilter",
    "RunOutcome",
    "RunSummary",
    "compare",
    "data_fingerprint",
    "flat_metrics",
    "fmt",
    "intervals",
    "known_names",
    "last_output",
    "metrics_document",
    "model_meta",
    "outcome",
    "outcome_lines",
    "read_records",
    "sort_key",
    "summarize",
    "summary_markdown",
    "value_of",
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
        """``model vN``, ``model vN (equal)`` when the model equals a version registered before, or ``-``."""
        version = self.record.version
        if version is None:
            return "-"
        return f"{version.label()} (equal)" if version.existing else version.label()


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


# ------------------------------------------------------------------------------------------ what a run produced


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced, in words: the end of ``mlflowkit run`` and the flow run's summary say it."""

    registered: str
    """``churn v3 → champion``, or ``nothing: <why>`` (the gates failed, the run stopped at a step, ...)."""
    verdict: str | None
    """``passed (4 rules)`` or ``failed: <rule> (value v, threshold t)``; None when no gates step decided."""
    failed_step: str | None
    """The step that stopped the run (the first failure in plan order), or None."""


def _failed_rules(verdict: Verdict) -> str:
    return "; ".join(
        f"{r.rule} ({r.note})" if r.value is None else f"{r.rule} (value {fmt(r.value)}, threshold {fmt(r.threshold)})"
        for r in verdict.failed()
    )


def outcome(record: RunRecord) -> RunOutcome:
    """What ``record``'s run registered (or why nothing), its verdict with the failing rules, and where it stopped."""
    failed_step = next((s.name for s in record.steps if s.status == "failed"), None)
    verdict = record.verdict
    said = None
    if verdict is not None:
        n = len(verdict.rules)
        said = f"passed ({n} rule{'s' if n != 1 else ''})" if verdict.passed else f"failed: {_failed_rules(verdict)}"
    version = record.version
    if version is not None and version.existing:
        registered = f"nothing new: the model equals {version.label()}; no alias moved"
    elif version is not None:
        registered = version.label() + (f" → {version.alias}" if version.alias else " (no alias)")
        if version.held:
            registered += f", held back from champion: {version.held}"
    elif verdict is not None and not verdict.passed:
        registered = "nothing: the gates failed"
        if verdict.rejected_version is not None:
            registered += f" (the candidate is kept as {record.model} v{verdict.rejected_version}, alias rejected)"
    elif failed_step is not None:
        registered = f"nothing: the run stopped at step {failed_step}"
    elif record.status != "completed":
        registered = f"nothing: the run is {record.status}"
    else:
        registered = "nothing: no step of this spec registers a model"
    return RunOutcome(registered=registered, verdict=said, failed_step=failed_step)


def outcome_lines(result: RunResult) -> list[str]:
    """The run's end as the flow run's log says it: what was registered, the verdict, the report."""
    said = outcome(result)
    lines = [f"registered: {said.registered}"]
    if said.verdict is not None:
        lines.append(f"verdict: {said.verdict}")
    if result.report_path:
        lines.append(f"report: {result.report_path} (`mlflowkit report {result.run_id}`)")
    return lines


def _md(value: object) -> str:
    """A value for a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(store: ArtifactStore, result: RunResult) -> str:
    """The run summary artifact: outcome, the verdict's rules, the metrics, where the report is, the steps.

    The HTML report lives on the machine that ran the flow; the artifact carries its key content so a
    Prefect UI user sees it without that file.
    """
    said = outcome(result)
    lines = [
        f"# {result.spec_name}: {result.status}",
        "",
        "| | |",
        "|---|---|",
        f"| registered | {_md(said.registered)} |",
        f"| verdict | {_md(said.verdict or 'no gates decided')} |",
        f"| report | `{_md(result.report_path or '-')}` (`mlflowkit report {result.run_id}`) |",
        f"| run | `{result.run_id}` |",
        f"| spec | `{_md(result.spec_path)}` (sha256 {result.spec_hash[:12]}) |",
        f"| params | `{_md(json.dumps(result.params, sort_keys=True))}` |",
        f"| steps | {', '.join(f'{s.name} {s.status}' for s in result.steps)} |",
    ]
    if result.error:
        lines.append(f"| error | {_md(result.error)} |")
    if result.verdict is not None and result.verdict.rules:
        lines += ["", "## Gates", "", "| rule | value | threshold | result | note |", "|---|---|---|---|---|"]
        lines += [
            f"| {_md(r.rule)} | {fmt(r.value)} | {fmt(r.threshold)} | {'pass' if r.passed else '**FAIL**'} | {_md(r.note)} |"
            for r in result.verdict.rules
        ]
    try:
        document = metrics_document(store, result)
    except Exception:  # an unreadable document leaves the metrics out, not the summary
        document = {}
    values = {**(document.get("metrics") or {}), **((document.get("fairness") or {}).get("metrics") or {})}
    if not values and result.verdict is not None:
        values = dict(result.verdict.metrics)
    if values:
        intervals = document.get("ci") or {}
        lines += ["", "## Metrics (held-out split)", "", "| metric | value | interval |", "|---|---|---|"]
        for name, value in values.items():
            ci = intervals.get(name)
            shown = interval(ci[0], ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else ""
            lines.append(f"| {_md(name)} | {fmt(value) if isinstance(value, int | float) else _md(value)} | {shown} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ choosing runs

_COLUMNS = ("run", "spec", "status", "verdict", "registered", "seconds", "started", "estimator")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(>=|<=|!=|==|>|<|=)\s*(.+?)\s*$")


def value_of(run: RunSummary, name: str) -> Any:
    """A column, a metric or a parameter of ``run`` by name (in that order); None when the run has none of that name."""
    columns: dict[str, Any] = {
        "run": run.run_id,
        "spec": run.record.spec_name,
        "status": run.record.status,
        "verdict": run.verdict,
        "registered": run.registered,
        "seconds": run.record.seconds,
        "started": run.record.started_at,
        "estimator": run.estimator,
    }
    if name in columns:
        return columns[name]
    if name in run.metrics:
        return run.metrics[name]
    return run.param(name)


@dataclass(frozen=True)
class RunFilter:
    """``NAME OP VALUE``: a column (status, verdict, spec, ...), a metric or a param compared with a value."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> RunFilter:
        """Read ``roc_auc>=0.8``, ``status=completed``, ``n_estimators=150``.

        Raises:
            ValueError: not of the form NAME OP VALUE (the message shows the form).
        """
        match = _FILTER.match(text)
        if not match:
            ops = " ".join(_OPS)
            raise ValueError(f"filter {text!r}: write NAME OP VALUE, e.g. roc_auc>=0.8 or status=completed (OP: {ops})")
        return cls(*match.groups())

    def __call__(self, run: RunSummary) -> bool:
        found = value_of(run, self.name)
        if found is None:
            return False  # a run without that metric or param does not pass a filter on it
        want: Any = self.value
        if isinstance(found, int | float) and not isinstance(found, bool):
            try:
                want = float(self.value)
            except ValueError:
                return False
        else:
            found = str(found).lower() if isinstance(found, bool) else str(found)
        try:
            return bool(_OPS[self.op](found, want))
        except TypeError:
            return False


def sort_key(name: str) -> Callable[[RunSummary], tuple[int, Any]]:
    """A sort key on a column, metric or param; runs without it go last, numbers before text."""

    def key(run: RunSummary) -> tuple[int, Any]:
        value = value_of(run, name)
        if value is None:
            return (2, "")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (0, float(value))
        return (1, str(value))

    return key


def known_names(runs: list[RunSummary]) -> list[str]:
    """Every column, metric and param name the runs have, for did-you-mean messages."""
    names = set(_COLUMNS)
    for run in runs:
        names |= set(run.metrics) | set(run.record.params) | set(run.estimator_params)
    return sorted(names)


# ------------------------------------------------------------------------------------------ side by side


@dataclass(frozen=True)
class ComparedRow:
    """One field of a comparison: its value in each run, and whether they differ."""

    section: str
    name: str
    values: tuple[str, ...]

    @property
    def differs(self) -> bool:
        """Whether the runs do not all agree on it."""
        return len(set(self.values)) > 1


def fmt(value: Any) -> str:
    """A value as the comparison shows it: numbers in the one format (:func:`mlflowkit.fmt.number`), ``-`` for nothing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _metric(run: RunSummary, name: str) -> str:
    value = run.metrics.get(name)
    if value is None:
        return "-"
    ci = run.intervals.get(name)
    return fmt(value) + (f" {interval(ci[0], ci[1])}" if ci else "")


def _rule(run: RunSummary, rule: str) -> str:
    verdict = run.record.verdict
    found = next((r for r in verdict.rules if r.rule == rule), None) if verdict else None
    if found is None:
        return "-"
    # A rule that compared nothing (no champion yet, a missing metric) says why instead.
    if found.value is not None:
        detail = f" ({fmt(found.value)} vs {fmt(found.threshold)})"
    else:
        detail = f" ({found.note})" if found.note else ""
    return ("pass" if found.passed else "FAIL") + detail


def _trigger(run: RunSummary) -> str:
    trigger = run.record.trigger
    return "by hand" if trigger is None else (trigger.deployment or trigger.by)


def compare(runs: list[RunSummary]) -> list[ComparedRow]:
    """Params, metrics with intervals, gate verdicts, data fingerprints and lineage of ``runs``, side by side."""

    def row(section: str, name: str, get: Callable[[RunSummary], Any]) -> ComparedRow:
        return ComparedRow(section, name, tuple(fmt(get(r)) for r in runs))

    rows = [
        row("run", "spec", lambda r: r.record.spec_name),
        row("run", "status", lambda r: r.record.status),
        row("run", "started", lambda r: r.record.started_at[:19]),
        row("run", "seconds", lambda r: r.record.seconds),
        row("run", "registered", lambda r: r.registered),
    ]
    params = sorted({k for r in runs for k in r.params})
    rows += [ComparedRow("params", p, tuple(fmt(r.params.get(p)) for r in runs)) for p in params]
    metrics = sorted({k for r in runs for k in r.metrics})
    rows += [ComparedRow("metrics", m, tuple(_metric(r, m) for r in runs)) for m in metrics]
    rows.append(row("gates", "verdict", lambda r: r.verdict))
    rules = list(dict.fromkeys(rule.rule for r in runs if r.record.verdict for rule in r.record.verdict.rules))
    rows += [ComparedRow("gates", rule, tuple(_rule(r, rule) for r in runs)) for rule in rules]
    rows += [
        row("data", "source", lambda r: r.fingerprint.source if r.fingerprint else None),
        row("data", "rows", lambda r: r.fingerprint.rows if r.fingerprint else None),
        row("data", "content sha256", lambda r: (r.fingerprint.content_hash or "-")[:16] if r.fingerprint else None),
        row("data", "schema sha256", lambda r: r.fingerprint.schema_hash[:16] if r.fingerprint else None),
        row("lineage", "spec sha256", lambda r: r.record.spec_hash[:16]),
        row("lineage", "git commit", lambda r: (r.record.git_commit or "-")[:12]),
        row("lineage", "estimator", lambda r: r.estimator),
        row("lineage", "Prefect flow run", lambda r: r.record.flow_run_id),
        row("lineage", "triggered by", _trigger),
        row("lineage", "MLflow run", lambda r: r.record.tracking.mlflow_run_id if r.record.tracking else None),
    ]
    return rows
