"""Which estimator a spec may name: the allow-list (whole dotted components), plug-in estimators, and the class check.

An estimator is a class, never a function or a module: a scikit-learn estimator (a subclass of
``sklearn.base.BaseEstimator`` with ``fit`` and ``predict``) from an allowed package, or a class
registered under the ``mlflowkit.estimators`` entry-point group. Validate answers from the
scikit-learn catalog without importing anything (:mod:`._sklearn_catalog`); a path the catalog does
not hold is resolved by import, component by component, after the allow-list said yes.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass

from mlflowkit.kinds._sklearn_catalog import EstimatorInfo, catalog, catalog_is_current, describe, lookup
from mlflowkit.policy.rules import module_allowed

__all__ = [
    "ALLOWED_MODULES",
    "ALLOWED_MODULES_ENV",
    "EstimatorRefused",
    "allowed_modules",
    "estimator_info",
    "registered_estimator",
    "resolve_estimator",
]

# Packages an estimator may come from unless an operations policy says otherwise.
ALLOWED_MODULES = ("sklearn", "xgboost", "lightgbm")
# More packages or modules, comma-separated; used only when no operations policy lists `modules.estimators`
# (a policy's list replaces both, see mlflowkit.policy).
ALLOWED_MODULES_ENV = "MLFLOWKIT_ALLOWED_MODULES"
# Installed packages that spec authors reach for, and the extra that installs them.
_EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


@dataclass(frozen=True)
class EstimatorRefused(Exception):
    """An estimator path that names no usable estimator: what is wrong, and what to do."""

    message: str
    hint: str = ""

    def __str__(self) -> str:
        return self.message + (f" ({self.hint})" if self.hint else "")


def allowed_modules() -> tuple[str, ...]:
    """:data:`ALLOWED_MODULES` plus the modules in ``MLFLOWKIT_ALLOWED_MODULES`` (``mypkg.models,other``).

    The variable is set by whoever runs mlflowkit, not by a spec, so a spec cannot widen what it may import.
    """
    extra = [p.strip().rstrip(".") for p in os.environ.get(ALLOWED_MODULES_ENV, "").split(",") if p.strip().rstrip(".")]
    return ALLOWED_MODULES + tuple(extra)


def registered_estimator(path: str) -> str | None:
    """The name of the ``mlflowkit.estimators`` plug-in whose class is at ``path`` (read from metadata: no import)."""
    from mlflowkit.plugins import estimators

    for name, value in estimators().values.items():
        module, _, attr = value.partition(":")
        if f"{module}.{attr}" == path:
            return name
    return None


def _package_hint(path: str) -> str:
    extra = _EXTRAS.get(path.split(".", maxsplit=1)[0])
    return f"pip install {extra}" if extra else ""


def resolve_estimator(path: str) -> type:
    """Import the class at ``path`` (the module by its components, then the class in it) and check it is an estimator.

    Call it only for a path the allow-list (or the policy, or a plug-in registration) admits: importing runs
    the module's code.

    Raises:
        EstimatorRefused: the module or the class does not exist, or it is not an estimator class.
    """
    module_name, _, name = path.rpartition(".")
    if any(part.startswith("__") for part in path.split(".")):
        raise EstimatorRefused(f"{path!r} is not an import path of a class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            hint = _package_hint(path) or f"is {missing} installed where mlflowkit runs?"
            raise EstimatorRefused(f"module {module_name!r} is not installed or does not exist", hint) from None
        raise EstimatorRefused(f"cannot import {module_name!r}: {exc}") from None
    except ImportError as exc:
        raise EstimatorRefused(f"cannot import {module_name!r}: {exc}") from None
    obj = getattr(module, name, None)
    if obj is None:
        from mlflowkit.plugins import did_you_mean

        public = [n for n in dir(module) if n[:1].isupper() and inspect.isclass(getattr(module, n, None))]
        raise EstimatorRefused(f"{module_name!r} has no {name!r}", did_you_mean(name, public))
    _check_class(path, obj, plugin=registered_estimator(path) is not None)
    return obj  # type: ignore[no-any-return]


def _check_class(path: str, obj: object, *, plugin: bool) -> None:
    what = "a module" if inspect.ismodule(obj) else "a function" if inspect.isroutine(obj) else f"a {type(obj).__name__}"
    if not inspect.isclass(obj):
        raise EstimatorRefused(f"{path!r} is {what}, not an estimator class", "name a class with fit and predict")
    if not plugin:
        from sklearn.base import BaseEstimator

        if not issubclass(obj, BaseEstimator):
            raise EstimatorRefused(
                f"{path!r} is not a scikit-learn estimator (a subclass of sklearn.base.BaseEstimator)",
                "register other estimator classes under the mlflowkit.estimators entry point",
            )
    missing = [m for m in ("fit", "predict") if not callable(getattr(obj, m, None))]
    if missing or inspect.isabstract(obj):
        why = f"has no {' or '.join(missing)}" if missing else "is abstract"
        message = f"{path!r} {why}: it cannot be trained and asked for predictions"
        raise EstimatorRefused(message, "name an estimator that predicts")


def _from_catalog(path: str) -> EstimatorInfo:
    """The catalog's answer for a ``sklearn`` path: the class, or why the path names no estimator."""
    from mlflowkit.plugins import did_you_mean

    info = lookup(path)
    if info is not None:
        if not info.predicts:
            raise EstimatorRefused(
                f"{path!r} has no predict: it is a transformer or a helper, not a model", "name an estimator that predicts"
            )
        return info
    module, _, name = path.rpartition(".")
    known = catalog()["paths"]
    if path in catalog()["modules"]:
        raise EstimatorRefused(f"{path!r} is a module, not an estimator class", "name a class in it, e.g. sklearn.svm.SVC")
    in_module = sorted({p.rpartition(".")[2] for p in known if p.rpartition(".")[0] == module})
    if in_module:
        hint = did_you_mean(name, in_module) or f"estimators in {module}: {', '.join(in_module[:12])}"
        raise EstimatorRefused(f"{module!r} has no estimator {name!r}", hint)
    version = catalog()["scikit_learn"]
    hint = did_you_mean(path, list(known)) or "e.g. sklearn.ensemble.RandomForestClassifier; all: sklearn.utils.all_estimators()"
    message = f"{path!r} is not an estimator class of scikit-learn {version}: an estimator is a class with fit and predict"
    raise EstimatorRefused(message, hint)


def estimator_info(path: str) -> EstimatorInfo:
    """What ``path`` is and which parameters it takes, for an allowed path.

    A scikit-learn path is answered by the catalog when it matches the installed scikit-learn (no import);
    any other path (another allowed package, a plug-in) is imported and described.

    Raises:
        EstimatorRefused: the path names no estimator class, with a did-you-mean where one is close.
    """
    if module_allowed(path, ["sklearn"]) and catalog_is_current() and registered_estimator(path) is None:
        return _from_catalog(path)
    cls = resolve_estimator(path)
    return EstimatorInfo.from_entry(path, describe(cls))
