"""Gather what a run left in the store into one structure the report renders.

Every part is optional: a run that failed at the data checks has no metrics, a run without an export
step has no contract. What is missing is said in the report, never guessed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError
from mlflowkit.handoff import (
    CONTRACT,
    DEPLOYMENT,
    JSON,
    METRICS,
    PROFILE,
    VALIDATION,
    VERDICT,
    VERSION,
    Ref,
    RegisteredVersion,
    RunRecord,
    Verdict,
    find_output,
)

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore, ModelRegistry, ModelVersion

__all__ = ["WIRE_TYPES", "ReportData", "collect", "example_request"]

WIRE_TYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "string": "BYTES"}
"""Contract dtypes as KServe v2 / Triton datatypes."""


@dataclass
class ReportData:
    """Everything one report shows; each part is None (or empty) when the run did not produce it.

    The run record, its verdict and its version are typed (:mod:`mlflowkit.handoff`); the other parts
    are the JSON documents the steps wrote, as they wrote them.
    """

    run: RunRecord
    outputs: dict[str, Ref] = field(default_factory=dict)
    checks: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    verdict: Verdict | None = None
    deployment: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    version: RegisteredVersion | None = None
    registered: ModelVersion | None = None
    """The version as the registry holds it (aliases now, lineage, files), when the registry could be read."""
    dataset: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    """The profile step's summary of the training split (and of the model's outputs)."""
    example: dict[str, Any] | None = None
    step_reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _outputs(run: RunRecord) -> dict[str, Ref]:
    """Step outputs merged by name in plan order (a later step that re-emits a name wins)."""
    merged: dict[str, Ref] = {}
    for step in run.steps:
        merged.update(step.outputs)
    return merged


def _of_type(run: RunRecord, media_type: str, legacy_name: str) -> Ref | None:
    """The last output of ``media_type`` in plan order; for a run recorded before outputs had their own
    media types, the plain-JSON output called ``legacy_name``."""
    found = [ref for step in run.steps if (ref := find_output(step.outputs, media_type)) is not None]
    if found:
        return found[-1]
    legacy = _outputs(run).get(legacy_name)
    return legacy if legacy is not None and legacy.media_type == JSON else None


def _read(store: ArtifactStore, ref: Ref | None, notes: list[str], what: str) -> Any:
    if ref is None:
        return None
    try:
        return json.loads(store.get_bytes(ref))
    except (OSError, ValueError, MlflowkitError) as exc:
        notes.append(f"{what}: cannot read {ref.key} ({type(exc).__name__}: {exc})")
        return None


def collect(store: ArtifactStore, run_id: str, *, registry: ModelRegistry | None = None) -> ReportData:
    """Read the run record and the outputs it names, each found by its media type.

    Raises:
        FileNotFoundError: no run ``run_id`` in the store.
    """
    run = RunRecord.model_validate(store.read_json(f"runs/{run_id}.json"))
    data = ReportData(run=run, outputs=_outputs(run))
    out, notes = data.outputs, data.notes
    for key in store.list_keys(f"reports/{run_id}/"):
        if key.endswith(".json"):
            report = store.read_json(key)
            data.step_reports[f"{report.get('step')}-{report.get('key')}"] = report
    data.checks = _read(store, _of_type(run, VALIDATION, "validation"), notes, "data checks")
    data.metrics = _read(store, _of_type(run, METRICS, "metrics"), notes, "metrics")
    data.deployment = _read(store, _of_type(run, DEPLOYMENT, "deployment"), notes, "deployment record")
    data.contract = _read(store, _of_type(run, CONTRACT, "contract"), notes, "model contract")
    data.profile = _read(store, _of_type(run, PROFILE, "profile"), notes, "data profile")
    data.verdict = run.verdict
    if data.verdict is None:  # a verdict in the outputs the record did not pick up (a record being written)
        raw = _read(store, _of_type(run, VERDICT, "verdict"), notes, "gate verdict")
        data.verdict = Verdict.model_validate(raw) if raw is not None else None
    if "dataset" in out:
        data.dataset = dict(out["dataset"].meta)
    data.version = run.version
    if data.version is None:
        raw = _read(store, _of_type(run, VERSION, "version"), notes, "registered version")
        data.version = RegisteredVersion.model_validate(raw) if raw is not None else None
    if data.version is not None and registry is not None:
        try:
            data.registered = registry.get(data.version.model, data.version.version)
        except Exception as exc:  # a pruned or moved registry: the report still says which version it was
            notes.append(f"registered version {data.version.label()}: {type(exc).__name__}: {exc}")
    if data.contract is not None:
        data.example = example_request(store, data.contract, out.get("test"), notes)
    return data


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0  # JSON has no NaN; a missing number is sent as 0 in the example
    return value


def example_request(store: ArtifactStore, contract: dict[str, Any], test: Ref | None, notes: list[str]) -> dict[str, Any]:
    """A KServe v2 (Triton HTTP) inference request for one row: from the held-out split when it is readable."""
    inputs = []
    row: dict[str, Any] = {}
    if test is not None:
        try:
            from mlflowkit.kinds._frames import load_frame

            frame = load_frame(store, test).head(1)
            row = {str(k): v for k, v in frame.iloc[0].items()} if len(frame) else {}
        except Exception as exc:  # an example is a courtesy: a placeholder request is still correct
            notes.append(f"example request: the held-out rows are not readable ({type(exc).__name__}); placeholder values")
    features = list(contract.get("features") or [])
    for spec in contract.get("inputs", []):
        dtype = spec["dtype"]
        if contract.get("layout") == "matrix":
            values = [_plain(row.get(f, 0.0)) if row else 0.0 for f in features]
            shape = [1, len(features)]
        else:
            column = spec.get("column") or spec["name"]
            default: Any = "" if dtype == "string" else 0.0
            value = _plain(row.get(column, default)) if row else default
            if value is None:
                value = default
            values = [str(value) if dtype == "string" else value]
            shape = [1, 1]
        inputs.append({"name": spec["name"], "shape": shape, "datatype": WIRE_TYPES.get(dtype, dtype.upper()), "data": values})
    outputs = [{"name": o["name"]} for o in contract.get("outputs", [])]
    return {"inputs": inputs, "outputs": outputs}
