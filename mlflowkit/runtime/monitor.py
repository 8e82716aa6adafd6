"""The monitoring flow: live data against the champion's reference profile, a drift report, and a retraining trigger.

``run_monitor`` reads a batch of live rows (CSV, Parquet or JSON lines; a path, a glob or any fsspec
URI; the edge runner's prediction log and Triton request logs in JSON lines with an ``inputs`` object
per line are read too), scores them with the champion's ONNX model, compares features and outputs with
the ``profile.json`` stored with the version, and writes ``drift.json`` and ``drift.html`` to the
store under ``monitoring/<model>/<check id>/``. In a Prefect flow, the verdict is also a markdown
artifact. When the data drifted and the spec says ``on_drift: retrain``, it triggers the training
flow: through the spec's Prefect deployment when the caller can start one (``start_deployment``, which
:mod:`mlflowkit.flows.entry` provides), and in this process otherwise. The trigger (check id, reasons) goes
into the new version's lineage.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError, RegistryError

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.monitor.drift import DriftReport
    from mlflowkit.spec.models import SpecBase

__all__ = ["MonitorError", "MonitorResult", "StartDeployment", "read_live", "run_monitor"]

StartDeployment = Callable[["SpecBase", dict[str, Any], Callable[[str], None]], bool]
"""``start(spec, record, log)``: start the spec's training deployment if one is registered, adding ``via``,
``deployment`` and ``flow_run_id`` to the trigger ``record``; False when there is none (retrain here then)."""

_JSON_LINES = re.compile(r"\.(jsonl|ndjson|json)(\.\d+)?$")


class MonitorError(MlflowkitError):
    """The check could not run: no champion, no reference profile, unreadable live data."""


@dataclass
class MonitorResult:
    """What one monitoring check did."""

    check_id: str
    report: DriftReport
    store_root: str
    report_key: str
    html_key: str
    trigger: dict[str, Any] | None = None
    training: Any = None  # the RunResult of a local retraining run
    notes: list[str] = field(default_factory=list)


def read_live(uri: str, base_dir: str = ".") -> pd.DataFrame:
    """Read live rows from a file, a glob or an fsspec URI (CSV, Parquet, JSON lines).

    JSON lines whose records carry an ``inputs`` object (prediction logs) are flattened to those inputs,
    with ``outputs`` kept as ``prediction`` when present.
    """
    import os

    import pandas as pd
    from fsspec.core import url_to_fs

    if "://" not in uri and not os.path.isabs(uri):
        uri = os.path.join(base_dir, uri)
    fs, path = url_to_fs(uri)
    paths = sorted(fs.glob(path)) if any(c in path for c in "*?[") else [path]
    paths = [p for p in paths if fs.isfile(p)]
    if not paths:
        raise MonitorError(f"no live data at {uri}")
    frames = []
    for p in paths:
        try:
            with fs.open(p, "rb") as fh:
                if p.endswith((".parquet", ".pq")):
                    frames.append(pd.read_parquet(fh))
                elif _JSON_LINES.search(p):  # also rotated logs: predictions.jsonl.1, .2, ...
                    rows = []
                    for line in fh.read().decode().splitlines():
                        if not line.strip():
                            continue
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError:
                            continue  # a line torn by a crash or a rotation: skipped, not fatal
                    frames.append(pd.DataFrame([row for r in rows if isinstance(r, dict) for row in _flatten(r)]))
                else:
                    frames.append(pd.read_csv(fh))
        except (OSError, ValueError) as exc:  # unreadable, empty, not CSV/Parquet
            raise MonitorError(f"cannot read live data {p}: {type(exc).__name__}: {exc}") from exc
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _flatten(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one JSON line: a plain row; an edge prediction-log record (``inputs`` is a row, with
    ``label``); or a KServe v2 / Triton inference request (``inputs`` is a list of named tensors, one
    value per row in each tensor's ``data``)."""
    inputs = record.get("inputs")
    if isinstance(inputs, list) and all(isinstance(t, dict) and "name" in t and "data" in t for t in inputs):
        columns = {t["name"]: _values(t["data"]) for t in inputs}
        n = max((len(v) for v in columns.values()), default=0)
        return [{k: (v[i] if i < len(v) else None) for k, v in columns.items()} for i in range(n)]
    if not isinstance(inputs, dict):
        return [record]
    row = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in inputs.items()}
    if "label" in record:
        row["prediction"] = record["label"]
    return [row]


def _values(data: Any) -> list[Any]:
    """A tensor's values, one per row: ``[[v], [v], ...]`` and ``[v, v, ...]`` alike."""
    if not isinstance(data, list):
        return [data]
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]


def _check(
    spec: SpecBase, data: str, store: str, *, model: str, check_id: str, log: Any
) -> tuple[DriftReport, str, str, dict[str, Any]]:
    import numpy as np

    from mlflowkit.monitor.drift import compare
    from mlflowkit.monitor.profile import predicted_labels, prediction_column
    from mlflowkit.monitor.report import render_html
    from mlflowkit.policy import policy_of, registry_trust
    from mlflowkit.spec.monitoring import MonitorSpec
    from mlflowkit.store import ArtifactStore, registry_at
    from mlflowkit.targets.contract import Contract, feeds, run_onnx

    settings = spec.monitor or MonitorSpec()
    registry = registry_at(store, trust=registry_trust(policy_of(spec)))
    try:
        version = registry.get(model, "champion")
    except RegistryError as exc:
        raise MonitorError(f"cannot monitor {model}: {exc}") from exc
    missing = [f for f in ("profile.json", "model.onnx", "contract.json") if f not in version.files]
    if missing:
        raise MonitorError(
            f"{model} v{version.version} has no {', '.join(missing)}: it was trained without the profile/export steps; "
            "retrain it with a recipe that profiles (every built-in recipe does)"
        )
    profile = json.loads(registry.read_file(model, version.version, "profile.json"))
    contract = Contract.model_validate_json(registry.read_file(model, version.version, "contract.json"))
    live = read_live(data, spec.spec_dir)
    log(f"monitor: {len(live)} live rows from {data} against {model} v{version.version}")
    predictions, labels, proba = None, None, None
    outputs = None
    if all(f in live.columns for f in contract.features) and len(live):
        try:
            outputs = run_onnx(registry.read_file(model, version.version, "model.onnx"), feeds(contract, live))
        except (ValueError, TypeError) as exc:  # values the model cannot take (text in a number column, ...)
            log(f"monitor: the champion cannot score these rows ({exc}); no prediction drift or performance")
    if outputs is not None:  # the profile's rule, so that the live column is the reference's
        proba = np.asarray(outputs[contract.probability_output]) if contract.probability_output else None
        labels = predicted_labels(contract, outputs, len(live))
        predictions = prediction_column(contract, outputs, len(live))
    report = compare(
        profile,
        live,
        settings,
        model=model,
        version=version.version,
        predictions=predictions,
        labels=labels,
        probabilities=proba,
        target=contract.target,
        evaluated=dict(version.lineage.get("metrics") or {}),
    )
    st = ArtifactStore(store)
    prefix = f"monitoring/{model}/{check_id}"
    body = {"check_id": check_id, "data": data, "at": datetime.now(UTC).isoformat(), **report.to_json()}
    st.write_json(f"{prefix}/drift.json", body)
    html = render_html(report, data=data, check_id=check_id, spec_name=spec.name)
    st._write(f"{prefix}/drift.html", html.encode())
    return report, f"{prefix}/drift.json", f"{prefix}/drift.html", body


def run_monitor(
    spec: SpecBase,
    data: str | None = None,
    *,
    store: str | None = None,
    trigger: bool = True,
    orchestrate: bool = True,
    in_flow: bool = False,
    log: Any = print,
    start_deployment: StartDeployment | None = None,
) -> MonitorResult:
    """Check a batch of live data against the champion; trigger retraining when it drifted.

    Args:
        spec: the loaded spec (its ``monitor:`` section; defaults apply without one).
        data: the live data (path, glob or URI); defaults to ``monitor.data``.
        store: the artifact store root (default as for runs).
        trigger: False: report only, whatever ``on_drift`` says.
        orchestrate: run the check as a Prefect flow (artifacts in the UI); False runs it in process.
        in_flow: the caller is a flow run already (a scheduled check's deployment): check in it.
        log: receives progress lines.
        start_deployment: retrain through the spec's Prefect deployment when this starts one; without it,
            or when it finds none, retraining runs in this process.

    Raises:
        MonitorError: no data, no champion, no reference profile.
    """
    from mlflowkit.runtime.locations import store_root

    source = data or (spec.monitor.data if spec.monitor else None)
    if not source:
        raise MonitorError("no live data: pass --data URI or set monitor.data in the spec")
    root = store_root(spec, store)
    model = _model_name(spec)
    check_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    if in_flow:
        from prefect.artifacts import create_markdown_artifact

        report, key, html_key, _ = _check(spec, source, root, model=model, check_id=check_id, log=log)
        create_markdown_artifact(key=_artifact_key(model), markdown=_markdown(report), description="drift check")
    elif orchestrate:
        from mlflowkit.runtime.flow import prefect_settings

        with prefect_settings():
            from prefect import flow, tags
            from prefect.artifacts import create_markdown_artifact

            @flow(name=f"monitor-{spec.name}", log_prints=False)
            def monitor_flow() -> tuple[Any, str, str, dict[str, Any]]:
                out = _check(spec, source, root, model=model, check_id=check_id, log=log)
                create_markdown_artifact(key=_artifact_key(model), markdown=_markdown(out[0]), description="drift check")
                return out

            with tags("mlflowkit", "monitor", f"spec:{spec.name}", f"model:{model}"):
                report, key, html_key, _ = monitor_flow()
    else:
        report, key, html_key, _ = _check(spec, source, root, model=model, check_id=check_id, log=log)
    result = MonitorResult(check_id=check_id, report=report, store_root=root, report_key=key, html_key=html_key)
    on_drift = spec.monitor.on_drift if spec.monitor else "retrain"
    if report.drifted and trigger and on_drift == "retrain":
        result.trigger, result.training = _trigger(
            spec, root, check_id=check_id, report=report, report_key=key, log=log, start_deployment=start_deployment
        )
        from mlflowkit.store import ArtifactStore

        ArtifactStore(root).write_json(f"monitoring/{model}/{check_id}/trigger.json", result.trigger)
    return result


def _artifact_key(model: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes only (model names may have '.' and '_')."""
    return "drift-" + re.sub(r"[^a-z0-9-]", "-", model.lower())


def _model_name(spec: SpecBase) -> str:
    register = spec.section("register")
    name = getattr(register, "model", None)
    return str(name or spec.name)


def _trigger(
    spec: SpecBase,
    store: str,
    *,
    check_id: str,
    report: DriftReport,
    report_key: str,
    log: Any,
    start_deployment: StartDeployment | None,
) -> tuple[dict[str, Any], Any]:
    """Start the training flow: through its Prefect deployment when there is one, else here."""
    record: dict[str, Any] = {
        "by": "monitor",
        "check_id": check_id,
        "model": report.model,
        "version": report.version,
        "reasons": report.reasons,
        "report": report_key,
        "at": datetime.now(UTC).isoformat(),
    }
    if start_deployment is not None and start_deployment(spec, record, log):
        return record, None
    from mlflowkit.plan.compile import compile_spec
    from mlflowkit.runtime.engine import run_spec

    record["via"] = "local"
    log("monitor: drift; no deployment of this spec to start, so retraining runs here")
    result = run_spec(spec, compile_spec(spec), store=store, trigger=record)
    record["run_id"] = result.run_id
    record["ok"] = result.ok
    return record, result


def _markdown(report: DriftReport) -> str:
    lines = [
        f"# Drift check: {report.model} v{report.version}",
        "",
        f"**Verdict: {report.verdict}** on {report.rows} live rows.",
        "",
        *[f"- {r}" for r in report.reasons],
        "",
        "| feature | type | status | metrics | reasons |",
        "|---|---|---|---|---|",
    ]
    for f in [*report.features, *([report.prediction] if report.prediction else [])]:
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in f.metrics.items() if isinstance(v, float))
        lines.append(f"| {f.feature} | {f.type} | {f.status} | {metrics} | {'; '.join(f.reasons)} |")
    return "\n".join(lines)
