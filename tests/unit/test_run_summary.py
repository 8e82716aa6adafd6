"""Runs as the comparison reads them: values by name, filters, sorting, and the side-by-side rows."""

from __future__ import annotations

import dataclasses

import pytest

from mlflowkit.handoff import DataFingerprint, RuleResult, RunRecord, Verdict
from mlflowkit.run_summary import RunFilter, RunSummary, compare, sort_key, value_of


def _run(run_id: str, *, roc: float | None, n: int, verdict: bool | None = True, status: str = "completed") -> RunSummary:
    record = RunRecord(
        run_id=run_id,
        spec_name="churn",
        spec_path="spec.yaml",
        spec_hash="ab" * 32,
        model="churn",
        params={"n_estimators": n},
        status=status,  # type: ignore[arg-type]
        started_at=f"2026-01-01T00:00:0{run_id[-1]}",
        verdict=None
        if verdict is None
        else Verdict(passed=verdict, rules=(RuleResult(rule="roc_auc >= 0.8", passed=verdict, value=roc, threshold=0.8),)),
    )
    return RunSummary(
        record=record,
        metrics={} if roc is None else {"roc_auc": roc},
        intervals={} if roc is None else {"roc_auc": (roc - 0.02, roc + 0.02)},
        estimator="sklearn.ensemble.RandomForestClassifier",
        estimator_params={"max_depth": 8, "n_estimators": n},
        fingerprint=DataFingerprint(rows=100, schema_hash="s" * 64, content_hash="c" * 64, source="t.csv"),
    )


RUNS = [_run("r1", roc=0.81, n=100), _run("r2", roc=0.79, n=300, verdict=False), _run("r3", roc=None, n=50, verdict=None, status="failed")]


def test_values_by_name_columns_then_metrics_then_params() -> None:
    assert value_of(RUNS[0], "status") == "completed"
    assert value_of(RUNS[0], "roc_auc") == 0.81
    assert value_of(RUNS[0], "n_estimators") == 100  # the spec's param
    assert value_of(RUNS[0], "max_depth") == 8 and value_of(RUNS[0], "estimator.max_depth") == 8  # the estimator's
    assert value_of(RUNS[2], "roc_auc") is None and value_of(RUNS[0], "nothing") is None


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("roc_auc>=0.8", ["r1"]),
        ("roc_auc < 0.8", ["r2"]),  # a run without the metric is not kept by a filter on it
        ("status=completed", ["r1", "r2"]),
        ("status!=completed", ["r3"]),
        ("verdict=fail", ["r2"]),
        ("n_estimators==300", ["r2"]),
        ("n_estimators>60", ["r1", "r2"]),
        ("n_estimators=abc", []),  # a number compared with text matches nothing
    ],
)
def test_filters(text: str, kept: list[str]) -> None:
    keep = RunFilter.parse(text)
    assert [r.run_id for r in RUNS if keep(r)] == kept


@pytest.mark.parametrize("text", ["roc_auc", "roc_auc ~ 1", ">= 3", ""])
def test_a_malformed_filter_says_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="NAME OP VALUE"):
        RunFilter.parse(text)


def test_sorting_puts_runs_without_the_value_last() -> None:
    assert [r.run_id for r in sorted(RUNS, key=sort_key("roc_auc"))] == ["r2", "r1", "r3"]
    assert [r.run_id for r in sorted(RUNS, key=sort_key("n_estimators"), reverse=True)] == ["r2", "r1", "r3"]


def test_side_by_side_marks_what_differs() -> None:
    rows = {(r.section, r.name): r for r in compare(RUNS[:2])}
    assert rows[("params", "n_estimators")].values == ("100", "300") and rows[("params", "n_estimators")].differs
    assert not rows[("params", "estimator.max_depth")].differs
    assert rows[("metrics", "roc_auc")].values == ("0.81 [0.79, 0.83]", "0.79 [0.77, 0.81]")
    assert rows[("gates", "verdict")].values == ("pass", "fail")
    assert rows[("gates", "roc_auc >= 0.8")].values == ("pass (0.81 vs 0.8)", "FAIL (0.79 vs 0.8)")
    assert not rows[("data", "content sha256")].differs and rows[("data", "rows")].values == ("100", "100")
    assert {s for s, _ in rows} == {"run", "params", "metrics", "gates", "data", "lineage"}


def _with_rule(run: RunSummary, rule: RuleResult) -> RunSummary:
    verdict = run.record.verdict
    assert verdict is not None
    record = run.record.model_copy(update={"verdict": verdict.model_copy(update={"rules": (*verdict.rules, rule)})})
    return dataclasses.replace(run, record=record)


def test_a_rule_that_compared_nothing_says_why() -> None:
    note = "no champion yet; on_missing_baseline=pass"
    rule = RuleResult(rule="roc_auc >= champion.roc_auc - 0.02", passed=True, note=note)
    first = _with_rule(_run("r1", roc=0.81, n=100), rule)
    second = _with_rule(_run("r2", roc=0.79, n=300), rule.model_copy(update={"value": 0.79, "threshold": 0.79, "note": ""}))
    rows = {(r.section, r.name): r for r in compare([first, second])}
    assert rows[("gates", "roc_auc >= champion.roc_auc - 0.02")].values == (f"pass ({note})", "pass (0.79 vs 0.79)")


def _ended(**update: object) -> RunRecord:
    fields: dict[str, object] = {"run_id": "r", "spec_name": "churn", "spec_path": "spec.yaml", "spec_hash": "ab" * 32}
    return RunRecord.model_validate({**fields, "model": "churn", "started_at": "t", "status": "completed", **update})


def test_a_runs_outcome_says_what_it_registered_or_why_nothing() -> None:
    from mlflowkit.handoff import RegisteredVersion, StepRecord
    from mlflowkit.run_summary import outcome

    passed = Verdict(passed=True, rules=(RuleResult(rule="roc_auc >= 0.8", passed=True, value=0.9, threshold=0.8),))
    failed = Verdict(
        passed=False,
        rules=(
            RuleResult(rule="roc_auc >= 0.8", passed=False, value=0.7, threshold=0.8),
            RuleResult(rule="f1 >= champion.f1", passed=False, note="f1 is NaN"),
        ),
        rejected_version=4,
    )
    steps = (StepRecord(name="load", kind="load", status="ran"), StepRecord(name="checks", kind="checks", status="failed"))

    champion = outcome(_ended(verdict=passed, version=RegisteredVersion(model="churn", version=3, alias="champion")))
    assert (champion.registered, champion.verdict, champion.failed_step) == ("churn v3 → champion", "passed (1 rule)", None)
    held = outcome(_ended(version=RegisteredVersion(model="churn", version=3, alias="challenger", held="approval needed")))
    assert held.registered == "churn v3 → challenger, held back from champion: approval needed" and held.verdict is None
    assert outcome(_ended(version=RegisteredVersion(model="churn", version=3))).registered == "churn v3 (no alias)"
    equal = outcome(_ended(verdict=passed, version=RegisteredVersion(model="churn", version=2, alias="champion", existing=True)))
    assert equal.registered == "nothing new: the model equals churn v2; no alias moved"

    gates = outcome(_ended(status="failed", verdict=failed, steps=(StepRecord(name="gates", kind="gates", status="failed"),)))
    assert gates.registered == "nothing: the gates failed (the candidate is kept as churn v4, alias rejected)"
    assert gates.verdict == "failed: roc_auc >= 0.8 (value 0.7, threshold 0.8); f1 >= champion.f1 (f1 is NaN)"
    assert gates.failed_step == "gates"
    stopped = outcome(_ended(status="failed", steps=steps))
    assert (stopped.registered, stopped.verdict, stopped.failed_step) == ("nothing: the run stopped at step checks", None, "checks")
    assert outcome(_ended()).registered == "nothing: no step of this spec registers a model"
