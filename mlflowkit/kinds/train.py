"""The ``sklearn`` kind: fit any scikit-learn-style estimator named by import path, optionally after a search.

Categorical columns are one-hot encoded and missing values imputed in a Pipeline, so the whole
model (preprocessing included) is one object that the export step can turn into ONNX. With
``search:``, candidates are cross-validated as Ray tasks (see ``_hpo``) and the best is refit here.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import TRIALS, ModelMeta
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds._hpo import RaySettings, SearchParams, candidates, check_search, run_search
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind
from mlflowkit.kinds.model_files import save_model

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["ALLOWED_MODULES", "SklearnTrain", "allowed_modules", "module_defines"]

# Modules an estimator may come from unless an operations policy says otherwise.
ALLOWED_MODULES = ("sklearn.", "xgboost.", "lightgbm.")
# More prefixes, comma-separated; used only when no operations policy lists `modules.estimators`
# (a policy's list replaces both, see mlflowkit.policy).
ALLOWED_MODULES_ENV = "MLFLOWKIT_ALLOWED_MODULES"


def allowed_modules() -> tuple[str, ...]:
    """:data:`ALLOWED_MODULES` plus the prefixes in ``MLFLOWKIT_ALLOWED_MODULES`` (``mypkg.models.,other.``).

    The variable is set by whoever runs mlflowkit, not by a spec, so a spec cannot widen what it may import.
    """
    extra = [p.strip() for p in os.environ.get(ALLOWED_MODULES_ENV, "").split(",") if p.strip()]
    return ALLOWED_MODULES + tuple(p if p.endswith(".") else p + "." for p in extra)


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
    search: SearchParams | None = Field(None, description="Hyper-parameter search: cross-validate candidates, refit the best.")
    ray: RaySettings | None = Field(None, description="Where search trials run (default: a local Ray instance), with what.")


class SklearnTrain(StepKind):
    """Fit a scikit-learn-style estimator on the training split, with fixed params or the best of a search.

    Without ``search:`` the estimator is fitted here, in-process. With it, every candidate is
    cross-validated on Ray (one task per trial and fold, the data put in the object store once),
    and the best candidate is refit on the whole training split. Every trial's mean and spread
    across folds is kept with the model and published as the ``trials`` table.

    Example:

    ```yaml
    train:
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 100}
      search:
        strategy: grid                  # or random, with n_trials: N (lists and {low, high, log} ranges)
        space:
          max_depth: [4, 8, 16]
          min_samples_leaf: [1, 5]
        cv: 3
        metric: roc_auc                 # any scikit-learn scorer name
      ray: {num_cpus_per_trial: 1, max_retries: 2}   # address: auto | host:port | ray://host:port
    ```
    """

    Params = SklearnParams
    summary = "fit a scikit-learn estimator"

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        from mlflowkit.plugins import did_you_mean

        yield from check_search(section.search, section.ray, section.params)
        module, _, name = section.estimator.rpartition(".")
        from mlflowkit.policy import module_allowed, policy_of

        policy = policy_of(spec)
        allowed = allowed_modules()
        if policy is not None and policy.modules.estimators is not None:
            # The operations policy owns the allow-list; it reports a refusal with its own rule's place.
            if not module_allowed(section.estimator, policy.modules.estimators):
                return
        elif not any(section.estimator.startswith(prefix) for prefix in allowed):
            yield (
                ("estimator",),
                f"estimator {section.estimator!r} is outside the allowed modules",
                (f"allowed: {', '.join(p.rstrip('.') for p in allowed)}"),
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
        from mlflowkit.kinds._policy import governing_policy
        from mlflowkit.policy import import_refusal

        if refusal := import_refusal(governing_policy(ctx), params.estimator, what="estimators"):
            raise StepFailed(ctx.step, refusal)
        try:
            estimator_cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise StepFailed(ctx.step, f"cannot import {params.estimator}: {exc}") from exc
        signature = inspect.signature(estimator_cls).parameters
        seed = params.seed if params.search is None or params.search.seed is None else params.search.seed
        kwargs = dict(params.params)
        searched = set(params.search.space) if params.search else set()
        if "random_state" in signature and "random_state" not in kwargs and "random_state" not in searched:
            kwargs["random_state"] = seed
        outputs: dict[str, Ref] = {}
        search_meta: dict[str, Any] | None = None
        if params.search is not None:
            found = self._search(ctx, params, estimator_cls=estimator_cls, kwargs=kwargs, x=x, y=y, seed=seed)
            best, search_meta, trials_ref = found
            kwargs = {**kwargs, **best}
            outputs["trials"] = trials_ref
        try:
            estimator = estimator_cls(**kwargs)
        except TypeError as exc:
            raise StepFailed(ctx.step, f"cannot create {params.estimator} with params {kwargs}: {exc}") from exc
        model = _pipeline(estimator, x) if params.preprocess == "auto" else estimator
        try:
            model.fit(x, y)
        except (ValueError, TypeError) as exc:
            raise StepFailed(ctx.step, f"{params.estimator}.fit failed: {exc}") from exc
        classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
        task = "classification" if hasattr(model, "predict_proba") or classes else "regression"
        best_note = " with the best parameters" if search_meta else ""
        ctx.logger.info("fitted %s on %s rows%s", params.estimator, len(frame), best_note)
        meta = ModelMeta(
            estimator=params.estimator,
            params=kwargs,
            features=tuple(str(c) for c in x.columns),
            target=target,
            classes=tuple(classes),
            task=task,
            data_fingerprint=ref.meta.get("data_fingerprint"),
            search=search_meta,
        )
        outputs["model"] = save_model(ctx.store, model, **meta.model_dump(mode="json", exclude_none=True))
        return outputs

    def _search(
        self,
        ctx: StepContext,
        params: SklearnParams,
        *,
        estimator_cls: Any,
        kwargs: dict[str, Any],
        x: Any,
        y: Any,
        seed: int,
    ) -> tuple[dict[str, Any], dict[str, Any], Ref]:
        """Cross-validate the candidates on Ray; return the best params, the search record and the trials artifact."""
        import inspect

        from sklearn.base import is_classifier
        from sklearn.model_selection import KFold, StratifiedKFold
        from sklearn.utils.multiclass import type_of_target

        from mlflowkit.plugins import did_you_mean

        search = params.search
        assert search is not None  # only called with a search
        settings = params.ray or RaySettings()
        trial_kwargs = dict(kwargs)
        if "n_jobs" in inspect.signature(estimator_cls).parameters:
            # One trial uses the CPUs it reserved, so that trials side by side do not oversubscribe the cores.
            trial_kwargs["n_jobs"] = max(1, int(settings.num_cpus_per_trial))
        try:
            estimator = estimator_cls(**trial_kwargs)
        except TypeError as exc:
            raise StepFailed(ctx.step, f"cannot create {params.estimator} with params {params.params}: {exc}") from exc
        known = set(estimator.get_params(deep=False)) if hasattr(estimator, "get_params") else set(search.space)
        for name in search.space:
            if name not in known:
                hint = did_you_mean(name, known)
                message = f"search.space: {params.estimator} has no parameter {name!r}"
                raise StepFailed(ctx.step, message + (f"; {hint}" if hint else ""))
        template = _pipeline(estimator, x) if params.preprocess == "auto" else estimator
        prefix = "model__" if params.preprocess == "auto" else ""
        shown = candidates(search, seed)
        classify = is_classifier(estimator) and type_of_target(y) in {"binary", "multiclass"}
        splitter = (StratifiedKFold if classify else KFold)(n_splits=search.cv, shuffle=True, random_state=seed)
        try:
            folds = list(splitter.split(x, y))
        except ValueError as exc:
            raise StepFailed(ctx.step, f"cannot split the training data into {search.cv} folds: {exc}") from exc
        ctx.logger.info(
            "searching %d candidates (%s) x %d folds on Ray%s",
            len(shown),
            search.strategy,
            search.cv,
            f" at {settings.address}" if settings.address else "",
        )
        result = run_search(
            step=ctx.step,
            x=x,
            y=y,
            template=template,
            trial_params=[{prefix + k: v for k, v in c.items()} for c in shown],
            shown_params=shown,
            folds=folds,
            metric=search.metric,
            settings=settings,
            log=ctx.logger.info,
        )
        records = [t.record() for t in result.trials]
        ranked = sorted((t for t in result.trials if t.error is None), key=lambda t: (-t.mean, t.index))
        rank = {t.index: i + 1 for i, t in enumerate(ranked)}
        for record in records:
            record["rank"] = rank.get(record["trial"])
        best = result.best
        record = {
            "strategy": search.strategy,
            "metric": result.metric,
            "cv": search.cv,
            "seed": seed,
            "best_trial": best.index,
            "best_params": best.params,
            "best_score": best.mean,
            "best_std": best.std,
            "n_trials": len(records),
            "seconds": round(result.seconds, 3),
            "ray": {"gcs_address": result.gcs_address, "started_local": result.started_ray and settings.address is None},
            "trials": records,
        }
        body = json.dumps(record, sort_keys=True, indent=2, default=str).encode()
        trials_ref = ctx.store.put_bytes(body, TRIALS, {k: v for k, v in record.items() if k != "trials"})
        ctx.logger.info(
            "best of %d trials: trial %d (%s) %s %.4f ± %.4f",
            len(records),
            best.index,
            ", ".join(f"{k}={v!r}" for k, v in best.params.items()),
            result.metric,
            best.mean,
            best.std,
        )
        rows = [
            {
                "trial": r["trial"],
                **{k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r["params"].items()},
                "mean": r["mean"],
                "std": r["std"],
                "rank": r["rank"],
                "fit_seconds": r["fit_seconds"],
                "error": r["error"] or "",
            }
            for r in records
        ]
        title = f"Search: {len(records)} trials, {search.cv}-fold {result.metric} (best: trial {best.index})"
        ctx.report("trials", title, rows=rows)
        return best.params, record, trials_ref


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
