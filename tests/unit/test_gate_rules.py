"""The gate grammar: what parses, what is refused (with a column), and how rules evaluate (fail closed)."""

from __future__ import annotations

import math

import pytest

from mlflowkit.gate_rules import GateRule, GateSyntaxError, parse_rule

VALUES = {"accuracy": 0.9, "roc_auc": 0.8, "dpd": 0.05}
CHAMPION = {"accuracy": 0.88, "roc_auc": 0.85}


@pytest.mark.parametrize(
    ("text", "passed", "left", "right"),
    [
        ("accuracy >= 0.85", True, 0.9, 0.85),
        ("accuracy > 0.9", False, 0.9, 0.9),
        ("dpd <= 0.1", True, 0.05, 0.1),
        ("roc_auc >= champion.roc_auc - 0.01", False, 0.8, 0.84),
        ("accuracy >= champion.accuracy * 1.01", True, 0.9, 0.8888),
        ("(accuracy + roc_auc) / 2 >= 0.85", True, 0.85, 0.85),
        ("-dpd >= -0.1", True, -0.05, -0.1),
        ("accuracy != 1", True, 0.9, 1.0),
        ("1e-1 < dpd", False, 0.1, 0.05),
    ],
)
def test_rules_evaluate(text: str, passed: bool, left: float, right: float) -> None:
    ok, lhs, rhs, note = parse_rule(text).evaluate(VALUES, CHAMPION)
    assert ok is passed and note == ""
    assert lhs is not None and rhs is not None
    assert math.isclose(lhs, left, abs_tol=1e-9) and math.isclose(rhs, right, abs_tol=1e-4)


@pytest.mark.parametrize(
    ("text", "fragment", "col"),
    [
        ("accuracy >= ", "expected a number or a metric name, got 'the end'", 13),
        ("accuracy 0.85", "expected a comparison", 10),
        ("accuracy >= 0.85 0.9", "unexpected '0.9'", 18),
        ("accuracy >= 0.8 ; import os", "unexpected character ';'", 17),
        ("__import__('os') >= 1", "unexpected character \"'\"", 12),
        ("train.accuracy >= 1", "only champion.<metric> may contain a dot", 1),
        ("(accuracy >= 1", "expected ')'", 11),
    ],
)
def test_bad_rules_are_refused_with_a_column(text: str, fragment: str, col: int) -> None:
    with pytest.raises(GateSyntaxError) as info:
        parse_rule(text)
    assert fragment in str(info.value)
    assert info.value.col == col


def test_missing_and_nan_values_fail_closed() -> None:
    assert parse_rule("f1 >= 0.5").evaluate(VALUES, None) == (False, None, 0.5, "no value for f1")
    ok, _, _, note = parse_rule("roc_auc >= champion.roc_auc").evaluate(VALUES, None)
    assert not ok and note == "no value for champion.roc_auc"
    ok, _, _, note = parse_rule("accuracy >= 0.5").evaluate({"accuracy": math.nan}, None)
    assert not ok and note == "NaN value"
    ok, _, _, note = parse_rule("accuracy / 0 >= 0.5").evaluate(VALUES, None)
    assert not ok and note == "NaN value"


def test_names_and_metrics() -> None:
    rule = parse_rule("roc_auc >= champion.roc_auc - 0.01")
    assert rule.names() == ["roc_auc", "champion.roc_auc"]
    assert rule.metrics() == ["roc_auc", "roc_auc"]


def test_structured_rules_become_expressions() -> None:
    assert GateRule(metric="accuracy", threshold=0.85).text() == "accuracy >= 0.85"
    assert GateRule(metric="dpd", op="<=", threshold=0.1).text() == "dpd <= 0.1"
    assert GateRule(metric="roc_auc", vs_champion=-0.01).text() == "roc_auc >= champion.roc_auc - 0.01"
    with pytest.raises(ValueError, match="exactly one of threshold or vs_champion"):
        GateRule(metric="accuracy")
    with pytest.raises(ValueError, match="exactly one of threshold or vs_champion"):
        GateRule(metric="accuracy", threshold=0.8, vs_champion=0.0)
