"""The checks kind's run, driven directly on real Great Expectations: the validation output, the tables passed on,
a failing error-level check stopping the step (its result kept), a warn-level one only reported."""

from __future__ import annotations

import pytest
from kind_harness import Harness, Trained

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import VALIDATION
from mlflowkit.kinds.checks import Checks


def test_passing_checks_write_their_validation_and_pass_the_tables_on(trained: Trained, on_trained: Harness) -> None:
    checks = [
        {"unique": "customer_id"},
        {"rows": {"min": 300}},
        {"leakage": "customer_id"},
        {"expect": "column_mean_to_be_between", "column": "tenure_months", "min_value": 90, "severity": "warn"},
    ]
    inputs = {"dataset": trained.dataset, "train": trained.train, "test": trained.test}
    out = on_trained.run(Checks, {"expectations": checks}, inputs, step="checks")
    assert (out["train"], out["test"]) == (trained.train, trained.test)
    validation = out["validation"]
    assert validation.media_type == VALIDATION and validation.meta["passed"] is True
    body = on_trained.store.read_json(validation.key)
    results = {r["expectation"]: (r["passed"], r["severity"]) for r in body["results"]}
    assert results["expect_column_mean_to_be_between"] == (False, "warn")  # reported, does not stop the run
    assert results["expect_column_values_to_be_unique"] == (True, "error")
    assert len(on_trained.report("results").rows or []) == len(body["results"])


def test_a_failing_check_stops_the_step_and_keeps_its_result(trained: Trained, on_trained: Harness) -> None:
    checks = [{"expect": "column_values_to_be_between", "column": "tenure_months", "min_value": 0, "max_value": 10}]
    with pytest.raises(StepFailed, match=r"tenure_months.*\(validation result: objects/") as failed:
        on_trained.run(Checks, {"expectations": checks}, {"dataset": trained.dataset}, step="checks")
    key = str(failed.value).rsplit("validation result: ", 1)[1].rstrip(")")
    assert on_trained.store.read_json(key)["passed"] is False


def test_no_checks_read_nothing_and_pass_the_splits_on(trained: Trained, on_trained: Harness) -> None:
    assert on_trained.run(Checks, {}, {"train": trained.train, "test": trained.test}) == {"train": trained.train, "test": trained.test}
