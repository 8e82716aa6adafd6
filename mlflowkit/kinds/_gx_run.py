"""Evaluate planned checks: GX expectations on pandas tables (ephemeral context), leakage by hand.

Imported only when a run has checks, because ``import great_expectations`` costs seconds. An
expectation that raised (a missing column, bad arguments) counts as failed, never as passed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowkit.fmt import number
from mlflowkit.kinds._frames import load_frame

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.kinds._check_plan import Planned
    from mlflowkit.store import ArtifactStore, Ref

__all__ = ["Outcome", "Result", "evaluate", "expected_text", "failure_message", "report_rows", "run_gx"]

_TAG = "mlflowkit_check"  # meta key on each GX expectation: maps GX's results back to the plan


@dataclass
class Result:
    """The verdict on one planned expectation."""

    planned: Planned
    passed: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    element_count: int | None = None
    sample: list[Any] = field(default_factory=list)
    details: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON (what the validation artifact keeps per check)."""
        p = self.planned
        return {
            "check": p.source,
            "entry": p.entry,
            "expectation": p.expectation,
            "kwargs": p.kwargs,
            "table": p.table,
            "severity": p.severity,
            "passed": self.passed,
            "expected": expected_text(p),
            "observed": self.observed,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": self.unexpected_percent,
            "element_count": self.element_count,
            "sample": self.sample,
            "details": self.details,
            "error": self.error,
        }


@dataclass
class Outcome:
    """Every result, and GX's own validation results per table."""

    results: list[Result]
    gx: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[Result]:
        """Failed checks of severity ``error``: they stop the run."""
        return [r for r in self.results if not r.passed and r.planned.severity == "error"]

    @property
    def warned(self) -> list[Result]:
        """Failed checks of severity ``warn``: reported, the run goes on."""
        return [r for r in self.results if not r.passed and r.planned.severity == "warn"]

    @property
    def passed(self) -> bool:
        """No ``error`` check failed."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        """How many checks passed, failed and warned."""
        return {"checks": len(self.results), "failed": len(self.failed), "warned": len(self.warned)}

    @property
    def title(self) -> str:
        """A one-line summary, used as the report's title."""
        n = len(self.results)
        head = "PASS" if self.passed else "FAIL"
        failed, warned = len(self.failed), len(self.warned)
        return f"data checks: {head} ({n - failed - warned}/{n} passed, {failed} failed, {warned} warned)"

    def to_json(self) -> dict[str, Any]:
        """The validation artifact: mlflowkit's verdicts and GX's validation results."""
        return {
            "passed": self.passed,
            **self.counts(),
            "results": [r.to_json() for r in self.results],
            "great_expectations": self.gx,
        }


def import_gx() -> Any:
    """``great_expectations``, imported with its import-time deprecation noise silenced."""
    with warnings.catch_warnings():
        # GX 1.24 imports sre_constants and friends; the warnings are about GX's code, not the user's.
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations

    # GX logs its ephemeral context's housekeeping at INFO (one module pins its logger to INFO at
    # import); the step's own report says what matters.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return great_expectations


def evaluate(store: ArtifactStore, refs: Mapping[str, Ref], planned: Sequence[Planned], *, sample: int = 5) -> Outcome:
    """Read the tables the plan needs and evaluate every planned check on them.

    Args:
        store: where the tables are.
        refs: ``raw``, ``train`` and ``test`` tables by name (those that exist upstream).
        planned: the expanded checks (see :func:`mlflowkit.kinds.checks.expand`).
        sample: how many unexpected values a result keeps.
    """
    needed = {p.table for p in planned} | ({"train", "test"} if any(p.expectation == "leakage" for p in planned) else set())
    frames = {t: load_frame(store, refs[t]) for t in sorted(needed) if t in refs}
    return run_checks(frames, planned, sample=sample)


def run_checks(frames: Mapping[str, pd.DataFrame], planned: Sequence[Planned], *, sample: int = 5) -> Outcome:
    """Evaluate ``planned`` on in-memory tables (``raw``/``train``/``test``): GX for expectations, pandas for leakage."""
    results: dict[int, Result] = {}
    gx_planned = [p for p in planned if p.expectation != "leakage"]
    for p in planned:
        if p.table not in frames:
            results[p.index] = Result(p, False, error=f"no {p.table} table upstream of the checks step")
    gx_results, raw = run_gx(frames, [p for p in gx_planned if p.index not in results], sample=sample)
    results.update(gx_results)
    for p in planned:
        if p.expectation == "leakage" and p.index not in results:
            results[p.index] = _leakage(frames, p, sample)
    # Fail closed: a check GX did not answer for is a failed check.
    ordered = [results.get(p.index) or Result(p, False, error="Great Expectations returned no result for it") for p in planned]
    return Outcome(ordered, raw)


def run_gx(
    frames: Mapping[str, pd.DataFrame], planned: Sequence[Planned], *, sample: int = 5
) -> tuple[dict[int, Result], dict[str, Any]]:
    """Run the planned GX expectations, one suite per table, in an ephemeral context on pandas."""
    if not planned:
        return {}, {}
    gx = import_gx()
    with _without_batch_fingerprint():
        return _run_gx(gx, frames, planned, sample)


@contextmanager
def _without_batch_fingerprint() -> Iterator[None]:
    """Skip GX's per-batch fingerprint while validating.

    GX 1.24 hashes every cell of a pandas batch (``pandas_data_fingerprint``, a batch marker for its
    own bookkeeping) twice per validation: 4.6 s of 4.8 s for one row-count check on 1 M rows with
    pyarrow strings. mlflowkit already fingerprints the data (``load``'s content hash), so the marker
    adds nothing here. GX skips it for frames above ``HASH_THRESHOLD`` bytes; setting that to 0 for
    the duration of a validation skips it always.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def _run_gx(
    gx: Any, frames: Mapping[str, pd.DataFrame], planned: Sequence[Planned], sample: int
) -> tuple[dict[int, Result], dict[str, Any]]:
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # tqdm bars would flood the run output
    source = context.data_sources.add_pandas("mlflowkit")
    results: dict[int, Result] = {}
    raw: dict[str, Any] = {}
    for table in ("raw", "train", "test"):
        items = [p for p in planned if p.table == table]
        if not items:
            continue
        expectations = []
        for p in items:
            try:
                config = ExpectationConfiguration(
                    type=p.expectation,
                    kwargs=dict(p.kwargs),
                    meta={**(p.extra.get("meta") or {}), _TAG: p.index},
                    notes=p.extra.get("notes"),
                    description=p.extra.get("description"),
                    severity="critical" if p.severity == "error" else "warning",  # type: ignore[arg-type]
                )
                expectations.append(config.to_domain_obj())
            except Exception as exc:  # GX's own argument checks (pydantic, its config errors): a failed check
                results[p.index] = Result(p, False, error=f"invalid expectation: {_one_line(exc)}")
        if not expectations:
            continue
        # The suite's constructor keeps every expectation; add_expectation() would merge look-alikes.
        suite = gx.ExpectationSuite(name=f"mlflowkit-{table}", expectations=expectations)
        try:
            asset = source.add_dataframe_asset(table)
            batch = asset.add_batch_definition_whole_dataframe(table).get_batch(batch_parameters={"dataframe": frames[table]})
            validation = batch.validate(suite, result_format={"result_format": "BASIC", "partial_unexpected_count": sample})
        except Exception as exc:  # a table GX cannot read at all: every check on it failed, with the reason
            for p in items:
                results.setdefault(p.index, Result(p, False, error=f"Great Expectations raised: {_one_line(exc)}"))
            continue
        raw[table] = validation.to_json_dict()
        by_index = {p.index: p for p in items}
        for item in raw[table]["results"]:
            index = (item.get("expectation_config") or {}).get("meta", {}).get(_TAG)
            if index in by_index:
                results[index] = _from_gx(by_index[index], item, sample)
    return results, raw


def _from_gx(p: Planned, item: Mapping[str, Any], sample: int) -> Result:
    result = item.get("result") or {}
    error = _raised(item.get("exception_info") or {})
    observed = result.get("observed_value")
    details = result.get("details")
    return Result(
        p,
        passed=bool(item.get("success")) and error is None,
        observed=_plain(observed),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=result.get("unexpected_percent"),
        element_count=result.get("element_count"),
        sample=_plain(list(result.get("partial_unexpected_list") or [])[:sample]),
        details=_plain(details),
        error=error,
    )


def _raised(info: Mapping[str, Any]) -> str | None:
    """The message of an exception GX caught, in either of the shapes GX reports it."""
    if info.get("raised_exception"):
        return _one_line(info.get("exception_message") or "an exception")
    for value in info.values():  # keyed by the metric that raised
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return _one_line(value.get("exception_message") or "an exception")
    return None


def _leakage(frames: Mapping[str, pd.DataFrame], p: Planned, sample: int) -> Result:
    """Rows of test whose id (one or more columns) also appears in train."""
    train, test = frames["train"], frames["test"]
    by = list(p.kwargs["by"])
    for name, frame in (("train", train), ("test", test)):
        missing = [c for c in by if c not in frame.columns]
        if missing:
            return Result(
                p,
                False,
                error=f"column {', '.join(map(repr, missing))} is not in {name} (columns: {', '.join(map(str, frame.columns))})",
            )
    # A merge, not isin: with pandas 3's pyarrow strings, isin against a column walks it in Python (8x slower).
    hits = test[by].merge(train[by].dropna().drop_duplicates(), on=by, how="inner")
    shared = hits.drop_duplicates()
    values = shared[by[0]].tolist() if len(by) == 1 else [list(row) for row in shared.itertuples(index=False)]
    return Result(
        p,
        passed=hits.empty,
        observed=len(shared),
        unexpected_count=len(hits),
        unexpected_percent=100.0 * len(hits) / len(test) if len(test) else 0.0,
        element_count=len(test),
        sample=[_plain(v) for v in values[:sample]],
        details={"shared_ids": len(shared), "train_rows": len(train), "test_rows": len(test)},
    )


def _plain(value: Any) -> Any:
    """A JSON-safe Python value (numpy scalars to Python ones)."""
    if hasattr(value, "item") and not isinstance(value, list | dict):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _one_line(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _show(value: Any, limit: int = 60) -> str:
    """A short rendering: numbers to 6 significant digits, strings as they are, the rest as a repr."""
    value = _plain(value)
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = number(value)
    elif isinstance(value, str | int):
        text = str(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_NOT_EXPECTATIONS = {"column", "mostly", "result_format", "catch_exceptions", "meta", "row_condition", "condition_parser"}


def expected_text(p: Planned) -> str:
    """What the check allows, in words: ``18 to 120 (99% of rows)``, ``one of a, b, c``, ``>= 1000``."""
    kw = {k: v for k, v in p.kwargs.items() if k not in _NOT_EXPECTATIONS and v is not None}
    if p.expectation == "leakage":
        return "no id in both train and test"
    if "min_value" in kw or "max_value" in kw:
        low, high = kw.pop("min_value", None), kw.pop("max_value", None)
        low_op = ">" if kw.pop("strict_min", False) else ">="
        high_op = "<" if kw.pop("strict_max", False) else "<="
        if low is not None and high is not None:
            text = f"{_show(low)} to {_show(high)}"
        else:
            text = f"{low_op} {_show(low)}" if low is not None else f"{high_op} {_show(high)}"
    elif "value_set" in kw:
        values = list(kw.pop("value_set") or [])
        text = "one of " + ", ".join(_show(v) for v in values[:8]) + (f" (+{len(values) - 8})" if len(values) > 8 else "")
    elif "value" in kw:
        text = f"= {_show(kw.pop('value'))}"
    elif "regex" in kw:
        text = f"matches {kw.pop('regex')}"
    elif "type_" in kw:
        text = f"type {kw.pop('type_')}"
    elif "column_list" in kw:
        text = "columns " + ", ".join(map(str, kw.pop("column_list")))
    elif not kw:
        text = {
            "expect_column_values_to_not_be_null": "no missing values",
            "expect_column_values_to_be_unique": "unique values",
        }.get(p.expectation, "-")
    else:
        text = ", ".join(f"{k}={_show(v)}" for k, v in kw.items())
    mostly = p.kwargs.get("mostly")
    return text + (f" ({number(mostly * 100)}% of rows)" if isinstance(mostly, int | float) and mostly < 1 else "")


def observed_text(r: Result) -> str:
    """What was observed, in words: the value, or how many values were unexpected, or what raised."""
    if r.error:
        return f"raised: {r.error}"
    if r.planned.expectation == "leakage":
        return f"{r.observed} id(s) in both train and test ({r.unexpected_count} of {r.element_count} test rows)"
    if r.unexpected_count is not None and r.observed is None:
        pct = f" ({r.unexpected_percent:.2f}%)" if r.unexpected_percent is not None else ""
        return f"{r.unexpected_count} of {r.element_count} values unexpected{pct}"
    text = f"observed {_show(r.observed) or 'nothing'}"
    mismatched = r.details.get("mismatched") if isinstance(r.details, Mapping) else None
    if isinstance(mismatched, Mapping):
        parts = [f"{k} {_show(v)}" for k, v in mismatched.items() if v]
        text += f" ({'; '.join(parts)})" if parts else ""
    return text


def describe(r: Result) -> str:
    """One failed check, for messages: the expectation, its arguments, the table, what was observed."""
    p = r.planned
    args = ", ".join(f"{k}={_show(v, 40)}" for k, v in p.kwargs.items() if v is not None)
    sample = f", e.g. {_show(r.sample)}" if r.sample and not r.error else ""
    return f"{p.name}({args}) on {p.table} [{p.source}]: {observed_text(r)}{sample}"


def failure_message(failed: Sequence[Result]) -> str:
    """The message of a failed checks step: every failed check with what was observed."""
    head = f"{len(failed)} data check{'s' if len(failed) != 1 else ''} failed"
    return head + ": " + "; ".join(describe(r) for r in failed)


def report_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """The summary table: one row per check, every cell a string (Prefect table artifacts need plain values)."""
    rows = []
    for r in outcome.results:
        p = r.planned
        if r.unexpected_count is not None and r.observed is None and not r.error:
            observed = f"{r.unexpected_percent or 0:.2f}% unexpected"
        else:
            observed = observed_text(r) if r.error else _show(r.observed)
        rows.append(
            {
                "expectation": p.name,
                "column": _show(p.column),
                "on": p.table,
                "expected": expected_text(p),
                "observed": observed,
                "unexpected": "" if r.unexpected_count is None else str(r.unexpected_count),
                "sample": _show(r.sample) if r.sample else "",
                "result": "pass" if r.passed else "FAIL" if p.severity == "error" else "warn",
                "severity": p.severity,
                "check": p.source,
            }
        )
    return rows
