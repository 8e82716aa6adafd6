"""mlflowkit: one YAML spec for the whole ML lifecycle, compiled to a Prefect flow.

spec = mlflowkit.load_spec("spec.yaml", overrides=["params.n_estimators=300"])
plan = mlflowkit.compile(spec)
result = mlflowkit.run(spec)          # a Prefect flow; result.ok, result.steps, result.verdict, result.report_path
model = mlflowkit.load_model("churn@champion")   # .predict(df), .predict_proba(df): ONNX Runtime when exported
mlflowkit.runs(), mlflowkit.models()  # DataFrames: metrics.NAME, params.NAME columns

Extending it (see docs/extending.md): ``@mlflowkit.step`` for custom steps with typed params,
:class:`StepKind` for step kinds, :class:`DeployTarget` for deploy targets, ``@mlflowkit.metric`` for
metrics gates can read; recipes are YAML files. Each registers through an entry point
(``mlflowkit.kinds``, ``mlflowkit.targets``, ``mlflowkit.recipes``, ``mlflowkit.metrics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflowkit._version import __version__
from mlflowkit.errors import GateFailed, MlflowkitError, PluginError, RegistryError, SpecError, StepFailed
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind
from mlflowkit.metrics import metric
from mlflowkit.policy.governed import load_spec
from mlflowkit.spec.models import SpecBase as Spec
from mlflowkit.steps import step
from mlflowkit.targets.base import DeployError, DeployTarget, Release

if TYPE_CHECKING:
    import os

    import pandas as pd

    from mlflowkit.api import Predictor
    from mlflowkit.plan.model import Plan
    from mlflowkit.runtime.engine import RunResult


__all__ = [
    "DeployError",
    "DeployTarget",
    "GateFailed",
    "Inputs",
    "MlflowkitError",
    "Params",
    "PluginError",
    "RegistryError",
    "Release",
    "Spec",
    "SpecError",
    "StepContext",
    "StepFailed",
    "StepKind",
    "__version__",
    "compile",
    "load_model",
    "load_spec",
    "metric",
    "models",
    "run",
    "runs",
    "step",
]


def compile(spec: Spec) -> Plan:
    """Compile a loaded spec into its Plan (pure; imports no engine)."""
    from mlflowkit.plan.compile import compile_spec

    return compile_spec(spec)


def run(spec: Spec, *, store: str | None = None, from_step: str | None = None, **kwargs: Any) -> RunResult:
    """Compile and run a spec as a Prefect flow; see :func:`mlflowkit.runtime.engine.run_spec` for options."""
    from mlflowkit.runtime.engine import run_spec

    return run_spec(spec, compile(spec), store=store, from_step=from_step, **kwargs)


def load_model(ref: str, *, store: str | os.PathLike[str] | None = None) -> Predictor:
    """A registered version (``"churn@champion"``, ``"churn/3"``) to score DataFrames; see :func:`mlflowkit.api.load_model`."""
    from mlflowkit.api import load_model as load

    return load(ref, store=store)


def runs(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every run in the store as a DataFrame (``metrics.NAME``, ``params.NAME`` columns); see :func:`mlflowkit.api.runs`."""
    from mlflowkit.api import runs as all_runs

    return all_runs(store)


def models(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Every registered version in the store as a DataFrame; see :func:`mlflowkit.api.models`."""
    from mlflowkit.api import models as all_models

    return all_models(store)
