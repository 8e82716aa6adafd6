"""The register kind, driven directly: a new version with its lineage, the typed version record, aliases, the policy."""

from __future__ import annotations

import pytest
from kind_harness import Harness

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import (
    METRICS,
    SKOPS,
    VERDICT,
    VERSION,
    ChampionScores,
    MetricsMeta,
    ModelMeta,
    RegisteredVersion,
    Trigger,
    Verdict,
)
from mlflowkit.kinds.register import Register
from mlflowkit.policy import POLICY_ENV


@pytest.fixture
def candidate(harness: Harness) -> dict[str, object]:
    """A model, its metrics and a passing verdict, as train, evaluate and gates hand them on."""
    model = ModelMeta(estimator="sklearn.dummy.DummyClassifier", features=("a", "b"), target="y", classes=("no", "yes"),
                      params={"strategy": "prior"}, search={"metric": "roc_auc", "trials": [1, 2]})  # fmt: skip
    metrics = MetricsMeta(metrics={"accuracy": 0.8}, n_test=10, champion=ChampionScores(note="no champion yet"))
    verdict = Verdict(passed=True, metrics={"accuracy": 0.8}, run_id="run-1")
    return {
        "model": harness.store.put_bytes(b"model bytes", SKOPS, model.model_dump(mode="json")),
        "metrics": harness.store.put_bytes(b'{"accuracy": 0.8}', METRICS, metrics.model_dump(mode="json")),
        # Found by its media type, whatever the output (and the stage that made it) is called.
        "decision": harness.store.put_bytes(verdict.model_dump_json().encode(), VERDICT, {"passed": True}),
    }


def registered(harness: Harness, inputs: dict[str, object], **params: object) -> RegisteredVersion:
    (ref,) = harness.run(Register, params, inputs, step="publish").values()  # type: ignore[arg-type]
    assert ref.media_type == VERSION
    version = RegisteredVersion.model_validate_json(harness.store.get_bytes(ref))
    assert ref.meta == {"model": version.model, "version": version.version}
    return version


def test_a_version_with_its_lineage_becomes_champion(harness: Harness, candidate: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    harness.trigger = Trigger(by="monitor", check_id="c1", via="local", reasons=("tenure drifted",))
    first = registered(harness, candidate)
    assert first == RegisteredVersion(model="churn", version=1, alias="champion")
    mv = harness.registry.get("churn", 1)
    lineage = mv.lineage
    assert lineage["estimator"] == "sklearn.dummy.DummyClassifier" and lineage["features"] == ["a", "b"]
    assert lineage["metrics"] == {"accuracy": 0.8} and lineage["verdict"]["passed"] is True
    assert lineage["search"] == {"metric": "roc_auc"}  # the trials stay out of the lineage
    assert lineage["trigger"]["by"] == "monitor" and lineage["trigger"]["check_id"] == "c1"
    assert set(mv.files) == {"model.skops", "metrics.json", "verdict.json"}
    assert harness.registry.read_file("churn", 1, "model.skops") == b"model bytes"

    second = registered(harness, candidate, model="churn")
    assert second.version == 2 and harness.registry.aliases("churn") == {"champion": 2, "previous": 1}
    other = registered(harness, candidate, alias="staging")
    assert other.alias == "staging" and harness.registry.aliases("churn")["champion"] == 2
    none = registered(harness, candidate, alias=None)
    assert none.alias is None and 4 not in harness.registry.aliases("churn").values()


def test_a_policy_that_requires_approval_holds_it_as_challenger(harness: Harness, candidate: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    (harness.spec_dir / "policy.yaml").write_text("policy: mlflowkit/v1\npromotion:\n  require_approval: true\n")
    held = registered(harness, candidate)
    assert held.alias == "challenger" and "requires an approval" in held.held
    assert harness.registry.aliases("churn") == {"challenger": 1}
    assert harness.registry.get("churn", 1).lineage["governance"]["require_approval"] is True


def test_a_model_without_its_meta_is_refused_naming_the_input(harness: Harness, candidate: dict[str, object]) -> None:
    candidate["model"] = harness.store.put_bytes(b"x", SKOPS, {"estimator": "x"})
    with pytest.raises(StepFailed, match=r"input 'model' does not carry the ModelMeta this step reads \(features: Field required"):
        harness.run(Register, {}, candidate, step="publish")  # type: ignore[arg-type]
