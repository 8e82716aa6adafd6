"""Gather what a run left in the store into one plain structure the report renders.

Every part is optional: a run that failed at the data checks has no metrics, a run without an export
step has no contract. What is missing is said in the report, never guessed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowkit.store import Ref

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore, ModelRegistry

__all__ = ["WIRE_TYPES", "ReportData", "collect", "example_request"]

WIRE_TYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "string": "BYTES"}
"""Contract dtypes as KServe v2 / Triton datatypes."""


@dataclass
class ReportData:
    """Everything one report shows; each part is None (or empty) when the run did not produce it."""

    run: dict[str, Any]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    deployment: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    version: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    example: dict[str, Any] | None = None
    step_reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _outputs(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Step outputs merged by name in plan order (a later step that re-emits a name wins), as Ref dicts."""
    merged: dict[str, dict[str, Any]] = {}
    for step in run.get("steps", []):
        merged.update(step.get("outputs") or {})
    return merged


def _read(store: ArtifactStore, raw: dict[str, Any] | None, notes: list[str], what: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(store.get_bytes(Ref.model_validate(raw)))
    except (OSError, ValueError) as exc:
        notes.append(f"{what}: cannot read {raw.get('key')} ({type(exc).__name__}: {exc})")
        return None


def collect(store: ArtifactStore, run_id: str, *, registry: ModelRegistry | None = None) -> ReportData:
    """Read the run record and the outputs it names.

    Raises:
        FileNotFoundError: no run ``run_id`` in the store.
    """
    run = store.read_json(f"runs/{run_id}.json")
    data = ReportData(run=run, outputs=_outputs(run))
    out, notes = data.outputs, data.notes
    for key in store.list_keys(f"reports/{run_id}/"):
        if key.endswith(".json"):
            report = store.read_json(key)
            data.step_reports[f"{report.get('step')}-{report.get('key')}"] = report
    data.checks = _read(store, out.get("validation"), notes, "data checks")
    data.metrics = _read(store, out.get("metrics"), notes, "metrics")
    data.verdict = run.get("verdict") or _read(store, out.get("verdict"), notes, "gate verdict")
    data.deployment = _read(store, out.get("deployment"), notes, "deployment record")
    data.contract = _read(store, out.get("contract"), notes, "model contract")
    if "dataset" in out:
        data.dataset = dict(out["dataset"].get("meta") or {})
    version = run.get("version") or (_read(store, out.get("version"), notes, "registered version") or None)
    if version and registry is not None:
        try:
            mv = registry.get(version["model"], int(version["version"]))
            data.version = {"model": mv.model, "version": mv.version, "aliases": list(mv.aliases), "created_at": mv.created_at,
                            "lineage": mv.lineage, "files": list(mv.files)}  # fmt: skip
        except Exception as exc:  # a pruned or moved registry: the report still says which version it was
            notes.append(f"registered version {version}: {type(exc).__name__}: {exc}")
            data.version = dict(version)
    elif version:
        data.version = dict(version)
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


def example_request(
    store: ArtifactStore, contract: dict[str, Any], test: dict[str, Any] | None, notes: list[str]
) -> dict[str, Any]:
    """A KServe v2 (Triton HTTP) inference request for one row: from the held-out split when it is readable."""
    inputs = []
    row: dict[str, Any] = {}
    if test is not None:
        try:
            from mlflowkit.kinds._frames import load_frame

            frame = load_frame(store, Ref.model_validate(test)).head(1)
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
