"""The register kind, driven directly: a new version with its lineage, the typed version record, aliases, the policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from kind_harness import Harness

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import (
    CONTRACT,
    METRICS,
    ONNX,
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
from mlflowkit.store import Ref


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


def refitted(harness: Harness, candidate: dict[str, object], data: bytes) -> dict[str, object]:
    """The candidate with other model bytes (a model trained again, differently)."""
    model = candidate["model"]
    assert isinstance(model, Ref)
    return {**candidate, "model": harness.store.put_bytes(data, model.media_type, model.meta)}


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

    second = registered(harness, refitted(harness, candidate, b"model 2"), model="churn")
    assert second.version == 2 and harness.registry.aliases("churn") == {"champion": 2, "previous": 1}
    other = registered(harness, refitted(harness, candidate, b"model 3"), alias="staging")
    assert other.alias == "staging" and harness.registry.aliases("churn")["champion"] == 2
    none = registered(harness, refitted(harness, candidate, b"model 4"), alias=None)
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


def test_a_model_equal_to_a_registered_version_is_not_registered_again(
    harness: Harness, candidate: dict[str, object], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    registered(harness, candidate)
    second = registered(harness, refitted(harness, candidate, b"model 2"))
    assert second.version == 2 and harness.registry.aliases("churn") == {"champion": 2, "previous": 1}
    # The same bytes as v2 (train's output from the cache; only a gate changed): v2 is named, nothing moves.
    with caplog.at_level("INFO"):
        same = registered(harness, refitted(harness, candidate, b"model 2"))
    assert same == RegisteredVersion(model="churn", version=2, existing=True)
    assert [v.version for v in harness.registry.versions("churn")] == [1, 2]
    assert harness.registry.aliases("churn") == {"champion": 2, "previous": 1}
    assert len(harness.registry.history("churn")) == 3  # champion v1, then champion v2 and previous v1
    assert "model equals churn v2; not registered again, no alias moved (v2 is the champion)" in caplog.text
    shown = harness.report("registered")  # printed by `mlflowkit run`, an artifact in the Prefect UI
    assert shown.title == "churn v2: not registered again" and shown.markdown and "model equals churn v2" in shown.markdown
    # Equal to an older version, which is not the champion: it stays so; the run says how to promote it.
    caplog.clear()
    with caplog.at_level("INFO"):
        older = registered(harness, refitted(harness, candidate, b"model bytes"))
    assert older.version == 1 and older.existing and harness.registry.aliases("churn") == {"champion": 2, "previous": 1}
    assert "model equals churn v1" in caplog.text and "mlflowkit models promote churn 1" in caplog.text


def test_what_deploys_decides_equality_when_an_export_ran(harness: Harness, candidate: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    exported = {
        **candidate,
        "onnx": harness.store.put_bytes(b"onnx graph", ONNX, {}),
        "contract": harness.store.put_bytes(b'{"inputs": []}', CONTRACT, {}),
    }
    assert registered(harness, exported).version == 1
    # Fitted again: skops writes other bytes, the ONNX export is the same model.
    assert registered(harness, refitted(harness, exported, b"skops, fitted again")) == RegisteredVersion(
        model="churn", version=1, existing=True
    )
    # The same skops bytes exported differently (another opset, say): a new deployable, a new version.
    other = {**exported, "onnx": harness.store.put_bytes(b"onnx graph, opset 18", ONNX, {})}
    assert registered(harness, other).version == 2


def test_a_version_whose_signature_fails_is_never_taken_as_equal(
    harness: Harness, candidate: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlflowkit.edge.signing import generate_keypair
    from mlflowkit.store import ModelRegistry, Trust
    from mlflowkit.store.trust import SIGNING_KEY_ENV

    monkeypatch.delenv(POLICY_ENV, raising=False)
    assert registered(harness, candidate).version == 1  # unsigned
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    harness.registry = ModelRegistry(harness.registry.root, trust=Trust.load(environ={SIGNING_KEY_ENV: str(tmp_path / "k.pem")}))
    assert harness.registry.trust.enforcing  # v1 is unsigned: it vouches for nothing
    again = registered(harness, candidate)
    assert again.version == 2 and not again.existing and harness.registry.signature("churn", 2).state == "verified"
    # Signed and verified, v2 is equal evidence.
    assert registered(harness, candidate) == RegisteredVersion(model="churn", version=2, existing=True)
