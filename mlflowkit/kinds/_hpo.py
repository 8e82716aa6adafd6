"""Hyper-parameter search for the ``sklearn`` kind: the ``search:`` and ``ray:`` params, and the search on Ray.

Each (trial, fold) pair is one Ray task; the training data and the folds are ``ray.put`` once. Ray is
imported inside :func:`run_search` only, so ``mlflowkit validate`` stays light.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from mlflowkit.errors import StepFailed
from mlflowkit.kinds.base import Params, StepContext

__all__ = [
    "MAX_GRID",
    "SCORERS",
    "RangeSpace",
    "RaySettings",
    "SearchParams",
    "SearchResult",
    "Trial",
    "candidates",
    "check_search",
    "run_search",
]

# scikit-learn's scorer names (sklearn.metrics.get_scorer_names(), 1.9), kept here so that validate
# does not import scikit-learn; a unit test keeps this list inside scikit-learn's.
SCORERS = (
    "accuracy", "adjusted_mutual_info_score", "adjusted_rand_score", "average_precision", "balanced_accuracy",
    "completeness_score", "d2_absolute_error_score", "d2_brier_score", "d2_log_loss_score", "explained_variance", "f1",
    "f1_macro", "f1_micro", "f1_samples", "f1_weighted", "fowlkes_mallows_score", "homogeneity_score", "jaccard",
    "jaccard_macro", "jaccard_micro", "jaccard_samples", "jaccard_weighted", "matthews_corrcoef", "mutual_info_score",
    "neg_brier_score", "neg_log_loss", "neg_max_error", "neg_mean_absolute_error", "neg_mean_absolute_percentage_error",
    "neg_mean_gamma_deviance", "neg_mean_poisson_deviance", "neg_mean_squared_error", "neg_mean_squared_log_error",
    "neg_median_absolute_error", "neg_negative_likelihood_ratio", "neg_root_mean_squared_error",
    "neg_root_mean_squared_log_error", "normalized_mutual_info_score", "positive_likelihood_ratio", "precision",
    "precision_macro", "precision_micro", "precision_samples", "precision_weighted", "r2", "rand_score", "recall",
    "recall_macro", "recall_micro", "recall_samples", "recall_weighted", "roc_auc", "roc_auc_ovo", "roc_auc_ovo_weighted",
    "roc_auc_ovr", "roc_auc_ovr_weighted", "top_k_accuracy", "v_measure_score",
)  # fmt: skip
# Names people write for the evaluate step that scikit-learn spells differently (scorers maximise).
_SCORER_ALIASES = {
    "rmse": "neg_root_mean_squared_error",
    "mse": "neg_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "mape": "neg_mean_absolute_percentage_error",
    "log_loss": "neg_log_loss",
    "auc": "roc_auc",
}
MAX_GRID = 10_000  # more combinations than this is not a grid anyone means to run: use random


class RangeSpace(Params):
    """A range to sample from (random search only): uniform, or log-uniform with ``log: true``."""

    low: float = Field(description="Lower bound (inclusive). Integers for both bounds sample integers.")
    high: float = Field(description="Upper bound (inclusive for integers).")
    log: bool = Field(False, description="Sample the logarithm uniformly (bounds must be positive).")


class SearchParams(Params):
    """Which hyper-parameters to search, how, and how each candidate is scored (cross-validation)."""

    space: dict[str, list[Any] | RangeSpace] = Field(
        description="Estimator parameter -> the values to try (a list), or a range {low, high, log} (random only)."
    )
    strategy: Literal["grid", "random"] = Field("grid", description="`grid`: every combination; `random`: n_trials samples.")
    n_trials: int | None = Field(None, ge=1, description="How many candidates random search samples (random only).")
    cv: int = Field(3, ge=2, le=100, description="Number of cross-validation folds (shuffled, stratified for classifiers).")
    metric: str | None = Field(
        None, description="scikit-learn scorer name (roc_auc, accuracy, f1, neg_log_loss, r2, ...); default: estimator.score."
    )
    seed: int | None = Field(
        None, description="Seed of the folds, the sampling and each trial's random_state; default: train.seed."
    )


def _address(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+", value):
        raise ValueError(f"expected auto, host:port or ray://host:port, got {value!r}")
    return value


class RaySettings(Params):
    """Where search trials run, and what each one may use."""

    address: Annotated[str | None, AfterValidator(_address)] = Field(
        None,
        description="A Ray cluster to join: `auto`, `host:port`, `ray://host:port`; default: a local instance started on demand.",
    )
    num_cpus_per_trial: float = Field(1, gt=0, description="CPUs each trial reserves; also the estimator's n_jobs in a trial.")
    num_gpus_per_trial: float = Field(0, ge=0, description="GPUs each trial reserves.")
    max_retries: int = Field(2, ge=0, le=100, description="How often a trial whose worker process died is run again.")
    runtime_env: dict[str, Any] | None = Field(
        None,
        description=(
            "Ray runtime environment for the trials' workers (`pip`, `working_dir`, `env_vars`, ...), passed to"
            " `ray.init(runtime_env=...)` when this step connects;"
            " e.g. {pip: [xgboost==3.1.0], env_vars: {OMP_NUM_THREADS: '1'}}."
        ),
    )


def check_search(
    search: SearchParams | None, ray: RaySettings | None, fixed: dict[str, Any]
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """Validate-time checks of ``search:`` and ``ray:`` (paths relative to the train section)."""
    from mlflowkit.plugins import did_you_mean

    if search is None:
        if ray is not None:
            yield ("ray",), "ray: applies to search trials, and this section has no search:", "add search:, or remove ray:"
        return
    if not search.space:
        yield ("search", "space"), "search space is empty", "name at least one parameter with the values to try"
    for name, values in search.space.items():
        where = ("search", "space", name)
        if isinstance(values, list) and not values:
            yield where, f"no values to try for {name!r}", "give at least one value"
        elif isinstance(values, RangeSpace):
            if search.strategy == "grid":
                yield where, f"{name!r} is a range, which a grid cannot enumerate", "list the values, or use strategy: random"
            if values.low >= values.high:
                yield where, f"the range of {name!r} is empty: low ({values.low:g}) must be below high ({values.high:g})", ""
            elif values.log and values.low <= 0:
                yield where, f"log: true needs a positive low for {name!r} (got {values.low:g})", ""
        if name in fixed:
            yield where, f"{name!r} is both fixed in params and searched", "remove it from one of them"
    if search.strategy == "grid" and search.n_trials is not None:
        yield ("search", "n_trials"), "n_trials applies to strategy: random only (a grid tries every combination)", ""
    if search.strategy == "random" and search.n_trials is None:
        yield ("search", "strategy"), "strategy: random needs n_trials", "e.g. n_trials: 20"
    if search.strategy == "grid" and all(isinstance(v, list) for v in search.space.values()):
        size = math.prod(len(v) for v in search.space.values() if isinstance(v, list))
        if size > MAX_GRID:
            hint = "use strategy: random with n_trials"
            yield ("search", "space"), f"the grid has {size} combinations (limit {MAX_GRID})", hint
    if search.metric is not None and search.metric not in SCORERS:
        alias = _SCORER_ALIASES.get(search.metric)
        hint = f"scikit-learn calls it {alias!r}" if alias else did_you_mean(search.metric, SCORERS)
        message = f"unknown metric {search.metric!r} (a scikit-learn scorer name)"
        yield ("search", "metric"), message, hint or "see sklearn.metrics.get_scorer_names()"


def candidates(search: SearchParams, seed: int) -> list[dict[str, Any]]:
    """The parameter sets to try, in a fixed order: the grid, or ``n_trials`` samples drawn with ``seed``."""
    names = list(search.space)
    if search.strategy == "grid":
        lists = [v for v in search.space.values() if isinstance(v, list)]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    n = search.n_trials or 1
    if all(isinstance(v, list) for v in search.space.values()):
        lists = [v for v in search.space.values() if isinstance(v, list)]
        size = math.prod(len(v) for v in lists)
        # Distinct combinations, as scikit-learn's ParameterSampler draws from a finite grid.
        picks = range(size) if n >= size else rng.sample(range(size), n)
        out = []
        for pick in picks:
            combo, rest = {}, pick
            for name, values in zip(reversed(names), reversed(lists), strict=True):
                rest, i = divmod(rest, len(values))
                combo[name] = values[i]
            out.append({name: combo[name] for name in names})
        return out
    return [{name: _draw(rng, values) for name, values in search.space.items()} for _ in range(n)]


def _draw(rng: random.Random, values: list[Any] | RangeSpace) -> Any:
    if isinstance(values, list):
        return values[rng.randrange(len(values))]
    integral = float(values.low).is_integer() and float(values.high).is_integer()
    if values.log:
        drawn = math.exp(rng.uniform(math.log(values.low), math.log(values.high)))
        return round(drawn) if integral else drawn
    return rng.randint(int(values.low), int(values.high)) if integral else rng.uniform(values.low, values.high)


@dataclass
class Trial:
    """One candidate's cross-validation: its parameters, the score of each fold, where it ran."""

    index: int
    params: dict[str, Any]
    fold_scores: list[float | None]
    fit_seconds: float = 0.0
    error: str | None = None
    nodes: set[str] = field(default_factory=set)
    node_ips: set[str] = field(default_factory=set)
    gcs_address: str = ""  # the cluster a task saw itself in

    @property
    def done(self) -> bool:
        return all(s is not None for s in self.fold_scores)

    @property
    def mean(self) -> float:
        scores = [s for s in self.fold_scores if s is not None]
        return math.fsum(scores) / len(scores) if scores and self.error is None else math.nan

    @property
    def std(self) -> float:
        scores = [s for s in self.fold_scores if s is not None]
        if not scores or self.error is not None:
            return math.nan
        mean = self.mean
        return math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))  # population std, as GridSearchCV

    def record(self) -> dict[str, Any]:
        """The trial as plain JSON (NaN becomes null)."""
        return {
            "trial": self.index,
            "params": self.params,
            "mean": _finite(self.mean),
            "std": _finite(self.std),
            "fold_scores": [_finite(s) for s in self.fold_scores],
            "fit_seconds": round(self.fit_seconds, 3),
            "error": self.error,
            "nodes": sorted(self.nodes),
            "node_ips": sorted(self.node_ips),
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass
class SearchResult:
    """What a search found: every trial, the best one, and where it ran."""

    trials: list[Trial]
    best: Trial
    metric: str
    seconds: float
    gcs_address: str
    started_ray: bool


def _score_fold(shared: dict[str, Any], fold: int, params: dict[str, Any]) -> dict[str, Any]:
    """Fit a clone of the template with ``params`` on one fold's training rows and score its held-out rows.

    Runs inside a Ray worker; ``shared`` (data, folds, template, metric) comes from the object store.
    A fit that raises is reported (as scikit-learn's ``error_score=nan`` would), not raised: Ray
    retries only trials whose worker died.
    """
    import ray
    from sklearn.base import clone
    from sklearn.metrics import check_scoring

    x, y, template, metric = shared["x"], shared["y"], shared["template"], shared["metric"]
    train, test = shared["folds"][fold]
    context = ray.get_runtime_context()
    node_ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    where = {"node": context.get_node_id(), "node_ip": node_ip, "gcs_address": context.gcs_address}
    start = time.perf_counter()
    from mlflowkit.kinds._threads import limit_threads, quiet_step_n_jobs

    try:
        model = clone(template).set_params(**params)
        # Trials side by side share the cores: one pool each, and the train step set each trial's n_jobs.
        with limit_threads(shared.get("threads", 1)), quiet_step_n_jobs(True):
            model.fit(x.iloc[train], y.iloc[train])
            score = float(check_scoring(model, scoring=metric)(model, x.iloc[test], y.iloc[test]))
    except Exception as exc:  # the estimator may raise anything for a bad combination
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start, **where}
    return {"score": score, "seconds": time.perf_counter() - start, **where}


def _score_trial(shared: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """All folds of one trial in one task (the coarser granularity, kept for the benchmark)."""
    return [_score_fold(shared, fold, params) for fold in range(len(shared["folds"]))]


def start_ray(settings: RaySettings) -> bool:
    """Join ``settings.address``, or start a local instance; True when this call connected (so we disconnect)."""
    import ray

    from mlflowkit.kinds._threads import available_cpus

    if ray.is_initialized():
        here = ray.get_runtime_context().gcs_address
        wanted = settings.address
        if wanted not in (None, "auto") and not wanted.endswith(here.rsplit(":", 1)[-1]):
            raise RuntimeError(f"this process is already connected to Ray at {here}; cannot also join {wanted}")
        return False
    env = settings.runtime_env or None  # pip packages, working_dir, env_vars: Ray ships them to every node
    if settings.address is None:  # "local" starts a new instance, never an unrelated running cluster
        ray.init(address="local", num_cpus=available_cpus(), include_dashboard=False, log_to_driver=False, runtime_env=env)
    else:
        ray.init(address=settings.address, log_to_driver=False, runtime_env=env)
    return True


def run_search(
    *,
    ctx: StepContext,
    x: Any,
    y: Any,
    template: Any,
    trial_params: list[dict[str, Any]],
    shown_params: list[dict[str, Any]],
    folds: list[tuple[Any, Any]],
    metric: str | None,
    settings: RaySettings,
    per_fold: bool = True,
) -> SearchResult:
    """Cross-validate every candidate as Ray tasks and return the trials and the best one.

    Args:
        ctx: the step's context: its name for errors, and :meth:`~StepContext.advance` as each trial finishes.
        x, y: the training split; ``ray.put`` once, with the folds.
        template: the unfitted model; each task fits a clone with one candidate's parameters.
        trial_params: each candidate's parameters as ``template.set_params`` takes them.
        shown_params: the same candidates as the user wrote them (for records and messages).
        folds: ``(train_rows, test_rows)`` index arrays.
        metric: a scikit-learn scorer name, or None for the estimator's ``score``.
        settings: the ``ray:`` section.
        per_fold: one task per (trial, fold) pair (the default); else one task per trial.
    """
    import ray
    from ray.exceptions import RayError, RayTaskError

    step = ctx.step
    start = time.perf_counter()
    try:
        started = start_ray(settings)
    except (RayError, RuntimeError, ConnectionError, ValueError) as exc:
        where = settings.address or "a local instance"
        raise StepFailed(step, f"cannot start or join Ray ({where}): {type(exc).__name__}: {exc}") from exc
    trials = [Trial(i + 1, shown, [None] * len(folds)) for i, shown in enumerate(shown_params)]
    pending: dict[Any, tuple[Trial, int | None]] = {}
    try:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        total_cpus, total_gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if settings.num_cpus_per_trial > total_cpus or settings.num_gpus_per_trial > total_gpus:
            raise StepFailed(
                step,
                f"a trial asks for {settings.num_cpus_per_trial} CPU and {settings.num_gpus_per_trial} GPU, "
                f"but the Ray cluster has {total_cpus:g} CPU and {total_gpus:g} GPU",
            )
        # Put once: every task reads the same copy from the object store instead of a pickle of its own.
        threads = max(1, math.floor(settings.num_cpus_per_trial))
        shared = ray.put({"x": x, "y": y, "folds": folds, "template": template, "metric": metric, "threads": threads})
        options = {
            "num_cpus": settings.num_cpus_per_trial,
            "num_gpus": settings.num_gpus_per_trial,
            "max_retries": settings.max_retries,
        }
        if per_fold:
            fold_task = ray.remote(_score_fold).options(**options)
            for trial, params in zip(trials, trial_params, strict=True):
                for k in range(len(folds)):
                    pending[fold_task.remote(shared, k, params)] = (trial, k)
        else:
            trial_task = ray.remote(_score_trial).options(**options)
            for trial, params in zip(trials, trial_params, strict=True):
                pending[trial_task.remote(shared, params)] = (trial, None)
        best: Trial | None = None
        finished = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            trial, fold = pending.pop(ref)  # fold is None for a whole-trial task
            try:
                value = ray.get(ref)
            except RayTaskError as exc:  # the task's own code raised outside the estimator: a bug, not a blip
                raise StepFailed(step, f"{_name(trial, fold)} raised: {exc.cause!r}") from exc
            except RayError as exc:  # the worker died (killed, out of memory, node lost) and retries are spent
                cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise StepFailed(
                    step,
                    f"{_name(trial, fold)} failed after max_retries={settings.max_retries}: {type(exc).__name__}: {cause}",
                ) from exc
            for i, outcome in enumerate([value] if fold is not None else value):
                at: int = fold if fold is not None else i
                trial.fit_seconds += outcome["seconds"]
                trial.nodes.add(outcome["node"])
                trial.node_ips.add(outcome["node_ip"])
                trial.gcs_address = outcome["gcs_address"]
                if "error" in outcome:
                    trial.error = trial.error or f"fold {at + 1}: {outcome['error']}"
                    trial.fold_scores[at] = math.nan
                else:
                    trial.fold_scores[at] = outcome["score"]
            if trial.done:
                finished += 1
                if trial.error is None and (best is None or trial.mean > best.mean):
                    best = trial
                _advance(ctx, trial, finished=finished, total=len(trials), best=best, metric=metric)
        ok = [t for t in trials if t.error is None and math.isfinite(t.mean)]
        if not ok:
            raise StepFailed(step, f"every trial failed; the first: trial 1 {trials[0].error}")
        # The best mean, the first trial on a tie: the order is the grid's (or the seeded sample's).
        chosen = max(ok, key=lambda t: (t.mean, -t.index))
        return SearchResult(trials, chosen, metric or "score", time.perf_counter() - start, chosen.gcs_address, started)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


def _name(trial: Trial, fold: int | None) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in trial.params.items())
    return f"trial {trial.index} ({shown})" + (f" fold {fold + 1}" if fold is not None else "")


def _advance(ctx: StepContext, trial: Trial, *, finished: int, total: int, best: Trial | None, metric: str | None) -> None:
    """Say that one more trial is done: its score, which it was, and the best so far."""
    shown = ", ".join(f"{k}={v!r}" for k, v in trial.params.items())
    which = f"trial {trial.index}: {shown}" if shown else f"trial {trial.index}"
    ctx.advance(
        "trials",
        finished,
        total,
        values=() if trial.error else [(metric or "score", trial.mean)],
        note=f"{which} failed: {trial.error}" if trial.error else which,
        best=best.mean if best else None,
        best_note=f"trial {best.index}" if best else "",
    )
