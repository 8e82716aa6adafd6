"""Plug-in discovery: kinds, targets, recipes, metrics and estimators from entry points, each checked when it registers.

A broken plug-in is recorded with its reason and does not break the others; it fails only when
a spec asks for it. The built-ins come through our own pyproject's entry points, like anyone's.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlflowkit.errors import PluginError
from mlflowkit.kinds.base import StepKind

__all__ = [
    "ESTIMATORS_GROUP",
    "GROUPS",
    "KINDS_GROUP",
    "METRICS_GROUP",
    "RECIPES_GROUP",
    "TARGETS_GROUP",
    "PluginInfo",
    "PluginSet",
    "all_plugins",
    "did_you_mean",
    "estimators",
    "kinds",
    "metrics",
    "recipes",
    "targets",
    "verify_estimator",
    "verify_kind",
    "verify_metric",
    "verify_recipe",
    "verify_target",
]

KINDS_GROUP = "mlflowkit.kinds"
RECIPES_GROUP = "mlflowkit.recipes"
TARGETS_GROUP = "mlflowkit.targets"
METRICS_GROUP = "mlflowkit.metrics"
ESTIMATORS_GROUP = "mlflowkit.estimators"


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """A ``did you mean 'x'?`` hint, or an empty string when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


@cache
def _entry_points(path: tuple[str, ...]) -> metadata.SelectableGroups:
    """Every installed entry point, read once per import path (reading them walks every distribution's
    metadata: a fifth of a cached rerun's time when each plug-in group read them again)."""
    del path  # the cache key: a package installed onto a new path is seen
    return metadata.entry_points()


class PluginSet:
    """The plug-ins of one entry-point group, each loaded and checked on first use.

    ``get`` loads one plug-in; ``ok`` and ``broken`` load them all (for listings and did-you-mean).
    A plug-in that fails is remembered with its reason and never breaks the others.
    """

    def __init__(self, group: str, verify: Callable[[str, Any], Any] | None = None) -> None:
        self.group = group
        self._verify = verify
        self._entry_points: dict[str, metadata.EntryPoint] = {}
        self._loaded: dict[str, Any] = {}
        self._broken: dict[str, str] = {}
        self.origin: dict[str, str] = {}
        self.distribution: dict[str, str] = {}
        for ep in _entry_points(tuple(sys.path)).select(group=group):
            dist = ep.dist.name if ep.dist else "?"
            if ep.name in self._entry_points:
                self._broken[ep.name] = f"registered twice (again by {dist} as {ep.value})"
                continue
            self._entry_points[ep.name] = ep
            self.origin[ep.name] = f"{dist}: {ep.value}"
            self.distribution[ep.name] = dist

    @property
    def names(self) -> list[str]:
        """Every registered name, loaded or not."""
        return sorted(self._entry_points)

    @property
    def values(self) -> dict[str, str]:
        """Every registered name -> its entry point's ``module:attr``, without loading anything."""
        return {name: ep.value for name, ep in self._entry_points.items()}

    def _try(self, name: str) -> None:
        if name in self._loaded or name in self._broken:
            return
        ep = self._entry_points[name]
        try:
            obj = ep.load()
            if self._verify is not None:
                obj = self._verify(name, obj)
        except PluginError as exc:
            self._broken[name] = exc.reason
        except Exception as exc:  # a plug-in's import may raise anything; record it and go on
            self._broken[name] = f"{type(exc).__name__}: {exc}"
        else:
            self._loaded[name] = obj

    @property
    def ok(self) -> dict[str, Any]:
        """Every plug-in that loads, by name (loads them all)."""
        for name in self._entry_points:
            self._try(name)
        return dict(self._loaded)

    @property
    def broken(self) -> dict[str, str]:
        """Every plug-in that does not load, with the reason (loads them all)."""
        self.ok  # noqa: B018 - loading is the point
        return dict(self._broken)

    def get(self, name: str) -> Any:
        """The plug-in called ``name``; a PluginError names it when it is broken or missing."""
        if name in self._entry_points:
            self._try(name)
        if name in self._loaded:
            return self._loaded[name]
        if name in self._broken:
            raise PluginError(name, self.group, f"is installed but failed to load: {self._broken[name]}")
        hint = did_you_mean(name, self.names)
        raise PluginError(name, self.group, f"is not installed{'; ' + hint if hint else ''}")


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``mlflowkit plugins list``: a plug-in that loads (``error`` empty) or one that does not."""

    group: str
    name: str
    distribution: str
    value: str
    summary: str
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the plug-in loads and passes its group's checks."""
        return not self.error


def _summary(obj: Any) -> str:
    if isinstance(obj, str):  # a recipe: the first sentence of its YAML's `description:`
        return recipe_description(obj)
    summary = getattr(obj, "summary", "")
    if not summary:
        summary = (inspect.getdoc(obj) or "").split("\n", 1)[0]
    return str(summary)


def recipe_description(path: str) -> str:
    """The first sentence of a recipe file's ``description:`` ("" when it has none or cannot be read)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description", "")).split(". ")[0].rstrip(".") if isinstance(data, dict) else ""


def all_plugins() -> list[PluginInfo]:
    """Every installed plug-in of every group (loading them all), broken ones with their reason."""
    rows: list[PluginInfo] = []
    for group, plugin_set in GROUPS.items():
        found = plugin_set()
        loaded, broken = found.ok, found.broken
        for name in sorted({*found.names, *broken}):
            dist = found.distribution.get(name, "?")
            value = found.origin.get(name, "").partition(": ")[2]
            if name in broken:
                rows.append(PluginInfo(group, name, dist, value, "", broken[name]))
            else:
                rows.append(PluginInfo(group, name, dist, value, _summary(loaded[name])))
    return rows


def verify_kind(name: str, obj: object) -> type[StepKind]:
    """Check that ``obj`` is a usable step kind, or raise PluginError saying what is wrong."""
    if not (inspect.isclass(obj) and issubclass(obj, StepKind)):
        raise PluginError(name, KINDS_GROUP, f"{obj!r} is not a subclass of mlflowkit.StepKind")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise PluginError(name, KINDS_GROUP, f"{obj.__qualname__} does not implement {missing}")
    params = getattr(obj, "Params", None)
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        raise PluginError(name, KINDS_GROUP, f"{obj.__qualname__}.Params must be a pydantic model class")
    if params.model_config.get("extra") != "forbid":
        raise PluginError(name, KINDS_GROUP, f"{obj.__qualname__}.Params must refuse unknown keys (extra='forbid')")
    run_params = list(inspect.signature(obj.run).parameters)
    if run_params[:4] != ["self", "ctx", "params", "inputs"]:
        raise PluginError(
            name, KINDS_GROUP, f"{obj.__qualname__}.run must take (self, ctx, params, inputs); it takes ({', '.join(run_params)})"
        )
    if obj.list_field is not None and obj.list_field not in params.model_fields:
        raise PluginError(name, KINDS_GROUP, f"list_field {obj.list_field!r} is not a field of {params.__qualname__}")
    return obj


def verify_target(name: str, obj: object) -> type[Any]:
    """Check that ``obj`` is a deploy target class whose ``target:`` tag is its entry-point name."""
    from typing import get_args

    from mlflowkit.targets.base import DeployTarget

    if not (inspect.isclass(obj) and issubclass(obj, DeployTarget)):
        raise PluginError(name, TARGETS_GROUP, f"{obj!r} is not a subclass of mlflowkit.targets.base.DeployTarget")
    tag = obj.model_fields["target"].annotation
    if get_args(tag) != (name,):
        raise PluginError(name, TARGETS_GROUP, f"{obj.__qualname__}.target must be Literal[{name!r}] (its entry-point name)")
    if obj.deploy is DeployTarget.deploy or getattr(obj, "destination", None) is DeployTarget.destination:
        raise PluginError(name, TARGETS_GROUP, f"{obj.__qualname__} must implement deploy() and destination")
    return obj


def verify_metric(name: str, obj: object) -> Any:
    """Check that ``obj`` is a metric made with :func:`mlflowkit.metric` whose name is its entry-point name."""
    from mlflowkit.metrics import CLASSIFICATION_METRICS, FAIRNESS_METRICS, REGRESSION_METRICS, Metric

    if not isinstance(obj, Metric):
        raise PluginError(name, METRICS_GROUP, f"{obj!r} is not a metric; decorate the function with @mlflowkit.metric(...)")
    if name in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, *FAIRNESS_METRICS):
        raise PluginError(name, METRICS_GROUP, f"{name!r} is a built-in metric; a plug-in cannot replace it")
    if obj.name != name:
        raise PluginError(name, METRICS_GROUP, f"the metric is called {obj.name!r}; its entry point must have that name")
    return obj


def verify_estimator(name: str, obj: object) -> type[Any]:
    """Check that ``obj`` is an estimator class: a class with ``fit`` and ``predict`` (scikit-learn's interface)."""
    if not inspect.isclass(obj):
        raise PluginError(name, ESTIMATORS_GROUP, f"{obj!r} is not a class; register the estimator class itself")
    missing = [m for m in ("fit", "predict", "get_params") if not callable(getattr(obj, m, None))]
    if missing:
        interface = f"{obj.__qualname__} has no {', '.join(missing)} (scikit-learn's estimator interface)"
        raise PluginError(name, ESTIMATORS_GROUP, interface)
    return obj


def verify_recipe(name: str, obj: object) -> str:
    """Check that a recipe entry point names an existing YAML file."""
    if not (isinstance(obj, str | Path) and Path(obj).is_file() and str(obj).endswith((".yaml", ".yml"))):
        raise PluginError(name, RECIPES_GROUP, f"a recipe entry point must name a YAML file; {obj!r} is not one")
    return str(obj)


@cache
def kinds() -> PluginSet:
    """Every installed step kind (entry-point group ``mlflowkit.kinds``)."""
    return PluginSet(KINDS_GROUP, verify_kind)


@cache
def recipes() -> PluginSet:
    """Every installed recipe (entry-point group ``mlflowkit.recipes``): name -> YAML file path."""
    return PluginSet(RECIPES_GROUP, verify_recipe)


@cache
def targets() -> PluginSet:
    """Every installed deploy target (entry-point group ``mlflowkit.targets``): name -> DeployTarget subclass."""
    return PluginSet(TARGETS_GROUP, verify_target)


@cache
def metrics() -> PluginSet:
    """Every installed metric (entry-point group ``mlflowkit.metrics``): name -> :class:`mlflowkit.metrics.Metric`."""
    return PluginSet(METRICS_GROUP, verify_metric)


@cache
def estimators() -> PluginSet:
    """Every installed estimator class beyond scikit-learn's (entry-point group ``mlflowkit.estimators``)."""
    return PluginSet(ESTIMATORS_GROUP, verify_estimator)


GROUPS: dict[str, Callable[[], PluginSet]] = {
    KINDS_GROUP: kinds,
    TARGETS_GROUP: targets,
    RECIPES_GROUP: recipes,
    METRICS_GROUP: metrics,
    ESTIMATORS_GROUP: estimators,
}
"""Every plug-in group, in the order ``mlflowkit plugins list`` shows them."""
