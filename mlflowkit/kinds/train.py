"""The ``sklearn`` kind: fit any scikit-learn-style estimator named by import path.

Categorical columns are one-hot encoded and missing values imputed in a Pipeline, so the whole
model (preprocessing included) is one object that the export step can turn into ONNX.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.kinds._frames import load_frame, save_model
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["ALLOWED_MODULES", "SklearnTrain", "module_defines"]

# Modules an estimator may come from unless an operations policy says otherwise.
ALLOWED_MODULES = ("sklearn.", "xgboost.", "lightgbm.")


def module_defines(module: str) -> set[str] | None:
    """Names a module defines or re-exports, read from its source without importing it.

    Returns None when that cannot be told statically (no source, a lazy ``__getattr__``), so
    that the caller does not refuse what might exist.
    """
    top = module.split(".", maxsplit=1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return set()
    locations = list(spec.submodule_search_locations or [])
    parts = module.split(".")[1:]
    path = None
    if not parts and spec.origin:
        path = spec.origin
    for base in locations:
        candidate = os.path.join(base, *parts)
        for option in (os.path.join(candidate, "__init__.py"), candidate + ".py"):
            if os.path.isfile(option):
                path = option
                break
    if path is None or not path.endswith(".py"):
        return set() if parts else None
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return None if "__getattr__" in names else names


class SklearnParams(Params):
    """Which estimator to fit, with which fixed parameters."""

    estimator: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        description="Import path of the estimator class, e.g. sklearn.ensemble.RandomForestClassifier.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the estimator.")
    preprocess: Literal["auto", "none"] = Field(
        "auto", description="`auto`: impute missing values and one-hot encode text columns; `none`: feed columns as they are."
    )
    seed: int = Field(42, description="Passed as random_state when the estimator takes one and params does not set it.")


class SklearnTrain(StepKind):
    """Fit a scikit-learn-style estimator on the training split.

    Example:

    ```yaml
    train:
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 200, max_depth: 8}
    ```
    """

    Params = SklearnParams
    summary = "fit a scikit-learn estimator"

    @classmethod
    def check(cls, section: Any, spec: Any) -> Iterable[tuple[tuple[str | int, ...], str, str]]:
        from mlflowkit.plugins import did_you_mean

        module, _, name = section.estimator.rpartition(".")
        if not any(section.estimator.startswith(prefix) for prefix in ALLOWED_MODULES):
            yield (
                ("estimator",),
                f"estimator {section.estimator!r} is outside the allowed modules",
                (f"allowed: {', '.join(p.rstrip('.') for p in ALLOWED_MODULES)}"),
            )
            return
        defined = module_defines(module)
        if defined is None:
            return
        if not defined:
            top = module.split(".")[0]
            extra = {"xgboost": "xgboost", "lightgbm": "lightgbm"}.get(top)
            hint = f"pip install 'mlflowkit[{extra}]'" if extra else ""
            yield ("estimator",), f"module {module!r} is not installed or does not exist", hint
        elif name not in defined:
            public = [n for n in defined if n[:1].isupper()]
            yield ("estimator",), f"{module!r} has no {name!r}", did_you_mean(name, public)

    def run(self, ctx: StepContext, params: SklearnParams, inputs: Inputs) -> dict[str, Ref]:
        import importlib
        import inspect

        ref = inputs["train"]
        frame = load_frame(ctx.store, ref)
        target = ref.meta["target"]
        x, y = frame.drop(columns=[target]), frame[target]
        module, _, name = params.estimator.rpartition(".")
        estimator_cls = getattr(importlib.import_module(module), name)
        kwargs = dict(params.params)
        if "random_state" in inspect.signature(estimator_cls).parameters and "random_state" not in kwargs:
            kwargs["random_state"] = params.seed
        try:
            estimator = estimator_cls(**kwargs)
        except TypeError as exc:
            raise StepFailed(ctx.step, f"cannot create {params.estimator} with params {params.params}: {exc}") from exc
        model = _pipeline(estimator, x) if params.preprocess == "auto" else estimator
        try:
            model.fit(x, y)
        except (ValueError, TypeError) as exc:
            raise StepFailed(ctx.step, f"{params.estimator}.fit failed: {exc}") from exc
        classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
        task = "classification" if hasattr(model, "predict_proba") or classes else "regression"
        ctx.logger.info("fitted %s on %s rows", params.estimator, len(frame))
        meta = {
            "estimator": params.estimator,
            "params": kwargs,
            "features": [str(c) for c in x.columns],
            "target": target,
            "classes": classes,
            "task": task,
            "data_fingerprint": ref.meta.get("data_fingerprint"),
        }
        return {"model": save_model(ctx.store, model, **meta)}


def _pipeline(estimator: Any, x: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c for c in x.columns if x[c].dtype.kind in "OSUb" or str(x[c].dtype) in {"category", "str", "string"}]
    numeric = [c for c in x.columns if c not in categorical]
    steps = []
    if numeric:
        steps.append(("numeric", SimpleImputer(strategy="median"), numeric))
    if categorical:
        steps.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
    return Pipeline([("preprocess", ColumnTransformer(steps)), ("model", estimator)])
