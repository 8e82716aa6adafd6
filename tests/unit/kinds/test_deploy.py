"""The deploy kind, driven directly with a real target (signed ONNX Runtime bundles in a folder): what it deploys,
what it refuses, and that a failed deploy gives champion back to the version still serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kind_harness import Harness, Trained

from mlflowkit.edge.signing import generate_keypair
from mlflowkit.errors import StepFailed
from mlflowkit.handoff import DEPLOYMENT, VERSION, RegisteredVersion
from mlflowkit.kinds.deploy import Deploy
from mlflowkit.kinds.evaluate import Evaluate
from mlflowkit.kinds.export import OnnxExport
from mlflowkit.kinds.register import Register
from mlflowkit.policy import POLICY_ENV
from mlflowkit.release import read_record


@pytest.fixture
def released(trained: Trained, on_trained: Harness, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Export, evaluate and register v1 of the trained model (champion); the inputs deploy gets."""
    monkeypatch.delenv(POLICY_ENV, raising=False)
    exported = on_trained.run(OnnxExport, {"max_rows": 20}, {"model": trained.model, "test": trained.test})
    metrics = on_trained.run(Evaluate, {"metrics": ["accuracy"]}, {"model": trained.model, "test": trained.test})
    version = on_trained.run(Register, {}, {"model": trained.model, **metrics, **exported})["version"]
    return {"version": version, "test": trained.test}


def edge(tmp_path: Path, location: Path) -> dict[str, object]:
    key = tmp_path / "keys" / "edge.pem"
    if not key.exists():
        generate_keypair(key, tmp_path / "keys" / "edge.pub")
    return {"target": "onnxruntime", "location": str(location), "signing": {"key_file": str(key)}, "smoke_rows": 5}


def test_the_champion_is_published_and_recorded(tmp_path: Path, on_trained: Harness, released: dict[str, object]) -> None:
    out = on_trained.run(Deploy, {"targets": [edge(tmp_path, tmp_path / "fleet")]}, released, step="deploy")  # type: ignore[arg-type]
    assert out["deployment"].media_type == DEPLOYMENT and out["deployment"].meta == {"model": "churn", "version": 1}
    body = json.loads(on_trained.store.get_bytes(out["deployment"]))
    (record,) = body["targets"]
    assert record["target"] == "onnxruntime" and record["version"] == 1
    assert (tmp_path / "fleet" / "churn" / "1").is_dir()
    release = read_record(on_trained.registry, "churn", 1)
    assert release is not None and release["cause"] == "run run-1"
    assert on_trained.report("deployments").title == "deployed churn v1"


def test_a_failed_target_gives_champion_back(tmp_path: Path, on_trained: Harness, released: dict[str, object]) -> None:
    first = on_trained.run(Deploy, {"targets": [edge(tmp_path, tmp_path / "fleet")]}, released, step="deploy")
    assert first["deployment"].meta["version"] == 1
    # v2 registered and promoted; its deploy fails (the location is a file), so v1 is champion again.
    inputs = {k: v for k, v in released.items() if k != "version"}
    v1 = on_trained.registry.get("churn", 1)
    on_trained.registry.register("churn", {f: on_trained.registry.read_file("churn", 1, f) for f in v1.files}, dict(v1.lineage))
    from mlflowkit.store.promotion import promote

    promote(on_trained.registry, "churn", 2, reason="test")
    doc = RegisteredVersion(model="churn", version=2, alias="champion")
    inputs["version"] = on_trained.store.put_bytes(doc.model_dump_json().encode(), VERSION, {"model": "churn", "version": 2})
    (tmp_path / "not-a-folder").write_text("x")
    with pytest.raises(StepFailed, match=r"deploy\[0\] \(onnxruntime\).*champion is v1 again, which still serves"):
        on_trained.run(Deploy, {"targets": [edge(tmp_path, tmp_path / "not-a-folder")]}, inputs, step="deploy")  # type: ignore[arg-type]
    assert on_trained.registry.aliases("churn")["champion"] == 1


def test_a_version_held_for_approval_is_not_deployed(tmp_path: Path, on_trained: Harness, released: dict[str, object]) -> None:
    held = RegisteredVersion(model="churn", version=1, alias="challenger", held="the policy requires an approval")
    ref = on_trained.store.put_bytes(held.model_dump_json().encode(), VERSION, {})
    out = on_trained.run(Deploy, {"targets": [edge(tmp_path, tmp_path / "fleet")]}, {**released, "version": ref})  # type: ignore[arg-type]
    assert out == {} and not (tmp_path / "fleet").exists()
    assert "awaiting approval" in on_trained.report("deployments").title


def test_a_model_equal_to_a_registered_version_deploys_nothing_new(
    tmp_path: Path, trained: Trained, on_trained: Harness, released: dict[str, object]
) -> None:
    exported = on_trained.run(OnnxExport, {"max_rows": 20}, {"model": trained.model, "test": trained.test})
    metrics = on_trained.run(Evaluate, {"metrics": ["accuracy"]}, {"model": trained.model, "test": trained.test})
    again = on_trained.run(Register, {}, {"model": trained.model, **metrics, **exported})["version"]
    assert RegisteredVersion.model_validate_json(on_trained.store.get_bytes(again)).existing
    out = on_trained.run(Deploy, {"targets": [edge(tmp_path, tmp_path / "fleet")]}, {**released, "version": again})  # type: ignore[arg-type]
    assert out == {} and not (tmp_path / "fleet").exists()
    assert [v.version for v in on_trained.registry.versions("churn")] == [1]


def test_only_a_promoted_version_deploys(tmp_path: Path, on_trained: Harness, released: dict[str, object]) -> None:
    staged = RegisteredVersion(model="churn", version=1, alias="staging")
    ref = on_trained.store.put_bytes(staged.model_dump_json().encode(), VERSION, {})
    with pytest.raises(StepFailed, match="churn v1 is not the champion"):
        on_trained.run(Deploy, {"targets": [edge(tmp_path, tmp_path / "fleet")]}, {**released, "version": ref})  # type: ignore[arg-type]


def test_no_targets_deploy_nothing_and_need_no_version(harness: Harness) -> None:
    assert harness.run(Deploy, {"targets": []}, {}) == {}
    with pytest.raises(StepFailed, match="no registered version to deploy"):
        harness.run(Deploy, {"targets": [edge(harness.root, harness.root / "fleet")]}, {})
