"""The catalog of scikit-learn estimators (``sklearn_catalog.json``): what each class is and which parameters it takes.

Validate time reads the catalog instead of importing scikit-learn (about a second), so that a spec's
estimator, its arguments and their types are checked before anything runs. :func:`describe` makes an
entry from a class; ``scripts/gen_sklearn_catalog.py`` runs it over the pinned scikit-learn, and the
train kind runs it on demand for a class the catalog does not hold (another allowed package, a
plug-in, or a scikit-learn other than the one the catalog was made from).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CATALOG_FILE",
    "EstimatorInfo",
    "accepts",
    "catalog",
    "catalog_is_current",
    "describe",
    "lookup",
    "param_problems",
    "value_hint",
    "value_problem",
]

CATALOG_FILE = Path(__file__).with_name("sklearn_catalog.json")


@dataclass(frozen=True)
class EstimatorInfo:
    """What validate knows about an estimator class without importing it.

    Attributes:
        path: the dotted path the catalog names it by (the public one, for scikit-learn).
        name: the class name.
        task: ``classifier``, ``regressor`` or ``other``.
        predicts: the class has ``fit`` and ``predict``.
        params: parameter name -> the values it accepts (a list of constraints, see :func:`accepts`),
            or None when that is not known.
        required: parameters without a default.
        defaults: the defaults that are plain YAML values (for hints).
        onnx: skl2onnx can convert it (None: not known).
    """

    path: str
    name: str
    task: str
    predicts: bool
    params: Mapping[str, list[dict[str, Any]] | None]
    required: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    onnx: bool | None = None

    @classmethod
    def from_entry(cls, path: str, entry: Mapping[str, Any]) -> EstimatorInfo:
        """An info from a catalog entry (as :func:`describe` makes it)."""
        return cls(
            path=path,
            name=str(entry["name"]),
            task=str(entry["task"]),
            predicts=bool(entry["predicts"]),
            params=dict(entry["params"]),
            required=tuple(entry.get("required", ())),
            defaults=dict(entry.get("defaults", {})),
            onnx=entry.get("onnx"),
        )


@cache
def catalog() -> dict[str, Any]:
    """The parsed catalog file."""
    data: dict[str, Any] = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return data


@cache
def catalog_is_current() -> bool:
    """Whether the installed scikit-learn is the one the catalog was made from (read from metadata: no import)."""
    from importlib import metadata

    try:
        return bool(metadata.version("scikit-learn") == catalog()["scikit_learn"])
    except metadata.PackageNotFoundError:
        return False


def lookup(path: str) -> EstimatorInfo | None:
    """The catalog's entry for the class at ``path`` (public or defining module), or None."""
    key = catalog()["paths"].get(path)
    if key is None:
        return None
    return EstimatorInfo.from_entry(catalog()["estimators"][key]["path"], catalog()["estimators"][key])


# ---------------------------------------------------------------------------------------------- describe


def describe(cls: type) -> dict[str, Any]:
    """A catalog entry for an estimator class: its task, whether it predicts, its parameters and their constraints.

    Imports scikit-learn (for its constraint classes); call it at generation time or when the
    catalog does not know the class.
    """
    from sklearn.base import ClassifierMixin, RegressorMixin

    signature = _init_signature(cls)
    names = [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    ]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    constraints = getattr(cls, "_parameter_constraints", None)
    params: dict[str, list[dict[str, Any]] | None] = {}
    for name in names:
        found = constraints.get(name) if isinstance(constraints, dict) else None
        params[name] = _constraints(found) if isinstance(found, list) else None
    if open_ended:
        params["**"] = None  # takes any keyword (xgboost's **kwargs): names cannot be checked
    required = [
        p.name for p in signature.parameters.values() if p.name in names and p.default is inspect.Parameter.empty
    ]
    task = "classifier" if issubclass(cls, ClassifierMixin) else "regressor" if issubclass(cls, RegressorMixin) else "other"
    defaults = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.name in names and p.default is not inspect.Parameter.empty and _plain(p.default)
    }
    return {
        "name": cls.__name__,
        "path": f"{cls.__module__}.{cls.__qualname__}",
        "task": task,
        "predicts": callable(getattr(cls, "fit", None)) and callable(getattr(cls, "predict", None)),
        "params": params,
        "required": required,
        "defaults": defaults,
        "onnx": _onnx_convertible(cls),
    }


def _plain(value: Any) -> bool:
    """A value YAML writes as it is (and JSON stores): None, a bool, a finite number, a string."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, bool | int | str)


def _init_signature(cls: type) -> inspect.Signature:
    init = cls.__init__  # type: ignore[misc]
    try:
        return inspect.signature(getattr(init, "deprecated_original", init))
    except (TypeError, ValueError):
        return inspect.Signature()


def _onnx_convertible(cls: type) -> bool | None:
    try:
        from skl2onnx._supported_operators import sklearn_operator_name_map
    except ImportError:
        return None
    return cls in sklearn_operator_name_map


def _bound(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return None
    return float(value) if isinstance(value, float) else int(value)


def _constraints(found: list[Any]) -> list[dict[str, Any]] | None:
    """The JSON form of a parameter's scikit-learn constraints; None when any of them cannot be checked statically."""
    out = [_constraint(c) for c in found]
    return None if any(c["t"] == "any" for c in out) else out


def _constraint(c: Any) -> dict[str, Any]:  # noqa: PLR0911 - one return per constraint type
    from numbers import Integral, Real

    from sklearn.utils._param_validation import HasMethods, Hidden, Interval, MissingValues, Options, RealNotInt, StrOptions

    if isinstance(c, Hidden):  # still accepted; only hidden from scikit-learn's messages
        return _constraint(c.constraint)
    if c is None:
        return {"t": "none"}
    if isinstance(c, str):
        named = {
            "boolean": "bool",
            "random_state": "random_state",
            "verbose": "verbose",
            "array-like": "list",
            "cv_object": "cv",
            "nan": "nan",
            "missing_values": "missing",
        }
        if c in named:
            return {"t": named[c]}
        if c == "sparse matrix":
            return {"t": "object", "what": "a sparse matrix"}
        return {"t": "any"}
    if isinstance(c, Interval):
        kind = "float" if c.type is RealNotInt else "int" if c.type is Integral else "real"
        return {"t": kind, "low": _bound(c.left), "high": _bound(c.right), "closed": c.closed}
    if isinstance(c, StrOptions):
        return {"t": "str", "options": sorted(c.options)}
    if isinstance(c, Options):
        values = [v.item() if hasattr(v, "item") and not isinstance(v, type) else v for v in c.options]
        if not all(isinstance(v, str | int | float | bool) for v in values):  # numpy dtypes and the like
            return {"t": "object", "what": "one of " + ", ".join(sorted(getattr(v, "__name__", str(v)) for v in values))}
        values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
        return {"t": "options", "options": sorted(values, key=repr)}
    if isinstance(c, MissingValues):
        return {"t": "missing"}
    if isinstance(c, HasMethods):
        return {"t": "object", "what": f"an object with {', '.join(c.methods)}"}
    if c is callable:
        return {"t": "object", "what": "a callable"}
    if isinstance(c, type):
        if issubclass(c, bool):
            return {"t": "bool"}
        if c is Integral or issubclass(c, int):
            return {"t": "int"}
        if c is float:
            return {"t": "float"}
        if c is Real:
            return {"t": "real"}
        if issubclass(c, str):
            return {"t": "str"}
        if issubclass(c, dict) or c.__name__ in {"Mapping", "MutableMapping"}:
            return {"t": "dict"}
        if issubclass(c, list | tuple):
            return {"t": "list"}
        return {"t": "object", "what": f"a {c.__name__}"}
    return {"t": "any"}


# ---------------------------------------------------------------------------------------------- checks


def _in_range(value: float, c: Mapping[str, Any]) -> bool:
    low, high, closed = c.get("low"), c.get("high"), c.get("closed", "both")
    if math.isnan(value):
        return False
    if low is not None and (value < low or (value == low and closed in {"right", "neither"})):
        return False
    return not (high is not None and (value > high or (value == high and closed in {"left", "neither"})))


def accepts(c: Mapping[str, Any], value: Any) -> bool:  # noqa: PLR0911 - one return per constraint type
    """Whether a YAML value satisfies one constraint (a catalog entry's form)."""
    t = str(c["t"])
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if t == "none":
        return value is None
    if t == "bool":
        return isinstance(value, bool)
    if t in {"int", "real", "float"}:
        ok = {"int": isinstance(value, int), "real": True, "float": isinstance(value, float)}[t]
        return number and ok and _in_range(float(value), c)
    if t == "str":
        return isinstance(value, str) and ("options" not in c or value in list(c["options"]))
    if t == "options":
        options: list[Any] = list(c["options"])
        return any(value == option and type(value) is type(option) for option in options)
    if t == "random_state":
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**32 - 1)
    if t == "verbose":
        return isinstance(value, int)
    if t == "list":
        return isinstance(value, list)
    if t == "dict":
        return isinstance(value, dict)
    if t == "cv":
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 2) or isinstance(value, list)
    if t == "nan":
        return isinstance(value, float) and math.isnan(value)
    if t == "missing":
        return value is None or number or isinstance(value, str)
    return t != "object"


def _interval(c: Mapping[str, Any]) -> str:
    low, high, closed = c.get("low"), c.get("high"), c.get("closed", "both")
    if low is None and high is None:
        return ""
    left = "[" if closed in {"left", "both"} and low is not None else "("
    right = "]" if closed in {"right", "both"} and high is not None else ")"
    return f" in the range {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def _words(c: Mapping[str, Any]) -> str:
    t = c["t"]
    if t in {"int", "real", "float"}:
        return {"int": "an int", "real": "a number", "float": "a float"}[t] + _interval(c)
    if t == "str" and "options" in c:
        return f"one of {', '.join(map(repr, c['options']))}"
    if t == "options":
        return f"one of {', '.join(map(repr, c['options']))}"
    fixed = {
        "none": "null",
        "bool": "true or false",
        "str": "a string",
        "random_state": "an int in [0, 2**32 - 1] or null",
        "verbose": "an int or a bool",
        "list": "a list",
        "dict": "a mapping",
        "cv": "an int >= 2 or null",
        "nan": ".nan",
        "missing": "a number, a string or null",
    }
    return fixed.get(t) or str(c.get("what", "a Python object"))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def value_problem(info: EstimatorInfo, name: str, value: Any) -> str:
    """What is wrong with ``value`` for ``info``'s parameter ``name`` (``""`` when nothing is, or it cannot be told)."""
    constraints = info.params.get(name)
    if not constraints or any(accepts(c, value) for c in constraints):
        return ""
    wanted = [_words(c) for c in constraints if c["t"] != "object"]
    objects = [_words(c) for c in constraints if c["t"] == "object"]
    unsaid = f"; {' or '.join(dict.fromkeys(objects))} is a Python object, which a spec cannot give" if objects else ""
    if not wanted:
        return f"{info.name}'s {name} takes {' or '.join(dict.fromkeys(objects))}, which a spec cannot give (got {_shown(value)})"
    return f"{info.name}'s {name} must be {' or '.join(dict.fromkeys(wanted))} (got {_shown(value)}){unsaid}"


def param_problems(info: EstimatorInfo, params: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Unknown parameters (with a did-you-mean), values of the wrong type or range: ``(param, message, hint)``."""
    from mlflowkit.plugins import did_you_mean

    known = [n for n in info.params if n != "**"]
    for name, value in params.items():
        if name not in info.params and "**" not in info.params:
            hint = did_you_mean(name, known) or f"{info.name} takes: {', '.join(known)}"
            yield name, f"{info.name} has no parameter {name!r}", hint
            continue
        problem = value_problem(info, name, value)
        if problem:
            yield name, problem, value_hint(info, name, value)


def value_hint(info: EstimatorInfo, name: str, value: Any) -> str:
    """What to write instead of a refused value: the number unquoted, a close option, or the default."""
    return _text_hint(info, name, value) or _option_hint(info, name, value) or _default_hint(info, name)


def _option_hint(info: EstimatorInfo, name: str, value: Any) -> str:
    from mlflowkit.plugins import did_you_mean

    if not isinstance(value, str):
        return ""
    options = [o for c in info.params.get(name) or () if c["t"] in {"str", "options"} for o in c.get("options", ())]
    return did_you_mean(value, [str(o) for o in options])


def _default_hint(info: EstimatorInfo, name: str) -> str:
    if name not in info.defaults:
        return ""
    default = info.defaults[name]
    shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else repr(default)
    return f"its default is {shown}: leave {name} out to use it"


def _text_hint(info: EstimatorInfo, name: str, value: Any) -> str:
    """A hint for a number written as text (quoted, or from ${env:...}, whose values are always text)."""
    if not isinstance(value, str):
        return ""
    for parse in (int, float):
        try:
            number = parse(value)
        except ValueError:
            continue
        if not value_problem(info, name, number):
            return f"{value!r} is text: write the number unquoted (a ${{env:...}} value is always text)"
    return ""
