"""The only module that talks to MLflow: log one finished run, register its version, mirror a model's aliases.

Every call is idempotent, so that the outbox may send the same thing again after a failure: a run is
found again by its ``mlflowkit.run_id`` tag, a version by its ``mlflowkit.version`` tag, and aliases are
set to what mlflowkit's registry says now. MLflow's client is imported here only (``mlflowkit[tracking]``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlflowkit._version import __version__
from mlflowkit.errors import MlflowkitError
from mlflowkit.handoff import CONTRACT, METRICS, ONNX, RunRecord
from mlflowkit.run_summary import data_fingerprint, flat_metrics, intervals, last_output, metrics_document, model_meta
from mlflowkit.store.registry import default_actor
from mlflowkit.tracking.target import TrackingTarget

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlflowkit.store import ArtifactStore, ModelRegistry

__all__ = [
    "MIRRORED_ALIASES",
    "Logged",
    "bounded_http",
    "client_for",
    "log_run",
    "mirror_aliases",
    "run_tags",
]

RUN_TAG, VERSION_TAG = "mlflowkit.run_id", "mlflowkit.version"
MIRRORED_ALIASES = ("champion", "previous", "challenger", "rejected")
"""The aliases mlflowkit moves; MLflow's copies of them follow mlflowkit's (others set in MLflow are left alone)."""


class Logged(NamedTuple):
    """A run as MLflow has it."""

    run_id: str
    """The MLflow run id."""
    url: str
    """The run's page in the MLflow UI."""


@contextlib.contextmanager
def bounded_http(timeout: float) -> Iterator[None]:
    """MLflow's HTTP calls inside: no retries, ``timeout`` seconds per request (its defaults: 7 retries, 120 s), no prints.

    MLflow reads these settings from the environment at every request; they are put back afterwards.
    """
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # mlflowkit says where the run is, once, its own way
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def client_for(target: TrackingTarget) -> MlflowClient:
    """An MLflow client for the target's server (tracking and registry on the same server).

    Raises:
        MlflowkitError: MLflow's client is not installed.
    """
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise MlflowkitError(
            f"logging to MLflow needs its client: pip install 'mlflowkit[tracking]' ({type(exc).__name__}: {exc})"
        ) from exc
    return MlflowClient(tracking_uri=target.base, registry_uri=target.base)


def _ms(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


def run_tags(record: RunRecord) -> dict[str, str]:
    """The tags a run gets: lineage (spec hash, data fingerprint, git commit, mlflowkit version, Prefect flow run)."""
    found = data_fingerprint(record)
    fp = found.model_dump() if found is not None else {}
    tags = {
        RUN_TAG: record.run_id,
        "mlflowkit.spec": record.spec_name,
        "mlflowkit.spec_hash": record.spec_hash,
        "mlflowkit.package_version": __version__,
        "mlflowkit.status": record.status,
        "mlflowkit.data_fingerprint": str(fp.get("content_hash") or ""),
        "mlflowkit.data_schema_hash": str(fp.get("schema_hash") or ""),
        "mlflowkit.data_rows": str(fp.get("rows") or ""),
        "mlflowkit.git_commit": record.git_commit or "",
        "mlflowkit.prefect_flow_run": record.flow_run_id or "",
        "mlflow.runName": record.run_id,
        "mlflow.source.name": record.spec_path,
        "mlflow.source.type": "JOB",
        "mlflow.user": default_actor(),
        "mlflow.note.content": _note(record),
    }
    if record.git_commit:
        tags["mlflow.source.git.commit"] = record.git_commit  # the UI shows it on the run's page
    if record.verdict is not None:
        tags["mlflowkit.verdict"] = "pass" if record.verdict.passed else "fail"
    if record.version is not None:
        tags["mlflowkit.registered"] = record.version.label()
    if record.trigger is not None:
        tags["mlflowkit.trigger"] = record.trigger.deployment or record.trigger.by
    if record.error:
        tags["mlflowkit.error"] = record.error[:4000]
    return {k: v for k, v in tags.items() if v != ""}


def _note(record: RunRecord) -> str:
    """The run's description on its MLflow page (markdown)."""
    lines = [f"mlflowkit run `{record.run_id}` of spec `{record.spec_name}` ({record.spec_path}): **{record.status}**."]
    if record.verdict is not None:
        failed = ", ".join(r.rule for r in record.verdict.failed())
        lines.append(f"Gates: **{'pass' if record.verdict.passed else 'fail'}**" + (f" ({failed})" if failed else "") + ".")
    if record.version is not None:
        alias = f" ({record.version.alias})" if record.version.alias else ""
        if record.version.existing:
            lines.append(f"The model equals {record.version.label()}, registered before; not registered again.")
        else:
            lines.append(f"Registered {record.version.label()}{alias}.")
    if record.error:
        lines.append(f"Error: {record.error}")
    return "\n\n".join(lines)


def _params(record: RunRecord) -> dict[str, str]:
    params = {str(k): json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in record.params.items()}
    meta = model_meta(record)
    if meta is not None:
        params["estimator"] = meta.estimator
        for k, v in meta.params.items():
            params.setdefault(f"estimator.{k}", str(v))
    return {k: v[:6000] for k, v in params.items()}


def _metrics(store: ArtifactStore, record: RunRecord) -> dict[str, float]:
    """Metric name -> value, with ``NAME_ci_low`` / ``NAME_ci_high`` for each bootstrap interval, and ``n_test``."""
    doc = metrics_document(store, record)
    values = flat_metrics(doc)
    for name, (low, high) in intervals(doc).items():
        values[f"{name}_ci_low"], values[f"{name}_ci_high"] = low, high
    if isinstance(doc.get("n_test"), int):
        values["n_test"] = float(doc["n_test"])
    return values


def _experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    # The UI opens an experiment of this kind in its "model training" view.
    return str(client.create_experiment(name, tags={"mlflowkit": "true", "mlflow.experimentKind": "custom_model_development"}))


def _write_artifacts(store: ArtifactStore, record: RunRecord, folder: Path) -> None:
    """The run's files, as MLflow will show them: report.html, verdict.json, metrics.json, model/ (ONNX, contract)."""
    if record.report:
        with contextlib.suppress(OSError, MlflowkitError):
            (folder / "report.html").write_bytes(store.get_bytes(record.report))
    if record.verdict is not None:
        (folder / "verdict.json").write_text(record.verdict.model_dump_json(indent=2))
    if record.version is not None:
        (folder / "version.json").write_text(record.version.model_dump_json(indent=2))
    model = folder / "model"
    model.mkdir()
    for media_type, name in ((ONNX, "model.onnx"), (CONTRACT, "contract.json"), (METRICS, "metrics.json")):
        ref = last_output(record, media_type)
        if ref is not None:
            with contextlib.suppress(OSError, MlflowkitError):
                (model / name).write_bytes(store.get_bytes(ref))
    if (model / "model.onnx").is_file():
        _mlmodel(model)


def _mlmodel(folder: Path) -> None:
    """An MLmodel file beside model.onnx, so MLflow's UI and ``mlflow.pyfunc.load_model`` see an ONNX model."""
    from mlflow.models import Model

    meta = Model()
    meta.add_flavor("onnx", onnx_version=_version_of("onnx"), data="model.onnx", providers=["CPUExecutionProvider"])
    meta.add_flavor("python_function", loader_module="mlflow.onnx", data="model.onnx", env={})
    meta.save(str(folder / "MLmodel"))


def _version_of(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _find_run(client: MlflowClient, experiment_id: str, run_id: str) -> Any:
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", max_results=5)
    return found[0] if found else None


def log_run(client: MlflowClient, store: ArtifactStore, record: RunRecord, target: TrackingTarget) -> Logged:
    """Log one finished run (params, metrics with intervals, lineage tags, artifacts) and register its version.

    A run logged before (same ``mlflowkit.run_id``) is completed, not duplicated.
    """
    experiment_id = _experiment(client, target.experiment)
    existing = _find_run(client, experiment_id, record.run_id)
    if existing is not None and existing.data.tags.get("mlflowkit.logged") == "true":
        mlflow_run = existing.info.run_id
    else:
        if existing is not None:
            mlflow_run = existing.info.run_id  # a half-logged attempt: finish it
        else:
            created = client.create_run(experiment_id, start_time=_ms(record.started_at), run_name=record.run_id)
            mlflow_run = created.info.run_id
        _log_contents(client, store, record, mlflow_run)
        client.set_tag(mlflow_run, "mlflowkit.logged", "true")
        status = "FINISHED" if record.ok else "FAILED"
        client.set_terminated(mlflow_run, status=status, end_time=_ms(record.finished_at) if record.finished_at else None)
    if target.registry and record.version is not None:
        _register(client, record, target, mlflow_run)
    return Logged(mlflow_run, f"{target.base}/#/experiments/{experiment_id}/runs/{mlflow_run}")


def _log_contents(client: MlflowClient, store: ArtifactStore, record: RunRecord, mlflow_run: str) -> None:
    from mlflow.entities import Metric, Param, RunTag

    now = _ms(record.finished_at) or 0
    params = [Param(k, v) for k, v in sorted(_params(record).items())]
    metrics = [Metric(k, v, now, 0) for k, v in sorted(_metrics(store, record).items())]
    metrics.append(Metric("run_seconds", float(record.seconds), now, 0))
    tags = [RunTag(k, v) for k, v in sorted(run_tags(record).items())]
    for start in range(0, max(len(params), 1), 100):  # MLflow takes at most 100 params in one batch
        client.log_batch(
            mlflow_run, metrics=metrics if start == 0 else [], params=params[start : start + 100], tags=tags if start == 0 else []
        )
    with tempfile.TemporaryDirectory(prefix="mlflowkit-tracking-") as tmp:
        _write_artifacts(store, record, Path(tmp))
        client.log_artifacts(mlflow_run, tmp)


def _register(client: MlflowClient, record: RunRecord, target: TrackingTarget, mlflow_run: str) -> None:
    """The run's registered version, as a version of ``target.registered_model`` in MLflow's registry (once)."""
    from mlflow.exceptions import MlflowException

    assert record.version is not None
    name, number = target.registered_model, record.version.version
    try:
        client.create_registered_model(
            name, tags={"mlflowkit.model": record.version.model}, description="Registered by mlflowkit"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    if _versions_by_number(client, name).get(number) is not None:
        return
    run = client.get_run(mlflow_run)
    client.create_model_version(
        name,
        source=f"{run.info.artifact_uri.rstrip('/')}/model",
        run_id=mlflow_run,
        tags={VERSION_TAG: str(number), RUN_TAG: record.run_id, "mlflowkit.spec_hash": record.spec_hash},
        description=f"mlflowkit {record.version.label()} (run {record.run_id})",
        await_creation_for=0,  # a tracking server's versions are ready at once; never poll (bounded time)
    )


def _versions_by_number(client: MlflowClient, name: str) -> dict[int, str]:
    """mlflowkit version -> MLflow version, from the ``mlflowkit.version`` tags of ``name``'s versions."""
    found: dict[int, str] = {}
    for mv in client.search_model_versions(f"name = '{name}'", max_results=10000):
        tag = (mv.tags or {}).get(VERSION_TAG)
        if tag and tag.isdigit():
            found[int(tag)] = str(mv.version)
    return found


def mirror_aliases(client: MlflowClient, registry: ModelRegistry, model: str, target: TrackingTarget) -> dict[str, str]:
    """Make MLflow's aliases of the model what mlflowkit's are now (for versions MLflow has); returns them.

    Aliases that mlflowkit moves (:data:`MIRRORED_ALIASES`) and does not hold are removed from MLflow;
    aliases someone set in MLflow by other names stay.
    """
    from mlflow.exceptions import MlflowException

    if model not in registry.models():
        return {}  # nothing registered in this store: MLflow's aliases (maybe another store's) are not ours to move
    name = target.registered_model
    try:
        current = dict(client.get_registered_model(name).aliases or {})
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}  # nothing registered there yet: the run that registers it mirrors its aliases
        raise
    ours = registry.aliases(model)
    by_number = _versions_by_number(client, name)
    wanted = {alias: by_number[number] for alias, number in ours.items() if number in by_number}
    for alias, version in wanted.items():
        if str(current.get(alias)) != version:
            client.set_registered_model_alias(name, alias, version)
    for alias in current:
        if alias in MIRRORED_ALIASES and alias not in wanted:
            client.delete_registered_model_alias(name, alias)
    return wanted
