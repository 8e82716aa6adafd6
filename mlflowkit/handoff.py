"""The typed hand-offs between steps and the run record: what one step's outputs carry and the next one reads.

Steps exchange :class:`Ref` s: bytes in the artifact store, their media type, and small JSON ``meta``.
This module names the media types of what the built-in kinds write, and the pydantic models of the
documents and metadata that other steps, the runner, the CLI and the report read, so that a writer
and its readers agree on one type instead of on dict keys. It imports only pydantic and the errors: every
layer may use it. Whoever looks for a document (the verdict, the registered version) looks for its
media type, never for the name of the stage that made it.

The contract between the built-in kinds (docs/architecture.md has the same table). An output is
``name: media type [meta model]``; a kind reads its inputs by output name, whatever step made them.

==========  ======================================================  ====================================================
kind        reads                                                   produces
==========  ======================================================  ====================================================
load        (the data source)                                       dataset: PARQUET [TableMeta]
split       dataset [TableMeta.target]                              train, test: PARQUET [TableMeta, part]
checks      dataset, train?, test? [TableMeta.target]               validation: VALIDATION [passed, counts]; train/test
                                                                    passed on
python      every PARQUET input (or a ``@step``'s declared inputs)  the same names: PARQUET [the input's TableMeta]
sklearn     train [TableMeta.target, data_fingerprint]              model: JOBLIB [ModelMeta]; trials?: TRIALS
torch       train [TableMeta.target, data_fingerprint]              model: JOBLIB [ModelMeta, framework ``torch``]
evaluate    model [ModelMeta.target, task], test                    metrics: METRICS [MetricsMeta]
gates       metrics [MetricsMeta]                                   verdict: VERDICT (:class:`Verdict`) [passed]
onnx        model [ModelMeta.features, classes, target], test       onnx: ONNX, contract: CONTRACT [opset, layout, parity]
profile     train, test, onnx?, contract?                           profile: PROFILE [rows, features]
register    model [ModelMeta], metrics [MetricsMeta], verdict?,     version: VERSION (:class:`RegisteredVersion`)
            onnx?, contract?, trials?, profile?                     [model, version]
deploy      version [RegisteredVersion], test                       deployment: DEPLOYMENT [model, version]
noop        anything                                                its inputs, unchanged
==========  ======================================================  ====================================================

The run record (``runs/<run_id>.json``) is a :class:`RunRecord`: one :class:`StepRecord` per step, the
:class:`Verdict` and the :class:`RegisteredVersion` found among the step outputs by media type, and
the :class:`Trigger` when a deployment or a drift check started the run. Records written by older
versions of mlflowkit read as the same types (unknown keys are ignored, missing ones default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlflowkit.errors import MlflowkitError, StepFailed

__all__ = [
    "CONTRACT",
    "DEPLOYMENT",
    "JOBLIB",
    "JSON",
    "METRICS",
    "ONNX",
    "PARQUET",
    "PROFILE",
    "SKOPS",
    "TRIALS",
    "VALIDATION",
    "VERDICT",
    "VERSION",
    "ChampionScores",
    "DataFingerprint",
    "MetricsMeta",
    "ModelMeta",
    "Ref",
    "RegisteredVersion",
    "RuleResult",
    "RunRecord",
    "RunResult",
    "StepRecord",
    "StepStatus",
    "TableMeta",
    "TrackingOutcome",
    "Trigger",
    "Verdict",
    "find_output",
    "is_json",
    "meta_of",
]

# ------------------------------------------------------------------------------------------ media types

JSON = "application/json"
"""Plain JSON (a ``@step``'s JSON output, and documents written before the types below existed)."""
PARQUET = "application/vnd.apache.parquet"
"""A table (``dataset``, ``train``, ``test``)."""
SKOPS = "application/vnd.skops"
"""A fitted model kept inside the store (never deployed), written with skops: no pickle."""
JOBLIB = "application/x-joblib"
"""A pickled model written by older versions; never loaded from the store."""
ONNX = "application/onnx"
"""The exported model, what deploy targets serve."""
VERDICT = "application/vnd.mlflowkit.verdict+json"
"""A :class:`Verdict`."""
VERSION = "application/vnd.mlflowkit.version+json"
"""A :class:`RegisteredVersion`."""
METRICS = "application/vnd.mlflowkit.metrics+json"
"""Evaluate's full report: metrics, confidence intervals, slices, fairness, the champion's scores."""
CONTRACT = "application/vnd.mlflowkit.contract+json"
"""The exported model's contract (:class:`mlflowkit.targets.contract.Contract`)."""
VALIDATION = "application/vnd.mlflowkit.validation+json"
"""The data checks' outcome (one verdict per expectation, and Great Expectations' results)."""
DEPLOYMENT = "application/vnd.mlflowkit.deployment+json"
"""What was deployed where (one record per target)."""
PROFILE = "application/vnd.mlflowkit.profile+json"
"""The monitoring reference profile of the training data and the model's outputs."""
TRIALS = "application/vnd.mlflowkit.trials+json"
"""A hyper-parameter search: every trial with its scores."""


def is_json(media_type: str) -> bool:
    """Whether bytes of this media type are JSON (``application/json`` or any ``...+json``)."""
    return media_type == JSON or media_type.endswith("+json")


class _Doc(BaseModel):
    """Base of the documents: frozen; unknown keys ignored, so that records written by other versions still read."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# ------------------------------------------------------------------------------------------ references


class Ref(BaseModel):
    """A reference to bytes held by an :class:`~mlflowkit.store.ArtifactStore`; what steps pass to each other."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Store-relative key where the bytes are, e.g. 'objects/ab/abcdef...'.")
    sha256: str = Field(description="Hex SHA-256 of the bytes.")
    size: int = Field(ge=0, description="Size of the bytes.")
    media_type: str = Field(description="Media type, e.g. 'application/vnd.apache.parquet'.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Small JSON metadata (columns, target name, ...).")


def find_output(outputs: Mapping[str, Ref], media_type: str) -> Ref | None:
    """The first output of ``media_type`` among ``{name: Ref}`` (a step's outputs, or its inputs), or None."""
    return next((ref for ref in outputs.values() if ref.media_type == media_type), None)


_Meta = TypeVar("_Meta", bound=BaseModel)


def meta_of(ref: Ref, model: type[_Meta], *, step: str, name: str) -> _Meta:
    """The typed meta of input ``name``; a StepFailed naming what is missing when its producer did not write it.

    Args:
        ref: the input.
        model: the meta's type (:class:`ModelMeta`, :class:`MetricsMeta`, ...).
        step: the step reading it (named in the error).
        name: the input's name (named in the error).
    """
    try:
        return model.model_validate(ref.meta)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'meta'}: {e['msg']}" for e in exc.errors())
        raise StepFailed(step, f"input {name!r} does not carry the {model.__name__} this step reads ({problems})") from None


# ------------------------------------------------------------------------------------------ tables and models


class DataFingerprint(_Doc):
    """What identifies the data a model was trained on (``load`` computes it; lineage keeps it)."""

    rows: int = Field(description="Rows read.")
    schema_hash: str = Field(description="sha256 of the column names and dtypes.")
    content_hash: str | None = Field(None, description="sha256 of the source file's bytes.")
    source: str = Field("", description="The data source as the spec names it.")


class TableMeta(_Doc):
    """The meta of a PARQUET output: its shape, the target column, and where the rows came from."""

    rows: int = Field(description="Number of rows.")
    columns: tuple[str, ...] = Field(description="Column names, in order.")
    target: str | None = Field(None, description="The column to predict (set by ``load``; later steps keep it).")
    data_fingerprint: DataFingerprint | None = Field(None, description="The source data's fingerprint.")
    positive: str | int | bool | None = Field(None, description="The positive class of a binary target (``data.positive``).")
    part: Literal["train", "test"] | None = Field(None, description="Which side of the split, for the split's outputs.")


class ModelMeta(_Doc):
    """The meta of a ``model`` output: what evaluate, export, profile, register and monitoring read about the model."""

    estimator: str = Field(description="What was fitted: an estimator's import path, or ``torch:<model>``.")
    params: dict[str, Any] = Field(default_factory=dict, description="The parameters it was fitted with.")
    features: tuple[str, ...] = Field(description="Input columns, in the order the model takes them.")
    target: str = Field(description="The predicted column.")
    classes: tuple[str | bool | int | float, ...] = Field((), description="Class labels, in the model's order (classifiers).")
    task: Literal["classification", "regression"] = Field("classification", description="What the model predicts.")
    framework: str = Field("sklearn", description="The library that fitted it (``sklearn``, ``torch``).")
    data_fingerprint: DataFingerprint | None = Field(None, description="The training data's fingerprint.")
    positive: str | int | bool | None = Field(None, description="The positive class for binary metrics (``data.positive``).")
    search: dict[str, Any] | None = Field(None, description="The hyper-parameter search's outcome, when one ran.")
    torch: dict[str, Any] | None = Field(None, description="A torch training's history and checkpoints.")


# ------------------------------------------------------------------------------------------ metrics and the verdict


class ChampionScores(_Doc):
    """The champion's scores on this run's held-out rows (evaluate computes them, so gates compare like with like)."""

    version: int | None = Field(None, description="The champion's version; None when there is no champion yet.")
    metrics: dict[str, float | None] | None = Field(None, description="Its metrics; None when it could not be scored.")
    note: str = Field("", description="Why there are no scores (no champion yet, it could not score this data).")

    @property
    def exists(self) -> bool:
        """Whether there was a champion to compare with."""
        return self.version is not None


class MetricsMeta(_Doc):
    """The meta of a ``metrics`` output: the candidate's metrics by name, and the champion's on the same rows."""

    metrics: dict[str, float | None] = Field(description="Metric name -> value (None or NaN: could not be computed).")
    n_test: int = Field(0, description="Held-out rows scored.")
    champion: ChampionScores | None = Field(None, description="The champion's scores; None when evaluate did not look.")


class RuleResult(_Doc):
    """One gate rule's outcome."""

    rule: str = Field(description="The rule as written (``roc_auc >= champion.roc_auc - 0.01``).")
    description: str = Field("", description="Why the rule exists (from a structured rule).")
    passed: bool = Field(description="Whether the rule held.")
    value: float | None = Field(None, description="The left side's value.")
    threshold: float | None = Field(None, description="The right side's value.")
    baseline: int | None = Field(None, description="The champion version the rule compared with, when it reads champion.*.")
    note: str = Field("", description="Why the rule failed or passed without a comparison (missing value, NaN, no champion).")


class Verdict(_Doc):
    """The gates' decision: every rule's outcome, the metrics they read, and the champion compared with."""

    passed: bool = Field(description="Whether every rule held.")
    rules: tuple[RuleResult, ...] = Field((), description="Each rule's outcome, in spec order.")
    metrics: dict[str, float | None] = Field(default_factory=dict, description="The candidate's metrics the rules read.")
    champion: ChampionScores = Field(default_factory=ChampionScores, description="The champion's scores on the same rows.")
    on_missing_baseline: Literal["pass", "fail"] = Field("pass", description="What champion rules did without a champion.")
    run_id: str = Field("", description="The run that decided.")
    rejected_version: int | None = Field(None, description="With keep_rejected: the version kept under alias `rejected`.")

    def failed(self) -> list[RuleResult]:
        """The rules that did not hold."""
        return [r for r in self.rules if not r.passed]


# ------------------------------------------------------------------------------------------ registry and triggers


class RegisteredVersion(_Doc):
    """The ``version`` output of register: the version it made and which alias it took, or the equal one it found."""

    model: str = Field(description="The registered model's name.")
    version: int = Field(description="The version number.")
    alias: str | None = Field(None, description="The alias it took (``champion``, ``challenger``, ...), or none.")
    held: str = Field("", description="Why the policy held it back from champion (then it is ``challenger``).")
    existing: bool = Field(
        False,
        description="The run's model equals this version, registered before: nothing was registered and no alias moved.",
    )

    def label(self) -> str:
        """``model vN``."""
        return f"{self.model} v{self.version}"


class Trigger(_Doc):
    """What started a run when a person did not: a Prefect deployment (maybe on its schedule), or a drift check."""

    by: Literal["deployment", "monitor"] = Field("deployment", description="Who started it.")
    deployment: str | None = Field(None, description="``flow/deployment`` when a Prefect deployment ran it.")
    deployment_id: str | None = Field(None, description="The deployment's id on the Prefect server.")
    scheduled: bool = Field(False, description="Whether Prefect's scheduler (not a person or the API) created the run.")
    check_id: str | None = Field(None, description="The drift check that asked for retraining.")
    via: Literal["deployment", "local"] | None = Field(None, description="How a drift check started the run.")
    model: str | None = Field(None, description="The model the drift check watched.")
    version: int | None = Field(None, description="The version the drift check watched.")
    reasons: tuple[str, ...] = Field((), description="Why the drift check asked for retraining.")
    report: str | None = Field(None, description="Store key of the drift report.")
    at: str | None = Field(None, description="When the drift check decided (ISO 8601).")


class TrackingOutcome(_Doc):
    """Whether a run reached its MLflow tracking server (``tracking:``), or waits in the store's outbox for the next try."""

    uri: str = Field(description="The tracking server.")
    state: Literal["logged", "queued"] = Field(description="``logged``: MLflow has it; ``queued``: retried on the next run.")
    mlflow_run_id: str | None = Field(None, description="The run's id in MLflow, once logged.")
    url: str | None = Field(None, description="The run's page in the MLflow UI, once logged.")
    note: str = Field("", description="Why it is queued (the server's error), or what was left out.")


# ------------------------------------------------------------------------------------------ the run record

StepStatus = Literal["ran", "cached", "failed", "skipped"]


class StepRecord(_Doc):
    """What happened to one step: ``ran``, ``cached``, ``failed`` or ``skipped`` (never reached)."""

    name: str = Field(description="The step's name in the plan.")
    kind: str = Field(description="Its kind.")
    status: StepStatus = Field("skipped", description="What happened to it.")
    seconds: float = Field(0.0, description="Wall time of the step, cache look-up included.")
    key: str = Field("", description="Its static cache key.")
    outputs: dict[str, Ref] = Field(default_factory=dict, description="What it produced (or what the cache held), by name.")
    error: str | None = Field(None, description="Why it failed.")


class RunRecord(_Doc):
    """One run, as written to ``runs/<run_id>.json`` in the store."""

    run_id: str = Field(description="The run's id (``YYYYmmdd-HHMMSS-xxxxxx``).")
    spec_name: str = Field(description="The spec's ``name``.")
    spec_path: str = Field(description="The spec file.")
    spec_hash: str = Field(description="sha256 of the resolved spec.")
    model: str = Field(description="The registered model the spec produces.")
    description: str = Field("", description="The spec's ``description``.")
    intended_use: str = Field("", description="The spec's ``model_card.intended_use``.")
    limitations: str = Field("", description="The spec's ``model_card.limitations``.")
    params: dict[str, Any] = Field(default_factory=dict, description="The run's ``params:`` values.")
    status: Literal["running", "completed", "failed", "killed"] = Field(
        description="``running`` until the run ends; ``killed`` when read back while its process is gone (see ``pid``)."
    )
    started_at: str = Field(description="ISO 8601.")
    finished_at: str = Field("", description="ISO 8601; empty while running.")
    seconds: float = Field(0.0, description="Wall time of the run.")
    orchestrated: bool = Field(False, description="Whether a Prefect flow ran it (a fully cached run needs none).")
    flow_run_id: str | None = Field(None, description="The Prefect flow run.")
    git_commit: str | None = Field(None, description="The commit of the spec's repository.")
    steps: tuple[StepRecord, ...] = Field((), description="Every step, in plan order.")
    verdict: Verdict | None = Field(None, description="The gates' verdict, pass or fail, when a gates step decided.")
    error: str | None = Field(None, description="Why the run failed.")
    version: RegisteredVersion | None = Field(None, description="The version a register step made (ran or cached).")
    trigger: Trigger | None = Field(None, description="What started the run, when a person did not.")
    report: str | None = Field(None, description="Store key of the run's HTML report.")
    libraries: dict[str, str] = Field(
        default_factory=dict, description="Versions of the libraries the run's process loaded (distribution name -> version)."
    )
    tracking: TrackingOutcome | None = Field(None, description="Whether the run reached its MLflow server (``tracking:``).")
    host: str | None = Field(None, description="The machine whose process ran it.")
    pid: int | None = Field(None, description="The process that ran it, on ``host``.")
    pid_started: int | None = Field(
        None, description="When that process started (Linux clock ticks since boot), so a reused pid is told apart."
    )

    @property
    def ok(self) -> bool:
        """True when every step ran or was cached."""
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON."""
        return self.model_dump(mode="json")


class RunResult(RunRecord):
    """A finished run as :func:`mlflowkit.run` returns it: the record, and the error that ended it (not written)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    exception: MlflowkitError | None = Field(None, exclude=True, repr=False, description="The error that ended the run.")
    report_path: str | None = Field(
        None, exclude=True, description="The HTML report as an absolute path (a URI such as s3://... for a remote store)."
    )

    def _repr_html_(self) -> str:
        """The run as a notebook shows it: status, verdict, version, the gates' metrics, links to the report and MLflow."""
        from html import escape

        from mlflowkit.fmt import number

        color = {"completed": "#276749", "failed": "#c53030"}.get(self.status, "#b7791f")
        rows = [("spec", f"{self.spec_name} ({self.spec_path})"), ("duration", f"{self.seconds:.1f} s")]
        if self.verdict is not None:
            failed = ", ".join(r.rule for r in self.verdict.failed())
            rows.append(("gates", ("pass" if self.verdict.passed else f"FAIL: {failed}")))
            rows += [(name, "n/a" if v is None else number(v)) for name, v in self.verdict.metrics.items()]
        registered = "nothing"
        if self.version is not None:
            registered = self.version.label() + (f" ({self.version.alias})" if self.version.alias else "")
        rows.append(("registered", registered))
        if self.error:
            rows.append(("error", self.error))
        cells = "".join(
            f'<tr><th style="text-align:left;padding-right:1em">{escape(k)}</th><td style="text-align:left">{escape(v)}</td></tr>'
            for k, v in rows
        )
        links = []
        if self.report_path:
            href = self.report_path if "://" in self.report_path else "file://" + self.report_path
            links.append(f'<a href="{escape(href)}" target="_blank">report</a> <code>{escape(self.report_path)}</code>')
        if self.tracking is not None and self.tracking.url:
            links.append(f'<a href="{escape(self.tracking.url)}" target="_blank">MLflow run</a>')
        elif self.tracking is not None:
            links.append(f"MLflow: {escape(self.tracking.state)} ({escape(self.tracking.note)})")
        badge = f'<span style="background:{color};color:white;padding:1px 8px;border-radius:8px">{escape(self.status)}</span>'
        return f"<div><b>run {escape(self.run_id)}</b> {badge}<table>{cells}</table>" + "<br>".join(links) + "</div>"
