"""Generate mlflowkit/kinds/gx_catalog.json: every Great Expectations core expectation and its arguments.

``mlflowkit validate`` checks ``checks:`` entries against this catalog, so it never imports
great_expectations (about 3 s). Regenerate it after changing the pinned GX version:

    python scripts/gen_gx_catalog.py            # writes the catalog
    python scripts/gen_gx_catalog.py --check    # exits 1 when the checked-in catalog is stale

tests/unit/kinds/test_checks_catalog.py regenerates it in memory and compares, so it cannot go stale.
"""

from __future__ import annotations

import argparse
import datetime
import enum
import json
import sys
import types
import typing
import warnings
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).resolve().parent.parent / "mlflowkit" / "kinds" / "gx_catalog.json"

# Fields every Expectation has that are GX's plumbing, not arguments a spec should set. `severity` is
# excluded because mlflowkit's own `severity: error|warn` decides it; `description`, `notes` and `meta`
# stay (as "common" arguments) because they are useful in reports.
PLUMBING = {"id", "result_format", "catch_exceptions", "rendered_content", "severity", "windows", "batch_id", "library_metadata"}
COMMON = ("description", "notes", "meta")

# Expectations whose metrics exist for pandas but that need a second table or a SQL query: they
# cannot run on the one pandas DataFrame a checks step validates.
NOT_ON_PANDAS = {"expect_table_row_count_to_equal_other_table"}


def _json_types(annotation: Any, *, top: bool = True) -> tuple[set[str], list[Any] | None]:  # noqa: PLR0911 - one per type
    """The JSON types a YAML value may take for ``annotation``, and the allowed values of a Literal or Enum."""
    from pydantic.v1 import BaseModel as V1Model

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _json_types(args[0], top=top)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        members = [a for a in args if a is not type(None)]
        # Union[X, dict] is GX's "X or a suite parameter ({"$PARAMETER": ...})"; mlflowkit has
        # ${params.*} for that, so the dict is not offered unless it is the only choice.
        if len(members) > 1:
            members = [m for m in members if m is not dict]
        found: set[str] = {"null"} if len(members) < len(args) else set()
        enum_values: list[Any] | None = None
        for member in members:
            member_types, member_enum = _json_types(member, top=False)
            found |= member_types
            if member_enum is not None:
                enum_values = [*(enum_values or []), *member_enum]
        return found, enum_values
    if origin is typing.Literal:
        return {_scalar_type(v) for v in args}, list(args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [m.value for m in annotation]
        return {_scalar_type(v) for v in values}, values
    if annotation is typing.Any:
        return {"any"}, None
    if (
        origin in (list, set, tuple, frozenset)
        or (origin is not None
        and str(origin).startswith("<class 'collections.abc.Sequence"))
    ):
        return {"array"}, None
    if origin in (dict,) or annotation is typing.Mapping:
        return {"object"}, None
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            return {"boolean"}, None
        if issubclass(annotation, int):
            return {"integer"}, None
        if issubclass(annotation, float):
            return {"number"}, None
        if issubclass(annotation, str):
            return {"string"}, None
        if issubclass(annotation, datetime.date):
            return {"string"}, None  # ISO dates; YAML 1.2 reads them as strings
        if issubclass(annotation, list | tuple | set | frozenset):
            return {"array"}, None
        if issubclass(annotation, dict) or issubclass(annotation, V1Model):
            return {"object"}, None
    if annotation in (typing.List, typing.Sequence, typing.Tuple, typing.Set):  # noqa: UP006 - bare typing aliases GX uses
        return {"array"}, None
    return {"any"}, None


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _argument(field: Any) -> dict[str, Any]:
    found, enum_values = _json_types(field.annotation)
    if "any" in found:
        found = {"any"}
    out: dict[str, Any] = {"required": bool(field.required), "types": sorted(found)}
    if enum_values is not None:
        out["enum"] = list(dict.fromkeys(enum_values))
    constraints = {k: getattr(field.type_, k, None) for k in ("ge", "le", "gt", "lt")}
    out.update({k: v for k, v in constraints.items() if v is not None})
    return out


def _runs_on_pandas(cls: Any, name: str) -> bool:
    """Whether every metric the expectation needs has a pandas implementation."""
    from great_expectations.expectations.registry import _registered_metrics

    if name in NOT_ON_PANDAS:
        return False
    metrics = list(getattr(cls, "metric_dependencies", ()) or ())
    if getattr(cls, "map_metric", None):
        metrics.append(f"{cls.map_metric}.condition")
    return all("PandasExecutionEngine" in _registered_metrics.get(m, {}).get("providers", {}) for m in metrics)


def build() -> dict[str, Any]:
    """The catalog, from the installed great_expectations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GX's own import-time deprecation noise
        import great_expectations
        import great_expectations.expectations as gxe
        from great_expectations.expectations.expectation import Expectation

    expectations: dict[str, Any] = {}
    common: dict[str, Any] = {}
    for attr in sorted(dir(gxe)):
        cls = getattr(gxe, attr)
        if not (isinstance(cls, type) and issubclass(cls, Expectation)):
            continue
        name = getattr(cls, "expectation_type", "")
        if not name or not cls.__module__.startswith("great_expectations.expectations.core."):
            continue  # abstract bases (ColumnMapExpectation, ...) have no expectation type
        fields = cls.__fields__
        for key in COMMON:
            common.setdefault(key, _argument(fields[key]))
        args = {key: _argument(f) for key, f in fields.items() if key not in PLUMBING and key not in COMMON}
        expectations[name] = {"args": dict(sorted(args.items())), "pandas": _runs_on_pandas(cls, name)}
    return {
        "about": "Great Expectations core expectations and their arguments; generated by scripts/gen_gx_catalog.py.",
        "great_expectations": great_expectations.__version__,
        "common": common,
        "expectations": dict(sorted(expectations.items())),
    }


def render(catalog: dict[str, Any]) -> str:
    """The catalog as the checked-in file has it."""
    return json.dumps(catalog, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the checked-in catalog instead of writing it")
    parser.add_argument("-o", "--output", type=Path, default=CATALOG, help=f"where to write (default {CATALOG})")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if args.output.read_text(encoding="utf-8") != text:
            print(f"{args.output} is stale: run python scripts/gen_gx_catalog.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(json.loads(text)['expectations'])} expectations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
