"""The gates kind, driven directly: thresholds, champion regression, NaN and missing values fail closed,
on_missing_baseline, keep_rejected; the verdict is typed, written before a failure, and found by its media type."""

from __future__ import annotations

import math

import pytest
from kind_harness import Harness

from mlflowkit.errors import GateFailed
from mlflowkit.handoff import JOBLIB, METRICS, VERDICT, ChampionScores, MetricsMeta, ModelMeta, Ref, Verdict
from mlflowkit.kinds.gates import Gates


def scored(h: Harness, metrics: dict[str, float | None], champion: ChampionScores | None = None) -> Ref:
    """A ``metrics`` output as evaluate writes it (the meta is what gates read)."""
    meta = MetricsMeta(metrics=metrics, n_test=100, champion=champion or ChampionScores(note="no champion yet"))
    return h.store.put_bytes(b"{}", METRICS, meta.model_dump(mode="json"))


def decide(h: Harness, rules: list[object], metrics: Ref, **params: object) -> Verdict:
    """Run the gates; the verdict from the output when they pass, from the error when they fail."""
    failed: GateFailed | None = None
    try:
        out = h.run(Gates, {"rules": rules, **params}, {"metrics": metrics}, step="decide")
    except GateFailed as exc:
        failed = exc
    if failed is not None:
        assert isinstance(failed.verdict, Verdict) and failed.ref is not None
        stored = Verdict.model_validate(h.store.read_json(failed.ref))
        assert stored.model_dump_json() == failed.verdict.model_dump_json()  # written before the flow stops (NaN as null)
        return failed.verdict
    (ref,) = out.values()
    assert ref.media_type == VERDICT and ref.meta == {"passed": True}
    return Verdict.model_validate_json(h.store.get_bytes(ref))


def test_thresholds_pass_and_fail_with_values_in_the_verdict(harness: Harness) -> None:
    metrics = scored(harness, {"accuracy": 0.82, "f1": 0.6})
    passed = decide(harness, ["accuracy >= 0.8", "f1 > 0.5"], metrics)
    assert passed.passed and [r.passed for r in passed.rules] == [True, True]
    assert (passed.rules[0].value, passed.rules[0].threshold) == (0.82, 0.8)
    assert passed.run_id == "run-1" and passed.metrics == {"accuracy": 0.82, "f1": 0.6}
    assert harness.report("verdict").title == "gate verdict: PASS"

    with pytest.raises(GateFailed, match=r"gates failed: accuracy >= 0.9 \(value 0.82, threshold 0.9\)") as failed:
        harness.run(Gates, {"rules": ["accuracy >= 0.9", "f1 > 0.5"]}, {"metrics": metrics}, step="decide")
    verdict = failed.value.verdict
    assert isinstance(verdict, Verdict) and not verdict.passed
    assert [r.rule for r in verdict.failed()] == ["accuracy >= 0.9"]
    assert failed.value.step == "decide"
    assert harness.report("verdict").title == "gate verdict: FAIL"


def test_a_structured_rule_carries_its_description(harness: Harness) -> None:
    rule = {"metric": "dpd", "op": "<=", "threshold": 0.1, "description": "offers must not depend on gender"}
    verdict = decide(harness, [rule], scored(harness, {"dpd": 0.2}))
    assert not verdict.passed
    assert (verdict.rules[0].rule, verdict.rules[0].description) == ("dpd <= 0.1", "offers must not depend on gender")


def test_regression_against_the_champion_fails_and_names_its_version(harness: Harness) -> None:
    champion = ChampionScores(version=3, metrics={"roc_auc": 0.85})
    within = decide(harness, ["roc_auc >= champion.roc_auc - 0.02"], scored(harness, {"roc_auc": 0.84}, champion))
    assert within.passed and within.rules[0].baseline == 3
    assert math.isclose(within.rules[0].threshold or 0, 0.83)

    worse = decide(harness, ["roc_auc >= champion.roc_auc - 0.02"], scored(harness, {"roc_auc": 0.80}, champion))
    assert not worse.passed and worse.rules[0].baseline == 3 and worse.champion.version == 3
    assert worse.rules[0].value == 0.80


def test_nan_and_missing_values_fail_closed(harness: Harness) -> None:
    verdict = decide(harness, ["roc_auc >= 0.5", "log_loss <= 1", "accuracy >= 0.5"], scored(harness, {"roc_auc": math.nan, "log_loss": None, "accuracy": 0.9}))
    notes = {r.rule: (r.passed, r.note) for r in verdict.rules}
    assert notes == {
        "roc_auc >= 0.5": (False, "NaN value"),
        "log_loss <= 1": (False, "no value for log_loss"),
        "accuracy >= 0.5": (True, ""),
    }
    # A metric no step produced, and a division by zero in a rule: no, too.
    odd = decide(harness, ["recall >= 0.1", "accuracy / 0 >= 1"], scored(harness, {"accuracy": 0.9}))
    assert [r.passed for r in odd.rules] == [False, False]


def test_a_champion_that_could_not_be_scored_fails_champion_rules(harness: Harness) -> None:
    broken = ChampionScores(version=2, metrics=None, note="champion v2 could not score this data: KeyError: 'age'")
    verdict = decide(harness, ["accuracy >= champion.accuracy", "accuracy >= 0.5"], scored(harness, {"accuracy": 0.9}, broken))
    assert [r.passed for r in verdict.rules] == [False, True]
    assert verdict.rules[0].note.startswith("champion v2 could not score") and verdict.rules[0].baseline == 2


@pytest.mark.parametrize(("policy", "passes"), [("pass", True), ("fail", False)])
def test_without_a_champion_on_missing_baseline_decides(harness: Harness, policy: str, passes: bool) -> None:
    verdict = decide(harness, ["f1 >= champion.f1"], scored(harness, {"f1": 0.7}), on_missing_baseline=policy)
    assert verdict.passed is passes and verdict.on_missing_baseline == policy
    assert verdict.rules[0].note == f"no champion yet; on_missing_baseline={policy}"
    assert verdict.rules[0].value is None and verdict.rules[0].baseline is None


def test_keep_rejected_registers_the_candidate_under_rejected_and_leaves_the_champion(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    model = harness.store.put_bytes(
        b"not a pickle: register only copies bytes",
        JOBLIB,
        ModelMeta(estimator="sklearn.dummy.DummyClassifier", features=("a",), target="y", classes=("no", "yes")).model_dump(mode="json"),
    )
    harness.registry.register("churn", {"model.joblib": b"v1"}, {"run_id": "earlier"})
    harness.registry.set_alias("churn", "champion", 1, reason="first")
    metrics = scored(harness, {"accuracy": 0.6})
    with pytest.raises(GateFailed) as failed:
        harness.run(Gates, {"rules": ["accuracy >= 0.9"], "keep_rejected": True}, {"metrics": metrics, "model": model}, step="decide")
    verdict = failed.value.verdict
    assert isinstance(verdict, Verdict) and verdict.rejected_version == 2
    assert harness.registry.aliases("churn") == {"champion": 1, "rejected": 2}
    kept = harness.registry.get("churn", 2)
    assert kept.lineage["verdict"]["passed"] is False and kept.lineage["estimator"] == "sklearn.dummy.DummyClassifier"
    assert harness.registry.read_file("churn", 2, "model.joblib") == b"not a pickle: register only copies bytes"
    # The same model judged again (a stricter gate): it is kept already, as v2; nothing is registered or moved.
    with pytest.raises(GateFailed) as again, caplog.at_level("INFO"):
        harness.run(Gates, {"rules": ["accuracy >= 0.95"], "keep_rejected": True}, {"metrics": metrics, "model": model}, step="decide")
    assert again.value.verdict.rejected_version is None
    assert [v.version for v in harness.registry.versions("churn")] == [1, 2]
    assert harness.registry.aliases("churn") == {"champion": 1, "rejected": 2}
    assert "model equals churn v2; not registered again, no alias moved (aliases of v2: rejected)" in caplog.text
