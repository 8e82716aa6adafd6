"""What you trained, from Python (a notebook, a script): ``load_model``, ``runs()`` and ``models()``.

``load_model("churn@champion")`` reads a registered version through the registry's verified reads and
scores with its ONNX graph in ONNX Runtime when it has one, else with its skops file (loaded with a
trusted-type list: never a pickle). ``runs()`` and ``models()`` are pandas DataFrames with MLflow's column
naming (``metrics.roc_auc``, ``params.n_estimators``), so that what works on ``mlflow.search_runs()`` works here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError, RegistryError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlflowkit.store import ModelRegistry, ModelVersion

__all__ = ["Predictor", "load_model", "models", "runs"]

# The columns of an empty runs() / models() frame.
_RUN_COLUMNS = ["run_id", "spec", "status", "verdict", "version", "started_at"]
_MODEL_COLUMNS = ["model", "version", "aliases", "created_at", "run_id"]
_REF = re.compile(r"^(?P<model>[a-z0-9][a-z0-9._-]{0,127})(?:(?:@|/)(?P<ref>[A-Za-z0-9_-]+))?$")


def _store_root(store: str | os.PathLike[str] | None) -> str:
    """``store``, else ``$MLFLOWKIT_STORE``, else ``./.mlflowkit`` (as the CLI finds it)."""
    if store is not None:
        return os.fspath(store)
    return os.environ.get("MLFLOWKIT_STORE") or str(Path(".mlflowkit").resolve())


def _exists(root: str) -> bool:
    """Whether a store is at ``root``; reading must not create one (a mistyped path would leave a folder behind)."""
    from mlflowkit.store.artifacts import store_exists

    return store_exists(root)


def _registry(root: str) -> ModelRegistry:
    """The store's registry, trusting the keys the environment and the policy governing this folder name."""
    from mlflowkit.policy import find_policy, registry_trust
    from mlflowkit.store import registry_at

    return registry_at(root, trust=registry_trust(find_policy(Path.cwd())))


class Predictor:
    """A registered version to score with: ``predict(df)`` (and ``predict_proba(df)`` for a classifier).

    It takes a DataFrame with the model's feature columns (:attr:`features`; other columns are ignored).

    Attributes:
        version: the registered version (number, aliases, lineage, files).
        backend: ``onnxruntime`` (its ONNX graph) or ``skops`` (its fitted estimator, loaded without pickle).
        features: the columns it reads, in order.
    """

    def __init__(self, model: Any, version: ModelVersion) -> None:
        from mlflowkit.kinds.model_files import OnnxModel

        self._model = model
        self.version = version
        self.backend = "onnxruntime" if isinstance(model, OnnxModel) else "skops"
        self.features: tuple[str, ...] = tuple(version.lineage.get("features") or ())

    def __repr__(self) -> str:
        aliases = f" ({', '.join(self.version.aliases)})" if self.version.aliases else ""
        return f"<Predictor {self.version.model} v{self.version.version}{aliases} via {self.backend}>"

    @property
    def classes_(self) -> Any:
        """The class labels, in the order of ``predict_proba``'s columns (classifiers)."""
        return getattr(self._model, "classes_", None)

    def _rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise MlflowkitError(
                f"{self.version.model} v{self.version.version} reads columns {', '.join(self.features)}; "
                f"the DataFrame lacks {', '.join(missing)}"
            )
        return frame[list(self.features)] if self.features else frame

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """The predicted label (or value) of each row.

        Raises:
            MlflowkitError: the DataFrame lacks a feature column.
        """
        import numpy as np

        return np.asarray(self._model.predict(self._rows(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Class probabilities, one column per class in :attr:`classes_` order.

        Raises:
            MlflowkitError: the model gives no probabilities (a regressor), or a feature column is missing.
        """
        import numpy as np

        if not hasattr(self._model, "predict_proba"):
            raise MlflowkitError(f"{self.version.model} v{self.version.version} gives no probabilities")
        return np.asarray(self._model.predict_proba(self._rows(frame)))


def load_model(ref: str, *, store: str | os.PathLike[str] | None = None) -> Predictor:
    """A registered version, ready to score a DataFrame.

    Args:
        ref: ``MODEL@ALIAS`` (``churn@champion``), ``MODEL/VERSION`` (``churn/3``), or ``MODEL`` (its champion).
        store: the artifact store (a folder or any fsspec URI); default ``$MLFLOWKIT_STORE`` or ``./.mlflowkit``.

    Raises:
        RegistryError: no such model, version or alias; a file is damaged or (with trusted keys) unsigned.
        UntrustedModel: only a pickle nothing vouches for, or a skops file naming types outside the allow-list.
    """
    from mlflowkit.kinds.model_files import registered_model

    match = _REF.match(ref.strip())
    if not match:
        raise RegistryError(f"model reference {ref!r}: write MODEL@ALIAS (churn@champion) or MODEL/VERSION (churn/3)")
    root = _store_root(store)
    if not _exists(root):
        raise RegistryError(f"no store at {root}: nothing has been registered there (pass store=, or set MLFLOWKIT_STORE)")
    registry = _registry(root)
    version = registry.get(match["model"], match["ref"] or "champion")
    return Predictor(registered_model(registry, version), version)


def runs(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every run in the store, oldest first: one row each, with ``metrics.NAME`` and ``params.NAME`` columns.

    Columns: run_id, spec, status, verdict, version, started_at, seconds, report (an absolute path or
    URI), mlflow_run_id, then ``metrics.NAME`` (with ``metrics.NAME_ci_low``/``_ci_high`` for bootstrap
    intervals) and ``params.NAME`` (the spec's params, and the estimator's as ``params.estimator.NAME``).
    """
    import pandas as pd

    from mlflowkit.run_summary import read_records, summarize
    from mlflowkit.store import ArtifactStore

    root = _store_root(store)
    if not _exists(root):  # an empty frame, and no store made where there was none
        return pd.DataFrame(columns=_RUN_COLUMNS)
    st = ArtifactStore(root)
    rows = []
    for record in read_records(st):
        summary = summarize(st, record)
        row: dict[str, Any] = {
            "run_id": record.run_id,
            "spec": record.spec_name,
            "status": record.status,
            "verdict": None if record.verdict is None else ("pass" if record.verdict.passed else "fail"),
            "version": record.version.version if record.version else None,
            "started_at": pd.Timestamp(record.started_at),
            "seconds": record.seconds,
            "report": st.where(record.report) if record.report else None,
            "mlflow_run_id": record.tracking.mlflow_run_id if record.tracking else None,
        }
        for name, value in summary.metrics.items():
            row[f"metrics.{name}"] = value
        for name, (low, high) in summary.intervals.items():
            row[f"metrics.{name}_ci_low"], row[f"metrics.{name}_ci_high"] = low, high
        for name, value in summary.params.items():
            row[f"params.{name}"] = value
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else _RUN_COLUMNS)


def models(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every registered version in the store: model, version, aliases, when, its run, lineage and ``metrics.NAME``."""
    import pandas as pd

    root = _store_root(store)
    if not _exists(root):
        return pd.DataFrame(columns=_MODEL_COLUMNS)
    registry = _registry(root)
    rows = []
    for name in registry.models():
        for version in registry.versions(name):
            lineage = version.lineage
            verdict = lineage.get("verdict")
            fingerprint = lineage.get("data_fingerprint") or {}
            row: dict[str, Any] = {
                "model": name,
                "version": version.version,
                "aliases": ", ".join(version.aliases),
                "created_at": pd.Timestamp(version.created_at),
                "run_id": lineage.get("run_id"),
                "spec": lineage.get("spec_name"),
                "spec_hash": lineage.get("spec_hash"),
                "data_fingerprint": fingerprint.get("content_hash") if isinstance(fingerprint, dict) else None,
                "estimator": lineage.get("estimator"),
                "verdict": None if not isinstance(verdict, dict) else ("pass" if verdict.get("passed") else "fail"),
                "onnx": "model.onnx" in version.files,
            }
            for metric, value in (lineage.get("metrics") or {}).items():
                row[f"metrics.{metric}"] = value
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else _MODEL_COLUMNS)
