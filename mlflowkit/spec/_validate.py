"""Turn pydantic validation errors into SpecIssues: located, de-duplicated, with a did-you-mean."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from mlflowkit.errors import SpecIssue

__all__ = ["IssueFactory", "issues_from_validation", "model_at"]

# (path, message, hint, prefer_key) -> SpecIssue; LoadedYaml.issue and the spec's Sources fit it.
IssueFactory = Callable[..., SpecIssue]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic model classes reachable from a field annotation (through Optional, list, dict ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found.extend(_models_in(arg))
    return found


def model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` under ``model``, if one does."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue  # a list index: the item type was already unwrapped below
        field = current.model_fields.get(part)
        if field is None:
            return None
        candidates = _models_in(field.annotation)
        current = candidates[0] if candidates else None
    return current


def _data_path(data: Any, loc: Sequence[str | int], error_type: str) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic ``loc`` that exist in the input; drop union-member tags."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif last and error_type in {"missing", "extra_forbidden"}:
            path.append(part)
        # anything else is a tag pydantic adds for a union member or a validator: not a place in the YAML
    return tuple(path)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shape(value: Any) -> str:
    """How a value reads in YAML terms: a repr for a scalar, ``a list`` or ``a mapping`` for a collection."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return _show(value)


# Kinds write their did-you-mean into the error text ("unknown metric 'x'; did you mean 'y'? (...)");
# in an issue it belongs in the hint, shown on its own line like every other did-you-mean.
_DID_YOU_MEAN = re.compile(r";\s*(did you mean '[^']*'\?)")


def _description(model: type[BaseModel], path: tuple[str | int, ...]) -> str:
    """The description of the field at ``path`` (a data path), or ""."""
    if not path or not isinstance(path[-1], str):
        return ""
    owner = model_at(model, path[:-1])
    field = owner.model_fields.get(path[-1]) if owner is not None else None
    return (field.description or "") if field is not None else ""


def issues_from_validation(
    exc: ValidationError,
    make_issue: IssueFactory,
    model: type[BaseModel],
    *,
    data: Any = None,
    loc_to_path: Callable[[tuple[str | int, ...]], tuple[str | int, ...]] | None = None,
) -> list[SpecIssue]:
    """One SpecIssue per place in the YAML, with the expected shape, the value seen and a hint.

    Args:
        exc: the pydantic error.
        make_issue: builds a located issue from a path.
        model: the model that was validated (for did-you-mean over field names).
        data: the validated input, used to drop pydantic's union tags from error locations.
        loc_to_path: maps a model location to a YAML path where the two differ.
    """
    from mlflowkit.plugins import did_you_mean

    merged: dict[tuple[str | int, ...], tuple[list[str], str, bool]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        etype = err["type"]
        path = _data_path(data, loc, etype) if data is not None else loc
        yaml_path = loc_to_path(path) if loc_to_path else path
        hint, prefer_key = "", False
        if etype == "extra_forbidden":
            key = str(loc[-1])
            fields = model_at(model, path[:-1])
            allowed = sorted(fields.model_fields) if fields else []
            message = f"unknown key {key!r}"
            hint = did_you_mean(key, allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else "")
            prefer_key = True
        elif etype == "missing":
            message = f"missing required key {str(loc[-1])!r}"
        else:
            message = err["msg"]
            value = err.get("input")
            if etype.startswith(("value_error", "assertion_error")):
                message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
                if found := _DID_YOU_MEAN.search(message):
                    hint = found.group(1)
                    message = message[: found.start()] + message[found.end() :]
            else:
                if etype in {"model_type", "model_attributes_type", "dict_type"}:
                    # pydantic names its internal class ("... or instance of SplitSection"); YAML has mappings.
                    message = "Input should be a mapping"
                if etype.endswith("_type") or not isinstance(value, dict | list):
                    message += f" (got {_shape(value)})"
            if etype == "string_pattern_mismatch":
                # A regular expression alone is hard to act on; the field's description says what is meant.
                hint = _description(model, path)
        messages, old_hint, old_prefer = merged.get(yaml_path, ([], "", False))
        if message not in messages:
            messages.append(message)
        merged[yaml_path] = (messages, old_hint or hint, old_prefer or prefer_key)
    issues = []
    for yaml_path, (messages, hint, prefer_key) in merged.items():
        # A field that takes a string or a mapping (a gate rule): the string's own problem is the one to tell.
        said = [m for m in messages if not m.startswith("Input should be a mapping (got '")] or messages
        issues.append(make_issue(yaml_path, "; or ".join(said), hint=hint, prefer_key=prefer_key))
    return issues
