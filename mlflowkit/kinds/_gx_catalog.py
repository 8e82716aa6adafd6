"""The catalog of Great Expectations core expectations (``gx_catalog.json``) and the checks made with it.

Validate time reads the catalog instead of importing great_expectations (which costs seconds).
``scripts/gen_gx_catalog.py`` generates the file from the pinned GX; a test keeps it current.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["COMMON", "Problem", "arguments_of", "canonical_name", "catalog", "check_arguments", "check_name", "short_name"]

CATALOG_FILE = Path(__file__).with_name("gx_catalog.json")
# Arguments every expectation takes besides its own (kept apart from kwargs when handed to GX).
COMMON = ("description", "notes", "meta")

# (key under the checked mapping, or "" for the mapping itself; message; hint)
Problem = tuple[str, str, str]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


@cache
def catalog() -> dict[str, Any]:
    """The parsed catalog file."""
    data: dict[str, Any] = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return data


def short_name(name: str) -> str:
    """``expect_column_values_to_be_between`` -> ``column_values_to_be_between``."""
    return name.removeprefix("expect_")


def canonical_name(name: str) -> str | None:
    """The catalog's name for ``name`` (the ``expect_`` prefix is optional), or None when unknown."""
    known = catalog()["expectations"]
    for candidate in (name, "expect_" + name):
        if candidate in known:
            return candidate
    return None


def arguments_of(name: str) -> dict[str, dict[str, Any]]:
    """The arguments an expectation takes (its own and the common ones), by name."""
    return {**catalog()["expectations"][name]["args"], **catalog()["common"]}


def check_name(name: str) -> Iterator[Problem]:
    """An unknown expectation, or one that cannot run on a pandas table, with a did-you-mean."""
    from mlflowkit.plugins import did_you_mean

    found = canonical_name(name)
    if found is None:
        shorts = [short_name(n) for n in catalog()["expectations"]]
        hint = did_you_mean(short_name(name), shorts) or "see https://greatexpectations.io/expectations (core expectations)"
        yield "", f"unknown expectation {name!r} (Great Expectations {catalog()['great_expectations']})", hint
    elif not catalog()["expectations"][found]["pandas"]:
        yield "", f"expectation {short_name(found)!r} needs a SQL data source; checks run on pandas tables", ""


def check_arguments(name: str, args: Mapping[str, Any], extra_keys: tuple[str, ...] = ()) -> Iterator[Problem]:
    """Missing required arguments, unknown arguments (with a did-you-mean) and values of the wrong type.

    Args:
        name: a catalog name (see :func:`canonical_name`).
        args: the arguments as written.
        extra_keys: keys the caller accepts besides GX's arguments (offered in did-you-mean hints).
    """
    from mlflowkit.plugins import did_you_mean

    known = arguments_of(name)
    short = short_name(name)
    for arg, spec in known.items():
        if spec["required"] and arg not in args:
            yield "", f"expectation {short!r} needs argument {arg!r}", f"arguments: {_listing(known)}"
    for arg, value in args.items():
        described = known.get(arg)
        if described is None:
            hint = did_you_mean(arg, [*known, *extra_keys]) or f"arguments: {_listing(known)}"
            yield arg, f"expectation {short!r} has no argument {arg!r}", hint
            continue
        problem = _type_problem(value, described)
        if problem:
            yield arg, f"argument {arg!r} of {short!r} {problem}", ""


def _listing(known: Mapping[str, Mapping[str, Any]]) -> str:
    required = [a for a, s in known.items() if s["required"]]
    optional = [a for a, s in known.items() if not s["required"]]
    return ", ".join([*required, *(f"[{a}]" for a in optional)])


def _type_problem(value: Any, spec: Mapping[str, Any]) -> str:
    """What is wrong with ``value`` for an argument described by ``spec``, or ``""``."""
    if "enum" in spec and value is not None:
        if value not in spec["enum"]:
            return f"must be one of {', '.join(map(repr, spec['enum']))} (got {value!r})"
        return ""
    types = spec["types"]
    if "any" in types:
        return ""
    for name in types:
        wanted = _JSON_TYPES[name]
        # YAML's true/false are bools, and bool is an int in Python: not a number for GX's purposes.
        if isinstance(value, wanted) and not (isinstance(value, bool) and name in {"integer", "number"}):
            return ""
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"must be {' or '.join(_WORDS[t] for t in types)} (got {shown})"


_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
