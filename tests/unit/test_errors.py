"""Every exception pickles (it crosses Ray and Prefect process boundaries) and keeps its fields."""

from __future__ import annotations

import pickle

import pytest

from mlflowkit.errors import (
    GateFailed,
    IntegrityError,
    MlflowkitError,
    PluginError,
    RegistryError,
    SpecError,
    SpecIssue,
    StepFailed,
)
from mlflowkit.handoff import Verdict

ISSUE = SpecIssue("unknown key 'estimater'", "train.estimater", "spec.yaml", 12, 3, "did you mean 'estimator'?", "  estimater: x")


@pytest.mark.parametrize(
    "exc",
    [
        SpecError([ISSUE, SpecIssue("missing required key 'target'", "data.target", "spec.yaml", 4, 1)]),
        PluginError("acme", "mlflowkit.kinds", "is broken"),
        RegistryError("model 'x' has no alias 'champion'"),
        IntegrityError("objects/ab/abcd", "abcd", "ef01"),
        StepFailed("train", "fit failed"),
        GateFailed("gates", "accuracy >= 0.9 failed", Verdict(passed=False, rules=()), "objects/ab/abc"),
    ],
)
def test_round_trips_through_pickle(exc: MlflowkitError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert back.__dict__ == exc.__dict__


def test_spec_error_renders_every_issue_with_a_caret() -> None:
    text = str(SpecError([ISSUE, ISSUE]))
    assert text.startswith("spec validation failed: 2 errors")
    assert "spec.yaml:12:3: train.estimater: unknown key 'estimater'" in text
    assert "      ^" in text
    assert "hint: did you mean 'estimator'?" in text


def test_spec_error_caps_what_it_shows() -> None:
    text = str(SpecError([ISSUE] * 60, max_shown=5))
    assert text.count("unknown key") == 5
    assert "... and 55 more" in text


def test_exit_codes() -> None:
    assert SpecError([ISSUE]).exit_code == 2
    assert StepFailed("a", "b").exit_code == 1
