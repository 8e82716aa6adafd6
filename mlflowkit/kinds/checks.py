"""The ``checks`` kind: data checks (Great Expectations) that stop bad data before training.

Entries name any GX core expectation with its own arguments, or use built-in dataset checks
(schema, row count, unique keys, target classes, train/test leakage) that expand to GX
expectations. Validate time checks every entry against ``gx_catalog.json``; GX itself is imported
only when a run has checks to do.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import VALIDATION
from mlflowkit.kinds import _gx_catalog
from mlflowkit.kinds._check_plan import TABLES, Planned, Severity, Table
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Check", "Checks", "ChecksParams", "Planned", "expand", "read_suite"]

# What an entry is: exactly one of these keys says it.
ENTRY_KEYS = ("expect", "suite", "schema", "rows", "unique", "target", "leakage")
# Keys of an entry that are mlflowkit's, not arguments of the expectation.
OWN_KEYS = (*ENTRY_KEYS, "mostly", "severity", "on")
# GX's own severities in a suite file, in mlflowkit's terms.
GX_SEVERITY: dict[str, Severity] = {"critical": "error", "warning": "warn", "info": "warn"}


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchemaCheck(_Block):
    """Required columns, optionally with their pandas dtypes."""

    columns: dict[str, str | None] | list[str] = Field(
        description=(
            "Column -> pandas dtype as `df.dtypes` shows it (`int64`, `float64`, `str`, `bool`, ...; null: any), "
            "or a list of names."
        ),
    )
    exact: bool = Field(False, description="Refuse columns that are not listed.")


class RowsCheck(_Block):
    """Bounds on the number of rows."""

    min: int | None = Field(None, ge=0, description="At least this many rows.")
    max: int | None = Field(None, ge=0, description="At most this many rows.")


class TargetCheck(_Block):
    """The target column is present, has no missing values and only the allowed classes."""

    column: str | None = Field(None, description="The target column; defaults to `data.target`.")
    classes: list[str | int | bool] | None = Field(None, min_length=1, description="The allowed class labels.")


class Check(BaseModel):
    """One entry of `checks:`: a GX expectation by name with its arguments, a suite file, or a built-in check.

    Keys other than the ones below are the expectation's own arguments (`column`, `min_value`, ...);
    they are checked against the Great Expectations catalog when the spec is validated.
    """

    # Extra keys are allowed because a GX expectation's arguments are open-ended here; Checks.check()
    # validates them against gx_catalog.json (names, required, types) at validate time.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    expect: str | None = Field(
        None,
        description="A Great Expectations core expectation, e.g. `column_values_to_be_between` (`expect_` is optional).",
    )
    suite: str | None = Field(None, description="A GX expectation suite JSON file, relative to the spec.")
    schema_: SchemaCheck | None = Field(None, alias="schema", description="Required columns and their dtypes.")
    rows: RowsCheck | None = Field(None, description="Row-count bounds.")
    unique: str | list[str] | None = Field(None, description="Column(s) whose values must be unique (an id).")
    target: TargetCheck | None = Field(None, description="The target column is present, not null, with allowed classes.")
    leakage: str | list[str] | None = Field(None, description="Id column(s) whose values must not appear in both train and test.")
    mostly: float | None = Field(None, ge=0, le=1, description="Pass when at least this fraction of values pass (`expect` only).")
    severity: Severity | None = Field(
        None,
        description="`error` stops the run (the default); `warn` reports and goes on. Unset: a suite file's own severities.",
    )
    on: Literal["raw", "train", "test", "all"] | None = Field(
        None, description="The table checked: `raw` (before the split; the default), `train`, `test`, or `all` three."
    )

    @model_validator(mode="after")
    def _one_entry_key(self) -> Check:
        given = [k for k in ENTRY_KEYS if getattr(self, "schema_" if k == "schema" else k) is not None]
        if len(given) != 1:
            got = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(f"a check has exactly one of {', '.join(ENTRY_KEYS)} ({got})")
        return self

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Written as the YAML has it: unset keys left out, `schema` under its own name (plans, hashes).
        data: dict[str, Any] = handler(self)
        own = type(self).model_fields
        return {("schema" if k == "schema_" else k): v for k, v in data.items() if not (v is None and k in own)}

    @property
    def entry(self) -> str:
        """Which of :data:`ENTRY_KEYS` this entry is."""
        return next(k for k in ENTRY_KEYS if getattr(self, "schema_" if k == "schema" else k) is not None)

    @property
    def arguments(self) -> dict[str, Any]:
        """The expectation's own arguments (the keys that are not mlflowkit's)."""
        return dict(self.model_extra or {})


class ChecksParams(Params):
    """Data checks, run by Great Expectations after the split and before training."""

    expectations: list[Check] = Field(default_factory=list, description="The checks, in the order they are reported.")
    sample: int = Field(5, ge=0, le=100, description="How many unexpected values each failed check shows.")


def read_suite(path: str) -> list[dict[str, Any]]:
    """The expectations of a GX suite JSON file, each as ``{"type", "kwargs", ...}``.

    Raises:
        ValueError: the file is not a suite (with what is wrong); OSError when it cannot be read.
    """
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not JSON: {exc}") from None
    expectations = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(expectations, list):
        raise ValueError("is not a Great Expectations suite (no 'expectations' list)")
    out = []
    for i, item in enumerate(expectations):
        # GX 1.x writes "type"; 0.x suites say "expectation_type".
        kind = item.get("type", item.get("expectation_type")) if isinstance(item, dict) else None
        if not isinstance(kind, str) or not isinstance(item.get("kwargs", {}), dict):
            raise ValueError(f"expectations[{i}] has no 'type' or its 'kwargs' is not a mapping")
        out.append({**item, "type": kind, "kwargs": dict(item.get("kwargs", {}))})
    return out


def _suite_path(spec_dir: str, suite: str) -> str:
    return suite if os.path.isabs(suite) else os.path.join(spec_dir, suite)


def expand(params: ChecksParams, *, target: str, spec_dir: str) -> list[Planned]:
    """Every expectation the entries stand for, per table, in order. Pure: no GX, no data.

    Args:
        params: the validated section.
        target: the dataset's target column (the default of a ``target:`` check).
        spec_dir: the spec's folder (suite files are relative to it).

    Raises:
        ValueError: a suite file cannot be read (validate time reports this with the line).
    """
    planned: list[Planned] = []

    def add(  # noqa: PLR0917 - a local helper called the same way eight times
        source: str,
        entry: str,
        expectation: str,
        kwargs: dict[str, Any],
        tables: tuple[Table, ...],
        severity: Severity,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        for table in tables:
            planned.append(Planned(len(planned), source, entry, expectation, kwargs, table, severity, dict(extra or {})))

    for i, check in enumerate(params.expectations):
        source = f"checks[{i}]"
        tables: tuple[Table, ...] = TABLES if check.on == "all" else (check.on or "raw",)
        severity: Severity = check.severity or "error"
        entry = check.entry
        if check.expect is not None:
            name = _gx_catalog.canonical_name(check.expect) or check.expect
            args = check.arguments
            extra = {k: args.pop(k) for k in _gx_catalog.COMMON if k in args}
            if check.mostly is not None:
                args["mostly"] = check.mostly
            add(source, entry, name, args, tables, severity, extra)
        elif check.suite is not None:
            for j, item in enumerate(read_suite(_suite_path(spec_dir, check.suite))):
                name = _gx_catalog.canonical_name(item["type"]) or item["type"]
                own = GX_SEVERITY.get(str(item.get("severity", "critical")), "error")
                extra = {k: item[k] for k in _gx_catalog.COMMON if item.get(k) is not None}
                add(f"{source} {check.suite}#{j}", entry, name, item["kwargs"], tables, check.severity or own, extra)
        elif check.schema_ is not None:
            columns = check.schema_.columns
            names = list(columns)
            add(
                source,
                entry,
                "expect_table_columns_to_match_set",
                {"column_set": names, "exact_match": check.schema_.exact},
                tables,
                severity,
            )
            for column, dtype in columns.items() if isinstance(columns, dict) else ():
                if dtype is not None:
                    add(source, entry, "expect_column_values_to_be_of_type", {"column": column, "type_": dtype}, tables, severity)
        elif check.rows is not None:
            bounds = {"min_value": check.rows.min, "max_value": check.rows.max}
            add(source, entry, "expect_table_row_count_to_be_between", bounds, tables, severity)
        elif check.unique is not None:
            for column in [check.unique] if isinstance(check.unique, str) else check.unique:
                add(source, entry, "expect_column_values_to_be_unique", {"column": column}, tables, severity)
        elif check.target is not None:
            column = check.target.column or target
            add(source, entry, "expect_column_to_exist", {"column": column}, tables, severity)
            add(source, entry, "expect_column_values_to_not_be_null", {"column": column}, tables, severity)
            if check.target.classes is not None:
                value_set = list(check.target.classes)
                add(
                    source,
                    entry,
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": value_set},
                    tables,
                    severity,
                )
        elif check.leakage is not None:
            # Across two tables: GX has no expectation for it, so mlflowkit evaluates it (see _gx_run).
            by = [check.leakage] if isinstance(check.leakage, str) else list(check.leakage)
            add(source, entry, "leakage", {"by": by}, ("test",), severity)
    return planned


class Checks(StepKind):
    """Check the data with Great Expectations; stop the run before training when an `error` check fails.

    Each entry is one of: `expect:` any GX core expectation (snake_case, `expect_` optional) with its
    own arguments; `suite:` a GX suite JSON file; or a built-in check: `schema:`, `rows:`, `unique:`,
    `target:`, `leakage:`. Every entry takes `severity: error|warn` (default error) and
    `on: raw|train|test|all` (default raw: the table before the split). `leakage:` compares train
    with test. The validation result (GX's JSON) is kept with the run, and a table of results is
    shown in the run output and in Prefect. The checked train and test tables are passed on, so a
    custom step placed `after: checks` works on data that passed.

    Example:

    ```yaml
    checks:
      - schema:
          columns: {customer_id: str, age: int64, monthly_charges: float64, churned: str}
      - rows: {min: 1000}
      - unique: customer_id
      - target: {classes: ["yes", "no"]}
      - leakage: customer_id
      - expect: column_values_to_not_be_null
        column: customer_id
      - expect: column_values_to_be_between
        column: age
        min_value: 18
        max_value: 120
        mostly: 0.99
      - expect: column_mean_to_be_between
        column: monthly_charges
        min_value: 40
        max_value: 100
        severity: warn
        on: all
    ```
    """

    Params = ChecksParams
    summary = "check the data with Great Expectations"
    keeps_columns = True

    @classmethod
    def prefetch(cls) -> None:
        from mlflowkit.kinds._gx_run import import_gx

        import_gx()
    list_field = "expectations"

    @classmethod
    def columns_read(cls, section: Any, spec: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for i, check in enumerate(section.expectations):
            named: list[tuple[tuple[str | int, ...], Any]] = []
            if check.expect is not None:
                args = check.arguments
                named += [((key,), args[key]) for key in ("column", "column_A", "column_B") if key in args]
                named += [((key, j), c) for key in ("column_list", "column_set") for j, c in enumerate(args.get(key) or ())]
            if check.schema_ is not None:
                named += [(("schema", "columns", c), c) for c in check.schema_.columns]
            for key in ("unique", "leakage"):
                value = getattr(check, key)
                named += [((key,), value)] if isinstance(value, str) else [((key, j), c) for j, c in enumerate(value or ())]
            if check.target is not None and check.target.column is not None:
                named.append((("target", "column"), check.target.column))
            for where, column in named:
                if isinstance(column, str):
                    yield (i, *where), column

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        from mlflowkit.plugins import did_you_mean

        for i, check in enumerate(section.expectations):
            entry = check.entry
            if entry != "expect":
                for key in check.arguments:
                    hint = did_you_mean(key, list(OWN_KEYS)) or "only `expect:` entries take expectation arguments"
                    yield (i, key), f"unknown key {key!r} in a {entry!r} check", hint
                if check.mostly is not None:
                    yield (i, "mostly"), f"mostly applies to `expect:` checks, not to a {entry!r} check", ""
            if entry == "expect":
                yield from _check_expectation(i, check)
            elif entry == "suite":
                yield from _check_suite(i, check, spec.spec_dir)
            elif entry == "rows" and check.rows.min is None and check.rows.max is None:
                yield (i, "rows"), "a rows check needs min or max", ""
            elif entry == "rows" and None not in (check.rows.min, check.rows.max) and check.rows.min > check.rows.max:
                yield (i, "rows"), f"rows.min ({check.rows.min}) is above rows.max ({check.rows.max})", ""
            elif entry == "leakage" and check.on is not None:
                yield (i, "on"), "a leakage check always compares train with test; it takes no `on`", ""

    def fingerprint(self, ctx: StepContext, params: ChecksParams) -> str | None:
        # A suite file is read at run time: its content is part of the cache key.
        suites = [c.suite for c in params.expectations if c.suite is not None]
        if not suites:
            return None
        digest = hashlib.sha256()
        for suite in suites:
            path = _suite_path(ctx.spec_dir, suite)
            try:
                with open(path, "rb") as fh:
                    digest.update(hashlib.sha256(fh.read()).digest())
            except OSError as exc:
                raise StepFailed(ctx.step, f"cannot read suite {suite}: {exc}") from None
        return digest.hexdigest()

    def run(self, ctx: StepContext, params: ChecksParams, inputs: Inputs) -> dict[str, Ref]:
        passed_on = {name: inputs[name] for name in ("train", "test") if name in inputs}
        if not params.expectations:
            return passed_on  # nothing to check: import nothing, read nothing
        from mlflowkit.kinds._gx_run import evaluate, failure_message, import_gx, report_rows

        try:
            import_gx()
        except ImportError as exc:
            raise StepFailed(ctx.step, f"data checks need Great Expectations: pip install 'mlflowkit[checks]' ({exc})") from exc
        dataset = inputs["dataset"]
        try:
            planned = expand(params, target=str(dataset.meta.get("target", "")), spec_dir=ctx.spec_dir)
        except (OSError, ValueError) as exc:
            raise StepFailed(ctx.step, f"cannot read a suite file: {exc}") from exc
        refs = {"raw": dataset, **{t: inputs[t] for t in ("train", "test") if t in inputs}}
        outcome = evaluate(ctx.store, refs, planned, sample=params.sample)
        ctx.report("results", outcome.title, rows=report_rows(outcome))
        body = json.dumps(outcome.to_json(), sort_keys=True, indent=1, default=str).encode()
        ref = ctx.store.put_bytes(body, VALIDATION, {"passed": outcome.passed, **outcome.counts()})
        for result in outcome.warned:
            ctx.logger.warning("data check failed (warn): %s", failure_message([result]))
        if outcome.failed:  # the validation result stays in the store; its key is in the message
            raise StepFailed(ctx.step, f"{failure_message(outcome.failed)} (validation result: {ref.key})")
        ctx.logger.info("data checks passed: %s", outcome.title)
        return {"validation": ref, **passed_on}


def _check_expectation(i: int, check: Check) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    assert check.expect is not None
    problems = list(_gx_catalog.check_name(check.expect))
    for _, message, hint in problems:
        yield (i, "expect"), message, hint
    name = _gx_catalog.canonical_name(check.expect)
    if name is None or problems:
        return
    args = check.arguments
    if check.mostly is not None:
        if "mostly" not in _gx_catalog.arguments_of(name):
            yield (i, "mostly"), f"expectation {_gx_catalog.short_name(name)!r} takes no 'mostly'", ""
        args["mostly"] = check.mostly
    for key, message, hint in _gx_catalog.check_arguments(name, args, OWN_KEYS):
        if key == "mostly" and check.mostly is not None:
            continue  # reported above
        yield ((i, key) if key else (i, "expect")), message, hint


def _check_suite(i: int, check: Check, spec_dir: str) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    assert check.suite is not None
    path = _suite_path(spec_dir, check.suite)
    try:
        items = read_suite(path)
    except FileNotFoundError:
        yield (i, "suite"), f"suite file not found: {check.suite} (looked at {path})", ""
        return
    except (OSError, ValueError) as exc:
        yield (i, "suite"), f"suite {check.suite} {exc}", ""
        return
    for j, item in enumerate(items):
        name = _gx_catalog.canonical_name(item["type"])
        where = f"suite {check.suite}: expectations[{j}]"
        problems = list(_gx_catalog.check_name(item["type"]))
        if name is not None and not problems:
            problems = list(_gx_catalog.check_arguments(name, item["kwargs"]))
        for key, message, hint in problems:
            yield (i, "suite"), f"{where}{'.' + key if key else ''}: {message}", hint
