"""The ``sklearn`` kind: fit any scikit-learn-style estimator named by import path, optionally after a search.

Categorical columns are one-hot encoded and missing values imputed in a Pipeline, so the whole
model (preprocessing included) is one object that the export step can turn into ONNX. With
``search:``, candidates are cross-validated as Ray tasks (see ``_hpo``) and the best is refit here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import TRIALS, ModelMeta
from mlflowkit.kinds._estimators import (
    EstimatorRefused,
    allowed_modules,
    estimator_info,
    registered_estimator,
    resolve_estimator,
)
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds._hpo import RangeSpace, RaySettings, SearchParams, candidates, check_search, run_search
from mlflowkit.kinds._sklearn_catalog import EstimatorInfo, param_problems, value_hint, value_problem
from mlflowkit.kinds._skops import skops_io
from mlflowkit.kinds._threads import available_cpus, limit_threads, quiet_step_n_jobs
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind
from mlflowkit.kinds.model_files import save_model
from mlflowkit.policy.rules import module_allowed

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["SklearnTrain", "estimator_refusal", "feature_columns"]


def estimator_refusal(path: str, policy_modules: list[str] | None) -> EstimatorRefused | None:
    """Why ``path`` may not be imported as an estimator, or None.

    With a policy that lists ``modules.estimators``, that list decides alone. Without one, the built-in
    packages and ``MLFLOWKIT_ALLOWED_MODULES`` do, and so does an estimator class an installed plug-in
    registered under ``mlflowkit.estimators``. Modules are compared by whole dotted components.
    """
    if policy_modules is not None:
        if module_allowed(path, policy_modules):
            return None
        shown = ", ".join(p.rstrip(".") for p in policy_modules) or "none"
        return EstimatorRefused(f"estimator {path!r} is outside the modules the policy allows", f"allowed: {shown}")
    allowed = allowed_modules()
    if module_allowed(path, allowed) or registered_estimator(path) is not None:
        return None
    hint = f"allowed: {', '.join(allowed)}; more through MLFLOWKIT_ALLOWED_MODULES or a plug-in estimator"
    return EstimatorRefused(f"estimator {path!r} is outside the allowed modules", hint)


def feature_columns(columns: list[str], target: str, features: list[str] | None, exclude: list[str]) -> list[str]:
    """The model's input columns: ``features`` as given, else every column but the target and ``exclude``."""
    if features is not None:
        return list(features)
    return [c for c in columns if c != target and c not in exclude]


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
    features: list[str] | None = Field(
        None, min_length=1, description="The model's input columns; default: every column but the target and `exclude`."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description=(
            "Columns kept out of the model's inputs: ids, free text, or sensitive attributes that evaluate still"
            " reads for fairness and slices."
        ),
    )
    cpus: int | None = Field(
        None,
        ge=1,
        description=(
            "CPUs the fit may use: BLAS/OpenMP threads are capped at this, and it is the estimator's n_jobs unless"
            " params sets one; default: the CPUs this process may use (affinity, container quota)."
        ),
    )
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
    keeps_columns = True

    # The recipe's params and search defaults are meant for the recipe's estimator: they do not follow
    # the spec to another one (a random forest's n_estimators means nothing to Ridge).
    defaults_follow: ClassVar[Mapping[str, tuple[str, ...]]] = {"estimator": ("params", "search")}

    @classmethod
    def columns_read(cls, section: Any, spec: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for name in ("features", "exclude"):
            for i, column in enumerate(getattr(section, name) or ()):
                yield (name, i), column

    @classmethod
    def prefetch(cls) -> None:
        import sklearn.ensemble
        import sklearn.pipeline  # noqa: F401

        skops_io()  # the fitted model is stored with skops

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        yield from check_search(section.search, section.ray, section.params)
        yield from _column_choices(section, spec)
        from mlflowkit.policy import policy_of

        policy = policy_of(spec)
        policy_modules = policy.modules.estimators if policy is not None else None
        refused = estimator_refusal(section.estimator, policy_modules)
        if refused is not None:
            if policy_modules is None:  # the operations policy reports its own refusals, at its rule
                yield ("estimator",), refused.message, refused.hint
            return
        try:
            info = estimator_info(section.estimator)
        except EstimatorRefused as exc:
            yield ("estimator",), exc.message, exc.hint
            return
        yield from _params_fit(info, section)

    def run(self, ctx: StepContext, params: SklearnParams, inputs: Inputs) -> dict[str, Ref]:
        import inspect

        ref = inputs["train"]
        frame = load_frame(ctx.store, ref)
        target = ref.meta["target"]
        features = feature_columns([str(c) for c in frame.columns], target, params.features, params.exclude)
        missing = [c for c in [*features, *params.exclude] if c not in frame.columns]
        if missing:
            have = ", ".join(map(str, frame.columns))
            raise StepFailed(ctx.step, f"columns {missing} are not in the training data (columns: {have})")
        x, y = frame[features], frame[target]
        from mlflowkit.kinds._policy import governing_policy

        policy = governing_policy(ctx)
        refused = estimator_refusal(params.estimator, policy.modules.estimators if policy is not None else None)
        if refused is not None:
            raise StepFailed(ctx.step, f"refused to import {params.estimator}: {refused}")
        try:
            estimator_cls = resolve_estimator(params.estimator)
        except EstimatorRefused as exc:
            raise StepFailed(ctx.step, f"cannot import {params.estimator}: {exc}") from None
        _need_two_classes(ctx.step, estimator_cls, y, target)
        signature = inspect.signature(estimator_cls).parameters
        seed = params.seed if params.search is None or params.search.seed is None else params.search.seed
        kwargs = dict(params.params)
        searched = set(params.search.space) if params.search else set()
        if "random_state" in signature and "random_state" not in kwargs and "random_state" not in searched:
            kwargs["random_state"] = seed
        cpus = params.cpus or available_cpus()
        outputs: dict[str, Ref] = {}
        search_meta: dict[str, Any] | None = None
        if params.search is not None:
            found = self._search(ctx, params, estimator_cls=estimator_cls, kwargs=kwargs, x=x, y=y, seed=seed)
            best, search_meta, trials_ref = found
            kwargs = {**kwargs, **best}
            outputs["trials"] = trials_ref
        fit_kwargs = dict(kwargs)
        if "n_jobs" in signature and "n_jobs" not in kwargs:
            fit_kwargs["n_jobs"] = cpus  # the step's CPUs, not the machine's; not part of the model's recorded params
        try:
            estimator = estimator_cls(**fit_kwargs)
        except TypeError as exc:
            raise StepFailed(ctx.step, f"cannot create {params.estimator} with params {kwargs}: {exc}") from exc
        model = _pipeline(estimator, x) if params.preprocess == "auto" else estimator
        try:
            with limit_threads(cpus), quiet_step_n_jobs("n_jobs" in fit_kwargs and "n_jobs" not in kwargs):
                model.fit(x, y)
        except (ValueError, TypeError) as exc:
            raise StepFailed(ctx.step, f"{params.estimator}.fit failed: {exc}") from exc
        if "n_jobs" in fit_kwargs and "n_jobs" not in kwargs:
            (model.named_steps["model"] if params.preprocess == "auto" else model).set_params(n_jobs=None)
        classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
        task = "classification" if hasattr(model, "predict_proba") or classes else "regression"
        best_note = " with the best parameters" if search_meta else ""
        ctx.logger.info(
            "fitted %s on %s rows x %s features (%s CPUs)%s", params.estimator, len(frame), len(features), cpus, best_note
        )
        meta = ModelMeta(
            estimator=params.estimator,
            params=kwargs,
            features=tuple(features),
            target=target,
            classes=tuple(classes),
            task=task,
            data_fingerprint=ref.meta.get("data_fingerprint"),
            positive=ref.meta.get("positive"),
            search=search_meta,
        )
        outputs["model"] = save_model(ctx.store, model, keep_in=ctx.models, **meta.model_dump(mode="json", exclude_none=True))
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
            ctx=ctx,
            x=x,
            y=y,
            template=template,
            trial_params=[{prefix + k: v for k, v in c.items()} for c in shown],
            shown_params=shown,
            folds=folds,
            metric=search.metric,
            settings=settings,
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


def _column_choices(section: Any, spec: Any) -> SectionIssues:
    """``features`` and ``exclude`` agree with each other and leave the target out."""
    data = spec.section("data")
    target = getattr(data, "target", None)
    for name in ("features", "exclude"):
        chosen = getattr(section, name) or []
        if target is not None and target in chosen:
            i = chosen.index(target)
            yield (name, i), f"{target!r} is the target; it is never one of the model's inputs", f"remove it from {name}"
        for i, column in enumerate(chosen):
            if column in chosen[:i]:
                yield (name, i), f"{column!r} is listed twice", "remove the repeat"
    if section.features is not None and section.exclude:
        yield ("exclude",), "give features (the inputs) or exclude (what to leave out), not both", "remove one of them"


def _params_fit(info: EstimatorInfo, section: Any) -> SectionIssues:
    """The estimator's parameters as the spec sets and searches them: names, types, ranges, required ones."""
    for name, message, hint in param_problems(info, section.params):
        yield ("params", name), message, hint
    space = section.search.space if section.search is not None else {}
    missing = [r for r in info.required if r not in section.params and r not in space]
    if missing:
        yield (
            ("estimator",),
            f"{info.name} needs {', '.join(map(repr, missing))}, which have no default",
            "set them in train.params",
        )
    if not info.predicts:
        return
    known = [n for n in info.params if n != "**"]
    for name, values in space.items():
        if name not in info.params and "**" not in info.params:
            from mlflowkit.plugins import did_you_mean

            yield ("search", "space", name), f"{info.name} has no parameter {name!r}", did_you_mean(name, known)
        elif not isinstance(values, RangeSpace):
            for i, value in enumerate(values):
                if problem := value_problem(info, name, value):
                    yield ("search", "space", name, i), problem, value_hint(info, name, value)


def _need_two_classes(step: str, estimator_cls: type, y: Any, target: str) -> None:
    """A classifier needs two classes in the training split; with one, fitting or exporting fails far from the cause."""
    from sklearn.base import ClassifierMixin

    present = y.dropna().unique()
    if issubclass(estimator_cls, ClassifierMixin) and len(present) < 2:
        shown = f" (only {present[0]!r})" if len(present) else ""
        raise StepFailed(
            step,
            f"target {target!r} has {len(present)} class{shown} in the training split; a classifier needs two or more"
            " (check data.target and how the data was filtered)",
        )


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
